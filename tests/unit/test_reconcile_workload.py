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
