"""Keep provider secrets out of log records, including the HTTP library's.

anysend logs through ``logging.getLogger("anysend")`` and never formats a secret. httpx,
though, logs every request URL at INFO, and some providers put a secret in the URL (a Slack,
Teams or Discord webhook URL; a Telegram bot token). Each client registers its providers'
secrets here, and a filter on the ``httpx`` and ``httpcore`` loggers replaces them with
``***`` before any handler sees the record.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

__all__ = ["logger", "register_secrets"]

logger = logging.getLogger("anysend")

_MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words


class _RedactSecrets(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            if secret in redacted:
                redacted = redacted.replace(secret, "***")
        if redacted is not message and redacted != message:
            record.msg = redacted
            record.args = None
        return True


_FILTER = _RedactSecrets()
_INSTALLED = False


def register_secrets(secrets: Iterable[str]) -> None:
    """Redact these values from every httpx and httpcore log record from now on."""
    global _INSTALLED
    values = {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}
    if not values:
        return
    with _FILTER.lock:
        _FILTER.secrets = _FILTER.secrets | values
        if not _INSTALLED:
            for name in ("httpx", "httpcore"):
                logging.getLogger(name).addFilter(_FILTER)
            _INSTALLED = True
