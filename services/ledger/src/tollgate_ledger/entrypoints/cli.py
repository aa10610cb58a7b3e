"""Operator commands: ``python -m tollgate_ledger.entrypoints.cli reconcile``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from tollgate_common import db
from tollgate_common.settings import load
from tollgate_ledger.adapters.reconciliation import reconcile
from tollgate_ledger.entrypoints.settings import LedgerSettings


async def _reconcile(settings: LedgerSettings) -> int:
    engine = db.engine_for(settings, settings.system_database_url, pool_size=1)
    try:
        report = await reconcile(engine)
    finally:
        await engine.dispose()
    summary = {
        "ok": report.ok,
        "transactions": report.transactions,
        "organisations": report.organisations,
        "checks": {
            name: ("pass" if not rows else rows[:20])
            for name, rows in report.violations.items()
        },
    }
    json.dump(summary, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0 if report.ok else 1


def main() -> None:
    """Run the command named on the command line."""
    parser = argparse.ArgumentParser(prog="tollgate-ledger")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("reconcile", help="check every ledger invariant; 1 on failure")
    parser.parse_args()
    sys.exit(asyncio.run(_reconcile(load(LedgerSettings))))


if __name__ == "__main__":
    main()
