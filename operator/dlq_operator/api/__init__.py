"""The API of dlq-operator: the three kinds of ``dlq.orion.io/v1alpha1``, as pydantic models.

These models are the source of truth. The CRDs in ``crds/`` are generated from them
(``python -m dlq_operator.api.crdgen``), so the cluster and the code agree on every field,
default, bound and rule:

- a field's ``description`` is its ``kubectl explain`` text;
- a default in a model is the default the API server fills in, so
  ``DeadLetterQueueSpec.model_validate(body["spec"])`` sees what the cluster stored;
- cross-field rules are CEL rules (``x-kubernetes-validations``) in the CRD and
  ``model_validator``s with the same message in Python, so the CLI and domain code refuse
  what admission refuses; rules on ``oldSelf`` (immutable fields, partitions that only grow)
  exist only in the cluster.

Spec models forbid unknown fields (typos are errors); status models ignore them (kopf keeps
its own bookkeeping in ``status``). Python names are snake_case, the wire is camelCase;
models accept both and dump camelCase.

Kinds:

- :class:`DeadLetterQueueSpec` / :class:`DeadLetterQueueStatus` (``dlq``): the dead-letter
  topic ``<sourceTopic>.dlq`` of one source topic, its retries and its alerts.
- :class:`RetryPolicySpec` / :class:`RetryPolicyStatus` (``rp``): max retries, backoff,
  errors never retried; shared by many DeadLetterQueues.
- :class:`ReprocessRequestSpec` / :class:`ReprocessRequestStatus` (``rpr``): one replay of
  selected dead messages, immutable once created except ``suspend``.

:data:`KINDS` describes each kind's names (kind, plural, short names) and printer columns; the
CRD generator and ``dlq-admin`` take a kind's plural from it (``DEAD_LETTER_QUEUE.plural``).
"""

from dlq_operator.api.common import (
    Condition,
    ConditionStatus,
    Duration,
    ObjectRef,
    ResourceKind,
    Timestamp,
    format_timestamp,
    parse_duration,
)
from dlq_operator.api.conditions import get_condition, set_condition
from dlq_operator.api.deadletterqueue import (
    DEAD_LETTER_QUEUE,
    AlertingSpec,
    AlertLevel,
    AlertMetric,
    DeadLetterQueueSpec,
    DeadLetterQueueStatus,
    DeletionPolicy,
    ParkedTopicSpec,
    ResourceRequirements,
    RetrySpec,
    TopicSpec,
    TopicStatus,
)
from dlq_operator.api.reprocessrequest import (
    REPROCESS_REQUEST,
    TERMINAL_PHASES,
    MessageSelector,
    PartitionCheckpoint,
    RateLimit,
    ReplaySample,
    ReprocessPhase,
    ReprocessRequestSpec,
    ReprocessRequestStatus,
    ReprocessSource,
    ReprocessTarget,
)
from dlq_operator.api.retrypolicy import (
    RETRY_POLICY,
    BackoffSpec,
    RetryPolicySpec,
    RetryPolicyStatus,
)

KINDS: tuple[ResourceKind, ...] = (DEAD_LETTER_QUEUE, RETRY_POLICY, REPROCESS_REQUEST)

__all__ = [
    "DEAD_LETTER_QUEUE",
    "KINDS",
    "REPROCESS_REQUEST",
    "RETRY_POLICY",
    "TERMINAL_PHASES",
    "AlertLevel",
    "AlertMetric",
    "AlertingSpec",
    "BackoffSpec",
    "Condition",
    "ConditionStatus",
    "DeadLetterQueueSpec",
    "DeadLetterQueueStatus",
    "DeletionPolicy",
    "Duration",
    "MessageSelector",
    "ObjectRef",
    "ParkedTopicSpec",
    "PartitionCheckpoint",
    "RateLimit",
    "ReplaySample",
    "ReprocessPhase",
    "ReprocessRequestSpec",
    "ReprocessRequestStatus",
    "ReprocessSource",
    "ReprocessTarget",
    "ResourceKind",
    "ResourceRequirements",
    "RetryPolicySpec",
    "RetryPolicyStatus",
    "RetrySpec",
    "Timestamp",
    "TopicSpec",
    "TopicStatus",
    "format_timestamp",
    "get_condition",
    "parse_duration",
    "set_condition",
]
