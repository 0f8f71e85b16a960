"""One exception tree for the whole operator.

    DlqError
    ├── ConfigurationError          bad settings or arguments given to a process
    ├── PlatformError               the local platform (hack/) could not be built or started
    ├── KafkaError                  anything the broker did or did not do
    │   ├── KafkaUnavailable        broker unreachable or timed out: retry later
    │   ├── TopicNotFound           a topic that was expected does not exist
    │   └── TopicOperationRefused   the broker refused a create/alter/delete
    ├── KubeError                   anything the Kubernetes API did or did not do
    │   └── KubeUnavailable         API server unreachable: retry later
    ├── ReconcileError              desired state cannot be reached from this spec
    │   ├── NotSupported            e.g. shrinking partitions, changing replication factor
    │   ├── PolicyNotFound          spec.retry.policyRef names no RetryPolicy
    │   └── TopicConflict           another DLQ already claims this topic
    ├── EnvelopeError               a record that is not a valid DLQ envelope (has a reason)
    └── ReprocessError              a replay that cannot run as asked

Each error that ends up in a status condition carries a CamelCase ``reason``.
"""


class DlqError(Exception):
    """Base of every error raised by dlq-operator."""

    reason = "Error"


class ConfigurationError(DlqError):
    reason = "InvalidConfiguration"


class PlatformError(DlqError):
    reason = "PlatformUnavailable"


class KafkaError(DlqError):
    reason = "KafkaError"


class KafkaUnavailable(KafkaError):
    reason = "KafkaUnavailable"


class TopicNotFound(KafkaError):
    reason = "TopicNotFound"


class TopicOperationRefused(KafkaError):
    reason = "TopicOperationRefused"


class KubeError(DlqError):
    reason = "KubernetesError"


class KubeUnavailable(KubeError):
    reason = "KubernetesUnavailable"


class ReconcileError(DlqError):
    reason = "ReconcileFailed"


class NotSupported(ReconcileError):
    reason = "NotSupported"


class PolicyNotFound(ReconcileError):
    reason = "PolicyNotFound"


class TopicConflict(ReconcileError):
    reason = "TopicConflict"


class EnvelopeError(DlqError):
    """A record that is not a valid DLQ envelope; ``reason`` says why, for the parked header."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ReprocessError(DlqError):
    reason = "ReprocessFailed"
