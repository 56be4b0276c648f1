r"""``WhatsApp``: the WhatsApp Cloud API (Meta's Graph API), with its webhooks.

Sends free text, one file, or an approved template from a WhatsApp business phone number,
falls back to the template when Meta says the 24-hour customer-service window is closed, and
reads Meta's signed status and incoming-message webhooks.

Example:
    ```python
    import anysend
    from anysend.providers.whatsapp import WhatsApp

    whatsapp = WhatsApp(
        access_token="EAAG...",
        phone_number_id="100000000000002",
        app_secret="your-app-secret",
        verify_token="a-token-you-chose",
    )
    with anysend.Client([whatsapp]) as client:
        client.send(
            anysend.Message(
                text="Your order has shipped",
                chat_template=anysend.ChatTemplate(
                    name="order_shipped", language="en_US", parameters=["Ann", "A-1042"]
                ),
            ),
            to={"phone": "+48600700800"},
        )
    ```

    From a URL: ``whatsapp://PHONE_NUMBER_ID:ACCESS_TOKEN@default?app_secret=...``.

Settings (:class:`WhatsAppSettings`): ``access_token`` (a system-user token, sent as a bearer
token), ``phone_number_id`` (the business number's id; the sender), ``app_secret`` (Meta signs
webhooks with it), ``verify_token`` (the subscription handshake, answered by
:meth:`WhatsApp.handshake`), ``api_version`` (``v25.0``), ``preview_url`` (link previews in
text), ``prefer_template`` (send the template alone whenever a message has one).

The request (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages):
``POST https://graph.facebook.com/{api_version}/{phone_number_id}/messages`` with
``{"messaging_product": "whatsapp", "recipient_type": "individual", "to": <E.164 digits>,
"type": ..., "biz_opaque_callback_data": "anysend:<message id>"}`` and ``text``, ``template``,
or a media object (``image``, ``video``, ``audio``, ``document``) naming a file uploaded first
with ``POST /{phone_number_id}/media`` (multipart: ``file``, ``type``, ``messaging_product``).
Meta echoes ``biz_opaque_callback_data`` in status webhooks, so events name the message.
``provider_options["whatsapp"]`` is merged into the top level of each message body (``None``
removes a key). The answer's ``messages[0].id`` (``wamid.…``) is the receipt's
``provider_message_id``.

Templates: ``ChatTemplate.parameters`` as a list become the body's text parameters (a dict
item is used as a parameter object as it is: currency, date_time, image); a dict with
``"components"`` gives the components verbatim; any other dict gives named body parameters
(``parameter_name``).

The 24-hour window: a message with text (or a file) and a ``chat_template`` is sent as text
first; when Meta answers 131047 (re-engagement required) the template is sent in the same
attempt. Without a template that error is ``content_rejected`` with reason
``outside_messaging_window``, so the client moves on to the next channel. Meta often accepts
the text and reports 131047 later in a ``failed`` status webhook instead: nothing can be
re-sent then, so set ``prefer_template`` for business-initiated messages.

Limits and quirks:
    * One file per message (``image/jpeg``/``png`` up to 5 MB, ``video/mp4``/``3gpp`` and
      audio up to 16 MB, anything else as a document up to 100 MB); the text becomes its
      caption (at most 1024 characters; an audio file with text goes as a document, since
      audio takes no caption). Text alone: at most 4096 characters.
    * No idempotency key: an ambiguous timeout is not retried (the send ends ``unknown``).
    * Webhooks: ``X-Hub-Signature-256`` signs the raw body only, no timestamp, so no replay
      window is possible; deduplicate on ``DeliveryEvent.event_id`` (``wamid:status``) and on
      inbound ``provider_message_id``. Statuses come more than once and out of order.

Errors: the Graph error's ``code`` (:data:`ERROR_CODES`,
https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes) decides the
category, :data:`REASONS` the reason; 131026 (not on WhatsApp) marks the contact invalid.
Statuses: :data:`STATUS_MAP`; a ``failed`` status becomes ``rejected`` or ``undeliverable``
by its error's reason (:data:`FAILED_STATUS`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr, field_validator

from anysend import (
    Attachment,
    Channel,
    ChatTemplate,
    ContentError,
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
)
from anysend._ratelimit import RateLimit
from anysend.providers import (
    Capabilities,
    Provider,
    ProviderSettings,
    SendFlow,
    WebhookResponse,
    _meta,
    response_body,
)

__all__ = [
    "CONTACT_INVALID_CODES",
    "DEFAULT_API_VERSION",
    "ERROR_CODES",
    "FAILED_STATUS",
    "MEDIA_LIMITS",
    "MESSAGE_ID_PREFIX",
    "REASONS",
    "STATUS_MAP",
    "WINDOW_CLOSED_CODES",
    "WhatsApp",
    "WhatsAppSettings",
]

#: The Graph API version used unless the settings say otherwise.
DEFAULT_API_VERSION = "v25.0"

#: ``biz_opaque_callback_data`` is this prefix and anysend's message id.
MESSAGE_ID_PREFIX = "anysend:"

#: Longest text body and longest media caption, in characters.
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024

_MB = 1024 * 1024
#: Largest file per media type
#: (https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media).
MEDIA_LIMITS: dict[str, int] = {
    "image": 5 * _MB,
    "video": 16 * _MB,
    "audio": 16 * _MB,
    "document": 100 * _MB,
}
#: Content types sent as image, video or audio; any other file goes as a document.
_MEDIA_KINDS = {
    "image/jpeg": "image",
    "image/png": "image",
    "video/mp4": "video",
    "video/3gpp": "video",
    "video/3gp": "video",
    "audio/aac": "audio",
    "audio/amr": "audio",
    "audio/mpeg": "audio",
    "audio/mp4": "audio",
    "audio/ogg": "audio",
}

#: Webhook ``statuses[].status`` values and their statuses (``failed``: see FAILED_STATUS).
STATUS_MAP: dict[str, DeliveryStatus] = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
}

#: Graph and WhatsApp error codes (API answers) and their categories.
ERROR_CODES: dict[int, ErrorCategory] = {
    **_meta.GRAPH_ERROR_CODES,
    33: ErrorCategory.CONFIGURATION,  # the business phone number has been deleted
    100: ErrorCategory.CONTENT_REJECTED,  # invalid parameter (subcode 33: configuration)
    80007: ErrorCategory.RATE_LIMITED,  # WhatsApp Business Account rate limit
    130429: ErrorCategory.RATE_LIMITED,  # Cloud API throughput reached
    131056: ErrorCategory.RATE_LIMITED,  # pair rate limit: too many to this recipient
    131048: ErrorCategory.QUOTA,  # spam rate limit on this number (quality)
    130472: ErrorCategory.CONTENT_REJECTED,  # the user's number is part of an experiment
    131000: ErrorCategory.UNAVAILABLE,  # something went wrong
    131016: ErrorCategory.UNAVAILABLE,  # service unavailable
    131057: ErrorCategory.UNAVAILABLE,  # business account in maintenance mode
    133004: ErrorCategory.UNAVAILABLE,  # server temporarily unavailable
    131001: ErrorCategory.PAYLOAD_TOO_LARGE,  # message too long
    131005: ErrorCategory.AUTH,  # access denied
    131008: ErrorCategory.CONTENT_REJECTED,  # required parameter missing
    131009: ErrorCategory.CONTENT_REJECTED,  # parameter value not valid
    131021: ErrorCategory.INVALID_RECIPIENT,  # recipient cannot be the sender
    131026: ErrorCategory.INVALID_RECIPIENT,  # undeliverable: not on WhatsApp, old client
    131030: ErrorCategory.CONFIGURATION,  # recipient not in the test number's allowed list
    131031: ErrorCategory.CONFIGURATION,  # business account locked
    131042: ErrorCategory.QUOTA,  # payment issue
    131045: ErrorCategory.CONFIGURATION,  # phone number registration (certificate) error
    131047: ErrorCategory.CONTENT_REJECTED,  # re-engagement: 24-hour window closed
    131049: ErrorCategory.CONTENT_REJECTED,  # not delivered, per-user marketing limit
    131050: ErrorCategory.OPTED_OUT,  # the user stopped marketing messages
    131051: ErrorCategory.CONTENT_REJECTED,  # unsupported message type
    131053: ErrorCategory.CONTENT_REJECTED,  # media upload error
    132000: ErrorCategory.CONTENT_REJECTED,  # template parameter count mismatch
    132001: ErrorCategory.CONFIGURATION,  # template does not exist (name or language)
    132005: ErrorCategory.CONTENT_REJECTED,  # template text too long once filled in
    132007: ErrorCategory.CONTENT_REJECTED,  # template format character policy violated
    132012: ErrorCategory.CONTENT_REJECTED,  # template parameter format mismatch
    132015: ErrorCategory.CONFIGURATION,  # template paused for low quality
    132016: ErrorCategory.CONFIGURATION,  # template disabled
    133010: ErrorCategory.CONFIGURATION,  # business phone number not registered
}

#: Error codes (API answers and ``failed`` statuses) and their reasons; others are ``other``.
REASONS: dict[int, Reason] = {
    4: Reason.RATE_LIMITED,
    80007: Reason.RATE_LIMITED,
    130429: Reason.RATE_LIMITED,
    131056: Reason.RATE_LIMITED,
    131048: Reason.RATE_LIMITED,
    368: Reason.POLICY_BLOCKED,
    131031: Reason.POLICY_BLOCKED,
    130472: Reason.POLICY_BLOCKED,
    131049: Reason.POLICY_BLOCKED,
    131021: Reason.INVALID_RECIPIENT,
    131026: Reason.UNKNOWN_RECIPIENT,
    131042: Reason.INSUFFICIENT_FUNDS,
    131047: Reason.OUTSIDE_MESSAGING_WINDOW,
    131050: Reason.OPTED_OUT,
    131051: Reason.CONTENT_REJECTED,
    131053: Reason.CONTENT_REJECTED,
    132000: Reason.TEMPLATE_ERROR,
    132001: Reason.TEMPLATE_ERROR,
    132005: Reason.TEMPLATE_ERROR,
    132007: Reason.TEMPLATE_ERROR,
    132012: Reason.TEMPLATE_ERROR,
    132015: Reason.TEMPLATE_ERROR,
    132016: Reason.TEMPLATE_ERROR,
}

#: Codes meaning the number cannot get WhatsApp messages: the contact is invalid.
CONTACT_INVALID_CODES = frozenset({131026})

#: Codes meaning the 24-hour window is closed (a template may still go through).
WINDOW_CLOSED_CODES = frozenset({131047})

#: What a ``failed`` status becomes, by its reason (any other reason stays ``failed``).
FAILED_STATUS: dict[Reason, DeliveryStatus] = {
    Reason.UNKNOWN_RECIPIENT: DeliveryStatus.UNDELIVERABLE,
    Reason.INVALID_RECIPIENT: DeliveryStatus.REJECTED,
    Reason.OPTED_OUT: DeliveryStatus.REJECTED,
    Reason.POLICY_BLOCKED: DeliveryStatus.REJECTED,
    Reason.CONTENT_REJECTED: DeliveryStatus.REJECTED,
    Reason.OUTSIDE_MESSAGING_WINDOW: DeliveryStatus.REJECTED,
    Reason.TEMPLATE_ERROR: DeliveryStatus.REJECTED,
}

_DIGITS = re.compile(r"[0-9]+")
_VERSION = re.compile(r"v[0-9]+\.[0-9]+")
#: Inbound message types that carry a file, and where its object is.
_INBOUND_MEDIA = ("image", "video", "audio", "document", "sticker")


class WhatsAppSettings(ProviderSettings):
    """Settings of :class:`WhatsApp`.

    Attributes:
        access_token: a system-user (or app) access token with ``whatsapp_business_messaging``.
        phone_number_id: the business phone number's id (digits), which sends every message.
        app_secret: the Meta app's secret; webhooks are refused without it.
        verify_token: the token typed into the app dashboard for the subscription handshake.
        api_version: the Graph API version, such as ``"v25.0"``.
        preview_url: ask WhatsApp to render a preview of the first link in a text.
        prefer_template: send only the template when a message has one, even with text.
    """

    access_token: SecretStr
    phone_number_id: str
    app_secret: SecretStr | None = None
    verify_token: SecretStr | None = None
    api_version: str = DEFAULT_API_VERSION
    preview_url: bool = False
    prefer_template: bool = False

    @field_validator("phone_number_id")
    @classmethod
    def _digits(cls, value: str) -> str:
        if not _DIGITS.fullmatch(value):
            raise ValueError("phone_number_id is the number's id in digits, not the number")
        return value

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _VERSION.fullmatch(value):
            raise ValueError("api_version looks like 'v25.0'")
        return value


class WhatsApp(Provider):
    """Sends WhatsApp messages through the Cloud API and reads Meta's webhooks."""

    name: ClassVar[str] = "whatsapp"
    channels: ClassVar[frozenset[Channel]] = frozenset({Channel.WHATSAPP})
    capabilities: ClassVar[Capabilities] = Capabilities(
        attachments=True,
        chat_templates=True,
        webhooks=True,
        inbound=True,
        max_attachment_bytes=MEDIA_LIMITS["document"],
    )
    Settings: ClassVar[type[ProviderSettings]] = WhatsAppSettings
    default_base_url: ClassVar[str | None] = _meta.GRAPH_BASE_URL
    url_fields: ClassVar[dict[str, str]] = {
        "username": "phone_number_id",
        "password": "access_token",
    }
    #: Meta's throughput page: 80 messages a second per business phone number by default
    #: (inbound included; up to 1,000 after an upgrade, then raise it with ``rate_limits``),
    #: and the pair rate limit of about one message every 6 s to one user (error 131056).
    rate_limit: ClassVar[RateLimit | None] = RateLimit(
        per_second=80, burst=1, also=RateLimit(per_second=1 / 6, per="recipient")
    )
    settings: WhatsAppSettings

    # -- sending ---------------------------------------------------------------------------------

    def check_supported(self, message: OutboundMessage) -> None:
        """Refuse more than one file, files over their type's limit, and overlong text."""
        super().check_supported(message)
        if self._template_only(message):
            return
        if len(message.attachments) > 1:
            raise UnsupportedFeatureError(
                "whatsapp sends one file per message",
                provider=self.name,
                feature="attachments",
            )
        text = message.text or ""
        if message.attachments:
            attachment = message.attachments[0]
            kind = _media_kind(attachment, bool(text))
            if len(attachment.content) > MEDIA_LIMITS[kind]:
                raise _too_large(f"a WhatsApp {kind} is at most {MEDIA_LIMITS[kind]} bytes")
            if len(text) > CAPTION_LIMIT:
                raise _too_large(f"a WhatsApp caption is at most {CAPTION_LIMIT} characters")
        elif len(text) > TEXT_LIMIT:
            raise _too_large(f"a WhatsApp text is at most {TEXT_LIMIT} characters")

    def build_request(self, message: OutboundMessage) -> httpx.Request:
        """The first request of the send: the upload for a file, else the message itself."""
        flow = self.send_flow(message)
        try:
            return next(flow)
        finally:
            flow.close()

    def parse_response(self, response: httpx.Response, message: OutboundMessage) -> Receipt:
        """A receipt for a ``/messages`` answer, or the ProviderError its Graph error means."""
        return self._receipt(response)

    def send_flow(self, message: OutboundMessage) -> SendFlow:
        """Upload the file (if any), send the message, and the template if the window closed."""
        template = message.chat_template
        if template is not None and self._template_only(message):
            response = yield self._message_request(message, _template_payload(template))
            return self._receipt(response)
        if not (message.text or message.attachments):
            raise ContentError("whatsapp needs text, a file or a chat_template")
        if message.attachments:
            attachment = message.attachments[0]
            response = yield self._upload_request(attachment)
            payload = self._media_payload(message, attachment, self._media_id(response))
        else:
            payload = {
                "type": "text",
                "text": {"preview_url": self.settings.preview_url, "body": message.text},
            }
        response = yield self._message_request(message, payload)
        if not response.is_success and template is not None:
            error = _meta.parse_graph_error(response_body(response))
            if error is not None and error.code in WINDOW_CLOSED_CODES:
                response = yield self._message_request(message, _template_payload(template))
        return self._receipt(response)

    def _template_only(self, message: OutboundMessage) -> bool:
        if message.chat_template is None:
            return False
        return self.settings.prefer_template or not (message.text or message.attachments)

    def _url(self, path: str) -> str:
        settings = self.settings
        return f"{self.default_base_url}/{settings.api_version}/{settings.phone_number_id}/{path}"

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.access_token.get_secret_value()}"}

    def _message_request(self, message: OutboundMessage, payload: dict[str, Any]) -> httpx.Request:
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": message.to.removeprefix("+"),
            **payload,
            "biz_opaque_callback_data": MESSAGE_ID_PREFIX + message.id,
        }
        for key, value in message.provider_options.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
        return httpx.Request("POST", self._url("messages"), json=body, headers=self._auth())

    def _upload_request(self, attachment: Attachment) -> httpx.Request:
        return httpx.Request(
            "POST",
            self._url("media"),
            data={"messaging_product": "whatsapp", "type": attachment.content_type},
            files={"file": (attachment.filename, attachment.content, attachment.content_type)},
            headers=self._auth(),
        )

    def _media_id(self, response: httpx.Response) -> str:
        if not response.is_success:
            raise self._error(response)
        body = response_body(response)
        media_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise ProviderError(
                "whatsapp answered the media upload without an id",
                category=ErrorCategory.UNKNOWN,
                provider=self.name,
                status_code=response.status_code,
                raw=body,
            )
        return media_id

    def _media_payload(
        self, message: OutboundMessage, attachment: Attachment, media_id: str
    ) -> dict[str, Any]:
        kind = _media_kind(attachment, bool(message.text))
        media: dict[str, Any] = {"id": media_id}
        if message.text:
            media["caption"] = message.text
        if kind == "document":
            media["filename"] = attachment.filename
        return {"type": kind, kind: media}

    def _receipt(self, response: httpx.Response) -> Receipt:
        if not response.is_success:
            raise self._error(response)
        body = response_body(response)
        messages = body.get("messages") if isinstance(body, dict) else None
        first = messages[0] if isinstance(messages, list) and messages else None
        message_id = first.get("id") if isinstance(first, dict) else None
        if not isinstance(message_id, str) or not message_id:
            # The message may have been accepted: never send it again.
            raise ProviderError(
                "whatsapp answered without a message id",
                category=ErrorCategory.AMBIGUOUS_TIMEOUT,
                retryable=False,
                provider=self.name,
                status_code=response.status_code,
                raw=body,
            )
        return Receipt(provider_message_id=message_id, raw=body)

    def _error(self, response: httpx.Response) -> ProviderError:
        error = _meta.parse_graph_error(response_body(response))
        if error is None or error.code is None:
            return _meta.graph_error(response, self.name, codes=ERROR_CODES)
        category = (
            ErrorCategory.CONFIGURATION if error.code == 100 and error.subcode == 33 else None
        )
        return _meta.graph_error(
            response,
            self.name,
            codes=ERROR_CODES,
            category=category,
            reason=REASONS.get(error.code),
            contact_invalid=error.code in CONTACT_INVALID_CODES,
        )

    # -- callbacks -------------------------------------------------------------------------------

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Check ``X-Hub-Signature-256`` (HMAC-SHA256 of the raw body with the app secret).

        Raises:
            WebhookVerificationError: no app secret set, no signature, or a wrong one.
        """
        secret = self.settings.app_secret
        _meta.verify_signature(
            request, secret.get_secret_value() if secret else None, provider=self.name
        )

    def verify_subscription(self, request: WebhookRequest) -> str:
        """Answer Meta's GET handshake: check ``hub.verify_token``, return ``hub.challenge``.

        Reply 200 with the returned text as the body; reply 403 when it raises.

        Raises:
            WebhookVerificationError: no verify token set, a wrong mode or token, no challenge.
        """
        token = self.settings.verify_token
        return _meta.verify_subscription(
            request, token.get_secret_value() if token else None, provider=self.name
        )

    def handshake(self, request: WebhookRequest) -> WebhookResponse:
        """Answer Meta's ``GET`` handshake: 200 with ``hub.challenge`` as plain text.

        Raises:
            WebhookVerificationError: as :meth:`verify_subscription` (answer 4xx).
        """
        challenge = self.verify_subscription(request)
        return WebhookResponse(body=challenge.encode())

    def parse_webhook_events(
        self, request: WebhookRequest
    ) -> Iterable[DeliveryEvent | InboundMessage]:
        """One DeliveryEvent per status (two for a dead number), one InboundMessage per message."""
        data = request.json_body()
        if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
            raise WebhookParseError("not a WhatsApp Business Account webhook")
        events: list[DeliveryEvent | InboundMessage] = []
        for value in _values(data):
            metadata = value.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            contacts = _list(value, "contacts")
            for status in _list(value, "statuses"):
                events.extend(self._status_events(status))
            for message in _list(value, "messages"):
                inbound = self._inbound(message, metadata, contacts)
                if inbound is not None:
                    events.append(inbound)
        return events

    def _status_events(self, status: Any) -> Iterator[DeliveryEvent]:
        if not isinstance(status, dict):
            raise WebhookParseError("a WhatsApp status is not an object")
        wamid, raw_status = status.get("id"), status.get("status")
        if not isinstance(wamid, str) or not isinstance(raw_status, str) or not raw_status:
            raise WebhookParseError("a WhatsApp status needs string 'id' and 'status'")
        code, description = _first_error(status)
        reason = REASONS.get(code, Reason.OTHER) if code is not None else None
        normalised = STATUS_MAP.get(raw_status, DeliveryStatus.UNKNOWN)
        if normalised is DeliveryStatus.FAILED and reason is not None:
            normalised = FAILED_STATUS.get(reason, DeliveryStatus.FAILED)
        recipient = _e164(status.get("recipient_id"))
        opaque = status.get("biz_opaque_callback_data")
        common: dict[str, Any] = {
            "provider": self.name,
            "provider_message_id": wamid,
            "message_id": (
                opaque.removeprefix(MESSAGE_ID_PREFIX)
                if isinstance(opaque, str) and opaque.startswith(MESSAGE_ID_PREFIX)
                else None
            ),
            "recipient": recipient,
            "channel": Channel.WHATSAPP,
            "raw_status": raw_status,
            "reason": reason,
            "description": description,
            "occurred_at": _when(status.get("timestamp")),
            "raw": status,
        }
        yield DeliveryEvent(status=normalised, event_id=f"{wamid}:{raw_status}", **common)
        if raw_status != "failed" or code is None:
            return
        if code in CONTACT_INVALID_CODES:
            event = EventType.CONTACT_INVALID
        elif reason is Reason.OPTED_OUT:
            event = EventType.OPTED_OUT
        else:
            return
        yield DeliveryEvent(event=event, event_id=f"{wamid}:{raw_status}:{event.value}", **common)

    def _inbound(
        self, message: Any, metadata: dict[str, Any], contacts: list[Any]
    ) -> InboundMessage | None:
        if not isinstance(message, dict):
            raise WebhookParseError("a WhatsApp message is not an object")
        sender = _e164(message.get("from"))
        if sender is None:
            raise WebhookParseError("a WhatsApp message needs a string 'from'")
        kind = message.get("type")
        if kind == "system":  # "the customer changed number" and the like: no message
            return None
        body = message.get(kind) if isinstance(kind, str) else None
        body = body if isinstance(body, dict) else {}
        media: tuple[Media, ...] = ()
        if kind in _INBOUND_MEDIA:
            media = (
                Media(
                    provider_media_id=_str(body.get("id")),
                    content_type=_str(body.get("mime_type")),
                    filename=_str(body.get("filename")),
                ),
            )
        context = message.get("context")
        in_reply_to = context.get("id") if isinstance(context, dict) else None
        if kind == "reaction":
            in_reply_to = body.get("message_id")
        contact = next(
            (c for c in contacts if isinstance(c, dict) and _e164(c.get("wa_id")) == sender),
            None,
        )
        return InboundMessage(
            provider=self.name,
            channel=Channel.WHATSAPP,
            sender=sender,
            recipient=_e164(metadata.get("display_phone_number")),
            text=_inbound_text(kind, body),
            media=media,
            provider_message_id=_str(message.get("id")),
            in_reply_to=_str(in_reply_to),
            received_at=_when(message.get("timestamp")),
            raw={"message": message, "contact": contact},
        )


# -- helpers -------------------------------------------------------------------------------------


def _too_large(text: str) -> ProviderError:
    return ProviderError(text, category=ErrorCategory.PAYLOAD_TOO_LARGE, provider="whatsapp")


def _media_kind(attachment: Attachment, has_text: bool) -> str:
    content_type = attachment.content_type.split(";")[0].strip().lower()
    kind = _MEDIA_KINDS.get(content_type, "document")
    if kind == "audio" and has_text:
        return "document"  # audio takes no caption
    return kind


def _template_payload(template: ChatTemplate) -> dict[str, Any]:
    body: dict[str, Any] = {"name": template.name, "language": {"code": template.language}}
    parameters = template.parameters
    components: Any
    if isinstance(parameters, dict):
        if "components" in parameters:
            components = parameters["components"]
        else:
            components = [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "parameter_name": key, "text": str(value)}
                        for key, value in parameters.items()
                    ],
                }
            ]
    elif parameters:
        components = [
            {
                "type": "body",
                "parameters": [
                    p if isinstance(p, dict) else {"type": "text", "text": str(p)}
                    for p in parameters
                ],
            }
        ]
    else:
        components = None
    if components:
        body["components"] = components
    return {"type": "template", "template": body}


def _values(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each ``entry[].changes[].value`` of the ``messages`` field."""
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise WebhookParseError("a WhatsApp webhook needs an 'entry' list")
    for entry in entries:
        if not isinstance(entry, dict):
            raise WebhookParseError("a WhatsApp webhook entry is not an object")
        for change in _list(entry, "changes"):
            if not isinstance(change, dict):
                raise WebhookParseError("a WhatsApp webhook change is not an object")
            value = change.get("value")
            if change.get("field", "messages") != "messages":
                continue  # template, account and quality updates: not about messages
            if not isinstance(value, dict):
                raise WebhookParseError("a WhatsApp 'messages' change has no value object")
            yield value


def _list(container: dict[str, Any], key: str) -> list[Any]:
    value = container.get(key, [])
    if not isinstance(value, list):
        raise WebhookParseError(f"WhatsApp webhook field {key!r} is not a list")
    return value


def _first_error(status: dict[str, Any]) -> tuple[int | None, str | None]:
    errors = status.get("errors")
    first = errors[0] if isinstance(errors, list) and errors else None
    if not isinstance(first, dict):
        return None, None
    code = first.get("code")
    data = first.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    description = _str(details) or _str(first.get("message")) or _str(first.get("title"))
    if isinstance(code, bool) or not isinstance(code, int):
        return None, description
    return code, description


def _inbound_text(kind: object, body: dict[str, Any]) -> str | None:
    if kind == "text":
        return _str(body.get("body"))
    if kind == "button":  # a quick-reply button of a template
        return _str(body.get("text")) or _str(body.get("payload"))
    if kind == "interactive":
        for reply in ("button_reply", "list_reply"):
            chosen = body.get(reply)
            if isinstance(chosen, dict):
                return _str(chosen.get("title")) or _str(chosen.get("id"))
        flow = body.get("nfm_reply")
        if isinstance(flow, dict):
            return _str(flow.get("response_json")) or _str(flow.get("body"))
        return None
    if kind == "reaction":
        return _str(body.get("emoji"))
    return _str(body.get("caption"))


def _e164(value: object) -> str | None:
    """A WhatsApp id or number (digits without ``+``) in E.164; other strings as they are."""
    if not isinstance(value, str) or not value:
        return None
    return f"+{value}" if _DIGITS.fullmatch(value) else value


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _when(timestamp: object) -> datetime | None:
    """Meta's timestamps: Unix seconds, as a string (or a number)."""
    if isinstance(timestamp, str) and _DIGITS.fullmatch(timestamp):
        timestamp = int(timestamp)
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        return None
    try:
        return datetime.fromtimestamp(timestamp, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
