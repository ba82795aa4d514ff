"""SQL of the analytics service (asyncpg). Every write that publishes adds its events in the same transaction."""
