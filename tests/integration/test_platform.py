"""The local platform is real: a Kafka broker and a kube-apiserver that behave as such."""

from __future__ import annotations

import json
import subprocess
import threading

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def test_kafka_topic_produce_and_consume(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}roundtrip"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    assert topic in admin.list_topics()
    admin.close()

    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(topic, key=b"k1", value=b"hello", partition=1).get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    partition = TopicPartition(topic, 1)
    consumer.assign([partition])
    consumer.seek_to_beginning(partition)
    records = consumer.poll(timeout_ms=10_000, max_records=10)[partition]
    consumer.close()
    assert [(r.key, r.value, r.offset) for r in records] == [(b"k1", b"hello", 0)]


def _crd(group: str) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{group}"},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def test_custom_resource_seen_through_a_watch(api_client, namespace: str, unique: str) -> None:
    group = f"g{unique}.example.com"
    extensions = client.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(_crd(group))
    custom = client.CustomObjectsApi(api_client)

    seen: list[tuple[str, dict]] = []
    watching = threading.Event()

    def watch_widgets() -> None:
        stream = watch.Watch()
        watching.set()
        for event in stream.stream(
            custom.list_namespaced_custom_object,
            group,
            "v1",
            namespace,
            "widgets",
            timeout_seconds=30,
        ):
            seen.append((event["type"], event["object"]))
            stream.stop()

    # The CRD's REST endpoint appears asynchronously once it is Established.
    for _ in range(100):
        try:
            custom.list_namespaced_custom_object(group, "v1", namespace, "widgets")
            break
        except ApiException:
            threading.Event().wait(0.1)
    watcher = threading.Thread(target=watch_widgets)
    watcher.start()
    watching.wait()
    custom.create_namespaced_custom_object(
        group,
        "v1",
        namespace,
        "widgets",
        {
            "apiVersion": f"{group}/v1",
            "kind": "Widget",
            "metadata": {"name": "w1"},
            "spec": {"size": 3},
        },
    )
    watcher.join(timeout=30)
    extensions.delete_custom_resource_definition(f"widgets.{group}")

    assert [(kind, obj["metadata"]["name"], obj["spec"]) for kind, obj in seen] == [
        ("ADDED", "w1", {"size": 3})
    ]


def test_user_without_role_is_forbidden(platform, tmp_path, unique: str) -> None:
    user = f"nobody-{unique}"
    platform.issue_cert(user, f"/CN={user}")
    kubeconfig = platform.write_kubeconfig(tmp_path / "kubeconfig", user)
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    with pytest.raises(ApiException) as refused:
        core.list_namespace()
    status = json.loads(refused.value.body)
    assert (refused.value.status, status["reason"]) == (403, "Forbidden")
    assert f'User "{user}" cannot list resource "namespaces"' in status["message"]


def test_built_kubectl_and_helm_answer(tools_bin, kubeconfig) -> None:
    kubectl = subprocess.run(
        [tools_bin / "kubectl", "--kubeconfig", kubeconfig, "get", "ns", "default", "-o", "name"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert kubectl.stdout.strip() == "namespace/default"
    helm = subprocess.run(
        [tools_bin / "helm", "version", "--short"], capture_output=True, text=True, check=True
    )
    assert helm.stdout.startswith("v3.")
