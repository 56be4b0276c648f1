"""The contract test kit: one base class that checks an adapter behaves like every other.

An adapter author subclasses :class:`ProviderContract` in a test module, under a name pytest
collects (``Test...``), and supplies a provider and a few canned provider answers::

    from anysend.testing.contract import ErrorCase, ProviderContract

    class TestAcmeSMS(ProviderContract):
        expected_provider_message_id = "msg-123"

        def make_provider(self) -> AcmeSMS:
            return AcmeSMS(api_key="test-key", sender="Acme", webhook_secret="whsec")

        def success_response(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(201, json={"id": "msg-123"}, request=request)

The kit then runs the same tests against it as against the built-in adapters: declarations,
the send flow, error mapping, secrets that never print, and (for adapters that receive
callbacks) signature checks, replay protection, unknown statuses and malformed bodies. Tests
that do not apply (HTTP tests for a direct adapter, callback tests for an adapter without
callbacks) are skipped with the reason.

Nothing touches the network: HTTP adapters are driven through their sans-I/O methods with
``httpx.Response`` objects the author builds, and every contract test runs with a guard that
fails the test on any socket connection to a host other than ``127.0.0.1``, ``::1`` or
``localhost``.
"""

from __future__ import annotations

import inspect
import math
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import httpx
import pytest

from anysend._events import DeliveryEvent, InboundMessage, WebhookRequest
from anysend._exceptions import (
    ErrorCategory,
    ProviderError,
    WebhookParseError,
    WebhookVerificationError,
)
from anysend._models import Channel, OutboundMessage, PushContent, PushTarget
from anysend._results import Receipt
from anysend._status import DeliveryStatus
from anysend.providers._base import Capabilities, Provider, ProviderSettings

__all__ = ["ErrorCase", "ProviderContract"]

#: Hosts a contract test may still connect to (a local test server, say).
_LOCAL_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

#: A send flow that makes more requests than this is taken to be looping.
_MAX_REQUESTS = 10

#: Sample addresses per channel (anything else gets ``"123456"``, a plausible chat id).
_SAMPLE_ADDRESSES = {
    Channel.EMAIL: "ann@example.com",
    Channel.SMS: "+48600700800",
    Channel.WHATSAPP: "+48600700800",
}

#: Bodies that no provider sends, for the malformed-callback test.
_MALFORMED_BODIES = (b"", b"{", b"\xff\xfe", b"[]", b"null", b'{"unexpected": true}')


@dataclass(frozen=True, kw_only=True)
class ErrorCase:
    """A provider's error answer and the :class:`~anysend.ProviderError` it must become.

    The kit answers the adapter's request with ``status``, ``body`` and ``headers`` and checks
    that the adapter raises a ``ProviderError`` with this ``category``, ``retryable`` flag and
    ``retry_after``, naming the adapter as ``provider``.

    Attributes:
        name: a label shown when the case fails.
        status: the HTTP status of the answer.
        category: the category the adapter must report.
        retryable: the ``retryable`` flag it must report (usually ``category.retryable``;
            an adapter may override it, and the kit checks the value declared here).
        body: the answer's body: a dict or list is sent as JSON, a str as UTF-8 text.
        headers: the answer's headers (``{"Retry-After": "7"}``).
        retry_after: the ``retry_after`` it must report, in seconds (checked to within one
            second, so that HTTP-date values can be tested), or ``None``.
        step: which request of a multi-request ``send_flow`` gets this answer (0 is the first;
            earlier requests get ``success_response``).

    Example:
        ```python
        ErrorCase(
            name="throttled",
            status=429,
            body={"error": {"code": "throttled"}},
            headers={"Retry-After": "3"},
            category=ErrorCategory.RATE_LIMITED,
            retryable=True,
            retry_after=3.0,
        )
        ```
    """

    name: str
    status: int
    category: ErrorCategory
    retryable: bool
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    retry_after: float | None = None
    step: int = 0

    def response(self, request: httpx.Request) -> httpx.Response:
        """The ``httpx.Response`` this case answers ``request`` with."""
        headers = dict(self.headers)
        if isinstance(self.body, (dict, list)):
            return httpx.Response(self.status, json=self.body, headers=headers, request=request)
        content = self.body.encode() if isinstance(self.body, str) else self.body
        return httpx.Response(self.status, content=content, headers=headers, request=request)


#: Errors every HTTP adapter must read the same way (``generic_error_cases = False`` opts out).
GENERIC_ERROR_CASES = (
    ErrorCase(
        name="HTTP 500 with an HTML body",
        status=500,
        body="<html><body><h1>500 Internal Server Error</h1></body></html>",
        headers={"Content-Type": "text/html"},
        category=ErrorCategory.UNAVAILABLE,
        retryable=True,
    ),
    ErrorCase(
        name="HTTP 429 with Retry-After: 7",
        status=429,
        body="Too Many Requests",
        headers={"Retry-After": "7", "Content-Type": "text/plain"},
        category=ErrorCategory.RATE_LIMITED,
        retryable=True,
        retry_after=7.0,
    ),
)


class ProviderContract:
    r"""Base class of an adapter's contract tests; subclass it as ``class Test<Adapter>``.

    Every hook below has a default except :meth:`make_provider`. HTTP adapters also need
    :meth:`success_response` and :attr:`expected_provider_message_id`; adapters that receive
    callbacks need :meth:`signed_webhook`, :attr:`signature_headers` (or
    :meth:`unsigned_webhook`), :meth:`unknown_status_webhook` and :attr:`unknown_raw_status`,
    and should give :meth:`stale_webhook` and :meth:`wrong_secret_webhook`.

    Methods to override:

    * ``make_provider()`` (required): a fresh adapter with test settings.
    * ``sample_message()``: the message sent in the tests. Default: text on the first channel
      the adapter serves (in ``Channel`` order), to ``ann@example.com`` (email),
      ``+48600700800`` (SMS, WhatsApp) or ``"123456"`` (others).
    * ``success_response(request)`` (HTTP): the provider's answer accepting ``request``;
      called for every request the send flow makes.
    * ``error_cases()`` (HTTP): a list of :class:`ErrorCase`, the adapter's own error answers
      (error codes in the body) and what each must become.
    * ``signed_webhook()``: a genuine callback, signed with the test secrets, that is accepted
      (a time-checking adapter needs its clock pinned in ``make_provider``).
    * ``unsigned_webhook()``: the callback without its signature. Default: ``signed_webhook()``
      without the headers in ``signature_headers``; override it for signatures in the query.
    * ``forged_webhook()``: a tampered callback. Default: ``signed_webhook()`` with one byte
      of the body changed. Return ``None`` when the signature does not cover the body.
    * ``stale_webhook()``: a correctly signed callback whose timestamp lies outside the
      replay window. Default ``None``: the provider signs no timestamp (test skipped).
    * ``wrong_secret_webhook()``: a callback signed with another secret. Default ``None``
      (test skipped).
    * ``unknown_status_webhook()``: a genuine signed status callback whose raw status the
      adapter does not know (``unknown_raw_status``). Return ``None`` when the provider sends
      no status callbacks.
    * ``inbound_webhook()``: a genuine signed inbound-message callback, checked for adapters
      declaring ``inbound``. Default ``None`` (test skipped).
    * ``malformed_webhooks()``: bodies no provider sends; parsed with ``verify=False`` they
      must give a list or raise only ``WebhookParseError``/``WebhookVerificationError``.
      Default: ``b""``, ``b"{"``, ``b"\xff\xfe"``, ``b"[]"``, ``b"null"`` and
      ``b'{"unexpected": true}'``, each with the genuine callback's URL and headers.

    The callback tests run only for adapters whose capabilities declare ``webhooks`` or
    ``inbound``; the HTTP tests only for HTTP adapters; the ``send``/``asend`` test only for
    direct adapters.

    Attributes:
        expected_provider_message_id: the id the receipt must carry after
            ``success_response`` (``None`` when the provider gives none).
        generic_error_cases: also check that a 500 with an HTML body is ``unavailable`` and a
            429 with ``Retry-After: 7`` is ``rate_limited`` with ``retry_after`` 7.0 (set to
            ``False`` for a provider that answers otherwise).
        signature_headers: the headers that carry the callback signature (removed by the
            default ``unsigned_webhook``).
        unknown_raw_status: the raw status in ``unknown_status_webhook``; it must come out as
            ``DeliveryStatus.UNKNOWN`` with this ``raw_status``.

    Example:
        ```python
        import httpx

        from anysend import ErrorCategory, WebhookRequest
        from anysend.testing.contract import ErrorCase, ProviderContract
        from my_package.acme import AcmeSMS, sign

        NOW = 1_700_000_000
        URL = "https://app.example.com/hooks/acme"


        def callback(body: bytes, *, secret: str = "whsec", at: int = NOW) -> WebhookRequest:
            headers = {"X-Acme-Signature": sign(body, secret, at)}
            return WebhookRequest(url=URL, headers=headers, body=body)


        class TestAcmeSMS(ProviderContract):
            expected_provider_message_id = "msg-123"
            signature_headers = ("X-Acme-Signature",)
            unknown_raw_status = "teleported"

            def make_provider(self) -> AcmeSMS:
                acme = AcmeSMS(api_key="test-key", sender="Acme", webhook_secret="whsec")
                acme.now = lambda: float(NOW)  # pin the clock of the replay window
                return acme

            def success_response(self, request: httpx.Request) -> httpx.Response:
                return httpx.Response(201, json={"id": "msg-123"}, request=request)

            def error_cases(self) -> list[ErrorCase]:
                return [
                    ErrorCase(
                        name="invalid number",
                        status=400,
                        body={"error": {"code": "invalid_number"}},
                        category=ErrorCategory.INVALID_RECIPIENT,
                        retryable=False,
                    ),
                ]

            def signed_webhook(self) -> WebhookRequest:
                return callback(b'{"id": "msg-123", "status": "delivered", "timestamp": 1}')

            def stale_webhook(self) -> WebhookRequest:
                body = b'{"id": "msg-123", "status": "delivered", "timestamp": 1}'
                return callback(body, at=NOW - 3600)

            def wrong_secret_webhook(self) -> WebhookRequest:
                body = b'{"id": "msg-123", "status": "delivered", "timestamp": 1}'
                return callback(body, secret="not-the-secret")

            def unknown_status_webhook(self) -> WebhookRequest:
                return callback(b'{"id": "msg-123", "status": "teleported", "timestamp": 1}')
        ```
    """

    expected_provider_message_id: str | None = None
    generic_error_cases: bool = True
    signature_headers: tuple[str, ...] = ()
    unknown_raw_status: str = ""

    # -- hooks ----------------------------------------------------------------------------------

    def make_provider(self) -> Provider:
        """A fresh adapter with test settings (override this)."""
        _fail(f"{type(self).__name__} must override make_provider()")

    def sample_message(self) -> OutboundMessage:
        """The message the tests send: text on the adapter's first channel."""
        provider = self.make_provider()
        channel = next((c for c in Channel if c in provider.channels), Channel.SMS)
        to = _SAMPLE_ADDRESSES.get(channel, "123456")
        extra: dict[str, Any] = {}
        if channel is Channel.EMAIL:
            extra["subject"] = "anysend contract test"
        if channel is Channel.PUSH:
            extra["push"] = PushContent(title="anysend", body="contract test")
            if "fcm" in provider.push_kinds:
                extra["push_target"] = PushTarget(kind="fcm", token=to)
        return OutboundMessage(
            id="anysend-contract-1",
            channel=channel,
            to=to,
            text="Hello from the anysend contract kit",
            idempotency_key="anysend-contract-key-1",
            **extra,
        )

    def success_response(self, request: httpx.Request) -> httpx.Response:
        """The provider's answer accepting ``request`` (override for HTTP adapters)."""
        _fail(f"{type(self).__name__} must override success_response() for an HTTP adapter")

    def error_cases(self) -> list[ErrorCase]:
        """The adapter's own error answers and what each must become (HTTP adapters)."""
        return []

    def signed_webhook(self) -> WebhookRequest:
        """A genuine callback signed with the test secrets (override for callbacks)."""
        _fail(f"{type(self).__name__} must override signed_webhook() for an adapter with webhooks")

    def unsigned_webhook(self) -> WebhookRequest:
        """The genuine callback without its signature headers."""
        if not self.signature_headers:
            _fail(
                f"{type(self).__name__} must set signature_headers or override unsigned_webhook()"
            )
        signed = self.signed_webhook()
        drop = {h.lower() for h in self.signature_headers}
        headers = {k: v for k, v in signed.headers.items() if k.lower() not in drop}
        return WebhookRequest(
            method=signed.method, url=signed.url, headers=headers, body=signed.body
        )

    def forged_webhook(self) -> WebhookRequest | None:
        """The genuine callback with one byte of its body changed."""
        signed = self.signed_webhook()
        if not signed.body:
            _fail(
                f"{type(self).__name__}: the signed callback has no body; override forged_webhook()"
            )
        body = bytearray(signed.body)
        middle = len(body) // 2
        body[middle] ^= 0x01
        return WebhookRequest(
            method=signed.method, url=signed.url, headers=dict(signed.headers), body=bytes(body)
        )

    def stale_webhook(self) -> WebhookRequest | None:
        """A correctly signed callback outside the replay window (``None``: no timestamp)."""
        return None

    def wrong_secret_webhook(self) -> WebhookRequest | None:
        """A callback signed with a secret other than the provider's (``None``: skip)."""
        return None

    def unknown_status_webhook(self) -> WebhookRequest | None:
        """A genuine signed callback with the raw status ``unknown_raw_status``."""
        _fail(
            f"{type(self).__name__} must override unknown_status_webhook() (return None when "
            "the provider sends no status callbacks)"
        )

    def inbound_webhook(self) -> WebhookRequest | None:
        """A genuine signed inbound-message callback (``None``: skip)."""
        return None

    def malformed_webhooks(self) -> list[WebhookRequest]:
        """Requests with the genuine callback's URL and headers and broken bodies."""
        signed = self.signed_webhook()
        return [
            WebhookRequest(
                method=signed.method, url=signed.url, headers=dict(signed.headers), body=b
            )
            for b in _MALFORMED_BODIES
        ]

    # -- the network guard ----------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _anysend_no_network(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Fail the test on any socket connection to a host other than the local machine."""
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_create_connection = socket.create_connection

        def connect(sock: socket.socket, address: Any) -> None:
            _refuse_remote(address)
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            _refuse_remote(address)
            return real_connect_ex(sock, address)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
            _refuse_remote(address)
            return real_create_connection(address, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
        monkeypatch.setattr(socket, "create_connection", create_connection)

    # -- declarations ---------------------------------------------------------------------------

    def test_declares_name_channels_capabilities_settings(self) -> None:
        """The adapter declares a name, channels, capabilities, settings and a send method."""
        provider = self.make_provider()
        kind = type(provider).__name__
        assert isinstance(provider, Provider), f"{kind} is not a Provider subclass"
        assert isinstance(provider.name, str), f"{kind}.name is not a string"
        assert provider.name.strip(), f"{kind}.name is empty"
        assert provider.channels, f"{kind}.channels is empty"
        assert all(isinstance(c, Channel) for c in provider.channels), (
            f"{kind}.channels holds values that are not Channel members: {provider.channels!r}"
        )
        assert isinstance(provider.capabilities, Capabilities), (
            f"{kind}.capabilities is not a Capabilities instance"
        )
        assert isinstance(provider.Settings, type), f"{kind}.Settings is not a class"
        assert issubclass(provider.Settings, ProviderSettings), (
            f"{kind}.Settings does not subclass ProviderSettings"
        )
        assert isinstance(provider.settings, provider.Settings), (
            f"{kind}.settings is not an instance of {kind}.Settings"
        )
        assert provider.supports_sync() or provider.supports_async(), (
            f"{kind} implements neither the HTTP methods nor send/asend"
        )

    def test_sample_message_is_supported(self) -> None:
        """The sample message is on a channel the adapter serves and passes check_supported."""
        provider = self.make_provider()
        message = self.sample_message()
        assert message.channel in provider.channels, (
            f"the sample message is on {message.channel.value!r}, which {provider.name} does not "
            f"serve; override sample_message()"
        )
        provider.check_supported(message)

    def test_direct_adapter_has_send_methods(self) -> None:
        """A direct adapter has send() and/or async asend() as supports_sync/async declare."""
        provider = self.make_provider()
        if provider.is_http():
            pytest.skip(f"{type(provider).__name__} is an HTTP adapter (no send/asend needed)")
        kind = type(provider).__name__
        if provider.supports_sync():
            assert callable(getattr(provider, "send", None)), f"{kind}.send is not callable"
        if provider.supports_async():
            asend = getattr(provider, "asend", None)
            assert inspect.iscoroutinefunction(asend), f"{kind}.asend is not an async def"

    # -- HTTP -------------------------------------------------------------------------------------

    def test_send_flow_success(self) -> None:
        """send_flow yields httpx.Requests; the success answer gives the expected Receipt."""
        provider = self._http_provider()
        message = self.sample_message()
        try:
            result = self._run_flow(provider, message, None)
        except Exception as exc:
            _fail(f"{provider.name} raised {type(exc).__name__}: {exc} on a success answer")
        assert isinstance(result, Receipt), (
            f"{provider.name}'s send flow returned {result!r}, not a Receipt"
        )
        assert result.provider_message_id == self.expected_provider_message_id, (
            f"receipt.provider_message_id is {result.provider_message_id!r}, expected "
            f"{self.expected_provider_message_id!r} (expected_provider_message_id)"
        )
        assert result.status.is_success, f"receipt status {result.status.value!r} is no success"

    def test_error_cases(self) -> None:
        """Each declared error answer raises ProviderError with its category, flag and delay."""
        provider = self._http_provider()
        cases = self.error_cases()
        if not cases:
            pytest.skip("no error_cases() given: override it with the provider's own error codes")
        self._check_error_cases(provider, cases)

    def test_generic_http_errors(self) -> None:
        """A 500 with an HTML body is unavailable; a 429 with Retry-After: 7 is rate limited."""
        provider = self._http_provider()
        if not self.generic_error_cases:
            pytest.skip("generic_error_cases = False")
        self._check_error_cases(provider, list(GENERIC_ERROR_CASES))

    # -- secrets ----------------------------------------------------------------------------------

    def test_secrets_never_printed(self) -> None:
        """No secret setting shows in reprs of the adapter and settings or in its errors."""
        provider = self.make_provider()
        secrets = provider.secrets()
        if not secrets:
            pytest.skip(f"{type(provider).__name__} has no secret settings")
        shown = {
            "repr(provider)": repr(provider),
            "str(settings)": str(provider.settings),
            "repr(settings)": repr(provider.settings),
        }
        if provider.is_http():
            cases = self.error_cases() + (
                list(GENERIC_ERROR_CASES) if self.generic_error_cases else []
            )
            for case in cases:
                error = self._provoke(provider, case)
                if error is not None:
                    shown[f"str(error {case.name!r})"] = str(error)
                    shown[f"repr(error {case.name!r})"] = repr(error)
        if _receives_callbacks(provider):
            for what, request in self._rejected_webhooks():
                try:
                    provider.verify_webhook(request)
                except Exception as exc:
                    shown[f"str(error for the {what} callback)"] = str(exc)
                    shown[f"repr(error for the {what} callback)"] = repr(exc)
        leaks = [where for where, text in shown.items() if any(s in text for s in secrets)]
        assert not leaks, f"a secret setting of {provider.name} is shown in: {', '.join(leaks)}"

    # -- callbacks --------------------------------------------------------------------------------

    def test_webhook_genuine_accepted(self) -> None:
        """A genuine signed callback verifies and parses into events naming the provider."""
        provider = self._callback_provider()
        request = self.signed_webhook()
        try:
            provider.verify_webhook(request)
        except WebhookVerificationError as exc:
            _fail(f"{provider.name} rejected the genuine signed callback: {exc}")
        events = self._parse(provider, request, verify=True)
        assert events, f"{provider.name} parsed the genuine callback into no events"

    def test_webhook_unsigned_rejected(self) -> None:
        """A callback without its signature raises WebhookVerificationError."""
        provider = self._callback_provider()
        _expect_rejected(provider, self.unsigned_webhook(), "unsigned")

    def test_webhook_forged_rejected(self) -> None:
        """A callback whose body was changed after signing raises WebhookVerificationError."""
        provider = self._callback_provider()
        request = self.forged_webhook()
        if request is None:
            pytest.skip(
                "forged_webhook() is None: the provider's signature does not cover the body"
            )
        _expect_rejected(provider, request, "forged")

    def test_webhook_wrong_secret_rejected(self) -> None:
        """A callback signed with another secret raises WebhookVerificationError."""
        provider = self._callback_provider()
        request = self.wrong_secret_webhook()
        if request is None:
            pytest.skip(
                "wrong_secret_webhook() is None: override it to return a callback signed "
                "with another secret"
            )
        _expect_rejected(provider, request, "wrong-secret")

    def test_webhook_stale_rejected(self) -> None:
        """A signed callback outside the replay window raises WebhookVerificationError."""
        provider = self._callback_provider()
        request = self.stale_webhook()
        if request is None:
            pytest.skip("stale_webhook() is None: the provider signs no timestamp")
        _expect_rejected(provider, request, "stale")

    def test_webhook_unknown_status_kept(self) -> None:
        """An unknown raw status becomes DeliveryStatus.UNKNOWN with the raw value kept."""
        provider = self._callback_provider()
        request = self.unknown_status_webhook()
        if request is None:
            pytest.skip("unknown_status_webhook() is None: the provider sends no status callbacks")
        assert self.unknown_raw_status, (
            f"{type(self).__name__} must set unknown_raw_status to the raw status in "
            "unknown_status_webhook()"
        )
        events = self._parse(provider, request, verify=True)
        reports = [e for e in events if isinstance(e, DeliveryEvent)]
        assert reports, f"{provider.name} parsed the unknown-status callback into no DeliveryEvent"
        for event in reports:
            assert event.status is DeliveryStatus.UNKNOWN, (
                f"raw status {self.unknown_raw_status!r} became {event!r}, not status UNKNOWN"
            )
            assert event.raw_status == self.unknown_raw_status, (
                f"raw_status is {event.raw_status!r}, expected {self.unknown_raw_status!r}"
            )

    def test_webhook_inbound_parsed(self) -> None:
        """A genuine inbound callback parses into InboundMessages naming the provider."""
        provider = self._callback_provider()
        if not provider.capabilities.inbound:
            pytest.skip(f"{provider.name} does not declare inbound")
        request = self.inbound_webhook()
        if request is None:
            pytest.skip("inbound_webhook() is None: override it to check inbound messages")
        events = self._parse(provider, request, verify=True)
        inbound = [e for e in events if isinstance(e, InboundMessage)]
        assert inbound, f"{provider.name} parsed the inbound callback into {events!r}"

    def test_webhook_malformed_bodies(self) -> None:
        """Malformed bodies give a list or raise only WebhookParseError/VerificationError."""
        provider = self._callback_provider()
        for request in self.malformed_webhooks():
            try:
                result = provider.parse_webhook(request, verify=False)
            except (WebhookParseError, WebhookVerificationError):
                continue
            except Exception as exc:
                _fail(
                    f"{provider.name}.parse_webhook(verify=False) raised {type(exc).__name__}: "
                    f"{exc} for body {request.body!r}; only WebhookParseError and "
                    "WebhookVerificationError may escape"
                )
            assert isinstance(result, list), (
                f"{provider.name}.parse_webhook returned {type(result).__name__} for body "
                f"{request.body!r}, not a list"
            )
            for event in result:
                _check_event(provider, event)

    # -- helpers ----------------------------------------------------------------------------------

    def _http_provider(self) -> Provider:
        provider = self.make_provider()
        if not provider.is_http():
            pytest.skip(f"{type(provider).__name__} is a direct adapter (send/asend), not HTTP")
        return provider

    def _callback_provider(self) -> Provider:
        provider = self.make_provider()
        if not _receives_callbacks(provider):
            pytest.skip(
                f"{type(provider).__name__} declares neither webhooks nor inbound in its "
                "capabilities"
            )
        return provider

    def _run_flow(
        self, provider: Provider, message: OutboundMessage, case: ErrorCase | None
    ) -> object:
        """Drive send_flow, answering with success_response (or ``case`` at its step)."""
        flow = provider.send_flow(message)
        try:
            try:
                request = next(flow)
            except StopIteration as stop:
                _fail(f"{provider.name}.send_flow returned {stop.value!r} without a request")
            for step in range(_MAX_REQUESTS):
                assert isinstance(request, httpx.Request), (
                    f"{provider.name}.send_flow yielded {request!r}, not an httpx.Request"
                )
                assert request.url.is_absolute_url, (
                    f"{provider.name} built a request to a relative URL: {request.url}"
                )
                if case is not None and step == case.step:
                    response = case.response(request)
                else:
                    response = self.success_response(request)
                try:
                    request = flow.send(response)
                except StopIteration as stop:
                    return stop.value
            _fail(f"{provider.name}.send_flow made more than {_MAX_REQUESTS} requests")
        finally:
            flow.close()

    def _provoke(self, provider: Provider, case: ErrorCase) -> ProviderError | None:
        """The ProviderError the adapter raises for ``case`` (None when it raises none)."""
        try:
            self._run_flow(provider, self.sample_message(), case)
        except ProviderError as exc:
            return exc
        except Exception:
            return None
        return None

    def _check_error_cases(self, provider: Provider, cases: list[ErrorCase]) -> None:
        message = self.sample_message()
        problems: list[str] = []
        for case in cases:
            try:
                result = self._run_flow(provider, message, case)
            except ProviderError as exc:
                problems.extend(f"{case.name}: {p}" for p in _compare(provider, case, exc))
            except Exception as exc:
                problems.append(
                    f"{case.name}: raised {type(exc).__name__}: {exc}, not a ProviderError"
                )
            else:
                problems.append(f"{case.name}: returned {result!r} instead of raising")
        assert not problems, f"{provider.name} maps errors wrongly:\n  " + "\n  ".join(problems)

    def _rejected_webhooks(self) -> list[tuple[str, WebhookRequest]]:
        found: list[tuple[str, WebhookRequest | None]] = [
            ("unsigned", self.unsigned_webhook()),
            ("forged", self.forged_webhook()),
            ("wrong-secret", self.wrong_secret_webhook()),
            ("stale", self.stale_webhook()),
        ]
        return [(what, request) for what, request in found if request is not None]

    def _parse(
        self, provider: Provider, request: WebhookRequest, *, verify: bool
    ) -> list[DeliveryEvent | InboundMessage]:
        try:
            events = provider.parse_webhook(request, verify=verify)
        except Exception as exc:
            _fail(f"{provider.name}.parse_webhook raised {type(exc).__name__}: {exc}")
        assert isinstance(events, list), (
            f"{provider.name}.parse_webhook returned {type(events).__name__}, not a list"
        )
        for event in events:
            _check_event(provider, event)
        return events


def _fail(reason: str) -> NoReturn:
    pytest.fail(reason)


def _receives_callbacks(provider: Provider) -> bool:
    return provider.capabilities.webhooks or provider.capabilities.inbound


def _compare(provider: Provider, case: ErrorCase, error: ProviderError) -> list[str]:
    problems = []
    if error.category is not case.category:
        problems.append(f"category {error.category.value!r}, expected {case.category.value!r}")
    if error.retryable is not case.retryable:
        problems.append(f"retryable {error.retryable!r}, expected {case.retryable!r}")
    if case.retry_after is None:
        if error.retry_after is not None:
            problems.append(f"retry_after {error.retry_after!r}, expected None")
    elif error.retry_after is None or not math.isclose(
        error.retry_after, case.retry_after, abs_tol=1.0
    ):
        problems.append(f"retry_after {error.retry_after!r}, expected {case.retry_after!r}")
    if error.provider != provider.name:
        problems.append(f"provider {error.provider!r}, expected {provider.name!r}")
    return problems


def _check_event(provider: Provider, event: object) -> None:
    assert isinstance(event, (DeliveryEvent, InboundMessage)), (
        f"{provider.name}.parse_webhook gave {event!r}, not a DeliveryEvent or InboundMessage"
    )
    assert event.provider == provider.name, (
        f"an event names provider {event.provider!r}, expected {provider.name!r}"
    )
    if isinstance(event, DeliveryEvent):
        assert event.raw_status, f"a DeliveryEvent has no raw_status: {event!r}"


def _expect_rejected(provider: Provider, request: WebhookRequest, what: str) -> None:
    calls: list[tuple[str, Callable[[], object]]] = [
        ("verify_webhook", lambda: provider.verify_webhook(request)),
        ("parse_webhook", lambda: provider.parse_webhook(request)),
    ]
    for name, call in calls:
        try:
            call()
        except WebhookVerificationError:
            continue
        except Exception as exc:
            _fail(
                f"{provider.name}.{name} raised {type(exc).__name__}: {exc} for the {what} "
                "callback; expected WebhookVerificationError"
            )
        _fail(f"{provider.name}.{name} accepted the {what} callback")


def _refuse_remote(address: object) -> None:
    if isinstance(address, (str, bytes)):  # an AF_UNIX path: local
        return
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if isinstance(host, str) and host.lower() in _LOCAL_HOSTS:
        return
    _fail(f"contract tests must not use the network: tried to connect to {address!r}")
