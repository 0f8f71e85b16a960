#!/usr/bin/env python3
"""One depth-monitor cycle over 1,000 DLQs, against the original design's way of doing it.

Setup: 1,000 DeadLetterQueue objects, each with a 3-partition dead-letter topic holding a
few records (3,000 partitions in all).

Measured: steady-state cycles of the operator's :class:`DepthMonitor` (after two: the
first writes every DLQ's figures, the second its first inflow rate), the median of seven,
and the most status patches any of them wrote. A cycle takes the DLQ
objects from the operator's watch cache (here: one list made beforehand), asks the broker
for all offsets and all committed offsets in a constant number of batched requests, and
writes a status only where a figure changed: a cycle in which nothing changed writes
nothing. A DLQ whose last check changed nothing is not computed again while its offsets,
committed offsets and object stay the same (see ``dlq_operator.monitor.cycle``).

Baseline, in the same run: the original design's check — one offsets query per DLQ topic
(``admin.fetchTopicOffsets(topic)`` in a loop), here the same adapter call made once per
topic. Both are timed in their steady state: the original design's client (KafkaJS) keeps
topic metadata between checks, so the baseline is timed once the same metadata cache as the
monitor's holds every topic; each topic then costs an earliest and a latest ListOffsets
request. The median of three such rounds.

Goals: baseline time / cycle time >= 20, a cycle under 1 s, and 0 status patches in a
cycle where nothing changed.

    .venv/bin/python bench/depth_check.py [--dlqs 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path

import yaml
from kafka import KafkaProducer
from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support
from dlq_operator.kafka import TopicAdmin
from dlq_operator.kube import KubeClient
from dlq_operator.monitor.service import PARTITION_CACHE_SECONDS, DepthMonitor
from dlq_operator.settings import KafkaSettings

GROUP, VERSION, PLURAL = "dlq.orion.io", "v1alpha1", "deadletterqueues"
QUIET_CYCLES = 7
NAIVE_ROUNDS = 3
NAMESPACE = "depth"


def setup(api: client.ApiClient, bootstrap: str, count: int) -> list[str]:
    """CRDs, the topics (one admin call) with 3 records each, and the DLQ objects."""
    extensions = client.ApiextensionsV1Api(api)
    for path in sorted((support.ROOT / "crds").glob("*.yaml")):
        try:
            extensions.create_custom_resource_definition(yaml.safe_load(path.read_text()))
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    topics = [f"depth-{i}.dlq" for i in range(count)]
    support.create_topics(bootstrap, topics, partitions=3)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    for topic in topics:
        for partition in range(3):
            producer.send(topic, b"x", partition=partition)
    producer.flush()
    producer.close()
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE))
    )
    objects = client.CustomObjectsApi(api)
    support.wait_until(lambda: _listable(objects), 60, "CRDs established")
    for i in range(count):
        objects.create_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            PLURAL,
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "DeadLetterQueue",
                "metadata": {"name": f"q{i}"},
                "spec": {"sourceTopic": f"depth-{i}"},
            },
        )
    return topics


def _listable(objects: client.CustomObjectsApi) -> bool:
    try:
        objects.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)
        return True
    except client.ApiException:
        return False


def naive(admin: TopicAdmin, topics: list[str]) -> tuple[float, int]:
    """One offsets query per topic, one topic after the other, in the steady state (once
    the metadata cache holds every topic); (seconds, requests)."""
    admin.list_offsets(topics)  # fills the cache, untimed
    before = admin.requests_sent
    started = time.monotonic()
    for topic in topics:
        admin.list_offsets([topic])
    return time.monotonic() - started, admin.requests_sent - before


def admin(settings: KafkaSettings) -> TopicAdmin:
    """A TopicAdmin configured as the operator's monitor has it."""
    return TopicAdmin(settings, partition_cache_seconds=PARTITION_CACHE_SECONDS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dlqs", type=int, default=1000)
    args = parser.parse_args()
    with support.platform() as env:
        api = config.new_client_from_config(config_file=env["KUBECONFIG"])
        bootstrap = env["DLQ_KAFKA_BOOTSTRAP_SERVERS"]
        support.note(f"creating {args.dlqs} DLQs and their topics")
        topics = setup(api, bootstrap, args.dlqs)
        settings = KafkaSettings(bootstrap_servers=bootstrap)
        kube = KubeClient(api)
        # As the operator does once started, before it sees the DLQ objects.
        gc.collect()
        gc.freeze()
        # The operator's monitor reads DLQ objects from its watch cache, not a list call.
        watched = kube.list_objects(PLURAL)
        monitor = DepthMonitor(admin(settings), kube, resources=lambda: watched)
        support.note("first cycles (write every DLQ's figures, then its first inflow)")
        first = asyncio.run(monitor.cycle())
        asyncio.run(monitor.cycle())
        support.note("a cycle in which nothing changed")
        watched = kube.list_objects(PLURAL)  # the statuses the first cycles wrote
        # The median of a few: one cycle of a tenth of a second is at the mercy of a
        # scheduler hiccup on a small machine.
        quiet_cycles = [asyncio.run(monitor.cycle()) for _ in range(QUIET_CYCLES)]
        quiet = sorted(quiet_cycles, key=lambda report: report.seconds)[QUIET_CYCLES // 2]
        support.note(
            "quiet cycles: "
            + ", ".join(f"{r.seconds:.3f} s ({r.skipped} skipped)" for r in quiet_cycles)
        )
        quiet_patches = max(report.patches for report in quiet_cycles)
        support.note("naive: one offsets query per topic")
        naive_admin = admin(settings)
        naive_rounds = sorted(naive(naive_admin, topics) for _ in range(NAIVE_ROUNDS))
        naive_seconds, naive_requests = naive_rounds[NAIVE_ROUNDS // 2]
        support.note("naive rounds: " + ", ".join(f"{s:.2f} s" for s, _ in naive_rounds))

    print(f"\ndepth check of {args.dlqs} DLQs x 3 partitions\n")
    support.print_table(
        ["", "seconds", "broker requests", "status patches"],
        [
            ["monitor, first cycle", first.seconds, first.broker_requests, first.patches],
            ["monitor, steady cycle (median)", quiet.seconds, quiet.broker_requests, quiet_patches],
            ["naive, one query per topic", naive_seconds, naive_requests, None],
        ],
    )
    print()
    print(
        support.verdict(
            "speed-up naive/monitor", naive_seconds / quiet.seconds, 20.0, at_least=True, unit="x"
        )
    )
    print(support.verdict("steady cycle", quiet.seconds, 1.0, at_least=False, unit=" s"))
    print(
        support.verdict("patches in a quiet cycle", float(quiet_patches), 1.0, at_least=False)
        + " (goal: 0)"
    )


if __name__ == "__main__":
    support.run(main)
