"""Accounts, transactions and entries of the double-entry ledger.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None

APP_ROLE = "tollgate_ledger"


def upgrade() -> None:
    """Create the ledger's tables, its invariants and the app role's privileges."""
    # Every table is keyed by organisation first, so that a Postgres distributed by
    # organisation_id keeps an account's lock and its unique references on one node.
    op.execute(
        """
        CREATE TABLE accounts (
            organisation_id uuid NOT NULL,
            kind text NOT NULL CHECK (kind IN ('credits', 'grants', 'usage')),
            balance bigint NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (organisation_id, kind),
            CONSTRAINT credits_never_negative CHECK (kind <> 'credits' OR balance >= 0)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE transactions (
            organisation_id uuid NOT NULL,
            id uuid NOT NULL,
            kind text NOT NULL CHECK (kind IN ('grant', 'charge', 'refund')),
            amount bigint NOT NULL CHECK (amount > 0),
            reason text NOT NULL,
            reference text NOT NULL,
            fingerprint text NOT NULL,
            reverses_id uuid,
            user_id uuid,
            request_id text NOT NULL,
            balance_after bigint NOT NULL,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (organisation_id, id),
            UNIQUE (organisation_id, reference),
            UNIQUE (organisation_id, reverses_id),
            FOREIGN KEY (organisation_id, reverses_id)
                REFERENCES transactions (organisation_id, id),
            CHECK ((kind = 'refund') = (reverses_id IS NOT NULL))
        )
        """
    )
    op.execute(
        "CREATE INDEX transactions_newest_first "
        "ON transactions (organisation_id, created_at DESC, id DESC)"
    )
    op.execute(
        """
        CREATE TABLE entries (
            organisation_id uuid NOT NULL,
            transaction_id uuid NOT NULL,
            account_kind text NOT NULL,
            amount bigint NOT NULL CHECK (amount <> 0),
            PRIMARY KEY (organisation_id, transaction_id, account_kind),
            FOREIGN KEY (organisation_id, transaction_id)
                REFERENCES transactions (organisation_id, id),
            FOREIGN KEY (organisation_id, account_kind)
                REFERENCES accounts (organisation_id, kind)
        )
        """
    )

    # The database itself refuses a transaction whose entries do not sum to zero,
    # checked at commit so that all of a transaction's entries are in place.
    op.execute(
        """
        CREATE FUNCTION entries_balance() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF (SELECT coalesce(sum(amount), 0) <> 0 OR count(*) < 2 FROM entries
                WHERE organisation_id = NEW.organisation_id
                  AND transaction_id = NEW.transaction_id) THEN
                RAISE EXCEPTION 'entries of transaction % do not sum to zero',
                    NEW.transaction_id USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE CONSTRAINT TRIGGER entries_sum_to_zero
        AFTER INSERT ON entries DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION entries_balance()
        """
    )
    # Entries and transactions are append-only, for the owner too.
    op.execute(
        """
        CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in ("entries", "transactions"):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION append_only()"
        )

    op.execute(f"GRANT SELECT, INSERT ON entries, transactions TO {APP_ROLE}")
    op.execute(f"GRANT SELECT, INSERT, UPDATE ON accounts TO {APP_ROLE}")
