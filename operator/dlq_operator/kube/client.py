"""A small typed facade over the official kubernetes client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from dlq_operator import API_GROUP, API_VERSION
from dlq_operator.errors import KubeError, KubeUnavailable

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except ApiException as exc:
        raise KubeError(f"{action}: {exc.status} {exc.reason}: {_message_of(exc)}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise KubeUnavailable(f"{action}: API server unreachable: {exc}") from exc


def _message_of(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "").get("message", exc.body))
    except (TypeError, ValueError):
        return str(exc.body)


@dataclass(frozen=True)
class StatusWrite:
    """A status written: the object as the API server answered, and the version it replaced
    (a watch-fed cache still showing that version has not seen the write yet)."""

    replaced_version: str
    written: dict[str, Any]


class KubeClient:
    """The operations dlq-operator needs, on one ApiClient."""

    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.api = api_client or self._default_client()
        self.apps = client.AppsV1Api(self.api)
        self.networking = client.NetworkingV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.core = client.CoreV1Api(self.api)

    @staticmethod
    def _default_client() -> client.ApiClient:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration)
        # Calls come from a thread pool: with urllib3's default of 4 pooled connections,
        # the others would each open (and TLS-handshake) a connection of their own.
        configuration.connection_pool_maxsize = 32
        return client.ApiClient(configuration)

    # -- Deployments -------------------------------------------------------------------
    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        with _translated(f"reading Deployment {namespace}/{name}"):
            try:
                found = self.apps.read_namespaced_deployment(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
        return self.api.sanitize_for_serialization(found)

    def apply_deployment(self, manifest: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Creates the Deployment or patches its spec.

        Returns ("created" | "updated" | "unchanged", the Deployment).
        """
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        current = self.read_deployment(namespace, name)
        with _translated(f"applying Deployment {namespace}/{name}"):
            if current is None:
                # The client takes a plain manifest as well as its model classes.
                created = self.apps.create_namespaced_deployment(namespace, manifest)  # type: ignore[arg-type]
                return "created", self.api.sanitize_for_serialization(created)
            if _owned_fields_equal(current, manifest):
                return "unchanged", current
            patched = self.apps.patch_namespaced_deployment(
                name,
                namespace,
                {
                    "metadata": {
                        "labels": manifest["metadata"]["labels"],
                        "ownerReferences": manifest["metadata"]["ownerReferences"],
                    },
                    "spec": manifest["spec"],
                },
            )
            return "updated", self.api.sanitize_for_serialization(patched)

    def delete_deployment(self, namespace: str, name: str) -> bool:
        """Deletes it if present; True when something was deleted."""
        with _translated(f"deleting Deployment {namespace}/{name}"):
            try:
                self.apps.delete_namespaced_deployment(
                    name, namespace, propagation_policy="Background"
                )
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    # -- NetworkPolicies ---------------------------------------------------------------
    def apply_network_policy(self, manifest: dict[str, Any]) -> str:
        """Creates the NetworkPolicy or puts its spec back; "created", "updated" or
        "unchanged"."""
        namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
        with _translated(f"applying NetworkPolicy {namespace}/{name}"):
            try:
                found = self.networking.read_namespaced_network_policy(name, namespace)
            except ApiException as exc:
                if exc.status != 404:
                    raise
                self.networking.create_namespaced_network_policy(namespace, manifest)  # type: ignore[arg-type]
                return "created"
            current = self.api.sanitize_for_serialization(found)
            if current.get("spec") == manifest["spec"]:
                return "unchanged"
            # A merge patch would keep list items the spec dropped; the spec goes whole.
            current["spec"] = manifest["spec"]
            self.networking.replace_namespaced_network_policy(name, namespace, current)
            return "updated"

    def delete_network_policy(self, namespace: str, name: str) -> bool:
        """Deletes it if present; True when something was deleted."""
        with _translated(f"deleting NetworkPolicy {namespace}/{name}"):
            try:
                self.networking.delete_namespaced_network_policy(name, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise
        return True

    def list_pods(self, namespace: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        """The pods in ``namespace`` that carry all of ``labels``."""
        selector = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        with _translated(f"listing pods {selector} in {namespace}"):
            found = self.core.list_namespaced_pod(namespace, label_selector=selector)
        return list(self.api.sanitize_for_serialization(found).get("items", []))

    # -- dlq.orion.io objects ----------------------------------------------------------
    def annotate(self, plural: str, namespace: str, name: str, annotations: dict[str, str]) -> None:
        """Sets annotations of one of our objects (never its spec)."""
        with _translated(f"annotating {plural} {namespace}/{name}"):
            try:
                self.custom.patch_namespaced_custom_object(
                    API_GROUP,
                    API_VERSION,
                    namespace,
                    plural,
                    name,
                    {"metadata": {"annotations": annotations}},
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def list_objects(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        with _translated(f"listing {plural}"):
            if namespace:
                found = self.custom.list_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, plural
                )
            else:
                found = self.custom.list_cluster_custom_object(API_GROUP, API_VERSION, plural)
        return list(cast(dict[str, Any], found).get("items", []))

    def get_object(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        with _translated(f"reading {plural} {namespace}/{name}"):
            try:
                return cast(
                    dict[str, Any],
                    self.custom.get_namespaced_custom_object(
                        API_GROUP, API_VERSION, namespace, plural, name
                    ),
                )
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def create_object(self, plural: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        with _translated(f"creating {plural} in {namespace}"):
            return cast(
                dict[str, Any],
                self.custom.create_namespaced_custom_object(
                    API_GROUP, API_VERSION, namespace, plural, body
                ),
            )

    def update_status(
        self,
        plural: str,
        obj: dict[str, Any],
        compute: Callable[[dict[str, Any]], dict[str, Any] | None],
        attempts: int = 5,
    ) -> StatusWrite | None:
        """Writes ``compute(obj)`` into the status, with optimistic concurrency.

        Several writers share a status (the reconciler, the monitor, kopf): a merge patch
        replaces lists such as ``conditions`` whole, so a patch computed from an old read
        could drop another writer's entries. The patch therefore carries the
        resourceVersion it was computed from; when someone wrote in between, the object is
        read again and the patch computed again. ``compute`` returning None means nothing
        to write; so is the answer then, and when the object is gone.
        """
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        current: dict[str, Any] | None = obj
        for _ in range(attempts):
            if current is None:
                return None
            patch = compute(current)
            if not patch:
                return None
            version = current["metadata"]["resourceVersion"]
            body = {"metadata": {"resourceVersion": version}, "status": patch}
            with _translated(f"writing status of {plural} {namespace}/{name}"):
                try:
                    written = self.custom.patch_namespaced_custom_object_status(
                        API_GROUP, API_VERSION, namespace, plural, name, body
                    )
                    return StatusWrite(
                        replaced_version=version, written=cast(dict[str, Any], written)
                    )
                except ApiException as exc:
                    if exc.status == 404:
                        return None
                    if exc.status != 409:
                        raise
            current = self.get_object(plural, namespace, name)
        raise KubeError(
            f"writing status of {plural} {namespace}/{name}: kept conflicting "
            f"with other writers after {attempts} attempts"
        )

    def patch_status(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        """Merge-patches the status of an object this process alone writes (gone: ignored)."""
        with _translated(f"patching status of {plural} {namespace}/{name}"):
            try:
                self.custom.patch_namespaced_custom_object_status(
                    API_GROUP, API_VERSION, namespace, plural, name, {"status": status}
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def post_event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Records a Kubernetes Event about one of our objects (as kubectl describe shows)."""
        meta = obj["metadata"]
        now = datetime.now(UTC)
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(
                generate_name=f"{meta['name']}.", namespace=meta["namespace"]
            ),
            involved_object=client.V1ObjectReference(
                api_version=obj.get("apiVersion"),
                kind=obj.get("kind"),
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            source=client.V1EventSource(component="dlq-operator"),
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        with _translated(f"posting event {reason} on {meta['namespace']}/{meta['name']}"):
            self.core.create_namespaced_event(meta["namespace"], event)


def _owned_fields_equal(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """Whether the fields we own already hold what we want.

    The pod template carries a hash of itself, so comparing that hash stands in for
    comparing a template the API server has filled with defaults.
    """
    cur_spec, want_spec = current.get("spec", {}), desired["spec"]
    annotations = lambda spec: spec.get("template", {}).get("metadata", {}).get("annotations")  # noqa: E731
    return (
        cur_spec.get("replicas") == want_spec["replicas"]
        and annotations(cur_spec) == annotations(want_spec)
        and current["metadata"].get("labels") == desired["metadata"]["labels"]
    )


def connect_as_kubectl() -> tuple[KubeClient, str]:
    """A client of the API server kubectl would use, and the namespace it defaults to: in a
    pod, its service account's; elsewhere ``KUBECONFIG`` or ``~/.kube/config``, whose current
    context gives the namespace (``default`` when it names none)."""
    try:
        config.load_incluster_config()
        namespace = _SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except config.ConfigException:
        try:
            config.load_kube_config()
            _, context = config.list_kube_config_contexts()
        except (config.ConfigException, OSError) as exc:
            raise KubeUnavailable(f"no Kubernetes configuration found: {exc}") from exc
        namespace = context["context"].get("namespace") or "default"
    return KubeClient(client.ApiClient()), namespace
