"""Database helpers: one async engine per process, and a reachability check."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """An asyncpg engine with a bounded pool and a short wait for a connection."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=5,
        pool_pre_ping=False,
        connect_args={"timeout": 5, "command_timeout": 10},
    )


async def reachable(engine: AsyncEngine) -> bool:
    """Whether a trivial query succeeds."""
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
