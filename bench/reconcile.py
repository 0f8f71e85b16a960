#!/usr/bin/env python3
"""How fast the operator turns 100 DeadLetterQueues into Ready topics, against doing it raw.

Measured: 100 DeadLetterQueue objects are created at once (one API write each, as fast as
the client goes); the clock runs from the first write until the last object reports
``Ready=True`` for its current generation. Per object, apply→Ready is recorded too
(p50 and p95).

Baseline, in the same run on the same platform: the same work done by hand without an
operator — 100 topics with the same spec created with ONE admin call, plus 100 raw object
writes (the same DeadLetterQueue manifests, into a namespace the operator does not watch).

Both are measured ``--rounds`` times, alternating, each operator round with a fresh
operator process and namespace; the medians are compared (one round of either lasts
a second or two, and on a small machine a single round swings by half). Untimed warm-up
first: raw rounds, then one operator round.

Goal: operator time / baseline time <= 3, and the operator's RSS after a run < 200 MiB.

    .venv/bin/python bench/reconcile.py [--count 100] [--rounds 3] [--warm-up-rounds 5]
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

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kubernetes import client, config, watch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support

GROUP, VERSION, PLURAL = "dlq.orion.io", "v1alpha1", "deadletterqueues"


def manifest(name: str, source: str) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "DeadLetterQueue",
        "metadata": {"name": name},
        "spec": {"sourceTopic": source},
    }


def create_namespace(api: client.ApiClient, name: str) -> None:
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )


def warm_up(api: client.ApiClient, bootstrap: str, count: int, rounds: int) -> None:
    """The same kinds of calls, untimed. A freshly started broker spends seconds of CPU in
    its JIT compilers on its first topic creations (measured: 2.6 CPU-s for the first 300
    partitions, 1 CPU-s once warm), which would go to whichever phase comes first; a broker
    in service is warm. Ends when the broker has created the last round's partitions."""
    objects = client.CustomObjectsApi(api)
    create_namespace(api, "warm-up")
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        for round_ in range(rounds):
            names = [f"warm-up-{round_}-{i}" for i in range(count)]
            admin.create_topics([NewTopic(f"{name}.dlq", 3, 1) for name in names])
            for name in names:
                objects.create_namespaced_custom_object(
                    GROUP, VERSION, "warm-up", PLURAL, manifest(name, name)
                )
        admin.wait_for_topics([f"{name}.dlq" for name in names], 60_000)
    objects.list_namespaced_custom_object(GROUP, VERSION, "warm-up", PLURAL)
    time.sleep(3)  # the broker's leftover work (log files, compilation) out of the way


def baseline(api: client.ApiClient, bootstrap: str, count: int, namespace: str) -> float:
    """One admin call for all topics, then one object write each; seconds for both."""
    objects = client.CustomObjectsApi(api)
    create_namespace(api, namespace)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    topics = [
        NewTopic(f"{namespace}-{i}.dlq", 3, 1, topic_configs={"retention.ms": "604800000"})
        for i in range(count)
    ]
    started = time.monotonic()
    admin.create_topics(topics)
    for i in range(count):
        objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, manifest(f"q{i}", f"{namespace}-{i}")
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
    api: client.ApiClient, env: dict[str, str], count: int, log_dir: Path, namespace: str
) -> tuple[float, list[float], float, float]:
    """Total seconds, per-object apply→Ready seconds, and the operator's RSS/peak (MiB)."""
    objects = client.CustomObjectsApi(api)
    create_namespace(api, namespace)
    operator = support.start_operator(env, namespace, log_dir / f"operator-{namespace}.log")
    try:
        # A second for it to list the empty namespace: startup is not measured.
        time.sleep(1)
        watch = ReadyWatch(objects, namespace, count)
        applied: dict[str, float] = {}
        started = time.monotonic()
        for i in range(count):
            objects.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, manifest(f"q{i}", f"{namespace}-{i}")
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
            print((log_dir / f"operator-{namespace}.log").read_text(), file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-up-rounds", type=int, default=5)
    args = parser.parse_args()
    raw, totals, latencies, memory = [], [], [], []
    with support.platform() as env, tempfile.TemporaryDirectory(prefix="dlq-bench-") as logs:
        support.note(f"operator logs: {logs}")
        api = config.new_client_from_config(config_file=env["KUBECONFIG"])
        support.apply_crds(api)
        bootstrap = env["DLQ_KAFKA_BOOTSTRAP_SERVERS"]
        support.note("warming up the broker and the API server")
        warm_up(api, bootstrap, args.count, args.warm_up_rounds)
        with_operator(api, env, args.count, Path(logs), "warm-up-operator")
        time.sleep(3)
        for round_ in range(args.rounds):
            support.note(f"round {round_ + 1}: baseline, then the operator")
            raw.append(baseline(api, bootstrap, args.count, f"baseline-{round_}"))
            time.sleep(3)  # the broker's background work for the baseline's topics
            total, round_latencies, rss, peak = with_operator(
                api, env, args.count, Path(logs), f"bench-{round_}"
            )
            totals.append(total)
            latencies += round_latencies
            memory.append((rss, peak))
            support.note(f"baseline {raw[-1]:.2f} s, operator {total:.2f} s")

    quantiles = statistics.quantiles(latencies, n=20)
    rss, peak = max(memory)
    print(f"\n{args.count} DeadLetterQueues, 3 partitions each, {args.rounds} rounds\n")
    support.print_table(
        ["", "median s", "all rounds"],
        [
            ["baseline (1 admin call + raw writes)", statistics.median(raw), _seconds(raw)],
            ["operator (apply -> all Ready)", statistics.median(totals), _seconds(totals)],
            ["operator apply->Ready p50", statistics.median(latencies), ""],
            ["operator apply->Ready p95", quantiles[18], ""],
        ],
    )
    print()
    ratio = statistics.median(totals) / statistics.median(raw)
    print(support.verdict("ratio operator/baseline (medians)", ratio, 3.0, at_least=False))
    print(
        support.verdict("operator RSS after a run (max)", rss, 200.0, at_least=False, unit=" MiB")
        + f" (peak {peak:.0f} MiB)"
    )


def _seconds(values: list[float]) -> str:
    return " / ".join(f"{value:.2f}" for value in values)


if __name__ == "__main__":
    support.run(main)
