"""The fast paths of ingestion and due steps: a form parsed once, signatures computed only as
needed, message ids derived without ``uuid`` objects, an async batch sent side by side.

Each is checked against the slow way it replaces (``urllib.parse.parse_qsl``, ``uuid.uuid5``,
signing every URL variant), or by counting what it does.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import anysend
from anysend import (
    AsyncClient,
    Flow,
    Message,
    OutboundMessage,
    Receipt,
    Recipient,
    Step,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend._async._flows import step_message_id
from anysend._events import _parse_form
from anysend.providers import twilio
from anysend.testing import MemoryProvider, VirtualClock

TOKEN = "test-auth-token"  # a made-up token, for signing locally
ACCOUNT = "AC" + "0" * 32
FORM = [("MessageSid", "SM" + "1" * 32), ("MessageStatus", "delivered"), ("To", "+15555550100")]


# -- the form ------------------------------------------------------------------------------------


@given(st.text())
@example("a=1&&b=2&c&=d&e=")
@example("a+b=c+d&x=%2B1%20555&y=%E2%82%AC&z=%ff&w=%zz&v=%")
@example("a=1=2;b=3")
def test_the_form_parser_gives_what_parse_qsl_gives(text: str) -> None:
    assert _parse_form(text) == parse_qsl(text, keep_blank_values=True)


@given(st.lists(st.tuples(st.text(), st.text()), max_size=8))
def test_the_form_parser_reads_back_any_encoded_form(pairs: list[tuple[str, str]]) -> None:
    assert _parse_form(urlencode(pairs, quote_via=quote)) == pairs
    assert _parse_form(urlencode(pairs)) == pairs  # + for spaces


def test_a_request_parses_its_form_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(text: str) -> list[tuple[str, str]]:
        calls.append(text)
        return parse_qsl(text, keep_blank_values=True)

    monkeypatch.setattr(anysend._events, "_parse_form", counting)
    body = urlencode([*FORM, ("To", "+1999")]).encode()
    request = WebhookRequest(url="https://example.com/hook", body=body)
    assert request.form_pairs()[-1] == ("To", "+1999")  # every value of a repeated name
    assert request.form_body()["To"] == "+15555550100"  # the first one
    request.form_body()["To"] = "changed"  # a copy: the parsed form stays as it was
    assert request.form_body()["To"] == "+15555550100"
    assert len(calls) == 1
    other = request.model_copy(update={"body": b"MessageStatus=failed"})
    assert other.form_body() == {"MessageStatus": "failed"}  # its own body, parsed anew
    assert len(calls) == 2
    assert other == WebhookRequest(url="https://example.com/hook", body=b"MessageStatus=failed")


def test_a_form_that_is_not_utf8_is_refused() -> None:
    request = WebhookRequest(url="https://example.com/hook", body=b"a=\xff\xfe")
    with pytest.raises(anysend.WebhookParseError, match="not UTF-8"):
        request.form_pairs()


def test_the_query_is_parsed_once_per_url() -> None:
    request = WebhookRequest(url="https://example.com/hook?a=1&a=2&b=")
    assert request.query_params() == {"a": ["1", "2"], "b": [""]}
    assert request.query_params() is request.query_params()


# -- Twilio's signature ----------------------------------------------------------------------------


def _signed(url: str, signed_url: str) -> WebhookRequest:
    body = urlencode(FORM).encode()
    signature = twilio.sign(signed_url, FORM, TOKEN)
    return WebhookRequest(url=url, headers={"X-Twilio-Signature": signature}, body=body)


@pytest.mark.parametrize(
    ("signed_as", "signatures"),
    [
        ("https://hooks.example.com/twilio", 1),  # the URL as given: the first variant
        ("https://hooks.example.com:443/twilio", 2),  # with the port: the second
    ],
)
def test_url_variants_are_signed_only_until_one_matches(
    monkeypatch: pytest.MonkeyPatch, signed_as: str, signatures: int
) -> None:
    adapter = twilio.Twilio(account_sid=ACCOUNT, auth_token=TOKEN, sender="+15005550006")
    genuine = _signed("https://hooks.example.com/twilio", signed_as)
    forged = _signed("https://hooks.example.com/twilio", "https://elsewhere.example.com/")
    computed: list[str] = []
    real = twilio._signature

    def counting(url: str, signed_params: str, key: bytes) -> str:
        computed.append(url)
        return real(url, signed_params, key)

    monkeypatch.setattr(twilio, "_signature", counting)
    adapter.verify_webhook(genuine)
    assert len(computed) == signatures
    assert computed[-1] == signed_as
    computed.clear()
    with pytest.raises(WebhookVerificationError, match="does not match"):
        adapter.verify_webhook(forged)
    assert len(computed) == 2  # every variant tried before refusing


def test_a_signed_status_callback_parses_into_its_event() -> None:
    adapter = twilio.Twilio(account_sid=ACCOUNT, auth_token=TOKEN, sender="+15005550006")
    url = "https://hooks.example.com/twilio?anysend_message_id=&anysend_message_id=m-1"
    [event] = adapter.parse_webhook(_signed(url, url))
    assert isinstance(event, anysend.DeliveryEvent)
    assert (event.provider_message_id, event.message_id) == ("SM" + "1" * 32, "m-1")
    assert event.status is anysend.DeliveryStatus.DELIVERED


# -- message ids --------------------------------------------------------------------------------

NAMESPACE = uuid.UUID("6f1d3c2e-8a7b-4e55-9d41-2b0c6a1e9f30")


@given(st.text())
@example("e6f0a9b1c2d34e5f8a7b6c5d4e3f2a1b.0")
@example("run.digest")
def test_a_steps_message_id_is_its_uuid5(step_id: str) -> None:
    try:
        expected = uuid.uuid5(NAMESPACE, step_id).hex
    except UnicodeEncodeError:  # a lone surrogate: not a step id anysend makes
        with pytest.raises(UnicodeEncodeError):
            step_message_id(step_id)
        return
    assert step_message_id(step_id) == expected


# -- an async batch, side by side ---------------------------------------------------------------


class SlowOutbox(MemoryProvider):
    """Each send waits a moment (a network round trip); counts how many are in the air."""

    def __init__(self) -> None:
        super().__init__(channels={"email"})
        self.in_air = 0
        self.most = 0

    async def asend(self, message: OutboundMessage) -> Receipt:
        self.in_air += 1
        self.most = max(self.most, self.in_air)
        try:
            await asyncio.sleep(0.001)
            return await super().asend(message)
        finally:
            self.in_air -= 1


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_an_async_client_sends_a_batch_side_by_side_and_bounded() -> None:
    clock = VirtualClock(start=datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc))
    outbox = SlowOutbox()
    one = Flow(name="one", steps=[Step(via="email", message=Message(subject="Hi", text="Hi"))])
    async with AsyncClient([outbox], store=":memory:", clock=clock) as client:
        for person in range(25):
            await client.start(one, to=Recipient(id=f"u{person}", email=f"u{person}@x.org"))
        engine = client._engine()
        engine.concurrency = 4
        assert await client.run_due() == 25
        assert outbox.most == 4
        assert len(outbox.messages) == 25
        engine.concurrency = 1
        for person in range(3):
            await client.start(one, to=Recipient(id=f"v{person}", email=f"v{person}@x.org"))
        outbox.most = 0
        assert await client.run_due() == 3
        assert outbox.most == 1
