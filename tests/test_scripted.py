"""ScriptedProvider: scripted sends and signed callbacks that fall due on a virtual clock."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anysend
import anysend.testing
from anysend import (
    AttemptOutcome,
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
    Message,
    OutboundMessage,
    ProviderError,
    Reason,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.testing import Script, ScriptedProvider, VirtualClock
from anysend.testing.contract import ProviderContract
from tests.strategies import damaged_json, edited_bytes

START = datetime(2026, 1, 1, tzinfo=timezone.utc)
SECRET = "scripted-secret"


def outbound(
    to: str = "ann@example.com", *, key: str | None = None, channel: str = "email"
) -> OutboundMessage:
    return OutboundMessage(
        id="m-1", channel=Channel(channel), to=to, text="hi", idempotency_key=key
    )


def scripted(clock: VirtualClock | None = None, **kwargs: Any) -> ScriptedProvider:
    return ScriptedProvider(clock=clock or VirtualClock(), **kwargs)


def sign(body: bytes, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed(body: bytes, secret: str = SECRET) -> WebhookRequest:
    return WebhookRequest(
        url="https://hooks.example.test/scripted",
        headers={"Content-Type": "application/json", "X-Scripted-Signature": sign(body, secret)},
        body=body,
    )


def callback_body(**fields: Any) -> bytes:
    data: dict[str, Any] = {
        "id": "scripted-1:delivered",
        "message_id": "scripted-1",
        "type": "delivered",
        "to": "ann@example.com",
        "channel": "email",
        "at": "2026-01-01T00:01:00+00:00",
    }
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not ...}
    return json.dumps(data, separators=(",", ":"), sort_keys=True).encode()


def parse(provider: ScriptedProvider, request: WebhookRequest) -> DeliveryEvent:
    [event] = provider.parse_webhook(request)
    assert isinstance(event, DeliveryEvent)
    return event


def kinds(provider: ScriptedProvider) -> list[tuple[str, str]]:
    """(type, at) of every callback due now, in the order handed out."""
    out = []
    for request in provider.due_callbacks():
        body = json.loads(request.body)
        out.append((body["type"], body["at"]))
    return out


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat()


# -- the scripts ---------------------------------------------------------------------------------


def test_accept_orders_callbacks_by_delay_then_lifecycle() -> None:
    """Script.accept keeps the given callbacks, earliest first, ties in lifecycle order."""
    script = Script.accept(
        clicked=timedelta(hours=2), opened=3600, delivered=60, sent=60, failed=None
    )
    assert script.kind == "accept"
    assert script.callbacks == (
        ("sent", 60.0),
        ("delivered", 60.0),
        ("opened", 3600.0),
        ("clicked", 7200.0),
    )
    assert Script.accept(failed=5, reason="unknown_recipient").callbacks == (
        ("undeliverable", 5.0),
    )
    assert Script.accept(failed=5, reason="unknown_recipient").reason is Reason.UNKNOWN_RECIPIENT
    assert Script.accept().callbacks == ()


@pytest.mark.parametrize("delay", [-1, float("inf"), float("nan"), timedelta(seconds=-1)])
def test_accept_refuses_impossible_delays(delay: float | timedelta) -> None:
    """A negative or non-finite delay is a mistake in the test, said at once."""
    with pytest.raises(ValueError, match="delivered must be a finite delay"):
        Script.accept(delivered=delay)
    with pytest.raises(ValueError, match="failed must be"):
        Script.accept(failed=delay)
    with pytest.raises(ValueError, match="retry_after must be"):
        Script.rate_limit(delay)


def test_script_is_frozen() -> None:
    """Scripts are values: they can be shared between providers and queued many times."""
    script = Script.accept(delivered=1)
    with pytest.raises(ValueError, match="frozen"):
        script.duplicate = True  # type: ignore[misc]
    assert script == Script.accept(delivered=1.0)


def test_reject_raises_a_provider_error_of_its_category() -> None:
    """Script.reject raises ProviderError with the category, code, reason and contact flag."""
    provider = scripted(name="mail")
    provider.then(
        Script.reject(),
        Script.reject(
            "opted_out",
            code="E42",
            message="gone",
            contact_invalid=True,
            reason="opted_out",
        ),
        Script.reject(ErrorCategory.UNAVAILABLE),
    )
    with pytest.raises(ProviderError) as first:
        provider.send(outbound())
    assert first.value.category is ErrorCategory.INVALID_RECIPIENT
    assert not first.value.retryable
    assert first.value.provider == "mail"
    assert first.value.message == "rejected by the script"
    assert (first.value.code, first.value.reason, first.value.contact_invalid) == (
        None,
        None,
        False,
    )
    with pytest.raises(ProviderError) as second:
        provider.send(outbound())
    assert second.value.category is ErrorCategory.OPTED_OUT
    assert (second.value.code, second.value.message) == ("E42", "gone")
    assert second.value.reason is Reason.OPTED_OUT
    assert second.value.contact_invalid
    with pytest.raises(ProviderError) as third:
        provider.send(outbound())
    assert third.value.category is ErrorCategory.UNAVAILABLE
    assert third.value.retryable
    assert provider.messages == []
    assert provider.calls == 3
    assert provider.pending_callbacks == 0


def test_rate_limit_raises_with_retry_after() -> None:
    """Script.rate_limit raises rate_limited (429), retryable, with its Retry-After."""
    provider = scripted()
    provider.then(Script.rate_limit(), Script.rate_limit(timedelta(minutes=1)))
    provider.then(Script.rate_limit(None))
    for expected in (1.0, 60.0, None):
        with pytest.raises(ProviderError) as caught:
            provider.send(outbound())
        assert caught.value.category is ErrorCategory.RATE_LIMITED
        assert caught.value.retryable
        assert caught.value.retry_after == expected
        assert caught.value.status_code == 429
    assert provider.messages == []


def test_time_out_plain_and_ambiguous() -> None:
    """A plain time-out is retryable; an ambiguous one is not, and by default nothing went out."""
    provider = scripted()
    provider.then(Script.time_out(), Script.time_out(ambiguous=True))
    with pytest.raises(ProviderError) as plain:
        provider.send(outbound(key="k"))
    assert plain.value.category is ErrorCategory.TIMEOUT
    assert plain.value.retryable
    assert plain.value.status_code is None
    with pytest.raises(ProviderError) as ambiguous:
        provider.send(outbound(key="k"))
    assert ambiguous.value.category is ErrorCategory.AMBIGUOUS_TIMEOUT
    assert not ambiguous.value.retryable
    assert provider.messages == []
    # The key was never taken: the next send with it is a fresh acceptance.
    assert provider.send(outbound(key="k")).provider_message_id == "scripted-1"


def test_ambiguous_time_out_that_was_accepted_behind_the_scenes() -> None:
    """With accepted=..., the message went out: recorded, deduplicated, and it calls back."""
    clock = VirtualClock()
    provider = scripted(clock)
    provider.then(Script.time_out(ambiguous=True, accepted=Script.accept(delivered=30)))
    with pytest.raises(ProviderError) as caught:
        provider.send(outbound(key="k"))
    assert caught.value.category is ErrorCategory.AMBIGUOUS_TIMEOUT
    assert len(provider.messages) == 1
    assert provider.pending_callbacks == 1
    # The retry with the same key gets the receipt of the message that went out.
    assert provider.send(outbound(key="k")).provider_message_id == "scripted-1"
    assert len(provider.messages) == 1
    clock.advance(30)
    assert kinds(provider) == [("delivered", at(30))]


def test_time_out_refuses_an_accepted_script_it_cannot_use() -> None:
    """accepted= needs ambiguous=True and an acceptance."""
    with pytest.raises(ValueError, match="ambiguous=True"):
        Script.time_out(accepted=Script.accept())
    with pytest.raises(ValueError, match=r"Script\.accept"):
        Script.time_out(ambiguous=True, accepted=Script.reject())


# -- the queue -----------------------------------------------------------------------------------


def test_scripts_are_used_in_order_then_the_default() -> None:
    """then() queues scripts for the next sends; the default takes over when none is left."""
    provider = scripted()
    assert provider.then(Script.rate_limit()).then(Script.reject(), Script.accept()) is provider
    categories = []
    for _ in range(3):
        try:
            provider.send(outbound())
        except ProviderError as exc:
            categories.append(exc.category)
    assert categories == [ErrorCategory.RATE_LIMITED, ErrorCategory.INVALID_RECIPIENT]
    receipts = [provider.send(outbound()) for _ in range(2)]
    assert [r.provider_message_id for r in receipts] == ["scripted-2", "scripted-3"]
    assert all(r.status is DeliveryStatus.ACCEPTED for r in receipts)
    assert len(provider.messages) == 3
    assert provider.calls == 5
    assert provider.pending_callbacks == 0


def test_custom_default() -> None:
    """default= scripts every send that finds the queue empty."""
    provider = scripted(default=Script.reject(ErrorCategory.AUTH))
    provider.then(Script.accept())
    assert provider.send(outbound()).provider_message_id == "scripted-1"
    for _ in range(2):
        with pytest.raises(ProviderError, match="rejected by the script"):
            provider.send(outbound())


def test_a_script_built_by_hand_refuses_with_unknown() -> None:
    """A refusal without a category (a Script built directly) raises category unknown."""
    provider = scripted(default=Script(kind="reject"))
    with pytest.raises(ProviderError, match="simulated reject") as caught:
        provider.send(outbound())
    assert caught.value.category is ErrorCategory.UNKNOWN


@pytest.mark.anyio
async def test_asend_follows_the_same_script() -> None:
    """asend() is send() for AsyncClient."""
    provider = scripted()
    provider.then(Script.reject())
    with pytest.raises(ProviderError):
        await provider.asend(outbound())
    assert (await provider.asend(outbound())).provider_message_id == "scripted-1"


# -- callbacks -----------------------------------------------------------------------------------


def test_callbacks_come_only_when_due_and_in_order() -> None:
    """Each callback falls due at acceptance + its delay; due_callbacks hands it out once."""
    clock = VirtualClock()
    provider = scripted(clock)
    provider.then(Script.accept(sent=1, delivered=60, opened=3600, clicked=3660, read=120))
    provider.send(outbound())
    assert provider.pending_callbacks == 5
    assert provider.due_callbacks() == []
    clock.advance(59)
    assert kinds(provider) == [("sent", at(1))]
    clock.advance(1)
    assert kinds(provider) == [("delivered", at(60))]
    assert kinds(provider) == []
    clock.advance(timedelta(days=2))
    assert kinds(provider) == [("read", at(120)), ("opened", at(3600)), ("clicked", at(3660))]
    assert provider.pending_callbacks == 0


def test_callbacks_of_several_messages_interleave_by_due_time() -> None:
    """Callbacks of different sends are handed out by due time; ties in scheduling order."""
    clock = VirtualClock()
    provider = scripted(clock)
    provider.then(Script.accept(delivered=100), Script.accept(sent=0, delivered=50))
    provider.send(outbound("a@example.com"))
    clock.advance(50)
    provider.send(outbound("b@example.com"))
    clock.advance(50)
    requests = provider.due_callbacks()
    order = [(json.loads(r.body)["to"], json.loads(r.body)["type"]) for r in requests]
    assert order == [
        ("b@example.com", "sent"),
        ("a@example.com", "delivered"),
        ("b@example.com", "delivered"),
    ]


def test_callback_request_shape() -> None:
    """A callback is a signed JSON POST with compact, sorted keys."""
    clock = VirtualClock()
    provider = scripted(clock, name="mail", secret="k3y")
    provider.then(Script.accept(failed=timedelta(minutes=5), reason=Reason.UNKNOWN_RECIPIENT))
    provider.send(outbound())
    clock.advance(300)
    [request] = provider.due_callbacks()
    assert request.method == "POST"
    assert request.url == "https://hooks.example.test/mail"
    assert request.header("Content-Type") == "application/json"
    expected = (
        b'{"at":"2026-01-01T00:05:00+00:00","channel":"email","id":"mail-1:undeliverable",'
        b'"message_id":"mail-1","reason":"unknown_recipient","to":"ann@example.com",'
        b'"type":"undeliverable"}'
    )
    assert request.body == expected
    assert request.header("X-Scripted-Signature") == sign(expected, "k3y")


def test_duplicate_posts_every_callback_twice_with_one_event_id() -> None:
    """duplicate=True: each callback twice, back to back, same event id."""
    clock = VirtualClock()
    provider = scripted(clock)
    provider.then(Script.accept(sent=1, delivered=2, duplicate=True))
    provider.send(outbound())
    assert provider.pending_callbacks == 4
    clock.advance(2)
    events = [parse(provider, r) for r in provider.due_callbacks()]
    assert [(e.raw_status, e.event_id) for e in events] == [
        ("sent", "scripted-1:sent"),
        ("sent", "scripted-1:sent"),
        ("delivered", "scripted-1:delivered"),
        ("delivered", "scripted-1:delivered"),
    ]


def test_reverse_posts_callbacks_late_and_backwards() -> None:
    """reverse=True: all at the latest time, latest first, each saying when it happened."""
    clock = VirtualClock()
    provider = scripted(clock)
    provider.then(Script.accept(sent=0, delivered=0, read=600, reverse=True))
    provider.send(outbound())
    assert provider.due_callbacks() == []
    clock.advance(599)
    assert provider.due_callbacks() == []
    clock.advance(1)
    events = [parse(provider, r) for r in provider.due_callbacks()]
    assert [e.status for e in events] == [
        DeliveryStatus.READ,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.SENT,
    ]
    assert [e.occurred_at for e in events] == [
        START + timedelta(seconds=600),
        START,
        START,
    ]


def test_reverse_and_duplicate_together() -> None:
    """The two switches combine."""
    clock = VirtualClock()
    provider = scripted(clock)
    provider.then(Script.accept(sent=1, delivered=2, duplicate=True, reverse=True))
    provider.send(outbound())
    clock.advance(2)
    assert [t for t, _ in kinds(provider)] == ["delivered", "delivered", "sent", "sent"]


@pytest.mark.parametrize(
    ("kind", "status", "event"),
    [
        ("sent", DeliveryStatus.SENT, None),
        ("delivered", DeliveryStatus.DELIVERED, None),
        ("read", DeliveryStatus.READ, None),
        ("failed", DeliveryStatus.UNDELIVERABLE, None),
        ("opened", None, EventType.OPENED),
        ("clicked", None, EventType.CLICKED),
    ],
)
def test_every_callback_parses_into_its_event(
    kind: str, status: DeliveryStatus | None, event: EventType | None
) -> None:
    """Statuses for sent/delivered/read/undeliverable; events for opened/clicked."""
    clock = VirtualClock()
    provider = scripted(clock, channel="sms", name="sms")
    provider.then(Script.accept(**{kind: 10.0}))  # type: ignore[arg-type]
    provider.send(outbound("+48600000000", channel="sms"))
    clock.advance(10)
    [request] = provider.due_callbacks()
    parsed = parse(provider, request)
    raw_status = "undeliverable" if kind == "failed" else kind
    assert parsed == DeliveryEvent(
        provider="sms",
        provider_message_id="sms-1",
        recipient="+48600000000",
        channel=Channel.SMS,
        status=status,
        event=event,
        raw_status=raw_status,
        reason=Reason.OTHER if kind == "failed" else None,
        occurred_at=START + timedelta(seconds=10),
        event_id=f"sms-1:{raw_status}",
        raw=json.loads(request.body),
    )


def test_naive_clock_time_is_taken_as_utc() -> None:
    """A clock that returns naive datetimes still yields UTC callback times."""

    class NaiveClock:
        def __init__(self) -> None:
            self.time = datetime(2026, 3, 1, 12, 0)

        def now(self) -> datetime:
            return self.time

    clock = NaiveClock()
    provider = ScriptedProvider(clock=clock)
    provider.then(Script.accept(delivered=5))
    provider.send(outbound())
    clock.time += timedelta(seconds=5)
    [request] = provider.due_callbacks()
    assert parse(provider, request).occurred_at == datetime(
        2026, 3, 1, 12, 0, 5, tzinfo=timezone.utc
    )


# -- verification --------------------------------------------------------------------------------


def delivered_request() -> tuple[ScriptedProvider, WebhookRequest]:
    clock = VirtualClock()
    provider = scripted(clock)
    provider.then(Script.accept(delivered=1))
    provider.send(outbound())
    clock.advance(1)
    [request] = provider.due_callbacks()
    return provider, request


def test_genuine_callback_verifies() -> None:
    """The provider accepts its own signature."""
    provider, request = delivered_request()
    provider.verify_webhook(request)
    assert parse(provider, request).status is DeliveryStatus.DELIVERED


def test_tampered_body_is_refused() -> None:
    """A body changed after signing fails verification."""
    provider, request = delivered_request()
    tampered = request.model_copy(update={"body": request.body.replace(b"delivered", b"read")})
    with pytest.raises(WebhookVerificationError, match="X-Scripted-Signature"):
        provider.parse_webhook(tampered)


def test_missing_or_wrong_signature_is_refused() -> None:
    """No header, an empty one, or one made with another secret: refused."""
    provider, request = delivered_request()
    for headers in (
        {"content-type": "application/json"},
        {"x-scripted-signature": ""},
        {"x-scripted-signature": sign(request.body, "other-secret")},
        {"x-scripted-signature": sign(request.body).upper()},
    ):
        forged = request.model_copy(update={"headers": headers})
        with pytest.raises(WebhookVerificationError):
            provider.verify_webhook(forged)


def test_another_secret_refuses_the_callback() -> None:
    """A provider with another secret does not accept this one's callbacks."""
    _, request = delivered_request()
    with pytest.raises(WebhookVerificationError):
        scripted(secret="different").parse_webhook(request)


# -- parsing bad bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "not a JSON object"),
        (b'"delivered"', "not a JSON object"),
        (callback_body(type=...), "no text 'type'"),
        (callback_body(type=3), "no text 'type'"),
        (callback_body(channel="sms"), "does not serve the channel 'sms'"),
        (callback_body(channel="pigeon"), "does not serve the channel 'pigeon'"),
        (callback_body(reason="bored"), "unknown reason 'bored'"),
        (callback_body(reason=[1]), "unknown reason"),
        (callback_body(message_id=""), "no text 'message_id'"),
        (callback_body(to=None), "no text 'to'"),
        (callback_body(id=...), "no text 'id'"),
        (callback_body(at="yesterday"), "not ISO 8601"),
        (callback_body(at="2026-01-01T00:00:00"), "no time zone"),
        (callback_body(at="0001-01-01T00:00:00+01:00"), "out of range"),
        (callback_body(at=1767225600), "no text 'at'"),
    ],
)
def test_malformed_bodies_raise_parse_errors(body: bytes, match: str) -> None:
    """Every way a body can be wrong is a WebhookParseError that says what."""
    with pytest.raises(WebhookParseError, match=match):
        scripted().parse_webhook(signed(body))


def test_an_unknown_type_is_kept_with_status_unknown() -> None:
    """A type the parser does not know: status unknown, the raw value kept."""
    event = parse(scripted(), signed(callback_body(type="bounced")))
    assert (event.status, event.event, event.raw_status) == (
        DeliveryStatus.UNKNOWN,
        None,
        "bounced",
    )


def test_reason_is_parsed_from_the_body() -> None:
    """A reason in the body comes through normalised."""
    event = parse(scripted(), signed(callback_body(type="undeliverable", reason="opted_out")))
    assert event.reason is Reason.OPTED_OUT
    assert event.status is DeliveryStatus.UNDELIVERABLE


def test_time_in_another_zone_is_converted_to_utc() -> None:
    """``at`` with an offset is normalised to UTC."""
    event = parse(scripted(), signed(callback_body(at="2026-01-01T02:00:00+02:00")))
    assert event.occurred_at == START
    assert event.occurred_at.tzinfo is timezone.utc


GENUINE = callback_body(type="undeliverable", reason="other")


def check_only_parse_errors(provider: ScriptedProvider, body: bytes) -> None:
    request = signed(body)
    for parse_ in (provider.parse_webhook, provider.parse_webhook_events):
        try:
            events = list(parse_(request))
        except WebhookParseError:
            continue
        [event] = events
        assert isinstance(event, DeliveryEvent)
        assert event.occurred_at is not None
        assert event.occurred_at.tzinfo is not None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_json_bodies_raise_only_parse_errors(data: st.DataObject) -> None:
    """A signed body with a damaged node or bytes parses or raises WebhookParseError only."""
    check_only_parse_errors(scripted(), damaged_json(GENUINE, data))


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_edited_bodies_raise_only_parse_errors(data: st.DataObject) -> None:
    """Byte insertions, deletions and flips: parsed or WebhookParseError, nothing else."""
    check_only_parse_errors(scripted(), edited_bytes(GENUINE, data))


@settings(max_examples=100, deadline=None)
@given(
    body=st.binary(max_size=200)
    | st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=8),
    ).map(lambda value: json.dumps(value).encode())
)
def test_garbage_bodies_raise_only_parse_errors(body: bytes) -> None:
    """Arbitrary bytes and JSON values: WebhookParseError, never another exception."""
    check_only_parse_errors(scripted(), body)


class TestScriptedContract(ProviderContract):
    """The contract kit every adapter passes, run against ScriptedProvider."""

    signature_headers = ("X-Scripted-Signature",)
    unknown_raw_status = "bounced"

    def make_provider(self) -> ScriptedProvider:
        return scripted(channel=["email", "sms"])

    def signed_webhook(self) -> WebhookRequest:
        return signed(callback_body())

    def wrong_secret_webhook(self) -> WebhookRequest:
        return signed(callback_body(), secret="not-the-secret")

    def unknown_status_webhook(self) -> WebhookRequest:
        return signed(callback_body(type="bounced"))


# -- idempotency ---------------------------------------------------------------------------------


def test_repeated_idempotency_key_returns_the_first_receipt() -> None:
    """A key already accepted: first receipt, nothing recorded, no callbacks, no script used."""
    clock = VirtualClock()
    provider = scripted(clock)
    provider.then(Script.accept(delivered=5), Script.reject())
    first = provider.send(outbound(key="order-1"))
    again = provider.send(outbound(key="order-1"))
    assert again == first
    assert len(provider.messages) == 1
    assert provider.calls == 2
    assert provider.pending_callbacks == 1
    # The reject is still queued for the next new message.
    with pytest.raises(ProviderError):
        provider.send(outbound(key="order-2"))
    assert provider.capabilities.idempotency


def test_without_idempotency_every_send_is_new() -> None:
    """idempotency=False: a repeated key is a new message with new callbacks."""
    provider = scripted(idempotency=False, default=Script.accept(delivered=5))
    ids = [provider.send(outbound(key="k")).provider_message_id for _ in range(2)]
    assert ids == ["scripted-1", "scripted-2"]
    assert len(provider.messages) == 2
    assert provider.pending_callbacks == 2
    assert not provider.capabilities.idempotency
    assert ScriptedProvider.capabilities.idempotency  # the class default is untouched


def test_a_message_without_a_key_is_never_deduplicated() -> None:
    """No idempotency key: each send is a new message."""
    provider = scripted()
    assert provider.send(outbound()) != provider.send(outbound())


def test_concurrent_sends_are_safe() -> None:
    """Many threads: every message recorded once, every id unique, every script used once."""
    clock = VirtualClock()
    provider = scripted(clock, default=Script.accept(delivered=1))
    provider.then(*(Script.reject() for _ in range(50)))
    barrier = threading.Barrier(8)

    def send(n: int) -> str | None:
        if n < 8:
            barrier.wait(timeout=10)
        try:
            return provider.send(outbound(f"u{n}@example.com", key=str(n))).provider_message_id
        except ProviderError:
            return None

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(send, range(200)))
    accepted = [i for i in ids if i is not None]
    assert len(accepted) == 150
    assert len(set(accepted)) == 150
    assert len(provider.messages) == 150
    clock.advance(1)
    assert len(provider.due_callbacks()) == 150


# -- configuration -------------------------------------------------------------------------------


def test_name_channels_and_settings_are_per_instance() -> None:
    """Name and channels belong to the instance; the secret never prints."""
    provider = scripted(channel=["sms", Channel.WHATSAPP], name="chat", secret="hush")
    assert provider.name == "chat"
    assert provider.channels == {Channel.SMS, Channel.WHATSAPP}
    assert ScriptedProvider.name == "scripted"
    assert ScriptedProvider.channels == {Channel.EMAIL}
    assert provider.capabilities.webhooks
    assert "hush" not in repr(provider)
    assert provider.secrets() == ["hush"]
    assert scripted(channel=Channel.PUSH).channels == {Channel.PUSH}
    assert scripted().channels == {Channel.EMAIL}


def test_a_callback_names_the_channel_of_its_message() -> None:
    """A provider of two channels tells their callbacks apart."""
    clock = VirtualClock()
    provider = scripted(clock, channel=["sms", "whatsapp"], default=Script.accept(read=1))
    provider.send(outbound("+48600000000", channel="whatsapp"))
    clock.advance(1)
    [request] = provider.due_callbacks()
    assert parse(provider, request).channel is Channel.WHATSAPP


@pytest.mark.parametrize("channel", [[], "pigeon", ["email", "pigeon"]])
def test_bad_channels_are_a_configuration_error(channel: Any) -> None:
    """No channel, or one that does not exist: ConfigurationError."""
    with pytest.raises(anysend.ConfigurationError):
        scripted(channel=channel)


def test_exported_from_anysend_testing() -> None:
    """Both names load lazily from anysend.testing."""
    assert anysend.testing.Script is Script
    assert anysend.testing.ScriptedProvider is ScriptedProvider
    assert {"Script", "ScriptedProvider"} <= set(dir(anysend.testing))


# -- through the clients -------------------------------------------------------------------------

ANN = {"email": "a@example.com", "phone": "+48600000000"}


def test_client_retries_a_rate_limit_after_retry_after() -> None:
    """Client waits the Retry-After on the clock, then sends again."""
    clock = VirtualClock()
    email = scripted(clock)
    email.then(Script.rate_limit(2.5))
    with anysend.Client([email], clock=clock) as client:
        result = client.send(Message(text="hi"), to=ANN, via=["email"])
    assert result.ok
    assert clock.sleeps == [2.5]
    assert [a.outcome for a in result.attempts] == [AttemptOutcome.FAILED, AttemptOutcome.SENT]
    assert result.provider_message_id == "scripted-1"
    assert email.calls == 2


def test_client_moves_to_the_next_channel_on_a_reject() -> None:
    """A rejected email address moves the send on to SMS, on another scripted provider."""
    clock = VirtualClock()
    email = scripted(clock, name="email").then(Script.reject())
    sms = scripted(clock, channel="sms", name="sms")
    with anysend.Client([email, sms], clock=clock) as client:
        result = client.send(Message(text="hi"), to=ANN, via=["email", "sms"])
    assert result.ok
    assert (result.channel, result.provider) == (Channel.SMS, "sms")
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.category is ErrorCategory.INVALID_RECIPIENT
    assert email.messages == []
    assert [m.to for m in sms.messages] == ["+48600000000"]
    assert clock.sleeps == []


def test_a_two_day_escalation_runs_at_once() -> None:
    """Email, no open within a day: escalate to SMS; its delivery arrives the day after."""
    clock = VirtualClock()
    email = scripted(clock, name="email").then(Script.accept(delivered=60, opened=3 * 86400))
    sms = scripted(clock, channel="sms", name="sms").then(Script.accept(delivered=86400))
    seen: list[DeliveryEvent] = []

    def ingest(client: anysend.Client, provider: ScriptedProvider) -> None:
        for request in provider.due_callbacks():
            for event in client.parse_webhook(provider, request):
                assert isinstance(event, DeliveryEvent)
                seen.append(event)

    with anysend.Client([email, sms], clock=clock) as client:
        first = client.send(Message(text="hi"), to=ANN, via="email")
        clock.advance(timedelta(days=1))
        ingest(client, email)
        assert [e.raw_status for e in seen] == ["delivered"]
        assert not any(e.event is EventType.OPENED for e in seen)
        second = client.send(Message(text="hi"), to=ANN, via="sms")
        clock.advance(timedelta(days=1))
        ingest(client, email)
        ingest(client, sms)
    assert [(e.provider, e.raw_status) for e in seen] == [
        ("email", "delivered"),
        ("sms", "delivered"),
    ]
    assert seen[0].provider_message_id == first.provider_message_id
    assert seen[1].provider_message_id == second.provider_message_id
    assert email.pending_callbacks == 1  # the open, on day three


@pytest.mark.anyio
async def test_async_client_retries_a_rate_limit() -> None:
    """AsyncClient: the same retry after Retry-After, on the virtual clock."""
    clock = VirtualClock()
    email = scripted(clock).then(Script.rate_limit(4), Script.time_out())
    async with anysend.AsyncClient([email], clock=clock) as client:
        result = await client.send(Message(text="hi"), to=ANN, via=["email"])
        assert result.ok
        assert clock.sleeps[0] == 4
        assert len(clock.sleeps) == 2  # then a backoff after the time-out
        assert email.calls == 3
        clock.advance(1)
        assert email.due_callbacks() == []


@pytest.mark.anyio
async def test_async_client_moves_on_and_parses_callbacks() -> None:
    """AsyncClient: a reject on email moves to SMS, whose callback the client parses."""
    clock = VirtualClock()
    email = scripted(clock, name="email").then(Script.reject(contact_invalid=True))
    sms = scripted(clock, channel="sms", name="sms", default=Script.accept(delivered=30))
    async with anysend.AsyncClient([email, sms], clock=clock) as client:
        result = await client.send(Message(text="hi"), to=ANN, via=["email", "sms"])
        assert result.channel is Channel.SMS
        assert result.attempts[0].contact_invalid
        clock.advance(30)
        [request] = sms.due_callbacks()
        [event] = await client.parse_webhook("sms", request)
    assert isinstance(event, DeliveryEvent)
    assert event.status is DeliveryStatus.DELIVERED
    assert event.provider_message_id == result.provider_message_id


@pytest.mark.anyio
async def test_async_client_retries_an_ambiguous_time_out_that_went_out() -> None:
    """An idempotent provider's ambiguous time-out is retried and deduplicated: one message."""
    clock = VirtualClock()
    email = scripted(clock).then(
        Script.time_out(ambiguous=True, accepted=Script.accept(delivered=10))
    )
    async with anysend.AsyncClient([email], clock=clock) as client:
        result = await client.send(Message(text="hi"), to=ANN, via=["email"])
    assert result.ok
    assert result.provider_message_id == "scripted-1"
    assert len(email.messages) == 1
    assert email.calls == 2
    assert email.pending_callbacks == 1


def test_client_gives_up_on_an_ambiguous_time_out_without_idempotency() -> None:
    """Without idempotency the client does not retry: the result is unknown."""
    clock = VirtualClock()
    email = scripted(clock, idempotency=False).then(Script.time_out(ambiguous=True))
    with anysend.Client([email], clock=clock) as client:
        result = client.send(Message(text="hi"), to=ANN, via=["email", "sms"])
    assert result.status is DeliveryStatus.UNKNOWN
    assert email.calls == 1
