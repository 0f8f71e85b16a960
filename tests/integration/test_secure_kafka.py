"""The broker's authenticated listeners, which tenants use: SASL_SSL with SCRAM-SHA-512 users
and mTLS with client certificates of the platform CA, with ACLs enforced. The PLAINTEXT
listeners stay the platform's unauthenticated dev path."""

from __future__ import annotations

import socket
import ssl

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

import local_platform
from dlq_operator.settings import KafkaSettings


@pytest.fixture
def secure_admin(platform: local_platform.Platform) -> KafkaSettings:
    """The platform's Kafka admin on the SASL_SSL listener, as the environment gives it."""
    return KafkaSettings(_env_prefix="DLQ_SECURE_KAFKA_")


def create_topics(settings: KafkaSettings, *topics: str) -> None:
    admin = KafkaAdminClient(**settings.client_config())
    try:
        admin.create_topics([NewTopic(topic, 1, 1) for topic in topics])
    finally:
        admin.close()


def produce(config: dict, topic: str, value: bytes) -> int:
    producer = KafkaProducer(**config, acks="all")
    try:
        return producer.send(topic, value).get(timeout=30).offset
    finally:
        producer.close()


def first_record(config: dict, topic: str, group: str) -> bytes | None:
    consumer = KafkaConsumer(
        topic, **config, group_id=group, auto_offset_reset="earliest", consumer_timeout_ms=15_000
    )
    try:
        record = next(consumer, None)
        return record.value if record else None
    finally:
        consumer.close()


def test_the_admin_creates_topics_and_acls_over_sasl_ssl(
    platform: local_platform.Platform, secure_admin: KafkaSettings, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}orders"
    acl = ACL(
        f"User:reader-{topic_prefix}",
        "*",
        ACLOperation.READ,
        ACLPermissionType.ALLOW,
        ResourcePattern(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL),
    )
    admin = KafkaAdminClient(**secure_admin.client_config())
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
        assert admin.create_acls([acl])["failed"] == []
        listed, _ = admin.describe_acls(
            ACLFilter(
                None,
                None,
                ACLOperation.ANY,
                ACLPermissionType.ANY,
                ResourcePatternFilter(ResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL),
            )
        )
        brokers = admin.describe_cluster()["brokers"]
    finally:
        admin.close()
    assert listed == [acl]
    # Advertised where pods and the host both reach it, with a certificate valid there.
    host, _, port = secure_admin.bootstrap_servers.rpartition(":")
    assert host == platform.network.gateway
    assert [(b["host"], b["port"]) for b in brokers] == [(host, int(port))]


def test_a_scram_user_reaches_its_own_topics_and_groups_only(
    platform: local_platform.Platform, secure_admin: KafkaSettings, topic_prefix: str, unique: str
) -> None:
    user, own, other = f"tenant-a-{unique}", f"{topic_prefix}a.", f"{topic_prefix}b."
    create_topics(secure_admin, f"{own}orders", f"{other}orders")
    password = platform.add_kafka_user(user)
    platform.allow_kafka(f"User:{user}", topics=own, groups=own)
    tenant = secure_admin.client_config() | {
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }

    produce(tenant, f"{own}orders", b"order-1")
    assert first_record(tenant, f"{own}orders", group=f"{own}readers") == b"order-1"
    with pytest.raises(TopicAuthorizationFailedError):
        produce(tenant, f"{other}orders", b"not mine")
    with pytest.raises(GroupAuthorizationFailedError):
        first_record(tenant, f"{own}orders", group=f"{other}readers")
    with pytest.raises(KafkaTimeoutError):  # kafka-python retries a failed login until then
        KafkaAdminClient(
            **(tenant | {"sasl_plain_password": "wrong", "bootstrap_timeout_ms": 3000})
        )


def test_an_mtls_client_is_the_cn_of_its_certificate(
    platform: local_platform.Platform, secure_admin: KafkaSettings, topic_prefix: str, unique: str
) -> None:
    name, own, other = f"tenant-m-{unique}", f"{topic_prefix}m.", f"{topic_prefix}n."
    create_topics(secure_admin, f"{own}orders", f"{other}orders")
    cert, key = platform.kafka_client_cert(name)
    platform.allow_kafka(f"User:{name}", topics=own, groups=own)
    # The certificate's directory is all a client needs, as a mounted Secret would be.
    tenant = KafkaSettings(credentials_dir=cert.parent).client_config()
    assert tenant["ssl_keyfile"] == str(key)

    produce(tenant, f"{own}orders", b"m-1")
    assert first_record(tenant, f"{own}orders", group=f"{own}readers") == b"m-1"
    with pytest.raises(TopicAuthorizationFailedError):
        produce(tenant, f"{other}orders", b"not mine")
    # A certificate whose subject is more than a CN keeps its whole DN: the Kubernetes
    # admin's (CN=admin,O=system:masters) is nobody to Kafka.
    kube_admin = tenant | {
        "ssl_certfile": str(platform.pki / "admin.crt"),
        "ssl_keyfile": str(platform.pki / "admin.key"),
    }
    with pytest.raises(TopicAuthorizationFailedError):
        produce(kube_admin, f"{own}orders", b"not an admin here")


def test_the_mtls_listener_refuses_a_client_without_a_certificate(
    platform: local_platform.Platform,
) -> None:
    host, _, port = platform.environment()["DLQ_MTLS_KAFKA_BOOTSTRAP_SERVERS"].rpartition(":")
    context = ssl.create_default_context(cafile=str(platform.pki / "ca.crt"))
    # TLS 1.3: the handshake ends on the client's side first; the server's alert follows.
    with (
        pytest.raises(ssl.SSLError, match=r"BAD_CERTIFICATE|CERTIFICATE_REQUIRED"),
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.recv(1)
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(
            bootstrap_servers=f"{host}:{port}",
            security_protocol="SSL",
            ssl_cafile=str(platform.pki / "ca.crt"),
            bootstrap_timeout_ms=3000,
        )


def test_plaintext_stays_the_unauthenticated_dev_path(
    kafka_bootstrap: str, pod_kafka_bootstrap: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}dev"
    create_topics(KafkaSettings(bootstrap_servers=kafka_bootstrap), topic)
    assert produce({"bootstrap_servers": kafka_bootstrap}, topic, b"one") == 0
    assert produce({"bootstrap_servers": pod_kafka_bootstrap}, topic, b"two") == 1
