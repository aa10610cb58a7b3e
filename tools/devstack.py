"""Start and stop a whole Tollgate stack on this machine, by process id.

``python tools/devstack.py up`` prepares the database, starts the development
identity provider, the three services, the worker and Envoy in the background, and
returns once ``GET /health`` answers 200. ``down`` stops what ``up`` started. The test
suite uses the same code with its own ports, database and Redis stream, so it never
disturbs a stack someone is using.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVICES = ("identity", "ledger", "jobs")


@dataclass(frozen=True)
class StackConfig:
    """Where one stack listens and keeps its state."""

    name: str = "dev"
    gateway_port: int = 8000
    admin_port: int = 9901
    grpc_base_port: int = 50051
    metrics_base_port: int = 9101
    oidc_port: int = 9400
    database: str = "tollgate"
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_stream: str = "tollgate:jobs"
    admin_dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # Instances of each service and of the worker; replica r listens 100 r higher.
    replicas: int = 1
    # Test stacks start from an empty database, whatever an earlier run left there.
    fresh_database: bool = False
    # When set, services reach Postgres through a PgBouncer (transaction pooling)
    # on this port, with this many server connections per role.
    pgbouncer_port: int = 0
    pgbouncer_pool_size: int = 20
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        """Pids, logs and rendered config of this stack."""
        return ROOT / ".run" / self.name

    @property
    def gateway_url(self) -> str:
        """The public base URL."""
        return f"http://localhost:{self.gateway_port}"

    @property
    def oidc_issuer(self) -> str:
        """The development provider's issuer (its host must match exactly)."""
        return os.environ.get("TOLLGATE_OIDC_ISSUER") or (
            f"http://127.0.0.1:{self.oidc_port}"
        )

    def grpc_target(self, service: str, replica: int = 0) -> str:
        """host:port of one instance of a service's gRPC server."""
        port = self.grpc_base_port + SERVICES.index(service) + 100 * replica
        return f"127.0.0.1:{port}"

    def grpc_targets(self, service: str) -> list[str]:
        """host:port of every instance of a service."""
        return [self.grpc_target(service, r) for r in range(self.replicas)]

    def client_target(self, service: str) -> str:
        """A gRPC target naming every instance, balanced round robin by clients."""
        return "ipv4:" + ",".join(self.grpc_targets(service))

    def database_url(self, role: str) -> str:
        """An asyncpg URL for one of the roles, straight to Postgres."""
        return f"postgresql+asyncpg://{role}@127.0.0.1:5432/{self.database}"

    def service_database_url(self, role: str) -> str:
        """The URL a service uses: through PgBouncer when the stack has one."""
        if not self.pgbouncer_port:
            return self.database_url(role)
        host = f"127.0.0.1:{self.pgbouncer_port}"
        return f"postgresql+asyncpg://{role}@{host}/{self.database}"


class Stack:
    """The processes of one stack."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.pids = config.run_dir / "pids"
        self.logs = config.run_dir / "logs"

    def up(self, timeout: float = 90.0, prepare: bool = True) -> None:
        """Prepare the database (unless told not to), start all, wait for health."""
        self.pids.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        if prepare:
            self.prepare_database()
        if self.config.pgbouncer_port:
            self.start_pgbouncer()
        if "TOLLGATE_OIDC_ISSUER" not in os.environ:
            self.start(
                "oidc",
                [
                    str(VENV_BIN / "oidc-provider-mock"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.config.oidc_port),
                ],
            )
        for replica in range(self.config.replicas):
            for service in SERVICES:
                self.start_service(service, replica)
            self.start_worker(replica)
        self.start_gateway()
        self.wait_healthy(timeout)

    def prepare_database(self) -> None:
        """Create schemas and roles, then migrate each service; idempotent."""
        fresh = ["--fresh"] if self.config.fresh_database else []
        _run(
            [
                sys.executable,
                str(ROOT / "tools" / "db_setup.py"),
                "--admin-dsn",
                self.config.admin_dsn,
                "--database",
                self.config.database,
                *fresh,
            ]
        )
        for service in SERVICES:
            _run(
                [
                    str(VENV_BIN / "alembic"),
                    "-c",
                    str(ROOT / "services" / service / "alembic.ini"),
                    "-x",
                    f"url={self.config.database_url(f'tollgate_{service}_owner')}",
                    "upgrade",
                    "head",
                ]
            )

    def environment(self, service: str, replica: int = 0) -> dict[str, str]:
        """The settings one process of this stack gets."""
        index = SERVICES.index(service) if service in SERVICES else 3
        metrics = self.config.metrics_base_port + index + 100 * replica
        env = {
            **os.environ,
            "TOLLGATE_GRPC_LISTEN": self.config.grpc_target(service, replica)
            if service in SERVICES
            else "127.0.0.1:0",
            "TOLLGATE_METRICS_PORT": str(metrics),
            "TOLLGATE_DATABASE_URL": self.config.service_database_url(
                f"tollgate_{'jobs' if service == 'worker' else service}"
            ),
            "TOLLGATE_SYSTEM_DATABASE_URL": self.config.service_database_url(
                f"tollgate_{'jobs' if service == 'worker' else service}_system"
            ),
            "TOLLGATE_DATABASE_BEHIND_POOLER": str(bool(self.config.pgbouncer_port)),
            "TOLLGATE_IDENTITY_TARGET": self.config.client_target("identity"),
            "TOLLGATE_LEDGER_TARGET": self.config.client_target("ledger"),
            "TOLLGATE_JOBS_TARGET": self.config.client_target("jobs"),
            "TOLLGATE_REDIS_URL": self.config.redis_url,
            "TOLLGATE_QUEUE_STREAM": self.config.queue_stream,
            "TOLLGATE_OIDC_ISSUER": self.config.oidc_issuer,
            "TOLLGATE_OIDC_REDIRECT_URI": f"{self.config.gateway_url}/auth/callback",
            "TOLLGATE_SIGNING_KEYS_DIR": str(ROOT / ".dev" / "keys" / self.config.name),
        }
        env.update(self.config.extra_env)
        return env

    def start_service(self, service: str, replica: int = 0) -> None:
        """Start one instance of a gRPC service."""
        module = f"tollgate_{service}.entrypoints.main"
        self.start(
            _name(service, replica),
            [sys.executable, "-m", module],
            self.environment(service, replica),
        )

    def start_worker(self, replica: int = 0) -> None:
        """Start one Taskiq worker process."""
        self.start(
            _name("worker", replica),
            [
                str(VENV_BIN / "taskiq"),
                "worker",
                "tollgate_jobs.entrypoints.worker:broker",
                "--workers",
                "1",
                "--ack-type",
                "when_executed",
                "--no-configure-logging",
                "--shutdown-timeout",
                "10",
            ],
            self.environment("worker", replica),
        )

    def start_pgbouncer(self) -> None:
        """Start a PgBouncer in transaction pooling mode in front of Postgres."""
        if self.running("pgbouncer"):
            return
        roles = [
            f"tollgate_{service}{suffix}"
            for service in SERVICES
            for suffix in ("", "_system", "_owner")
        ] + ["postgres"]
        users = self.config.run_dir / "pgbouncer-users.txt"
        users.write_text("".join(f'"{role}" ""\n' for role in roles))
        ini = self.config.run_dir / "pgbouncer.ini"
        ini.write_text(
            PGBOUNCER_INI.format(
                database=self.config.database,
                port=self.config.pgbouncer_port,
                users=users,
                pool_size=self.config.pgbouncer_pool_size,
            )
        )
        # PgBouncer refuses to run as root; the postgres account is on the machine.
        user = ["-u", "postgres"] if os.geteuid() == 0 else []
        self.start("pgbouncer", ["/usr/sbin/pgbouncer", *user, str(ini)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                socket.create_connection(
                    ("127.0.0.1", self.config.pgbouncer_port), 1
                ).close()
                return
            time.sleep(0.1)
        raise SystemExit("pgbouncer did not start")

    def start_gateway(self) -> None:
        """Render Envoy's configuration and start it."""
        config = self.config.run_dir / "envoy.yaml"
        _run(
            [
                sys.executable,
                str(ROOT / "gateway" / "render.py"),
                "--out",
                str(config),
                "--listen-port",
                str(self.config.gateway_port),
                "--admin-port",
                str(self.config.admin_port),
                "--identity",
                ",".join(self.config.grpc_targets("identity")),
                "--ledger",
                ",".join(self.config.grpc_targets("ledger")),
                "--jobs",
                ",".join(self.config.grpc_targets("jobs")),
                "--descriptor",
                str(ROOT / "build" / "tollgate.pb"),
            ]
        )
        self.start(
            "envoy",
            [
                str(VENV_BIN / "envoy"),
                "-c",
                str(config),
                "--log-level",
                "warn",
                "--disable-hot-restart",
            ],
        )

    def start(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> None:
        """Start a process in its own session, remembering its pid."""
        if self.running(name):
            raise SystemExit(f"{name} of stack {self.config.name} is already running")
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env or dict(os.environ),
            cwd=ROOT,
            start_new_session=True,
        )
        (self.pids / f"{name}.pid").write_text(str(process.pid))

    def running(self, name: str) -> bool:
        """Whether the process started under this name is alive."""
        pid = self._pid(name)
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, name: str, sig: int = signal.SIGTERM, wait: float = 15.0) -> None:
        """Signal a process group and wait for it to end."""
        pid = self._pid(name)
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while self.running(name) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if self.running(name):
            os.killpg(pid, signal.SIGKILL)
            _reap(pid)
        (self.pids / f"{name}.pid").unlink(missing_ok=True)

    def down(self) -> None:
        """Stop everything this stack started, gateway first."""
        started = {path.stem for path in self.pids.glob("*.pid")}
        for kind in (
            "envoy",
            "jobs",
            "worker",
            "ledger",
            "identity",
            "oidc",
            "pgbouncer",
        ):
            for name in sorted(n for n in started if n.split("-")[0] == kind):
                self.stop(name)

    def healthy(self) -> bool:
        """Whether GET /health through the gateway answers 200 now."""
        try:
            with urllib.request.urlopen(
                f"{self.config.gateway_url}/health", timeout=2
            ) as response:
                return response.status == 200
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def wait_healthy(self, timeout: float) -> None:
        """Wait for GET /health through the gateway to answer 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return
            time.sleep(0.3)
        for log in sorted(self.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- {log.name}\n" + "\n".join(tail), file=sys.stderr)
        raise SystemExit(f"stack {self.config.name} did not become healthy")

    def _pid(self, name: str) -> int | None:
        path = self.pids / f"{name}.pid"
        return int(path.read_text()) if path.exists() else None


PGBOUNCER_INI = """\
[databases]
{database} = host=127.0.0.1 port=5432 dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 1000
# A client waiting this long for a server connection is refused, which the
# services answer as a fast 503 instead of queueing without bound.
query_wait_timeout = 2
ignore_startup_parameters = extra_float_digits
# SHOW POOLS and friends, for operators and the tests (local trust only).
admin_users = postgres
"""


def _name(kind: str, replica: int) -> str:
    return kind if replica == 0 else f"{kind}-{replica}"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")


def main() -> None:
    """``up`` or ``down`` the development stack."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    parser.add_argument(
        "--replicas", type=int, default=1, help="instances of each service and worker"
    )
    parser.add_argument(
        "--pgbouncer-port", type=int, default=0, help="run PgBouncer on this port"
    )
    args = parser.parse_args()
    stack = Stack(
        StackConfig(replicas=args.replicas, pgbouncer_port=args.pgbouncer_port)
    )
    if args.command == "down":
        stack.down()
        print("stopped")
        return
    if stack.running("envoy") and stack.healthy():
        url = stack.config.gateway_url
        print(f"Tollgate is already up at {url}/ (make down stops it)")
        return
    stack.down()  # whatever a crashed earlier run left behind
    stack.up()
    url = stack.config.gateway_url
    rows = [
        ("API and console", f"{url}/"),
        ("API docs", f"{url}/docs"),
        ("health", f"{url}/health"),
        ("login", f"{url}/auth/google"),
        ("identity provider", stack.config.oidc_issuer),
        ("Envoy admin", f"http://127.0.0.1:{stack.config.admin_port}/"),
        ("logs", str(stack.logs)),
        ("a token", "make token EMAIL=you@yourco.example"),
        ("stop with", "make down"),
    ]
    print("Tollgate is up.\n" + "\n".join(f"  {k:<18} {v}" for k, v in rows))


if __name__ == "__main__":
    main()
