"""Tests for the contract test kit: it passes good adapters and catches broken ones."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from typing import Any

import httpx
import pytest

from anysend._events import DeliveryEvent, InboundMessage, WebhookRequest
from anysend._exceptions import ErrorCategory, ProviderError, WebhookVerificationError
from anysend._models import Channel, OutboundMessage
from anysend._results import Receipt
from anysend._status import DeliveryStatus
from anysend.providers._http import error_from_response
from anysend.testing import MemoryProvider
from anysend.testing.contract import ErrorCase, ProviderContract
from tests.acme_adapter import ERROR_CODES, AcmeSMS, sign

NOW = 1_700_000_000
URL = "https://app.example.com/hooks/acme?tenant=1"
API_KEY = "sk_test_acme_0123456789"
WEBHOOK_SECRET = "whsec_acme_9876543210"
MESSAGE_ID = "msg-123"
FAILED = (AssertionError, pytest.fail.Exception)


def make_acme(cls: type[AcmeSMS] = AcmeSMS) -> AcmeSMS:
    """An Acme adapter with test settings and its replay-window clock pinned to NOW."""
    acme = cls(api_key=API_KEY, sender="AcmeShop", webhook_secret=WEBHOOK_SECRET)
    acme.now = lambda: float(NOW)
    return acme


def callback(
    payload: dict[str, Any], *, secret: str = WEBHOOK_SECRET, at: int = NOW
) -> WebhookRequest:
    """An Acme callback carrying ``payload``, signed with ``secret`` at time ``at``."""
    body = json.dumps(payload).encode()
    headers = {"X-Acme-Signature": sign(body, secret, at), "Content-Type": "application/json"}
    return WebhookRequest(url=URL, headers=headers, body=body)


def status_payload(status: str = "delivered") -> dict[str, Any]:
    """An Acme status report for MESSAGE_ID."""
    return {"id": MESSAGE_ID, "status": status, "timestamp": NOW - 5, "error_code": None}


class TestAcmeContract(ProviderContract):
    """The contract kit run against the example Acme SMS adapter."""

    expected_provider_message_id = MESSAGE_ID
    signature_headers: tuple[str, ...] = ("X-Acme-Signature",)
    unknown_raw_status = "teleported"

    def make_provider(self) -> AcmeSMS:
        """Acme with test settings."""
        return make_acme()

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """Acme accepts the message."""
        return httpx.Response(201, json={"id": MESSAGE_ID}, request=request)

    def error_cases(self) -> list[ErrorCase]:
        """Acme's error codes and plain HTTP failures."""

        def acme_error(code: str) -> dict[str, Any]:
            return {"error": {"code": code, "message": f"{code} happened"}}

        return [
            ErrorCase(
                name="invalid number",
                status=400,
                body=acme_error("invalid_number"),
                category=ErrorCategory.INVALID_RECIPIENT,
                retryable=False,
            ),
            ErrorCase(
                name="opted out",
                status=403,
                body=acme_error("opted_out"),
                category=ErrorCategory.OPTED_OUT,
                retryable=False,
            ),
            ErrorCase(
                name="throttled",
                status=429,
                body=acme_error("throttled"),
                headers={"Retry-After": "3"},
                category=ErrorCategory.RATE_LIMITED,
                retryable=True,
                retry_after=3.0,
            ),
            ErrorCase(
                name="insufficient funds",
                status=402,
                body=acme_error("insufficient_funds"),
                category=ErrorCategory.QUOTA,
                retryable=False,
            ),
            ErrorCase(
                name="bad key",
                status=401,
                body=acme_error("unauthorized"),
                category=ErrorCategory.AUTH,
                retryable=False,
            ),
            ErrorCase(
                name="maintenance",
                status=503,
                body=b"",
                category=ErrorCategory.UNAVAILABLE,
                retryable=True,
            ),
        ]

    def signed_webhook(self) -> WebhookRequest:
        """A genuine delivery report."""
        return callback(status_payload())

    def stale_webhook(self) -> WebhookRequest:
        """A genuine delivery report signed an hour ago."""
        return callback(status_payload(), at=NOW - 3600)

    def wrong_secret_webhook(self) -> WebhookRequest:
        """A delivery report signed with another secret."""
        return callback(status_payload(), secret="whsec_someone_else")

    def unknown_status_webhook(self) -> WebhookRequest:
        """A genuine report with a status Acme's adapter does not know."""
        return callback(status_payload("teleported"))

    def inbound_webhook(self) -> WebhookRequest:
        """A genuine inbound SMS."""
        return callback(
            {"type": "inbound", "id": "in-1", "from": "+48600700800", "to": "+4822", "text": "Hi"}
        )

    # -- Acme-specific checks beside the contract ----------------------------------------------

    def test_request_shape(self) -> None:
        """Acme's request is a JSON POST with the bearer token and the idempotency key."""
        message = self.sample_message()
        request = self.make_provider().build_request(message)
        assert request.method == "POST"
        assert str(request.url) == "https://api.acme-sms.test/v1/messages"
        assert request.headers["Authorization"] == f"Bearer {API_KEY}"
        assert request.headers["Idempotency-Key"] == message.idempotency_key
        assert json.loads(request.content) == {
            "from": "AcmeShop",
            "to": "+48600700800",
            "text": message.text,
            "reference": message.id,
        }

    def test_status_mapping(self) -> None:
        """Acme's statuses map onto anysend's, with the raw value and reason kept."""
        acme = self.make_provider()
        payload = status_payload("failed") | {"error_code": "invalid_number"}
        [event] = acme.parse_webhook(callback(payload))
        assert isinstance(event, DeliveryEvent)
        assert event.status is DeliveryStatus.UNDELIVERABLE
        assert event.raw_status == "failed"
        assert event.reason is not None
        assert event.reason.value == "invalid_recipient"

    def test_network_is_blocked(self) -> None:
        """The kit's guard fails a contract test that connects to a remote host."""
        with pytest.raises(pytest.fail.Exception, match="must not use the network"):
            socket.create_connection(("192.0.2.1", 443), timeout=0.1)
        with socket.socket() as sock, pytest.raises(pytest.fail.Exception, match="network"):
            sock.connect(("192.0.2.1", 443))
        with pytest.raises(pytest.fail.Exception, match="must not use the network"):
            httpx.get("https://192.0.2.1/", timeout=0.1)

    def test_local_connections_allowed(self) -> None:
        """The guard lets a test reach a server on 127.0.0.1."""
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                pass


class TestMemoryContract(ProviderContract):
    """The contract kit run against MemoryProvider, a direct adapter without callbacks."""

    def make_provider(self) -> MemoryProvider:
        """A MemoryProvider serving every channel."""
        return MemoryProvider()


# -- the kit itself -------------------------------------------------------------------------------


def test_error_case_builds_json_text_and_bytes_answers() -> None:
    """ErrorCase.response sends dicts as JSON, str as text and bytes as they are."""
    request = httpx.Request("POST", "https://api.example.test/send")
    as_json = ErrorCase(
        name="j", status=400, body={"a": 1}, category=ErrorCategory.UNKNOWN, retryable=False
    ).response(request)
    as_text = ErrorCase(
        name="t",
        status=500,
        body="oops",
        headers={"X-A": "1"},
        category=ErrorCategory.UNAVAILABLE,
        retryable=True,
    ).response(request)
    as_bytes = ErrorCase(
        name="b", status=502, body=b"\x00", category=ErrorCategory.UNAVAILABLE, retryable=True
    ).response(request)
    assert (as_json.status_code, as_json.json()) == (400, {"a": 1})
    assert (as_text.text, as_text.headers["x-a"]) == ("oops", "1")
    assert as_bytes.content == b"\x00"
    assert as_json.request is request


@pytest.mark.parametrize(
    ("channels", "address"),
    [
        ({Channel.SMS}, "+48600700800"),
        ({Channel.WHATSAPP, Channel.TELEGRAM}, "+48600700800"),
        ({Channel.EMAIL, Channel.SMS}, "ann@example.com"),
        ({Channel.TELEGRAM}, "123456"),
    ],
)
def test_sample_message_fits_the_first_channel(channels: set[Channel], address: str) -> None:
    """The default sample message goes to a plausible address on the first channel served."""

    class Kit(ProviderContract):
        def make_provider(self) -> MemoryProvider:
            return MemoryProvider(channels=channels)

    message = Kit().sample_message()
    assert message.channel is next(c for c in Channel if c in channels)
    assert message.to == address
    assert message.text


def test_kit_without_make_provider_says_what_to_override() -> None:
    """A contract class that forgets make_provider fails with a message that says so."""
    with pytest.raises(pytest.fail.Exception, match=r"must override make_provider\(\)"):
        ProviderContract().test_declares_name_channels_capabilities_settings()


def test_unsigned_default_needs_signature_headers() -> None:
    """Without signature_headers the default unsigned_webhook asks to be configured."""

    class Kit(TestAcmeContract):
        signature_headers = ()

    with pytest.raises(pytest.fail.Exception, match="signature_headers"):
        Kit().test_webhook_unsigned_rejected()


# -- broken adapters the kit must catch -----------------------------------------------------------


class AcceptsAnything(AcmeSMS):
    """Verification that lets every callback through."""

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Accept anything."""


class NoReplayWindow(AcmeSMS):
    """Checks the signature but not how old it is."""

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Accept any callback whose signature matches, however old."""
        header = request.header("X-Acme-Signature") or ""
        stamp = header.partition("t=")[2].partition(",")[0]
        secret = self.settings.webhook_secret.get_secret_value()
        if not stamp.isdigit() or sign(request.body, secret, int(stamp)) != header:
            raise WebhookVerificationError("bad signature")


class WrongThrottleCategory(AcmeSMS):
    """Maps Acme's ``throttled`` to ``unavailable`` instead of ``rate_limited``."""

    error_codes = ERROR_CODES | {"throttled": ErrorCategory.UNAVAILABLE}


class LeakyRepr(AcmeSMS):
    """Shows its API key in its repr."""

    def __repr__(self) -> str:
        return f"LeakyRepr(api_key={self.settings.api_key.get_secret_value()!r})"


class LeakyError(AcmeSMS):
    """Puts its API key into error messages."""

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """Like Acme, but errors quote the key."""
        if response.is_success:
            return super().parse_response(response, message)
        key = self.settings.api_key.get_secret_value()
        raise error_from_response(response, self.name, message=f"refused for key {key}")


class FragileParser(AcmeSMS):
    """Overrides parse_webhook itself and lets KeyError and JSON errors escape."""

    def parse_webhook(
        self, request: WebhookRequest, *, verify: bool = True
    ) -> list[DeliveryEvent | InboundMessage]:
        """Parse without the base class's safety net."""
        if verify:
            self.verify_webhook(request)
        data = json.loads(request.body)
        return [
            DeliveryEvent(provider=self.name, status=DeliveryStatus.SENT, raw_status=data["status"])
        ]


class UnknownAsFailed(AcmeSMS):
    """Maps statuses it does not know to ``failed``."""

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """Like Acme, but unknown statuses become failures."""
        return [
            e.model_copy(update={"status": DeliveryStatus.FAILED})
            if isinstance(e, DeliveryEvent) and e.status is DeliveryStatus.UNKNOWN
            else e
            for e in super().parse_webhook_events(request)
        ]


class WrongProviderName(AcmeSMS):
    """Names another provider in the events it parses."""

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """Like Acme, but every event says it came from ``acme-v1``."""
        return [
            e.model_copy(update={"provider": "acme-v1"})
            for e in super().parse_webhook_events(request)
        ]


class NoMessageId(AcmeSMS):
    """Forgets the provider's message id in the receipt."""

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """Like Acme, but the receipt has no id."""
        return (
            super()
            .parse_response(response, message)
            .model_copy(update={"provider_message_id": None})
        )


class CrashesOnHtml(AcmeSMS):
    """Assumes every error answer is JSON."""

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """Like Acme, but reads the error code with json() and indexing."""
        if not response.is_success:
            code = response.json()["error"]["code"]
            raise error_from_response(response, self.name, code=code)
        return super().parse_response(response, message)


class IgnoresRetryAfter(AcmeSMS):
    """Drops the provider's Retry-After."""

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """Like Acme, but retry_after is always None."""
        try:
            return super().parse_response(response, message)
        except ProviderError as exc:
            exc.retry_after = None
            raise


class ErrorWithoutProvider(AcmeSMS):
    """Raises ProviderErrors that do not name the provider."""

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """Like Acme, but errors have provider=None."""
        try:
            return super().parse_response(response, message)
        except ProviderError as exc:
            exc.provider = None
            raise


@pytest.mark.parametrize(
    ("adapter", "kit_test", "complaint"),
    [
        (AcceptsAnything, "test_webhook_unsigned_rejected", "accepted the unsigned callback"),
        (AcceptsAnything, "test_webhook_forged_rejected", "accepted the forged callback"),
        (AcceptsAnything, "test_webhook_wrong_secret_rejected", "accepted the wrong-secret"),
        (AcceptsAnything, "test_webhook_stale_rejected", "accepted the stale callback"),
        (NoReplayWindow, "test_webhook_stale_rejected", "accepted the stale callback"),
        (WrongThrottleCategory, "test_error_cases", "throttled: category 'unavailable'"),
        (LeakyRepr, "test_secrets_never_printed", r"shown in: repr\(provider\)(?!,)"),
        (LeakyError, "test_secrets_never_printed", r"str\(error 'invalid number'\)"),
        (FragileParser, "test_webhook_malformed_bodies", "raised JSONDecodeError"),
        (UnknownAsFailed, "test_webhook_unknown_status_kept", "not status UNKNOWN"),
        (WrongProviderName, "test_webhook_genuine_accepted", "provider 'acme-v1'"),
        (NoMessageId, "test_send_flow_success", "provider_message_id is None"),
        (CrashesOnHtml, "test_generic_http_errors", "raised JSONDecodeError"),
        (IgnoresRetryAfter, "test_error_cases", "throttled: retry_after None, expected 3.0"),
        (IgnoresRetryAfter, "test_generic_http_errors", "retry_after None, expected 7.0"),
        (ErrorWithoutProvider, "test_error_cases", "provider None, expected 'acme'"),
    ],
)
def test_kit_catches_broken_adapter(adapter: type[AcmeSMS], kit_test: str, complaint: str) -> None:
    """The kit test aimed at a defect fails, naming the defect, when the adapter has it."""

    class Kit(TestAcmeContract):
        def make_provider(self) -> AcmeSMS:
            return make_acme(adapter)

    with pytest.raises(FAILED, match=complaint):
        getattr(Kit(), kit_test)()


@pytest.mark.parametrize(
    "adapter", [NoReplayWindow, WrongThrottleCategory, LeakyRepr, UnknownAsFailed, NoMessageId]
)
def test_kit_failures_are_specific(adapter: type[AcmeSMS]) -> None:
    """A single defect fails only the kit tests aimed at it; the other tests still pass."""
    aimed = {
        NoReplayWindow: {"test_webhook_stale_rejected"},
        WrongThrottleCategory: {"test_error_cases"},
        LeakyRepr: {"test_secrets_never_printed"},
        UnknownAsFailed: {"test_webhook_unknown_status_kept"},
        NoMessageId: {"test_send_flow_success"},
    }[adapter]

    class Kit(TestAcmeContract):
        def make_provider(self) -> AcmeSMS:
            return make_acme(adapter)

    kit = Kit()
    failed: set[str] = set()
    for name in dir(ProviderContract):
        if name.startswith("test_"):
            try:
                getattr(kit, name)()
            except FAILED:
                failed.add(name)
            except pytest.skip.Exception:
                continue
    assert failed <= aimed
    assert failed


def test_kit_catches_sync_asend() -> None:
    """A direct adapter whose asend is not a coroutine function fails the send-methods test."""

    class SyncAsend(MemoryProvider):
        def asend(self, message: OutboundMessage) -> Receipt:  # type: ignore[override]
            return self.send(message)

    class Kit(TestMemoryContract):
        def make_provider(self) -> MemoryProvider:
            return SyncAsend()

    with pytest.raises(FAILED):
        Kit().test_direct_adapter_has_send_methods()


def test_kit_catches_sample_message_on_unserved_channel() -> None:
    """A sample message on a channel the adapter does not serve fails the sample test."""

    class Kit(TestAcmeContract):
        def sample_message(self) -> OutboundMessage:
            return OutboundMessage(id="m1", channel=Channel.EMAIL, to="ann@example.com", text="x")

    with pytest.raises(FAILED):
        Kit().test_sample_message_is_supported()
