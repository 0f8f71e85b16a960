"""Retry worker throughput and memory, each next to a baseline measured in the same run.

    python bench/retry_throughput.py [--records 100000] [--scheduled 1000000] [--rounds 1]

Throughput. ``--records`` valid dead letters of 1 KiB (built and encoded by the
project's envelope code) wait on a 3-partition DLQ topic, all due at once (zero backoff).
Three pipes each read all of them, in their own consumer group or none, and write to
their own target topic:

- ``kcat -> kcat``: kcat copying the values as they are (no JSON work); a native
  reference for what the broker and the machine can move;
- ``raw kafka-python``: the least a republish must do, written plainly with the library
  the worker uses and the worker's client settings (acks=all, idempotent producer,
  linger 5 ms, 64 KiB batches, 500 records a poll, read_committed): decode the
  envelope's JSON, re-encode its ``event``, produce it with the original key and the
  three republish headers, flush and commit once per poll batch. It validates nothing,
  keeps no schedule and parks nothing;
- ``retry worker``: the real ``dlq-operator worker`` process with a zero initial delay.

Records per second are ``(records - 1) / (last - first)``, where first and last are the
earliest and latest record timestamps in the target topic (stamped by each pipe's
producer when it sends): the steady rate, without process start-up and group join,
which the ``wall`` column (process start until the last record is stored) includes.
The goal is on ``worker / raw``. kcat runs first, which also warms the broker's read
path for the two Python pipes being compared.

Memory. A worker with a one-hour initial delay takes in ``--scheduled`` small dead
letters (``{"n": <i>}`` events, produced by kcat) and holds them all in its schedule,
none due. Its resident memory (VmRSS, and the peak VmHWM, from /proc) is read once its
``dlq_worker_scheduled_records`` metric counts them all, next to an idle worker on an
empty DLQ topic. The schedule's capacity is raised 10 % above ``--scheduled``, because
at the default (1,000,000 across partitions) a partition holding more than its share
would be paused before every record is in.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kafka import KafkaConsumer, KafkaProducer

import support
from dlq_operator.envelope import DlqEnvelope, encode_dlq_record, format_timestamp
from dlq_operator.settings import WorkerSettings

RECORD_BYTES = 1024
PARTITIONS = 3
THROUGHPUT_GOAL = 0.7
RSS_GOAL_MIB = 300
CAPACITY_HEADROOM = 1.1
# Stands for the record number in an envelope encoded once (see DeadLetters).
PLACEHOLDER = 987654321987
WORKER = Path(sys.executable).parent / "dlq-operator"
# The worker's client settings (dlq_operator.kafka), which the raw pipe uses too.
MAX_POLL_RECORDS = 500
PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    "batch_size": 64 * 1024,
}


# -- dead letters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetters:
    """Valid DLQ records that differ only in a number.

    One envelope is built and encoded by the project (``DlqEnvelope``,
    ``encode_dlq_record``) with :data:`PLACEHOLDER` as its original offset, key suffix
    and event number; record ``n`` has ``n`` written in its place. Encoding a million
    envelopes one by one would take about 40 s.
    """

    headers: list[tuple[str, bytes]]
    value_parts: list[bytes]
    key_parts: list[bytes] | None

    @classmethod
    def of(cls, source: str, event: dict[str, Any], keyed: bool) -> DeadLetters:
        now = format_timestamp(time.time())
        envelope = DlqEnvelope(
            originalTopic=source,
            originalPartition=0,
            originalOffset=str(PLACEHOLDER),
            originalKey=f"order-{PLACEHOLDER}" if keyed else None,
            originalTimestamp=now,
            event=event,
            error="bench: the handler failed",
            errorCode="PROCESSING_FAILED",
            consumerGroup="bench-app",
            processingTimestamp=now,
            retryCount=0,
        )
        record = encode_dlq_record(envelope)
        mark = str(PLACEHOLDER).encode()
        return cls(
            headers=record.headers,
            value_parts=record.value.split(mark),
            key_parts=None if record.key is None else record.key.split(mark),
        )

    @classmethod
    def sized(cls, source: str, size: int, count: int) -> DeadLetters:
        """Keyed dead letters whose value is ``size`` bytes (give or take a digit)."""
        unpadded = cls.of(source, {"n": PLACEHOLDER, "padding": ""}, keyed=True)
        padding = "x" * max(size - len(unpadded.value(count // 2)), 0)
        return cls.of(source, {"n": PLACEHOLDER, "padding": padding}, keyed=True)

    def value(self, n: int) -> bytes:
        return str(n).encode().join(self.value_parts)

    def key(self, n: int) -> bytes | None:
        return None if self.key_parts is None else str(n).encode().join(self.key_parts)


def produce_with_kafka_python(bootstrap: str, topic: str, letters: DeadLetters, count: int) -> None:
    """Records ``0 .. count - 1``, spread over the partitions by key."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        batch_size=1024 * 1024,
        max_request_size=16 * 1024 * 1024,
    )
    try:
        for n in range(count):
            producer.send(
                topic, value=letters.value(n), key=letters.key(n), headers=letters.headers
            )
        producer.flush()
    finally:
        producer.close()


def produce_with_kcat(bootstrap: str, topic: str, letters: DeadLetters, count: int) -> None:
    """Records ``0 .. count - 1``, one kcat per partition so each gets an equal share."""
    headers = [arg for name, value in letters.headers for arg in ("-H", f"{name}={value.decode()}")]
    for partition in range(PARTITIONS):
        kcat = subprocess.Popen(
            ["kcat", "-P", "-b", bootstrap, "-t", topic, "-p", str(partition), *headers],
            stdin=subprocess.PIPE,
        )
        assert kcat.stdin is not None
        numbers = range(partition, count, PARTITIONS)
        for start in range(0, len(numbers), 10_000):
            chunk = numbers[start : start + 10_000]
            kcat.stdin.write(b"".join(letters.value(n) + b"\n" for n in chunk))
        kcat.stdin.close()
        if kcat.wait() != 0:
            raise support.BenchError(f"kcat could not produce to {topic}")


# -- the pipes ------------------------------------------------------------------------------


class Pipe(Protocol):
    def alive(self) -> bool: ...

    def stop(self) -> int: ...


class KcatPipe:
    """``kcat -C ... -e | kcat -P ...``: values only; both exit once the topic is copied."""

    def __init__(self, bootstrap: str, source: str, target: str) -> None:
        # from the first record to the end of every partition, each value on a line
        read = ["-o", "beginning", "-e", "-q", "-f", "%s\n"]
        self.consume = subprocess.Popen(
            ["kcat", "-C", "-b", bootstrap, "-t", source, *read],
            stdout=subprocess.PIPE,
        )
        self.produce = subprocess.Popen(
            ["kcat", "-P", "-b", bootstrap, "-t", target], stdin=self.consume.stdout
        )
        assert self.consume.stdout is not None
        self.consume.stdout.close()

    def alive(self) -> bool:
        return self.produce.poll() is None

    def stop(self) -> int:
        codes = [process.wait(60) for process in (self.consume, self.produce)]
        return next((code for code in codes if code), 0)


class RawPipe:
    """:func:`raw_pipe` in a process of its own (spawned: nothing inherited)."""

    def __init__(self, bootstrap: str, source: str, target: str, group: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.process = context.Process(
            target=raw_pipe, args=(bootstrap, source, target, group, count), daemon=True
        )
        self.process.start()

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> int:
        self.process.join(60)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()
        return self.process.exitcode or 0


def raw_pipe(bootstrap: str, source: str, target: str, group: str, count: int) -> None:
    """Republishes ``count`` dead letters of ``source`` to ``target``, plainly."""
    consumer = KafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=MAX_POLL_RECORDS,
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, **PRODUCER_SETTINGS)
    done = 0
    while done < count:
        for records in consumer.poll(timeout_ms=1000).values():
            for record in records:
                envelope = json.loads(record.value)
                key = envelope.get("originalKey")
                headers = [
                    ("x-retry-count", str(envelope["retryCount"] + 1).encode()),
                    ("x-original-offset", envelope["originalOffset"].encode()),
                    ("x-dlq-id", f"{source}/{record.partition}/{record.offset}".encode()),
                ]
                value = json.dumps(envelope["event"], separators=(",", ":"), ensure_ascii=False)
                producer.send(
                    target,
                    value=value.encode(),
                    key=None if key is None else key.encode(),
                    headers=headers,
                )
                done += 1
        producer.flush()
        consumer.commit()
    producer.close()
    consumer.close()


class WorkerProcess(support.Child):
    """``dlq-operator worker`` configured by ``settings``, as the worker Deployment runs it."""

    def __init__(self, settings: WorkerSettings, bootstrap: str, log: Path) -> None:
        env = {
            **os.environ,
            **settings.environment(),
            "DLQ_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        }
        super().__init__([str(WORKER), "worker"], env, log)
        self.settings = settings

    def metric(self, name: str) -> float:
        url = f"http://127.0.0.1:{self.settings.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                text = response.read().decode()
        except OSError:
            return 0.0
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[-1])
        return 0.0

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.settings.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False


KCAT, RAW, WORKER_PIPE = "kcat -> kcat (native)", "raw kafka-python", "retry worker"


@dataclass(frozen=True)
class Throughput:
    pipe: str
    round: int | None  # None for the native reference, run once
    records: int
    span: float  # first to last record timestamp in the target, seconds
    wall: float  # process start until the last record is stored, seconds

    @property
    def rate(self) -> float:
        return (self.records - 1) / self.span if self.span > 0 else float("inf")

    def row(self) -> Sequence[object]:
        return (self.pipe, self.round, self.records, self.span, round(self.rate), self.wall)


def measure_pipe(
    name: str,
    start: Callable[[], Pipe],
    reader: support.TopicReader,
    target: str,
    count: int,
    describe_failure: Callable[[], str] = lambda: "",
) -> tuple[int, float, float]:
    """Starts a pipe, waits until it wrote ``count`` more records to ``target``, stops it.

    Returns the records it wrote, the seconds from their first timestamp to their last,
    and the seconds from the pipe's start until the last was stored.
    """
    support.note(f"running {name}")
    before = reader.ends(target)
    started = time.monotonic()
    pipe = start()
    try:
        support.wait_until(
            lambda: reader.count(target, since=before) >= count,
            timeout=60 + count / 500,
            what=f"{name}: {count:,} records in {target}",
            alive=pipe.alive,
        )
    except support.BenchError as exc:
        pipe.stop()
        raise support.BenchError(f"{exc}\n{describe_failure()}") from None
    wall = time.monotonic() - started
    if pipe.stop() != 0:
        raise support.BenchError(f"{name} failed\n{describe_failure()}")
    records, first, last = reader.timestamp_span(target, since=before)
    if records != count:
        raise support.BenchError(f"{name} wrote {records:,} records to {target}, not {count:,}")
    return records, last - first, wall


class ThroughputBench:
    """Dead letters waiting on their DLQ topic, and the pipes that move them.

    Every pipe reads the same DLQ topic in a consumer group of its own (kcat in none),
    so each round reads all the records again.
    """

    def __init__(self, bootstrap: str, reader: support.TopicReader, logs: Path, count: int) -> None:
        self.bootstrap, self.reader, self.logs, self.count = bootstrap, reader, logs, count
        self.source = f"bench-{uuid.uuid4().hex[:8]}.orders"
        self.dlq, self.parked = f"{self.source}.dlq", f"{self.source}.dlq.parked"
        self.raw_target, self.kcat_target = f"{self.source}.raw", f"{self.source}.kcat"
        topics = [self.source, self.dlq, self.parked, self.raw_target, self.kcat_target]
        support.create_topics(bootstrap, topics, PARTITIONS)
        letters = DeadLetters.sized(self.source, RECORD_BYTES, count)
        support.note(f"producing {count:,} dead letters of {len(letters.value(count // 2)):,} B")
        produce_with_kafka_python(bootstrap, self.dlq, letters, count)

    def kcat(self) -> Throughput:
        measured = measure_pipe(
            KCAT,
            lambda: KcatPipe(self.bootstrap, self.dlq, self.kcat_target),
            self.reader,
            self.kcat_target,
            self.count,
        )
        return Throughput(KCAT, None, *measured)

    def raw(self, round: int) -> Throughput:
        group = f"{self.raw_target}.{round}"
        measured = measure_pipe(
            RAW,
            lambda: RawPipe(self.bootstrap, self.dlq, self.raw_target, group, self.count),
            self.reader,
            self.raw_target,
            self.count,
        )
        return Throughput(RAW, round, *measured)

    def worker(self, round: int) -> Throughput:
        settings = WorkerSettings(
            source_topic=self.source,
            dlq_topic=self.dlq,
            parked_topic=self.parked,
            group_id=f"{self.source}.retry.{round}",
            initial_delay_seconds=0,
            max_retries=3,
            health_port=0,
            metrics_port=0,
        )
        log = self.logs / f"throughput-worker-{round}.log"
        measured = measure_pipe(
            WORKER_PIPE,
            lambda: WorkerProcess(settings, self.bootstrap, log),
            self.reader,
            self.source,
            self.count,
            lambda: support.tail(log),
        )
        if self.reader.count(self.parked):
            raise support.BenchError(f"the worker parked valid dead letters\n{support.tail(log)}")
        return Throughput(WORKER_PIPE, round, *measured)


def measure_throughput(bootstrap: str, logs: Path, count: int, rounds: int) -> list[Throughput]:
    """kcat once, then the raw pipe and the worker, taking turns to go first."""
    with support.TopicReader(bootstrap) as reader:
        bench = ThroughputBench(bootstrap, reader, logs, count)
        results = [bench.kcat()]
        for number in range(1, rounds + 1):
            pair = (bench.raw, bench.worker) if number % 2 else (bench.worker, bench.raw)
            results += [measure(number) for measure in pair]
    return results


# -- memory ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Memory:
    worker: str
    scheduled: int
    rss: float
    peak: float
    intake: float | None  # seconds from the worker's start until every record was scheduled


def measure_memory(bootstrap: str, workdir: Path, count: int) -> list[Memory]:
    run = uuid.uuid4().hex[:8]
    idle = memory_of_worker(bootstrap, workdir, f"bench-{run}.idle", 0)
    loaded = memory_of_worker(bootstrap, workdir, f"bench-{run}.waiting", count)
    return [idle, loaded]


def memory_of_worker(bootstrap: str, workdir: Path, source: str, count: int) -> Memory:
    """A not-due-for-an-hour worker's memory once it holds the ``count`` records produced."""
    dlq, parked = f"{source}.dlq", f"{source}.dlq.parked"
    support.create_topics(bootstrap, [source, dlq, parked], PARTITIONS)
    if count:
        support.note(f"producing {count:,} small dead letters")
        produce_with_kcat(bootstrap, dlq, DeadLetters.of(source, {"n": PLACEHOLDER}, False), count)
    settings = WorkerSettings(
        source_topic=source,
        dlq_topic=dlq,
        parked_topic=parked,
        group_id=f"{source}.retry",
        initial_delay_seconds=3600,
        max_delay_seconds=3600,
        schedule_capacity=max(int(count * CAPACITY_HEADROOM), 1),
        health_port=support.free_port(),
        metrics_port=support.free_port(),
    )
    support.note(
        f"starting a worker to hold {count:,} dead letters" if count else "starting an idle worker"
    )
    worker = WorkerProcess(settings, bootstrap, workdir / f"{source}.log")
    try:
        support.wait_until(worker.ready, 60, "the worker ready", alive=worker.alive)
        intake = None
        if count:
            support.wait_until(
                lambda: worker.metric("dlq_worker_scheduled_records") >= count,
                timeout=60 + count / 2000,
                what=f"{count:,} scheduled records",
                interval=1.0,
                alive=worker.alive,
            )
            intake = time.monotonic() - worker.started
        else:
            time.sleep(3)  # a few idle turns of the loop
        rss, peak = support.memory_mib(worker.pid)
    except support.BenchError as exc:
        raise support.BenchError(f"{exc}\n{worker.tail()}") from None
    finally:
        worker.stop()
    label = f"holding {count:,} not-due retries" if count else "idle (empty topic)"
    return Memory(label, count, rss, peak, intake)


# -- report ---------------------------------------------------------------------------------


def report(throughput: list[Throughput], memory: list[Memory], rounds: int) -> None:
    records = throughput[0].records
    print(
        f"\nretry throughput: {records:,} dead letters of {RECORD_BYTES:,} B, zero backoff, "
        f"{PARTITIONS} partitions"
    )
    support.print_table(
        ("pipe", "round", "records", "first->last s", "records/s", "wall s"),
        (result.row() for result in throughput),
    )
    best = {pipe: max(r.rate for r in throughput if r.pipe == pipe) for pipe in (KCAT, RAW)}
    worker = max(r.rate for r in throughput if r.pipe == WORKER_PIPE)
    print(support.verdict("ratio worker/raw", worker / best[RAW], THROUGHPUT_GOAL, at_least=True))
    if rounds > 1:
        print(f"(the best records/s of {rounds} rounds each)")
    print(f"worker/kcat = {worker / best[KCAT]:.2f} (native reference, no goal)")
    print(f"kafka-python checksums (CRC-32C): {checksums()}")

    loaded = memory[-1]
    capacity = int(loaded.scheduled * CAPACITY_HEADROOM)
    print(f"\nretry worker memory (schedule capacity {capacity:,}, one-hour delay)")
    support.print_table(
        ("worker", "scheduled", "RSS MiB", "peak MiB", "all scheduled after s"),
        ((m.worker, m.scheduled, m.rss, m.peak, m.intake) for m in memory),
    )
    print(
        support.verdict(
            f"worker RSS holding {loaded.scheduled:,} scheduled",
            loaded.rss,
            RSS_GOAL_MIB,
            at_least=False,
            unit=" MiB",
        )
    )


def checksums() -> str:
    """Which CRC-32C kafka-python uses: it takes the ``crc32c`` package when installed."""
    if importlib.util.find_spec("crc32c") is None:
        return "pure Python (the crc32c package is not installed)"
    return "C (the crc32c package)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000, help="dead letters to retry")
    parser.add_argument(
        "--scheduled", type=int, default=1_000_000, help="not-due dead letters to hold"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="raw-pipe and worker runs each, taking turns; the best of each is compared",
    )
    args = parser.parse_args(argv)
    if args.records < 2 or args.scheduled < 1 or args.rounds < 1:
        parser.error("--records must be at least 2, --scheduled and --rounds at least 1")
    with support.platform() as env, tempfile.TemporaryDirectory(prefix="dlq-bench-") as logs:
        bootstrap = env["DLQ_KAFKA_BOOTSTRAP_SERVERS"]
        throughput = measure_throughput(bootstrap, Path(logs), args.records, args.rounds)
        memory = measure_memory(bootstrap, Path(logs), args.scheduled)
    report(throughput, memory, args.rounds)


if __name__ == "__main__":
    support.run(main)
