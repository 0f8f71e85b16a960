"""The chart's alert rules under promtool, and the CloudWatch example against the chart.

Tool runs, not pure logic, so not under tests/unit; yet no platform: the pinned helm
renders the chart offline (``helm template`` asks no cluster), the pinned promtool
(``hack/build-tools.sh promtool``) checks the rules and runs the unit tests of
tests/alerts/ on the series they give, and cfn-lint checks the CloudFormation alarm. A
missing tool fails these tests; it never skips them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from dlq_operator.monitor.alerts import AlertLevel
from dlq_operator.monitor.depth import DepthFigures
from dlq_operator.monitor.metrics import MonitorMetrics
from local_platform import Tools
from tests.e2e.chart import ROOT, Helm, find

ALERT_TESTS = sorted((ROOT / "tests" / "alerts").glob("*.test.yaml"))
RULE_FILE = "dlq-operator.rules.yaml"  # what the test files' rule_files name
CLOUDWATCH = ROOT / "examples" / "cloudwatch"
BOOTSTRAP = "--set=kafka.bootstrapServers=kafka:9092"


def built(name: str) -> Path:
    """A tool that hack/build-tools.sh builds into the cache (`make tools`)."""
    path = Tools.locate().bin_dir / name
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run `bash hack/build-tools.sh {name}`", pytrace=False)
    return path


def run(*command: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    home = tmp_path_factory.mktemp("helm")
    return Helm(built("helm"), home / "no-cluster.kubeconfig", home)


@pytest.fixture(scope="module")
def promtool() -> Path:
    return built("promtool")


@pytest.fixture(scope="module")
def rule_groups(helm: Helm) -> list[dict[str, Any]]:
    """The PrometheusRule's groups, rendered with the chart's default values."""
    manifests = helm.template(BOOTSTRAP, "--set=metrics.prometheusRule.enabled=true")
    groups: list[dict[str, Any]] = find(manifests, "PrometheusRule")["spec"]["groups"]
    return groups


@pytest.fixture(scope="module")
def rules_dir(rule_groups: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered rules as a Prometheus rule file, next to copies of the test files."""
    directory = tmp_path_factory.mktemp("alerts")
    (directory / RULE_FILE).write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
    for path in ALERT_TESTS:
        shutil.copy(path, directory / path.name)
    return directory


def test_promtool_is_the_pinned_release(promtool: Path) -> None:
    """PROMETHEUS_VERSION is the Go module tag v0.3AB.C of Prometheus 3.AB.C."""
    pinned = dict(
        line.split("=", 1)
        for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )["PROMETHEUS_VERSION"]
    minor, patch = re.fullmatch(r"v0\.3(\d\d)\.(\d+)", pinned).groups()  # type: ignore[union-attr]
    result = run(promtool, "--version")
    assert result.returncode == 0, result.stderr
    assert f"promtool, version 3.{int(minor)}.{patch} " in result.stdout


def test_the_rendered_rules_are_valid(
    promtool: Path, rules_dir: Path, rule_groups: list[dict[str, Any]]
) -> None:
    result = run(promtool, "check", "rules", RULE_FILE, cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    count = sum(len(group["rules"]) for group in rule_groups)
    assert f"SUCCESS: {count} rules found" in result.stdout, result.stdout


@pytest.mark.parametrize("test_file", ALERT_TESTS, ids=[path.name for path in ALERT_TESTS])
def test_the_alerts_fire_and_stay_quiet_as_the_tests_say(
    promtool: Path, rules_dir: Path, test_file: Path
) -> None:
    result = run(promtool, "test", "rules", test_file.name, cwd=rules_dir)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "FAILED" not in result.stdout, result.stdout


def test_every_alert_is_tested_firing_and_quiet(rule_groups: list[dict[str, Any]]) -> None:
    """A new alert without promtool tests fails here."""
    assert ALERT_TESTS, "no promtool tests in tests/alerts/"
    alerts = {rule["alert"] for group in rule_groups for rule in group["rules"] if "alert" in rule}
    cases = [
        case
        for path in ALERT_TESTS
        for group in yaml.safe_load(path.read_text())["tests"]
        for case in group.get("alert_rule_test", [])
    ]
    assert {case["alertname"] for case in cases if case.get("exp_alerts")} == alerts
    assert {case["alertname"] for case in cases if not case.get("exp_alerts")} == alerts


# -- examples/cloudwatch -------------------------------------------------------------------


class _CloudFormationLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short intrinsic functions (!Ref, !Sub, ...)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node)
    else:
        value = loader.construct_mapping(node)  # type: ignore[arg-type]
    return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def alarm_template() -> dict[str, Any]:
    return yaml.load((CLOUDWATCH / "alarm.yaml").read_text(), Loader=_CloudFormationLoader)


def agent_config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads((CLOUDWATCH / "cwagentconfig.json").read_text())
    return config


def scrape_job() -> dict[str, Any]:
    (job,) = yaml.safe_load((CLOUDWATCH / "prometheus.yaml").read_text())["scrape_configs"]
    return job


def test_the_alarm_passes_cfn_lint() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    if not cfn_lint.exists():
        pytest.fail("cfn-lint is missing: install the dev extras (make venv)", pytrace=False)
    result = run(cfn_lint, CLOUDWATCH / "alarm.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_scrape_config_is_valid_prometheus_config(promtool: Path) -> None:
    result = run(promtool, "check", "config", "--syntax-only", CLOUDWATCH / "prometheus.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "values",
    [
        (),
        ("--set=metrics.port=9400", "--set=metrics.service.port=8443"),
    ],
    ids=["defaults", "other-ports"],
)
@pytest.mark.parametrize("release", ["dlq", "payments-dlq"])
def test_the_scrape_config_finds_what_the_chart_exposes(
    helm: Helm, values: tuple[str, ...], release: str
) -> None:
    """The keep rule selects the chart's metrics Service by its labels and port name, on
    the path the chart's ServiceMonitor scrapes, whatever the release and ports."""
    manifests = helm.template(
        BOOTSTRAP, "--set=metrics.serviceMonitor.enabled=true", *values, release=release
    )
    service = find(manifests, "Service")
    (endpoint,) = find(manifests, "ServiceMonitor")["spec"]["endpoints"]
    job = scrape_job()
    assert job["metrics_path"] == endpoint["path"]
    assert job["honor_labels"] is endpoint["honorLabels"] is True
    (sd,) = job["kubernetes_sd_configs"]
    assert sd["role"] == "endpoints"
    (keep,) = [rule for rule in job["relabel_configs"] if rule["action"] == "keep"]
    meta = {
        f"__meta_kubernetes_service_label_{re.sub(r'[^a-zA-Z0-9_]', '_', key)}": value
        for key, value in service["metadata"]["labels"].items()
    }
    for port in service["spec"]["ports"]:
        meta["__meta_kubernetes_endpoint_port_name"] = port["name"]
        joined = ";".join(meta.get(label, "") for label in keep["source_labels"])
        matches = re.fullmatch(keep["regex"], joined) is not None
        assert matches is (port["name"] == endpoint["port"]), (port, joined)
    # The Endpoints port is the Service port, which targets the container port by name.
    deployment = find(manifests, "Deployment")
    container_ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    (service_port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
    assert service_port["targetPort"] in {p["name"] for p in container_ports}


def test_the_agent_config_uses_only_documented_fields() -> None:
    """The fields of logs.metrics_collected.prometheus in the CloudWatch agent's
    configuration schema; no schema of the agent is on PyPI to validate with."""
    config = agent_config()
    assert set(config) <= {"agent", "metrics", "logs", "traces"}
    logs = config["logs"]
    assert set(logs) <= {"metrics_collected", "force_flush_interval", "log_stream_name"}
    prometheus = logs["metrics_collected"]["prometheus"]
    assert set(prometheus) <= {
        "cluster_name",
        "log_group_name",
        "prometheus_config_path",
        "emf_processor",
        "ecs_service_discovery",
        "disable_metric_extraction",
    }
    emf = prometheus["emf_processor"]
    assert set(emf) <= {
        "metric_declaration_dedup",
        "metric_namespace",
        "metric_unit",
        "metric_declaration",
    }
    for declaration in emf["metric_declaration"]:
        assert set(declaration) <= {
            "source_labels",
            "label_matcher",
            "label_separator",
            "metric_selectors",
            "dimensions",
        }
        assert all(isinstance(names, list) for names in declaration["dimensions"])
    assert Path(prometheus["prometheus_config_path"]).name == "prometheus.yaml"


def test_the_alarm_is_the_original_design_on_the_metric_the_agent_publishes() -> None:
    """dlq-critical-<topic>: GreaterThanThreshold 50, period 60, statistic Maximum, on
    dlq_unresolved with the dimension the EMF declaration gives it, in its namespace."""
    emf = agent_config()["logs"]["metrics_collected"]["prometheus"]["emf_processor"]
    (declaration,) = emf["metric_declaration"]
    template = alarm_template()
    (alarm,) = template["Resources"].values()
    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    props = alarm["Properties"]
    assert props["AlarmName"] == {"Fn::Sub": "dlq-critical-${Topic}"}
    assert (props["ComparisonOperator"], props["Statistic"]) == ("GreaterThanThreshold", "Maximum")
    assert (props["Period"], props["EvaluationPeriods"]) == (60, 1)
    assert props["Threshold"] == {"Ref": "CriticalThreshold"}
    assert template["Parameters"]["CriticalThreshold"]["Default"] == 50
    assert props["Namespace"] == emf["metric_namespace"]
    assert any(re.fullmatch(s, props["MetricName"]) for s in declaration["metric_selectors"])
    assert [[d["Name"] for d in props["Dimensions"]]] == declaration["dimensions"]
    # The EMF declaration selects this job's series, which carry the dimension's labels.
    assert declaration["source_labels"] == ["job"]
    assert re.fullmatch(declaration["label_matcher"], scrape_job()["job_name"])
    figures = DepthFigures(
        messages=60,
        pending=55,
        parked=5,
        unresolved=60,
        inflow_per_minute=None,
        oldest_unresolved_at=None,
        oldest_unresolved_age_seconds=None,
    )
    metrics = MonitorMetrics(CollectorRegistry())
    metrics.publish_figures(
        "cw", "orders", "orders.dlq", figures, AlertLevel.CRITICAL, alerting=True
    )
    try:
        series = {"namespace": "cw", "name": "orders", "topic": "orders.dlq"}
        assert metrics.registry.get_sample_value(props["MetricName"], series) == 60
        assert {d["Name"] for d in props["Dimensions"]} <= set(series)
    finally:
        metrics.forget("cw", "orders")
