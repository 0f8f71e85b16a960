"""One exception tree for the whole operator, its CLI and its publisher.

    DlqError
    ├── ConfigurationError            bad settings or arguments given to a process
    ├── SchemaError                   a model the CRD generator cannot express (also a ValueError)
    ├── KafkaError                    anything the broker did or did not do
    │   ├── KafkaUnavailable          broker unreachable or timed out: retry later
    │   ├── TopicNotFound             a topic that was expected does not exist
    │   └── TopicOperationRefused     the broker refused a create/alter/delete
    │       └── RecordRejected        the broker refused this record itself: park it
    │           └── RecordTooLarge    larger than the topic (or the producer) accepts
    ├── KubeError                     anything the Kubernetes API did or did not do
    │   ├── KubeUnavailable           API server unreachable: retry later
    │   └── ResourceNotFound          dlq-admin: the named object does not exist
    ├── EnvelopeError                 a record that is not a valid DLQ envelope (has a reason)
    ├── DlqSendFailed                 DlqPublisher could not dead-letter an event
    ├── NotADeadLetterTopic           dlq-admin: the topic is not a ``.dlq`` or ``.dlq.parked``
    ├── OffsetOutOfRange              dlq-admin: the partition or offset is not retained
    └── NotConfirmed                  dlq-admin: a purge not confirmed, or nothing to purge

kafka-python's exceptions become these by one table (``KAFKA_EXC_MAP`` in
:mod:`dlq_operator.kafka.errors`), the Kubernetes client's in :mod:`dlq_operator.kube.client`;
``dlq-admin`` gives each its exit code (:mod:`dlq_operator.cli.errors`). A worker tells "park
this record" from "retry later" by catching ``RecordTooLarge`` before ``RecordRejected``
before ``TopicNotFound`` before ``KafkaError``.

Each error has a CamelCase ``reason`` (for Events, status messages and the parked header).
This module imports nothing, so the publisher and the CLI can use it without the operator.
"""


class DlqError(Exception):
    """Base of every error raised by dlq-operator."""

    reason = "Error"


class ConfigurationError(DlqError):
    reason = "InvalidConfiguration"


class SchemaError(DlqError, ValueError):
    """A model uses a JSON-schema construct that a CRD cannot express."""

    reason = "InvalidSchema"


class KafkaError(DlqError):
    reason = "KafkaError"


class KafkaUnavailable(KafkaError):
    reason = "KafkaUnavailable"


class TopicNotFound(KafkaError):
    reason = "TopicNotFound"


class TopicOperationRefused(KafkaError):
    reason = "TopicOperationRefused"


class RecordRejected(TopicOperationRefused):
    """The broker refused this record itself; sending it again cannot succeed."""

    reason = "RecordRejected"


class RecordTooLarge(RecordRejected):
    """The record is larger than the topic (or the producer) accepts."""

    reason = "RecordTooLarge"


class KubeError(DlqError):
    reason = "KubernetesError"


class KubeUnavailable(KubeError):
    reason = "KubernetesUnavailable"


class ResourceNotFound(KubeError):
    reason = "ResourceNotFound"


class EnvelopeError(DlqError):
    """A record that is not a valid DLQ envelope; ``reason`` says why, for the parked header."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DlqSendFailed(DlqError):
    """The event could not be dead-lettered: do not commit its offset."""

    reason = "DlqSendFailed"


class NotADeadLetterTopic(DlqError):
    reason = "NotADeadLetterTopic"


class OffsetOutOfRange(DlqError):
    reason = "OffsetOutOfRange"


class NotConfirmed(DlqError):
    reason = "NotConfirmed"
