"""Topic and consumer-group administration, batched: one call covers many topics or groups.

:class:`TopicAdmin` connects on first use and keeps one kafka-python admin client, which
reconnects by itself once a broker is back. The client caches group coordinators and
never forgets one, so when a coordinator moves the client is replaced.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kafka.errors as kafka_errors
from kafka.admin import (
    AlterConfigOp,
    ConfigResource,
    ConfigResourceType,
    KafkaAdminClient,
    OffsetSpec,
)
from kafka.structs import OffsetAndMetadata, TopicPartition

from dlq_operator.kafka.connection import client_config, connect
from dlq_operator.kafka.errors import for_code, translate, translated
from dlq_operator.kafka.records import Partition
from dlq_operator.settings import KafkaSettings

Result = TypeVar("Result")

OffsetRanges = dict[str, dict[int, tuple[int, int]]]
"""topic -> partition -> (low, high): the retained records are ``low .. high - 1``."""
CommittedOffsets = dict[str, dict[str, dict[int, int]]]
"""group -> topic -> partition -> committed offset."""

_MISSING_TOPIC_CODES = {
    kafka_errors.UnknownTopicOrPartitionError.errno,
    kafka_errors.InvalidTopicError.errno,
}
_COORDINATOR_MOVING = (
    kafka_errors.CoordinatorNotAvailableError,
    kafka_errors.CoordinatorLoadInProgressError,
    kafka_errors.NotCoordinatorError,
)
_COORDINATOR_RETRY_SECONDS = 0.2
# Right after connecting, concurrent callers can find no broker ready yet; an outage
# still surfaces within a couple of seconds.
_NODE_NOT_READY_WAIT_SECONDS = 2.0
_NODE_NOT_READY_RETRY_SECONDS = 0.05
_BROKER_ERROR = re.compile(r"\[Error (-?\d+)\] \w+: ?(.*)", re.DOTALL)


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create; ``replication_factor`` None means the broker's default."""

    name: str
    partitions: int
    replication_factor: int | None = None
    configs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TopicDescription:
    """An existing topic; ``configs`` holds only the values set on the topic itself."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str]


class TopicAdmin:
    """Topics, offsets and consumer groups of one Kafka cluster (synchronous, thread-safe)."""

    def __init__(self, settings: KafkaSettings, *, client_id: str = "dlq-operator-admin") -> None:
        self._settings = settings
        self._config = client_config(settings, client_id)
        self._lock = threading.Lock()
        self._client: KafkaAdminClient | None = None
        self._requests = 0

    @property
    def requests_sent(self) -> int:
        """Requests sent to brokers so far, metadata refreshes included (for benchmarks)."""
        return self._requests

    def close(self) -> None:
        """Disconnect; a later call connects again."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> TopicAdmin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- topics ----------------------------------------------------------------

    def topic_exists(self, name: str) -> bool:
        return name in self._partitions("check topic", [name])

    def describe_topics(self, names: Iterable[str]) -> dict[str, TopicDescription]:
        """The topics among ``names`` that exist: one metadata and one configs request."""
        found = self._partitions("describe topics", names)
        if not found:
            return {}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in found]
        configs = self._run(
            "describe topic configs", lambda admin: admin.describe_configs(resources)
        )
        by_topic = configs.get("topic", {})
        return {
            name: TopicDescription(
                name=name,
                partitions=len(partitions),
                replication_factor=len(partitions[0]["replica_nodes"]) if partitions else 0,
                configs={
                    key: entry["value"]
                    for key, entry in by_topic.get(name, {}).items()
                    if entry["config_source"] == "DYNAMIC_TOPIC_CONFIG"
                    and entry["value"] is not None
                },
            )
            for name, partitions in found.items()
        }

    def create_topics(self, specs: Iterable[TopicSpec], *, wait: bool = True) -> set[str]:
        """Create topics and (with ``wait``) wait until they can be used; returns those that
        already existed."""
        request = {
            spec.name: {
                "num_partitions": spec.partitions,
                "replication_factor": -1
                if spec.replication_factor is None
                else spec.replication_factor,
                "configs": dict(spec.configs),
            }
            for spec in specs
        }
        if not request:
            return set()
        response = self._run(
            "create topics", lambda admin: admin.create_topics(request, raise_errors=False)
        )
        existing, created, failures = set(), [], []
        for topic in response["topics"]:
            code = topic["error_code"]
            if code == 0:
                created.append(topic["name"])
            elif code == kafka_errors.TopicAlreadyExistsError.errno:
                existing.add(topic["name"])
            else:
                failures.append(for_code(code, f"{topic['name']}: {topic['error_message']}"))
        if created and wait:
            # Creation is acknowledged before every broker knows the topic's leaders.
            timeout = self._settings.request_timeout_ms
            self._run("wait for new topics", lambda admin: admin.wait_for_topics(created, timeout))
        self._raise_first("create topics", failures)
        return existing

    def alter_topic_configs(self, changes: Mapping[str, Mapping[str, str | None]]) -> None:
        """Set the given keys on each topic (``None`` removes one: the broker's default applies
        again), leaving its other configs as they are.

        One IncrementalAlterConfigs request (Kafka 2.3+) for all topics; a key not given
        keeps its value, unlike the legacy AlterConfigs, which resets it to the default.
        """
        resources = [
            ConfigResource(
                ConfigResourceType.TOPIC,
                name,
                {
                    key: (AlterConfigOp.DELETE, None) if value is None else value
                    for key, value in configs.items()
                },
            )
            for name, configs in changes.items()
            if configs
        ]
        if not resources:
            return
        outcome = self._run(
            "alter topic configs",
            lambda admin: admin.alter_configs(resources, raise_on_unknown=False, incremental=True),
        )
        # kafka-python reports each topic's outcome as "OK" or the text of the broker error.
        self._raise_first(
            "alter topic configs",
            [
                _error_from_text(name, text)
                for name, text in outcome.get("topic", {}).items()
                if text != "OK"
            ],
        )

    def create_partitions(self, totals: Mapping[str, int]) -> None:
        """Grow each topic to the given total number of partitions."""
        if not totals:
            return
        response = self._run(
            "create partitions",
            lambda admin: admin.create_partitions(dict(totals), raise_errors=False),
        )
        self._raise_first(
            "create partitions",
            [
                for_code(result.error_code, f"{result.name}: {result.error_message}")
                for result in response.results
                if result.error_code
            ],
        )

    def delete_topics(self, names: Iterable[str]) -> None:
        """Delete topics; those that do not exist are ignored."""
        names = list(names)
        if not names:
            return
        response = self._run(
            "delete topics", lambda admin: admin.delete_topics(names, raise_errors=False)
        )
        self._raise_first(
            "delete topics",
            [
                for_code(topic["error_code"], f"{topic['name']}: {topic['error_message']}")
                for topic in response["topics"]
                if topic["error_code"] not in (0, *_MISSING_TOPIC_CODES)
            ],
        )

    def broker_default_replication_factor(self) -> int:
        """``default.replication.factor`` of a broker of the cluster."""
        cluster = self._run("describe cluster", lambda admin: admin.describe_cluster())
        broker = str(cluster["brokers"][0]["broker_id"])
        resource = ConfigResource(ConfigResourceType.BROKER, broker, ["default.replication.factor"])
        configs = self._run(
            "describe broker configs",
            lambda admin: admin.describe_configs([resource], config_filter="all"),
        )
        return int(configs["broker"][broker]["default.replication.factor"]["value"])

    # -- offsets and records ---------------------------------------------------

    def list_offsets(self, topics: Iterable[str]) -> OffsetRanges:
        """The (low, high) offsets of every partition of the topics that exist.

        A constant number of requests whatever the number of topics: one metadata request,
        then for the earliest and for the latest offsets one metadata request and one
        ListOffsets request per partition leader.
        """
        found = self._partitions("list offsets", topics)
        partitions = [
            TopicPartition(topic, partition["partition_index"])
            for topic, described in found.items()
            for partition in described
        ]
        if not partitions:
            return {}

        def offsets_at(spec: OffsetSpec) -> dict[TopicPartition, Any]:
            request = dict.fromkeys(partitions, spec)
            return self._run("list offsets", lambda admin: admin.list_partition_offsets(request))

        low, high = offsets_at(OffsetSpec.EARLIEST), offsets_at(OffsetSpec.LATEST)
        ranges: OffsetRanges = {topic: {} for topic in found}
        for partition in partitions:
            ranges[partition.topic][partition.partition] = (
                low[partition].offset,
                high[partition].offset,
            )
        return ranges

    def committed_offsets(self, groups: Mapping[str, Iterable[str]]) -> CommittedOffsets:
        """Offsets committed by each group on the given topics; nothing committed is absent.

        One OffsetFetch request per group coordinator for all groups (Kafka 3.0+), after
        one FindCoordinator request for the groups whose coordinator is not yet known.
        """
        wanted = {group: set(topics) for group, topics in groups.items()}
        if not wanted:
            return {}
        fetched = self._with_coordinator(
            "read committed offsets",
            lambda admin: admin.list_group_offsets(dict.fromkeys(wanted)),
        )
        committed: CommittedOffsets = {}
        for group, offsets in fetched.items():
            for partition, committed_offset in offsets.items():
                if partition.topic in wanted.get(group, ()) and committed_offset.offset >= 0:
                    topics = committed.setdefault(group, {})
                    topics.setdefault(partition.topic, {})[partition.partition] = (
                        committed_offset.offset
                    )
        return committed

    def commit_group_offsets(self, group: str, offsets: Mapping[Partition, int]) -> None:
        """Commit offsets for a consumer group that has no active members."""
        request = {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()
        }
        if not request:
            return

        def commit(admin: KafkaAdminClient) -> None:
            for error in admin.alter_group_offsets(group, request).values():
                if error is not kafka_errors.NoError:
                    raise error(f"group {group}")

        self._with_coordinator("commit group offsets", commit)

    def delete_records(self, before: Mapping[str, Mapping[int, int]]) -> dict[str, dict[int, int]]:
        """Delete the records before the given offsets (-1: the high watermark).

        Returns the new low offset of each partition.
        """
        request = {
            TopicPartition(topic, partition): offset
            for topic, partitions in before.items()
            for partition, offset in partitions.items()
        }
        if not request:
            return {}
        response = self._run("delete records", lambda admin: admin.delete_records(request))
        lows: dict[str, dict[int, int]] = {}
        for partition, result in response.items():
            lows.setdefault(partition.topic, {})[partition.partition] = result["low_watermark"]
        return lows

    # -- plumbing --------------------------------------------------------------

    def _partitions(self, action: str, names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Metadata of the topics among ``names`` that exist, with their partitions."""
        names = sorted(set(names))
        if not names:
            return {}
        topics = self._run(action, lambda admin: admin.describe_topics(names))
        found = {}
        for topic in topics:
            code = topic["error_code"]
            if code == 0:
                found[topic["name"]] = topic["partitions"]
            elif code not in _MISSING_TOPIC_CODES:
                raise self._translate(for_code(code, topic["name"]), action)
        return found

    def _client_or_connect(self) -> KafkaAdminClient:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> KafkaAdminClient:
        client, network = connect(KafkaAdminClient, self._settings, **self._config)
        manager = network._manager
        send = manager.send

        # kafka-python keeps no request count; wrapping the one method every request goes
        # through gives an exact count for free.
        def counted_send(*args: Any, **kwargs: Any) -> Any:
            self._requests += 1
            return send(*args, **kwargs)

        manager.send = counted_send
        return client

    def _run(self, action: str, operation: Callable[[KafkaAdminClient], Result]) -> Result:
        """Run an operation, waiting briefly while the client has no broker it may talk to
        (connecting, or backing off after a failed connect)."""
        deadline = time.monotonic() + _NODE_NOT_READY_WAIT_SECONDS
        with translated(action, self._settings.bootstrap_servers):
            while True:
                try:
                    return operation(self._client_or_connect())
                except kafka_errors.NodeNotReadyError:
                    if time.monotonic() >= deadline:
                        raise
                time.sleep(_NODE_NOT_READY_RETRY_SECONDS)

    def _with_coordinator(
        self, action: str, operation: Callable[[KafkaAdminClient], Result]
    ) -> Result:
        """Run a group operation, waiting out a coordinator that is moving or loading."""
        deadline = time.monotonic() + self._settings.request_timeout_ms / 1000
        while True:
            admin = self._client_or_connect()
            try:
                return operation(admin)
            except _COORDINATOR_MOVING as exc:
                if time.monotonic() >= deadline:
                    raise self._translate(exc, action) from exc
                if not isinstance(exc, kafka_errors.CoordinatorLoadInProgressError):
                    self.close()
            except kafka_errors.KafkaError as exc:
                raise self._translate(exc, action) from exc
            time.sleep(_COORDINATOR_RETRY_SECONDS)

    def _translate(self, exc: kafka_errors.KafkaError, action: str) -> Exception:
        return translate(exc, action, self._settings.bootstrap_servers)

    def _raise_first(self, action: str, failures: list[kafka_errors.KafkaError]) -> None:
        if failures:
            raise self._translate(failures[0], f"{action} ({len(failures)} failed)")


def _error_from_text(topic: str, text: str) -> kafka_errors.KafkaError:
    match = _BROKER_ERROR.match(text)
    if match is None:
        return kafka_errors.KafkaError(f"{topic}: {text}")
    return for_code(int(match.group(1)), f"{topic}: {match.group(2)}")
