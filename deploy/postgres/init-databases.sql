-- generated from shop_events/registry.py by deploy/generate.py; do not edit
-- One database per service, made once when the PostgreSQL volume is new (docker-compose.yml and
-- deploy/k8s mount this file under /docker-entrypoint-initdb.d/). Local mode makes them itself
-- (deploy/local/stackctl.py createdb, own): the same databases, roles and grants.
-- Least privilege: each service logs in as its own role, which owns its database and nothing else,
-- and no other role (but the superuser) may connect to it.
CREATE ROLE shop_auth LOGIN;
CREATE DATABASE auth;
ALTER DATABASE auth OWNER TO shop_auth;
REVOKE CONNECT, TEMPORARY ON DATABASE auth FROM PUBLIC;
CREATE ROLE shop_products LOGIN;
CREATE DATABASE products;
ALTER DATABASE products OWNER TO shop_products;
REVOKE CONNECT, TEMPORARY ON DATABASE products FROM PUBLIC;
CREATE ROLE shop_orders LOGIN;
CREATE DATABASE orders;
ALTER DATABASE orders OWNER TO shop_orders;
REVOKE CONNECT, TEMPORARY ON DATABASE orders FROM PUBLIC;
CREATE ROLE shop_notifications LOGIN;
CREATE DATABASE notifications;
ALTER DATABASE notifications OWNER TO shop_notifications;
REVOKE CONNECT, TEMPORARY ON DATABASE notifications FROM PUBLIC;
CREATE ROLE shop_analytics LOGIN;
CREATE DATABASE analytics;
ALTER DATABASE analytics OWNER TO shop_analytics;
REVOKE CONNECT, TEMPORARY ON DATABASE analytics FROM PUBLIC;
