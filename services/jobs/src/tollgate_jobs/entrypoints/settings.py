"""The jobs service's and worker's settings."""

from tollgate_common.settings import ServiceSettings


class JobsSettings(ServiceSettings):
    """Everything the jobs processes are configured with (``TOLLGATE_*``)."""

    grpc_listen: str = "127.0.0.1:50053"
    database_url: str = "postgresql+asyncpg://tollgate_jobs@127.0.0.1:5432/tollgate"
    ledger_target: str = "127.0.0.1:50052"
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_stream: str = "tollgate:jobs"
    # A message a worker took and did not acknowledge goes to another after this.
    queue_reclaim_seconds: float = 60.0
    # An in-progress Idempotency-Key whose request died is taken over after this.
    idempotency_lock_seconds: float = 30.0
    idempotency_retention_hours: float = 24.0
    idempotency_prune_interval_seconds: float = 600.0
    # Test-only: how long the worker waits inside each job.
    worker_slow_down_seconds: float = 0.0
