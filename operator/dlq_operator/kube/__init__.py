"""The Kubernetes adapter: the only code that talks to the API server outside kopf.

kopf watches the three kinds and writes their status; this package does the rest
(worker Deployments, nudging dependent resources, reading for the CLI). Calls are
synchronous; async callers use ``asyncio.to_thread``. Errors become
:class:`~dlq_operator.errors.KubeError` / :class:`~dlq_operator.errors.KubeUnavailable`.
"""

from dlq_operator.kube.client import KubeClient, StatusWrite, connect_as_kubectl

__all__ = ["KubeClient", "StatusWrite", "connect_as_kubectl"]
