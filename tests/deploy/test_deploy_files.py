"""The deployment files agree with the code they deploy; no Docker, Kubernetes or Helm needed.

What drifts silently in a deployment is names: an environment variable a service does not read (pydantic-settings
ignores unknown ones, so a typo just falls back to a dev default), a port the probes do not listen on, a queue KEDA
watches that nobody consumes, a package the Dockerfile cannot find. These tests compare deploy/ with the services'
settings classes, the workspace manifests and the broker topology, and run the two container scripts for real.
"""

import http.server
import importlib
import inspect
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mailstream_common.settings import CommonSettings
from mailstream_common.topology import WORK_QUEUES
from tests.support.processes import free_port


def load_yaml(path: Path) -> typing.Any:
    return yaml.safe_load(path.read_text())


def load_yaml_text(text: str) -> typing.Any:
    return yaml.safe_load(text)


ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKER = DEPLOY / "docker"
COMPOSE_FILE = DEPLOY / "compose" / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "compose" / ".env.example"
CHART = DEPLOY / "helm" / "mailstream"
VALUES_FILES = [CHART / "values.yaml", *sorted((CHART / "ci").glob("*.yaml"))]

SERVICES = ("ingest", "inbox", "automation", "domains", "sender")


def settings_class(service: str) -> type[CommonSettings]:
    """The service's settings class: the `CommonSettings` subclass its `settings` module defines."""
    module = importlib.import_module(f"mailstream_{service}.settings")
    found = [
        member
        for member in vars(module).values()
        if inspect.isclass(member) and issubclass(member, CommonSettings) and member is not CommonSettings
    ]
    assert len(found) == 1, f"mailstream_{service}.settings should define one CommonSettings subclass: {found}"
    return found[0]


def setting_names(settings: type[CommonSettings]) -> set[str]:
    """Every variable the settings read: a field's alias, or each of its validation alias choices (a service's
    own `<SERVICE>_MONGODB_DATABASE` and the shared `MONGODB_DATABASE`), or its name."""
    names = set()
    for name, field in settings.model_fields.items():
        choices = getattr(field.validation_alias, "choices", None)
        if choices:
            names |= {choice for choice in choices if isinstance(choice, str) and choice.isupper()}
        else:
            names.add(field.alias or name.upper())
    return names


def setting_default(settings: type[CommonSettings], variable: str) -> object:
    return next(field.default for field in settings.model_fields.values() if field.alias == variable)


COMMON_SETTINGS = setting_names(CommonSettings)


# --- Dockerfile and its scripts ----------------------------------------------------------------------------------


def workspace_services() -> dict[str, dict]:
    """services/<name>/pyproject.toml by service name, as the Dockerfile's SERVICE build arg names them."""
    return {
        path.parent.name: tomllib.loads(path.read_text()) for path in sorted(ROOT.glob("services/*/pyproject.toml"))
    }


def test_every_workspace_service_is_one_the_image_can_build() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    services = workspace_services()
    assert set(services) == set(SERVICES)
    for service, manifest in services.items():
        # `uv sync --package mailstream-$SERVICE` and `python -m mailstream_$SERVICE` rely on this naming.
        assert manifest["project"]["name"] == f"mailstream-{service}"
        assert (ROOT / "services" / service / "src" / f"mailstream_{service}" / "__main__.py").is_file()
        assert f"COPY services/{service}/pyproject.toml services/{service}/" in dockerfile
    assert "COPY libs/common/pyproject.toml libs/common/" in dockerfile


def test_dockerfile_builds_with_uv_from_the_lock_and_runs_slim_and_unprivileged() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", dockerfile, re.MULTILINE)
    assert [name for _, name in stages] == ["uv", "build", "runtime"]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim", dockerfile, re.MULTILINE)
    # Dependencies are installed before the sources are copied, so they stay cached across code changes.
    dependency_sync = dockerfile.index("--no-install-workspace")
    assert dockerfile.index("COPY uv.lock pyproject.toml ./") < dependency_sync < dockerfile.index("COPY libs/common/ ")
    assert dockerfile.count("uv sync --frozen --no-dev") == 2
    assert dockerfile.count('--package "mailstream-${SERVICE}"') == 2
    runtime = dockerfile[dockerfile.index("AS runtime") :]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert 'ENTRYPOINT ["mailstream-entrypoint"]' in runtime
    assert "HEALTHCHECK" in runtime and "healthcheck.py" in runtime


def test_the_dockerfile_specific_ignore_file_is_the_documented_one() -> None:
    # BuildKit reads <Dockerfile>.dockerignore next to the Dockerfile; it must be (a link to) .dockerignore.
    assert (DOCKER / "Dockerfile.dockerignore").resolve() == (DOCKER / ".dockerignore").resolve()
    patterns = (DOCKER / ".dockerignore").read_text().splitlines()
    for needed in ("!uv.lock", "!deploy/docker/entrypoint.sh", "!deploy/docker/healthcheck.py", "!services/*/src/"):
        assert needed in patterns


def run_entrypoint(environment: dict[str, str], *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), *command],
        env={"PATH": os.environ["PATH"], **environment},
        capture_output=True,
        text=True,
        timeout=30,
    )


def entrypoint_listen_variables() -> dict[str, str]:
    """service -> the listen-host variable entrypoint.sh defaults to 0.0.0.0 for it."""
    script = (DOCKER / "entrypoint.sh").read_text()
    return dict(re.findall(r"^\s+(\w+)\) export (\w+)=", script, re.MULTILINE))


@pytest.mark.parametrize("service", SERVICES)
def test_entrypoint_listens_on_all_interfaces_through_real_settings(service: str) -> None:
    variable = entrypoint_listen_variables()[service]
    assert variable in setting_names(settings_class(service))

    shown = run_entrypoint({"MAILSTREAM_SERVICE": service}, "env")
    assert shown.returncode == 0, shown.stderr
    assert f"{variable}=0.0.0.0" in shown.stdout.splitlines()
    assert "OPS_HOST=0.0.0.0" in shown.stdout.splitlines()

    overridden = run_entrypoint({"MAILSTREAM_SERVICE": service, variable: "10.1.2.3"}, "env")
    assert f"{variable}=10.1.2.3" in overridden.stdout.splitlines()


def test_entrypoint_refuses_an_unknown_service() -> None:
    result = run_entrypoint({"MAILSTREAM_SERVICE": "mailer"}, "env")
    assert result.returncode == 64
    assert "unknown MAILSTREAM_SERVICE: mailer" in result.stderr


def healthcheck_module():
    sys.path.insert(0, str(DOCKER))
    try:
        return importlib.import_module("healthcheck")
    finally:
        sys.path.remove(str(DOCKER))


@pytest.mark.parametrize("service", SERVICES)
def test_healthcheck_probes_the_port_the_service_listens_on(service: str) -> None:
    variable, port = healthcheck_module().OPS_PORTS[service]
    assert setting_default(settings_class(service), variable) == port


class _OpsHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ops_server() -> Iterator[int]:
    """A real HTTP server that is alive (/healthz 200) but not ready (/readyz 503)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OpsHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def run_healthcheck(environment: dict[str, str], *args: str) -> int:
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py"), *args],
        env={"PATH": os.environ["PATH"], **environment},
        capture_output=True,
        timeout=30,
    ).returncode


def test_healthcheck_follows_the_port_variable_and_the_probe_path(ops_server: int) -> None:
    environment = {"MAILSTREAM_SERVICE": "sender", "SENDER_HTTP_PORT": str(ops_server)}
    assert run_healthcheck(environment) == 0
    assert run_healthcheck(environment, "/readyz") == 1
    assert run_healthcheck({"MAILSTREAM_SERVICE": "inbox", "INBOX_HTTP_PORT": str(ops_server)}) == 0
    # A port nobody listens on: refused, so unhealthy.
    assert run_healthcheck({"MAILSTREAM_SERVICE": "domains", "DOMAINS_HTTP_PORT": str(free_port())}) == 1
    assert run_healthcheck({"MAILSTREAM_SERVICE": "mailer"}) == 1


# --- docker compose ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


def test_compose_runs_broker_database_smarthost_and_the_five_services_with_healthchecks(compose: dict) -> None:
    services = compose["services"]
    assert {"rabbitmq", "mongo", "mailpit", *SERVICES} <= set(services)
    assert services["rabbitmq"]["image"].startswith("rabbitmq:") and "management" in services["rabbitmq"]["image"]
    assert services["mongo"]["image"] == "mongo:7"
    for name, service in services.items():
        assert service["healthcheck"]["test"][0] == "CMD", name
    for name in SERVICES:
        build = services[name]["build"]
        assert (COMPOSE_FILE.parent / build["context"]).resolve() == ROOT
        assert build["dockerfile"] == "deploy/docker/Dockerfile"
        assert build["args"] == {"SERVICE": name}
        assert services[name]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
        assert services[name]["depends_on"]["mongo"] == {"condition": "service_healthy"}


def test_compose_waits_only_on_declared_services_and_publishes_smtp_and_the_gateway(compose: dict) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on undeclared {dependency}"
            assert condition == {"condition": "service_healthy"}
    assert services["ingest"]["ports"] == ["2525:2525"]
    assert services["inbox"]["ports"] == ["8000:8000"]
    assert services["sender"]["environment"]["SENDER_SMTP_HOST"] == "${SENDER_SMTP_HOST:-mailpit}"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_sets_only_real_settings_of_each_service(compose: dict, service: str) -> None:
    environment = compose["services"][service]["environment"]
    unknown = set(environment) - setting_names(settings_class(service))
    assert not unknown, f"compose sets variables {service} does not read: {sorted(unknown)}"


def test_compose_reads_every_secret_from_the_documented_env_file(compose: dict) -> None:
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = ENV_EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*(\w+)=", example, re.MULTILINE))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    set_in_example = set(re.findall(r"^(\w+)=", example, re.MULTILINE))
    assert required <= set_in_example, f"required but not set in .env.example: {sorted(required - set_in_example)}"
    assert {
        "MAILSTREAM_GATEWAY_TOKEN",
        "MAILSTREAM_GATEWAY_TOKEN_SHA256",
        "MAILSTREAM_SENDER_TOKEN",
        "MAILSTREAM_SENDER_TOKEN_SHA256",
        "MAILSTREAM_VERP_SECRET",
        "DOMAINS_KEY_ENCRYPTION_KEY",
    } <= required


# --- Helm chart --------------------------------------------------------------------------------------------------

HELPERS = (CHART / "templates" / "_helpers.tpl").read_text()


def helper_body(name: str) -> str:
    match = re.search(
        r'\{\{-? define "' + re.escape(name) + r'" -?\}\}(.*?)\{\{-? end \}\}\n\n', HELPERS + "\n\n", re.S
    )
    assert match, f"no define {name} in _helpers.tpl"
    return match.group(1)


def helper_env_names(name: str) -> set[str]:
    """Variable names a helper's env list sets, following the helpers it includes."""
    body = helper_body(name)
    names = set(re.findall(r"^\s*- name: ([A-Z][A-Z0-9_]*)\s*$", body, re.MULTILINE))
    for included in re.findall(r'include "(mailstream\.[\w.]+Env)"', body):
        names |= helper_env_names(included)
    names |= set(re.findall(r'include "mailstream\.secretEnv" \(list \. "(\w+)"', body))
    return names


def chart_components() -> dict:
    return load_yaml_text(helper_body("mailstream.components"))


def test_chart_has_every_template_the_platform_needs() -> None:
    chart = load_yaml(CHART / "Chart.yaml")
    assert chart["apiVersion"] == "v2" and chart["name"] == "mailstream"
    templates = {path.name for path in (CHART / "templates").iterdir()}
    assert {
        "_helpers.tpl",
        "NOTES.txt",
        "deployments.yaml",
        "services.yaml",
        "ingress.yaml",
        "secret.yaml",
        "configmap.yaml",
        "autoscaling.yaml",
        "pdb.yaml",
        "servicemonitor.yaml",
        "networkpolicy.yaml",
    } <= templates
    service_names = helper_body("mailstream.serviceNames").split()
    assert sorted(service_names) == sorted(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_chart_probes_and_env_use_each_service_own_port_and_settings(service: str) -> None:
    settings = settings_class(service)
    names = setting_names(settings)
    component = chart_components()[service]
    assert setting_default(settings, component["httpPortEnv"]) == component["httpPort"]
    assert component["httpHostEnv"] in names
    chart_sets = helper_env_names(f"mailstream.env.{service}")
    deployments = (CHART / "templates" / "deployments.yaml").read_text()
    chart_sets |= set(re.findall(r"^\s*- name: ([A-Z][A-Z0-9_]*)\s*$", deployments, re.MULTILINE))
    chart_sets |= set(re.findall(r'secretEnv" \(list \$ "(\w+)"', deployments))
    assert chart_sets, "no variables found: has the template layout changed?"
    unknown = chart_sets - names
    assert not unknown, f"the chart sets variables {service} does not read: {sorted(unknown)}"


def test_chart_split_workloads_run_roles_their_service_knows() -> None:
    workloads = helper_body("mailstream.workloads")
    values = load_yaml(CHART / "values.yaml")
    for service in ("ingest", "inbox"):
        role_variable = chart_components()[service]["roleEnv"]
        allowed = allowed_values(service, role_variable)
        lines = [line for line in workloads.splitlines() if f"service: {service}," in line]
        used = {m for line in lines for m in re.findall(r"role: (\w+)\}", line)}
        used |= {m for line in lines for m in re.findall(r'ternary "(\w+)"', line)}
        assert len(used) == 2, f"{service}: the chart's roles were not found ({lines})"
        assert used | {values[service]["role"]} <= allowed, f"{role_variable} allows only {sorted(allowed)}"


def allowed_values(service: str, variable: str) -> set[str]:
    field = next(f for f in settings_class(service).model_fields.values() if f.alias == variable)
    return set(typing.get_args(field.annotation))


def test_chart_values_schema_allows_exactly_what_the_settings_allow() -> None:
    properties = json.loads((CHART / "values.schema.json").read_text())["properties"]
    assert set(properties["smarthost"]["properties"]["tls"]["enum"]) == allowed_values("sender", "SENDER_SMTP_TLS")
    assert set(properties["ingest"]["properties"]["role"]["enum"]) == allowed_values("ingest", "INGEST_ROLE")
    assert set(properties["inbox"]["properties"]["role"]["enum"]) == allowed_values("inbox", "INBOX_ROLE")


def test_chart_config_map_holds_only_settings_every_service_reads() -> None:
    configmap = (CHART / "templates" / "configmap.yaml").read_text()
    keys = set(re.findall(r"^  ([A-Z][A-Z0-9_]*):", configmap, re.MULTILINE))
    assert {"MAILSTREAM_INBOUND_DOMAIN", "MONGODB_DATABASE", "SHUTDOWN_GRACE_SECONDS"} <= keys
    assert keys <= COMMON_SETTINGS


@pytest.mark.parametrize("values_file", VALUES_FILES, ids=lambda path: path.name)
def test_chart_values_configure_each_service_with_real_settings_and_queues(values_file: Path) -> None:
    values = load_yaml(values_file)
    queue_names = {spec.name for spec in WORK_QUEUES}
    for service in SERVICES:
        block = values.get(service, {})
        extra_env = set(block.get("env", {}))
        assert extra_env <= setting_names(settings_class(service)), f"{values_file.name}: {service}.env"
        keda = block.get("keda", {})
        if keda.get("queueName"):
            assert keda["queueName"] in queue_names, f"{service} would scale on a queue nobody consumes"


def test_chart_defaults_scale_sender_and_ingest_and_give_every_service_the_same_knobs() -> None:
    values = load_yaml(CHART / "values.yaml")
    for service in SERVICES:
        block = values[service]
        assert block["image"]["repository"] == f"mailstream-{service}"
        assert {"replicaCount", "resources", "env", "autoscaling", "keda", "pdb"} <= set(block)
    assert values["sender"]["autoscaling"]["enabled"] and values["ingest"]["autoscaling"]["enabled"]
    assert values["sender"]["keda"]["queueName"] == "sender.replies"
    assert values["ingest"]["smtpService"]["port"] == 25
    assert values["securityContext"]["readOnlyRootFilesystem"] is True
    assert values["podSecurityContext"]["runAsNonRoot"] is True
    assert values["shutdownGraceSeconds"] == setting_default(CommonSettings, "SHUTDOWN_GRACE_SECONDS")


def test_chart_pods_outlive_their_drain_and_leave_endpoints_before_it() -> None:
    deployments = (CHART / "templates" / "deployments.yaml").read_text()
    # SIGKILL comes only after the preStop sleep plus the service's own drain plus a margin.
    assert re.search(
        r"terminationGracePeriodSeconds: \{\{ add \$\.Values\.preStopSleepSeconds \$\.Values\.shutdownGraceSeconds \d+ \}\}",
        deployments,
    )
    assert 'command: ["sleep", {{ $.Values.preStopSleepSeconds | quote }}]' in deployments
    assert "path: /readyz" in deployments and "path: /healthz" in deployments


def test_each_service_has_a_database_of_its_own_in_compose_and_the_chart(compose: dict) -> None:
    """Each service owns its collections (docs/architecture.md): both deployments give each its own database,
    through the variable its settings read first."""
    databases = {}
    for service in SERVICES:
        variable = f"{service.upper()}_MONGODB_DATABASE"
        assert variable in setting_names(settings_class(service))
        databases[service] = compose["services"][service]["environment"][variable]
        assert variable in helper_env_names(f"mailstream.env.{service}")
    assert len(set(databases.values())) == len(SERVICES), databases
    assert "MONGODB_DATABASE" not in compose["services"]["inbox"]["environment"]
    values = load_yaml(CHART / "values.yaml")
    assert values["mongodb"]["databasePerService"] is True
