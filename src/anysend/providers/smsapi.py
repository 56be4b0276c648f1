"""``SMSAPI``: SMS through SMSAPI (smsapi.pl, smsapi.com), with its delivery reports and MO SMS.

Sends each message with ``POST https://api.smsapi.pl/sms.do`` (or ``api.smsapi.com``) with
``Authorization: Bearer <OAuth token>`` and a form body (``to``, ``from``, ``message``,
``format=json``, ``encoding=utf-8``, ``idx``, ``check_idx=1``, ``notify_url``), and reads the
delivery reports (GET callbacks, possibly several per request) and inbound messages (POST
forms) SMSAPI sends. [SMSAPI documentation](https://www.smsapi.pl/docs) (sections "Wysyłka
SMS", "Raporty Callback", "Odbiory Wiadomości", "Kody błędów");
[smsapi.com](https://www.smsapi.com/docs).

Example:
    ```python
    import anysend
    from anysend.providers.smsapi import SMSAPI

    smsapi = SMSAPI(
        token="...",
        sender="Sklep",
        callback_url="https://app.example.com/hooks/smsapi/3f9c0c1e8b2a4d6f9e7a",
        callback_secret="3f9c0c1e8b2a4d6f9e7a",
    )
    with anysend.Client([smsapi]) as client:
        client.send(anysend.Message(text="Paczka w drodze"), to={"phone": "+48600700800"})
    ```

Settings:
    * ``token`` (secret): the OAuth token from the customer portal. URL form:
      ``smsapi://:TOKEN@default?from=Sklep&region=com``.
    * ``region``: ``"pl"`` (``https://api.smsapi.pl``, the default) or ``"com"``
      (``https://api.smsapi.com``); an account lives on one of them.
    * ``sender``: the default sender name (``from``), registered in the portal;
      ``Message.sender`` wins. Without one SMSAPI uses the account's default.
    * ``callback_url`` (secret, as it carries the secret below): sent as ``notify_url`` with
      every message (else the URL set in the portal is used). ``callback_secret`` (secret,
      16 or more URL-safe characters) must be part of it, as a path segment or a ``token``
      query parameter.
    * ``normalize``: send ``normalize=1`` (SMSAPI replaces diacritics, keeping GSM-7).

Limits and quirks:
    * ``idx`` is anysend's message id (the same on every retry) and ``check_idx=1`` makes
      SMSAPI refuse a second message with it (error 53), so a retry after an ambiguous
      timeout cannot send twice (``capabilities.idempotency``). Error 53 is read as "already
      accepted": the receipt has status ``accepted`` and no provider id (the callbacks carry
      ``idx``, which becomes :attr:`DeliveryEvent.message_id`).
    * ``send_at`` is sent as ``date`` (unix seconds; a naive datetime is taken as UTC) with
      ``date_validate=1``; the receipt is then ``scheduled``.
    * SMSAPI reports many errors in an HTTP 200 body (``{"error": 13, "message": ...}``): every
      answer is checked for an ``error`` code, also inside ``list`` entries.
    * ``to`` is sent as digits without ``+``; numbers in callbacks come without ``+`` and are
      given back in E.164. ``provider_options`` are added to the form verbatim
      (``expiration_date``, ``max_parts``, ``fast``, ``test``...; ``True``/``False`` as 1/0).

Callbacks: SMSAPI signs nothing. The endpoint is protected by the secret in its URL:
:meth:`SMSAPI.verify_webhook` checks, in constant time, that a path segment or the ``token``
query parameter equals ``callback_secret``. Delivery reports may be batched (comma-separated
lists in every parameter) and give one event each; they carry no event id, so ``event_id`` is
``MsgId:status:donedate``. The endpoint must answer with the text ``OK``
(:meth:`SMSAPI.webhook_response`), or SMSAPI calls again.

Errors: :data:`ERROR_CODES` maps SMSAPI's error codes; an unknown code falls back to the HTTP
status (401/403 ``auth``, 429 ``rate_limited``, 5xx ``unavailable``), then ``unknown``.

Statuses: :data:`STATUS_MAP` (numeric codes, named in :data:`STATUS_NAMES`), with reasons in
:data:`REASONS`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import httpx
from pydantic import ConfigDict, SecretStr, field_validator, model_validator

from anysend import (
    Channel,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    InboundMessage,
    OutboundMessage,
    ProviderError,
    Reason,
    Receipt,
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
    "BASE_URLS",
    "ERROR_CODES",
    "IDX_ALREADY_USED",
    "REASONS",
    "SECRET_PARAM",
    "SMSAPI",
    "STATUS_MAP",
    "STATUS_NAMES",
    "SMSAPISettings",
]

#: The API of each platform.
BASE_URLS: dict[str, str] = {"pl": "https://api.smsapi.pl", "com": "https://api.smsapi.com"}

#: The query parameter that may carry ``callback_secret`` (instead of a path segment).
SECRET_PARAM = "token"  # noqa: S105 - a parameter name, not a secret

#: The error code for "a message with this idx was already sent" (with ``check_idx=1``).
IDX_ALREADY_USED = "53"

#: SMSAPI's error codes (``{"error": <code>}``) and their categories.
ERROR_CODES: dict[str, ErrorCategory] = {
    "7": ErrorCategory.CONFIGURATION,  # short links disabled on the account
    "8": ErrorCategory.UNKNOWN,  # error in request (please report)
    "11": ErrorCategory.CONTENT_REJECTED,  # too long, empty, or special chars with nounicode
    "12": ErrorCategory.PAYLOAD_TOO_LARGE,  # more parts than max_parts
    "13": ErrorCategory.INVALID_RECIPIENT,  # no valid numbers (invalid or blacklisted)
    "14": ErrorCategory.CONFIGURATION,  # wrong sender name
    "17": ErrorCategory.CONTENT_REJECTED,  # flash message with special characters
    "18": ErrorCategory.CONTENT_REJECTED,  # invalid number of parameters
    "25": ErrorCategory.CONFIGURATION,  # normalize and datacoding together
    "50": ErrorCategory.CONTENT_REJECTED,  # scheduled more than 3 months ahead
    "52": ErrorCategory.RATE_LIMITED,  # more than 10 messages to one number in 60 s
    "54": ErrorCategory.CONTENT_REJECTED,  # wrong date format
    "56": ErrorCategory.CONTENT_REJECTED,  # expiration_date too close or too far
    "57": ErrorCategory.OPTED_OUT,  # the number is blacklisted for this user
    "59": ErrorCategory.OPTED_OUT,  # the number is on the opt-out list
    "70": ErrorCategory.CONFIGURATION,  # invalid notify_url
    "74": ErrorCategory.CONFIGURATION,  # sending time outside the account's restrictions
    "76": ErrorCategory.CONTENT_REJECTED,  # invalid characters in parameters
    "94": ErrorCategory.CONFIGURATION,  # links not allowed on the account
    "98": ErrorCategory.CONFIGURATION,  # account restricted to its own number
    "101": ErrorCategory.AUTH,  # invalid authorization info
    "102": ErrorCategory.AUTH,  # invalid username or password
    "103": ErrorCategory.QUOTA,  # insufficient credits
    "104": ErrorCategory.CONFIGURATION,  # no such template
    "105": ErrorCategory.AUTH,  # wrong IP address (IP filter)
    "110": ErrorCategory.CONFIGURATION,  # action not allowed for the account
    "112": ErrorCategory.CONFIGURATION,  # destination country restricted on the account
    "200": ErrorCategory.UNAVAILABLE,  # unsuccessful message submission
    "201": ErrorCategory.UNAVAILABLE,  # system internal error
    "202": ErrorCategory.RATE_LIMITED,  # too many simultaneous requests
    "203": ErrorCategory.RATE_LIMITED,  # too many requests
    "401": ErrorCategory.AUTH,  # the token lacks the permission
    "999": ErrorCategory.UNAVAILABLE,  # system internal error
}

#: Delivery-report status codes (``status``) and what they mean in anysend's vocabulary.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "401": DeliveryStatus.UNKNOWN,  # NOT_FOUND: wrong id, or the report expired
    "402": DeliveryStatus.EXPIRED,
    "403": DeliveryStatus.SENT,
    "404": DeliveryStatus.DELIVERED,
    "405": DeliveryStatus.UNDELIVERABLE,
    "406": DeliveryStatus.FAILED,
    "407": DeliveryStatus.REJECTED,
    "408": DeliveryStatus.UNKNOWN,
    "409": DeliveryStatus.ACCEPTED,  # QUEUE: waiting at SMSAPI
    "410": DeliveryStatus.SENT,  # ACCEPTED: taken by the operator
    "412": DeliveryStatus.CANCELED,  # STOP: the sending was stopped by the user
}

#: SMSAPI's names of the status codes (sent beside them as ``status_name``).
STATUS_NAMES: dict[str, str] = {
    "401": "NOT_FOUND",
    "402": "EXPIRED",
    "403": "SENT",
    "404": "DELIVERED",
    "405": "UNDELIVERED",
    "406": "FAILED",
    "407": "REJECTED",
    "408": "UNKNOWN",
    "409": "QUEUE",
    "410": "ACCEPTED",
    "412": "STOP",
}

#: Reasons for the failure statuses (SMSAPI's reports say no more than the status).
REASONS: dict[str, Reason] = {
    "402": Reason.TIMED_OUT,
    "405": Reason.OTHER,
    "406": Reason.OTHER,
    "407": Reason.OTHER,
}

_SECRET_CHARS = re.compile(r"[A-Za-z0-9._~-]{16,}")
_OK_TEXT = re.compile(r"OK:([^:\s]+)")
_ERROR_TEXT = re.compile(r"ERROR:\s*(\d+)")


class SMSAPISettings(ProviderSettings):
    """Settings of :class:`SMSAPI`.

    Attributes:
        token: the OAuth token (secret).
        region: ``"pl"`` or ``"com"``: the platform of the account.
        sender: the default sender name.
        callback_url: the ``notify_url`` sent with every message (secret: it carries
            ``callback_secret``).
        callback_secret: the secret the callback URL carries (secret).
        normalize: ask SMSAPI to replace diacritics.
    """

    model_config = ConfigDict(hide_input_in_errors=True)

    token: SecretStr
    region: Literal["pl", "com"] = "pl"
    sender: str | None = None
    callback_url: SecretStr | None = None
    callback_secret: SecretStr | None = None
    normalize: bool = False

    @field_validator("callback_url")
    @classmethod
    def _absolute_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("callback_url must be an absolute http(s) URL")
        return value

    @field_validator("callback_secret")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _SECRET_CHARS.fullmatch(value.get_secret_value()):
            raise ValueError("callback_secret needs 16 or more of A-Z a-z 0-9 . _ ~ -")
        return value

    @model_validator(mode="after")
    def _secret_in_url(self) -> SMSAPISettings:
        url, secret = self.callback_url, self.callback_secret
        if url and secret and not _carries(url.get_secret_value(), secret.get_secret_value()):
            raise ValueError(
                f"callback_url must carry callback_secret as a path segment or as "
                f"?{SECRET_PARAM}=..., or callbacks will be refused"
            )
        return self


class SMSAPI(Provider):
    """Sends SMS through SMSAPI and reads its delivery reports and inbound messages.

    Attributes:
        error_codes: SMSAPI's error codes and their categories (:data:`ERROR_CODES`).
    """

    name: ClassVar[str] = "smsapi"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.SMS})
    capabilities: ClassVar[Capabilities] = Capabilities(
        send_at=True, idempotency=True, webhooks=True, inbound=True
    )
    Settings: ClassVar[type[ProviderSettings]] = SMSAPISettings
    default_base_url: ClassVar[str | None] = BASE_URLS["pl"]
    url_fields: ClassVar[dict[str, str]] = {"password": "token"}
    error_codes: ClassVar[dict[str, ErrorCategory]] = ERROR_CODES
    webhook_methods: ClassVar[frozenset[str]] = frozenset({"GET", "POST"})
    settings: SMSAPISettings

    @property
    def base_url(self) -> str:
        """The API of the account's platform (``region``)."""
        return BASE_URLS[self.settings.region]

    # -- sending --------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse a message without text."""
        super().check_supported(message)
        if not message.text:
            raise ProviderError(
                "smsapi needs a text", category=ErrorCategory.CONTENT_REJECTED, provider=self.name
            )

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The form POST to ``/sms.do`` with the bearer token."""
        settings = self.settings
        form: dict[str, str] = {"to": message.to.lstrip("+")}
        sender = message.sender or settings.sender
        if sender:
            form["from"] = sender
        form.update(
            {
                "message": message.text or "",
                "format": "json",
                "encoding": "utf-8",
                "idx": message.id,
                "check_idx": "1",
            }
        )
        if settings.callback_url:
            form["notify_url"] = settings.callback_url.get_secret_value()
        if settings.normalize:
            form["normalize"] = "1"
        if message.send_at is not None:
            when = message.send_at
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            form["date"] = str(int(when.timestamp()))
            form["date_validate"] = "1"
        form.update({key: _form_value(value) for key, value in message.provider_options.items()})
        headers = {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
        return httpx.Request("POST", f"{self.base_url}/sms.do", data=form, headers=headers)

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for an accepted message; otherwise a ProviderError (even on HTTP 200)."""
        body = response_body(response)
        raw = body if isinstance(body, (dict, list, str)) and body != "" else None
        accepted = DeliveryStatus.SCHEDULED if message.send_at else DeliveryStatus.ACCEPTED
        if isinstance(body, str):  # the plain-text answer of format-less requests
            ok, error = _OK_TEXT.match(body.strip()), _ERROR_TEXT.match(body.strip())
            if ok and response.is_success:
                return Receipt(provider_message_id=ok.group(1), status=accepted, raw=raw)
            body = {"error": error.group(1), "message": body.strip()} if error else body
        code = _error_code(body)
        if code is None and isinstance(body, dict):
            items = body.get("list")
            first = items[0] if isinstance(items, list) and items else None
            if isinstance(first, dict):
                code = _error_code(first)
                if code is None and response.is_success:
                    found = first.get("id")
                    return Receipt(
                        provider_message_id=str(found) if found is not None else None,
                        status=accepted,
                        raw=raw,
                    )
        if code == IDX_ALREADY_USED:
            return Receipt(provider_message_id=None, status=accepted, raw=raw)
        text = body.get("message") if isinstance(body, dict) else None
        if code is None and response.is_success:
            raise ProviderError(
                "smsapi accepted the request but named no message",
                category=ErrorCategory.UNKNOWN,
                provider=self.name,
                status_code=response.status_code,
                raw=raw,
            )
        raise error_from_response(
            response,
            self.name,
            message=f"smsapi refused the message: {text}" if isinstance(text, str) else None,
            category=self.error_codes.get(code) if code else None,
            code=code,
        )

    # -- callbacks ------------------------------------------------------------------------------

    def webhook_response(
        self, request: WebhookRequest, events: list[DeliveryEvent | InboundMessage]
    ) -> WebhookResponse:
        """``200`` with the text ``OK``: SMSAPI repeats a callback that gets anything else."""
        return WebhookResponse(body=b"OK")

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check that the callback URL carries ``callback_secret`` (constant-time compare).

        Raises:
            WebhookVerificationError: no secret is configured, or the URL does not carry it.
        """
        secret = self.settings.callback_secret
        if secret is None:
            raise WebhookVerificationError("smsapi has no callback_secret to check callbacks")
        if not _carries(request.url, secret.get_secret_value()):
            raise WebhookVerificationError("smsapi callback URL does not carry the secret")

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """One DeliveryEvent per report (batches give several), or one InboundMessage."""
        params = _params(request)
        if "sms_from" in params:
            return [self._inbound(params)]
        if "MsgId" in params:
            return self._reports(params)
        raise WebhookParseError("smsapi callback has neither MsgId nor sms_from")

    def _reports(self, params: dict[str, str]) -> list[DeliveryEvent]:
        ids = params["MsgId"].split(",")
        columns = {key: value.split(",") for key, value in params.items()}
        if len(columns.get("status", [])) != len(ids):
            raise WebhookParseError("smsapi report has not one status per MsgId")
        events = []
        for index, provider_id in enumerate(ids):
            row = {
                key: values[index] if len(values) == len(ids) else values[0]
                for key, values in columns.items()
                if len(values) in (1, len(ids)) and key != SECRET_PARAM
            }
            code = row["status"].strip()
            if not provider_id or not code:
                raise WebhookParseError("smsapi report has an empty MsgId or status")
            done = row.get("donedate", "")
            events.append(
                DeliveryEvent(
                    provider=self.name,
                    provider_message_id=provider_id,
                    message_id=row.get("idx") or None,
                    recipient=_e164(row.get("to")),
                    channel=Channel.SMS,
                    status=STATUS_MAP.get(code, DeliveryStatus.UNKNOWN),
                    raw_status=code,
                    reason=REASONS.get(code),
                    description=row.get("status_name") or STATUS_NAMES.get(code),
                    occurred_at=_when(done),
                    event_id=f"{provider_id}:{code}:{done}",
                    raw=row,
                )
            )
        return events

    def _inbound(self, params: dict[str, str]) -> InboundMessage:
        sender = params["sms_from"]
        if not sender:
            raise WebhookParseError("smsapi inbound message has an empty sms_from")
        return InboundMessage(
            provider=self.name,
            channel=Channel.SMS,
            sender=_e164(sender) or sender,
            recipient=_e164(params.get("sms_to")),
            text=params.get("sms_text"),
            provider_message_id=params.get("MsgId") or None,
            received_at=_when(params.get("sms_date", "")),
            raw={k: v for k, v in params.items() if k != SECRET_PARAM},
        )


def _carries(url: str, secret: str) -> bool:
    """Whether a path segment or the ``token`` query parameter of ``url`` equals ``secret``."""
    parts = urlsplit(url)
    candidates = [unquote(segment) for segment in parts.path.split("/") if segment]
    candidates += [
        v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k == SECRET_PARAM
    ]
    matched = False
    for candidate in candidates:  # compare every candidate, so the time does not tell which
        matched |= compare_signatures(secret, candidate)
    return matched


def _params(request: WebhookRequest) -> dict[str, str]:
    """The query's parameters, then the form body's (which win)."""
    query = parse_qs(urlsplit(request.url).query, keep_blank_values=True)
    params = {key: values[0] for key, values in query.items()}
    if request.body:
        params.update(request.form_body())
    return params


def _error_code(body: object) -> str | None:
    """The ``error`` code of an answer or list entry, as a string (``None``: no error)."""
    if not isinstance(body, dict):
        return None
    code = body.get("error")
    if isinstance(code, bool) or code in (None, "", 0):
        return None
    if isinstance(code, (int, str)):
        return str(code).strip()
    return "?"


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _e164(number: str | None) -> str | None:
    """A callback's number (digits without ``+``) in E.164; other values as they are."""
    if not number:
        return None
    return f"+{number}" if number.isdigit() else number


def _when(value: str) -> datetime | None:
    """A unix time in seconds as an aware UTC datetime (``None`` when it is not one)."""
    try:
        return datetime.fromtimestamp(int(value), tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
