"""The retry worker Deployment of a DeadLetterQueue, as a pure function of its inputs.

The worker's whole configuration travels as environment variables
(:class:`~dlq_operator.settings.WorkerSettings`). A hash of that configuration is put on
the pod template, so a RetryPolicy change rolls exactly the workers whose effective
configuration changed, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dlq_operator.api import DeadLetterQueueSpec, RetryPolicySpec, parse_duration
from dlq_operator.api.naming import CONFIG_HASH_ANNOTATION, retry_group_name, worker_deployment_name
from dlq_operator.settings import Settings, WorkerSettings

WORKER_COMPONENT = "retry-worker"
WORKER_SECRET_DIR = "/etc/dlq-operator/kafka"


def worker_settings(
    namespace: str, name: str, spec: DeadLetterQueueSpec, policy: RetryPolicySpec
) -> WorkerSettings:
    """The worker configuration that a DLQ and its RetryPolicy call for."""
    return WorkerSettings(
        dlq_topic=spec.topic_name,
        parked_topic=spec.parked_topic_name,
        group_id=retry_group_name(namespace, name),
        max_retries=policy.max_retries,
        initial_delay_seconds=parse_duration(policy.backoff.initial_delay).total_seconds(),
        max_delay_seconds=parse_duration(policy.backoff.max_delay).total_seconds(),
        multiplier=policy.backoff.multiplier,
        jitter=policy.backoff.jitter,
        non_retryable_error_codes=list(policy.non_retryable_error_codes),
    )


def worker_labels(name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "dlq-operator",
        "app.kubernetes.io/component": WORKER_COMPONENT,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/part-of": "dlq-operator",
        "app.kubernetes.io/managed-by": "dlq-operator",
    }


def kafka_environment(settings: Settings) -> dict[str, str]:
    """How the worker reaches Kafka: the operator's own connection settings, minus secrets.

    Credentials reach the worker as files from ``settings.worker_kafka_secret``, mounted
    at :data:`WORKER_SECRET_DIR`: ``password`` for SASL, ``ca.crt`` for a private CA.
    """
    kafka = settings.kafka
    env = {
        "DLQ_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DLQ_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        env["DLQ_KAFKA_SASL_MECHANISM"] = kafka.sasl_mechanism
    if settings.worker_kafka_secret:
        if kafka.sasl_mechanism:
            env |= {
                "DLQ_KAFKA_SASL_USERNAME": kafka.sasl_username or "",
                "DLQ_KAFKA_SASL_PASSWORD_FILE": f"{WORKER_SECRET_DIR}/password",
            }
        if kafka.security_protocol in ("SSL", "SASL_SSL") and kafka.ssl_cafile:
            env["DLQ_KAFKA_SSL_CAFILE"] = f"{WORKER_SECRET_DIR}/ca.crt"
    return env


def config_hash(pod_spec: dict[str, Any]) -> str:
    """A short digest of the pod spec: it changes exactly when the worker must restart."""
    payload = json.dumps(pod_spec, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def desired_deployment(
    namespace: str,
    name: str,
    uid: str,
    spec: DeadLetterQueueSpec,
    policy: RetryPolicySpec,
    settings: Settings,
) -> dict[str, Any]:
    """The worker Deployment manifest, owned by the DeadLetterQueue."""
    worker = worker_settings(namespace, name, spec, policy)
    env = worker.environment() | kafka_environment(settings)
    labels = worker_labels(name)
    resources = (
        spec.retry.resources.model_dump(by_alias=True, exclude_none=True)
        if spec.retry and spec.retry.resources
        else {}
    )
    volumes, mounts = [], []
    if settings.worker_kafka_secret:
        volumes.append(
            {"name": "kafka-credentials", "secret": {"secretName": settings.worker_kafka_secret}}
        )
        mounts.append(
            {"name": "kafka-credentials", "mountPath": WORKER_SECRET_DIR, "readOnly": True}
        )
    container = {
        "name": "worker",
        "image": settings.worker_image,
        "imagePullPolicy": settings.worker_image_pull_policy,
        "args": ["worker"],
        "env": [{"name": key, "value": value} for key, value in sorted(env.items())],
        "ports": [
            {"name": "health", "containerPort": worker.health_port},
            {"name": "metrics", "containerPort": worker.metrics_port},
        ],
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "health"}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "health"}, "periodSeconds": 5},
        "resources": resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    pod_spec = {
        # Workers talk to Kafka only, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": worker_deployment_name(name),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [
                {
                    "apiVersion": "dlq.orion.io/v1alpha1",
                    "kind": "DeadLetterQueue",
                    "name": name,
                    "uid": uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": spec.retry.replicas if spec.retry else 1,
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/component": WORKER_COMPONENT,
                    "app.kubernetes.io/instance": name,
                }
            },
            # Never two workers on one group at once past a rollout: they would only rebalance.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
            },
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        CONFIG_HASH_ANNOTATION: config_hash(pod_spec),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(worker.metrics_port),
                    },
                },
                "spec": pod_spec,
            },
        },
    }
