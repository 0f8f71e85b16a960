"""The publisher as an application installs it: a clean virtualenv with only the base
distribution (README, "For applications: the publisher") sends a dead letter to the real
broker, and holds none of the operator's dependencies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from tests.support import read_all

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_ONLY = {"kopf", "kubernetes", "typer", "rich", "aiohttp", "httpx"}

SEND = """
import json, sys
from dlq_operator.publisher import DlqPublisher
with DlqPublisher(consumer_group="orders-service") as publisher:
    sent = publisher.send(original_topic=sys.argv[1], original_partition=0, original_offset=7,
                          event={"id": "o-7"}, error="boom", error_code="CHECK")
operator_modules = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
print(json.dumps({"topic": sent.topic, "offset": sent.offset,
                  "operator_modules": operator_modules}))
"""


def test_a_clean_venv_with_the_publisher_alone_sends_a_dead_letter(
    tmp_path: Path, kafka_bootstrap: str, topic_prefix: str
) -> None:
    venv = tmp_path / "app"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "-q", str(ROOT)], check=True, timeout=600)
    listed = subprocess.run([*pip, "list", "--format=json"], check=True, capture_output=True)
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "dlq-operator" in installed
    assert installed & OPERATOR_ONLY == set(), installed

    source = f"{topic_prefix}orders"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(f"{source}.dlq", 1, 1)])
    admin.close()
    sent = subprocess.run(
        [str(venv / "bin" / "python"), "-c", SEND, source, json.dumps(sorted(OPERATOR_ONLY))],
        env={"DLQ_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(sent.stdout.strip().splitlines()[-1])
    assert result == {"topic": f"{source}.dlq", "offset": 0, "operator_modules": []}
    (record,) = read_all(kafka_bootstrap, f"{source}.dlq")
    envelope = json.loads(record.value)
    assert (envelope["originalTopic"], envelope["originalOffset"], envelope["errorCode"]) == (
        source,
        "7",
        "CHECK",
    )
