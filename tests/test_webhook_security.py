"""Hostile callbacks, per provider and attack: forged, moved, replayed, tampered, oversized.

One table row per provider that authenticates its callbacks and per attack. Every row that
applies is run twice, through ``client.webhooks.handle`` (the typed error) and through
``anysend.asgi.WebhookApp`` (the HTTP answer), and in both cases the store must be exactly as
it was. A row that cannot apply to a provider (it signs no timestamp, no URL, no body) is
skipped with the reason, so that ``docs/reliability.md`` can say what is checked for whom.
Genuine callbacks built the same way are accepted and stored (the control that keeps every
refusal meaningful). The signers live in ``tests/strategies.py``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

import anysend
from anysend import WebhookRequest, WebhookVerificationError
from anysend.asgi import WebhookApp
from anysend.testing import VirtualClock
from tests.strategies import (
    ANYSEND_WEBHOOK,
    SIGNED_PROVIDERS,
    Payload,
    SignedProvider,
    payload,
)

pytestmark = pytest.mark.anyio

Attack = Literal["missing", "forged", "tampered", "other_url", "replay", "oversized"]
ATTACKS: dict[Attack, str] = {
    "missing": "no signature (or credential) at all",
    "forged": "signed with a wrong secret or key",
    "tampered": "a genuine signature over a changed body (or GET query)",
    "other_url": "a genuine callback sent to another URL (another anysend message id)",
    "replay": "a genuine callback sent again after the replay window",
    "oversized": "a genuine callback over WebhookApp's max_body (1 MiB)",
}

#: The callback each provider's rows use (one that parses into events).
PRIMARY: dict[str, str] = {
    "twilio": "twilio/status_delivered.form",
    "sendgrid": "sendgrid/delivered.json",
    "mailgun": "mailgun/delivered.json",
    "postmark": "postmark/delivery.json",
    "ses": "ses/delivery.json",
    "vonage-jwt": "vonage/dlr_delivered.json",
    "vonage-sig": "vonage/dlr_rejected_err6.form",
    "plivo": "plivo/status_delivered.form",
    "smsapi": "smsapi/mo_sms.form",
    "telegram": "telegram/message_text.json",
    "viber": "viber/delivered.json",
    "whatsapp": "whatsapp/status_delivered.json",
    "messenger": "messenger/delivery.json",
}


def _no_time(who: str, key: str) -> str:
    return (
        f"{who} signs no timestamp, so no replay window is possible; "
        f"the store deduplicates a replay ({key})"
    )


def _no_url(who: str) -> str:
    return f"{who} signs no URL and reads nothing from it: another URL changes nothing"


def _unsigned(who: str, credential: str) -> str:
    return f"{who} signs no body: {credential} proves the sender, TLS protects the body"


#: Why an attack does not apply to a provider (the rows are skipped with this reason).
NOT_APPLICABLE: dict[tuple[str, Attack], str] = {
    ("twilio", "replay"): _no_time("X-Twilio-Signature", "MessageSid and status"),
    ("plivo", "replay"): _no_time("Plivo's V3 signature", "MessageUUID, status and Sequence"),
    ("postmark", "replay"): _no_time("Postmark (Basic auth only)", "record type and content"),
    ("smsapi", "replay"): _no_time("SMSAPI (a URL secret only)", "MsgId, status and done date"),
    ("telegram", "replay"): _no_time("Telegram (a secret header only)", "chat and message id"),
    ("whatsapp", "replay"): _no_time("X-Hub-Signature-256", "wamid and status"),
    ("messenger", "replay"): _no_time("X-Hub-Signature-256", "mid, or the watermark"),
    ("postmark", "tampered"): _unsigned("Postmark", "HTTP Basic auth"),
    ("smsapi", "tampered"): _unsigned("SMSAPI", "the secret in the URL"),
    ("telegram", "tampered"): _unsigned("Telegram", "the secret token header"),
    ("sendgrid", "other_url"): _no_url("SendGrid"),
    ("mailgun", "other_url"): _no_url("Mailgun"),
    ("postmark", "other_url"): _no_url("Postmark"),
    ("ses", "other_url"): _no_url("SNS"),
    ("vonage-jwt", "other_url"): _no_url("Vonage's JWT") + " (a bodiless GET is refused)",
    ("vonage-sig", "other_url"): _no_url("Vonage's sig on a POST") + " (a GET's query is signed)",
    ("smsapi", "other_url"): "SMSAPI's one credential is the URL's secret: any URL with it is it",
    ("telegram", "other_url"): _no_url("Telegram"),
    ("viber", "other_url"): "Viber signs the body only (its signature may come as ?sig=): "
    "another URL changes nothing",
    ("whatsapp", "other_url"): _no_url("Meta (WhatsApp)"),
    ("messenger", "other_url"): _no_url("Meta (Messenger)"),
}
#: Rows whose attack follows the genuine callback (Mailgun signs only a token and a time:
#: the body swapped under a token already seen is what it can detect).
PRIMED: frozenset[tuple[str, Attack]] = frozenset({("mailgun", "tampered")})


@dataclass(frozen=True)
class Row:
    """One provider and one attack."""

    key: str
    attack: Attack

    @property
    def signer(self) -> SignedProvider:
        """The provider's signer."""
        return SIGNED_PROVIDERS[self.key]

    @property
    def skip(self) -> str | None:
        """Why the attack does not apply, if it does not."""
        return NOT_APPLICABLE.get((self.key, self.attack))


ROWS = [Row(key, attack) for key in SIGNED_PROVIDERS for attack in ATTACKS]


def params(*, handle: bool) -> list[Any]:
    """The rows as pytest parameters; rows that do not apply are skipped with the reason."""
    out = []
    for row in ROWS:
        reason = row.skip
        if handle and row.attack == "oversized":
            reason = "size is the web layer's limit: WebhookApp(max_body=...) answers 413"
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        out.append(pytest.param(row, id=f"{row.key}-{row.attack}", marks=marks))
    return out


# -- the rig: a client with a store, and the ASGI app in front of it ------------------------------


def snapshot(path: Path, *, counters: bool = True) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store (its schema version aside).

    ``counters=False`` leaves out SQLite's AUTOINCREMENT counters, which an insert that was
    ignored as a duplicate still advances.
    """
    skip = {"anysend_meta"} | (set() if counters else {"sqlite_sequence"})
    with closing(sqlite3.connect(path)) as db:
        tables = [
            name
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if name not in skip
        ]
        return {t: sorted(map(tuple, db.execute(f"SELECT * FROM {t}"))) for t in tables}  # noqa: S608


@dataclass
class Rig:
    """A client with a store file and a virtual clock shared with its adapter."""

    signer: SignedProvider
    client: anysend.AsyncClient
    clock: VirtualClock
    path: Path

    def stored(self, *, counters: bool = True) -> dict[str, list[tuple[Any, ...]]]:
        """What the store holds now."""
        return snapshot(self.path, counters=counters)

    def now(self) -> float:
        """The virtual clock as unix time."""
        return self.clock.now().timestamp()

    async def handle(self, request: WebhookRequest) -> list[Any]:
        """``client.webhooks.handle`` for this provider."""
        return await self.client.webhooks.handle(self.signer.name, request)

    async def post(self, request: WebhookRequest, **app_options: Any) -> httpx.Response:
        """``request`` sent through ``WebhookApp`` over HTTP, as the provider would send it."""
        app = WebhookApp(self.client, prefix="/hooks", **app_options)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport) as http:
            return await http.request(
                request.method, request.url, headers=request.headers, content=request.body
            )


@asynccontextmanager
async def rig(tmp_path: Path, key: str, **settings: Any) -> AsyncIterator[Rig]:
    """A fresh client with ``key``'s adapter and an empty store (its schema created)."""
    signer = SIGNED_PROVIDERS[key]
    clock = VirtualClock()
    path = tmp_path / "anysend.db"
    adapter = signer.build(clock)
    client = anysend.AsyncClient([adapter], store=str(path), clock=clock)
    try:
        assert client.store is not None
        await client.store.get_message("none")  # creates the schema
        yield Rig(signer, client, clock, path)
    finally:
        await client.aclose()


# -- the attacks ----------------------------------------------------------------------------------


def _tamper_json(value: Any) -> Any:
    """``value`` with its first string changed (Mailgun's signature block left alone)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("signature", "Signature"):
                continue
            changed = _tamper_json(item)
            if changed is not item:
                return {**value, key: changed}
    if isinstance(value, list):
        for index, item in enumerate(value):
            changed = _tamper_json(item)
            if changed is not item:
                return [*value[:index], changed, *value[index + 1 :]]
    if isinstance(value, str):
        return value + "-forged"
    return value


def _tamper_pairs(text: str) -> str:
    """A form or query with its first value (not a signature) changed."""
    pairs = parse_qsl(text, keep_blank_values=True)
    index = next(i for i, (k, _) in enumerate(pairs) if k not in ("sig", "timestamp", "token"))
    pairs[index] = (pairs[index][0], pairs[index][1] + "9")
    return urlencode(pairs)


def tampered(request: WebhookRequest) -> WebhookRequest:
    """``request`` with its content changed after it was signed (headers and URL kept)."""
    if not request.body:
        parts = urlsplit(request.url)
        query = _tamper_pairs(parts.query)
        return request.model_copy(update={"url": urlunsplit(parts._replace(query=query))})
    try:
        data = json.loads(request.body)
    except ValueError:
        body = _tamper_pairs(request.body.decode()).encode()
    else:
        body = json.dumps(_tamper_json(data)).encode()
    assert body != request.body
    return request.model_copy(update={"body": body})


def other_url(request: WebhookRequest) -> WebhookRequest:
    """``request`` sent to the URL of another anysend message."""
    url = request.url.replace("anysend_message_id=msg-1", "anysend_message_id=msg-2")
    assert url != request.url
    return request.model_copy(update={"url": url})


def padded(item: Payload, size: int) -> Payload:
    """``item`` grown past ``size`` bytes with a field the parser ignores."""
    if item.is_json:
        data = json.loads(item.data)
        if isinstance(data, dict):
            data["anysend_padding"] = "x" * size
            return item.replace(json.dumps(data).encode())
        return item.replace(item.data + b" " * size)
    return item.replace(item.data + b"&anysend_padding=" + b"x" * size)


def attacked(row: Row, rig_: Rig) -> WebhookRequest:
    """The hostile request of ``row``, made at the rig's current time."""
    signer, item = row.signer, payload(PRIMARY[row.key])
    at = rig_.now()
    if row.attack in ("missing", "forged"):
        return signer.request(item, at, "unsigned" if row.attack == "missing" else "forged")
    genuine = signer.request(item, at)
    if row.attack == "tampered":
        return tampered(genuine)
    assert row.attack == "other_url", row.attack
    return other_url(genuine)


# -- the controls: genuine callbacks are accepted and stored --------------------------------------


@pytest.mark.parametrize("key", sorted(SIGNED_PROVIDERS))
async def test_genuine_callback_is_stored_through_handle(tmp_path: Path, key: str) -> None:
    """A genuine callback, signed now, is accepted and changes the store (the control)."""
    async with rig(tmp_path, key) as r:
        before = r.stored()
        events = await r.handle(r.signer.request(payload(PRIMARY[key]), r.now()))
        assert events
        assert r.stored() != before


@pytest.mark.parametrize("key", sorted(SIGNED_PROVIDERS))
async def test_genuine_callback_is_stored_through_asgi(tmp_path: Path, key: str) -> None:
    """The same genuine callback over HTTP: 200 and stored (the URL rebuilt as signed)."""
    async with rig(tmp_path, key) as r:
        before = r.stored()
        response = await r.post(r.signer.request(payload(PRIMARY[key]), r.now()))
        assert response.status_code == 200, response.text
        assert r.stored() != before


@pytest.mark.parametrize(
    "key", sorted(k for k in SIGNED_PROVIDERS if (k, "replay") not in NOT_APPLICABLE)
)
async def test_replay_window_edge_is_still_accepted(tmp_path: Path, key: str) -> None:
    """1 s before the replay window ends a genuine callback is still stored (the control)."""
    async with rig(tmp_path, key) as r:
        request = r.signer.request(payload(PRIMARY[key]), r.now())
        r.clock.advance(_window(r) - 1)
        before = r.stored()
        assert await r.handle(request)
        assert r.stored() != before


# -- the table ------------------------------------------------------------------------------------


def _window(rig_: Rig) -> float:
    adapter = rig_.client.providers[rig_.signer.name]
    window = getattr(adapter, "replay_window", None)
    if window is None:
        window = getattr(adapter.settings, "replay_window", None)
    assert window is not None, f"{rig_.signer.key} has no replay window"
    return float(window)


async def _prepare(row: Row, r: Rig) -> WebhookRequest:
    """Prime the store where the row says so, then make the hostile request."""
    if (row.key, row.attack) in PRIMED:
        await r.handle(row.signer.request(payload(PRIMARY[row.key]), r.now()))
    if row.attack == "replay":
        request = row.signer.request(payload(PRIMARY[row.key]), r.now())
        r.clock.advance(_window(r) + 1)
        return request
    return attacked(row, r)


@pytest.mark.parametrize("row", params(handle=True))
async def test_attack_through_handle_is_refused_and_nothing_stored(
    tmp_path: Path, row: Row
) -> None:
    """``client.webhooks.handle`` raises WebhookVerificationError; the store is unchanged."""
    async with rig(tmp_path, row.key) as r:
        request = await _prepare(row, r)
        before = r.stored()
        with pytest.raises(WebhookVerificationError):
            await r.handle(request)
        assert r.stored() == before


@pytest.mark.parametrize("row", params(handle=False))
async def test_attack_through_asgi_is_refused_and_nothing_stored(tmp_path: Path, row: Row) -> None:
    """``WebhookApp`` answers 401 (413 for an oversized body); the store is unchanged."""
    async with rig(tmp_path, row.key) as r:
        if row.attack == "oversized":
            limit = 1_048_576
            item = padded(r.signer.freshen(payload(PRIMARY[row.key]), r.now()), limit)
            request = r.signer.signed(item, r.now())
            assert len(request.body) > limit
            before = r.stored()
            response = await r.post(request)
            assert response.status_code == 413
            assert r.stored() == before
            # The same bytes under a larger limit are genuine: only their size was refused.
            accepted = await r.post(request, max_body=len(request.body))
            assert accepted.status_code == 200, accepted.text
            assert r.stored() != before
            return
        request = await _prepare(row, r)
        before = r.stored()
        response = await r.post(request)
        assert response.status_code == 401, response.text
        assert r.stored() == before


# -- rows outside the table -----------------------------------------------------------------------


async def test_vonage_jwt_does_not_vouch_for_a_get_query(tmp_path: Path) -> None:
    """A JWT signs the body; a bodiless GET's query is unsigned, so it is refused (401)."""
    async with rig(tmp_path, "vonage-jwt") as r:
        genuine = r.signer.request(payload("vonage/dlr_delivered.json"), r.now())
        assert await r.handle(genuine)
        query = payload("vonage/dlr_expired.query")
        request = r.signer.request(query, r.now())
        before = r.stored()
        with pytest.raises(WebhookVerificationError, match="query"):
            await r.handle(request)
        response = await r.post(tampered(request))
        assert response.status_code == 401
        assert r.stored() == before


async def test_vonage_sig_covers_a_get_query(tmp_path: Path) -> None:
    """With ``sig`` a GET callback's query is signed: a changed query is refused."""
    async with rig(tmp_path, "vonage-sig") as r:
        genuine = r.signer.request(payload("vonage/dlr_expired.query"), r.now())
        before = r.stored()
        response = await r.post(tampered(genuine))
        assert response.status_code == 401
        assert r.stored() == before
        assert await r.handle(genuine)


async def test_plivo_v2_downgrade_is_refused_when_v2_is_off(tmp_path: Path) -> None:
    """V3 headers stripped, V2 kept and the body changed: refused with V2 signatures off.

    V2 signs the URL without its query and nothing of the body (the adapter accepts it by
    default, as documented, for accounts whose callbacks carry no V3 yet).
    """
    signer = SIGNED_PROVIDERS["plivo"]
    clock = VirtualClock()
    genuine = signer.request(payload(PRIMARY["plivo"]), clock.now().timestamp())
    v2_only = {k: v for k, v in genuine.headers.items() if "v3" not in k}
    downgraded = tampered(genuine.model_copy(update={"headers": v2_only}))
    strict = signer.build(clock)
    object.__setattr__(
        strict, "settings", strict.settings.model_copy(update={"accept_v2_signatures": False})
    )
    with pytest.raises(WebhookVerificationError, match="V2"):
        strict.parse_webhook(downgraded)


@pytest.mark.parametrize("mode", ["unsigned", "forged", "tampered", "replay", "genuine"])
def test_anysend_webhook_signature(mode: str) -> None:
    """anysend's own Webhook scheme: only a genuine, current, unchanged request verifies."""
    clock = VirtualClock()
    adapter = ANYSEND_WEBHOOK.build(clock)
    item = ANYSEND_WEBHOOK.payloads[0]
    at = clock.now().timestamp()
    if mode in ("unsigned", "forged"):
        request = ANYSEND_WEBHOOK.request(item, at, mode)  # type: ignore[arg-type]
    else:
        request = ANYSEND_WEBHOOK.request(item, at)
    if mode == "tampered":
        request = tampered(request)
    if mode == "replay":
        clock.advance(301)
    if mode == "genuine":
        adapter.verify_webhook(request)
        return
    with pytest.raises(WebhookVerificationError):
        adapter.verify_webhook(request)


async def test_declared_oversized_body_is_refused_before_reading(tmp_path: Path) -> None:
    """A Content-Length over max_body is answered 413 before the body is read or verified."""
    async with rig(tmp_path, "twilio") as r:
        request = r.signer.request(payload(PRIMARY["twilio"]), r.now())
        before = r.stored()
        response = await r.post(request, max_body=len(request.body) - 1)
        assert response.status_code == 413
        assert r.stored() == before


def test_every_signing_provider_has_a_row() -> None:
    """Each adapter that verifies callbacks is in the table (new adapters must be added)."""
    from anysend.providers import Provider, available, load

    verifying = {
        name
        for name in available()
        if load(name).verify_webhook is not Provider.verify_webhook
        and load(name).parse_webhook_events is not Provider.parse_webhook_events
    }
    assert verifying == {s.name for s in SIGNED_PROVIDERS.values()}
    assert all(row.key in PRIMARY for row in ROWS)
    assert set(NOT_APPLICABLE) <= {(row.key, row.attack) for row in ROWS}


@pytest.mark.parametrize("key", sorted(k for (k, attack) in NOT_APPLICABLE if attack == "replay"))
async def test_replay_without_a_signed_timestamp_is_stored_once(tmp_path: Path, key: str) -> None:
    """Where nothing signed dates a callback, a replay a day later leaves the store as it was."""
    async with rig(tmp_path, key) as r:
        request = r.signer.request(payload(PRIMARY[key]), r.now())
        assert await r.handle(request)
        once = r.stored(counters=False)
        r.clock.advance(86_400)
        await r.handle(request)
        assert r.stored(counters=False) == once
