"""Jobs and the idempotency records of the paid endpoints.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None

APP_ROLE = "tollgate_jobs"


def upgrade() -> None:
    """Create the jobs schema's tables and the app role's privileges."""
    op.execute(
        """
        CREATE TABLE idempotency_records (
            organisation_id uuid NOT NULL,
            key text NOT NULL,
            endpoint text NOT NULL,
            fingerprint text NOT NULL,
            state text NOT NULL CHECK (state IN ('in_progress', 'completed')),
            outcome jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            attempt text NOT NULL,
            locked_until timestamptz NOT NULL,
            PRIMARY KEY (organisation_id, key)
        )
        """
    )
    op.execute(
        "CREATE INDEX idempotency_records_by_age ON idempotency_records (created_at)"
    )
    op.execute(
        """
        CREATE TABLE jobs (
            organisation_id uuid NOT NULL,
            id uuid NOT NULL,
            user_id uuid NOT NULL,
            status text NOT NULL
                CHECK (status IN ('pending', 'running', 'completed', 'failed')),
            text text NOT NULL,
            charge_id uuid NOT NULL,
            result text,
            error text,
            refund_state text NOT NULL DEFAULT 'none'
                CHECK (refund_state IN ('none', 'pending', 'done')),
            attempts integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (organisation_id, id),
            UNIQUE (organisation_id, charge_id),
            UNIQUE (id)
        )
        """
    )
    op.execute(
        "CREATE INDEX jobs_unfinished ON jobs (status, updated_at) "
        "WHERE status IN ('pending', 'running') OR refund_state = 'pending'"
    )
    op.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_records TO {APP_ROLE}"
    )
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON jobs TO {APP_ROLE}")
