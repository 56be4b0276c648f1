"""Delivery events, inbound messages and the webhook request model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from anysend import DeliveryEvent, DeliveryStatus, EventType, WebhookParseError, WebhookRequest


def test_event_has_exactly_one_of_status_and_event() -> None:
    """A DeliveryEvent is either a status change or another event, never both or neither."""
    DeliveryEvent(provider="p", status=DeliveryStatus.DELIVERED, raw_status="delivered")
    DeliveryEvent(provider="p", event=EventType.OPENED, raw_status="open")
    with pytest.raises(ValidationError):
        DeliveryEvent(provider="p")
    with pytest.raises(ValidationError):
        DeliveryEvent(provider="p", status=DeliveryStatus.DELIVERED, event=EventType.OPENED)


def test_webhook_headers_are_case_insensitive() -> None:
    """Headers are found whatever their case."""
    request = WebhookRequest(url="https://x/y", headers={"X-Signature": "abc"})
    assert request.header("x-signature") == "abc"
    assert request.header("X-SIGNATURE") == "abc"
    assert request.header("missing", "d") == "d"


def test_json_and_form_bodies() -> None:
    """JSON and form bodies parse; broken ones raise WebhookParseError."""
    assert WebhookRequest(url="https://x", body=b'{"a": 1}').json_body() == {"a": 1}
    assert WebhookRequest(url="https://x", body=b"a=1&b=%C5%82&a=2").form_body() == {
        "a": "1",
        "b": "ł",
    }
    with pytest.raises(WebhookParseError):
        WebhookRequest(url="https://x", body=b"{").json_body()
    with pytest.raises(WebhookParseError):
        WebhookRequest(url="https://x", body=b"\xff").form_body()


def test_from_parts() -> None:
    """A request builds from the four parts frameworks expose."""
    request = WebhookRequest.from_parts("POST", "https://x/cb", {"A": "b"}, b"body")
    assert (request.method, request.url, request.header("a"), request.body) == (
        "POST",
        "https://x/cb",
        "b",
        b"body",
    )
