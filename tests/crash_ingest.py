"""A process that ingests signed Twilio callbacks, for ``tests/test_crash.py`` to kill.

``python -m tests.crash_ingest STORE CALLBACKS`` reads ``CALLBACKS`` (one JSON object a line:
``url``, ``headers``, ``body``), hands each to ``client.webhooks.handle("twilio", ...)`` on the
SQLite store ``STORE``, and prints the line's number once it is handled (flushed, so that the
test knows how far it got), then ``done``.
"""

from __future__ import annotations

import json
import sys

import anysend
from anysend import WebhookRequest
from anysend.providers.twilio import Twilio

__all__ = ["ACCOUNT", "SENDER", "TOKEN", "twilio"]

ACCOUNT = "AC" + "0" * 32
TOKEN = "crash-test-auth-token"
SENDER = "+15005550006"


def twilio() -> Twilio:
    """The Twilio adapter of the test account (its auth token signs the callbacks)."""
    return Twilio(account_sid=ACCOUNT, auth_token=TOKEN, sender=SENDER)


def main(store: str, callbacks: str) -> None:
    """Handle every callback of the file, in order."""
    with anysend.Client([twilio()], store=store) as client, open(callbacks, "rb") as lines:
        for number, line in enumerate(lines):
            callback = json.loads(line)
            client.webhooks.handle(
                "twilio",
                WebhookRequest(
                    method="POST",
                    url=callback["url"],
                    headers=callback["headers"],
                    body=callback["body"].encode(),
                ),
            )
            print(number, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
