"""The local platform is real: a Kafka broker and a Kubernetes cluster whose node runs pods."""

from __future__ import annotations

import ipaddress
import json
import ssl
import subprocess
import threading
import urllib.request

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

import local_platform
from tests.support import wait_for


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


# -- the node -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pause_image(platform) -> str:
    """The locally built pause image, which every platform's node has loaded."""
    return platform.state()["pause_image"]


def _create_pod(core: client.CoreV1Api, namespace: str, manifest: dict) -> None:
    """Creates a pod once the namespace's default ServiceAccount exists (the controller
    manager makes it just after the namespace; admission refuses pods until then)."""
    wait_for(
        lambda: core.list_namespaced_service_account(namespace).items,
        what=f"the default ServiceAccount of {namespace}",
    )
    core.create_namespaced_pod(namespace, manifest)


def _running(core: client.CoreV1Api, namespace: str, name: str):
    pod = core.read_namespaced_pod(name, namespace)
    return pod if pod.status.phase == "Running" and pod.status.pod_ip else None


def test_the_node_is_ready_and_schedulable(api_client, platform) -> None:
    env = platform.environment()
    node = client.CoreV1Api(api_client).read_node(env["DLQ_NODE_NAME"])
    conditions = {c.type: c.status for c in node.status.conditions}
    assert conditions["Ready"] == "True"
    assert not node.spec.unschedulable
    assert not [t for t in node.spec.taints or [] if t.effect != "PreferNoSchedule"]
    addresses = {a.type: a.address for a in node.status.addresses}
    assert addresses["InternalIP"] == platform.network.gateway
    assert node.status.node_info.container_runtime_version.startswith("containerd://")


def test_a_restricted_pod_runs_on_the_pod_network(
    api_client, kubectl, namespace: str, platform, pause_image: str
) -> None:
    core = client.CoreV1Api(api_client)
    _create_pod(core, namespace, local_platform.pod_manifest("restricted", pause_image))
    pod = wait_for(lambda: _running(core, namespace, "restricted"), what="the pod Running")

    assert ipaddress.ip_address(pod.status.pod_ip) in ipaddress.ip_network(
        platform.network.pod_cidr
    )
    container = pod.status.container_statuses[0]
    assert (container.ready, container.restart_count) == (True, 0)
    # The API server reaches the kubelet (logs, exec), which streams from containerd.
    assert kubectl("logs", "-n", namespace, "restricted").returncode == 0
    version = kubectl("exec", "-n", namespace, "restricted", "--", "/pause", "-v")
    assert version.stdout.startswith("pause.c v")


def test_a_deployment_gets_its_replica_set_and_a_running_pod(
    api_client, namespace: str, pause_image: str
) -> None:
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    template = local_platform.pod_manifest("", pause_image, labels={"app": "web"})
    del template["metadata"]["name"]
    apps.create_namespaced_deployment(
        namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": template["metadata"], "spec": template["spec"]},
            },
        },
    )

    def available():
        status = apps.read_namespaced_deployment("web", namespace).status
        return status if status.available_replicas == 1 else None

    wait_for(available, what="the Deployment available")
    (replica_set,) = apps.list_namespaced_replica_set(namespace).items
    assert replica_set.metadata.owner_references[0].name == "web"
    (pod,) = core.list_namespaced_pod(namespace, label_selector="app=web").items
    assert pod.metadata.owner_references[0].name == replica_set.metadata.name
    assert pod.status.phase == "Running"


def test_deleting_a_namespace_removes_its_pods(api_client, platform, unique, pause_image) -> None:
    core = client.CoreV1Api(api_client)
    name = f"gone-{unique}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    _create_pod(core, name, local_platform.pod_manifest("doomed", pause_image))
    pod = wait_for(lambda: _running(core, name, "doomed"), what="the pod Running")

    core.delete_namespace(name)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    wait_for(namespace_gone, timeout=90, what="the namespace finalized")
    assert not core.list_namespaced_pod(name).items
    # ... and the node has stopped its sandbox and containers (the kubelet's container
    # garbage collection removes the stopped ones later, once a minute).
    env = platform.environment()
    crictl = [
        f"{env['DLQ_TOOLS_BIN']}/crictl",
        "--runtime-endpoint",
        f"unix://{env['CONTAINERD_ADDRESS']}",
    ]
    selector = f"io.kubernetes.pod.uid={pod.metadata.uid}"

    def sandbox_stopped() -> bool:
        listings = [
            subprocess.run(
                [*crictl, *args, "--quiet", "--label", selector],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            for args in (["pods", "--state", "ready"], ["ps", "--state", "running"])
        ]
        return not any(listings)

    wait_for(sandbox_stopped, what="the pod's sandbox and containers stopped")


def test_the_kubernetes_service_reaches_the_api_server(platform) -> None:
    """The ClusterIP of the ``kubernetes`` Service goes (through kube-proxy's rules) to the
    API server, whose certificate is valid for the in-cluster name: what pods use."""
    context = ssl.create_default_context(cafile=str(platform.pki / "ca.crt"))
    context.load_cert_chain(str(platform.pki / "admin.crt"), str(platform.pki / "admin.key"))
    service_ip = platform.network.kubernetes_service_ip
    # The certificate names the ClusterIP, so this verifies as it would in a pod.
    with urllib.request.urlopen(
        f"https://{service_ip}:443/version", timeout=10, context=context
    ) as response:
        assert json.loads(response.read())["gitVersion"].startswith("v1.")


def test_kafka_answers_where_pods_reach_it(pod_kafka_bootstrap: str, platform) -> None:
    host, _, port = pod_kafka_bootstrap.rpartition(":")
    assert host == platform.network.gateway
    admin = KafkaAdminClient(bootstrap_servers=pod_kafka_bootstrap)
    try:
        brokers = admin.describe_cluster()["brokers"]
    finally:
        admin.close()
    # Metadata fetched on the pods' listener names that listener, not 127.0.0.1.
    assert [(b["host"], b["port"]) for b in brokers] == [(host, int(port))]


def test_load_image_names_what_the_archive_carries(platform, pause_image: str) -> None:
    archive = local_platform.Tools.locate().pause_archive
    assert platform.load_image(archive) == [pause_image]
    with pytest.raises(local_platform.PlatformError, match="not an image archive"):
        platform.load_image(platform.state_file)
