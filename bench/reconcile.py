#!/usr/bin/env python3
"""How fast the operator turns 100 DeadLetterQueues into Ready topics, against doing it raw.

Measured: 100 DeadLetterQueue objects are created at once (one API write each, as fast as
the client goes); the clock runs from the first write until the last object reports
``Ready=True`` for its current generation. Per object, apply→Ready is recorded too
(p50 and p95).

Baseline, in the same run on the same platform: the same work done by hand without an
operator — 100 topics with the same spec created with ONE admin call, plus 100 raw object
writes (the same DeadLetterQueue manifests, into a namespace the operator does not watch).

Goal: operator time / baseline time <= 3, and the operator's RSS after the run < 200 MiB.

    .venv/bin/python bench/reconcile.py [--count 100]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kubernetes import client, config, watch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support

GROUP, VERSION, PLURAL = "dlq.orion.io", "v1alpha1", "deadletterqueues"
BIN = Path(sys.executable).parent


def manifest(name: str, source: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DeadLetterQueue",
        "metadata": {"name": name},
        "spec": {"sourceTopic": source},
    }


def apply_crds(api: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api)
    for path in sorted((support.ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        try:
            extensions.create_custom_resource_definition(crd)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    objects = client.CustomObjectsApi(api)
    support.wait_until(lambda: _listable(objects), 60, "CRDs established")


def _listable(objects: client.CustomObjectsApi) -> bool:
    try:
        objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        return True
    except client.ApiException:
        return False


def create_namespace(api: client.ApiClient, name: str) -> None:
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )


def warm_up(api: client.ApiClient, bootstrap: str, count: int) -> None:
    """The same kinds of calls, untimed: a freshly started broker and API server are
    slower on their first requests, which would penalise whichever phase comes first."""
    objects = client.CustomObjectsApi(api)
    create_namespace(api, "warm-up")
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics([NewTopic(f"warm-up-{i}.dlq", 3, 1) for i in range(count)])
    for i in range(count):
        objects.create_namespaced_custom_object(
            GROUP, VERSION, "warm-up", PLURAL, manifest(f"q{i}", f"warm-up-{i}")
        )
    objects.list_namespaced_custom_object(GROUP, VERSION, "warm-up", PLURAL)


def baseline(api: client.ApiClient, bootstrap: str, count: int) -> float:
    """One admin call for all topics, then one object write each; seconds for both."""
    objects = client.CustomObjectsApi(api)
    create_namespace(api, "baseline")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    topics = [
        NewTopic(f"baseline-{i}.dlq", 3, 1, topic_configs={"retention.ms": "604800000"})
        for i in range(count)
    ]
    started = time.monotonic()
    admin.create_topics(topics)
    for i in range(count):
        objects.create_namespaced_custom_object(
            GROUP, VERSION, "baseline", PLURAL, manifest(f"q{i}", f"baseline-{i}")
        )
    elapsed = time.monotonic() - started
    admin.close()
    return elapsed


def ready_generation(obj: dict) -> bool:
    status = obj.get("status") or {}
    return status.get("observedGeneration") == obj["metadata"]["generation"] and any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )


class ReadyWatch:
    """Records when each object first reports Ready for its generation, from a watch
    stream: polling with lists would load the API server whose work is being measured."""

    def __init__(self, objects: client.CustomObjectsApi, namespace: str, count: int) -> None:
        self.ready_at: dict[str, float] = {}
        self.done = threading.Event()
        self._stream = watch.Watch()
        listed = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)
        threading.Thread(
            target=self._follow,
            args=(objects, namespace, count, listed["metadata"]["resourceVersion"]),
            daemon=True,
        ).start()

    def _follow(
        self, objects: client.CustomObjectsApi, namespace: str, count: int, version: str
    ) -> None:
        events = self._stream.stream(
            objects.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            resource_version=version,
            timeout_seconds=300,
        )
        for event in events:
            obj = event["object"]
            name = obj["metadata"]["name"]
            if name not in self.ready_at and ready_generation(obj):
                self.ready_at[name] = time.monotonic()
                if len(self.ready_at) == count:
                    self.done.set()
                    self._stream.stop()


def with_operator(
    api: client.ApiClient, env: dict[str, str], count: int, log_dir: Path
) -> tuple[float, list[float], float, float]:
    """Total seconds, per-object apply→Ready seconds, and the operator's RSS/peak (MiB)."""
    objects = client.CustomObjectsApi(api)
    create_namespace(api, "bench")
    operator = support.Child(
        [str(BIN / "dlq-operator"), "run"],
        {
            **os.environ,
            **env,
            "DLQ_NAMESPACES": json.dumps(["bench"]),
            "DLQ_HEALTH_PORT": "0",
            "DLQ_METRICS_PORT": "0",
        },
        log_dir / "operator.log",
    )
    try:
        time.sleep(3)  # kopf's initial listing, before the clock starts
        watch = ReadyWatch(objects, "bench", count)
        applied: dict[str, float] = {}
        started = time.monotonic()
        for i in range(count):
            objects.create_namespaced_custom_object(
                GROUP, VERSION, "bench", PLURAL, manifest(f"q{i}", f"bench-{i}")
            )
            applied[f"q{i}"] = time.monotonic()
        support.wait_until(
            watch.done.is_set, 300, f"{count} DLQs Ready", interval=0.05, alive=operator.alive
        )
        ready_at = watch.ready_at
        total = max(ready_at.values()) - started
        latencies = [ready_at[name] - applied[name] for name in applied]
        rss, peak = support.memory_mib(operator.pid)
        return total, latencies, rss, peak
    finally:
        operator.stop()
        if os.environ.get("DLQ_BENCH_KEEP_LOG"):
            print((log_dir / "operator.log").read_text(), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    with support.platform() as env, tempfile.TemporaryDirectory(prefix="dlq-bench-") as logs:
        support.note(f"operator log: {logs}/operator.log")
        api = config.new_client_from_config(config_file=env["KUBECONFIG"])
        apply_crds(api)
        bootstrap = env["DLQ_KAFKA_BOOTSTRAP_SERVERS"]
        support.note("warming up the broker and the API server")
        warm_up(api, bootstrap, args.count)
        support.note("baseline: one admin call + raw object writes")
        raw = baseline(api, bootstrap, args.count)
        support.note("operator: object writes until every DLQ is Ready")
        total, latencies, rss, peak = with_operator(api, env, args.count, Path(logs))

    quantiles = statistics.quantiles(latencies, n=20)
    print(f"\n{args.count} DeadLetterQueues, 3 partitions each\n")
    support.print_table(
        ["", "seconds"],
        [
            ["baseline (1 admin call + raw writes)", raw],
            ["operator (apply -> all Ready)", total],
            ["operator apply->Ready p50", statistics.median(latencies)],
            ["operator apply->Ready p95", quantiles[18]],
        ],
    )
    print()
    print(support.verdict("ratio operator/baseline", total / raw, 3.0, at_least=False))
    print(
        support.verdict("operator RSS after the run", rss, 200.0, at_least=False, unit=" MiB")
        + f" (peak {peak:.0f} MiB)"
    )


if __name__ == "__main__":
    support.run(main)
