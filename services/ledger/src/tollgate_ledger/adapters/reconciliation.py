"""Checks of every ledger invariant over the whole ledger, in one snapshot."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

# Each query returns the rows that break one invariant; an empty result is a pass.
CHECKS: dict[str, str] = {
    "transactions sum to zero with two or more entries": """
        SELECT t.organisation_id, t.id FROM transactions t
        LEFT JOIN entries e
          ON e.organisation_id = t.organisation_id AND e.transaction_id = t.id
        GROUP BY t.organisation_id, t.id
        HAVING count(e.*) < 2 OR coalesce(sum(e.amount), 0) <> 0
    """,
    "credits entry equals the transaction's signed amount": """
        SELECT t.organisation_id, t.id FROM transactions t
        JOIN entries e ON e.organisation_id = t.organisation_id
          AND e.transaction_id = t.id AND e.account_kind = 'credits'
        WHERE e.amount <> CASE t.kind WHEN 'charge' THEN -t.amount ELSE t.amount END
    """,
    "cached balance equals the entries": """
        SELECT a.organisation_id, a.balance, coalesce(sum(e.amount), 0) AS entries
        FROM accounts a
        LEFT JOIN entries e ON e.organisation_id = a.organisation_id
          AND e.account_kind = a.kind
        WHERE a.kind = 'credits'
        GROUP BY a.organisation_id, a.balance
        HAVING a.balance <> coalesce(sum(e.amount), 0)
    """,
    "no balance below zero": """
        SELECT organisation_id, balance FROM accounts
        WHERE kind = 'credits' AND balance < 0
    """,
    "each organisation's accounts sum to zero": """
        SELECT organisation_id, sum(amount) FROM entries
        GROUP BY organisation_id HAVING sum(amount) <> 0
    """,
    "refunds reverse one charge, once, in full": """
        SELECT r.organisation_id, r.id FROM transactions r
        LEFT JOIN transactions c
          ON c.organisation_id = r.organisation_id AND c.id = r.reverses_id
        WHERE r.kind = 'refund'
          AND (c.id IS NULL OR c.kind <> 'charge' OR c.amount <> r.amount)
        UNION ALL
        SELECT organisation_id, reverses_id FROM transactions
        WHERE kind = 'refund' GROUP BY organisation_id, reverses_id
        HAVING count(*) > 1
    """,
}


@dataclass(frozen=True, slots=True)
class Report:
    """What reconciliation found."""

    transactions: int
    organisations: int
    violations: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        """Whether every invariant holds."""
        return not any(self.violations.values())


class ReconciliationBlind(RuntimeError):
    """The connection's role is confined by row-level security and sees nothing."""


async def reconcile(engine: AsyncEngine) -> Report:
    """Run every check in one repeatable-read snapshot, over every organisation.

    The role must bypass row-level security (``tollgate_ledger_system``): through
    the policies it would see no rows and report a ledger that is trivially sound.
    """
    async with engine.connect() as connection:
        await connection.execute(
            sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        )
        bypass = await connection.execute(
            sa.text("SELECT rolbypassrls FROM pg_roles WHERE rolname = current_user")
        )
        if not bypass.scalar():
            raise ReconciliationBlind(
                "reconciliation needs a role that bypasses row-level security"
            )
        violations = {}
        for name, query in CHECKS.items():
            rows = (await connection.execute(sa.text(query))).all()
            violations[name] = [", ".join(str(v) for v in row) for row in rows]
        transactions = (
            await connection.execute(sa.text("SELECT count(*) FROM transactions"))
        ).scalar_one()
        organisations = (
            await connection.execute(
                sa.text("SELECT count(*) FROM accounts WHERE kind = 'credits'")
            )
        ).scalar_one()
    return Report(int(transactions), int(organisations), violations)
