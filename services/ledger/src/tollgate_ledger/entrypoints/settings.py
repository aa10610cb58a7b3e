"""The ledger service's settings."""

from tollgate_common.settings import ServiceSettings


class LedgerSettings(ServiceSettings):
    """Everything the ledger process is configured with (``TOLLGATE_*``)."""

    grpc_listen: str = "127.0.0.1:50052"
    database_url: str = "postgresql+asyncpg://tollgate_ledger@127.0.0.1:5432/tollgate"
    # Reconciliation reads every organisation, as a role row-level security exempts.
    system_database_url: str = (
        "postgresql+asyncpg://tollgate_ledger_system@127.0.0.1:5432/tollgate"
    )
