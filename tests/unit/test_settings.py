"""Settings: Kafka credentials from a mounted Secret, and secrets kept out of reprs."""

from __future__ import annotations

from pathlib import Path

import pytest

from dlq_operator.settings import KafkaSettings, Settings, TopicGrant

PASSWORD = "s3cret-Pa55word"


def credentials(tmp_path: Path, **files: str) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text + "\n")
    return tmp_path


def test_a_credentials_directory_sets_what_its_files_hold(tmp_path: Path) -> None:
    directory = credentials(
        tmp_path,
        username="orders-worker",
        password=PASSWORD,
        **{"ca.crt": "CA", "tls.crt": "CERT", "tls.key": "KEY"},
    )
    kafka = KafkaSettings(
        bootstrap_servers="kafka:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        credentials_dir=directory,
    )
    assert kafka.sasl_username == "orders-worker"
    assert kafka.sasl_password is not None and kafka.sasl_password.get_secret_value() == PASSWORD
    assert (kafka.ssl_cafile, kafka.ssl_certfile, kafka.ssl_keyfile) == (
        directory / "ca.crt",
        directory / "tls.crt",
        directory / "tls.key",
    )
    config = kafka.client_config()
    assert config["sasl_plain_password"] == PASSWORD
    assert config["ssl_certfile"] == str(directory / "tls.crt")


def test_a_secret_of_its_own_listener_decides_how_it_connects(tmp_path: Path) -> None:
    # An mTLS identity beside an operator on SASL_SSL: no SASL for this client.
    directory = credentials(
        tmp_path, **{"security.protocol": "SSL", "bootstrap.servers": "kafka:9094", "tls.crt": "C"}
    )
    kafka = KafkaSettings(
        security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", credentials_dir=directory
    )
    config = kafka.client_config()
    assert (config["security_protocol"], config["bootstrap_servers"]) == ("SSL", ["kafka:9094"])
    assert "sasl_mechanism" not in config


def test_missing_files_leave_the_environment_alone(tmp_path: Path) -> None:
    kafka = KafkaSettings(
        security_protocol="SASL_SSL", credentials_dir=credentials(tmp_path, username="u")
    )
    assert kafka.security_protocol == "SASL_SSL" and kafka.sasl_password is None


def test_a_password_never_shows_in_a_repr(tmp_path: Path) -> None:
    kafka = KafkaSettings(credentials_dir=credentials(tmp_path, password=PASSWORD))
    settings = Settings(kafka=kafka)
    for text in (repr(kafka), str(kafka), repr(settings), settings.model_dump_json()):
        assert PASSWORD not in text


@pytest.mark.parametrize(
    ("namespace", "topic", "granted"),
    [
        ("team-a", "team-a.orders", True),
        ("team-b", "team-a.orders", False),
        ("team-a", "payments", False),
        ("ops", "payments", True),
    ],
)
def test_topic_grants_match_namespace_and_topic_patterns(namespace, topic, granted) -> None:
    settings = Settings(
        topic_grants=[
            TopicGrant(namespaces=["team-a*"], topics=["team-a.*"]),
            TopicGrant(namespaces=["ops"], topics=["*"]),
        ]
    )
    assert settings.topic_granted(namespace, topic) is granted
