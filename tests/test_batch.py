"""anysend._batch: which messages may share a batch request, and how chunks fill."""

from __future__ import annotations

from typing import Any

import pytest

from anysend import (
    Attachment,
    Channel,
    ConfigurationError,
    InvalidRecipientError,
    OutboundMessage,
    Recipient,
)
from anysend._batch import Batcher, batch_key, split_item
from anysend.providers.mailgun import Mailgun
from anysend.providers.sendgrid import SendGrid
from anysend.testing import MemoryProvider

SENDGRID = SendGrid(api_key="SG.key", sender="shop@example.com")
MAILGUN = Mailgun(api_key="key", domain="mg.example.com", sender="shop@mg.example.com")


def outbound(number: int = 0, **fields: Any) -> OutboundMessage:
    fields.setdefault("subject", "Spring sale")
    fields.setdefault("text", "20% off")
    return OutboundMessage(
        id=f"msg-{number}", channel=Channel.EMAIL, to=f"user{number}@example.com", **fields
    )


def test_messages_differing_only_in_what_the_provider_personalises_share_a_key() -> None:
    shared = {
        "metadata": {"campaign": "spring"},
        "headers": {"X-Campaign": "spring"},
        "attachments": (Attachment(filename="prices.pdf", content=b"%PDF"),),
        "provider_options": {"asm": {"group_id": 4}},
    }
    ann = outbound(0, recipient=Recipient(name="Ann"), locale="pl", **shared)
    bob = outbound(1, idempotency_key="k", **shared)
    assert batch_key(SENDGRID, ann) == batch_key(SENDGRID, bob)
    assert hash(batch_key(SENDGRID, ann)) == hash(batch_key(SENDGRID, bob))
    assert batch_key(MAILGUN, ann) == batch_key(MAILGUN, bob)


@pytest.mark.parametrize(
    "change",
    [
        {"text": "30% off"},
        {"html": "<p>20% off</p>"},
        {"metadata": {"campaign": "autumn"}},
        {"headers": {"X-Campaign": "autumn"}},
        {"tags": ("sale",)},
        {"attachments": (Attachment(filename="other.pdf", content=b"%PDF"),)},
        {"provider_options": {"asm": {"group_id": 5}}},
        {"sender": "other@example.com"},
    ],
)
def test_any_other_difference_keeps_messages_apart(change: dict[str, Any]) -> None:
    for provider in (SENDGRID, MAILGUN):
        assert batch_key(provider, outbound(0)) != batch_key(provider, outbound(1, **change))


def test_the_subject_may_differ_at_sendgrid_only() -> None:
    ann, bob = outbound(0, subject="Hi Ann"), outbound(1, subject="Hi Bob")
    assert batch_key(SENDGRID, ann) == batch_key(SENDGRID, bob)
    assert batch_key(MAILGUN, ann) != batch_key(MAILGUN, bob)


def test_what_cannot_batch_has_no_key() -> None:
    assert batch_key(SENDGRID, outbound(cc=("boss@example.com",))) is None
    assert batch_key(MAILGUN, outbound(bcc=("audit@example.com",))) is None
    assert batch_key(MemoryProvider(name="mail", channels={"email"}), outbound()) is None


def test_chunks_fill_to_their_size_and_are_handed_out_when_full() -> None:
    batcher: Batcher[int] = Batcher()
    full = [batcher.add("k", 3, f"user{n}@example.com", n) for n in range(7)]
    handed = [chunk.items for chunk in full if chunk is not None]
    assert handed == [[0, 1, 2], [3, 4, 5]]
    assert [chunk.items for chunk in batcher.flush()] == [[6]]
    assert batcher.flush() == []


def test_an_address_never_appears_twice_in_a_chunk() -> None:
    batcher: Batcher[str] = Batcher()
    for item, address in [
        ("a", "ann@example.com"),
        ("b", "bob@example.com"),
        ("A", "ANN@example.com"),
        ("a2", "ann@example.com"),
        ("c", "cy@example.com"),
    ]:
        assert batcher.add("k", 10, address, item) is None
    batcher.add("other", 10, "ann@example.com", "x")
    assert [chunk.items for chunk in batcher.flush()] == [["a", "b", "c"], ["A"], ["a2"], ["x"]]


def test_a_chunk_holds_at_least_one() -> None:
    with pytest.raises(ConfigurationError):
        Batcher[int]().add("k", 0, "a@example.com", 1)


def test_items_are_recipients_or_pairs_with_data() -> None:
    ann = Recipient(email="ann@example.com")
    assert split_item(ann) == (ann, {})
    assert split_item("user-42") == ("user-42", {})
    assert split_item({"email": "a@example.com"}) == (Recipient(email="a@example.com"), {})
    with pytest.raises(InvalidRecipientError, match="emial") as caught:
        split_item({"emial": "a@example.com"})  # a typo is a typed error, not pydantic's
    assert caught.value.field == "emial"
    assert split_item((ann, {"name": "Ann"})) == (ann, {"name": "Ann"})
    bad_items: list[object] = [42, (ann,), (ann, "data"), (42, {}), (ann, {}, {})]
    for bad in bad_items:
        with pytest.raises(ConfigurationError):
            split_item(bad)
