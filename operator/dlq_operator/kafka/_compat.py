"""The only uses of kafka-python's private internals, each with what it does and why.

Everything else in :mod:`dlq_operator.kafka` keeps to kafka-python's public API. What is
here reaches into attributes that kafka-python may rename or drop in any release, so
pyproject.toml pins kafka-python to the minor version these were checked against
(3.0.12), and a new version is taken only once each use below is checked again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kafka.consumer import KafkaConsumer
from kafka.net.compat import KafkaNetClient


def send_together(network: KafkaNetClient, requests: Sequence[tuple[int, Any]]) -> list[Any]:
    """Sends each ``(node id, request)`` at once and waits for all the responses, in order.

    Uses ``KafkaNetClient._net.run`` (runs a coroutine on the client's IO loop and waits for
    it) and ``KafkaNetClient._manager.send`` (queues a request on a node's connection and
    returns a future the IO loop resolves). The public ``send_and_receive`` waits for each
    response before the next request is sent, and the consumer's offset calls build and
    await their requests one after the other; neither pipelines. Checked against
    kafka-python 3.0.12.
    """

    async def send_all() -> list[Any]:
        futures = [network._manager.send(request, node_id=node) for node, request in requests]
        return [await future for future in futures]

    return network._net.run(send_all)


def finish_interrupted_join(consumer: KafkaConsumer) -> None:
    """Makes the next poll finish a group join that this poll's timeout interrupted.

    kafka-python 3.0 starts a rejoin when the group leader sees the topic's partitions change
    (as when a member first joins before it knows a new topic's partitions), without marking
    that a rejoin is due. The leader records the new assignment's metadata while computing
    it; a poll that times out before the SyncGroup answer then leaves a join that no later
    poll awaits, and the member keeps its old, possibly empty, assignment for good.

    Reads ``KafkaConsumer._coordinator`` (the consumer's group coordinator) and its
    ``_join_task`` (the join in flight, None when there is none), and calls the
    coordinator's ``request_rejoin()``, which makes the next poll await a join. The
    consumer's public API neither shows a join in flight nor asks for a rejoin. Checked
    against kafka-python 3.0.12.
    """
    coordinator = consumer._coordinator
    if getattr(coordinator, "_join_task", None) is not None:
        coordinator.request_rejoin()
