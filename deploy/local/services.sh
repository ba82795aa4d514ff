# generated from shop_events/registry.py by deploy/generate.py; do not edit
# The services in order, with local mode's default ports (SHOP_PORT_BASE moves them all) and databases.
SERVICES=(auth products orders notifications analytics)
SERVICE_PORT_BASE=8000
SERVICE_PORTS=(8001 8002 8003 8004 8005)
SERVICE_DATABASES=(auth products orders notifications analytics)
