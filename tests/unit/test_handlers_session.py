"""kopf's API session: a bounded pool with room for every watch stream."""

import asyncio

import kopf

from dlq_operator.handlers.session import REQUEST_CONNECTIONS, pooled_session, watch_streams


def test_one_stream_per_kind_cluster_wide_plus_the_observers():
    assert watch_streams(None, kinds=3) == 5
    assert watch_streams([], kinds=3) == 5


def test_one_stream_per_kind_and_namespace():
    assert watch_streams(["a", "b"], kinds=3) == 8


def test_the_pool_holds_the_streams_and_the_requests():
    info = kopf.ConnectionInfo(server="https://127.0.0.1:6443", token="secret", insecure=True)

    async def inspect() -> tuple[str, int, str]:
        context = pooled_session(info, streams=8)
        session = context.aiohttp_session
        try:
            return context.server, session.connector.limit, session.headers["Authorization"]
        finally:
            await session.close()

    server, limit, authorization = asyncio.run(inspect())
    assert server == "https://127.0.0.1:6443"
    assert limit == 8 + REQUEST_CONNECTIONS
    assert authorization == "Bearer secret"
