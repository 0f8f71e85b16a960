"""The retry worker Deployment (pure)."""

from __future__ import annotations

from dlq_operator.api import DeadLetterQueueSpec, RetryPolicySpec
from dlq_operator.api.naming import CONFIG_HASH_ANNOTATION
from dlq_operator.reconcile.workload import desired_deployment
from dlq_operator.settings import KafkaSettings, Settings, WorkerSettings

SETTINGS = Settings(kafka=KafkaSettings(bootstrap_servers="kafka:9092"), worker_image="img:1")
DLQ = DeadLetterQueueSpec.model_validate(
    {"sourceTopic": "orders", "retry": {"policyRef": {"name": "p"}, "replicas": 2}}
)


def deployment(policy: dict | None = None, dlq: DeadLetterQueueSpec = DLQ) -> dict:
    return desired_deployment(
        "shop", "orders", "uid-1", dlq, RetryPolicySpec.model_validate(policy or {}), SETTINGS
    )


def env_of(manifest: dict) -> dict[str, str]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item["value"] for item in container["env"]}


def config_hash(manifest: dict) -> str:
    return manifest["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]


def test_the_worker_runs_the_policy_it_was_given() -> None:
    manifest = deployment(
        {
            "maxRetries": 5,
            "backoff": {"initialDelay": "500ms", "maxDelay": "2m"},
            "nonRetryableErrorCodes": ["VALIDATION"],
        }
    )
    env = env_of(manifest)
    assert env["DLQ_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    worker = WorkerSettings.model_validate(
        {
            k.removeprefix("DLQ_WORKER_").lower(): v
            for k, v in env.items()
            if k.startswith("DLQ_WORKER_") and k != "DLQ_WORKER_NON_RETRYABLE_ERROR_CODES"
        }
    )
    assert (worker.dlq_topic, worker.parked_topic) == ("orders.dlq", "orders.dlq.parked")
    assert worker.group_id == "dlq-operator.retry.shop.orders"
    assert (worker.max_retries, worker.initial_delay_seconds, worker.max_delay_seconds) == (
        5,
        0.5,
        120.0,
    )
    assert env["DLQ_WORKER_NON_RETRYABLE_ERROR_CODES"] == '["VALIDATION"]'


def test_owned_labelled_and_secure() -> None:
    manifest = deployment()
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert manifest["metadata"]["labels"]["app.kubernetes.io/instance"] == "orders"
    assert manifest["spec"]["replicas"] == 2
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert (container["image"], container["args"]) == ("img:1", ["worker"])
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_hash_changes_exactly_with_the_effective_configuration() -> None:
    same = config_hash(deployment({"maxRetries": 3}))
    assert config_hash(deployment({})) == same, "defaults are the same configuration"
    assert config_hash(deployment({"maxRetries": 4})) != same
    assert config_hash(deployment({"backoff": {"jitter": 0.5}})) != same


def mounts_of(manifest: dict) -> tuple[list[dict], list[dict]]:
    pod = manifest["spec"]["template"]["spec"]
    return pod["volumes"], pod["containers"][0]["volumeMounts"]


def test_a_worker_gets_its_own_dlqs_credentials_as_files() -> None:
    own = DeadLetterQueueSpec.model_validate(
        {
            "sourceTopic": "orders",
            "retry": {"policyRef": {"name": "p"}, "kafkaSecretRef": {"name": "orders-kafka"}},
        }
    )
    manifest = deployment(dlq=own)
    volumes, mounts = mounts_of(manifest)
    assert volumes == [
        {
            "name": "kafka-credentials",
            "secret": {"secretName": "orders-kafka", "defaultMode": 0o440},
        }
    ]
    assert mounts == [
        {"name": "kafka-credentials", "mountPath": "/etc/dlq-operator/kafka", "readOnly": True}
    ]
    env = env_of(manifest)
    assert env["DLQ_KAFKA_CREDENTIALS_DIR"] == "/etc/dlq-operator/kafka"
    assert not [key for key in env if "PASSWORD" in key or "USERNAME" in key]


def test_the_operators_credentials_reach_workers_only_when_shared() -> None:
    assert mounts_of(deployment()) == ([], [])
    assert "DLQ_KAFKA_CREDENTIALS_DIR" not in env_of(deployment())
    sharing = SETTINGS.model_copy(update={"shared_kafka_secret": "dlq-operator-kafka"})
    manifest = desired_deployment(
        "shop", "orders", "uid-1", DLQ, RetryPolicySpec.model_validate({}), sharing
    )
    assert mounts_of(manifest)[0][0]["secret"]["secretName"] == "dlq-operator-kafka"


def test_workers_get_the_default_resources_unless_the_dlq_sets_its_own() -> None:
    defaults = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    settings = SETTINGS.model_copy(update={"worker_resources": defaults})

    def resources(dlq: DeadLetterQueueSpec) -> dict:
        manifest = desired_deployment(
            "shop", "orders", "uid-1", dlq, RetryPolicySpec.model_validate({}), settings
        )
        return manifest["spec"]["template"]["spec"]["containers"][0]["resources"]

    assert resources(DLQ) == defaults
    own = DeadLetterQueueSpec.model_validate(
        {
            "sourceTopic": "orders",
            "retry": {"policyRef": {"name": "p"}, "resources": {"limits": {"memory": "1Gi"}}},
        }
    )
    assert resources(own) == {"limits": {"memory": "1Gi"}}


def test_a_worker_network_policy_only_when_the_operator_gives_one() -> None:
    from dlq_operator.reconcile.workload import desired_network_policy

    assert desired_network_policy("shop", "orders", "uid-1", SETTINGS) is None
    ingress_only = SETTINGS.model_copy(update={"worker_network_policy": {}})
    policy = desired_network_policy("shop", "orders", "uid-1", ingress_only)
    assert policy is not None
    assert policy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert (
        policy["spec"]["podSelector"]["matchLabels"]
        == (deployment()["spec"]["selector"]["matchLabels"])
    )
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "health"}, {"port": "metrics"}]}]

    to_kafka = {"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"port": 9093}]}
    egress = SETTINGS.model_copy(update={"worker_network_policy": {"egress": [to_kafka]}})
    spec = desired_network_policy("shop", "orders", "uid-1", egress)["spec"]  # type: ignore[index]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["egress"][1] == to_kafka and spec["egress"][0]["ports"][0]["port"] == 53
