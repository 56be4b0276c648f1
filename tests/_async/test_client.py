"""The send orchestration, through AsyncClient (tests/_sync is generated from this file)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import httpx
import pytest
import respx
from pydantic import SecretStr

import anysend
from anysend import (
    Attachment,
    AttemptOutcome,
    Channel,
    ChannelLimits,
    DeliveryStatus,
    ErrorCategory,
    Message,
    PushTarget,
    Recipient,
    RetryPolicy,
    SkipReason,
)
from anysend.providers import Capabilities, Provider, ProviderSettings, SendFlow, WebhookFlow
from anysend.providers._http import error_from_response
from anysend.testing import MemoryProvider, VirtualClock

pytestmark = pytest.mark.anyio

ANN = Recipient(email="ann@example.com", phone="+48 600 700 800", locale="pl")
TEXT = Message(text="Your size is back", subject="Back in stock")


def memory(name: str, *channels: str, idempotency: bool = True) -> MemoryProvider:
    return MemoryProvider(
        name=name, channels=frozenset(Channel(c) for c in channels), idempotency=idempotency
    )


def client(*providers: Provider, **kwargs: Any) -> anysend.AsyncClient:
    kwargs.setdefault("clock", VirtualClock())
    return anysend.AsyncClient(list(providers), **kwargs)


class HookSink:
    def __init__(self) -> None:
        self.attempts: list[anysend.Attempt] = []
        self.results: list[anysend.SendResult] = []

    async def on_attempt(self, attempt: anysend.Attempt) -> None:
        self.attempts.append(attempt)

    async def on_result(self, result: anysend.SendResult) -> None:
        self.results.append(result)


class HttpSettings(ProviderSettings):
    token: SecretStr = SecretStr("s3cr3t-token")


class HttpSMS(Provider):
    """A minimal HTTP adapter: POST JSON, read {"id": ...} back."""

    name: ClassVar[str] = "httpsms"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})
    capabilities: ClassVar[Capabilities] = Capabilities(idempotency=False)
    Settings: ClassVar[type[ProviderSettings]] = HttpSettings
    settings: HttpSettings

    def build_request(self, message: anysend.OutboundMessage) -> httpx.Request:
        return httpx.Request(
            "POST",
            "https://api.example.test/v1/sms",
            json={"to": message.to, "text": message.text},
            headers={"Authorization": f"Bearer {self.settings.token.get_secret_value()}"},
        )

    def parse_response(
        self, response: httpx.Response, message: anysend.OutboundMessage
    ) -> anysend.Receipt:
        if response.status_code != 200:
            raise error_from_response(response, self.name)
        body = response.json()
        return anysend.Receipt(provider_message_id=body["id"], raw=body)


# -- the happy path -------------------------------------------------------------------------


async def test_send_uses_first_channel_and_reports_it() -> None:
    """A send over ["email", "sms"] goes out by email and the result says so."""
    outbox = memory("mem", "email", "sms")
    async with client(outbox) as c:
        result = await c.send(TEXT, to=ANN, via=["email", "sms"])
    assert result.ok
    assert result.status is DeliveryStatus.ACCEPTED
    assert result.channel is Channel.EMAIL
    assert result.provider == "mem"
    assert result.address == "ann@example.com"
    assert result.provider_message_id == "mem-1"
    assert [a.outcome for a in result.attempts] == [AttemptOutcome.SENT]
    assert result.raise_for_status() is result
    [sent] = outbox.messages
    assert (sent.channel, sent.to, sent.subject, sent.text) == (
        Channel.EMAIL,
        "ann@example.com",
        "Back in stock",
        "Your size is back",
    )
    assert sent.id == result.message_id


async def test_default_chain_follows_channel_order_of_known_addresses() -> None:
    """Without via, the channels the recipient has addresses for are tried in Channel order."""
    email = memory("e", "email")
    sms = memory("s", "sms")
    email.fail_always(ErrorCategory.AUTH)
    async with client(email, sms) as c:
        result = await c.send(TEXT, to=Recipient(phone="+48600700800", email="a@example.com"))
    assert [a.channel for a in result.attempts] == [Channel.EMAIL, Channel.SMS]
    assert result.channel is Channel.SMS


async def test_phone_is_normalised_with_default_region() -> None:
    """A national number becomes E.164 using the client's default region."""
    sms = memory("s", "sms")
    async with client(sms, default_region="PL") as c:
        result = await c.send(TEXT, to=Recipient(phone="600 700 800"))
    assert result.address == "+48600700800"
    assert sms.messages[0].to == "+48600700800"


# -- validation before the network ------------------------------------------------------------


async def test_bad_phone_raises_before_anything_is_sent() -> None:
    """A malformed phone later in the chain stops the send before the email goes out."""
    outbox = memory("mem", "email", "sms")
    async with client(outbox) as c:
        with pytest.raises(anysend.InvalidRecipientError) as info:
            await c.send(
                TEXT, to=Recipient(email="ann@example.com", phone="12"), via=["email", "sms"]
            )
    assert info.value.field == "phone"
    assert isinstance(info.value, ValueError)
    assert outbox.calls == 0


async def test_bad_email_names_the_field() -> None:
    """A malformed email raises InvalidRecipientError naming the email field."""
    async with client(memory("mem", "email")) as c:
        with pytest.raises(anysend.InvalidRecipientError) as info:
            await c.send(TEXT, to=Recipient(email="not-an-address"))
    assert info.value.field == "email"


async def test_template_error_raises_before_anything_is_sent() -> None:
    """A missing template variable for the fallback channel is raised before the first send."""
    outbox = memory("mem", "email", "sms")
    templates = {
        "stock/email.subject.txt": "Back: {{ product }}",
        "stock/email.txt": "{{ product }} is back",
        "stock/sms.txt": "{{ product }} -{{ discount }}%",
    }
    async with client(outbox, templates=templates) as c:
        with pytest.raises(anysend.TemplateError, match="discount"):
            await c.send(
                Message(template="stock", data={"product": "Sneakers"}),
                to=ANN,
                via=["email", "sms"],
            )
    assert outbox.calls == 0


# -- templates ----------------------------------------------------------------------------------


async def test_templates_render_per_channel_and_locale() -> None:
    """Each channel gets its own part, in the recipient's locale where one exists."""
    email = memory("e", "email")
    sms = memory("s", "sms")
    email.fail_always(ErrorCategory.INVALID_RECIPIENT)
    templates = {
        "stock/email.subject.txt": "{{ product }} is back",
        "stock/email.html": "<p>{{ product }} &amp; more</p>",
        "stock/pl/sms.txt": "{{ product }} znowu w sklepie",
        "stock/sms.txt": "{{ product }} is back in stock",
    }
    async with client(email, sms, templates=templates) as c:
        result = await c.send(
            Message(template="stock", data={"product": "<Sneakers>"}), to=ANN, via=["email", "sms"]
        )
    assert result.channel is Channel.SMS
    assert sms.messages[0].text == "<Sneakers> znowu w sklepie"
    assert sms.messages[0].locale == "pl"
    # The email attempt got escaped HTML and a derived text part.
    assert email.calls == 1


async def test_channel_without_template_part_is_skipped() -> None:
    """A channel the template has no part for is skipped with reason no_content."""
    templates = {"otp/sms.txt": "Code {{ code }}"}
    async with client(memory("mem", "email", "sms"), templates=templates) as c:
        result = await c.send(
            Message(template="otp", data={"code": "1234"}), to=ANN, via=["email", "sms"]
        )
    assert result.channel is Channel.SMS
    assert result.attempts[0].skip_reason is SkipReason.NO_CONTENT


# -- skips --------------------------------------------------------------------------------------


async def test_channel_without_address_is_skipped_with_reason() -> None:
    """A channel the recipient has no address for is skipped, and the chain goes on."""
    async with client(memory("mem", "email", "sms")) as c:
        result = await c.send(TEXT, to=Recipient(phone="+48600700800"), via=["email", "sms"])
    skipped, sent = result.attempts
    assert (skipped.outcome, skipped.skip_reason) == (AttemptOutcome.SKIPPED, SkipReason.NO_ADDRESS)
    assert sent.channel is Channel.SMS


async def test_opted_out_channel_is_skipped() -> None:
    """A channel the recipient opted out of, globally or for the category, is skipped."""
    prefs = anysend.Preferences(
        opted_out=frozenset({Channel.EMAIL}),
        categories={"marketing": {Channel.SMS: False}},
    )
    ann = ANN.model_copy(update={"preferences": prefs})
    async with client(memory("mem", "email", "sms", "push")) as c:
        result = await c.send(
            TEXT.model_copy(update={"category": "marketing"}), to=ann, via=["email", "sms"]
        )
        transactional = await c.send(TEXT, to=ann, via=["email", "sms"])
    assert [a.skip_reason for a in result.attempts] == [SkipReason.OPTED_OUT] * 2
    assert not result.ok
    assert result.status is DeliveryStatus.FAILED
    assert transactional.channel is Channel.SMS


async def test_channel_without_provider_is_skipped() -> None:
    """A channel no provider serves is skipped with reason no_provider."""
    async with client(memory("mem", "sms")) as c:
        result = await c.send(TEXT, to=ANN, via=["email", "sms"])
    assert result.attempts[0].skip_reason is SkipReason.NO_PROVIDER
    assert result.channel is Channel.SMS


async def test_unsupported_feature_skips_to_a_provider_that_can() -> None:
    """An adapter that cannot send attachments is skipped for one that can."""

    class NoAttachments(MemoryProvider):
        capabilities: ClassVar[Capabilities] = Capabilities(idempotency=True)

    plain = NoAttachments(name="plain", channels=frozenset({Channel.EMAIL}))
    rich = memory("rich", "email")
    message = TEXT.model_copy(
        update={"attachments": (Attachment(filename="a.pdf", content=b"%PDF"),)}
    )
    async with client(plain, rich) as c:
        result = await c.send(message, to=ANN, via=["email"])
    first, second = result.attempts
    assert first.skip_reason is SkipReason.UNSUPPORTED
    assert "attachments" in (first.detail or "")
    assert plain.calls == 0
    assert second.provider == "rich"


# -- failover and fallback ------------------------------------------------------------------------


async def test_provider_error_fails_over_within_the_channel() -> None:
    """An auth failure moves to the next provider of the same channel, without retrying."""
    first = memory("first", "sms")
    second = memory("second", "sms")
    first.fail_always(ErrorCategory.AUTH)
    async with client(first, second) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.provider == "second"
    assert first.calls == 1
    assert [a.provider for a in result.attempts] == ["first", "second"]
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.category is ErrorCategory.AUTH


async def test_recipient_error_moves_to_next_channel_not_next_provider() -> None:
    """An invalid recipient skips the channel's other providers and falls back a channel."""
    sms1 = memory("sms1", "sms")
    sms2 = memory("sms2", "sms")
    email = memory("email", "email")
    sms1.fail(ErrorCategory.INVALID_RECIPIENT)
    async with client(sms1, sms2, email) as c:
        result = await c.send(TEXT, to=ANN, via=["sms", "email"])
    assert sms2.calls == 0
    assert result.channel is Channel.EMAIL


async def test_content_rejection_fails_fast() -> None:
    """A content rejection tries neither another provider nor another channel."""
    sms1 = memory("sms1", "sms")
    sms2 = memory("sms2", "sms")
    email = memory("email", "email")
    sms1.fail(ErrorCategory.CONTENT_REJECTED)
    async with client(sms1, sms2, email) as c:
        result = await c.send(TEXT, to=ANN, via=["sms", "email"])
    assert sms2.calls == 0
    assert email.calls == 0
    assert result.channel is None
    assert result.status is DeliveryStatus.REJECTED


async def test_everything_failing_gives_failed_result_and_delivery_error() -> None:
    """When no channel takes the message the result is not ok and raise_for_status raises."""
    sms = memory("sms", "sms")
    sms.fail_always(ErrorCategory.QUOTA)
    async with client(sms) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert not result.ok
    assert result.status is DeliveryStatus.FAILED
    assert result.error is not None
    assert result.error.category is ErrorCategory.QUOTA
    with pytest.raises(anysend.DeliveryError) as info:
        result.raise_for_status()
    assert info.value.result is result
    assert "quota" in str(info.value)


async def test_recipient_refused_everywhere_is_rejected() -> None:
    """When every failure was the recipient's, the status is rejected, not failed."""
    sms = memory("sms", "sms")
    sms.fail_always(ErrorCategory.OPTED_OUT)
    async with client(sms) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.status is DeliveryStatus.REJECTED


async def test_round_robin_rotates_providers() -> None:
    """With round_robin, consecutive sends start with different providers."""
    a = memory("a", "sms")
    b = memory("b", "sms")
    async with client(a, b, round_robin=True) as c:
        providers = [(await c.send(TEXT, to=ANN, via=["sms"])).provider for _ in range(4)]
    assert providers == ["a", "b", "a", "b"]


async def test_provider_options_reach_only_their_provider() -> None:
    """provider_options are passed verbatim to the named adapter only."""
    a = memory("a", "sms")
    b = memory("b", "sms")
    a.fail(ErrorCategory.UNAVAILABLE, times=3)
    message = TEXT.model_copy(update={"provider_options": {"b": {"validity": 600}}})
    async with client(a, b) as c:
        await c.send(message, to=ANN, via=["sms"])
    assert b.messages[0].provider_options == {"validity": 600}


# -- retries ------------------------------------------------------------------------------------


async def test_retryable_error_is_retried_with_backoff() -> None:
    """Two outages then success: three tries on one provider, with growing jittered waits."""
    sms = memory("sms", "sms")
    sms.fail(ErrorCategory.UNAVAILABLE, times=2)
    clock = VirtualClock()
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2.0, jitter=0.5)
    async with client(sms, clock=clock, retry=policy) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.ok
    assert [a.number for a in result.attempts] == [1, 2, 3]
    assert [a.outcome for a in result.attempts] == [AttemptOutcome.FAILED] * 2 + [
        AttemptOutcome.SENT
    ]
    first, second = clock.sleeps
    assert 0.5 <= first <= 1.0
    assert 1.0 <= second <= 2.0


async def test_retry_after_is_honoured() -> None:
    """A rate limit with Retry-After waits exactly that long before the retry."""
    sms = memory("sms", "sms")
    sms.fail(ErrorCategory.RATE_LIMITED, retry_after=7)
    clock = VirtualClock()
    async with client(sms, clock=clock) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.ok
    assert clock.sleeps == [7]


async def test_retry_after_past_the_cap_fails_over_at_once() -> None:
    """A Retry-After longer than max_retry_after fails over without waiting."""
    a = memory("a", "sms")
    b = memory("b", "sms")
    a.fail(ErrorCategory.RATE_LIMITED, retry_after=3600)
    clock = VirtualClock()
    async with client(a, b, clock=clock) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.provider == "b"
    assert clock.sleeps == []


async def test_deadline_stops_retries() -> None:
    """No retry starts when its wait would end past the send's deadline."""
    a = memory("a", "sms")
    a.fail_always(ErrorCategory.UNAVAILABLE)
    clock = VirtualClock()
    policy = RetryPolicy(max_attempts=10, initial_backoff=4, multiplier=1, jitter=0, deadline=10)
    async with client(a, clock=clock, retry=policy) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert clock.sleeps == [4, 4]
    assert a.calls == 3
    assert not result.ok


async def test_permanent_errors_are_not_retried() -> None:
    """Non-retryable categories are tried once."""
    for category in (ErrorCategory.AUTH, ErrorCategory.INVALID_RECIPIENT, ErrorCategory.UNKNOWN):
        sms = memory("sms", "sms")
        sms.fail_always(category)
        clock = VirtualClock()
        async with client(sms, clock=clock) as c:
            await c.send(TEXT, to=ANN, via=["sms"])
        assert sms.calls == 1, category
        assert clock.sleeps == []


async def test_ambiguous_timeout_without_idempotency_is_not_resent() -> None:
    """A timeout after sending, at a provider without idempotency keys, ends as unknown."""
    a = memory("a", "sms", idempotency=False)
    b = memory("b", "sms")
    email = memory("email", "email")
    a.fail(ErrorCategory.AMBIGUOUS_TIMEOUT)
    async with client(a, b, email) as c:
        result = await c.send(TEXT, to=ANN, via=["sms", "email"])
    assert result.status is DeliveryStatus.UNKNOWN
    assert not result.ok
    assert a.calls == 1
    assert b.calls == 0
    assert email.calls == 0


async def test_ambiguous_timeout_with_idempotency_is_retried_once_delivered() -> None:
    """With an idempotency key the retry is safe: the provider keeps one message."""
    a = memory("a", "sms")
    a.fail(ErrorCategory.AMBIGUOUS_TIMEOUT)
    async with client(a) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.ok
    assert a.calls == 2
    assert len(a.messages) == 1
    assert a.messages[0].idempotency_key == result.message_id


# -- channel limits -----------------------------------------------------------------------------


async def test_sms_over_segment_limit_falls_back_without_network() -> None:
    """An SMS longer than the segment limit fails locally and the chain moves on."""
    sms = memory("sms", "sms")
    long = Message(text="x" * 400, subject="Long")
    async with client(sms, memory("email", "email"), limits=ChannelLimits(sms_max_segments=2)) as c:
        result = await c.send(long, to=ANN, via=["sms", "email"])
    assert sms.calls == 0
    failed = result.attempts[0]
    assert failed.error is not None
    assert failed.error.category is ErrorCategory.PAYLOAD_TOO_LARGE
    assert "3 segments" in failed.error.message
    assert result.channel is Channel.EMAIL


async def test_push_payload_over_limit_is_refused() -> None:
    """A push payload over 4 KB is refused before sending."""
    push = memory("push", "push")
    big = Message(push=anysend.PushContent(title="t", body="b", data={"blob": "x" * 5000}))
    ann = Recipient(push=(PushTarget(kind="fcm", token="tok"),))
    async with client(push) as c:
        result = await c.send(big, to=ann, via=["push"])
    assert push.calls == 0
    assert result.error is not None
    assert result.error.category is ErrorCategory.PAYLOAD_TOO_LARGE


# -- push fan-out -------------------------------------------------------------------------------


async def test_push_goes_to_every_device_through_the_provider_for_its_kind() -> None:
    """Each device gets its own push, routed by token kind, with one attempt per device."""

    class FCM(MemoryProvider):
        push_kinds: ClassVar[frozenset[str]] = frozenset({"fcm"})

    class APNs(MemoryProvider):
        push_kinds: ClassVar[frozenset[str]] = frozenset({"apns"})

    fcm = FCM(name="fcm", channels=frozenset({Channel.PUSH}))
    apns = APNs(name="apns", channels=frozenset({Channel.PUSH}))
    ann = Recipient(
        push=(
            PushTarget(kind="fcm", token="f1"),
            PushTarget(kind="apns", token="a1"),
            PushTarget(kind="fcm", token="f2"),
        )
    )
    message = Message(push=anysend.PushContent(title="Back", body="in stock", data={"sku": "1"}))
    async with client(fcm, apns) as c:
        result = await c.send(message, to=ann)
    assert [m.to for m in fcm.messages] == ["f1", "f2"]
    assert [m.to for m in apns.messages] == ["a1"]
    assert [(a.provider, a.address) for a in result.attempts] == [
        ("fcm", "f1"),
        ("apns", "a1"),
        ("fcm", "f2"),
    ]
    assert fcm.messages[0].push == anysend.PushContent(
        title="Back", body="in stock", data={"sku": "1"}
    )
    assert result.ok


# -- idempotency --------------------------------------------------------------------------------


async def test_idempotency_key_sends_once() -> None:
    """The same idempotency key twice sends once; the second call returns the first result."""
    sms = memory("sms", "sms")
    message = TEXT.model_copy(update={"idempotency_key": "order-42-shipped"})
    async with client(sms) as c:
        first = await c.send(message, to=ANN, via=["sms"])
        second = await c.send(message, to=ANN, via=["sms"])
    assert sms.calls == 1
    assert second.message_id == first.message_id
    assert second.idempotent_replay
    assert not first.idempotent_replay


async def test_idempotency_key_is_forgotten_after_ttl() -> None:
    """After the TTL the same key sends again."""
    sms = memory("sms", "sms", idempotency=False)
    clock = VirtualClock()
    message = TEXT.model_copy(update={"idempotency_key": "k"})
    async with client(sms, clock=clock, idempotency_ttl=60) as c:
        await c.send(message, to=ANN, via=["sms"])
        clock.advance(61)
        await c.send(message, to=ANN, via=["sms"])
    assert sms.calls == 2


async def test_failed_validation_does_not_burn_the_key() -> None:
    """A send that raised on bad input stores nothing under its key."""
    sms = memory("sms", "sms")
    message = TEXT.model_copy(update={"idempotency_key": "k"})
    async with client(sms) as c:
        with pytest.raises(anysend.InvalidRecipientError):
            await c.send(message, to=Recipient(phone="12"), via=["sms"])
        result = await c.send(message, to=ANN, via=["sms"])
    assert result.ok
    assert not result.idempotent_replay


# -- hooks and logging --------------------------------------------------------------------------


async def test_hooks_see_every_attempt_and_result() -> None:
    """on_attempt sees skips, failures and sends; on_result sees the result."""
    sink = HookSink()
    sms = memory("sms", "sms")
    sms.fail(ErrorCategory.UNAVAILABLE)
    async with client(sms, on_attempt=[sink.on_attempt], on_result=[sink.on_result]) as c:
        result = await c.send(TEXT, to=Recipient(phone="+48600700800"), via=["email", "sms"])
    assert sink.attempts == list(result.attempts)
    assert [a.outcome for a in sink.attempts] == [
        AttemptOutcome.SKIPPED,
        AttemptOutcome.FAILED,
        AttemptOutcome.SENT,
    ]
    assert sink.results == [result]


async def test_a_failing_hook_does_not_break_the_send(caplog: pytest.LogCaptureFixture) -> None:
    """A hook that raises is logged and the send still succeeds."""

    async def broken(attempt: anysend.Attempt) -> None:
        raise RuntimeError("hook bug")

    with caplog.at_level(logging.ERROR, logger="anysend"):
        async with client(memory("sms", "sms"), on_attempt=[broken]) as c:
            result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.ok
    assert "on_attempt hook raised" in caplog.text


# -- HTTP adapters ------------------------------------------------------------------------------


@respx.mock(assert_all_called=True)
async def test_http_adapter_request_goes_out_as_built(respx_mock: respx.MockRouter) -> None:
    """The client sends the adapter's request unchanged and parses the answer."""
    route = respx_mock.post("https://api.example.test/v1/sms").mock(
        return_value=httpx.Response(200, json={"id": "SM1"})
    )
    async with client(HttpSMS()) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.provider_message_id == "SM1"
    request = route.calls.last.request
    assert request.headers["authorization"] == "Bearer s3cr3t-token"
    assert request.read() == b'{"to":"+48600700800","text":"Your size is back"}'


@respx.mock(assert_all_called=True)
async def test_base_url_override_redirects_requests(respx_mock: respx.MockRouter) -> None:
    """base_urls points an adapter at another server, keeping the request path."""
    route = respx_mock.post("http://127.0.0.1:8025/sandbox/v1/sms").mock(
        return_value=httpx.Response(200, json={"id": "SM2"})
    )
    async with client(HttpSMS(), base_urls={"httpsms": "http://127.0.0.1:8025/sandbox"}) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.ok
    assert route.calls.last.request.headers["host"] == "127.0.0.1:8025"


@respx.mock
async def test_http_errors_are_mapped_and_retried(respx_mock: respx.MockRouter) -> None:
    """A 503 then a 429 with Retry-After then 200: retried, waiting as told."""
    respx_mock.post("https://api.example.test/v1/sms").mock(
        side_effect=[
            httpx.Response(503, text="<html>down</html>"),
            httpx.Response(429, headers={"Retry-After": "3"}, json={"error": "slow"}),
            httpx.Response(200, json={"id": "SM3"}),
        ]
    )
    clock = VirtualClock()
    async with client(HttpSMS(), clock=clock) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.ok
    assert [a.error.category for a in result.attempts if a.error] == [
        ErrorCategory.UNAVAILABLE,
        ErrorCategory.RATE_LIMITED,
    ]
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.status_code == 503
    assert clock.sleeps[1] == 3


@respx.mock
async def test_connect_error_is_retryable(respx_mock: respx.MockRouter) -> None:
    """A connection that never opened is retried: the provider never saw the request."""
    respx_mock.post("https://api.example.test/v1/sms").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json={"id": "SM4"})]
    )
    async with client(HttpSMS()) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.ok
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.category is ErrorCategory.UNAVAILABLE


@respx.mock
async def test_read_timeout_is_ambiguous(respx_mock: respx.MockRouter) -> None:
    """A read timeout after sending ends as unknown and nothing else is tried."""
    route = respx_mock.post("https://api.example.test/v1/sms").mock(
        side_effect=httpx.ReadTimeout("slow")
    )
    backup = memory("backup", "sms")
    async with client(HttpSMS(), backup) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert route.call_count == 1
    assert backup.calls == 0
    assert result.status is DeliveryStatus.UNKNOWN


@respx.mock
async def test_unreadable_success_response_is_ambiguous(respx_mock: respx.MockRouter) -> None:
    """A 200 the adapter cannot read may have been accepted: unknown, never re-sent."""
    respx_mock.post("https://api.example.test/v1/sms").mock(
        return_value=httpx.Response(200, text="not json")
    )
    backup = memory("backup", "sms")
    async with client(HttpSMS(), backup) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.status is DeliveryStatus.UNKNOWN
    assert backup.calls == 0


@respx.mock
async def test_secrets_never_appear_in_results_or_logs(
    respx_mock: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    """The adapter's token is in no repr, result or log line."""
    respx_mock.post("https://api.example.test/v1/sms").mock(
        return_value=httpx.Response(401, json={"error": "bad token"})
    )
    provider = HttpSMS()
    with caplog.at_level(logging.DEBUG, logger="anysend"):
        async with client(provider) as c:
            result = await c.send(TEXT, to=ANN, via=["sms"])
            text = repr(c) + repr(provider) + result.model_dump_json() + repr(result)
    assert result.error is not None
    assert result.error.category is ErrorCategory.AUTH
    assert "s3cr3t-token" not in text
    assert "s3cr3t-token" not in caplog.text


# -- lifecycle ----------------------------------------------------------------------------------


async def test_closed_client_refuses_to_send() -> None:
    """Sending on a closed client raises ConfigurationError."""
    c = client(memory("sms", "sms"))
    await c.aclose()
    with pytest.raises(anysend.ConfigurationError, match="closed"):
        await c.send(TEXT, to=ANN)


async def test_closing_the_client_closes_adapters() -> None:
    """Leaving the context closes adapters that hold connections."""

    class Closing(MemoryProvider):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    provider = Closing()
    async with client(provider):
        pass
    assert provider.closed


async def test_user_http_client_is_not_closed() -> None:
    """An http_client passed in stays open: its owner closes it."""
    async with httpx.AsyncClient() as http:
        async with client(HttpSMS(), http_client=http):
            pass
        assert not http.is_closed


async def test_addressless_provider_serves_a_recipient_without_address() -> None:
    """A provider that knows its destination (a team-chat webhook) needs no recipient address."""

    class TeamChat(MemoryProvider):
        capabilities: ClassVar[Capabilities] = Capabilities(addressless=True)

    chat = TeamChat(name="team", channels=frozenset({Channel.CHAT}))
    async with client(chat) as c:
        result = await c.send(TEXT, to=Recipient(id="ops"))
    assert result.channel is Channel.CHAT
    assert chat.messages[0].to == ""


# -- edges of routing and adapters --------------------------------------------------------------


class Misbehaving(MemoryProvider):
    """A direct adapter that raises whatever it is told to."""

    error: Exception = RuntimeError("adapter bug")

    async def asend(self, message: anysend.OutboundMessage) -> anysend.Receipt:
        self.calls += 1
        raise self.error


async def test_adapter_bug_is_recorded_as_failed_and_fails_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An adapter raising a foreign exception fails that attempt (logged) and the next one runs."""
    broken = Misbehaving(name="broken", channels=frozenset({Channel.SMS}))
    backup = memory("backup", "sms")
    with caplog.at_level(logging.ERROR, logger="anysend"):
        async with client(broken, backup) as c:
            result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.provider == "backup"
    error = result.attempts[0].error
    assert error is not None
    assert error.category is ErrorCategory.UNKNOWN
    assert "RuntimeError: adapter bug" in error.message
    assert "raised an unexpected error" in caplog.text


async def test_adapter_configuration_error_fails_over() -> None:
    """A ConfigurationError raised while sending counts as a configuration failure."""
    broken = Misbehaving(name="broken", channels=frozenset({Channel.SMS}))
    broken.error = anysend.ConfigurationError("sender id not registered")
    async with client(broken, memory("backup", "sms")) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    error = result.attempts[0].error
    assert error is not None
    assert error.category is ErrorCategory.CONFIGURATION
    assert result.provider == "backup"


async def test_adapter_refusing_a_feature_while_sending_is_a_skip() -> None:
    """UnsupportedFeatureError raised by the adapter itself skips to the next provider."""
    broken = Misbehaving(name="picky", channels=frozenset({Channel.SMS}))
    broken.error = anysend.UnsupportedFeatureError("no unicode", provider="picky", feature="ucs2")
    async with client(broken, memory("backup", "sms")) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.attempts[0].skip_reason is SkipReason.UNSUPPORTED
    assert result.provider == "backup"


async def test_push_device_without_a_provider_for_its_kind_is_skipped() -> None:
    """A device whose kind no provider serves is skipped with no_provider."""

    class FCMOnly(MemoryProvider):
        push_kinds: ClassVar[frozenset[str]] = frozenset({"fcm"})

    ann = Recipient(push=(PushTarget(kind="apns", token="a1"),))
    async with client(FCMOnly(channels=frozenset({Channel.PUSH}))) as c:
        result = await c.send(Message(text="hi"), to=ann)
    [attempt] = result.attempts
    assert attempt.skip_reason is SkipReason.NO_PROVIDER
    assert "apns" in (attempt.detail or "")


async def test_repeated_provider_names_are_numbered() -> None:
    """Two providers with one name are kept apart as name and name-2."""
    async with client(memory("sms", "sms"), memory("sms", "sms")) as c:
        assert list(c.providers) == ["sms", "sms-2"]


async def test_round_robin_for_listed_channels_only() -> None:
    """round_robin=["sms"] rotates SMS providers and leaves email in order."""
    sms = [memory("s1", "sms"), memory("s2", "sms")]
    email = [memory("e1", "email"), memory("e2", "email")]
    async with client(*sms, *email, round_robin=["sms"]) as c:
        sms_order = [(await c.send(TEXT, to=ANN, via=["sms"])).provider for _ in range(2)]
        email_order = [(await c.send(TEXT, to=ANN, via=["email"])).provider for _ in range(2)]
    assert sms_order == ["s1", "s2"]
    assert email_order == ["e1", "e1"]


async def test_empty_via_is_a_configuration_error() -> None:
    """via=[] names no channel and is refused."""
    async with client(memory("m", "sms")) as c:
        with pytest.raises(anysend.ConfigurationError, match="via is empty"):
            await c.send(TEXT, to=ANN, via=[])


async def test_template_without_templates_is_a_configuration_error() -> None:
    """A message naming a template on a client without templates is refused."""
    async with client(memory("m", "sms")) as c:
        with pytest.raises(anysend.ConfigurationError, match="no templates"):
            await c.send(Message(template="x"), to=ANN, via=["sms"])


async def test_webhook_and_chat_app_addresses() -> None:
    """The webhook channel uses webhook_url and chat apps use chat_ids."""
    outbox = memory("m", "webhook", "telegram")
    ann = Recipient(webhook_url="https://crm.example/hook", chat_ids={Channel.TELEGRAM: " 123456 "})
    async with client(outbox) as c:
        hook = await c.send(TEXT, to=ann, via=["webhook"])
        telegram = await c.send(TEXT, to=ann, via=["telegram"])
    assert hook.address == "https://crm.example/hook"
    assert telegram.address == "123456"


async def test_whatsapp_uses_phone_unless_given_its_own_number() -> None:
    """WhatsApp goes to the phone number, or to a WhatsApp-specific one when set."""
    outbox = memory("m", "whatsapp")
    async with client(outbox) as c:
        by_phone = await c.send(TEXT, to=ANN, via=["whatsapp"])
        own = await c.send(
            TEXT,
            to=ANN.model_copy(update={"chat_ids": {Channel.WHATSAPP: "+48 500 600 700"}}),
            via=["whatsapp"],
        )
        with pytest.raises(anysend.InvalidRecipientError) as info:
            await c.send(TEXT, to=Recipient(chat_ids={Channel.WHATSAPP: "123"}), via=["whatsapp"])
    assert by_phone.address == "+48600700800"
    assert own.address == "+48500600700"
    assert info.value.field == "chat_ids"


async def test_push_only_message_skips_email_and_sms() -> None:
    """A message with only push content has nothing to send by email or SMS."""
    message = Message(push=anysend.PushContent(title="Hi"))
    ann = ANN.model_copy(update={"push": (PushTarget(kind="fcm", token="t"),)})
    async with client(memory("m", "email", "sms", "push")) as c:
        result = await c.send(message, to=ann)
    assert [a.skip_reason for a in result.attempts[:2]] == [SkipReason.NO_CONTENT] * 2
    assert result.channel is Channel.PUSH


async def test_a_failing_result_hook_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """An on_result hook that raises is logged and the result is still returned."""

    async def broken(result: anysend.SendResult) -> None:
        raise RuntimeError("hook bug")

    with caplog.at_level(logging.ERROR, logger="anysend"):
        async with client(memory("sms", "sms"), on_result=[broken]) as c:
            result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.ok
    assert "on_result hook raised" in caplog.text


async def test_recipient_as_a_dict() -> None:
    """to= also takes the recipient's fields as a dict."""
    async with client(memory("m", "sms")) as c:
        result = await c.send(TEXT, to={"phone": "+48600700800"})
    assert result.address == "+48600700800"


async def test_html_only_email_gets_a_text_part() -> None:
    """An email given only HTML also carries a plain-text part derived from it."""
    outbox = memory("m", "email")
    html = '<h1>Back</h1><p>Your <b>Sneakers</b> are <a href="https://shop.example/s">here</a></p>'
    async with client(outbox) as c:
        await c.send(Message(html=html, subject="Back"), to=ANN, via=["email"])
    text = outbox.messages[0].text or ""
    assert "Sneakers" in text
    assert "https://shop.example/s" in text
    assert "<b>" not in text


async def test_plain_text_is_never_rendered_as_a_template() -> None:
    """Message.text goes out exactly as given, braces and all."""
    outbox = memory("m", "sms")
    async with client(outbox) as c:
        await c.send(Message(text="Use code {{ code }} {% raw %}"), to=ANN, via=["sms"])
    assert outbox.messages[0].text == "Use code {{ code }} {% raw %}"


async def test_multi_request_send_flow() -> None:
    """An adapter's send_flow may fetch a token first; the client drives both requests."""

    class TokenThenSend(HttpSMS):
        def send_flow(self, message: anysend.OutboundMessage) -> SendFlow:
            token = yield httpx.Request("POST", "https://auth.example.test/token")
            bearer = token.json()["access_token"]
            response = yield httpx.Request(
                "POST",
                "https://api.example.test/v1/sms",
                json={"to": message.to},
                headers={"Authorization": f"Bearer {bearer}"},
            )
            return anysend.Receipt(provider_message_id=response.json()["id"])

    with respx.mock(assert_all_called=True) as mock:
        mock.post("https://auth.example.test/token").mock(
            return_value=httpx.Response(200, json={"access_token": "tok-1"})
        )
        send = mock.post("https://api.example.test/v1/sms").mock(
            return_value=httpx.Response(200, json={"id": "SM9"})
        )
        async with client(TokenThenSend()) as c:
            result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.provider_message_id == "SM9"
    assert send.calls.last.request.headers["authorization"] == "Bearer tok-1"


async def test_rate_limit_past_the_deadline_fails_over() -> None:
    """A Retry-After that would end past the deadline fails over instead of waiting."""
    a = memory("a", "sms")
    b = memory("b", "sms")
    a.fail(ErrorCategory.RATE_LIMITED, retry_after=30)
    clock = VirtualClock()
    async with client(a, b, clock=clock, retry=RetryPolicy(deadline=20)) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.provider == "b"
    assert clock.sleeps == []


async def test_one_device_ambiguous_does_not_spoil_the_others() -> None:
    """Push fan-out: a device lost to an ambiguous timeout does not undo the accepted ones."""
    push = memory("push", "push", idempotency=False)
    push.fail(ErrorCategory.AMBIGUOUS_TIMEOUT)  # the first device only
    ann = Recipient(push=(PushTarget(kind="fcm", token="f1"), PushTarget(kind="fcm", token="f2")))
    async with client(push) as c:
        result = await c.send(Message(text="hi"), to=ann)
    assert result.ok
    assert result.address == "f2"
    assert [a.outcome for a in result.attempts] == [AttemptOutcome.FAILED, AttemptOutcome.SENT]


async def test_provider_attachment_limit_is_a_recorded_failure() -> None:
    """An attachment over one provider's limit is recorded and the next provider is tried."""

    class Small(MemoryProvider):
        capabilities: ClassVar[Capabilities] = Capabilities(
            attachments=True, max_attachment_bytes=3
        )

    small = Small(name="small", channels=frozenset({Channel.EMAIL}))
    big = memory("big", "email")
    message = TEXT.model_copy(
        update={"attachments": (Attachment(filename="a.pdf", content=b"%PDF-1.7"),)}
    )
    async with client(small, big) as c:
        result = await c.send(message, to=ANN, via=["email"])
    first = result.attempts[0]
    assert first.provider == "small"
    assert first.error is not None
    assert first.error.category is ErrorCategory.PAYLOAD_TOO_LARGE
    assert result.provider == "big"


async def test_adapter_content_error_fails_fast() -> None:
    """A ContentError from an adapter's send counts as content_rejected: nothing else tried."""
    picky = Misbehaving(name="picky", channels=frozenset({Channel.EMAIL}))
    picky.error = anysend.ContentError("marketing email needs unsubscribe_url")
    other_email = memory("other", "email")
    async with client(picky, other_email, memory("sms", "sms")) as c:
        result = await c.send(TEXT, to=ANN, via=["email", "sms"])
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.category is ErrorCategory.CONTENT_REJECTED
    assert other_email.calls == 0
    assert result.channel is None
    assert [a.channel for a in result.attempts] == [Channel.EMAIL]


async def test_default_chain_leaves_out_channels_without_providers() -> None:
    """Without via, channels no provider serves are not part of the chain at all."""
    async with client(memory("sms", "sms")) as c:
        result = await c.send(TEXT, to=ANN)
    assert [a.channel for a in result.attempts] == [Channel.SMS]


async def test_subject_reaches_team_chat_and_webhooks_but_not_sms() -> None:
    """A plain message's subject is a title on chat and webhook, and absent from SMS."""
    outbox = memory("m", "chat", "webhook", "sms")
    ann = ANN.model_copy(
        update={"chat_ids": {Channel.CHAT: "ops"}, "webhook_url": "https://crm.example/h"}
    )
    async with client(outbox) as c:
        for channel in ("chat", "webhook", "sms"):
            await c.send(TEXT, to=ann, via=[channel])
    assert [m.subject for m in outbox.messages] == ["Back in stock", "Back in stock", None]


async def test_secret_in_a_url_is_redacted_from_httpx_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """httpx's request log line does not show a secret that sits in the request URL."""

    class SecretPath(HttpSMS):
        def build_request(self, message: anysend.OutboundMessage) -> httpx.Request:
            token = self.settings.token.get_secret_value()
            return httpx.Request("POST", f"https://api.example.test/bot{token}/send")

        def parse_response(
            self, response: httpx.Response, message: anysend.OutboundMessage
        ) -> anysend.Receipt:
            return anysend.Receipt()

    with respx.mock() as mock, caplog.at_level(logging.INFO, logger="httpx"):
        mock.post("https://api.example.test/bots3cr3t-token/send").mock(
            return_value=httpx.Response(200)
        )
        async with client(SecretPath()) as c:
            assert (await c.send(TEXT, to=ANN, via=["sms"])).ok
    assert "HTTP Request" in caplog.text
    assert "s3cr3t-token" not in caplog.text
    assert "bot***/send" in caplog.text


async def test_providers_from_a_url_string() -> None:
    """A client takes its providers as URLs, in failover order."""
    async with anysend.AsyncClient(
        "memory://?name=first&channels=sms || memory://?name=second"
    ) as c:
        assert list(c.providers) == ["first", "second"]
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.provider == "first"


async def test_client_from_env() -> None:
    """from_env reads ANYSEND_PROVIDERS and per-provider settings."""
    env = {"ANYSEND_PROVIDERS": "memory://", "ANYSEND_MEMORY_NAME": "from-env"}
    async with anysend.AsyncClient.from_env(env, default_region="PL") as c:
        result = await c.send(TEXT, to=Recipient(phone="600 700 800"), via=["sms"])
    assert result.provider == "from-env"
    with pytest.raises(anysend.ConfigurationError, match="ANYSEND_PROVIDERS"):
        anysend.AsyncClient.from_env({})


async def test_content_rule_of_one_provider_tries_the_next_provider() -> None:
    """A ContentError from check_supported (a rule of that provider) fails over, never escapes."""

    class Strict(MemoryProvider):
        def check_supported(self, message: anysend.OutboundMessage) -> None:
            raise anysend.ContentError("this provider refuses custom headers named X-Foo")

    strict = Strict(name="strict", channels=frozenset({Channel.EMAIL}))
    lenient = memory("lenient", "email")
    async with client(strict, lenient) as c:
        result = await c.send(TEXT, to=ANN, via=["email"])
    assert result.attempts[0].error is not None
    assert result.attempts[0].error.category is ErrorCategory.CONTENT_REJECTED
    assert result.provider == "lenient"


async def test_a_provider_side_schedule_counts_as_sent() -> None:
    """A receipt with status scheduled (the provider holds it for later) is a success."""

    class Scheduling(MemoryProvider):
        async def asend(self, message: anysend.OutboundMessage) -> anysend.Receipt:
            await super().asend(message)
            return anysend.Receipt(provider_message_id="s1", status=DeliveryStatus.SCHEDULED)

    async with client(Scheduling(channels=frozenset({Channel.SMS}))) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    assert result.status is DeliveryStatus.SCHEDULED
    assert result.ok
    assert result.raise_for_status() is result


# -- callbacks through the client ---------------------------------------------------------------


async def test_client_parses_a_callback_for_a_named_provider() -> None:
    """client.parse_webhook verifies and parses through the named adapter."""
    from tests.acme_adapter import AcmeSMS, sign

    acme = AcmeSMS(api_key="k", sender="Shop", webhook_secret="whsec-test")
    acme.now = lambda: 1_700_000_000.0
    body = b'{"id": "m1", "status": "delivered", "timestamp": 1700000000}'
    request = anysend.WebhookRequest(
        url="https://app.example/hooks/acme",
        headers={"X-Acme-Signature": sign(body, "whsec-test", 1_700_000_000)},
        body=body,
    )
    async with client(acme) as c:
        [event] = await c.parse_webhook("acme", request)
        forged = request.model_copy(update={"body": body.replace(b"delivered", b"failed")})
        with pytest.raises(anysend.WebhookVerificationError):
            await c.parse_webhook("acme", forged)
        with pytest.raises(anysend.ConfigurationError, match="no provider named 'nope'"):
            await c.parse_webhook("nope", request)
    assert isinstance(event, anysend.DeliveryEvent)
    assert event.status is DeliveryStatus.DELIVERED


async def test_client_fetches_what_a_webhook_flow_asks_for_once() -> None:
    """An adapter's webhook_flow gets its fetch answered through the client's HTTP pool."""

    class NeedsKey(MemoryProvider):
        key: bytes | None = None

        def webhook_flow(
            self, request: anysend.WebhookRequest, *, verify: bool = True
        ) -> WebhookFlow:
            if self.key is None:
                response = yield httpx.Request("GET", "https://keys.example.test/k.pem")
                self.key = response.content
            return [
                anysend.DeliveryEvent(
                    provider=self.name,
                    status=DeliveryStatus.DELIVERED,
                    raw_status=self.key.decode(),
                )
            ]

    with respx.mock() as mock:
        route = mock.get("https://keys.example.test/k.pem").mock(
            return_value=httpx.Response(200, content=b"KEY")
        )
        async with client(NeedsKey()) as c:
            request = anysend.WebhookRequest(url="https://app.example/h")
            first = await c.parse_webhook("memory", request)
            second = await c.parse_webhook("memory", request)
    assert route.call_count == 1
    assert first == second
    assert first[0].raw_status == "KEY"  # type: ignore[union-attr]


async def test_a_failed_fetch_is_a_verification_error() -> None:
    """When the document a callback needs cannot be fetched, the callback is not trusted."""

    class NeedsKey(MemoryProvider):
        def webhook_flow(
            self, request: anysend.WebhookRequest, *, verify: bool = True
        ) -> WebhookFlow:
            yield httpx.Request("GET", "https://keys.example.test/k.pem")
            return []

    with respx.mock() as mock:
        mock.get("https://keys.example.test/k.pem").mock(side_effect=httpx.ConnectError("down"))
        async with client(NeedsKey()) as c:
            with pytest.raises(anysend.WebhookVerificationError, match=r"keys\.example\.test"):
                await c.parse_webhook("memory", anysend.WebhookRequest(url="https://app.example"))


# -- dead addresses and HTTP/2 ------------------------------------------------------------------


async def test_dead_address_is_flagged_and_reported_to_hooks() -> None:
    """A token the service reports gone flags the attempt and reaches on_invalid_address."""
    push = memory("push", "push", idempotency=False)
    push.fail(ErrorCategory.INVALID_RECIPIENT, contact_invalid=True)
    dead: list[anysend.Attempt] = []

    async def forget(attempt: anysend.Attempt) -> None:
        dead.append(attempt)

    ann = Recipient(push=(PushTarget(kind="fcm", token="gone"), PushTarget(kind="fcm", token="ok")))
    async with client(push, on_invalid_address=[forget]) as c:
        result = await c.send(Message(text="hi"), to=ann)
    assert result.ok
    first, second = result.attempts
    assert first.contact_invalid
    assert not second.contact_invalid
    assert [a.address for a in dead] == ["gone"]


async def test_http2_provider_gets_an_http2_pool() -> None:
    """An adapter that declares http2 is sent through an HTTP/2 pool of its own."""

    class H2SMS(HttpSMS):
        http2: ClassVar[bool] = True

    with respx.mock() as mock:
        mock.post("https://api.example.test/v1/sms").mock(
            return_value=httpx.Response(200, json={"id": "h2"})
        )
        async with client(H2SMS(), HttpSMS()) as c:
            result = await c.send(TEXT, to=ANN, via=["sms"])
            assert c._http2 is not None
            assert c._http2 is not c._http
    assert result.ok


async def test_via_may_name_one_channel_alone() -> None:
    """via="sms" is a chain of one channel."""
    async with client(memory("m", "sms")) as c:
        result = await c.send(TEXT, to=ANN, via="sms")
    assert result.channel is Channel.SMS


async def test_unknown_outcome_does_not_claim_nothing_was_sent() -> None:
    """raise_for_status after an ambiguous timeout says it may have been sent."""
    a = memory("a", "sms", idempotency=False)
    a.fail(ErrorCategory.AMBIGUOUS_TIMEOUT)
    async with client(a) as c:
        result = await c.send(TEXT, to=ANN, via=["sms"])
    with pytest.raises(anysend.DeliveryError, match="may or may not have been sent"):
        result.raise_for_status()


async def test_parse_webhook_takes_the_adapter_itself() -> None:
    """client.parse_webhook accepts the provider object as well as its name."""
    from tests.acme_adapter import AcmeSMS, sign

    acme = AcmeSMS(api_key="k", sender="Shop", webhook_secret="whsec-test")
    acme.now = lambda: 1_700_000_000.0
    body = b'{"id": "m1", "status": "sent", "timestamp": 1700000000}'
    request = anysend.WebhookRequest(
        url="https://app.example/hooks/acme",
        headers={"X-Acme-Signature": sign(body, "whsec-test", 1_700_000_000)},
        body=body,
    )
    async with client(acme) as c:
        [event] = await c.parse_webhook(acme, request)
    assert isinstance(event, anysend.DeliveryEvent)
    assert event.status is DeliveryStatus.SENT


# -- the models a send makes without validating them again -------------------------------------


async def test_a_send_makes_the_models_validation_would_make() -> None:
    """The outbound message, attempt and result are built from validated parts unvalidated."""
    sms = memory("sms", "sms")
    message = Message(
        text="Your code is 1234",
        headers={"X-Trace": "t-1"},
        metadata={"order": "42"},
        tags=("otp",),
        category="security",
    )
    async with client(sms) as c:
        result = await c.send(message, ANN, via="sms")

    [outbound] = sms.messages
    assert outbound == anysend.OutboundMessage.model_validate(outbound.model_dump())
    assert outbound.model_fields_set == set(anysend.OutboundMessage.model_fields) - {
        "provider_options"
    }
    assert outbound.headers == message.headers
    assert outbound.headers is not message.headers  # a dict of its own, as validation makes
    assert outbound.metadata is not message.metadata
    [attempt] = result.attempts
    assert attempt == anysend.Attempt.model_validate(attempt.model_dump())
    assert attempt.model_fields_set == {
        "channel",
        "provider",
        "outcome",
        "address",
        "number",
        "receipt",
        "started_at",
        "duration",
    }
    assert isinstance(attempt.duration, float)
    assert result == anysend.SendResult.model_validate(result.model_dump())
    assert result.model_dump(exclude_unset=True).keys() == {
        "message_id",
        "status",
        "channel",
        "provider",
        "address",
        "receipt",
        "attempts",
    }
    assert hash(result) == hash(anysend.SendResult.model_validate(result.model_dump()))
    copied = result.model_copy(update={"idempotent_replay": True})
    assert copied.idempotent_replay
    assert not result.idempotent_replay
    assert "idempotent_replay" not in result.model_fields_set


async def test_trusted_models_are_validated_when_they_cannot_be_trusted() -> None:
    from pydantic import BaseModel, field_validator

    from anysend._results import trusted

    class Checked(BaseModel):
        name: str

        @field_validator("name")
        @classmethod
        def _upper(cls, value: str) -> str:
            return value.upper()

    class Plain(BaseModel):
        name: str
        size: int = 0

    # A validator runs: the model is validated, from the fields given.
    assert trusted(Checked, {"name": "ann"}, frozenset({"name"})).name == "ANN"
    # A layout that does not match the model (a field added since): validated too.
    made = trusted(Plain, {"name": "ann"}, frozenset({"name"}))
    assert made == Plain(name="ann")
    assert made.model_fields_set == {"name"}
    fast = trusted(Plain, {"name": "bob", "size": 2}, frozenset({"name"}))
    assert fast == Plain(name="bob", size=2)
    assert fast.model_fields_set == {"name"}
    assert repr(fast) == "Plain(name='bob', size=2)"
