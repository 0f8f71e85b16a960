"""The Helm chart: it lints, renders what the operator reads, refuses bad values with the
schema's message, carries the generated CRDs, and installs into a real API server.

These tests prove what the chart hands to Kubernetes; tests/e2e/test_operator_pods.py runs
the operator from it as pods on the platform's node, tests/e2e/test_rbac.py checks its RBAC.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from kubernetes import client

from dlq_operator import __version__
from dlq_operator.monitor.sinks import WebhookSinkConfig
from dlq_operator.settings import KafkaSettings, Settings
from tests.e2e.chart import CHART, CRD_NAMES, Helm, container_env, find, platform_kube_version
from tests.support import wait_for

BOOTSTRAP = "--set=kafka.bootstrapServers=kafka:9092"
CI_VALUES = sorted((CHART / "ci").glob("*.yaml"))


@pytest.fixture(scope="module")
def helm(tools_bin: Path, kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tools_bin / "helm", kubeconfig, tmp_path_factory.mktemp("helm"))


@pytest.fixture(scope="module")
def defaults(helm: Helm) -> list[dict[str, Any]]:
    """The chart rendered with nothing but the one required value."""
    return helm.template(BOOTSTRAP, "--namespace", "dlq-system")


@pytest.fixture(scope="module")
def everything(helm: Helm) -> list[dict[str, Any]]:
    """The chart rendered with every optional feature on."""
    return helm.template("--values", str(CHART / "ci" / "full-values.yaml"))


def test_chart_metadata_follows_the_package() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+", chart["version"])
    assert chart["appVersion"] == __version__


@pytest.mark.parametrize("values", CI_VALUES, ids=[path.stem for path in CI_VALUES])
@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_lint_passes(helm: Helm, values: Path, strict: bool) -> None:
    args = ["lint", str(CHART), "--values", str(values), "--kube-version", platform_kube_version()]
    helm.run(*args, *(["--strict"] if strict else []))


def test_every_values_key_has_a_comment_above_it() -> None:
    """Each key the schema describes is documented where users read it. Keys inside
    free-form Kubernetes objects (resources, securityContext, ...) are the API's own."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    lines = (CHART / "values.yaml").read_text().splitlines()
    parents: list[tuple[int, dict[str, Any]]] = [(-1, schema)]
    for number, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")):
            continue
        indent = len(line) - len(line.lstrip())
        while parents[-1][0] >= indent:
            parents.pop()
        parent = parents[-1][1]
        key = stripped.split(":", 1)[0]
        if "properties" in parent:
            before = lines[number - 1].strip()
            assert before.startswith("#"), f"values.yaml:{number + 1}: {key} has no comment"
        parents.append((indent, parent.get("properties", {}).get(key, {})))


def test_defaults_render_one_secure_operator(defaults: list[dict[str, Any]]) -> None:
    assert sorted(m["kind"] for m in defaults) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
    ]
    deployment = find(defaults, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == find(defaults, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["args"] == ["run"]
    assert container["image"] == f"ghcr.io/orion/dlq-operator:{__version__}"
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    env = container_env(deployment)
    assert env["DLQ_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["DLQ_WORKER_IMAGE"] == container["image"]
    assert "DLQ_NAMESPACES" not in env
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"health": int(env["DLQ_HEALTH_PORT"]), "metrics": int(env["DLQ_METRICS_PORT"])}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    service = find(defaults, "Service")
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"


def test_operator_pod_selector_never_matches_a_retry_worker(
    defaults: list[dict[str, Any]],
) -> None:
    """Workers share app.kubernetes.io/name; a DLQ named like the release must not be
    selected by the operator's Deployment or metrics Service."""
    from dlq_operator.reconcile.workload import worker_labels

    selector = find(defaults, "Deployment")["spec"]["selector"]["matchLabels"]
    worker = worker_labels(selector["app.kubernetes.io/instance"])
    assert not selector.items() <= worker.items()


def _settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The operator's settings from the rendered environment (files are not read here)."""
    for key, value in env.items():
        if not key.endswith("_FILE"):
            monkeypatch.setenv(key, value)
    return Settings()


def test_every_variable_is_a_setting_and_parses(
    everything: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    known = {f"DLQ_{name.upper()}" for name in Settings.model_fields} | {
        f"DLQ_KAFKA_{name.upper()}" for name in KafkaSettings.model_fields
    }
    env = container_env(find(everything, "Deployment"))
    assert set(env) <= known, set(env) - known
    settings = _settings_from(env, monkeypatch)
    assert settings.namespaces == ["payments", "orders"]
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.sasl_mechanism == "SCRAM-SHA-512"
    assert settings.shared_kafka_secret == "dlq-operator-kafka"
    assert settings.topic_granted("payments", "payments.refunds")
    assert not settings.topic_granted("orders", "payments.refunds")
    assert settings.max_partitions == 24
    assert settings.worker_resources["limits"] == {"memory": "256Mi"}
    assert settings.worker_network_policy == {
        "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 9093}]}]
    }
    assert settings.worker_image == "registry.example.com/dlq-operator-worker:0.1.0"
    assert settings.kafka.request_timeout_ms == 30000
    sinks = [WebhookSinkConfig.model_validate(sink) for sink in settings.alert_sinks]
    assert [sink.kind for sink in sinks] == ["alertmanager", "slack"]
    assert sinks[1].url_file is not None and sinks[1].max_attempts == 5


def _mounted_files(deployment: dict[str, Any]) -> set[str]:
    """Paths of the Secret files the operator container sees, where a volume names them."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume["secret"] for volume in pod["volumes"]}
    return {
        str(PurePosixPath(mount["mountPath"]) / item["path"])
        for mount in pod["containers"][0]["volumeMounts"]
        for item in volumes[mount["name"]].get("items", ())
    }


def test_every_file_the_operator_reads_is_a_mounted_secret(
    everything: list[dict[str, Any]],
) -> None:
    deployment = find(everything, "Deployment")
    env = container_env(deployment)
    wanted = {value for key, value in env.items() if key.endswith("FILE")}
    wanted |= {
        sink["url_file"] for sink in json.loads(env["DLQ_ALERT_SINKS"]) if "url_file" in sink
    }
    assert wanted == {"/etc/dlq-operator/sinks/1/webhook-url"}
    assert wanted <= _mounted_files(deployment)
    # Kafka credentials are a directory: the whole Secret, whichever keys it has.
    pod = deployment["spec"]["template"]["spec"]
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    (credentials,) = [
        mount
        for mount in pod["containers"][0]["volumeMounts"]
        if mount["mountPath"] == env["DLQ_KAFKA_CREDENTIALS_DIR"]
    ]
    assert volumes[credentials["name"]]["secret"]["secretName"] == "dlq-operator-kafka"


def test_the_operator_reaches_kafka_as_its_workers_do(everything: list[dict[str, Any]]) -> None:
    """One translation of Kafka settings into a pod: the chart renders what
    ``kafka_workload`` gives the retry workers, for the same settings and Secret."""
    from dlq_operator.reconcile.workload import kafka_workload

    deployment = find(everything, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    env = container_env(deployment)
    kafka = KafkaSettings(
        bootstrap_servers="kafka-0.kafka:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
    )
    expected = kafka_workload(kafka, "dlq-operator-kafka")
    assert {k: v for k, v in env.items() if k.startswith("DLQ_KAFKA_")} == expected.env | {
        "DLQ_KAFKA_REQUEST_TIMEOUT_MS": "30000"  # the values' extraEnv
    }
    assert expected.volumes[0] in pod["volumes"]
    assert expected.mounts[0] in pod["containers"][0]["volumeMounts"]


def test_watched_namespaces_get_roles_and_nothing_namespaced_cluster_wide(
    defaults: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> None:
    cluster_wide = find(defaults, "ClusterRole")["rules"]
    roles = [m for m in everything if m["kind"] == "Role"]
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["orders", "payments"]
    bindings = [m for m in everything if m["kind"] == "RoleBinding"]
    assert len(bindings) == 2
    namespaced_rules = cluster_wide[1:]  # all but the CRD rule, which stays cluster-wide
    networking = [r for r in roles[0]["rules"] if r["apiGroups"] == ["networking.k8s.io"]]
    for role in roles:
        # The worker NetworkPolicies are on in these values, off in the defaults.
        assert [r for r in role["rules"] if r not in networking] == namespaced_rules
    assert find(everything, "ClusterRole")["rules"] == [
        cluster_wide[0],
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    ]


def test_monitoring_objects(everything: list[dict[str, Any]]) -> None:
    monitor = find(everything, "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["honorLabels"] is True
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    rules = {
        rule["alert"]: rule
        for rule in find(everything, "PrometheusRule")["spec"]["groups"][0]["rules"]
    }
    assert set(rules) == {
        "DeadLetterQueueCritical",
        "DeadLetterQueueWarning",
        "DeadLetterQueueGrowing",
        "DeadLetterQueueMonitorFailing",
    }
    assert "dlq_alert_level) >= 2" in rules["DeadLetterQueueCritical"]["expr"]
    assert "dlq_alert_level) >= 1" in rules["DeadLetterQueueWarning"]["expr"]
    assert "dlq_unresolved" in rules["DeadLetterQueueGrowing"]["expr"]
    assert "rate(dlq_check_errors_total" in rules["DeadLetterQueueMonitorFailing"]["expr"]
    assert "{{ $labels.namespace }}" in rules["DeadLetterQueueCritical"]["annotations"]["summary"]


def test_metrics_can_be_turned_off(helm: Helm) -> None:
    manifests = helm.template(BOOTSTRAP, "--set=metrics.enabled=false")
    assert "Service" not in {m["kind"] for m in manifests}
    deployment = find(manifests, "Deployment")
    assert container_env(deployment)["DLQ_METRICS_PORT"] == "0"
    ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert [port["name"] for port in ports] == ["health"]


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ((), "/kafka/bootstrapServers"),
        ((BOOTSTRAP, "--set=kafka.bootstrapServers=kafka"), "/kafka/bootstrapServers"),
        ((BOOTSTRAP, "--set=kafka.securityProtocol=TLS"), "/kafka/securityProtocol"),
        ((BOOTSTRAP, "--set=kafka.securityProtocol=SASL_SSL"), "/kafka/existingSecret"),
        ((BOOTSTRAP, "--set=kafka.bootstrapServer=kafka:9092"), "bootstrapServer"),
        ((BOOTSTRAP, "--set=healthPort=eighty"), "/healthPort"),
        ((BOOTSTRAP, "--set=monitor.intervalSeconds=0"), "/monitor/intervalSeconds"),
        ((BOOTSTRAP, "--set=watchNamespaces=payments"), "/watchNamespaces"),
        ((BOOTSTRAP, "--set=metrics.serviceMonitor.interval=often"), "/interval"),
        ((BOOTSTRAP, '--set-json=alertSinks=[{"kind":"pager","url":"http://x"}]'), "/kind"),
        (
            (
                BOOTSTRAP,
                '--set-json=alertSinks=[{"kind":"slack","url":"http://x","existingSecret":"s"}]',
            ),
            "/alertSinks/0",
        ),
    ],
    ids=[
        "no-bootstrap-servers",
        "no-port",
        "unknown-protocol",
        "sasl-without-credentials",
        "misspelt-key",
        "port-not-a-number",
        "zero-interval",
        "namespaces-not-a-list",
        "bad-duration",
        "unknown-sink-kind",
        "sink-with-two-urls",
    ],
)
def test_bad_values_fail_with_the_schema_message(
    helm: Helm, args: tuple[str, ...], complaint: str
) -> None:
    result = helm.run(
        "template",
        "dlq",
        str(CHART),
        "--kube-version",
        platform_kube_version(),
        *args,
        check=False,
    )
    assert result.returncode != 0
    assert "don't meet the specifications of the schema" in result.stderr, result.stderr
    assert complaint in result.stderr, result.stderr


def test_chart_crds_are_the_generated_ones(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "dlq_operator.api.crdgen", "--output", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    generated = {path.name: path.read_text() for path in tmp_path.glob("*.yaml")}
    shipped = {path.name: path.read_text() for path in (CHART / "crds").glob("*.yaml")}
    assert shipped == generated, (
        "run: python -m dlq_operator.api.crdgen --output charts/dlq-operator/crds"
    )
    assert {yaml.safe_load(text)["metadata"]["name"] for text in shipped.values()} == CRD_NAMES


def test_install_upgrade_uninstall_on_the_api_server(
    helm: Helm, api_client: client.ApiClient, kafka_bootstrap: str, unique: str
) -> None:
    """The rendered objects are accepted by a real API server (CRDs whether they existed
    before or not), upgrade in place, and go away with the release, CRDs excepted."""
    release, namespace = f"dlq-{unique}", f"dlq-system-{unique}"
    name = f"{release}-dlq-operator"
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    extensions = client.ApiextensionsV1Api(api_client)
    # The image is never pulled (nothing here serves it); the pods are not the point.
    helm.install(
        release,
        namespace,
        f"--set=kafka.bootstrapServers={kafka_bootstrap}",
        "--set=image.pullPolicy=Never",
    )
    try:
        status = json.loads(helm.run("status", release, "-n", namespace, "-o", "json").stdout)
        assert status["info"]["status"] == "deployed"
        deployment = apps.read_namespaced_deployment(name, namespace)
        assert deployment.spec.template.spec.service_account_name == name
        core.read_namespaced_service_account(name, namespace)
        core.read_namespaced_service(f"{name}-metrics", namespace)
        assert rbac.read_cluster_role(name).rules
        binding = rbac.read_cluster_role_binding(name)
        assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [
            ("ServiceAccount", name, namespace)
        ]
        for crd in CRD_NAMES:
            wait_for(lambda crd=crd: _established(extensions, crd), what=f"{crd} established")

        helm.run(
            "upgrade",
            release,
            str(CHART),
            "-n",
            namespace,
            "--reuse-values",
            "--set=monitor.intervalSeconds=15",
        )
        deployment = apps.read_namespaced_deployment(name, namespace)
        env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
        assert env["DLQ_MONITOR_INTERVAL_SECONDS"] == "15"
        assert env["DLQ_KAFKA_BOOTSTRAP_SERVERS"] == kafka_bootstrap
    finally:
        helm.uninstall(release, namespace)
    for read in (
        lambda: apps.read_namespaced_deployment(name, namespace),
        lambda: rbac.read_cluster_role(name),
        lambda: rbac.read_cluster_role_binding(name),
    ):
        with pytest.raises(client.ApiException) as gone:
            read()
        assert gone.value.status == 404
    assert all(_established(extensions, crd) for crd in CRD_NAMES), "helm keeps crds/ CRDs"
    core.delete_namespace(namespace)


def _established(extensions: client.ApiextensionsV1Api, name: str) -> bool:
    try:
        crd = extensions.read_custom_resource_definition(name)
    except client.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])


def test_network_policies_admit_only_health_and_metrics(
    defaults: list[dict[str, Any]], everything: list[dict[str, Any]]
) -> None:
    assert "NetworkPolicy" not in {m["kind"] for m in defaults}
    assert "DLQ_WORKER_NETWORK_POLICY" not in container_env(find(defaults, "Deployment"))
    policy = find(everything, "NetworkPolicy")["spec"]
    pod = find(everything, "Deployment")["spec"]["template"]
    assert policy["podSelector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert policy["ingress"] == [{"ports": [{"port": "health"}, {"port": "metrics"}]}]
    assert policy["egress"][1]["ports"] == [{"port": 9093}]

    # The operator may keep the workers' policies, and only with the feature on.
    def networking_rules(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            rule
            for m in manifests
            if m["kind"] in ("ClusterRole", "Role")
            for rule in m["rules"]
            if "networking.k8s.io" in rule["apiGroups"]
        ]

    assert networking_rules(defaults) == []
    assert {tuple(r["verbs"]) for r in networking_rules(everything)} == {
        ("get", "create", "update", "delete")
    }
