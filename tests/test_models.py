"""Messages, recipients, attachments and the other input models."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from anysend import Attachment, Channel, ChatTemplate, Message, Preferences, PushTarget, Recipient


def test_message_needs_some_content() -> None:
    """A message with neither content nor a template is refused."""
    with pytest.raises(ValidationError, match="needs text"):
        Message()


def test_message_refuses_unknown_fields() -> None:
    """A misspelt field is an error, not silently ignored."""
    with pytest.raises(ValidationError):
        Message(text="hi", subjct="typo")


def test_message_is_immutable() -> None:
    """Messages are frozen values."""
    message = Message(text="hi")
    with pytest.raises(ValidationError):
        message.text = "changed"


@pytest.mark.parametrize("field", ["subject", "sender"])
def test_crlf_in_subject_or_sender_is_refused(field: str) -> None:
    """A line break in a subject or sender (header injection) is refused."""
    with pytest.raises(ValidationError, match="CR and LF"):
        Message(text="hi", **{field: "Hello\r\nBcc: victim@example.com"})


def test_crlf_in_custom_headers_is_refused() -> None:
    """Header names and values with line breaks are refused."""
    with pytest.raises(ValidationError, match="CR or LF"):
        Message(text="hi", headers={"X-Tag": "a\nBcc: b@example.com"})
    with pytest.raises(ValidationError, match="CR or LF"):
        Message(text="hi", headers={"X-Tag\r\nBcc": "b"})


def test_attachment_filename_is_sanitised_and_type_guessed() -> None:
    """Path separators and control characters leave file names; the MIME type is guessed."""
    attachment = Attachment(filename="../../etc/pass\nwd.pdf", content=b"%PDF")
    assert "/" not in attachment.filename
    assert "\n" not in attachment.filename
    assert attachment.filename.endswith(".pdf")
    assert attachment.content_type == "application/pdf"
    assert "size=4" in repr(attachment)


def test_attachment_with_only_unsafe_characters_is_refused() -> None:
    """A file name that is nothing but unsafe characters is refused."""
    with pytest.raises(ValidationError, match="empty"):
        Attachment(filename="..", content=b"x")


def test_inline_attachment_gets_a_content_id() -> None:
    """An inline image is referenced by its file name unless given a content id."""
    assert Attachment(filename="logo.png", content=b"png", inline=True).content_id == "logo.png"


def test_attachment_from_base64() -> None:
    """Base64 text decodes into the attachment's bytes; bad base64 is refused."""
    data = base64.b64encode(b"hello").decode()
    assert Attachment.from_base64("a.txt", data).content == b"hello"
    with pytest.raises(ValueError, match=r"base64|Incorrect|Invalid"):
        Attachment.from_base64("a.txt", "***")


def test_webpush_target_needs_keys() -> None:
    """A web push target without p256dh and auth keys is refused."""
    with pytest.raises(ValidationError, match="p256dh"):
        PushTarget(kind="webpush", token="https://push.example/abc")


def test_webpush_target_from_subscription_json() -> None:
    """A browser's PushSubscription JSON becomes a target."""
    target = PushTarget.webpush(
        {"endpoint": "https://push.example/abc", "keys": {"p256dh": "BP", "auth": "au"}}
    )
    assert (target.kind, target.token, target.keys["auth"]) == (
        "webpush",
        "https://push.example/abc",
        "au",
    )


def test_preferences_allow_and_refuse() -> None:
    """Global opt-outs and per-category opt-outs both refuse; no preference allows."""
    prefs = Preferences(
        opted_out=frozenset({Channel.SMS}), categories={"marketing": {Channel.EMAIL: False}}
    )
    assert not prefs.allows(Channel.SMS, None)
    assert not prefs.allows(Channel.EMAIL, "marketing")
    assert prefs.allows(Channel.EMAIL, "transactional")
    assert prefs.allows(Channel.EMAIL, None)


def test_recipient_repr_shows_only_what_is_set() -> None:
    """A recipient's repr lists the fields that are set."""
    assert repr(Recipient(email="a@example.com")) == "Recipient(email='a@example.com')"


def test_chat_template_defaults() -> None:
    """A chat template has a language and parameters by default."""
    template = ChatTemplate(name="order_update")
    assert (template.language, template.parameters) == ("en", [])


def test_unsubscribe_url_must_be_https() -> None:
    """A one-click unsubscribe URL must be https and a single line."""
    assert Message(text="x", unsubscribe_url="https://shop.example/u/1").unsubscribe_url
    for bad in ("http://shop.example/u", "https://x/\r\nBcc: y"):
        with pytest.raises(ValidationError, match="https"):
            Message(text="x", unsubscribe_url=bad)
