"""Event handlers of the notifications service: one async function per event type it consumes."""

from shop_events import Handler

HANDLERS: dict[str, Handler] = {}
