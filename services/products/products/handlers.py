"""Event handlers of the products service: one async function per event type it consumes."""

from shop_events import Handler

HANDLERS: dict[str, Handler] = {}
