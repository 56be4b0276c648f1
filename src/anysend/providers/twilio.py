r"""``Twilio``: SMS and WhatsApp through Twilio Programmable Messaging.

One adapter serves the ``sms`` and ``whatsapp`` channels through Twilio's Messages resource,
and reads Twilio's status callbacks and incoming-message webhooks.

Example:
    ```python
    import anysend
    from anysend.providers.twilio import Twilio

    twilio = Twilio(
        account_sid="AC" + "0" * 32,
        auth_token="your-auth-token",
        sender="+15005550006",
        status_callback_url="https://example.com/hooks/twilio",
    )
    with anysend.Client([twilio]) as client:
        client.send(anysend.Message(text="Your code is 123456"), to={"phone": "+48600700800"})
    ```

    From a URL: ``twilio://AC...:TOKEN@default?from=+15005550006`` (the user info is the
    account SID and auth token; the host ``default`` stands for "no host").

Settings:
    * ``account_sid``: the account (``AC`` and 32 hex digits); it names the account in every
      request path.
    * ``auth_token`` (secret): authenticates requests (``account_sid:auth_token``) and is the
      key Twilio signs callbacks with. Optional with an API key, but callbacks cannot be
      verified without it.
    * ``api_key_sid`` and ``api_key_secret`` (secret): an API key (``SK...``) to authenticate
      with instead of the auth token.
    * ``sender``: the default ``From`` (a number, alphanumeric sender id or short code);
      ``whatsapp_sender``: the WhatsApp ``From``, when it differs. ``Message.sender`` wins.
    * ``messaging_service_sid``: a Messaging Service (``MG...``) to send through; needed for
      ``send_at``.
    * ``status_callback_url``: sent as ``StatusCallback`` with every message, with anysend's
      message id added as the query parameter ``anysend_message_id``.
    * ``content_sids``: WhatsApp (and SMS) content templates: ``ChatTemplate.name`` (or
      ``"name:language"``) to ContentSid (``HX...``).

The request (https://www.twilio.com/docs/messaging/api/message-resource): ``POST
/2010-04-01/Accounts/{account_sid}/Messages.json``, HTTP Basic auth, a form body with ``To``,
``From`` and/or ``MessagingServiceSid``, ``Body`` (or ``ContentSid`` and ``ContentVariables``
for a template), ``StatusCallback``, and ``ScheduleType=fixed`` with ``SendAt`` for
``send_at``. On WhatsApp, ``To`` and ``From`` get the ``whatsapp:`` prefix. Provider options
(``ValidityPeriod``, ``MediaUrl``, ``ShortenUrls``, ...) are added to the form verbatim: a list
repeats the key, a dict becomes JSON, ``None`` removes the key. Twilio answers ``201`` with the
Message resource; its ``sid`` is the receipt's ``provider_message_id``.

Limits and quirks:
    * Media goes by public URL only (``MediaUrl`` as a provider option); attachments with bytes
      are refused (``capabilities.attachments`` is off).
    * No idempotency key: an ambiguous timeout is never retried (the send ends ``unknown``).
    * Scheduling needs a Messaging Service (error 35118): ``send_at`` without
      ``messaging_service_sid`` (or an ``MG...`` sender) is refused before any request.
    * With a template, ``Body`` is left out: Twilio takes content from the ContentSid.
    * Callbacks may come as a ``POST`` form (the default) or, when the number or
      ``StatusCallbackMethod`` says so, as a ``GET`` query: both are read.
      :meth:`Twilio.webhook_response` answers an empty TwiML document, so that an incoming
      message gets no automatic reply (https://www.twilio.com/docs/api/twiml/sms/your_response:
      ``text/xml`` is read as TwiML, ``text/plain`` is sent back as a message).
    * Callbacks: ``X-Twilio-Signature`` signs no timestamp, so no replay window is possible;
      deduplicate on ``MessageSid`` and status (``DeliveryEvent.event_id``). The signature covers
      the full URL Twilio called: behind a proxy, give the public URL.
    * Status callbacks carry no event time (``RawDlrDoneDate`` has no time zone), so
      ``occurred_at`` is ``None``.
    * ``OptOutType`` comes only with a Messaging Service that has Advanced Opt-Out on.

Errors: :data:`ERROR_CODES` maps Twilio's ``code`` (https://www.twilio.com/docs/api/errors);
other codes fall back to the HTTP status (401/403 ``auth``, 429 ``rate_limited`` with
``Retry-After``, 5xx ``unavailable``). Statuses: :data:`STATUS_MAP`; ``failed`` with a
recipient or content reason (:data:`REASONS`) becomes ``rejected``, and error 30036 (validity
period) ``expired``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator, model_validator

from anysend import (
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
    InboundMessage,
    Media,
    OutboundMessage,
    ProviderError,
    Reason,
    Receipt,
    UnsupportedFeatureError,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    WebhookResponse,
    compare_signatures,
    error_from_response,
    response_body,
)

__all__ = [
    "ERROR_CODES",
    "EVENT_MAP",
    "MESSAGE_ID_PARAM",
    "REASONS",
    "SIGNATURE_HEADER",
    "STATUS_MAP",
    "TWIML_EMPTY",
    "Twilio",
    "TwilioSettings",
    "body_sha256",
    "sign",
]

#: The header carrying Twilio's signature.
SIGNATURE_HEADER = "X-Twilio-Signature"

#: The answer to every callback: an empty TwiML document (Twilio sends no reply).
TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

#: The query parameter added to ``StatusCallback`` that carries anysend's message id.
MESSAGE_ID_PARAM = "anysend_message_id"

#: Twilio's ``MessageStatus`` values and their statuses.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "scheduled": DeliveryStatus.SCHEDULED,
    "accepted": DeliveryStatus.ACCEPTED,
    "queued": DeliveryStatus.ACCEPTED,
    "sending": DeliveryStatus.ACCEPTED,
    "sent": DeliveryStatus.SENT,
    "partially_delivered": DeliveryStatus.SENT,  # not every part confirmed
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,  # WhatsApp read receipts
    "undelivered": DeliveryStatus.UNDELIVERABLE,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.CANCELED,
}

#: ``MessageStatus`` values of inbound messages: events, not outbound statuses.
EVENT_MAP: dict[str, EventType] = {
    "receiving": EventType.INBOUND,
    "received": EventType.INBOUND,
}

#: Twilio's error codes in API answers and their categories.
ERROR_CODES: dict[int, ErrorCategory] = {
    20003: ErrorCategory.AUTH,  # authentication failed
    20404: ErrorCategory.CONFIGURATION,  # no such resource (wrong account SID)
    20429: ErrorCategory.RATE_LIMITED,  # too many concurrent requests
    21211: ErrorCategory.INVALID_RECIPIENT,  # invalid To number
    21614: ErrorCategory.INVALID_RECIPIENT,  # To is not a mobile number
    21635: ErrorCategory.INVALID_RECIPIENT,  # To is a landline
    21610: ErrorCategory.OPTED_OUT,  # the recipient replied STOP
    21212: ErrorCategory.CONFIGURATION,  # invalid From number
    21606: ErrorCategory.CONFIGURATION,  # From cannot send to this destination
    21659: ErrorCategory.CONFIGURATION,  # From is not a Twilio number
    21408: ErrorCategory.CONFIGURATION,  # region not enabled (Geo Permissions)
    21608: ErrorCategory.CONFIGURATION,  # trial account: To not verified
    21612: ErrorCategory.CONFIGURATION,  # this To/From pair cannot be connected
    35118: ErrorCategory.CONFIGURATION,  # scheduling needs a Messaging Service
    21617: ErrorCategory.PAYLOAD_TOO_LARGE,  # Body longer than 1600 characters
    21658: ErrorCategory.PAYLOAD_TOO_LARGE,  # a parameter is too long
    30007: ErrorCategory.CONTENT_REJECTED,  # filtered by the carrier
    63016: ErrorCategory.CONTENT_REJECTED,  # WhatsApp: outside the 24-hour window
    63027: ErrorCategory.CONTENT_REJECTED,  # template missing for the language
    63028: ErrorCategory.CONTENT_REJECTED,  # template parameters do not match
}

#: Twilio's error codes in status callbacks (``ErrorCode``) and their reasons.
REASONS: dict[int, Reason] = {
    21211: Reason.INVALID_RECIPIENT,
    21614: Reason.INVALID_RECIPIENT,
    21635: Reason.INVALID_RECIPIENT,
    21610: Reason.OPTED_OUT,
    21408: Reason.POLICY_BLOCKED,
    30001: Reason.RATE_LIMITED,  # queue overflow
    30002: Reason.POLICY_BLOCKED,  # account suspended
    30003: Reason.RECIPIENT_UNREACHABLE,  # handset off or out of coverage
    30004: Reason.POLICY_BLOCKED,  # message blocked
    30005: Reason.UNKNOWN_RECIPIENT,  # unknown destination handset
    30006: Reason.INVALID_RECIPIENT,  # landline or unreachable carrier
    30007: Reason.CONTENT_REJECTED,  # carrier filtering
    30036: Reason.TIMED_OUT,  # validity period expired
    63014: Reason.BLOCKED_BY_RECIPIENT,  # blocked by the user
    63016: Reason.OUTSIDE_MESSAGING_WINDOW,  # WhatsApp 24-hour window closed
    63018: Reason.RATE_LIMITED,  # channel rate limit
    63024: Reason.INVALID_RECIPIENT,  # invalid WhatsApp recipient
    63027: Reason.TEMPLATE_ERROR,
    63028: Reason.TEMPLATE_ERROR,
}

#: Error codes that fix the status whatever ``MessageStatus`` says.
STATUS_BY_ERROR: dict[int, DeliveryStatus] = {30036: DeliveryStatus.EXPIRED}

#: Reasons that make a ``failed`` message ``rejected``: refused, never attempted.
REJECTING_REASONS = frozenset(
    {
        Reason.INVALID_RECIPIENT,
        Reason.UNKNOWN_RECIPIENT,
        Reason.OPTED_OUT,
        Reason.BLOCKED_BY_RECIPIENT,
        Reason.POLICY_BLOCKED,
        Reason.CONTENT_REJECTED,
        Reason.OUTSIDE_MESSAGING_WINDOW,
        Reason.TEMPLATE_ERROR,
    }
)

#: Channel-address prefixes (``whatsapp:+1555...``) and their channels.
_PREFIXES = {"whatsapp": Channel.WHATSAPP, "messenger": Channel.MESSENGER}
_ACCOUNT_SID = re.compile(r"AC[0-9a-fA-F]{32}")
_API_KEY_SID = re.compile(r"SK[0-9a-fA-F]{32}")
_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
_DEFAULT_PORTS = {"https": 443, "http": 80}
#: At most this many media items are read from one inbound message (Twilio sends up to 10).
_MAX_MEDIA = 20


def sign(url: str, params: Iterable[tuple[str, str]] | Mapping[str, str], auth_token: str) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a request.

    Args:
        url: the full URL Twilio called (with a ``bodySHA256`` query for JSON bodies).
        params: the POST form fields (pairs, so a repeated name keeps every value); none for
            JSON bodies and GET requests.
        auth_token: the account's auth token.

    Returns:
        Base64 of HMAC-SHA1, keyed with the auth token, of the URL followed by every field's
        name and value, sorted by name and then by value.
    """
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    return _signature(url, _signed_params(pairs), auth_token.encode())


def _signed_params(pairs: Iterable[tuple[str, str]]) -> str:
    """The part of the signed text after the URL: every name and value, sorted."""
    return "".join(name + value for name, value in sorted(pairs))


def _signature(url: str, signed_params: str, key: bytes) -> str:
    digest = hmac.new(key, (url + signed_params).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def body_sha256(body: bytes) -> str:
    """The ``bodySHA256`` query value of a JSON-bodied callback: SHA-256 hex of the body."""
    return hashlib.sha256(body).hexdigest()


class TwilioSettings(ProviderSettings):
    """Settings of :class:`Twilio`.

    Attributes:
        account_sid: the account SID (``AC...``).
        auth_token: the auth token (secret); signs callbacks.
        api_key_sid: an API key SID (``SK...``) to authenticate with instead.
        api_key_secret: the API key's secret.
        sender: the default ``From``.
        whatsapp_sender: the ``From`` on WhatsApp (defaults to ``sender``).
        messaging_service_sid: a Messaging Service SID (``MG...``).
        status_callback_url: the ``StatusCallback`` URL sent with every message.
        content_sids: template names (or ``"name:language"``) to ContentSids (``HX...``).
    """

    account_sid: str
    auth_token: SecretStr | None = None
    api_key_sid: str | None = None
    api_key_secret: SecretStr | None = None
    sender: str | None = None
    whatsapp_sender: str | None = None
    messaging_service_sid: str | None = None
    status_callback_url: str | None = None
    content_sids: dict[str, str] = Field(default_factory=dict)

    @field_validator("account_sid")
    @classmethod
    def _account_sid(cls, value: str) -> str:
        if not _ACCOUNT_SID.fullmatch(value):
            raise ValueError("account_sid must be 'AC' followed by 32 hex digits")
        return value

    @field_validator("api_key_sid")
    @classmethod
    def _api_key_sid(cls, value: str | None) -> str | None:
        if value is not None and not _API_KEY_SID.fullmatch(value):
            raise ValueError("api_key_sid must be 'SK' followed by 32 hex digits")
        return value

    @field_validator("messaging_service_sid")
    @classmethod
    def _service_sid(cls, value: str | None) -> str | None:
        if value is not None and not _SERVICE_SID.fullmatch(value):
            raise ValueError("messaging_service_sid must be 'MG' followed by 32 hex digits")
        return value

    @field_validator("status_callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("status_callback_url must be an absolute http(s) URL")
            if "#" in value:  # how Twilio signs a URL with connection overrides is undocumented
                raise ValueError("status_callback_url cannot have a fragment (#...)")
        return value

    @field_validator("content_sids")
    @classmethod
    def _content_sids(cls, value: dict[str, str]) -> dict[str, str]:
        for name, sid in value.items():
            if not _CONTENT_SID.fullmatch(sid):
                raise ValueError(f"content_sids[{name!r}] must be 'HX' followed by 32 hex digits")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> TwilioSettings:
        if (self.api_key_sid is None) != (self.api_key_secret is None):
            raise ValueError("api_key_sid and api_key_secret go together")
        if self.auth_token is None and self.api_key_sid is None:
            raise ValueError("give auth_token, or api_key_sid with api_key_secret")
        return self


class Twilio(Provider):
    """Sends SMS and WhatsApp messages through Twilio and reads its callbacks.

    Attributes:
        error_codes: Twilio's error codes and their categories (:data:`ERROR_CODES`).
    """

    name: ClassVar[str] = "twilio"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS, Channel.WHATSAPP})
    capabilities: ClassVar[Capabilities] = Capabilities(
        send_at=True, chat_templates=True, webhooks=True, inbound=True
    )
    Settings: ClassVar[type[ProviderSettings]] = TwilioSettings
    default_base_url: ClassVar[str | None] = "https://api.twilio.com"
    url_fields: ClassVar[dict[str, str]] = {"username": "account_sid", "password": "auth_token"}
    webhook_methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST"})
    error_codes: ClassVar[dict[int, ErrorCategory]] = ERROR_CODES
    settings: TwilioSettings

    # -- sending ------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse a message without a sender, an unknown template, or unservable send_at."""
        super().check_supported(message)
        if self._sender(message) is None and self.settings.messaging_service_sid is None:
            raise self._config_error("twilio has no sender: set sender or messaging_service_sid")
        if message.chat_template is not None:
            self._content_sid(message)
        if message.send_at is not None and not self._has_service(message):
            raise UnsupportedFeatureError(
                "twilio schedules messages only through a Messaging Service",
                provider=self.name,
                feature="send_at",
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The form POST to the Messages resource."""
        return httpx.Request(
            "POST",
            f"{self.default_base_url}/2010-04-01/Accounts/{self.settings.account_sid}"
            "/Messages.json",
            data=self.form(message),
            headers={"Authorization": self._basic_auth()},
        )

    def form(self, message: OutboundMessage) -> dict[str, str | list[str]]:
        """The form fields of the request for ``message``, in order."""
        whatsapp = message.channel is Channel.WHATSAPP
        form: dict[str, str | list[str]] = {"To": _address(message.to, whatsapp)}
        sender = self._sender(message)
        if sender is not None:
            form["From"] = _address(sender, whatsapp)
        if self.settings.messaging_service_sid is not None:
            form["MessagingServiceSid"] = self.settings.messaging_service_sid
        template = message.chat_template
        if template is not None:
            form["ContentSid"] = self._content_sid(message)
            if template.parameters:
                form["ContentVariables"] = _content_variables(template.parameters)
        elif message.text is not None:
            form["Body"] = message.text
        if self.settings.status_callback_url is not None:
            form["StatusCallback"] = _with_query(
                self.settings.status_callback_url, MESSAGE_ID_PARAM, message.id
            )
        if message.send_at is not None:
            when = message.send_at
            when = when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when
            form["ScheduleType"] = "fixed"
            form["SendAt"] = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for key, value in message.provider_options.items():
            if value is None:
                form.pop(str(key), None)
            else:
                form[str(key)] = _form_value(value)
        return form

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for 2xx; otherwise a ProviderError by Twilio's ``code``."""
        body = response_body(response)
        if response.is_success and isinstance(body, dict):
            status = body.get("status")
            code = _int(body.get("error_code"))
            if status == "failed" and code is not None:
                raise self._error(response, code, body.get("error_message"))
            sid = body.get("sid")
            mapped = STATUS_MAP.get(status) if isinstance(status, str) else None
            if mapped is None or not (mapped.is_success or mapped is DeliveryStatus.SCHEDULED):
                mapped = DeliveryStatus.ACCEPTED
            return Receipt(
                provider_message_id=sid if isinstance(sid, str) else None, status=mapped, raw=body
            )
        if response.is_success:
            raw = body if isinstance(body, (dict, list, str)) and body != "" else None
            return Receipt(raw=raw)
        code = _int(body.get("code")) if isinstance(body, dict) else None
        text = body.get("message") if isinstance(body, dict) else None
        raise self._error(response, code, text)

    # -- callbacks ----------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check ``X-Twilio-Signature`` with the auth token (no timestamp: no replay window).

        The URL is tried as given and with its port added or removed, as Twilio may sign
        either. A URL with ``bodySHA256`` (JSON bodies) is checked against the body's hash and
        signed without parameters; a GET callback is signed by its URL alone.

        Raises:
            WebhookVerificationError: no auth token is set, or the signature is missing or
                does not match.
        """
        if self.settings.auth_token is None:
            raise WebhookVerificationError("twilio needs auth_token to verify callbacks")
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise WebhookVerificationError(f"twilio callback has no {SIGNATURE_HEADER} header")
        query = request.query_params()
        params: list[tuple[str, str]] = []
        if "bodySHA256" in query:
            if not compare_signatures(body_sha256(request.body), query["bodySHA256"][0]):
                raise WebhookVerificationError("twilio callback body does not match bodySHA256")
        elif request.method.upper() != "GET":
            try:
                params = request.form_pairs()  # parsed once: parse_webhook_events reuses it
            except WebhookParseError:
                raise WebhookVerificationError("twilio callback form is not UTF-8") from None
        key = self.settings.auth_token.get_secret_value().encode()
        signed_params = _signed_params(params)
        given = given.strip()
        # Each URL variant is signed only if the ones before it did not match.
        for url in _url_variants(request.url):
            if compare_signatures(_signature(url, signed_params, key), given):
                return
        raise WebhookVerificationError("twilio callback signature does not match")

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """A DeliveryEvent per status callback; an InboundMessage (and opt-out event) per SMS."""
        fields = _fields(request)
        raw_status = fields.get("MessageStatus")
        is_inbound = raw_status is None or raw_status in EVENT_MAP
        if is_inbound and ("Body" in fields or "NumMedia" in fields):
            return self._inbound(fields)
        if raw_status is None:
            raise WebhookParseError("twilio callback has neither MessageStatus nor Body")
        sid = fields.get("MessageSid") or fields.get("SmsSid")
        if not sid:
            raise WebhookParseError("twilio status callback has no MessageSid")
        code = _int(fields.get("ErrorCode"))
        reason = REASONS.get(code, Reason.OTHER) if code else None
        status = STATUS_MAP.get(raw_status, DeliveryStatus.UNKNOWN)
        if code is not None and code in STATUS_BY_ERROR and status.is_terminal:
            status = STATUS_BY_ERROR[code]
        elif status is DeliveryStatus.FAILED and reason in REJECTING_REASONS:
            status = DeliveryStatus.REJECTED
        to = fields.get("To")
        channel = _channel(to, fields.get("ChannelPrefix"))
        event = EVENT_MAP.get(raw_status)
        ours = request.query_params().get(MESSAGE_ID_PARAM, ())
        return [
            DeliveryEvent(
                provider=self.name,
                provider_message_id=sid,
                message_id=next((value for value in ours if value), None),
                recipient=_strip(to) if to else None,
                channel=channel,
                status=None if event else status,
                event=event,
                raw_status=raw_status,
                reason=reason,
                description=fields.get("ErrorMessage") or None,
                event_id=f"{sid}:{raw_status}",
                raw=fields,
            )
        ]

    def webhook_response(
        self, request: WebhookRequest, events: list[DeliveryEvent | InboundMessage]
    ) -> WebhookResponse:
        """An empty TwiML document as ``text/xml``: acknowledged, and no automatic reply.

        Twilio reads the answer to an incoming-message webhook as instructions: a plain-text
        body would be sent back to the sender as a reply, and a body that is not TwiML shows
        up as an error in Twilio's debugger. Status callbacks ignore the body, so every
        callback gets the same answer.
        """
        return WebhookResponse(body=TWIML_EMPTY, content_type="text/xml")

    def _inbound(self, fields: dict[str, str]) -> list[DeliveryEvent | InboundMessage]:
        sender = fields.get("From")
        if not sender:
            raise WebhookParseError("twilio incoming message has no From")
        channel = _channel(sender, fields.get("ChannelPrefix"))
        sid = fields.get("MessageSid") or fields.get("SmsMessageSid") or fields.get("SmsSid")
        to = fields.get("To")
        media = []
        for index in range(min(_int(fields.get("NumMedia")) or 0, _MAX_MEDIA)):
            url = fields.get(f"MediaUrl{index}")
            if url:
                content_type = fields.get(f"MediaContentType{index}") or None
                media.append(Media(url=url, content_type=content_type))
        events: list[DeliveryEvent | InboundMessage] = [
            InboundMessage(
                provider=self.name,
                channel=channel,
                sender=_strip(sender),
                recipient=_strip(to) if to else None,
                text=fields.get("Body"),
                media=tuple(media),
                provider_message_id=sid,
                in_reply_to=fields.get("OriginalRepliedMessageSid") or None,
                raw=fields,
            )
        ]
        opt = (fields.get("OptOutType") or "").upper()
        if opt in ("STOP", "START"):
            events.append(
                DeliveryEvent(
                    provider=self.name,
                    provider_message_id=sid,
                    recipient=_strip(sender),
                    channel=channel,
                    event=EventType.OPTED_OUT if opt == "STOP" else EventType.OPTED_IN,
                    raw_status=opt,
                    reason=Reason.OPTED_OUT if opt == "STOP" else None,
                    event_id=f"{sid}:{opt}" if sid else None,
                    raw=fields,
                )
            )
        return events

    # -- helpers ------------------------------------------------------------------------------

    def _sender(self, message: OutboundMessage) -> str | None:
        if message.sender:
            return message.sender
        if message.channel is Channel.WHATSAPP and self.settings.whatsapp_sender:
            return self.settings.whatsapp_sender
        return self.settings.sender

    def _has_service(self, message: OutboundMessage) -> bool:
        sender = self._sender(message) or ""
        return self.settings.messaging_service_sid is not None or bool(
            _SERVICE_SID.fullmatch(sender)
        )

    def _content_sid(self, message: OutboundMessage) -> str:
        template = message.chat_template
        assert template is not None
        sids = self.settings.content_sids
        found = sids.get(f"{template.name}:{template.language}") or sids.get(template.name)
        if found is None and _CONTENT_SID.fullmatch(template.name):
            found = template.name
        if found is None:
            raise self._config_error(
                f"twilio has no ContentSid for template {template.name!r} (see content_sids)"
            )
        return found

    def _basic_auth(self) -> str:
        settings = self.settings
        if settings.api_key_sid is not None and settings.api_key_secret is not None:
            user, secret = settings.api_key_sid, settings.api_key_secret
        else:
            assert settings.auth_token is not None  # the settings validator ensures it
            user, secret = settings.account_sid, settings.auth_token
        pair = f"{user}:{secret.get_secret_value()}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")

    def _config_error(self, text: str) -> ProviderError:
        return ProviderError(text, category=ErrorCategory.CONFIGURATION, provider=self.name)

    def _error(self, response: httpx.Response, code: int | None, text: object) -> ProviderError:
        category = self.error_codes.get(code) if code is not None else None
        words = text if isinstance(text, str) and text else None
        return error_from_response(
            response,
            self.name,
            message=f"twilio refused the message: {words}" if words else None,
            category=category,
            code=str(code) if code is not None else None,
        )


# -- module helpers --------------------------------------------------------------------------------


def _address(address: str, whatsapp: bool) -> str:
    """``address`` with the ``whatsapp:`` prefix on WhatsApp (kept when already there)."""
    if whatsapp and not address.startswith("whatsapp:"):
        return f"whatsapp:{address}"
    return address


def _strip(address: str) -> str:
    """An address without its channel prefix (``whatsapp:+1555...`` -> ``+1555...``)."""
    prefix, colon, rest = address.partition(":")
    return rest if colon and prefix in _PREFIXES else address


def _channel(address: str | None, prefix: str | None) -> Channel:
    """The channel of an address by its prefix (or Twilio's ``ChannelPrefix``); SMS else."""
    if prefix and prefix in _PREFIXES:
        return _PREFIXES[prefix]
    head, colon, _ = (address or "").partition(":")
    return _PREFIXES.get(head, Channel.SMS) if colon else Channel.SMS


def _content_variables(parameters: list[Any] | dict[str, Any]) -> str:
    """``ContentVariables`` JSON: positional parameters become ``{"1": ..., "2": ...}``."""
    pairs = (
        {str(k): v for k, v in parameters.items()}
        if isinstance(parameters, dict)
        else {str(i): v for i, v in enumerate(parameters, start=1)}
    )
    values = {k: v if isinstance(v, str) else json.dumps(v) for k, v in pairs.items()}
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def _form_value(value: object) -> str | list[str]:
    """A provider option as form text: lists repeat, dicts are JSON, bools lower-case."""
    if isinstance(value, (list, tuple)):
        return [str(_form_value(item)) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value)


def _with_query(url: str, name: str, value: str) -> str:
    """``url`` (without a fragment) with ``name=value`` added to its query."""
    joiner = "&" if urlsplit(url).query else ("" if url.endswith("?") else "?")
    return url + joiner + urlencode({name: value})


def _int(value: object) -> int | None:
    """An integer error code from Twilio's JSON or form text, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _url_variants(url: str) -> list[str]:
    """``url`` without and with its port: Twilio may sign either (as its SDKs check)."""
    parts = urlsplit(url)
    start = url.find("//") + 2
    netloc = parts.netloc
    if start < 2 or url[start : start + len(netloc)] != netloc or not netloc:
        return [url]
    head, tail = url[:start], url[start + len(netloc) :]
    try:
        port = parts.port
    except ValueError:
        return [url]
    if port is None:
        default = _DEFAULT_PORTS.get(parts.scheme.lower())
        return [url] if default is None else [url, f"{head}{netloc}:{default}{tail}"]
    return [f"{head}{netloc[: netloc.rfind(':')]}{tail}", url]


def _fields(request: WebhookRequest) -> dict[str, str]:
    """The callback's fields: the form body, a JSON object body, or a GET query."""
    if any(request.query_params().get("bodySHA256", ())):
        data = request.json_body()
        if not isinstance(data, dict):
            raise WebhookParseError("twilio JSON callback body is not an object")
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    if not request.body and request.method.upper() == "GET":
        return {key: values[0] for key, values in request.query_params().items()}
    return request.form_body()
