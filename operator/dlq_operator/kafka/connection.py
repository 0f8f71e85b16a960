"""Building kafka-python clients: common settings, bounded waits, no leaked IO threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kafka.net.compat import KafkaNetClient

from dlq_operator.kafka.errors import translated
from dlq_operator.settings import KafkaSettings

Client = TypeVar("Client")

# kafka-python backs off up to 30 s between reconnects; a broker back after an outage
# should be used again within a second.
RECONNECT_BACKOFF_MAX_MS = 1000


def client_config(settings: KafkaSettings, client_id: str, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for any kafka-python client built from ``settings``."""
    return {
        **settings.client_config(),
        "client_id": client_id,
        "reconnect_backoff_max_ms": RECONNECT_BACKOFF_MAX_MS,
        # The first connection waits no longer than any request would.
        "bootstrap_timeout_ms": settings.request_timeout_ms,
        **overrides,
    }


def connect(
    factory: Callable[..., Client], settings: KafkaSettings, **config: Any
) -> tuple[Client, KafkaNetClient]:
    """A kafka-python client (admin, producer or consumer) and the network client inside it.

    Their constructors start an IO thread, then wait for the broker; one that gives up
    (broker down) would leave that thread running. The ``kafka_client`` hook lets us keep
    the network client and close it when the constructor raises.
    """
    created: list[KafkaNetClient] = []

    def network_client(**kwargs: Any) -> KafkaNetClient:
        created.append(KafkaNetClient(**kwargs))
        return created[-1]

    try:
        with translated("connect", settings.bootstrap_servers):
            return factory(kafka_client=network_client, **config), created[0]
    except BaseException:
        for client in created:
            client.close()
        raise
