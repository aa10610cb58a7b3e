"""``make bench``: how fast Tollgate charges, next to how fast Postgres could.

Starts a stack of its own (slot "bench": gateway :28000, database tollgate_bench),
logs organisations in through the development identity provider, grants them
credits, then runs closed-loop phases of a few seconds each:

- ``POST /api/analyse`` at each concurrency, spread over many organisations and all
  on one (the hot account), each right after its ceiling: the ledger's charge
  transaction sent straight to Postgres with asyncpg (see ``ceiling.py``);
- ``POST /api/summarise``, each job polled until it has run.

It prints a table and writes the figures, with CPU time per process per phase and
each process's memory, to bench/results/. Afterwards the ledger is reconciled and the
credits that left the accounts are compared with the charges the clients saw
succeed: a benchmark that loses or invents money exits 1.

    .venv/bin/python bench/run.py [--seconds 10] [--warmup 2] [--orgs 128]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis.asyncio as redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tools"))

import ceiling  # noqa: E402
import loadgen  # noqa: E402
import procstat  # noqa: E402
import report  # noqa: E402
from devclient import Person, login  # noqa: E402
from devstack import Stack, StackConfig  # noqa: E402

from tollgate_ledger.entrypoints.settings import LedgerSettings  # noqa: E402

try:
    import uvloop
except ImportError:  # the benchmark runs on asyncio's own loop, only slower
    uvloop = None

BENCH_STACK = StackConfig(
    name="bench",
    gateway_port=28000,
    admin_port=29901,
    grpc_base_port=52051,
    metrics_base_port=29101,
    oidc_port=29400,
    database="tollgate_bench",
    queue_stream="tollgate-bench:jobs",
)
TEXT = (
    "Tollgate meters every call. Each organisation holds credits in a ledger, and "
    "every charge is a double-entry transaction. Credits are spent on analysis and "
    "on summaries. The ledger never loses credits, even under load. Summaries run "
    "in the background, on a worker that takes jobs from a queue."
)
MAX_GRANT = 1_000_000  # the most one POST /api/credits/grant may add
HOT_GRANTS = 4  # of MAX_GRANT each: the hot account pays for every hot phase
SUMMARISE_CONCURRENCY = 16
LOCK_SAMPLE_SECONDS = 0.1
SYSTEM_ROLE = "tollgate_ledger_system"


@dataclass(frozen=True)
class Account:
    """An organisation the benchmark logged its admin into."""

    organisation_id: uuid.UUID
    token: str


@dataclass(frozen=True)
class Options:
    """What the command line asked for."""

    seconds: float
    warmup: float
    orgs: int
    concurrencies: tuple[int, ...]
    keep_stack: bool
    down: bool
    out: Path
    markdown: Path | None


# Setting up: a fresh database, the stack, organisations with credits.


async def reset(config: StackConfig) -> None:
    """Drop the bench database and its job stream, so every run starts empty."""
    admin = await asyncpg.connect(config.admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{config.database}" WITH (FORCE)')
    finally:
        await admin.close()
    client = redis.Redis.from_url(config.redis_url)
    try:
        await client.delete(config.queue_stream)
    finally:
        await client.aclose()


def enrol(config: StackConfig, domain: str, grants: int) -> Account:
    """Log in the first user of a company domain (its admin) and grant credits."""
    person = Person(sub=f"admin-{domain}", email=f"admin@{domain}", name="Bench")
    token = login(config.gateway_url, config.oidc_issuer, person)["access_token"]
    with httpx.Client(
        base_url=config.gateway_url,
        headers={"authorization": f"Bearer {token}"},
        timeout=30,
    ) as api:
        me = api.get("/api/me")
        me.raise_for_status()
        for _ in range(grants):
            api.post(
                "/api/credits/grant",
                json={"amount": MAX_GRANT, "reason": "bench grant"},
            ).raise_for_status()
    return Account(uuid.UUID(me.json()["organisation"]["id"]), token)


async def enrol_all(
    config: StackConfig, count: int
) -> tuple[list[Account], list[Account]]:
    """``count`` organisations with one grant each, and the hot one with several."""
    run = uuid.uuid4().hex[:6]
    gate = asyncio.Semaphore(8)

    async def one(domain: str, grants: int) -> Account:
        async with gate:
            return await asyncio.to_thread(enrol, config, domain, grants)

    many = [one(f"bench-{run}-{i}.example", 1) for i in range(count)]
    hot = one(f"bench-{run}-hot.example", HOT_GRANTS)
    *accounts, hot_account = await asyncio.gather(*many, hot)
    return accounts, [hot_account]


# Watching the processes.


class Watcher:
    """Which pids to sample: the stack's processes, this one, and Postgres's."""

    def __init__(self, config: StackConfig, monitor: asyncpg.Connection) -> None:
        self._config = config
        self._monitor = monitor
        self.memory = procstat.MemoryLog(config.run_dir / "pids")

    async def processes(self) -> dict[int, str]:
        """pid → label, as of now."""
        pid_dir = self._config.run_dir / "pids"
        labels = {pid: name for name, pid in procstat.stack_processes(pid_dir).items()}
        labels[os.getpid()] = procstat.CLIENT
        rows = await self._monitor.fetch(
            "SELECT pid, usename, application_name, backend_type FROM pg_stat_activity"
            " WHERE pid <> pg_backend_pid() AND (datname = $1 OR datname IS NULL)",
            self._config.database,
        )
        for row in rows:
            if row["backend_type"] == "client backend":
                who = row["application_name"] or row["usename"]
                labels[row["pid"]] = f"postgres[{who}]"
            else:
                labels[row["pid"]] = "postgres[background]"
        return labels

    async def snapshot(self) -> procstat.CpuSnapshot:
        """CPU counters of every watched process."""
        return procstat.CpuSnapshot.take(time.perf_counter(), await self.processes())

    async def lock_waiters(self) -> int:
        """How many of the bench database's backends wait for a lock right now."""
        return await self._monitor.fetchval(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = $1 AND wait_event_type = 'Lock'",
            self._config.database,
        )

    async def sample_lock_waiters(self, stop: asyncio.Event) -> list[int]:
        """Lock waiters every 100 ms until ``stop`` is set."""
        samples = []
        while not stop.is_set():
            samples.append(await self.lock_waiters())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), LOCK_SAMPLE_SECONDS)
        return samples


Phase = dict[str, Any]


async def measure(
    watcher: Watcher,
    operation: loadgen.Operation,
    concurrency: int,
    options: Options,
    **labels: Any,
) -> tuple[Phase, loadgen.Window]:
    """One closed-loop phase, with what each process spent and who waited for locks.

    CPU counters are read when the window opens and after its last answer; lock
    waiters are sampled in between.
    """
    before: list[procstat.CpuSnapshot] = []
    stop = asyncio.Event()
    sampler: list[asyncio.Task[list[int]]] = []

    async def start() -> None:
        before.append(await watcher.snapshot())
        sampler.append(asyncio.create_task(watcher.sample_lock_waiters(stop)))

    window = await loadgen.closed_loop(
        operation, concurrency, options.warmup, options.seconds, start
    )
    stop.set()
    waiters = await sampler[0]
    after = await watcher.snapshot()
    watcher.memory.sample()
    cpu = procstat.cpu_use(before[0], after, os.cpu_count() or 1)
    busiest, share = cpu.busiest
    phase = {
        **labels,
        "concurrency": concurrency,
        **window.summary(),
        "cpu": cpu.as_dict(),
        "cpu_ms_per_request": cpu.per_request(len(window.latencies)),
        "lock_waiters": {
            "mean": round(sum(waiters) / max(len(waiters), 1), 2),
            "max": max(waiters, default=0),
        },
        "busiest": {"process": busiest, "core_share": round(share, 3)},
    }
    report.progress(phase)
    return phase, window


# The phases.


async def run_phases(
    config: StackConfig,
    watcher: Watcher,
    options: Options,
    spreads: dict[str, list[Account]],
    paid: loadgen.Paid,
    ceiling_charge: Callable[[str], loadgen.Operation],
) -> list[Phase]:
    """Ceiling then Tollgate for each spread and concurrency, then summarise.

    Each Tollgate phase runs right after its ceiling, so that both meet the same
    machine: other work on it comes and goes over minutes.
    """
    phases: list[Phase] = []
    for spread, accounts in spreads.items():
        tokens = [account.token for account in accounts]
        for concurrency in options.concurrencies:
            phase, _ = await measure(
                watcher,
                ceiling_charge(spread),
                concurrency,
                options,
                target="ceiling",
                endpoint="ledger charge (asyncpg)",
                spread=spread,
            )
            phases.append(phase)
            async with loadgen.http_session(config.gateway_url, concurrency) as client:
                phase, _ = await measure(
                    watcher,
                    loadgen.analyse(client, tokens, TEXT, paid),
                    concurrency,
                    options,
                    target="tollgate",
                    endpoint="/api/analyse",
                    spread=spread,
                )
            phases.append(phase)

    tokens = [account.token for account in spreads["many"]]
    times = loadgen.SummariseTimes()
    async with loadgen.http_session(
        config.gateway_url, SUMMARISE_CONCURRENCY
    ) as client:
        phase, window = await measure(
            watcher,
            loadgen.summarise(client, tokens, TEXT, paid, times),
            SUMMARISE_CONCURRENCY,
            options,
            target="tollgate",
            endpoint="/api/summarise",
            spread="many",
        )
    phase["submit"] = times.within(window)
    phases.append(phase)
    return phases


# Checking the money.


async def ledger_view(
    dsn: str, organisations: Sequence[uuid.UUID]
) -> dict[str, dict[str, int]]:
    """Per kind, the count and sum of the organisations' ledger transactions, and
    the total balance of their credits accounts summed from the entries."""
    db = await asyncpg.connect(dsn)
    try:
        balance = await db.fetchval(
            "SELECT coalesce(sum(amount), 0) FROM entries "
            "WHERE account_kind = 'credits' AND organisation_id = ANY($1::uuid[])",
            list(organisations),
        )
        rows = await db.fetch(
            "SELECT kind, count(*) AS n, coalesce(sum(amount), 0) AS amount "
            "FROM transactions WHERE organisation_id = ANY($1::uuid[]) GROUP BY kind",
            list(organisations),
        )
    finally:
        await db.close()
    view = {row["kind"]: {"count": row["n"], "amount": row["amount"]} for row in rows}
    return {"balance": {"total": int(balance)}, **view}


def reconcile_ledger(config: StackConfig) -> dict[str, Any]:
    """``python -m tollgate_ledger.entrypoints.cli reconcile`` on the bench ledger.

    The command reads the ledger as the role row-level security does not confine
    (TOLLGATE_SYSTEM_DATABASE_URL) where the ledger has one, else as the service's.
    """
    result = subprocess.run(
        [sys.executable, "-m", "tollgate_ledger.entrypoints.cli", "reconcile"],
        env={
            **os.environ,
            "TOLLGATE_DATABASE_URL": config.database_url("tollgate_ledger"),
            "TOLLGATE_SYSTEM_DATABASE_URL": config.database_url(SYSTEM_ROLE),
        },
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    try:
        summary = json.loads(result.stdout)
    except json.JSONDecodeError:
        summary = {"output": result.stdout[-2000:], "stderr": result.stderr[-2000:]}
    return {"exit_code": result.returncode, **summary}


def tollgate_money(
    before: dict[str, Any], after: dict[str, Any], paid: loadgen.Paid
) -> dict[str, Any]:
    """Credits that left the accounts against what the clients were answered."""

    def delta(kind: str, what: str) -> int:
        return after.get(kind, {}).get(what, 0) - before.get(kind, {}).get(what, 0)

    spent = before["balance"]["total"] - after["balance"]["total"]
    expected = paid.expected_spend
    charges = delta("charge", "count")
    expected_charges = paid.analyse_ok + paid.summarise_accepted
    return {
        "credits_left_accounts": spent,
        "credits_the_clients_were_charged": expected,
        "ledger_charges": charges,
        "successful_calls": expected_charges,
        "ledger_refunds": delta("refund", "count"),
        "failed_jobs": paid.summarise_failed,
        "unfinished_jobs": paid.summarise_unfinished,
        "unanswered_requests": paid.unanswered,
        "analyse_ok": paid.analyse_ok,
        "summarise_accepted": paid.summarise_accepted,
        "ok": spent == expected
        and charges == expected_charges
        and delta("refund", "count") == paid.summarise_failed,
    }


# The whole run.


def versions(postgres: str) -> dict[str, str]:
    """Versions of what was measured and of what measured it."""
    envoy = subprocess.run(
        [str(Path(sys.executable).parent / "envoy"), "--version"],
        capture_output=True,
        text=True,
    ).stdout
    envoy_version = envoy.split("version:")[-1].strip().split("/")[1] if envoy else "?"
    found = {
        "python": platform.python_version(),
        "envoy": envoy_version,
        "postgres": postgres,
        "kernel": platform.release(),
    }
    for package in ("aiohttp", "asyncpg", "uvloop", "grpcio", "sqlalchemy"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def machine(load_at_start: Sequence[float]) -> dict[str, Any]:
    """Cores, CPU model and memory of this machine, and how busy it was."""
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name")
    ]
    meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
    return {
        "load_average_at_start": [round(load, 2) for load in load_at_start],
        "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "cpu_model": models[0] if models else "?",
        "memory_mib": int(meminfo[1]) // 1024,
    }


def worker_restarts(log: Path, since: int) -> int:
    """How often Taskiq replaced a dead worker process during the run."""
    with log.open("rb") as lines:
        lines.seek(since)
        return sum(b"is dead" in line for line in lines)


async def bench(options: Options) -> int:
    """Run everything; 0 when the money adds up and the ledger reconciles."""
    config = BENCH_STACK
    stack = Stack(config)
    await asyncio.to_thread(stack.down)
    await reset(config)
    report.say(f"starting the bench stack on {config.gateway_url}")
    await asyncio.to_thread(stack.up)
    try:
        return await measure_stack(config, options)
    finally:
        if options.keep_stack:
            report.say(f"stack left running; stop it with: {stop_hint()}")
        else:
            await asyncio.to_thread(stack.down)


def stop_hint() -> str:
    """How to stop a stack left running with --keep-stack."""
    return (
        f'{sys.executable} -c \'import sys; sys.path[:0] = ["tools", "bench"]; '
        "import run, devstack; devstack.Stack(run.BENCH_STACK).down()'"
    )


def dsn(config: StackConfig, role: str) -> str:
    """A plain asyncpg URL of the bench database for a role."""
    return f"postgresql://{role}@127.0.0.1:5432/{config.database}"


async def reader_role(monitor: asyncpg.Connection) -> str:
    """The ledger role that sees every organisation's rows.

    Where the ledger's tables have row-level security, the service's own role sees
    only the organisation a transaction names, so balances and reconciliation are
    read as ``tollgate_ledger_system``, which bypasses it.
    """
    exists = await monitor.fetchval(
        "SELECT 1 FROM pg_roles WHERE rolname = $1", SYSTEM_ROLE
    )
    return SYSTEM_ROLE if exists else "tollgate_ledger"


async def measure_stack(config: StackConfig, options: Options) -> int:
    """Everything after the stack is up: set up, measure, check, report."""
    pool_size = LedgerSettings().database_pool_size
    worker_log = config.run_dir / "logs" / "worker.log"
    worker_log_start = worker_log.stat().st_size
    load_at_start = os.getloadavg()
    if load_at_start[0] > 0.5 * (os.cpu_count() or 1):
        report.say(
            f"warning: load average {load_at_start[0]:.1f} before the run; other "
            "work on this machine will lower and scatter the figures ('others')"
        )
    report.say(f"logging in {options.orgs} organisations and the hot one")
    many, hot = await enrol_all(config, options.orgs)
    organisations = [account.organisation_id for account in [*many, *hot]]

    monitor = await asyncpg.connect(dsn(config, "postgres"))
    try:
        reader = await reader_role(monitor)
        postgres = await monitor.fetchval("SHOW server_version")
        report.say(f"creating the ceiling's tables in schema {ceiling.SCHEMA}")
        confined = await ceiling.create_schema(
            dsn(config, "postgres"),
            dsn(config, "tollgate_ledger_owner"),
            sorted({"tollgate_ledger", reader}),
        )
        scratch = {"many": [uuid.uuid4() for _ in many], "hot": [uuid.uuid4()]}
        pool = await ceiling.open_pool(dsn(config, "tollgate_ledger"), pool_size)
        try:
            await ceiling.fund(pool, scratch["many"], 10 * MAX_GRANT, confined)
            await ceiling.fund(pool, scratch["hot"], 2_000_000_000, confined)
            ceiling_before = await ceiling.balances(dsn(config, reader))
            ledger_before = await ledger_view(dsn(config, reader), organisations)

            paid = loadgen.Paid()
            charges = ceiling.Charges()
            watcher = Watcher(config, monitor)
            phases = await run_phases(
                config,
                watcher,
                options,
                {"many": many, "hot": hot},
                paid,
                lambda spread: ceiling.charge(pool, scratch[spread], charges, confined),
            )

            ledger_after = await ledger_view(dsn(config, reader), organisations)
            ceiling_after = await ceiling.balances(dsn(config, reader))
        finally:
            await pool.close()
    finally:
        await monitor.close()

    report.say("reconciling")
    money = tollgate_money(ledger_before, ledger_after, paid)
    money["reconcile"] = await asyncio.to_thread(reconcile_ledger, config)
    ceiling_spent = sum(ceiling_before.values()) - sum(ceiling_after.values())
    scratch_report = await ceiling.reconcile_schema(config.database_url(reader))
    ceiling_money = {
        "credits_left_accounts": ceiling_spent,
        "committed_charges": charges.committed,
        "unknown_outcomes": charges.unknown,
        "reconciled": scratch_report.ok,
        "ok": ceiling_spent == loadgen.ANALYSE_PRICE * charges.committed
        and scratch_report.ok,
    }

    results = {
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(load_at_start),
        "versions": versions(postgres),
        "settings": {
            "seconds_per_phase": options.seconds,
            "warmup_seconds": options.warmup,
            "organisations": options.orgs,
            "concurrencies": list(options.concurrencies),
            "ledger_pool_size": pool_size,
            "ceiling_pool_size": pool_size,
            "ceiling_row_level_security": confined,
            "event_loop": "uvloop" if uvloop else "asyncio",
            "text_characters": len(TEXT),
        },
        "phases": phases,
        "memory": watcher.memory.as_dict(),
        "worker_restarts": worker_restarts(worker_log, worker_log_start),
        "money": {"tollgate": money, "ceiling": ceiling_money},
    }
    results["ratios"] = report.ratios(phases)
    results["targets"] = report.targets(results)
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(results, indent=2) + "\n")

    report.table(results)
    report.say(f"results written to {options.out}")
    ok = money["ok"] and money["reconcile"]["exit_code"] == 0 and ceiling_money["ok"]
    if not ok:
        report.say("MONEY CHECK FAILED: see 'money' above and in the JSON")
    return 0 if ok else 1


def parse(argv: Sequence[str] | None = None) -> Options:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured/phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured/phase")
    parser.add_argument("--orgs", type=int, default=128, help="for the many-org runs")
    parser.add_argument("--concurrency", default="1,16,64", help="comma-separated")
    parser.add_argument("--keep-stack", action="store_true", help="leave it running")
    parser.add_argument("--down", action="store_true", help="stop a kept stack")
    parser.add_argument("--out", type=Path, help="JSON file (default bench/results/)")
    parser.add_argument(
        "--markdown", type=Path, help="print a results file as Markdown, run nothing"
    )
    args = parser.parse_args(argv)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Options(
        seconds=args.seconds,
        warmup=args.warmup,
        orgs=args.orgs,
        concurrencies=tuple(int(c) for c in args.concurrency.split(",")),
        keep_stack=args.keep_stack,
        down=args.down,
        out=(args.out or HERE / "results" / f"bench-{stamp}.json").resolve(),
        markdown=args.markdown,
    )


def main() -> None:
    """Parse, run on uvloop when it is installed, exit with the money check."""
    options = parse()
    if options.markdown:
        print(report.markdown(json.loads(options.markdown.read_text())))
        return
    if options.down:
        Stack(BENCH_STACK).down()
        return
    runner: Callable[[Awaitable[int]], int] = uvloop.run if uvloop else asyncio.run
    sys.exit(runner(bench(options)))


if __name__ == "__main__":
    main()
