"""Logging for every dlq-operator process, set up once, with secrets kept out of it.

kafka-python logs its whole configuration at debug level, SASL password included, and
other libraries may put a URL or a credential into a message. Every secret value the
process uses is registered with :func:`keep_secret`; the handlers that
:func:`configure_logging` sets up replace such values in every record, whoever logs it.
"""

from __future__ import annotations

import logging

REDACTED = "***"
_secrets: set[str] = set()


def keep_secret(value: str) -> str:
    """Registers ``value`` as a secret (never logged) and returns it."""
    if value:
        _secrets.add(value)
    return value


class RedactSecrets(logging.Filter):
    """Rewrites a record whose message holds a registered secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in _secrets:
            redacted = redacted.replace(secret, REDACTED)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(verbose: bool = False) -> None:
    """Timestamped lines on stderr, debug with ``verbose``, through the redacting filter."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactSecrets) for f in handler.filters):
            handler.addFilter(RedactSecrets())
