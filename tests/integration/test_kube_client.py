"""The Kubernetes adapter's status writes, against the real kube-apiserver."""

from __future__ import annotations

from kubernetes import client

from dlq_operator.kube import KubeClient
from tests.support import GROUP, VERSION, create_object

PLURAL = "deadletterqueues"


def test_status_write_recomputes_after_a_conflict_and_says_what_it_replaced(
    api_client, crds, namespace
) -> None:
    objects = client.CustomObjectsApi(api_client)
    stale = create_object(objects, namespace, PLURAL, "orders", {"sourceTopic": "orders"})
    # Another writer moves the object on after our read.
    newer = objects.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, "orders", {"status": {"messages": 1}}
    )
    seen = []

    def compute(current):
        seen.append(current["metadata"]["resourceVersion"])
        return {"messages": (current.get("status") or {}).get("messages", 0) + 1}

    write = KubeClient(api_client).update_status(PLURAL, stale, compute)

    # The stale read conflicted; the patch was computed again from the newer object.
    assert seen == [stale["metadata"]["resourceVersion"], newer["metadata"]["resourceVersion"]]
    assert write is not None
    assert write.replaced_version == newer["metadata"]["resourceVersion"]
    assert write.written["status"]["messages"] == 2
    stored = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "orders")
    assert stored["metadata"]["resourceVersion"] == write.written["metadata"]["resourceVersion"]


def test_status_write_of_nothing_or_of_a_deleted_object_answers_none(
    api_client, crds, namespace
) -> None:
    objects = client.CustomObjectsApi(api_client)
    dlq = create_object(objects, namespace, PLURAL, "gone", {"sourceTopic": "gone"})
    kube = KubeClient(api_client)
    assert kube.update_status(PLURAL, dlq, lambda current: None) is None
    objects.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "gone")
    assert kube.update_status(PLURAL, dlq, lambda current: {"messages": 1}) is None
