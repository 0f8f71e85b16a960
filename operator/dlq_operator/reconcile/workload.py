"""The retry worker Deployment of a DeadLetterQueue, as a pure function of its inputs.

The worker's whole configuration travels as environment variables
(:class:`~dlq_operator.settings.WorkerSettings`). A hash of that configuration is put on
the pod template, so a RetryPolicy change rolls exactly the workers whose effective
configuration changed, and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dlq_operator.api import (
    DEAD_LETTER_QUEUE,
    DeadLetterQueueSpec,
    RetryPolicySpec,
    parse_duration,
)
from dlq_operator.api.conditions import AVAILABLE, PROGRESSING, UNAVAILABLE
from dlq_operator.api.naming import CONFIG_HASH_ANNOTATION, retry_group_name, worker_deployment_name
from dlq_operator.settings import KafkaSettings, Settings, WorkerSettings

WORKER_COMPONENT = "retry-worker"
KAFKA_CREDENTIALS_DIR = "/etc/dlq-operator/kafka"
IMAGE_GROUP = 10001  # the Dockerfile's non-root group


def worker_settings(
    namespace: str, name: str, spec: DeadLetterQueueSpec, policy: RetryPolicySpec
) -> WorkerSettings:
    """The worker configuration that a DLQ and its RetryPolicy call for: the one translation
    of a RetryPolicy into the worker's settings (durations become seconds), which the worker
    reads back as ``worker.decide.RetryRules.from_settings``."""
    return WorkerSettings(
        source_topic=spec.source_topic,
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


def worker_selector(name: str) -> dict[str, str]:
    """The labels that pick a DLQ's worker pods."""
    return {"app.kubernetes.io/component": WORKER_COMPONENT, "app.kubernetes.io/instance": name}


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    """What makes an object the DeadLetterQueue's: garbage-collected with it."""
    return {
        "apiVersion": DEAD_LETTER_QUEUE.api_version,
        "kind": DEAD_LETTER_QUEUE.kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


@dataclass(frozen=True)
class KafkaWorkload:
    """How a pod reaches Kafka: connection settings as environment variables, credentials
    as the files of one Secret (read back by ``KafkaSettings.credentials_dir``)."""

    env: dict[str, str]
    volumes: list[dict[str, Any]]
    mounts: list[dict[str, Any]]


def kafka_workload(kafka: KafkaSettings, secret: str | None) -> KafkaWorkload:
    """The one translation of Kafka settings into a pod's environment and mounts: the
    chart's operator Deployment (a test renders it and compares) and every retry worker.
    Nothing secret is ever put into the environment."""
    env = {
        "DLQ_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DLQ_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        env["DLQ_KAFKA_SASL_MECHANISM"] = kafka.sasl_mechanism
    if secret is None:
        return KafkaWorkload(env=env, volumes=[], mounts=[])
    env["DLQ_KAFKA_CREDENTIALS_DIR"] = KAFKA_CREDENTIALS_DIR
    volume = {"name": "kafka-credentials", "secret": {"secretName": secret, "defaultMode": 0o440}}
    mount = {"name": "kafka-credentials", "mountPath": KAFKA_CREDENTIALS_DIR, "readOnly": True}
    return KafkaWorkload(env=env, volumes=[volume], mounts=[mount])


def worker_kafka_secret(spec: DeadLetterQueueSpec, settings: Settings) -> str | None:
    """The DLQ's own credentials; the operator's only where the operator shares them."""
    ref = spec.retry.kafka_secret_ref if spec.retry else None
    return ref.name if ref is not None else settings.shared_kafka_secret


def desired_network_policy(
    namespace: str, name: str, uid: str, settings: Settings
) -> dict[str, Any] | None:
    """The worker's NetworkPolicy, owned by the DeadLetterQueue, when the operator is set to
    give workers one: traffic in only to the health and metrics ports (the kubelet's probes
    and Prometheus), and out only by the configured egress rules plus DNS."""
    if settings.worker_network_policy is None:
        return None
    egress = settings.worker_network_policy.get("egress")
    spec: dict[str, Any] = {
        "podSelector": {"matchLabels": worker_selector(name)},
        "policyTypes": ["Ingress", *(["Egress"] if egress else [])],
        "ingress": [{"ports": [{"port": "health"}, {"port": "metrics"}]}],
    }
    if egress:
        dns = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
        spec["egress"] = [dns, *egress]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": worker_deployment_name(name),
            "namespace": namespace,
            "labels": worker_labels(name),
            "ownerReferences": [owner_reference(name, uid)],
        },
        "spec": spec,
    }


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
    kafka = kafka_workload(settings.kafka, worker_kafka_secret(spec, settings))
    env = worker.environment() | kafka.env
    labels = worker_labels(name)
    resources = (
        spec.retry.resources.model_dump(by_alias=True, exclude_none=True)
        if spec.retry and spec.retry.resources
        else settings.worker_resources
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
        "volumeMounts": kafka.mounts,
    }
    pod_spec = {
        # Workers talk to Kafka only, never to the Kubernetes API.
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 60,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
            # The image's group owns mounted Secrets, which are then readable by it only.
            "fsGroup": IMAGE_GROUP,
        },
        "containers": [container],
        "volumes": kafka.volumes,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": worker_deployment_name(name),
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_reference(name, uid)],
        },
        "spec": {
            "replicas": spec.retry.replicas if spec.retry else 1,
            "selector": {"matchLabels": worker_selector(name)},
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


# Container waiting reasons that waiting a few seconds will not cure: a person has to act.
STUCK_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "ErrImageNeverPull",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "RunContainerError",
    }
)
MESSAGE_LIMIT = 1024


@dataclass(frozen=True)
class WorkerAvailability:
    """Whether a worker Deployment serves, as the WorkerReady condition tells it."""

    ok: bool
    reason: str  # AVAILABLE, PROGRESSING or UNAVAILABLE
    message: str
    # The Deployment controller gave up (progress deadline, pods refused): as kstatus
    # judges the Deployment itself, only a person can help now.
    stalled: bool = False


def deployment_available(deployment: Mapping[str, Any]) -> bool:
    """True when the controller has rolled out the current template and every wanted
    replica is available (a rollout in progress, or a pod down, is not)."""
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    status = deployment.get("status") or {}
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    return (
        status.get("observedGeneration", 0) >= generation
        and status.get("updatedReplicas", 0) >= wanted
        and status.get("availableReplicas", 0) >= wanted
    )


def worker_availability(
    deployment: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]
) -> WorkerAvailability:
    """The WorkerReady verdict from the Deployment and its pods.

    Pods are only read for the message: they say why a replica is missing (an image that
    cannot be pulled, a crash loop), which the Deployment's own status does not.
    """
    name = deployment["metadata"]["name"]
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    available = (deployment.get("status") or {}).get("availableReplicas", 0)
    counts = f"Deployment {name}: {available}/{wanted} replicas available"
    if deployment_available(deployment):
        return WorkerAvailability(ok=True, reason=AVAILABLE, message=counts)
    failures = _deployment_failures(deployment)
    stuck, waiting = list(failures), list[str]()
    for pod in pods:
        for problem, is_stuck in _pod_problems(pod):
            (stuck if is_stuck else waiting).append(problem)
    if stuck:
        return WorkerAvailability(
            ok=False, reason=UNAVAILABLE, message=_limited(counts, stuck), stalled=bool(failures)
        )
    return WorkerAvailability(
        ok=False, reason=PROGRESSING, message=_limited(f"{counts}, rolling out", waiting)
    )


def worker_verdict_changed(deployment: Mapping[str, Any], reported_reason: str | None) -> bool:
    """Whether the Deployment alone contradicts the WorkerReady reason a DLQ reports, so
    that the DLQ must be reconciled again. A pod-level "Unavailable" is not contradicted
    by a Deployment that only looks in progress: the pods know better."""
    verdict = worker_availability(deployment, []).reason
    return verdict != reported_reason and not (
        verdict == PROGRESSING and reported_reason == UNAVAILABLE
    )


def _deployment_failures(deployment: Mapping[str, Any]) -> list[str]:
    """The controller's own verdicts that need a person (progress deadline exceeded, pods
    refused at admission)."""
    failures = []
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        kind, status = condition.get("type"), condition.get("status")
        if (kind, status) in (("Progressing", "False"), ("ReplicaFailure", "True")):
            failures.append(f"{condition.get('reason')}: {condition.get('message', '')}".strip())
    return failures


def _pod_problems(pod: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(what keeps the pod from serving, whether it is stuck) for one pod."""
    name = pod["metadata"]["name"]
    status = pod.get("status") or {}
    problems = []
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("reason") == "Unschedulable":
            problems.append((f"pod {name}: Unschedulable: {condition.get('message', '')}", True))
    for container in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason"):
            reason = waiting["reason"]
            detail = f": {waiting['message']}" if waiting.get("message") else ""
            problems.append((f"pod {name}: {reason}{detail}", reason in STUCK_WAITING_REASONS))
    return problems


def _limited(head: str, details: list[str]) -> str:
    message = "; ".join([head, *details]) if details else head
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."
