"""The chart's Grafana dashboard and alerting rules: the rules pass `promtool test rules` (Debian's prometheus
package, installed by scripts/deps.sh), and every metric, label and label value they query is one the code exports
(Mailstream's own) or that RabbitMQ's rabbitmq_prometheus plugin serves (a real scrape of the test broker).
"""

import importlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import REGISTRY

from mailstream_common.topology import WORK_QUEUES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "mailstream"
RULES = CHART / "files" / "prometheus-rules.yaml"
DASHBOARD = CHART / "files" / "grafana-dashboard.json"
RULES_TESTS = sorted((ROOT / "deploy" / "helm" / "rules-test").glob("*.test.yaml"))
RULES_TEST = ROOT / "deploy" / "helm" / "rules-test" / "mailstream-rules.test.yaml"
SOURCES = [*ROOT.glob("services/*/src/**/*.py"), *ROOT.glob("libs/common/src/**/*.py")]

# Every module that defines Prometheus metrics (a test below keeps this list complete).
METRICS_MODULES = (
    "mailstream_common.metrics",
    "mailstream_ingest.metrics",
    "mailstream_inbox.metrics",
    "mailstream_inbox.api.middleware",
    "mailstream_inbox.webhooks.metrics",
    "mailstream_automation.metrics",
    "mailstream_domains.metrics",
    "mailstream_sender.metrics",
)
RABBITMQ_METRICS_URL = os.environ.get("RABBITMQ_PROMETHEUS_URL", "http://127.0.0.1:15692/metrics/per-object")

SELECTOR = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
METRIC_NAME = re.compile(r"\b((?:mailstream|rabbitmq)_[a-z0-9_]+)\b")


def rule_expressions() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_expressions() -> list[str]:
    def walk(panels: list[dict]) -> list[str]:
        found = []
        for panel in panels:
            found += [target["expr"] for target in panel.get("targets", [])]
            found += walk(panel.get("panels", []))
        return found

    return walk(json.loads(DASHBOARD.read_text())["panels"])


def all_expressions() -> list[str]:
    return [*rule_expressions().values(), *dashboard_expressions()]


def code_metrics() -> dict[str, set[str]]:
    """Sample name (x_total, x_bucket, ...) -> label names, for every metric the services register."""
    for module in METRICS_MODULES:
        importlib.import_module(module)
    found: dict[str, set[str]] = {}
    for collector, names in list(REGISTRY._collector_to_names.items()):
        labels = set(getattr(collector, "_labelnames", ()))
        for name in names:
            found[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return found


def selectors(expression: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    return [(name, MATCHER.findall(body)) for name, body in SELECTOR.findall(expression)]


# --- promtool ----------------------------------------------------------------------------------------------------


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: scripts/deps.sh installs Debian's prometheus package, which ships it"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_the_rules_file_is_valid_prometheus_rules():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in result.stdout


def test_promtool_unit_tests_of_every_alert_pass():
    assert RULES_TEST in RULES_TESTS
    result = promtool("test", "rules", *map(str, RULES_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULES_TESTS)
    tested = {name for path in RULES_TESTS for name in re.findall(r"alertname: (\w+)", path.read_text())}
    assert tested == set(rule_expressions()), "every alert needs promtool cases"


def test_the_promtool_tests_catch_a_broken_rule(tmp_path):
    """The same tests against a copy whose dead-letter alert waits for five letters: they must fail."""
    (tmp_path / "mailstream" / "files").mkdir(parents=True)
    broken = RULES.read_text().replace("(mailstream_dead_letters) > 0", "(mailstream_dead_letters) > 5")
    assert broken != RULES.read_text()
    (tmp_path / "mailstream" / "files" / RULES.name).write_text(broken)
    (tmp_path / "rules-test").mkdir()
    (tmp_path / "rules-test" / RULES_TEST.name).write_text(RULES_TEST.read_text())
    assert promtool("test", "rules", str(RULES_TEST)).returncode == 0  # the same tests pass on the real file
    result = promtool("test", "rules", str(tmp_path / "rules-test" / RULES_TEST.name))
    assert result.returncode != 0
    assert "MailstreamDeadLetters" in result.stdout + result.stderr


# --- names the dashboard and the rules query --------------------------------------------------------------------


def test_every_metric_defining_module_is_in_the_list():
    defining = set()
    for path in SOURCES:
        if re.search(r"^\w+ = (Counter|Gauge|Histogram|Summary)\(", path.read_text(), re.MULTILINE):
            parts = path.with_suffix("").parts
            defining.add(".".join(parts[len(parts) - parts[::-1].index("src") :]))
    assert defining == set(METRICS_MODULES)


def test_mailstream_metrics_and_labels_queried_exist_in_the_code():
    exported = code_metrics()
    used = {name for expression in all_expressions() for name in METRIC_NAME.findall(expression)}
    ours = {name for name in used if name.startswith("mailstream_")}
    assert len(ours) >= 12, f"the dashboard and rules query too few of our metrics to be checked: {ours}"
    missing = sorted(ours - set(exported))
    assert not missing, f"queried but not exported by any service: {missing}"
    for expression in all_expressions():
        for name, matchers in selectors(expression):
            if name.startswith("mailstream_"):
                unknown = {label for label, _, _ in matchers} - exported[name]
                assert not unknown, f"{name} has no label {unknown} (it has {sorted(exported[name])})"


def string_literals() -> set[str]:
    return {literal for path in SOURCES for literal in re.findall(r'"([a-z_]+)"', path.read_text())}


def test_label_values_the_rules_and_dashboard_match_are_ones_the_code_emits():
    """A typo in `reason=~"broker_unavailable|..."` would silently match nothing."""
    literals = string_literals()
    checked = 0
    for expression in all_expressions():
        for name, matchers in selectors(expression):
            if not name.startswith("mailstream_"):
                continue
            for label, _, value in matchers:
                if label in ("reason", "outcome", "purpose") and re.fullmatch(r"[a-z_]+(\|[a-z_]+)*", value):
                    for alternative in value.split("|"):
                        assert alternative in literals, f"{name}{{{label}}}: no code emits {alternative!r}"
                        checked += 1
    assert checked >= 10


def test_smtp_4xx_alert_counts_exactly_the_reasons_answered_with_a_4xx():
    source = "\n".join(
        (ROOT / "services/ingest/src/mailstream_ingest/smtp" / name).read_text() for name in ("handler.py", "server.py")
    )
    replies = dict(re.findall(r'^([A-Z_]+) = "(\d)\d\d ', source, re.MULTILINE))
    temporary = set()
    for match in re.finditer(r'REFUSED\.labels\("(\w+)"\)\.inc\(\)', source):
        reason = match.group(1)
        # Either the refusal is counted by the reply's own text (server.py: `if text.startswith("552")`) ...
        if judged := re.findall(r'startswith\("(\d)\d\d', source[max(0, match.start() - 120) : match.start()]):
            first_digit = judged[-1]
        else:  # ... or the handler returns or pushes a reply constant right after counting it.
            reply = re.search(r"(?:return|push\()\s*([A-Z_]+)", source[match.end() : match.end() + 600])
            assert reply and reply.group(1) in replies, f"no reply found for the {reason} refusal"
            first_digit = replies[reply.group(1)]
        if first_digit == "4":
            temporary.add(reason)
    [alerted] = re.findall(r'reason=~"([^"]+)"', rule_expressions()["MailstreamSmtpTemporaryRefusals"])
    # too_many_recipients is a 452 the client brings on itself (RCPTs past the limit): deliberately left out.
    assert set(alerted.split("|")) == temporary - {"too_many_recipients"}


def test_work_queue_selector_matches_every_work_queue_and_nothing_else():
    [pattern] = set(re.findall(r'rabbitmq_queue_messages_ready\{queue=~"([^"]+)"\}', "\n".join(all_expressions())))
    regex = re.compile(pattern.replace("\\\\", "\\"))
    for spec in WORK_QUEUES:
        assert regex.fullmatch(spec.name), spec.name
        assert not regex.fullmatch(spec.dead_letter_queue)
        assert not any(regex.fullmatch(spec.retry_queue(delay)) for delay in spec.retry_delays)
    assert not regex.fullmatch("inbox.replica.4f2a")


def test_rabbitmq_metrics_queried_are_served_by_the_brokers_plugin():
    """A real scrape of the test broker's rabbitmq_prometheus plugin (scripts/deps.sh enables it)."""
    try:
        response = httpx.get(RABBITMQ_METRICS_URL, timeout=30)
    except httpx.HTTPError as exc:
        pytest.fail(f"no rabbitmq_prometheus at {RABBITMQ_METRICS_URL} ({exc}): run scripts/deps.sh")
    assert response.status_code == 200
    served: dict[str, set[str]] = {}
    for line in response.text.splitlines():
        if match := re.match(r"^([a-z_][a-z0-9_]*)\{([^}]*)\}", line):
            served.setdefault(match.group(1), set()).update(re.findall(r"(\w+)=", match.group(2)))
    used = 0
    for expression in all_expressions():
        for name, matchers in selectors(expression):
            if name.startswith("rabbitmq_"):
                assert name in served, f"{name} is not served at {RABBITMQ_METRICS_URL}"
                assert {label for label, _, _ in matchers} <= served[name]
                used += 1
    assert used >= 5
    assert {"vhost", "queue"} <= served["rabbitmq_queue_messages_ready"]


# --- the chart ---------------------------------------------------------------------------------------------------


def test_chart_includes_the_same_rules_file_and_dashboard_behind_switches_off_by_default():
    rule_template = (CHART / "templates" / "prometheusrule.yaml").read_text()
    assert '.Files.Get "files/prometheus-rules.yaml"' in rule_template
    assert "kind: PrometheusRule" in rule_template and ".Values.metrics.prometheusRule.enabled" in rule_template
    dashboard_template = (CHART / "templates" / "grafana-dashboard.yaml").read_text()
    assert '.Files.Get "files/grafana-dashboard.json"' in dashboard_template
    values = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]
    assert values["grafanaDashboard"]["enabled"] is False and values["prometheusRule"]["enabled"] is False
    assert (values["grafanaDashboard"]["label"], values["grafanaDashboard"]["labelValue"]) == ("grafana_dashboard", "1")
    assert "files/" not in (CHART / ".helmignore").read_text(), "the packaged chart must carry files/"


def test_dashboard_is_importable_grafana_json_with_unique_panels():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "mailstream-overview"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"] and panel["description"], panel["title"]
    titles = {p["title"] for p in panels}
    for wanted in (
        "Mail accepted / refused per reason",
        "250 -> stored latency",
        "Work queue depth (ready / unacked)",
        "Dead letters",
        "Delivery outcomes",
        "DKIM verification state",
        "API latency per route (p95)",
        "Consumer lag (seconds to drain)",
    ):
        assert wanted in titles
