"""dlq-operator: dead-letter queues for Apache Kafka, declared as Kubernetes resources.

Platform operators declare ``DeadLetterQueue``, ``RetryPolicy`` and ``ReprocessRequest``
resources; the operator turns them into Kafka topics, retry workers, alerts and replays.
Applications put failed events on ``<topic>.dlq`` with :class:`DlqPublisher`.
"""

__version__ = "0.1.0"

API_GROUP = "dlq.orion.io"
API_VERSION = "v1alpha1"
