"""dlq-operator: dead-letter queues for Apache Kafka, declared as Kubernetes resources.

Platform operators declare ``DeadLetterQueue``, ``RetryPolicy`` and ``ReprocessRequest``
resources; the operator turns them into Kafka topics, retry workers, alerts and replays.
Applications put failed events on ``<topic>.dlq`` with :class:`DlqPublisher`.
"""

__version__ = "0.1.0"

API_GROUP = "dlq.orion.io"
API_VERSION = "v1alpha1"

# Topic names, shared by the API (a DLQ's default topic, its CEL rules) and the envelope
# (where an application dead-letters), which must not import each other.
DLQ_TOPIC_SUFFIX = ".dlq"
PARKED_TOPIC_SUFFIX = ".parked"


def dlq_topic_for(source_topic: str) -> str:
    """The dead-letter topic of a source topic: ``<topic>.dlq``."""
    return source_topic + DLQ_TOPIC_SUFFIX


def parked_topic_for(dlq_topic: str) -> str:
    """Where a DLQ's parked records go: ``<topic>.dlq.parked``."""
    return dlq_topic + PARKED_TOPIC_SUFFIX
