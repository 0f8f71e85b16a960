"""The Kafka adapter: the only package that imports kafka-python.

Everything here is synchronous and blocks the calling thread; async code calls it through
``asyncio.to_thread`` (or ``asyncio.wrap_future`` for :meth:`RecordProducer.send`). Values
in and out are plain Python: names, ``(topic, partition)`` tuples, offsets and the records
of :mod:`.records`. Every kafka-python exception leaves as one of
:mod:`dlq_operator.errors`, by one table (:data:`.errors.KAFKA_EXC_MAP`).

- :class:`TopicAdmin`: topics, offsets and consumer groups, batched for many at once.
- :class:`RecordProducer`: acks=all, idempotent producer of
  :class:`~dlq_operator.envelope.KafkaRecord`.
- :class:`RecordReader`: offsets and ranges of records of a topic, without a group.
- :class:`GroupConsumer`: a consumer-group member with explicit commits.

Clients connect on first use and reconnect by themselves once a broker is back.
The few uses of kafka-python's private internals are all in :mod:`._compat`.
"""

from dlq_operator.kafka.admin import (
    CommittedOffsets,
    OffsetRanges,
    TopicAdmin,
    TopicDescription,
    TopicSpec,
)
from dlq_operator.kafka.consumer import GroupConsumer
from dlq_operator.kafka.producer import Delivery, RecordProducer
from dlq_operator.kafka.reader import RecordReader
from dlq_operator.kafka.records import ConsumedRecord, Partition, ProducedRecord

__all__ = [
    "CommittedOffsets",
    "ConsumedRecord",
    "Delivery",
    "GroupConsumer",
    "OffsetRanges",
    "Partition",
    "ProducedRecord",
    "RecordProducer",
    "RecordReader",
    "TopicAdmin",
    "TopicDescription",
    "TopicSpec",
]
