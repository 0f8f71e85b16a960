"""Exit codes of ``dlq-admin``.

====  =====================================================================
code  meaning
====  =====================================================================
0     done
1     failed: a replay that failed, a refused request, a purge not confirmed
2     usage error: an unknown option, a value that does not parse
3     the topic does not exist
4     the topic is not a dead-letter topic (``.dlq``, ``.dlq.parked``);
      ``--force`` reads it anyway with ``list`` and ``show``
5     the partition or offset is out of range (not retained)
6     Kafka unreachable
7     the Kubernetes API server unreachable
8     the DeadLetterQueue or ReprocessRequest named does not exist
130   interrupted (Ctrl-C); a replay stops after its last acknowledged batch
====  =====================================================================

Errors of the project's tree (:mod:`dlq_operator.errors`) are mapped by
:func:`exit_code_for`; a command never prints a traceback.
"""

from __future__ import annotations

from enum import IntEnum

from pydantic import ValidationError

from dlq_operator.errors import (
    ConfigurationError,
    KafkaUnavailable,
    KubeUnavailable,
    NotADeadLetterTopic,
    OffsetOutOfRange,
    ResourceNotFound,
    TopicNotFound,
)


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    UNKNOWN_TOPIC = 3
    NOT_A_DEAD_LETTER_TOPIC = 4
    OUT_OF_RANGE = 5
    KAFKA_UNREACHABLE = 6
    CLUSTER_UNREACHABLE = 7
    RESOURCE_NOT_FOUND = 8
    INTERRUPTED = 130


EXIT_CODES_HELP = (
    "Exit codes: 0 done; 1 failed; 2 usage error; 3 unknown topic; "
    "4 not a dead-letter topic; 5 partition or offset out of range; "
    "6 Kafka unreachable; 7 Kubernetes API unreachable; 8 resource not found; "
    "130 interrupted."
)


# Most specific first: the first class an error is an instance of gives its code.
_EXIT_CODES: tuple[tuple[type[Exception], ExitCode], ...] = (
    (TopicNotFound, ExitCode.UNKNOWN_TOPIC),
    (NotADeadLetterTopic, ExitCode.NOT_A_DEAD_LETTER_TOPIC),
    (OffsetOutOfRange, ExitCode.OUT_OF_RANGE),
    (KafkaUnavailable, ExitCode.KAFKA_UNREACHABLE),
    (KubeUnavailable, ExitCode.CLUSTER_UNREACHABLE),
    (ResourceNotFound, ExitCode.RESOURCE_NOT_FOUND),
    (ConfigurationError, ExitCode.USAGE),
    (ValidationError, ExitCode.USAGE),
)


def exit_code_for(error: Exception) -> ExitCode:
    """The documented exit code for an error that ends a command."""
    for kind, code in _EXIT_CODES:
        if isinstance(error, kind):
            return code
    return ExitCode.FAILED
