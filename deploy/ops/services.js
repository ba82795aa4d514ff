// generated from shop_events/registry.py by deploy/generate.py; do not edit
// Loaded before ops.js: the services the operations page asks.
"use strict";

const SERVICES = ["auth", "products", "orders", "notifications", "analytics"];
