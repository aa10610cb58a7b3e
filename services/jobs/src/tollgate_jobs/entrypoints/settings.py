"""The jobs service's and worker's settings."""

from tollgate_common.settings import ServiceSettings
from tollgate_jobs.service_layer.worker import RetryPolicy


class JobsSettings(ServiceSettings):
    """Everything the jobs processes are configured with (``TOLLGATE_*``)."""

    grpc_listen: str = "127.0.0.1:50053"
    database_url: str = "postgresql+asyncpg://tollgate_jobs@127.0.0.1:5432/tollgate"
    # The sweeper and pruning work across organisations, as a role exempt from
    # row-level security with only the grants they need.
    system_database_url: str = (
        "postgresql+asyncpg://tollgate_jobs_system@127.0.0.1:5432/tollgate"
    )
    ledger_target: str = "127.0.0.1:50052"
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_stream: str = "tollgate:jobs"
    # A message a worker took and did not acknowledge goes to another after this.
    queue_reclaim_seconds: float = 60.0
    # An in-progress Idempotency-Key whose request died is taken over after this.
    idempotency_lock_seconds: float = 30.0
    idempotency_retention_hours: float = 24.0
    idempotency_prune_interval_seconds: float = 600.0
    # A worker holds a running job this long; after it a job counts as stalled.
    job_lease_seconds: float = 60.0
    job_max_attempts: int = 3
    job_retry_base_seconds: float = 2.0
    # A job pending this long was lost by the queue and is sent again.
    job_pending_seconds: float = 120.0
    sweep_interval_seconds: float = 5.0
    # Test-only: how long the worker waits inside each job.
    worker_slow_down_seconds: float = 0.0
    # Test-only: a job whose text contains this (when set) fails for good.
    worker_fail_marker: str = ""

    def retry_policy(self) -> RetryPolicy:
        """The jobs' lease and retry rules."""
        return RetryPolicy(
            lease_seconds=self.job_lease_seconds,
            max_attempts=self.job_max_attempts,
            retry_base_seconds=self.job_retry_base_seconds,
            pending_seconds=self.job_pending_seconds,
        )
