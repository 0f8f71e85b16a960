#!/usr/bin/env python3
"""How long a DeadLetterQueue with retries takes to get a Ready retry worker pod, against
the same pod started from a plain Deployment.

Measured: one RetryPolicy and ``--count`` DeadLetterQueues that use it are created at
once; per DLQ, the clock runs from its create call until its worker pod reports Ready on
the platform's node (the operator's reconcile, its Deployment, the ReplicaSet, the
kubelet and the worker's readiness probe). The operator runs as a process here; its work
is the same in a pod.

Baseline, in the same run on the same node: ``--count`` Deployments with the very pod
template the operator would write (``desired_deployment``), created at once by hand once
their topics exist (made beforehand, untimed); per Deployment, create call to pod Ready.
The difference is what the operator adds: its reconcile, the topics and the Deployment.

Goal: operator p50 / baseline p50 < 1.5. Both p50 and p95 are printed.

    .venv/bin/python bench/worker_rollout.py [--count 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client, config, watch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hack"))

import image
import local_platform
import support
from dlq_operator.api import DeadLetterQueueSpec, RetryPolicySpec
from dlq_operator.reconcile.workload import desired_deployment
from dlq_operator.settings import KafkaSettings, Settings

GROUP, VERSION = "dlq.orion.io", "v1alpha1"
POLICY = {"maxRetries": 3, "backoff": {"initialDelay": "1s"}}


class PodReadyWatch:
    """When the first pod of each owner (label ``app.kubernetes.io/instance``) reported
    Ready, from a watch stream."""

    def __init__(self, core: client.CoreV1Api, namespace: str, count: int) -> None:
        self.ready_at: dict[str, float] = {}
        self.done = threading.Event()
        self._stream = watch.Watch()
        listed = core.list_namespaced_pod(namespace)
        threading.Thread(
            target=self._follow,
            args=(core, namespace, count, listed.metadata.resource_version),
            daemon=True,
        ).start()

    def _follow(self, core: client.CoreV1Api, namespace: str, count: int, version: str) -> None:
        for event in self._stream.stream(
            core.list_namespaced_pod, namespace, resource_version=version, timeout_seconds=600
        ):
            pod = event["object"]
            owner = (pod.metadata.labels or {}).get("app.kubernetes.io/instance")
            ready = any(
                c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
            )
            if owner and ready and owner not in self.ready_at:
                self.ready_at[owner] = time.monotonic()
                if len(self.ready_at) == count:
                    self.done.set()
                    self._stream.stop()


def fresh_namespace(core: client.CoreV1Api, name: str) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def baseline(api: client.ApiClient, settings: Settings, count: int) -> list[float]:
    """Create call -> pod Ready, per plain Deployment of the operator's own pod template."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    namespace = "baseline"
    fresh_namespace(core, namespace)
    policy = RetryPolicySpec.model_validate(POLICY)
    manifests, topics = [], []
    for i in range(count):
        spec = DeadLetterQueueSpec.model_validate(
            {"sourceTopic": f"baseline-{i}", "retry": {"policyRef": {"name": "p"}}}
        )
        topics += [spec.topic_name, spec.parked_topic_name]
        manifest = desired_deployment(namespace, f"q{i}", "-", spec, policy, settings)
        del manifest["metadata"]["ownerReferences"]  # no DLQ owns these
        manifests.append(manifest)
    # The topics the operator would have made (the worker is ready once it has partitions).
    support.create_topics(settings.kafka.bootstrap_servers, topics, partitions=3)
    ready = PodReadyWatch(core, namespace, count)
    created = {}
    for manifest in manifests:
        apps.create_namespaced_deployment(namespace, manifest)
        created[manifest["metadata"]["labels"]["app.kubernetes.io/instance"]] = time.monotonic()
    support.wait_until(ready.done.is_set, 600, f"{count} baseline pods Ready", interval=0.1)
    latencies = [ready.ready_at[name] - created[name] for name in created]
    core.delete_namespace(namespace)
    return latencies


def with_operator(
    api: client.ApiClient, env: dict[str, str], count: int, log: Path
) -> tuple[list[float], float]:
    """Create call -> worker pod Ready per DLQ, and seconds until all were."""
    core, objects = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = "operator"
    fresh_namespace(core, namespace)
    operator = support.start_operator(env, namespace, log)
    try:
        ready = PodReadyWatch(core, namespace, count)
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "retrypolicies", _manifest("RetryPolicy", "p", POLICY)
        )
        created, started = {}, time.monotonic()
        for i in range(count):
            spec = {"sourceTopic": f"bench-{i}", "retry": {"policyRef": {"name": "p"}}}
            objects.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                "deadletterqueues",
                _manifest("DeadLetterQueue", f"q{i}", spec),
            )
            created[f"q{i}"] = time.monotonic()
        support.wait_until(
            ready.done.is_set, 600, f"{count} worker pods Ready", interval=0.1, alive=operator.alive
        )
        latencies = [ready.ready_at[name] - created[name] for name in created]
        return latencies, max(ready.ready_at.values()) - started
    finally:
        core.delete_namespace(namespace)
        support.wait_until(
            lambda: not core.list_namespaced_pod(namespace).items, 180, "the namespace emptied"
        )
        operator.stop()


def _manifest(kind: str, name: str, spec: dict) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": kind,
        "metadata": {"name": name},
        "spec": spec,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20)
    args = parser.parse_args()
    with support.platform() as env, tempfile.TemporaryDirectory(prefix="dlq-bench-") as logs:
        support.note("building the image and loading it into the node")
        ref, archive = image.build_image()
        local_platform.Platform(Path(env["DLQ_PLATFORM_DIR"])).load_image(archive)
        api = config.new_client_from_config(config_file=env["KUBECONFIG"])
        support.apply_crds(api)
        pods_bootstrap = env["DLQ_POD_KAFKA_BOOTSTRAP_SERVERS"]
        settings = Settings(kafka=KafkaSettings(bootstrap_servers=pods_bootstrap), worker_image=ref)
        operator_env = {
            **os.environ,
            **env,
            "DLQ_KAFKA_BOOTSTRAP_SERVERS": pods_bootstrap,
            "DLQ_WORKER_IMAGE": ref,
        }
        support.note(f"baseline: {args.count} plain Deployments")
        raw = baseline(api, settings, args.count)
        support.note(f"operator: {args.count} DeadLetterQueues with retries")
        measured, total = with_operator(api, operator_env, args.count, Path(logs) / "operator.log")

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[18]

    print(f"\n{args.count} retry workers, create call -> pod Ready (s)\n")
    support.print_table(
        ["", "p50", "p95", "max"],
        [
            ["baseline (plain Deployments)", statistics.median(raw), p95(raw), max(raw)],
            [
                "operator (DeadLetterQueues)",
                statistics.median(measured),
                p95(measured),
                max(measured),
            ],
        ],
    )
    print(f"\nall {args.count} worker pods Ready {total:.1f} s after the first DLQ was created\n")
    ratio = statistics.median(measured) / statistics.median(raw)
    print(support.verdict("ratio operator/baseline (p50)", ratio, 1.5, at_least=False))


if __name__ == "__main__":
    support.run(main)
