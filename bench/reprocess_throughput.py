#!/usr/bin/env python3
"""How fast the replay engine moves dead letters, and how well it keeps a rate limit.

1. Unthrottled: 100,000 dead letters of 1 KiB replayed by ``dlq-admin reprocess`` (the
   replay engine the ReprocessRequest controller also runs) to a target topic, next to a
   raw kafka-python consume -> produce pipe over the same records on the same broker in
   the same run (the pipe of ``bench/retry_throughput.py``). Records/s are measured the
   same way for both: (records - 1) / (last - first record timestamp on the target).
   Goal: replay / raw >= 0.7.
2. Rate-limited: a replay at 500 records/s of 6,000 records (12 s), its achieved rate
   measured the same way. Goal: within 10% of 500/s.

    .venv/bin/python bench/reprocess_throughput.py [--records 100000] [--rate 500]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support
from retry_throughput import DeadLetters, RawPipe, measure_pipe, produce_with_kcat

BIN = Path(sys.executable).parent
RECORD_SIZE = 1024


class Replay(support.Child):
    """``dlq-admin reprocess`` of a whole dead-letter topic to ``target``."""

    def __init__(self, bootstrap: str, dlq: str, target: str, log: Path, *extra: str) -> None:
        super().__init__(
            [
                str(BIN / "dlq-admin"),
                "reprocess",
                dlq,
                "--target-topic",
                target,
                "-o",
                "json",
                *extra,
            ],
            {**os.environ, "KAFKA_BROKERS": bootstrap},
            log,
        )

    def stop(self, timeout: float = 60) -> int:
        """A replay ends by itself once it read its topic to the end: wait for that."""
        self.proc.wait(timeout)
        return self.proc.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--rated-records", type=int, default=6_000)
    args = parser.parse_args()
    with support.platform() as env, tempfile.TemporaryDirectory() as workdir:
        bootstrap = env["DLQ_KAFKA_BOOTSTRAP_SERVERS"]
        logs = Path(workdir)
        source, dlq = "orders", "orders.dlq"
        targets = ("replayed", "piped", "rated")
        support.create_topics(bootstrap, [source, dlq, *targets], partitions=3)
        support.note(f"producing {args.records:,} dead letters of {RECORD_SIZE:,} B")
        letters = DeadLetters.sized(source, RECORD_SIZE, args.records)
        produce_with_kcat(bootstrap, dlq, letters, args.records)

        with support.TopicReader(bootstrap) as reader:
            raw = measure_pipe(
                "raw kafka-python",
                lambda: RawPipe(bootstrap, dlq, "piped", "bench-raw", args.records),
                reader,
                "piped",
                args.records,
            )
            replay = measure_pipe(
                "replay (dlq-admin reprocess)",
                lambda: Replay(bootstrap, dlq, "replayed", logs / "replay.log"),
                reader,
                "replayed",
                args.records,
                lambda: (logs / "replay.log").read_text(),
            )
            rated = measure_pipe(
                f"replay at {args.rate:g}/s",
                lambda: Replay(
                    bootstrap,
                    dlq,
                    "rated",
                    logs / "rated.log",
                    "--rate",
                    f"{args.rate:g}",
                    "--max",
                    str(args.rated_records),
                ),
                reader,
                "rated",
                args.rated_records,
                lambda: (logs / "rated.log").read_text(),
            )

    rate = lambda result: (result[0] - 1) / result[1]  # noqa: E731
    print(f"\nreplay throughput: {args.records:,} dead letters of {RECORD_SIZE:,} B\n")
    support.print_table(
        ["pipe", "records", "first->last s", "records/s"],
        [
            ["raw kafka-python", raw[0], raw[1], round(rate(raw))],
            ["replay, unthrottled", replay[0], replay[1], round(rate(replay))],
            [f"replay at {args.rate:g}/s", rated[0], rated[1], round(rate(rated))],
        ],
    )
    print()
    print(support.verdict("ratio replay/raw", rate(replay) / rate(raw), 0.7, at_least=True))
    deviation = abs(rate(rated) - args.rate) / args.rate
    print(
        support.verdict(
            f"rate deviation from {args.rate:g}/s over {rated[1]:.1f} s",
            deviation * 100,
            10.0,
            at_least=False,
            unit=" %",
        )
    )


if __name__ == "__main__":
    support.run(main)
