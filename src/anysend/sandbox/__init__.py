"""``anysend.sandbox``: a local server that speaks the providers' APIs, with an inbox.

Point the real adapters at it (``anysend.Client(providers, sandbox=sandbox.url)``) and every
message lands in a browsable inbox instead of reaching anyone; delivery, read and bounce
callbacks come back to your webhook receiver signed as each provider signs them. Needs the
``sandbox`` extra (``pip install "anysend[sandbox]"``: aiohttp, aiosmtpd, cryptography).

Example:
    ```python
    import anysend
    from anysend.sandbox import Sandbox

    with Sandbox() as sandbox:
        with anysend.Client(sandbox.providers("twilio"), sandbox=sandbox.url) as client:
            message = anysend.Message(text="Your code is 123456")
            result = client.send(message, to={"phone": "+48600100200"})
        print(result.ok, sandbox.messages()[0].text)
    ```

See ``docs/sandbox.md`` for the providers, credentials, callbacks and scripted failures.

A third-party adapter's provider can be taught to the sandbox too: subclass
:class:`ProviderAPI` (it makes :class:`SandboxMessage` objects, answers scripted failures with
:class:`Refusal` and :func:`json_response`, and returns a :class:`Callback` per status it
reports) and pass it as ``Sandbox(apis=[...])`` or to :meth:`Sandbox.add_api`.
"""

from __future__ import annotations

from anysend.sandbox._api import ALIASES, FAILURES, Engine, ProviderAPI, Refusal, json_response
from anysend.sandbox._callbacks import Callback
from anysend.sandbox._server import DEFAULT_PORT, Sandbox, serve
from anysend.sandbox._state import SandboxMessage

__all__ = [
    "ALIASES",
    "DEFAULT_PORT",
    "FAILURES",
    "Callback",
    "Engine",
    "ProviderAPI",
    "Refusal",
    "Sandbox",
    "SandboxMessage",
    "json_response",
    "serve",
]
