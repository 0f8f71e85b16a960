"""The low and high offsets of many partitions in one round trip.

kafka-python's consumer asks for the earliest offsets, waits for them, then asks for the
latest, building each request partition by partition every time. For the depth monitor's
3,000 partitions that was most of a cycle. Here the ListOffsets requests (earliest and
latest, per partition leader) are built once per set of partitions and leaders, sent
together, and their answers read straight from the responses: half the time.

Anything unusual (a leader not known yet, an error for a partition) gives None, and the
caller falls back to the consumer's own calls, which refresh metadata and retry.
"""

from __future__ import annotations

from typing import Any

from kafka.net.compat import KafkaNetClient
from kafka.protocol.consumer import IsolationLevel, ListOffsetsRequest, OffsetSpec
from kafka.structs import TopicPartition

from dlq_operator.kafka._compat import send_together

OffsetRanges = dict[str, dict[int, tuple[int, int]]]
"""topic -> partition -> (low, high): the retained records are ``low .. high - 1``."""

_Requests = list[tuple[int, bool, Any]]  # (leader node, earliest?, ListOffsetsRequest)


class PipelinedOffsets:
    """Offset ranges through the network client of a consumer without a group."""

    def __init__(self, network: KafkaNetClient) -> None:
        self._network = network
        self._built: tuple[tuple[Any, ...], _Requests] | None = None

    def ranges(self, partitions: list[TopicPartition]) -> OffsetRanges | None:
        """(low, high) of every partition; None when the consumer's calls must do it."""
        leaders = tuple(map(self._network.cluster.leader_for_partition, partitions))
        if any(leader is None or leader < 0 for leader in leaders):
            return None
        key = (tuple(partitions), leaders)
        if self._built is None or self._built[0] != key:
            self._built = (key, _requests(partitions, leaders))
        requests = self._built[1]
        responses = send_together(self._network, [(node, req) for node, _, req in requests])
        lows: dict[str, dict[int, int]] = {}
        highs: dict[str, dict[int, int]] = {}
        for (_, earliest, _), response in zip(requests, responses, strict=True):
            found = lows if earliest else highs
            for topic in response.topics:
                offsets = found.setdefault(topic.name, {})
                for answer in topic.partitions:
                    if answer.error_code:
                        return None
                    offsets[answer.partition_index] = answer.offset
        ranges: OffsetRanges = {}
        try:
            for topic, by_partition in highs.items():
                low = lows[topic]
                ranges[topic] = {p: (low[p], high) for p, high in by_partition.items()}
        except KeyError:  # a partition answered in one request only
            return None
        if sum(map(len, ranges.values())) != len(partitions):
            return None
        return ranges


def _requests(partitions: list[TopicPartition], leaders: tuple[int, ...]) -> _Requests:
    by_leader: dict[int, dict[str, list[int]]] = {}
    for partition, leader in zip(partitions, leaders, strict=True):
        by_leader.setdefault(leader, {}).setdefault(partition.topic, []).append(partition.partition)
    return [
        (leader, spec is OffsetSpec.EARLIEST, _request(topics, int(spec)))
        for leader, topics in by_leader.items()
        for spec in (OffsetSpec.EARLIEST, OffsetSpec.LATEST)
    ]


def _request(topics: dict[str, list[int]], timestamp: int) -> Any:
    entry = ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition
    return ListOffsetsRequest(
        isolation_level=int(IsolationLevel.READ_UNCOMMITTED),
        topics=[
            (
                topic,
                [
                    entry(partition_index=p, current_leader_epoch=-1, timestamp=timestamp)
                    for p in ids
                ],
            )
            for topic, ids in topics.items()
        ],
    )
