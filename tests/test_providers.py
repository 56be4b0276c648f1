"""The provider base class, the registry, and the Console adapter."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import ClassVar

import pytest
from pydantic import SecretStr

import anysend
from anysend import (
    Attachment,
    Channel,
    ChatTemplate,
    DeliveryEvent,
    InboundMessage,
    OutboundMessage,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    WebhookResponse,
    available,
    compare_signatures,
    load,
)
from anysend.providers.console import Console
from anysend.testing import MemoryProvider


class SecretSettings(ProviderSettings):
    token: SecretStr
    region: str = "eu"


class Plain(Provider):
    name: ClassVar[str] = "plain"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.EMAIL})
    Settings: ClassVar[type[ProviderSettings]] = SecretSettings

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        body = request.json_body()
        return [DeliveryEvent(provider=self.name, status=body["status"], raw_status=body["status"])]

    def verify_webhook(self, request: WebhookRequest) -> None:
        if not compare_signatures("good", request.header("x-sig")):
            raise WebhookVerificationError("bad signature")


def outbound(**kwargs: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "id": "m1",
        "channel": Channel.EMAIL,
        "to": "a@example.com",
        "text": "hi",
    }
    fields.update(kwargs)
    return OutboundMessage.model_validate(fields)


def test_settings_are_validated_into_the_model() -> None:
    """Keyword settings are validated; missing or unknown ones are ConfigurationErrors."""
    provider = Plain(token="t0k3n")
    assert isinstance(provider.settings, SecretSettings)
    with pytest.raises(anysend.ConfigurationError, match="token"):
        Plain()
    with pytest.raises(anysend.ConfigurationError):
        Plain(token="x", nope=1)
    with pytest.raises(anysend.ConfigurationError, match="not both"):
        Plain(SecretSettings(token=SecretStr("x")), region="us")
    with pytest.raises(anysend.ConfigurationError, match="expects settings"):
        Plain(ProviderSettings())


def test_secrets_are_masked_in_repr() -> None:
    """A provider's repr never shows a secret; secrets() lists them for leak tests."""
    provider = Plain(token="t0k3n")
    assert "t0k3n" not in repr(provider)
    assert "region='eu'" in repr(provider)
    assert provider.secrets() == ["t0k3n"]


def test_unsupported_features_are_refused_not_dropped() -> None:
    """A message needing a capability the adapter lacks raises UnsupportedFeatureError."""
    provider = Plain(token="x")
    cases = {
        "attachments": outbound(attachments=(Attachment(filename="a.txt", content=b"a"),)),
        "inline_images": outbound(
            attachments=(Attachment(filename="l.png", content=b"p", inline=True),)
        ),
        "cc_bcc": outbound(cc=("b@example.com",)),
        "reply_to": outbound(reply_to=("r@example.com",)),
        "headers": outbound(headers={"X-A": "1"}),
        "html": outbound(html="<p>hi</p>"),
        "chat_templates": outbound(chat_template=ChatTemplate(name="t")),
    }
    for feature, message in cases.items():
        with pytest.raises(anysend.UnsupportedFeatureError) as info:
            provider.check_supported(message)
        assert info.value.feature == feature
        assert info.value.provider == "plain"
    provider.check_supported(outbound())


def test_attachment_size_limit() -> None:
    """Attachments over the adapter's limit are refused as payload_too_large."""

    class Small(MemoryProvider):
        capabilities: ClassVar[Capabilities] = Capabilities(
            attachments=True, max_attachment_bytes=3
        )

    with pytest.raises(anysend.ProviderError) as info:
        Small().check_supported(outbound(attachments=(Attachment(filename="a", content=b"abcd"),)))
    assert info.value.category is anysend.ErrorCategory.PAYLOAD_TOO_LARGE


def test_parse_webhook_verifies_first() -> None:
    """parse_webhook refuses an unverified callback unless verification is turned off."""
    provider = Plain(token="x")
    request = WebhookRequest(url="https://x", body=b'{"status": "delivered"}')
    with pytest.raises(WebhookVerificationError):
        provider.parse_webhook(request)
    [event] = provider.parse_webhook(request, verify=False)
    assert isinstance(event, DeliveryEvent)
    signed = request.model_copy(update={"headers": {"x-sig": "good"}})
    assert provider.parse_webhook(signed)[0] == event


def test_parse_webhook_turns_parser_bugs_into_our_errors() -> None:
    """A parser's KeyError or ValueError comes out as WebhookParseError."""
    provider = Plain(token="x")
    for body in (b"{}", b'{"status": "no-such-status"}', b"[", b"null"):
        with pytest.raises(WebhookParseError):
            provider.parse_webhook(WebhookRequest(url="https://x", body=body), verify=False)


def test_adapters_without_callbacks_refuse_them() -> None:
    """An adapter that receives no callbacks says so with WebhookVerificationError."""
    with pytest.raises(WebhookVerificationError, match="does not receive callbacks"):
        Console().parse_webhook(WebhookRequest(url="https://x"))
    with pytest.raises(WebhookVerificationError):
        Console().parse_webhook(WebhookRequest(url="https://x"), verify=False)


def test_compare_signatures() -> None:
    """Signatures compare in constant time; a missing one never matches."""
    assert compare_signatures("abc", "abc")
    assert compare_signatures(b"abc", "abc")
    assert not compare_signatures("abc", "abd")
    assert not compare_signatures("abc", None)


def test_kinds_of_adapter() -> None:
    """HTTP adapters serve both clients; direct ones what they implement."""
    assert not Plain.is_http()
    assert not Plain.supports_sync()
    assert MemoryProvider.supports_sync()
    assert MemoryProvider.supports_async()


def test_registry_lists_and_loads_builtins() -> None:
    """Built-in adapters are registered entry points, loadable by name."""
    assert available()["console"] == "anysend.providers.console:Console"
    assert load("console") is Console
    assert load("memory") is MemoryProvider
    with pytest.raises(anysend.ConfigurationError, match="no provider named 'nope'"):
        load("nope")


def test_console_prints_each_channel() -> None:
    """Console writes the channel, address and content of each message."""
    stream = io.StringIO()
    console = Console(stream=stream)
    receipt = console.send(
        outbound(subject="Hello", attachments=(Attachment(filename="a.txt", content=b"ab"),))
    )
    console.send(
        outbound(
            channel=Channel.PUSH, to="tok", text=None, push=anysend.PushContent(title="T", body="B")
        )
    )
    console.send(
        outbound(
            channel=Channel.WHATSAPP,
            to="+48600700800",
            text=None,
            chat_template=ChatTemplate(name="order"),
        )
    )
    console.send(outbound(text=None, html="<p>x</p>"))
    out = stream.getvalue()
    assert "email to a@example.com" in out
    assert "Subject: Hello" in out
    assert "[attachment a.txt, 2 bytes]" in out
    assert "Title: T\nB" in out
    assert "Template: order" in out
    assert "<p>x</p>" in out
    assert receipt.provider_message_id is not None
    assert receipt.provider_message_id.startswith("console-")


def test_console_can_serve_some_channels_only() -> None:
    """Console(channels=...) claims only the channels given."""
    assert Console(channels=frozenset({Channel.SMS})).channels == {Channel.SMS}


@pytest.mark.anyio
async def test_console_asend(capsys: pytest.CaptureFixture[str]) -> None:
    """Console works from AsyncClient and prints to standard output by default."""
    async with anysend.AsyncClient([Console()]) as client:
        await client.send(anysend.Message(text="hi"), to=anysend.Recipient(phone="+48600700800"))
    assert "sms to +48600700800" in capsys.readouterr().out


def test_missing_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a push adapter without its extra says which extra to install."""
    import sys

    for module in [m for m in sys.modules if m.split(".")[0] == "cryptography"] + ["cryptography"]:
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.delitem(sys.modules, "anysend.providers.fcm", raising=False)
    with pytest.raises(anysend.ConfigurationError, match=r'pip install "anysend\[push\]"'):
        load("fcm")


def test_default_webhook_answers() -> None:
    """By default a callback is answered 200 with nothing, there is no handshake, POST only."""
    provider = MemoryProvider()
    request = WebhookRequest(url="https://app.example.com/hooks/memory", body=b"x")
    answer = provider.webhook_response(request, [])
    assert answer == WebhookResponse()
    assert (answer.status, answer.body) == (200, b"")
    assert answer.content_type == "text/plain; charset=utf-8"
    get = WebhookRequest(method="GET", url="https://app.example.com/hooks/memory?a=1")
    assert provider.handshake(get) is None
    assert Provider.webhook_methods == frozenset({"POST"})


def test_webhook_response_is_a_frozen_checked_model() -> None:
    """WebhookResponse refuses impossible statuses and unknown fields, and cannot change."""
    answer = WebhookResponse(status=204)
    with pytest.raises(ValueError, match="frozen"):
        answer.status = 500  # type: ignore[misc]
    for bad, problem in (
        ({"status": 99}, "greater than"),
        ({"status": 600}, "less than"),
        ({"headers": {}}, "Extra inputs"),
    ):
        with pytest.raises(ValueError, match=problem):
            WebhookResponse(**bad)
