"""SQL of the orders service (asyncpg). Every write that publishes adds its events in the same transaction."""
