"""Write your own adapter, and teach the sandbox your provider so that it runs offline.

``Textly`` is an imaginary SMS provider. Its adapter only builds requests and reads
answers and callbacks (no I/O; the client does the HTTP). ``TextlyAPI`` plays Textly's part
in the anysend sandbox: it answers ``POST /v2/sms`` as Textly would, keeps every message in
the sandbox's inbox, acts out scripted failures in Textly's error shape, and posts Textly's
signed delivery callback to the shop's webhook endpoint (``anysend.testing.WebhookServer``),
which verifies it into the store. Time runs on a ``VirtualClock``:
``sandbox.run_due()`` posts the callbacks that fell due, so nothing sleeps.

    pip install "anysend[sandbox]"
    python examples/custom_adapter.py
"""

import hashlib
import hmac
import json
from typing import ClassVar

import httpx
from pydantic import SecretStr

import anysend
from anysend import Channel, DeliveryEvent, DeliveryStatus, ErrorCategory, WebhookRequest
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    compare_signatures,
    error_from_response,
)
from anysend.sandbox import Callback, ProviderAPI, Sandbox, SandboxMessage, json_response
from anysend.testing import VirtualClock, WebhookServer

# -- the adapter (what you would publish as a package) --------------------------------------------

SIGNATURE_HEADER = "X-Textly-Signature"
#: Textly's error codes and what the caller does next.
ERROR_CODES = {
    "unknown_number": ErrorCategory.INVALID_RECIPIENT,
    "opted_out": ErrorCategory.OPTED_OUT,
}
#: Textly's delivery statuses in anysend's vocabulary.
STATUSES = {"delivered": DeliveryStatus.DELIVERED, "failed": DeliveryStatus.UNDELIVERABLE}


def sign(body: bytes, secret: str) -> str:
    """The signature Textly puts on a callback: hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class TextlySettings(ProviderSettings):
    api_key: SecretStr
    webhook_secret: SecretStr
    sender: str = "Shop"


class Textly(Provider):
    """SMS through the (imaginary) Textly API, with its signed delivery callbacks."""

    name: ClassVar[str] = "textly"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})
    capabilities: ClassVar[Capabilities] = Capabilities(idempotency=True, webhooks=True)
    Settings: ClassVar[type[ProviderSettings]] = TextlySettings
    default_base_url: ClassVar[str] = "https://api.textly.test"
    settings: TextlySettings

    def build_request(self, message: anysend.OutboundMessage) -> httpx.Request:
        return httpx.Request(
            "POST",
            f"{self.default_base_url}/v2/sms",
            json={"from": self.settings.sender, "to": message.to, "body": message.text},
            headers={
                "Authorization": f"Bearer {self.settings.api_key.get_secret_value()}",
                "Idempotency-Key": message.idempotency_key or message.id,
            },
        )

    def parse_response(
        self, response: httpx.Response, message: anysend.OutboundMessage
    ) -> anysend.Receipt:
        if response.status_code == 201:
            return anysend.Receipt(provider_message_id=response.json()["sid"], raw=response.json())
        code = response.json().get("code")
        raise error_from_response(response, self.name, category=ERROR_CODES.get(code), code=code)

    def verify_webhook(self, request: WebhookRequest) -> None:
        expected = sign(request.body, self.settings.webhook_secret.get_secret_value())
        if not compare_signatures(expected, request.header(SIGNATURE_HEADER)):
            raise anysend.WebhookVerificationError("textly callback signature does not match")

    def parse_webhook_events(self, request: WebhookRequest) -> list[DeliveryEvent]:
        data = request.json_body()
        return [
            DeliveryEvent(
                provider=self.name,
                provider_message_id=data["sid"],
                channel=Channel.SMS,
                status=STATUSES.get(data["status"], DeliveryStatus.UNKNOWN),
                raw_status=data["status"],
                event_id=f"{data['sid']}:{data['status']}",
                raw=data,
            )
        ]


# -- Textly in the sandbox (what you would ship beside it, for your users' tests) -----------------

API_KEY, WEBHOOK_SECRET = "tk_sandbox_key", "whsec_sandbox"
#: Textly's answer to each scripted failure (``sandbox.fail(number, ...)``).
REFUSALS = {
    "invalid_number": (404, "unknown_number"),
    "unsubscribed": (403, "opted_out"),
    "rate_limited": (429, "slow_down"),
    "auth": (401, "bad_key"),
}


class TextlyAPI(ProviderAPI):
    """``POST /textly/v2/sms`` on the sandbox, and Textly's signed status callbacks."""

    name: ClassVar[str] = "textly"  # Client(sandbox=url) sends the adapter's requests to url/textly

    def __init__(self, engine) -> None:
        super().__init__(engine)
        self.answers: dict[str, dict[str, str]] = {}  # by Idempotency-Key

    async def handle(self, request, path):
        if request.method != "POST" or path != "v2/sms":
            return json_response({"code": "not_found"}, 404)
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self.refusal("auth", "")
        key = request.headers["Idempotency-Key"]
        if key in self.answers:  # a retry of a send Textly already took: the same answer
            return json_response(self.answers[key], 201)
        data = await request.json()
        failure = self.check_failure(data["to"])  # raises Refusal for an immediate failure
        message = SandboxMessage(
            id="TX" + self.engine.hex(16),
            provider=self.name,
            channel="sms",
            direction="outbound",
            to=data["to"],
            sender=data["from"],
            person=data["to"],
            created_at=self.engine.now(),
            text=data["body"],
        )
        self.engine.accept(self, message, failure)  # into the inbox; delivery is scheduled
        self.answers[key] = {"sid": message.id, "status": "queued"}
        return json_response(self.answers[key], 201)

    def refusal(self, kind, address):
        status, code = REFUSALS.get(kind, (503, "unavailable"))
        return json_response({"code": code, "message": f"{code}: {address}"}, status)

    def delivered(self, message):
        return self.status(message, "delivered")

    def failed(self, message, kind):
        return "undeliverable", "Textly: not delivered", self.status(message, "failed")

    def status(self, message, status):
        """Textly's status callback, signed as the adapter expects."""
        url = self.callback_url()  # {webhook_url}/textly
        if url is None:
            return None
        body = json.dumps({"sid": message.id, "status": status}).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign(body, WEBHOOK_SECRET)}
        return Callback(self.name, url, headers, body, message_id=message.id, event=status)


# -- the shop -------------------------------------------------------------------------------------


clock = VirtualClock()
with (
    WebhookServer() as hooks,  # the shop's endpoint: its URL is known at once
    Sandbox(apis=[TextlyAPI], webhook_url=hooks.url, clock=clock, delivery_delay=30) as sandbox,
    anysend.Client(
        [Textly(api_key=API_KEY, webhook_secret=WEBHOOK_SECRET)],
        sandbox=sandbox.url,
        store=":memory:",
        clock=clock,
    ) as client,
):
    hooks.attach(client)  # callbacks now reach the client's store
    sandbox.fail("+48600700999", "invalid_number")  # Textly answers 404 unknown_number

    good = client.send(anysend.Message(text="Your order has shipped"), to={"phone": "+48600700800"})
    bad = client.send(anysend.Message(text="Your order has shipped"), to={"phone": "+48600700999"})
    print(f"sent: {good.status.value}, Textly id {good.provider_message_id}")
    print(f"refused: {bad.status.value}, {bad.error.category.value} ({bad.error.code})")

    clock.advance(30)
    sandbox.run_due()  # Textly's signed "delivered" callback reaches the webhook endpoint
    stored = client.store.get_message(good.message_id)
    print(f"after the callback, the store says: {stored.status.value}")
    for message in sandbox.messages():
        print(f"inbox: {message.provider} {message.channel} to {message.to}: {message.status}")
    print([(c["provider"], c["event"], c["status"]) for c in sandbox.callbacks()])
    print(repr(client.providers["textly"]))  # secrets never print

assert good.ok
assert not bad.ok
assert bad.error.category is ErrorCategory.INVALID_RECIPIENT
assert stored.status is DeliveryStatus.DELIVERED
