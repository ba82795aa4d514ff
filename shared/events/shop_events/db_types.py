"""What a query runs on: a connection opened on its own, or one a pool lends (asyncpg's PoolConnectionProxy,
which forwards every call to its connection but is not a Connection subclass, so both are named here)."""

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

DbConnection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
