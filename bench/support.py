"""Helpers shared by the benchmarks: the local platform, topics, child processes, results.

A benchmark measures something next to a baseline measured in the same run and prints the
ratio: machines are noisy and absolute times drift, a ratio much less so. Each benchmark
is a script (``make bench`` runs every ``bench/*.py``) whose ``main`` is wrapped by
:func:`run`: a missed goal is a result (exit 0), a benchmark that could not run is an
error (exit 2).

The platform is the one the tests use (``hack/local_platform.py``): a fresh one in a
temporary directory, torn down afterwards, or the one already running when
``DLQ_PLATFORM_REUSE=1`` and ``DLQ_PLATFORM_DIR`` point at it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
from kafka.net.manager import KafkaConnectionManager
from kubernetes import client
from kubernetes.client import ApiClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "hack"))

import local_platform  # noqa: E402

T = TypeVar("T")
MIB = 1024 * 1024
_STARTED = time.monotonic()


class BenchError(RuntimeError):
    """The benchmark itself could not run (as opposed to a goal it missed)."""


def run(main: Callable[[], None]) -> None:
    """Runs a benchmark's ``main`` and exits: 0 when it ran, 2 when it could not."""
    try:
        main()
    except (BenchError, local_platform.PlatformError) as exc:
        print(f"benchmark could not run: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        traceback.print_exc()
        print("benchmark could not run (see the traceback above)", file=sys.stderr)
        sys.exit(2)
    sys.exit(0)


# -- the platform -----------------------------------------------------------------------------


@contextlib.contextmanager
def platform() -> Iterator[dict[str, str]]:
    """The environment of a running local platform (``DLQ_KAFKA_BOOTSTRAP_SERVERS``, ...)."""
    if os.environ.get("DLQ_PLATFORM_REUSE") == "1" and os.environ.get("DLQ_PLATFORM_DIR"):
        yield local_platform.Platform().up(build=False)
        return
    with tempfile.TemporaryDirectory(prefix="dlq-bench-") as state_dir:
        running = local_platform.Platform(Path(state_dir) / "platform")
        started = time.monotonic()
        note("starting a fresh local platform")
        try:
            env = running.up()
            note(f"platform up in {time.monotonic() - started:.0f} s")
            yield env
        finally:
            running.down()


def free_port() -> int:
    return local_platform.free_port()


def apply_crds(api: ApiClient) -> None:
    """The project's CRDs, applied and served."""
    extensions = client.ApiextensionsV1Api(api)
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        try:
            extensions.create_custom_resource_definition(crd)
        except client.ApiException as exc:
            if exc.status != 409:
                raise
    objects = client.CustomObjectsApi(api)
    wait_until(lambda: _listable(objects), 60, "CRDs established")


def _listable(objects: client.CustomObjectsApi) -> bool:
    try:
        objects.list_cluster_custom_object("dlq.orion.io", "v1alpha1", "deadletterqueues")
        return True
    except client.ApiException:
        return False


# -- topics -----------------------------------------------------------------------------------


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    configs: Mapping[str, str] | None = None,
) -> None:
    """Creates the topics (one replica each) and waits until they can be used."""
    names = list(names)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(name, partitions, replication_factor=1, topic_configs=dict(configs or {}))
                for name in names
            ]
        )
        admin.wait_for_topics(names, 30_000)
    finally:
        admin.close()


class TopicReader:
    """Offsets and single records of topics, read without a consumer group."""

    def __init__(self, bootstrap: str) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def partitions(self, topic: str) -> list[TopicPartition]:
        found = self._consumer.partitions_for_topic(topic)
        if not found:
            raise BenchError(f"topic {topic} does not exist")
        return [TopicPartition(topic, p) for p in sorted(found)]

    def ends(self, topic: str) -> dict[int, int]:
        """The end offset of every partition: where the next record produced will be."""
        partitions = self.partitions(topic)
        return {p.partition: end for p, end in self._consumer.end_offsets(partitions).items()}

    def ranges(
        self, topic: str, since: Mapping[int, int] | None = None
    ) -> dict[TopicPartition, tuple[int, int]]:
        """(first, end) offsets of every partition: the records are ``first .. end - 1``;
        only those from ``since`` (partition -> offset, from :meth:`ends`) when given."""
        partitions = self.partitions(topic)
        first = self._consumer.beginning_offsets(partitions)
        end = self._consumer.end_offsets(partitions)
        since = since or {}
        return {p: (max(first[p], since.get(p.partition, 0)), end[p]) for p in partitions}

    def count(self, topic: str, since: Mapping[int, int] | None = None) -> int:
        """Records in ``topic`` (all partitions), from its offsets."""
        return sum(end - first for first, end in self.ranges(topic, since).values())

    def timestamp_span(
        self, topic: str, since: Mapping[int, int] | None = None
    ) -> tuple[int, float, float]:
        """(records, first, last): the count and the earliest and latest record timestamps
        in epoch seconds.

        Reads only the first and last record of each partition: within a partition
        records are stored in the order they were produced, so these hold the extremes.
        """
        stamps = []
        count = 0
        for partition, (first, end) in self.ranges(topic, since).items():
            if end > first:
                count += end - first
                stamps += (self._timestamp_at(partition, o) for o in (first, end - 1))
        if not stamps:
            raise BenchError(f"topic {topic} has no records to time")
        return count, min(stamps) / 1000, max(stamps) / 1000

    def _timestamp_at(self, partition: TopicPartition, offset: int) -> int:
        self._consumer.assign([partition])
        self._consumer.seek(partition, offset)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for record in self._consumer.poll(timeout_ms=1000, max_records=1).get(partition, []):
                return record.timestamp
        raise BenchError(f"could not read {partition.topic}/{partition.partition}@{offset}")


# -- broker requests --------------------------------------------------------------------------

_sent: Counter[str] = Counter()  # requests sent, by client id
_sent_lock = threading.Lock()  # each client sends from its own IO thread


def broker_requests(client_id: str) -> int:
    """Requests sent so far by this process's kafka-python clients whose client id starts
    with ``client_id`` (metadata refreshes included); counted from the first call on, so
    take differences.

    kafka-python keeps no such count, but every request of every client goes through one
    method, ``KafkaConnectionManager.send`` (kafka-python 3.0.12), all but a connection's
    own handshake (ApiVersions, SASL); wrapping it, for the whole process, counts exactly.
    """
    send = KafkaConnectionManager.send
    if not getattr(send, "counted", False):

        def counted_send(manager: KafkaConnectionManager, *args: Any, **kwargs: Any) -> Any:
            with _sent_lock:
                _sent[manager.config["client_id"]] += 1
            return send(manager, *args, **kwargs)

        counted_send.counted = True  # type: ignore[attr-defined]
        KafkaConnectionManager.send = counted_send
    with _sent_lock:
        return sum(n for sender, n in _sent.items() if sender.startswith(client_id))


# -- waiting and processes ---------------------------------------------------------------------


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.2,
    alive: Callable[[], bool] = lambda: True,
) -> T:
    """Polls ``predicate`` until it is truthy; :class:`BenchError` on timeout or when
    ``alive`` says the process being waited for is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if not alive():
            raise BenchError(f"the process died while waiting for {what}")
        time.sleep(interval)
    raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")


class Child:
    """A child process whose output goes to a log file, stopped with SIGTERM."""

    def __init__(self, cmd: Sequence[str], env: Mapping[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                list(cmd), env=dict(env), stdout=out, stderr=subprocess.STDOUT
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def tail(self, lines: int = 20) -> str:
        return tail(self.log, lines)


def start_operator(env: Mapping[str, str], namespace: str, log: Path) -> Child:
    """`dlq-operator run` serving one namespace, returned once it is up (kopf serves its
    liveness endpoint only after the startup handlers): startup is never measured."""
    health_port = free_port()
    operator = Child(
        [str(Path(sys.executable).parent / "dlq-operator"), "run"],
        {
            **os.environ,
            **env,
            "DLQ_NAMESPACES": f'["{namespace}"]',
            "DLQ_HEALTH_PORT": str(health_port),
            "DLQ_METRICS_PORT": "0",
        },
        log,
    )
    url = f"http://127.0.0.1:{health_port}/healthz"
    wait_until(
        lambda: local_platform.http_ok(url, b""), 60, "the operator up", alive=operator.alive
    )
    return operator


def tail(log: Path, lines: int = 20) -> str:
    """The last lines of a log file ("" when there is none)."""
    return local_platform.tail(log, lines)


def memory_mib(pid: int) -> tuple[float, float]:
    """(resident, peak resident) memory of a process in MiB: VmRSS and VmHWM from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024 / MIB
    return fields["VmRSS"], fields["VmHWM"]


# -- results ----------------------------------------------------------------------------------


def note(text: str) -> None:
    """A progress line on stderr, with the seconds since the benchmark started."""
    print(f"[{time.monotonic() - _STARTED:6.1f} s] {text}", file=sys.stderr, flush=True)


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """An aligned table: the first column left-aligned, the others right-aligned; ``None``
    prints as ``-``."""
    cells = [list(header)] + [[_cell(value) for value in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        first, *rest = row
        aligned = (cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True))
        line = [first.ljust(widths[0]), *aligned]
        print("  ".join(line).rstrip())


def verdict(name: str, value: float, goal: float, *, at_least: bool, unit: str = "") -> str:
    """One result line, e.g. ``ratio worker/raw = 0.83 (goal >= 0.7): PASS``."""
    passed = value >= goal if at_least else value < goal
    sign = ">=" if at_least else "<"
    return (
        f"{name} = {_cell(value)}{unit} (goal {sign} {_cell(goal)}{unit}): "
        f"{'PASS' if passed else 'FAIL'}"
    )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        digits = 2 if abs(value) < 10 else 1 if abs(value) < 10_000 else 0
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
