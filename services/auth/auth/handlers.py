"""Event handlers of the auth service: one async function per event type it consumes."""

from shop_events import Handler

HANDLERS: dict[str, Handler] = {}
