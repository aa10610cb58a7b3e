"""Typed settings, read from the environment once, at the entrypoint.

Every variable is prefixed ``TOLLGATE_``; a service's settings class adds its own
fields. A missing or malformed value stops the process at start with pydantic's
message naming the variable.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from tollgate_common.ratelimit import RateLimiter

T = TypeVar("T", bound="ServiceSettings")


class ServiceSettings(BaseSettings):
    """What every service process is configured with."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", extra="ignore")

    log_level: str = "INFO"
    grpc_listen: str = "127.0.0.1:50051"
    grpc_grace_seconds: float = 5.0
    metrics_port: int = 0
    database_url: str = "postgresql+asyncpg://tollgate_app@127.0.0.1:5432/tollgate"
    database_pool_size: int = 10
    # A call waits this long for a pooled connection before it is a 503.
    database_pool_timeout_seconds: float = 5.0
    # Through PgBouncer in transaction pooling: no prepared statement outlives one.
    database_behind_pooler: bool = False
    identity_target: str = "127.0.0.1:50051"
    # Deadline given to every outgoing gRPC call.
    call_timeout_seconds: float = 5.0
    # Calls an organisation may make a minute on this service; 0 turns it off.
    rate_limit_per_minute: int = 0
    token_issuer: str = "tollgate"
    token_audience: str = "tollgate-api"


def load(cls: type[T]) -> T:
    """Read the settings or exit with a message that names what is wrong."""
    try:
        return cls()
    except ValidationError as error:
        sys.exit(f"invalid configuration:\n{error}")


def rate_limiter(settings: ServiceSettings) -> RateLimiter | None:
    """The configured per-organisation limiter, or None when it is off."""
    if settings.rate_limit_per_minute <= 0:
        return None
    return RateLimiter(settings.rate_limit_per_minute)
