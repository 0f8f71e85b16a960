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
(``admin.fetchTopicOffsets(topic)`` in a loop, which asks for the latest offsets, waits,
then asks for the earliest), here with kafka-python's consumer calls in the same order.
Both are timed in their steady state: the original design's client (KafkaJS) keeps topic
metadata between checks, so the baseline is timed once its client holds every topic's
metadata; each topic then costs two ListOffsets round trips. The median of three rounds.
For information, the same per-topic loop with this adapter's query (both requests sent
together) is timed too: it shows what the batching alone gains.

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
from collections.abc import Callable
from pathlib import Path

import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support
from dlq_operator.kafka import TopicAdmin
from dlq_operator.kafka.connection import client_config, connect
from dlq_operator.kube import KubeClient
from dlq_operator.monitor.service import CycleReport, DepthMonitor, monitor_clients
from dlq_operator.settings import KafkaSettings

GROUP, VERSION, PLURAL = "dlq.orion.io", "v1alpha1", "deadletterqueues"
QUIET_CYCLES = 7
NAIVE_ROUNDS = 3
NAMESPACE = "depth"
# The client ids of monitor_clients(): the admin, its offsets consumer ("-offsets") and the
# reader ("-reader").
MONITOR_CLIENTS = "dlq-operator-monitor"
NAIVE_CLIENT = "bench-naive"


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


def original_design(settings: KafkaSettings, topics: list[str]) -> tuple[float, int]:
    """The original design's check: per topic, as KafkaJS's ``admin.fetchTopicOffsets``
    does it, the latest offsets and then the earliest, each request awaited (here with
    kafka-python's consumer calls); timed once the consumer holds every topic's metadata.
    (seconds, requests)"""
    consumer, _ = connect(
        KafkaConsumer, settings, group_id=None, **client_config(settings, NAIVE_CLIENT)
    )
    try:
        partitions = {}
        for topic in topics:  # metadata and connection, untimed
            partitions[topic] = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))
            ]
            consumer.end_offsets(partitions[topic])
        before = support.broker_requests(NAIVE_CLIENT)
        started = time.monotonic()
        for topic in topics:
            consumer.end_offsets(partitions[topic])
            consumer.beginning_offsets(partitions[topic])
        return time.monotonic() - started, support.broker_requests(NAIVE_CLIENT) - before
    finally:
        consumer.close()


def query_per_topic(admin: TopicAdmin, topics: list[str]) -> tuple[float, int]:
    """This adapter's offsets query, made once per topic (its two requests go together),
    in the steady state (once the metadata cache holds every topic); (seconds, requests)."""
    admin.list_offsets(topics)  # fills the cache, untimed
    before = support.broker_requests(MONITOR_CLIENTS)
    started = time.monotonic()
    for topic in topics:
        admin.list_offsets([topic])
    return time.monotonic() - started, support.broker_requests(MONITOR_CLIENTS) - before


def counted_cycle(monitor: DepthMonitor) -> tuple[CycleReport, int]:
    """One monitor cycle and the broker requests its clients sent meanwhile."""
    before = support.broker_requests(MONITOR_CLIENTS)
    report = asyncio.run(monitor.cycle())
    return report, support.broker_requests(MONITOR_CLIENTS) - before


def median_of(rounds: int, measure: Callable[[], tuple[float, int]]) -> tuple[float, int]:
    results = sorted(measure() for _ in range(rounds))
    support.note("rounds: " + ", ".join(f"{seconds:.2f} s" for seconds, _ in results))
    return results[rounds // 2]


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
        monitor_admin, reader = monitor_clients(settings)
        monitor = DepthMonitor(monitor_admin, kube, reader=reader, resources=lambda: watched)
        support.note("first cycles (write every DLQ's figures, then its first inflow)")
        first, first_requests = counted_cycle(monitor)
        asyncio.run(monitor.cycle())
        support.note("a cycle in which nothing changed")
        watched = kube.list_objects(PLURAL)  # the statuses the first cycles wrote
        # The median of a few: one cycle of a tenth of a second is at the mercy of a
        # scheduler hiccup on a small machine.
        quiet_cycles = [counted_cycle(monitor) for _ in range(QUIET_CYCLES)]
        quiet, quiet_requests = sorted(quiet_cycles, key=lambda cycle: cycle[0].seconds)[
            QUIET_CYCLES // 2
        ]
        support.note(
            "quiet cycles: "
            + ", ".join(f"{r.seconds:.3f} s ({r.skipped} skipped)" for r, _ in quiet_cycles)
        )
        quiet_patches = max(report.patches for report, _ in quiet_cycles)
        # The per-topic admin below has the monitor's client ids: only it may count then.
        monitor_admin.close()
        reader.close()
        support.note("the original design: two requests per topic, one after the other")
        naive_seconds, naive_requests = median_of(
            NAIVE_ROUNDS, lambda: original_design(settings, topics)
        )
        support.note("this adapter's query, once per topic")
        per_topic_admin, _ = monitor_clients(settings)
        per_topic_seconds, per_topic_requests = median_of(
            NAIVE_ROUNDS, lambda: query_per_topic(per_topic_admin, topics)
        )

    print(f"\ndepth check of {args.dlqs} DLQs x 3 partitions\n")
    support.print_table(
        ["", "seconds", "broker requests", "status patches"],
        [
            ["monitor, first cycle", first.seconds, first_requests, first.patches],
            ["monitor, steady cycle (median)", quiet.seconds, quiet_requests, quiet_patches],
            ["original design, per topic", naive_seconds, naive_requests, None],
            ["this adapter, once per topic", per_topic_seconds, per_topic_requests, None],
        ],
    )
    print()
    print(
        support.verdict(
            "speed-up original design/monitor",
            naive_seconds / quiet.seconds,
            20.0,
            at_least=True,
            unit="x",
        )
    )
    batching_only = per_topic_seconds / quiet.seconds
    print(f"(speed-up over this adapter's query once per topic: {batching_only:.1f}x)")
    print(support.verdict("steady cycle", quiet.seconds, 1.0, at_least=False, unit=" s"))
    print(
        support.verdict("patches in a quiet cycle", float(quiet_patches), 1.0, at_least=False)
        + " (goal: 0)"
    )


if __name__ == "__main__":
    support.run(main)
