"""kopf's HTTP session to the API server, with a bounded connection pool.

kopf's default session opens connections without limit, a full TLS handshake each when
many objects are applied at once. A bounded pool keeps a few connections alive and queues
the rest of the requests (README, "Differences from the original design").
"""

from __future__ import annotations

import aiohttp
import kopf

# Requests in flight at once, on top of kopf's long-running watch streams.
REQUEST_CONNECTIONS = 16


def watch_streams(namespaces: list[str] | None, kinds: int) -> int:
    """kopf's watch streams: one per kind and watched namespace (or one cluster-wide), plus
    its observers of CustomResourceDefinitions and Namespaces."""
    return kinds * max(1, len(namespaces or [])) + 2


def pooled_session(info: kopf.ConnectionInfo, streams: int) -> kopf.AiohttpSession:
    """A session for kopf with the credentials of ``info``; watch streams hold their
    connection for minutes, so the pool has room for all of them besides the requests."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=streams + REQUEST_CONNECTIONS, ssl=info.as_ssl_context()
        ),
        headers=info.as_http_headers(),
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        expiration=info.expiration,
        aiohttp_session=session,
    )
