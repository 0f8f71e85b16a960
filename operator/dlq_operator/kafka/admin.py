"""Topic and consumer-group administration, batched: one call covers many topics or groups.

:class:`TopicAdmin` connects on first use and keeps one kafka-python admin client, which
reconnects by itself once a broker is back. The client caches group coordinators and
never forgets one, so when a coordinator moves the client is replaced. Offsets are listed
through a consumer without a group, the one kafka-python client that keeps partition
leaders between requests (see :mod:`.offsets`).
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
from kafka.consumer import KafkaConsumer
from kafka.structs import OffsetAndMetadata, TopicPartition
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_fixed,
)

from dlq_operator.errors import DlqError
from dlq_operator.kafka.connection import client_config, connect
from dlq_operator.kafka.errors import for_code, translate, translated
from dlq_operator.kafka.offsets import OffsetRanges, PipelinedOffsets
from dlq_operator.kafka.records import Partition
from dlq_operator.settings import KafkaSettings

Result = TypeVar("Result")

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

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        client_id: str = "dlq-operator-admin",
        partition_cache_seconds: float = 0.0,
    ) -> None:
        """``partition_cache_seconds``: how long :meth:`list_offsets` may take a topic's
        partitions from what it saw before instead of asking (0: always ask). Kafka's own
        clients refresh such metadata every 5 minutes."""
        self._settings = settings
        self._config = client_config(settings, client_id)
        self._lock = threading.Lock()
        self._client: KafkaAdminClient | None = None
        self._partition_cache_seconds = partition_cache_seconds
        # topic -> (when seen, its partitions)
        self._partition_cache: dict[str, tuple[float, list[TopicPartition]]] = {}
        # ListOffsets go through a consumer: it keeps partition leaders between calls,
        # where the admin client asks for metadata before every ListOffsets request.
        self._offsets_lock = threading.Lock()
        self._offsets_client: KafkaConsumer | None = None
        self._offsets_pipeline: PipelinedOffsets | None = None

    def close(self) -> None:
        """Disconnect; a later call connects again."""
        with self._lock:
            client, self._client = self._client, None
        with self._offsets_lock:
            offsets_client, self._offsets_client = self._offsets_client, None
            self._offsets_pipeline = None
        if client is not None:
            client.close()
        if offsets_client is not None:
            offsets_client.close()

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

        A constant number of requests whatever the number of topics: a metadata request for
        the topics whose partitions are not cached, then an earliest and a latest ListOffsets
        request per partition leader.
        """
        found = self._topic_partitions("list offsets", topics)
        partitions = [partition for listed in found.values() for partition in listed]
        if not partitions:
            return {}
        try:
            pipelined = self._offsets_pipelined(partitions)
            if pipelined is not None:
                return pipelined
            try:
                low, high = self._offsets_from_consumer(partitions)
            except KeyError:
                # kafka-python leaves out a partition whose leader it does not know yet (a
                # new topic: it fetches that metadata for next time); the admin client asks
                # for metadata before each request.
                low, high = self._offsets_from_admin(partitions)
        except DlqError:
            self._partition_cache.clear()  # a topic may be gone or changed: ask next time
            raise
        ranges: OffsetRanges = {topic: {} for topic in found}
        for partition in partitions:
            ranges[partition.topic][partition.partition] = (low[partition], high[partition])
        return ranges

    def _offsets_pipelined(self, partitions: list[TopicPartition]) -> OffsetRanges | None:
        with self._offsets_lock, translated("list offsets", self._settings.bootstrap_servers):
            return self._offsets_clients()[1].ranges(partitions)

    def _offsets_from_consumer(
        self, partitions: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        timeout = self._settings.request_timeout_ms
        with self._offsets_lock, translated("list offsets", self._settings.bootstrap_servers):
            client = self._offsets_clients()[0]
            return (
                client.beginning_offsets(partitions, timeout),
                client.end_offsets(partitions, timeout),
            )

    def _offsets_from_admin(
        self, partitions: list[TopicPartition]
    ) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]]:
        def offsets_at(spec: OffsetSpec) -> dict[TopicPartition, int]:
            request = dict.fromkeys(partitions, spec)
            found = self._run("list offsets", lambda admin: admin.list_partition_offsets(request))
            return {partition: at.offset for partition, at in found.items()}

        return offsets_at(OffsetSpec.EARLIEST), offsets_at(OffsetSpec.LATEST)

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

    def _topic_partitions(
        self, action: str, names: Iterable[str]
    ) -> dict[str, list[TopicPartition]]:
        """The partitions of each topic among ``names`` that exists: from the cache when
        seen recently enough, otherwise from one metadata request for all the others."""
        now = time.monotonic()
        found: dict[str, list[TopicPartition]] = {}
        unknown = []
        for name in set(names):
            seen = self._partition_cache.get(name)
            if seen is not None and now - seen[0] < self._partition_cache_seconds:
                found[name] = seen[1]
            else:
                unknown.append(name)
        for name, partitions in self._partitions(action, unknown).items():
            ids = sorted(p["partition_index"] for p in partitions)
            found[name] = [TopicPartition(name, p) for p in ids]
            self._partition_cache[name] = (now, found[name])
        return found

    def _offsets_clients(self) -> tuple[KafkaConsumer, PipelinedOffsets]:
        """The group-less consumer and the pipeline on its network client, connected."""
        if self._offsets_client is None or self._offsets_pipeline is None:
            config = {**self._config, "client_id": f"{self._config['client_id']}-offsets"}
            client, network = connect(
                KafkaConsumer, self._settings, group_id=None, enable_auto_commit=False, **config
            )
            self._offsets_client = client
            self._offsets_pipeline = PipelinedOffsets(network)
        return self._offsets_client, self._offsets_pipeline

    def _client_or_connect(self) -> KafkaAdminClient:
        with self._lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> KafkaAdminClient:
        client, _ = connect(KafkaAdminClient, self._settings, **self._config)
        return client

    def _run(self, action: str, operation: Callable[[KafkaAdminClient], Result]) -> Result:
        """Run an operation, waiting briefly while the client has no broker it may talk to
        (connecting, or backing off after a failed connect)."""
        retrying = Retrying(
            retry=retry_if_exception_type(kafka_errors.NodeNotReadyError),
            stop=stop_after_delay(_NODE_NOT_READY_WAIT_SECONDS),
            wait=wait_fixed(_NODE_NOT_READY_RETRY_SECONDS),
            reraise=True,
        )
        with translated(action, self._settings.bootstrap_servers):
            return retrying(lambda: operation(self._client_or_connect()))

    def _with_coordinator(
        self, action: str, operation: Callable[[KafkaAdminClient], Result]
    ) -> Result:
        """Run a group operation, waiting out a coordinator that is moving or loading."""

        def forget_moved_coordinator(attempt: RetryCallState) -> None:
            # The client never forgets a coordinator: a new one asks again (see the module doc).
            error = attempt.outcome.exception() if attempt.outcome else None
            if not isinstance(error, kafka_errors.CoordinatorLoadInProgressError):
                self.close()

        retrying = Retrying(
            retry=retry_if_exception_type(_COORDINATOR_MOVING),
            stop=stop_after_delay(self._settings.request_timeout_ms / 1000),
            wait=wait_fixed(_COORDINATOR_RETRY_SECONDS),
            before_sleep=forget_moved_coordinator,
            reraise=True,
        )
        with translated(action, self._settings.bootstrap_servers):
            return retrying(lambda: operation(self._client_or_connect()))

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
