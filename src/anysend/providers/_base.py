"""The one base class every adapter subclasses, and the capabilities it declares.

An adapter is one of two kinds:

* **HTTP** (most providers): it writes no I/O. It implements :meth:`Provider.build_request`
  and :meth:`Provider.parse_response`, or the generator :meth:`Provider.send_flow` for sends
  that need several requests (fetch a token, then send). The client owns the HTTP connection
  pool, timeouts, retries and a base-URL override; the same adapter serves ``Client`` and
  ``AsyncClient``.
* **Direct** (SMTP, a vendor SDK): it implements ``send(message)`` and/or
  ``async asend(message)``, and ``close``/``aclose`` when it holds connections. ``Client``
  needs ``send``; ``AsyncClient`` needs ``asend``; a client refuses an adapter that lacks the
  method it needs when it is built.

Adapters that receive callbacks implement :meth:`Provider.verify_webhook` and
:meth:`Provider.parse_webhook`; :meth:`Provider.webhook_response` says what to answer a
handled callback with (a provider that reads the answer overrides it), and
:meth:`Provider.handshake` answers a provider's ``GET`` verification handshake.
"""

from __future__ import annotations

import hmac
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from anysend._exceptions import (
    ConfigurationError,
    ErrorCategory,
    ProviderError,
    UnsupportedFeatureError,
    WebhookVerificationError,
)
from anysend._models import Channel
from anysend._ratelimit import RateLimit

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx

    from anysend._events import DeliveryEvent, InboundMessage, WebhookRequest
    from anysend._models import OutboundMessage
    from anysend._results import Receipt

__all__ = [
    "Capabilities",
    "Provider",
    "ProviderSettings",
    "SendFlow",
    "WebhookFlow",
    "WebhookResponse",
    "check_replay_window",
    "compare_signatures",
]

#: A multi-request send: yields requests, receives their responses, returns the receipt.
SendFlow = Generator["httpx.Request", "httpx.Response", "Receipt"]
#: Callback handling that may need a request first (a signing certificate): yields requests,
#: receives their responses, returns the events.
WebhookFlow = Generator["httpx.Request", "httpx.Response", "list[DeliveryEvent | InboundMessage]"]


class ProviderSettings(BaseModel):
    """Base for an adapter's settings. Secrets are ``SecretStr`` so that they never print."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class WebhookResponse(BaseModel):
    """The HTTP answer to give a provider's callback or handshake.

    Most providers only need a 2xx status; a few read the body (Twilio's TwiML, Meta's
    ``hub.challenge``, SMSAPI's ``OK``). :meth:`Provider.webhook_response` and
    :meth:`Provider.handshake` return one; ``anysend.asgi.WebhookApp`` sends it as it is, and
    any web framework can do the same.

    Attributes:
        status: the HTTP status code.
        body: the body bytes.
        content_type: the ``Content-Type`` header's value.
    """

    # Built on first use: only webhook handling makes one, never a send.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    status: int = Field(default=200, ge=100, le=599)
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"


class Capabilities(BaseModel):
    """What an adapter can do; the client refuses a message that needs more.

    Read it as data: ``Console.capabilities.model_dump()``.

    Attributes:
        html: sends an HTML body.
        attachments: sends file attachments.
        inline_images: sends inline images referenced by ``cid:``.
        cc_bcc: sends carbon copies.
        reply_to: sets a reply-to address.
        headers: sets custom headers.
        metadata: passes metadata through to callbacks.
        tags: passes tags to the provider.
        send_at: schedules at the provider.
        chat_templates: sends provider-side templates (WhatsApp).
        idempotency: takes an idempotency key, so an ambiguous timeout may be retried safely.
        addressless: knows where to deliver without a recipient address (a configured
            incoming-webhook URL), so the channel is used even when the recipient has none.
        webhooks: verifies and parses delivery callbacks.
        inbound: parses inbound messages.
        max_attachment_bytes: the provider's limit on attachments in total, if any.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    html: bool = False
    attachments: bool = False
    inline_images: bool = False
    cc_bcc: bool = False
    reply_to: bool = False
    headers: bool = False
    metadata: bool = False
    tags: bool = False
    send_at: bool = False
    chat_templates: bool = False
    idempotency: bool = False
    addressless: bool = False
    webhooks: bool = False
    inbound: bool = False
    max_attachment_bytes: int | None = None


class Provider:
    """Base class of every adapter (the extension point; see "Writing an adapter").

    Subclasses set the class attributes and implement either the HTTP pair or ``send`` /
    ``asend``. Settings are given as keyword arguments and validated by ``Settings``.

    Class attributes:
        name: the provider's name; also its entry-point name and URL scheme.
        channels: the channels it serves.
        capabilities: what it can do.
        Settings: its settings model.
        default_base_url: where its API lives; the client can point it elsewhere.
        push_kinds: for push adapters, the device kinds served (``fcm``, ``apns``,
            ``webpush``); a device goes to the first provider that serves its kind.
        http2: the provider's API speaks only HTTP/2 (APNs); the client sends its requests
            through an HTTP/2 connection pool (needs ``anysend[push]``).
        webhook_methods: the HTTP methods the provider's callbacks may use. ``POST`` for
            most; ``GET`` too for providers that can be set to call back with a query
            (Twilio, Plivo, Vonage, SMSAPI). A ``GET`` that is not a callback is a handshake
            (:meth:`handshake`).
        rate_limit: the rate limit the provider publishes (:class:`~anysend.RateLimit`), which
            the client keeps to unless its ``rate_limits`` option says otherwise; ``None``
            when none is published.
        max_batch: the most messages one batch request may carry (SendGrid's personalizations,
            Mailgun's recipient variables); ``1`` (the default) when the provider has no batch
            API. An adapter with more implements :meth:`build_batch_request` and
            :meth:`parse_batch_response` (``client.send_batch`` uses them).
        batch_varies: the :class:`~anysend.OutboundMessage` fields, besides the address, the
            recipient, anysend's id and the idempotency key, that may differ between the
            messages of one batch request (SendGrid: ``subject``, set per personalization).

    Attributes:
        settings: the validated settings.
    """

    name: ClassVar[str] = ""
    channels: ClassVar[frozenset[Channel]] = frozenset()
    capabilities: ClassVar[Capabilities] = Capabilities()
    Settings: ClassVar[type[ProviderSettings]] = ProviderSettings
    default_base_url: ClassVar[str | None] = None
    push_kinds: ClassVar[frozenset[str]] = frozenset({"fcm", "apns", "webpush"})
    http2: ClassVar[bool] = False
    webhook_methods: ClassVar[frozenset[str]] = frozenset({"POST"})
    rate_limit: ClassVar[RateLimit | None] = None
    max_batch: ClassVar[int] = 1
    batch_varies: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: ProviderSettings | None = None, /, **kwargs: Any) -> None:
        if settings is not None and kwargs:
            raise ConfigurationError("give settings either as a model or as keywords, not both")
        try:
            self.settings = settings if settings is not None else self.Settings(**kwargs)
        except ValidationError as exc:
            # pydantic's own text repeats the values given, secrets included: name the
            # fields and the problems only.
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise ConfigurationError(
                f"invalid settings for {type(self).__name__}: {problems}"
            ) from None
        if not isinstance(self.settings, self.Settings):
            raise ConfigurationError(
                f"{type(self).__name__} expects settings of type {self.Settings.__name__}"
            )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.channels = frozenset(Channel(c) for c in cls.channels)

    def __repr__(self) -> str:
        # pydantic's repr masks SecretStr values, so settings can be shown.
        return f"{type(self).__name__}({self.settings!r})"

    # -- kind -------------------------------------------------------------------------------

    @classmethod
    def is_http(cls) -> bool:
        """Whether the adapter is sans-I/O HTTP (implements ``build_request`` or ``send_flow``)."""
        return (
            cls.build_request is not Provider.build_request
            or cls.send_flow is not Provider.send_flow
        )

    @classmethod
    def supports_sync(cls) -> bool:
        """Whether the sync ``Client`` can drive this adapter."""
        return cls.is_http() or callable(getattr(cls, "send", None))

    @classmethod
    def supports_async(cls) -> bool:
        """Whether ``AsyncClient`` can drive this adapter."""
        return cls.is_http() or callable(getattr(cls, "asend", None))

    # -- HTTP adapters ------------------------------------------------------------------------

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """Build the HTTP request that sends ``message`` (no I/O)."""
        raise NotImplementedError

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """Turn the provider's answer into a Receipt, or raise ProviderError (no I/O)."""
        raise NotImplementedError

    def send_flow(self, message: OutboundMessage) -> SendFlow:
        """Yield the requests of a send, receiving each response; return the Receipt.

        The default sends one request from :meth:`build_request` and parses its answer with
        :meth:`parse_response`. Override it for token-then-send and upload-then-send flows.
        """
        response = yield self.build_request(message)
        return self.parse_response(response, message)

    # -- batch sends (optional: adapters with ``max_batch > 1``) --------------------------------

    def batchable(self, message: OutboundMessage) -> bool:
        """Whether ``message`` may share a batch request with others (no I/O).

        The default: the adapter has a batch API (``max_batch > 1``) and the message has no
        cc or bcc, since every recipient of a batch gets a copy of their own and the copies
        would be sent to the carbon copies once each. Adapters with further limits extend it.
        """
        return self.max_batch > 1 and not message.cc and not message.bcc

    def build_batch_request(self, messages: Sequence[OutboundMessage]) -> httpx.Request:
        """Build the one HTTP request that sends every message of ``messages`` (no I/O).

        The client calls it with 2 to :attr:`max_batch` messages that are :meth:`batchable`,
        have passed :meth:`check_supported`, go to different addresses, and are equal but for
        their address, recipient, ``id``, ``idempotency_key``, ``locale`` and the fields in
        :attr:`batch_varies`. Each recipient must get a copy of their own (seeing only their
        own address), and callbacks about it must carry that message's ``id``.

        Raises:
            UnsupportedFeatureError: the adapter has no batch API (the default).
        """
        raise UnsupportedFeatureError(
            f"{self.name} has no batch API", provider=self.name, feature="batch"
        )

    def parse_batch_response(
        self, response: httpx.Response, messages: Sequence[OutboundMessage]
    ) -> list[Receipt]:
        """One Receipt per message of a batch request, in order, or raise ProviderError (no I/O).

        A refusal refuses the whole request: raise the ProviderError it means, as
        :meth:`parse_response` does.
        """
        raise UnsupportedFeatureError(
            f"{self.name} has no batch API", provider=self.name, feature="batch"
        )

    # -- checks shared by every adapter --------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Raise UnsupportedFeatureError when ``message`` needs what this adapter cannot do.

        Runs before any network call. Adapters with further limits extend it.
        """
        caps = self.capabilities
        if not (
            message.html is not None
            or message.attachments
            or message.cc
            or message.bcc
            or message.reply_to
            or message.headers
            or message.send_at is not None
            or message.chat_template is not None
        ):
            return  # a plain message needs nothing special (the common case, checked fast)
        needs = {
            "html": message.html is not None and message.channel is Channel.EMAIL,
            "attachments": any(not a.inline for a in message.attachments),
            "inline_images": any(a.inline for a in message.attachments),
            "cc_bcc": bool(message.cc or message.bcc),
            "reply_to": bool(message.reply_to),
            "headers": bool(message.headers),
            "send_at": message.send_at is not None,
            "chat_templates": message.chat_template is not None,
        }
        for feature, needed in needs.items():
            if needed and not getattr(caps, feature):
                raise UnsupportedFeatureError(
                    f"{self.name} cannot send {feature.replace('_', ' ')}",
                    provider=self.name,
                    feature=feature,
                )
        limit = caps.max_attachment_bytes
        if limit is not None and sum(len(a.content) for a in message.attachments) > limit:
            raise ProviderError(
                f"attachments exceed {self.name}'s limit of {limit} bytes",
                category=ErrorCategory.PAYLOAD_TOO_LARGE,
                provider=self.name,
            )

    # -- callbacks ----------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check that a callback really comes from the provider; raise if not.

        Raises:
            WebhookVerificationError: bad, missing or stale signature.
        """
        raise WebhookVerificationError(f"{self.name} does not receive callbacks")

    def parse_webhook(
        self, request: WebhookRequest, *, verify: bool = True
    ) -> list[DeliveryEvent | InboundMessage]:
        """Verify (unless ``verify=False``) and parse a callback into events.

        Adapters implement :meth:`parse_webhook_events`; this method runs verification first
        and guarantees that only anysend's own errors come out: a verification that fails
        with another exception (a URL that ``urllib`` cannot split) refuses the callback.

        Raises:
            WebhookVerificationError: the callback is not authentic.
            WebhookParseError: the body cannot be understood.
        """
        from anysend._exceptions import AnysendError, WebhookParseError

        if verify:
            try:
                self.verify_webhook(request)
            except AnysendError:
                raise
            except Exception as exc:  # what cannot be verified is refused (a hostile URL)
                raise WebhookVerificationError(
                    f"{self.name} could not verify the callback: {type(exc).__name__}"
                ) from exc
        try:
            return list(self.parse_webhook_events(request))
        except AnysendError:
            raise
        except Exception as exc:  # a parser must never leak foreign exceptions
            raise WebhookParseError(
                f"{self.name} could not parse the callback: {type(exc).__name__}: {exc}"
            ) from exc

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """Parse a verified callback body into events (adapters override this)."""
        raise WebhookVerificationError(f"{self.name} does not receive callbacks")

    def webhook_flow(self, request: WebhookRequest, *, verify: bool = True) -> WebhookFlow:
        """Handle a callback that may need HTTP first; yields requests, returns the events.

        The default needs nothing and returns :meth:`parse_webhook`. An adapter whose
        verification needs a document from the provider (Amazon SNS's signing certificate)
        yields the request for it once, caches the answer, then parses. The clients drive this
        generator in ``client.parse_webhook(provider, request)``, through their own HTTP pool.
        """
        yield from ()  # nothing to fetch
        return self.parse_webhook(request, verify=verify)

    def webhook_response(
        self, request: WebhookRequest, events: list[DeliveryEvent | InboundMessage]
    ) -> WebhookResponse:
        """What to answer a verified callback once its events were handled.

        The default is ``200`` with an empty body: most providers read only the status.
        Adapters whose provider reads the body override it (Twilio answers empty TwiML, so
        that an inbound SMS gets no automatic reply). Pure: no I/O.

        Args:
            request: the callback as received.
            events: what it parsed into.
        """
        return WebhookResponse()

    def handshake(self, request: WebhookRequest) -> WebhookResponse | None:
        """Answer the provider's ``GET`` verification handshake, if it makes one.

        Meta's adapters (WhatsApp, Messenger) echo ``hub.challenge`` after checking the verify
        token. The default is ``None``: the provider makes no handshake (a web endpoint then
        answers ``405``, unless ``GET`` is in :attr:`webhook_methods`). Pure: no I/O.

        Raises:
            WebhookVerificationError: the handshake is not genuine (answer 4xx).
        """
        return None

    # -- lifecycle (direct adapters with connections override these) ----------------------------

    def secrets(self) -> list[str]:
        """The secret values in the settings (used by tests to prove they never leak)."""
        from pydantic import SecretBytes, SecretStr

        found: list[str] = []
        for value in self.settings.__dict__.values():
            if isinstance(value, SecretStr):
                found.append(value.get_secret_value())
            elif isinstance(value, SecretBytes):
                found.append(value.get_secret_value().decode("utf-8", "replace"))
        return [s for s in found if s]


def check_replay_window(provider: str, timestamp: float, now: float, window: float) -> None:
    """Refuse a signed callback whose timestamp lies more than ``window`` seconds from ``now``.

    A genuine callback captured and posted again later (a replay) carries its old signature
    and timestamp; this is what stops it. Either direction counts, so a clock running ahead
    at the provider does not open a second window.

    Raises:
        WebhookVerificationError: the timestamp is outside the window.
    """
    if abs(now - timestamp) > window:
        raise WebhookVerificationError(
            f"{provider} callback is outside the replay window ({window:g} s): a replay?"
        )


def compare_signatures(expected: str | bytes, given: str | bytes | None) -> bool:
    """Compare two signatures in constant time (``None`` never matches)."""
    if given is None:
        return False
    if isinstance(expected, str):
        expected = expected.encode()
    if isinstance(given, str):
        given = given.encode()
    return hmac.compare_digest(expected, given)
