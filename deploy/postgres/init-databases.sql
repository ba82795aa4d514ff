-- One database per service, made once when the PostgreSQL volume is new (docker-compose.yml and
-- deploy/k8s mount this file under /docker-entrypoint-initdb.d/). Local mode makes them itself.
CREATE DATABASE auth;
CREATE DATABASE products;
CREATE DATABASE orders;
CREATE DATABASE notifications;
CREATE DATABASE analytics;
