"""Database helpers: one async engine per process, and a reachability check."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tollgate_common.settings import ServiceSettings


def make_engine(
    url: str,
    pool_size: int = 10,
    pool_timeout: float = 5.0,
    behind_pooler: bool = False,
) -> AsyncEngine:
    """An asyncpg engine with a bounded pool and a short wait for a connection.

    Behind PgBouncer in transaction pooling a server connection changes between
    transactions, so prepared statements must not outlive one: asyncpg's and
    SQLAlchemy's statement caches are off and every statement gets a unique name.
    """
    connect_args: dict[str, object] = {"timeout": 5, "command_timeout": 10}
    if behind_pooler:
        url = str(
            sa.make_url(url).update_query_dict({"prepared_statement_cache_size": "0"})
        )
        connect_args |= {
            "statement_cache_size": 0,
            "prepared_statement_name_func": lambda: f"__tollgate_{uuid.uuid4().hex}__",
        }
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout,
        pool_pre_ping=False,
        connect_args=connect_args,
    )


def engine_for(
    settings: ServiceSettings, url: str | None = None, pool_size: int | None = None
) -> AsyncEngine:
    """The engine a service's settings describe (its own URL unless one is given)."""
    return make_engine(
        url or settings.database_url,
        pool_size or settings.database_pool_size,
        settings.database_pool_timeout_seconds,
        settings.database_behind_pooler,
    )


async def reachable(engine: AsyncEngine) -> bool:
    """Whether a trivial query succeeds."""
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
