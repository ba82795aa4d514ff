"""Event handlers of the auth service: none yet (it only produces events), declared on its router."""

from shop_events import Router

router = Router()
