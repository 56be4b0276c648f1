"""``SES``: email through the Amazon SES API v2, with delivery events through Amazon SNS.

Each message is one ``SendEmail`` call, ``POST https://email.<region>.amazonaws.com/v2/email/
outbound-emails`` (`API reference
<https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_SendEmail.html>`_), signed with AWS
Signature Version 4 (service ``ses``) by anysend's own small signer, tested against AWS's
published test suite. Sending needs nothing beyond anysend; verifying SNS callbacks needs
``cryptography`` (``pip install "anysend[ses]"``).

Settings (:class:`SESSettings`): ``access_key_id``, ``secret_access_key`` and, for temporary
credentials, ``session_token``; ``region``; ``sender`` (the default ``From``);
``configuration_set`` (its event destinations publish the delivery events); ``endpoint_url``
(a FIPS or VPC endpoint instead of ``https://email.<region>.amazonaws.com``); for callbacks,
``topic_arns`` (the SNS topics accepted) and ``replay_window`` (300 s).

Example:
    ```python
    import anysend
    from anysend.providers.ses import SES

    ses = SES(
        access_key_id="AKIA...",
        secret_access_key="...",
        region="eu-west-1",
        sender="Shop <shop@example.com>",
        configuration_set="anysend-events",
        topic_arns=["arn:aws:sns:eu-west-1:123456789012:anysend-ses-events"],
    )
    with anysend.Client([ses]) as client:
        client.send(anysend.Message(subject="Hi", text="Hello"), to={"email": "ann@example.com"})
    ```

The request: JSON with ``FromEmailAddress``, ``Destination`` (``ToAddresses`` with the
recipient's name, ``CcAddresses``, ``BccAddresses``), ``ReplyToAddresses``,
``Content.Simple`` (``Subject``, ``Body.Text``, ``Body.Html``, ``Headers``), ``EmailTags``
(anysend's message id as ``anysend-id``, each metadata item as ``key=value``, each tag as
``tag=true``) and ``ConfigurationSetName``. A message with attachments or inline images, or
with headers the simple form cannot carry (more than 15, values that are not printable ASCII),
goes as ``Content.Raw``: the MIME message :func:`anysend._email.compose_email` builds, base64
encoded. ``provider_options["ses"]`` is merged into the top level of the body as given. The
answer ``{"MessageId": ...}`` is the receipt's ``provider_message_id``; SES events carry it as
``mail.messageId``.

Limits and quirks:
    * Tag names and values may hold only ASCII letters, digits, ``_`` and ``-`` (at most 256
      characters; `MessageTag
      <https://docs.aws.amazon.com/ses/latest/APIReference-V2/API_MessageTag.html>`_): a
      message with other metadata or tags skips this provider as ``unsupported``.
    * At most 40 MB per message, attachments and encoding included
      (`quotas <https://docs.aws.amazon.com/ses/latest/dg/quotas.html>`_): a larger one fails
      with ``payload_too_large`` before any request.
    * No idempotency key: an ambiguous timeout is not retried (the send ends ``unknown``).
    * No SMTPUTF8: an address with a non-ASCII local part is refused (``ContentError``).
    * The signature covers the host, so point the adapter elsewhere with ``endpoint_url``,
      not with the client's ``base_urls`` (which changes the host after signing).

Errors: SES names the error in the ``x-amzn-ErrorType`` header and the body's ``__type``;
:data:`ERROR_CODES` maps the names, then the shared HTTP status mapping applies (403 ``auth``,
429 ``rate_limited``, 5xx ``unavailable``). Secret values an AWS error echoes back (a
signature error quotes the canonical request) are replaced by ``***``.

Callbacks: SES event publishing (or identity notifications) to an SNS topic with an HTTPS
subscription. :meth:`SES.verify_webhook` checks the SNS signature (``SignatureVersion`` 1:
SHA1withRSA, 2: SHA256withRSA) over the documented string to sign, the topic against
``topic_arns``, and the ``Timestamp`` against ``replay_window``. The signing certificate is
fetched once by the application: :meth:`SES.certificate_request` returns the ``GET`` for a
certificate not cached yet (only from ``https://sns.<region>.amazonaws.com[.cn]/...pem``),
:meth:`SES.add_certificate` caches the answer. ``SubscriptionConfirmation`` messages parse into
no events; :meth:`SES.subscribe_url` gives the URL to confirm after full verification.

Status mapping (:data:`STATUS_MAP`, :data:`EVENT_MAP`; reasons :data:`REASONS`,
:data:`DELAY_REASONS`): ``Send`` accepted, ``Delivery`` delivered, ``DeliveryDelay`` deferred,
``Bounce`` undeliverable (a ``Transient`` bounce too: SES publishes it only once it stopped
retrying; a suppression-list bounce is rejected), ``Reject`` rejected, ``Rendering Failure``
failed; ``Open``, ``Click``, ``Complaint`` and ``Subscription`` are events. One event per
recipient the SES record names; unknown types are status ``unknown`` with the raw value kept.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from email.utils import formataddr
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
from pydantic import Field, SecretStr, field_validator

from anysend import (
    Channel,
    ConfigurationError,
    ContentError,
    DeliveryEvent,
    DeliveryStatus,
    ErrorCategory,
    EventType,
    InboundMessage,
    OutboundMessage,
    ProviderError,
    Reason,
    Receipt,
    UnsupportedFeatureError,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend._email import compose_email, parse_mailbox
from anysend._exceptions import redact_secrets
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    WebhookFlow,
    error_from_response,
    response_body,
)
from anysend.providers._sigv4 import Credentials, sign

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

__all__ = [
    "DELAY_REASONS",
    "ERROR_CODES",
    "EVENT_MAP",
    "MESSAGE_ID_TAG",
    "REASONS",
    "SES",
    "STATUS_MAP",
    "SESSettings",
    "sns_string_to_sign",
]

#: The path of ``SendEmail``.
SEND_PATH = "/v2/email/outbound-emails"
#: The ``EmailTags`` name that carries anysend's message id into SES events.
MESSAGE_ID_TAG = "anysend-id"
#: SES's limit on one message, attachments and base64 encoding included.
MAX_MESSAGE_BYTES = 40 * 1024 * 1024
#: How many SNS signing certificates one adapter keeps.
MAX_CERTIFICATES = 16

#: SES error names (``x-amzn-ErrorType``, ``__type``) and their categories.
ERROR_CODES: dict[str, ErrorCategory] = {
    "MessageRejected": ErrorCategory.CONTENT_REJECTED,
    "MailFromDomainNotVerifiedException": ErrorCategory.CONFIGURATION,
    "NotFoundException": ErrorCategory.CONFIGURATION,
    "AccountSuspendedException": ErrorCategory.CONFIGURATION,
    "SendingPausedException": ErrorCategory.CONFIGURATION,
    "LimitExceededException": ErrorCategory.QUOTA,
    "TooManyRequestsException": ErrorCategory.RATE_LIMITED,
    "ThrottlingException": ErrorCategory.RATE_LIMITED,
    "Throttling": ErrorCategory.RATE_LIMITED,
    "BadRequestException": ErrorCategory.UNKNOWN,
    "InvalidSignatureException": ErrorCategory.AUTH,
    "SignatureDoesNotMatch": ErrorCategory.AUTH,
    "IncompleteSignatureException": ErrorCategory.AUTH,
    "UnrecognizedClientException": ErrorCategory.AUTH,
    "InvalidClientTokenId": ErrorCategory.AUTH,
    "MissingAuthenticationTokenException": ErrorCategory.AUTH,
    "ExpiredTokenException": ErrorCategory.AUTH,
    "AccessDeniedException": ErrorCategory.AUTH,
    "InternalServiceErrorException": ErrorCategory.UNAVAILABLE,
    "InternalFailure": ErrorCategory.UNAVAILABLE,
    "ServiceUnavailable": ErrorCategory.UNAVAILABLE,
}

#: SES event types (``eventType``/``notificationType``) that move the delivery status.
STATUS_MAP: dict[str, DeliveryStatus] = {
    "Send": DeliveryStatus.ACCEPTED,
    "Delivery": DeliveryStatus.DELIVERED,
    "DeliveryDelay": DeliveryStatus.DEFERRED,
    "Bounce": DeliveryStatus.UNDELIVERABLE,
    "Reject": DeliveryStatus.REJECTED,
    "Rendering Failure": DeliveryStatus.FAILED,
}

#: SES event types that are events, not statuses.
EVENT_MAP: dict[str, EventType] = {
    "Open": EventType.OPENED,
    "Click": EventType.CLICKED,
    "Complaint": EventType.COMPLAINED,
    "Subscription": EventType.OPTED_OUT,
}

#: Bounces (``bounceType/bounceSubType``) and their reasons. ``Permanent/General`` is
#: ``unknown_recipient`` when the DSN status is ``5.1.x``, otherwise ``other``.
REASONS: dict[str, Reason] = {
    "Permanent/NoEmail": Reason.UNKNOWN_RECIPIENT,
    "Permanent/Suppressed": Reason.SUPPRESSED_BOUNCE,
    "Permanent/OnAccountSuppressionList": Reason.SUPPRESSED_BOUNCE,
    "Transient/General": Reason.RECIPIENT_UNREACHABLE,
    "Transient/MailboxFull": Reason.RECIPIENT_UNREACHABLE,
    "Transient/MessageTooLarge": Reason.CONTENT_REJECTED,
    "Transient/ContentRejected": Reason.CONTENT_REJECTED,
    "Transient/AttachmentRejected": Reason.CONTENT_REJECTED,
    "Undetermined/Undetermined": Reason.OTHER,
}

#: ``DeliveryDelay`` delay types and their reasons (others: ``other``).
DELAY_REASONS: dict[str, Reason] = {
    "MailboxFull": Reason.RECIPIENT_UNREACHABLE,
    "SpamDetected": Reason.CONTENT_REJECTED,
    "RecipientServerError": Reason.RECIPIENT_UNREACHABLE,
    "TransientCommunicationFailure": Reason.RECIPIENT_UNREACHABLE,
    "IPFailure": Reason.POLICY_BLOCKED,
    "SendingDeferral": Reason.RATE_LIMITED,
}

#: The detail field that describes an event, per event type.
_DESCRIPTIONS = {
    "Delivery": "smtpResponse",
    "Reject": "reason",
    "Rendering Failure": "errorMessage",
    "Click": "link",
}
#: The reason of event types that always have the same one.
_FIXED_REASONS = {"Reject": Reason.CONTENT_REJECTED, "Rendering Failure": Reason.TEMPLATE_ERROR}

#: Bounce subtypes that mean SES never tried to deliver (status ``rejected``).
_SUPPRESSED = frozenset({"Suppressed", "OnAccountSuppressionList"})

#: The fields of each SNS message type that its signature covers, in byte order.
SIGNED_FIELDS: dict[str, tuple[str, ...]] = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}

#: Where each event type keeps its details.
_DETAIL_KEYS = {
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Delivery": "delivery",
    "DeliveryDelay": "deliveryDelay",
    "Send": "send",
    "Reject": "reject",
    "Open": "open",
    "Click": "click",
    "Rendering Failure": "failure",
    "Subscription": "subscription",
}

_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]{1,2}", re.ASCII)
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]{1,256}", re.ASCII)
_SNS_HOST = re.compile(r"sns\.[a-z0-9-]{3,}\.amazonaws\.com(\.cn)?", re.ASCII)
_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}", re.ASCII)
_HEADER_VALUE = re.compile(r"[ -~]{1,870}", re.ASCII)
_CONFIGURATION_SET = re.compile(r"[A-Za-z0-9_-]{1,64}", re.ASCII)


def sns_string_to_sign(message: Mapping[str, Any]) -> str:
    r"""The string SNS signs for ``message`` (a parsed SNS JSON body).

    Each signed field that is present gives ``"<name>\\n<value>\\n"``, in the order of
    :data:`SIGNED_FIELDS` (`Verifying the signatures of Amazon SNS messages
    <https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html>`_).

    Raises:
        WebhookVerificationError: an unknown ``Type``, or a required field that is missing or
            not a string.
    """
    kind = message.get("Type")
    fields = SIGNED_FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise WebhookVerificationError(f"unknown SNS message type {kind!r}")
    parts: list[str] = []
    for name in fields:
        value = message.get(name)
        if value is None and name == "Subject":
            continue
        if not isinstance(value, str):
            raise WebhookVerificationError(f"the SNS message has no string {name!r}")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts)


def _check_sns_url(url: object, what: str, *, pem: bool) -> str:
    """``url`` normalised, when it is an https URL of an SNS host; raise otherwise."""
    if not isinstance(url, str) or not url:
        raise WebhookVerificationError(f"the SNS message has no {what}")
    try:
        parts = urlsplit(url)
    except ValueError:  # "https://[x": an unbalanced IPv6 bracket, a netloc NFKC changes
        raise WebhookVerificationError(f"the SNS {what} is not a URL: {url[:200]!r}") from None
    host = parts.hostname or ""
    if (
        parts.scheme != "https"
        or parts.netloc.lower() != host
        or not _SNS_HOST.fullmatch(host)
        or parts.fragment
        or (pem and (parts.query or not parts.path.endswith(".pem")))
    ):
        raise WebhookVerificationError(
            f"the SNS {what} is not an https URL of an Amazon SNS host: {url[:200]!r}"
        )
    query = f"?{parts.query}" if parts.query else ""
    return f"https://{host}{parts.path}{query}"


def _parse_time(value: object) -> datetime | None:
    """An ISO 8601 time (``2026-11-20T08:00:11.893Z``) as an aware datetime, or ``None``."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


def _strings(values: object) -> list[str]:
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class SESSettings(ProviderSettings):
    """Settings of :class:`SES`.

    Attributes:
        access_key_id: the AWS access key id.
        secret_access_key: the AWS secret access key.
        session_token: the session token of temporary credentials.
        region: the SES region, such as ``"eu-west-1"``.
        sender: the default ``From`` (``Message.sender`` wins).
        configuration_set: the configuration set every message uses (``ConfigurationSetName``).
        endpoint_url: an https endpoint instead of ``https://email.<region>.amazonaws.com``.
        topic_arns: the SNS topics whose messages ``verify_webhook`` accepts (none: all are
            refused).
        replay_window: seconds an SNS message's ``Timestamp`` may lie from now.
    """

    access_key_id: str = Field(min_length=1)
    secret_access_key: SecretStr
    session_token: SecretStr | None = None
    region: str
    sender: str | None = None
    configuration_set: str | None = None
    endpoint_url: str | None = None
    topic_arns: list[str] = Field(default_factory=list)
    replay_window: float = Field(default=300.0, gt=0, le=3600)

    @field_validator("access_key_id")
    @classmethod
    def _printable_key(cls, value: str) -> str:
        if not value.isascii() or not value.isalnum():
            raise ValueError("access_key_id holds only ASCII letters and digits")
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not _REGION.fullmatch(value):
            raise ValueError("region must be an AWS region name, such as 'eu-west-1'")
        return value

    @field_validator("sender")
    @classmethod
    def _one_sender(cls, value: str | None) -> str | None:
        if value is not None:
            parse_mailbox(value, "sender")
        return value

    @field_validator("configuration_set")
    @classmethod
    def _configuration_set(cls, value: str | None) -> str | None:
        if value is not None and not _CONFIGURATION_SET.fullmatch(value):
            raise ValueError("configuration_set holds 1 to 64 letters, digits, '_' or '-'")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _https_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("endpoint_url must be an https URL without query")
        return value.rstrip("/")

    @field_validator("topic_arns")
    @classmethod
    def _topic_arns(cls, value: list[str]) -> list[str]:
        for arn in value:
            if not _TOPIC_ARN.fullmatch(arn):
                raise ValueError(f"{arn!r} is not an SNS topic ARN")
        return value


class SES(Provider):
    """Sends email through Amazon SES API v2 and reads SES events delivered by Amazon SNS.

    Attributes:
        now: the clock of the request signature and the replay window (override it per
            instance in tests: ``ses.now = lambda: 1_795_161_612.0``).
        error_codes: SES error names and their categories (:data:`ERROR_CODES`).
    """

    name: ClassVar[str] = "ses"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.EMAIL})
    capabilities: ClassVar[Capabilities] = Capabilities(
        html=True,
        attachments=True,
        inline_images=True,
        cc_bcc=True,
        reply_to=True,
        headers=True,
        metadata=True,
        tags=True,
        webhooks=True,
    )
    Settings: ClassVar[type[ProviderSettings]] = SESSettings
    url_fields: ClassVar[dict[str, str]] = {
        "username": "access_key_id",
        "password": "secret_access_key",
        "host": "region",
    }
    error_codes: ClassVar[dict[str, ErrorCategory]] = ERROR_CODES
    settings: SESSettings
    now: Callable[[], float] = time.time

    def __init__(self, settings: SESSettings | None = None, /, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._certificates: dict[str, Certificate] = {}

    @property
    def base_url(self) -> str:
        """Where requests go: ``endpoint_url``, or the region's SES endpoint."""
        return self.settings.endpoint_url or f"https://email.{self.settings.region}.amazonaws.com"

    # -- sending ----------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Also refuse metadata and tags that SES message tags cannot carry."""
        super().check_supported(message)
        self._tags(message)

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The signed ``SendEmail`` request for ``message``."""
        content = json.dumps(self.payload(message), ensure_ascii=False, separators=(",", ":"))
        request = httpx.Request(
            "POST",
            f"{self.base_url}{SEND_PATH}",
            content=content.encode("utf-8"),
            headers={"Content-Type": "application/json"},
        )
        credentials = Credentials(
            self.settings.access_key_id,
            self.settings.secret_access_key.get_secret_value(),
            self.settings.session_token.get_secret_value() if self.settings.session_token else None,
        )
        when = datetime.fromtimestamp(self.now(), tz=timezone.utc)
        return sign(request, credentials, region=self.settings.region, service="ses", when=when)

    def payload(self, message: OutboundMessage) -> dict[str, Any]:
        """The ``SendEmail`` JSON body for ``message`` (no I/O).

        Raises:
            ContentError: a header would be injected, a marketing message has no
                ``unsubscribe_url``, or an address needs SMTPUTF8.
            InvalidRecipientError: a to, cc or bcc address is malformed.
            ConfigurationError: no sender in the message or the settings.
            UnsupportedFeatureError: metadata or tags SES message tags cannot carry.
            ProviderError: the message is larger than 40 MB (``payload_too_large``).
        """
        composed = compose_email(message, self.settings.sender, adapter=self.name)
        if composed.smtputf8:
            raise ContentError("Amazon SES does not accept addresses with a non-ASCII local part")
        sender = parse_mailbox(message.sender or self.settings.sender or "", "sender")
        to = parse_mailbox(message.to, "to", display_name=message.recipient.name)
        destination = {"ToAddresses": [_address(to.header.display_name, to.envelope)]}
        for key, field, values in (
            ("CcAddresses", "cc", message.cc),
            ("BccAddresses", "bcc", message.bcc),
        ):
            if values:
                destination[key] = [parse_mailbox(v, field).envelope for v in values]
        body: dict[str, Any] = {
            "FromEmailAddress": _address(sender.header.display_name, sender.envelope),
            "Destination": destination,
        }
        if message.reply_to:
            body["ReplyToAddresses"] = [
                _address(m.header.display_name, m.envelope)
                for m in (parse_mailbox(v, "reply_to") for v in message.reply_to)
            ]
        headers = _simple_headers(message)
        if message.attachments or headers is None:
            data = base64.b64encode(composed.as_bytes()).decode("ascii")
            if len(data) > MAX_MESSAGE_BYTES:
                raise ProviderError(
                    f"the message is larger than Amazon SES's limit of {MAX_MESSAGE_BYTES} bytes",
                    category=ErrorCategory.PAYLOAD_TOO_LARGE,
                    provider=self.name,
                )
            body["Content"] = {"Raw": {"Data": data}}
        else:
            simple: dict[str, Any] = {
                "Subject": {"Data": message.subject or "", "Charset": "UTF-8"},
                "Body": {},
            }
            if message.text is not None or message.html is None:
                simple["Body"]["Text"] = {"Data": message.text or "", "Charset": "UTF-8"}
            if message.html is not None:
                simple["Body"]["Html"] = {"Data": message.html, "Charset": "UTF-8"}
            if headers:
                simple["Headers"] = headers
            body["Content"] = {"Simple": simple}
        body["EmailTags"] = [{"Name": name, "Value": value} for name, value in self._tags(message)]
        if self.settings.configuration_set:
            body["ConfigurationSetName"] = self.settings.configuration_set
        body.update(message.provider_options)
        return body

    def _tags(self, message: OutboundMessage) -> list[tuple[str, str]]:
        """The message tags: anysend's id, then metadata, then tags (refused when unfit)."""
        tags = [(MESSAGE_ID_TAG, message.id)]
        tags += list(message.metadata.items())
        tags += [(tag, "true") for tag in message.tags]
        seen: set[str] = set()
        for index, (name, value) in enumerate(tags):
            feature = "metadata" if index <= len(message.metadata) else "tags"
            if not (_TAG.fullmatch(name) and _TAG.fullmatch(value)):
                raise UnsupportedFeatureError(
                    f"ses message tags hold only ASCII letters, digits, '_' and '-' "
                    f"(1 to 256 characters): {name!r}={value!r} does not fit",
                    provider=self.name,
                    feature=feature,
                )
            if name in seen:
                raise UnsupportedFeatureError(
                    f"ses message tag {name!r} is given twice (metadata and tags share names)",
                    provider=self.name,
                    feature=feature,
                )
            seen.add(name)
        return tags

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for a 2xx; otherwise a ProviderError (see :data:`ERROR_CODES`)."""
        body = response_body(response)
        raw = body if isinstance(body, (dict, list, str)) and body != "" else None
        if response.is_success:
            found = body.get("MessageId") if isinstance(body, dict) else None
            return Receipt(provider_message_id=found if isinstance(found, str) else None, raw=raw)
        code, text = _error_code(response, body)
        error = error_from_response(
            response,
            self.name,
            message=f"ses refused the message: {code or response.status_code}: {text or ''}",
            category=self.error_codes.get(code) if code else None,
            code=code,
        )
        raise self._redact(error)

    def _redact(self, error: ProviderError) -> ProviderError:
        """``error`` with any secret setting an AWS answer echoed replaced by ``***``."""
        return redact_secrets(error, self.secrets())

    # -- callbacks --------------------------------------------------------------------------------

    def certificate_request(self, request: WebhookRequest) -> httpx.Request | None:
        """The ``GET`` of the SNS signing certificate ``request`` needs, if not cached yet.

        Pure: nothing is fetched. Send the request with any HTTP client and give the answer
        to :meth:`add_certificate`; then verify. The topic is checked first, so a message for
        another topic never makes the application fetch anything.

        Raises:
            WebhookVerificationError: the body is not an SNS message, its topic is not in
                ``topic_arns``, or ``SigningCertURL`` is not an https URL of an SNS host
                ending in ``.pem``.
        """
        envelope = self._envelope(request)
        url = _check_sns_url(envelope.get("SigningCertURL"), "SigningCertURL", pem=True)
        return None if url in self._certificates else httpx.Request("GET", url)

    def add_certificate(self, url: str, pem: bytes) -> None:
        """Cache the SNS signing certificate fetched from ``url``.

        Raises:
            WebhookVerificationError: ``url`` is not an SNS certificate URL, or ``pem`` is
                not a PEM certificate with an RSA key.
            ConfigurationError: ``cryptography`` is not installed.
        """
        x509, _, rsa, _ = _crypto()
        key = _check_sns_url(url, "SigningCertURL", pem=True)
        try:
            certificate = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise WebhookVerificationError(f"{key} did not answer a PEM certificate") from exc
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise WebhookVerificationError(f"the certificate at {key} has no RSA key")
        self._certificates.pop(key, None)
        self._certificates[key] = certificate
        while len(self._certificates) > MAX_CERTIFICATES:
            del self._certificates[next(iter(self._certificates))]

    def webhook_flow(self, request: WebhookRequest, *, verify: bool = True) -> WebhookFlow:
        """Fetch the signing certificate once if it is not cached, then verify and parse.

        ``client.parse_webhook("ses", request)`` drives this through the client's own HTTP
        pool, so an application needs no code of its own to fetch certificates.
        """
        if verify:
            fetch = self.certificate_request(request)
            if fetch is not None:
                response = yield fetch
                if response.status_code != 200:
                    raise WebhookVerificationError(
                        f"{fetch.url.host} answered HTTP {response.status_code} for the SNS "
                        "signing certificate"
                    )
                self.add_certificate(str(fetch.url), response.content)
        return self.parse_webhook(request, verify=verify)

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check the SNS signature, the topic, the certificate's dates and the timestamp.

        Raises:
            WebhookVerificationError: not a signed SNS message, a topic not in ``topic_arns``,
                headers that contradict the body, a certificate not cached yet (fetch it with
                :meth:`certificate_request`), a bad signature, or a ``Timestamp`` outside
                ``replay_window``.
        """
        _, hashes, rsa, padding = _crypto()
        envelope = self._envelope(request)
        url = _check_sns_url(envelope.get("SigningCertURL"), "SigningCertURL", pem=True)
        certificate = self._certificates.get(url)
        if certificate is None:
            raise WebhookVerificationError(
                f"the SNS signing certificate {url} is not cached yet: fetch it with "
                "certificate_request() and add it with add_certificate()"
            )
        version = envelope.get("SignatureVersion")
        algorithms = {"1": hashes.SHA1, "2": hashes.SHA256}
        algorithm = algorithms.get(version) if isinstance(version, str) else None
        if algorithm is None:
            raise WebhookVerificationError(f"unsupported SNS SignatureVersion {version!r}")
        try:
            signature = base64.b64decode(str(envelope.get("Signature") or ""), validate=True)
        except (binascii.Error, ValueError):
            raise WebhookVerificationError("the SNS Signature is not base64") from None
        if not signature:
            raise WebhookVerificationError("the SNS message has no Signature")
        text = sns_string_to_sign(envelope).encode("utf-8")
        key = certificate.public_key()
        assert isinstance(key, rsa.RSAPublicKey)  # checked by add_certificate
        try:
            key.verify(signature, text, padding.PKCS1v15(), algorithm())
        except Exception:  # cryptography's InvalidSignature, or a malformed signature
            raise WebhookVerificationError("the SNS signature does not match") from None
        now = self.now()
        valid_from = certificate.not_valid_before_utc.timestamp()
        valid_to = certificate.not_valid_after_utc.timestamp()
        if not valid_from <= now <= valid_to:
            raise WebhookVerificationError(f"the SNS signing certificate {url} is not valid now")
        sent = _parse_time(envelope.get("Timestamp"))
        if sent is None:
            raise WebhookVerificationError("the SNS Timestamp is not an ISO 8601 time")
        if abs(now - sent.timestamp()) > self.settings.replay_window:
            raise WebhookVerificationError(
                f"the SNS Timestamp is more than {self.settings.replay_window:g} seconds "
                "from now (a replay?)"
            )

    def subscribe_url(self, request: WebhookRequest) -> str | None:
        """The URL that confirms a verified ``SubscriptionConfirmation``; ``None`` otherwise.

        GETting it confirms the subscription: ``client.webhooks.handle`` does so (the
        adapter and ``client.parse_webhook`` never do), and only a topic in ``topic_arns``
        passes verification.

        Raises:
            WebhookVerificationError: as :meth:`verify_webhook`, or a ``SubscribeURL`` that
                is not an https URL of an SNS host confirming this topic.
        """
        self.verify_webhook(request)
        envelope = self._envelope(request)
        if envelope.get("Type") != "SubscriptionConfirmation":
            return None
        url = _check_sns_url(envelope.get("SubscribeURL"), "SubscribeURL", pem=False)
        query = parse_qs(urlsplit(url).query)
        if query.get("Action") != ["ConfirmSubscription"] or query.get("TopicArn") != [
            envelope.get("TopicArn")
        ]:
            raise WebhookVerificationError("the SubscribeURL does not confirm this topic")
        return url

    def _envelope(self, request: WebhookRequest) -> dict[str, Any]:
        """The SNS message, checked against the topic allowlist and the SNS headers."""
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookVerificationError("the callback is not an SNS JSON message") from None
        kind = data.get("Type") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(kind, str) or kind not in SIGNED_FIELDS:
            raise WebhookVerificationError("the callback is not an SNS message")
        if not self.settings.topic_arns:
            raise WebhookVerificationError("ses accepts no SNS topic: set topic_arns")
        topic = data.get("TopicArn")
        if topic not in self.settings.topic_arns:
            raise WebhookVerificationError(f"SNS topic {str(topic)[:200]!r} is not in topic_arns")
        for header, field in (
            ("x-amz-sns-message-type", "Type"),
            ("x-amz-sns-topic-arn", "TopicArn"),
            ("x-amz-sns-message-id", "MessageId"),
        ):
            given = request.header(header)
            if given is not None and given != data.get(field):
                raise WebhookVerificationError(f"the {header} header does not match the body")
        return data

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """The SES events of an SNS ``Notification``; none for (un)subscribe confirmations."""
        data = request.json_body()
        if not isinstance(data, dict):
            raise WebhookParseError("the SNS callback is not a JSON object")
        kind = data.get("Type")
        if kind in ("SubscriptionConfirmation", "UnsubscribeConfirmation"):
            return []
        if kind != "Notification":
            raise WebhookParseError(f"unknown SNS message type {str(kind)[:100]!r}")
        text = data.get("Message")
        if not isinstance(text, str):
            raise WebhookParseError("the SNS Notification has no string Message")
        try:
            record = json.loads(text)
        except ValueError:
            # SES checks a new event destination with a plain-text message.
            if text.startswith("Successfully validated SNS topic"):
                return []
            raise WebhookParseError("the SNS Message is not SES JSON") from None
        if not isinstance(record, dict):
            raise WebhookParseError("the SNS Message is not a JSON object")
        return self._events(record, data)

    def _events(self, record: dict[str, Any], envelope: dict[str, Any]) -> list[DeliveryEvent]:
        kind = record.get("eventType", record.get("notificationType"))
        if not isinstance(kind, str):
            raise WebhookParseError("the SES record has no eventType or notificationType")
        if kind == "AmazonSnsSubscriptionSucceeded":
            return []
        mail = _dict(record.get("mail"))
        detail = _dict(record.get(_DETAIL_KEYS.get(kind, "")))
        destination = _strings(mail.get("destination"))
        sns_id = (
            _text(envelope.get("MessageId"))
            or hashlib.sha256(str(envelope.get("Message")).encode("utf-8", "replace")).hexdigest()
        )
        occurred_at = (
            _parse_time(detail.get("timestamp"))
            or (_parse_time(mail.get("timestamp")) if kind == "Send" else None)
            or _parse_time(envelope.get("Timestamp"))
        )
        common: dict[str, Any] = {
            "provider": self.name,
            "provider_message_id": _text(mail.get("messageId")),
            "message_id": _anysend_id(mail),
            "channel": Channel.EMAIL,
            "raw_status": kind,
            "occurred_at": occurred_at,
            "raw": record,
        }
        per_recipient = _recipients(kind, detail)
        if not per_recipient:  # the message as a whole
            only = destination[0] if len(destination) == 1 else None
            fields = _outcome(kind, detail, {})
            return [DeliveryEvent(recipient=only, event_id=sns_id, **common, **fields)]
        return [
            DeliveryEvent(
                recipient=address,
                event_id=f"{sns_id}:{address}",
                **common,
                **_outcome(kind, detail, item),
            )
            for address, item in per_recipient
        ]


def _address(name: str, address: str) -> str:
    """``Name <address>`` with a non-ASCII name as an RFC 2047 encoded word, as SES wants."""
    return formataddr((name, address)) if name else address


def _simple_headers(message: OutboundMessage) -> list[dict[str, str]] | None:
    """The headers as ``Content.Simple.Headers``, or ``None`` when that form cannot hold them."""
    pairs = list(message.headers.items())
    if message.unsubscribe_url:
        pairs += [
            ("List-Unsubscribe", f"<{message.unsubscribe_url}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    if len(pairs) > 15 or not all(
        len(name) <= 126 and _HEADER_VALUE.fullmatch(value) for name, value in pairs
    ):
        return None
    return [{"Name": name, "Value": value} for name, value in pairs]


def _error_code(response: httpx.Response, body: object) -> tuple[str | None, str | None]:
    """The error name (``x-amzn-ErrorType``, else ``__type``/``code``) and message of an answer."""
    code: str | None = None
    header = response.headers.get("x-amzn-errortype")
    if header:
        code = header.split(":", 1)[0].strip() or None
    data = body if isinstance(body, dict) else {}
    if code is None:
        for key in ("__type", "code", "Code"):
            value = data.get(key)
            if isinstance(value, str) and value:
                code = value.rsplit("#", 1)[-1].split(":", 1)[0] or None
                break
    text = data.get("message", data.get("Message"))
    return code, text if isinstance(text, str) else None


def _anysend_id(mail: dict[str, Any]) -> str | None:
    """The message id from the ``anysend-id`` tag, else from ``X-Anysend-Message-Id``."""
    found = _strings(_dict(mail.get("tags")).get(MESSAGE_ID_TAG))
    if found:
        return found[0]
    for header in _list(mail.get("headers")):
        if (
            isinstance(header, dict)
            and str(header.get("name", "")).lower() == "x-anysend-message-id"
        ):
            return _text(header.get("value"))
    return None


def _recipients(kind: str, detail: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The recipients an event names one by one, each with its own details."""
    if kind == "Delivery":
        return [(address, {}) for address in _strings(detail.get("recipients"))]
    key = {
        "Bounce": "bouncedRecipients",
        "Complaint": "complainedRecipients",
        "DeliveryDelay": "delayedRecipients",
    }.get(kind)
    items = detail.get(key) if key else None
    found: list[tuple[str, dict[str, Any]]] = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("emailAddress"), str):
            found.append((item["emailAddress"], item))
    return found


def _outcome(kind: str, detail: dict[str, Any], item: dict[str, Any]) -> dict[str, Any]:
    """``status`` or ``event``, ``reason`` and ``description`` of one event."""
    diagnostic = _text(item.get("diagnosticCode"))
    if kind == "Bounce":
        btype, subtype = str(detail.get("bounceType")), str(detail.get("bounceSubType"))
        reason = REASONS.get(f"{btype}/{subtype}", Reason.OTHER)
        if f"{btype}/{subtype}" == "Permanent/General":
            status_code = str(item.get("status") or "")
            reason = Reason.UNKNOWN_RECIPIENT if status_code.startswith("5.1.") else Reason.OTHER
        status = DeliveryStatus.REJECTED if subtype in _SUPPRESSED else DeliveryStatus.UNDELIVERABLE
        described = "; ".join(filter(None, [f"{btype}/{subtype}", diagnostic]))
        return {"status": status, "reason": reason, "description": described}
    if kind == "Complaint":
        feedback = _text(detail.get("complaintFeedbackType"))
        if detail.get("complaintSubType") == "OnAccountSuppressionList":
            return {
                "status": DeliveryStatus.REJECTED,
                "reason": Reason.SUPPRESSED_COMPLAINT,
                "description": "OnAccountSuppressionList",
            }
        return {"event": EventType.COMPLAINED, "description": feedback}
    if kind == "DeliveryDelay":
        delay = str(detail.get("delayType"))
        return {
            "status": DeliveryStatus.DEFERRED,
            "reason": DELAY_REASONS.get(delay, Reason.OTHER),
            "description": "; ".join(filter(None, [delay, diagnostic])),
        }
    if kind == "Subscription":
        preferences = _dict(detail.get("newTopicPreferences"))
        topics = preferences.get("topicSubscriptionStatus")
        statuses = [_dict(t).get("subscriptionStatus") for t in _list(topics)]
        out = preferences.get("unsubscribeAll") is True or any(
            str(s).replace("_", "").lower() == "optout" for s in statuses
        )
        if out:
            return {"event": EventType.OPTED_OUT, "reason": Reason.OPTED_OUT}
        return {"event": EventType.OPTED_IN}
    text = _text(detail.get(_DESCRIPTIONS.get(kind, "")))
    if kind in EVENT_MAP:
        return {"event": EVENT_MAP[kind], "description": text}
    status = STATUS_MAP.get(kind, DeliveryStatus.UNKNOWN)
    return {"status": status, "reason": _FIXED_REASONS.get(kind), "description": text}


def _crypto() -> tuple[Any, Any, Any, Any]:
    """``cryptography``'s x509, hashes, rsa and padding modules (the ``ses`` extra)."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError:  # pragma: no cover - depends on the environment
        raise ConfigurationError(
            'verifying SNS signatures needs cryptography: pip install "anysend[ses]"'
        ) from None
    return x509, hashes, rsa, padding
