"""Hostile input, property-based: only anysend's own errors, and nothing stored unverified.

Random and mutated input (the real fixtures of ``tests/fixtures``, damaged with the helpers of
``tests/strategies.py``) goes to every parser that reads what others send:

* every callback adapter: hostile requests (any method, URL, headers, body) with a forged or
  missing credential are refused with ``WebhookVerificationError``, always; genuinely signed
  but damaged payloads give events or ``WebhookParseError``/``WebhookVerificationError``;
* ``client.webhooks.handle`` with a store: a request that does not verify raises
  ``WebhookVerificationError`` and leaves the store exactly as it was; a verified one with a
  damaged payload raises only our errors;
* ``anysend.asgi.WebhookApp``: any request gets 401, 400, 404, 405 or 413 (never 500);
* the provider URL and environment parser (``from_url``, ``from_urls``, ``from_env``,
  ``Client.from_env``): ``ConfigurationError`` only;
* the template layer (random sources and data, strict and sandboxed): ``TemplateError`` or
  ``ConfigurationError`` only, data never rendered as a template, HTML data escaped;
* the SMS segmenter: any text, lone surrogates included, splits without error.

Each property runs a fixed number of derandomized examples (:data:`EXAMPLES`), so CI time is
bounded and the same examples run every time; ``@example`` rows keep the bugs found.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import string
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import markupsafe
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import anysend
from anysend import (
    Channel,
    ConfigurationError,
    DeliveryEvent,
    InboundMessage,
    TemplateError,
    WebhookParseError,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend._templates import RenderedContent, Templates
from anysend.asgi import WebhookApp
from anysend.providers import Provider, available, load
from anysend.providers._config import from_env, from_url, from_urls, redact_url, to_url
from anysend.sms import GSM7_EXTENSION, segments
from anysend.testing import VirtualClock
from tests.strategies import (
    ANYSEND_WEBHOOK,
    SIGNED_PROVIDERS,
    Mode,
    Payload,
    SignedProvider,
    damaged_json,
    edited_bytes,
)

#: Examples per property, and per provider for the properties run for each provider: bounded,
#: and the same every run (derandomized).
EXAMPLES = 200
EXAMPLES_PER_PROVIDER = 100
_SETTINGS: dict[str, Any] = {
    "deadline": None,
    "derandomize": True,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
FUZZ = settings(max_examples=EXAMPLES, **_SETTINGS)
FUZZ_PER_PROVIDER = settings(max_examples=EXAMPLES_PER_PROVIDER, **_SETTINGS)
#: Every signer, anysend's own Webhook scheme included (it verifies but parses nothing).
SIGNERS: dict[str, SignedProvider] = {**SIGNED_PROVIDERS, "webhook": ANYSEND_WEBHOOK}
WEBHOOK_ERRORS = (WebhookVerificationError, WebhookParseError)


# -- hostile requests -----------------------------------------------------------------------------

_LATIN1 = st.characters(min_codepoint=0, max_codepoint=255)
#: Hosts a caller controls through ``Host`` (WebhookApp rebuilds the URL from it).
_HOSTS = st.sampled_from(
    [
        "hooks.example.com",
        "hooks.example.com:443",
        "hooks.example.com:99999",
        "hooks.example.com:x",
        "[::1]:8443",
        "[::1",
        "[v1.x]",
        "",
        "user:pw@hooks.example.com",
        "hooks.example.com\uff03",  # NFKC-normalises to '#': urlsplit refuses it
        "xn--e1afmkfd.example",
        "例え.jp",
    ]
) | st.text(_LATIN1, max_size=20)
_QUERIES = st.sampled_from(
    ["", "anysend_message_id=msg-1", "anysend_message_id=msg-2&anysend_message_id=", "sig=00"]
) | st.text(max_size=40)


@st.composite
def hostile_urls(draw: st.DrawFn, signer: SignedProvider) -> str:
    """The provider's callback URL, or one with a hostile scheme, host, path or query."""
    if draw(st.booleans()):
        base = signer.url
    else:
        scheme = draw(st.sampled_from(["https", "http", "HTTPS", "ftp", ""]))
        path = draw(st.sampled_from([f"/hooks/{signer.name}", "/", ""]) | st.text(max_size=20))
        base = f"{scheme}://{draw(_HOSTS)}{path}"
    query = draw(_QUERIES)
    return f"{base}?{query}" if query else base


def _bodies(item: Payload, data: st.DataObject) -> bytes:
    """``item``'s bytes as they are, damaged, edited, or replaced by random bytes."""
    how = data.draw(st.sampled_from(["as is", "damaged", "edited", "random"]))
    if how == "damaged" and item.is_json:
        return damaged_json(item.data, data)
    if how in ("damaged", "edited") and item.data:
        return edited_bytes(item.data, data)
    if how == "random":
        return data.draw(st.binary(max_size=300))
    return item.data


def hostile_request(signer: SignedProvider, data: st.DataObject) -> WebhookRequest:
    """A callback of ``signer`` whose credential is missing or forged, then made worse.

    The body is damaged or random, the URL and method may be anything, and the headers may be
    dropped or given random (Latin-1, as ASGI gives them) values, so that nothing verifies.
    """
    item = data.draw(st.sampled_from(signer.payloads))
    at = VirtualClock().now().timestamp()
    mode: Mode = "forged" if data.draw(st.booleans()) else "unsigned"
    item = item.replace(_bodies(signer.freshen(item, at), data))
    request = signer.signed(item, at, mode)
    if data.draw(st.booleans()):
        request = request.model_copy(update={"url": data.draw(hostile_urls(signer))})
    headers = dict(request.headers)
    for name in data.draw(st.lists(st.sampled_from(sorted(headers) or ["x"]), max_size=3)):
        if data.draw(st.booleans()):
            headers.pop(name, None)
        else:
            headers[name] = data.draw(st.text(_LATIN1, max_size=120))
    headers.update(
        data.draw(st.dictionaries(st.text(max_size=30), st.text(_LATIN1, max_size=30), max_size=3))
    )
    method = data.draw(st.sampled_from(["POST", "GET", "post", "PUT", item.method]))
    return request.model_copy(update={"headers": headers, "method": method})


def _check_flow(adapter: Provider, request: WebhookRequest) -> None:
    """Drive ``webhook_flow`` like the client does, answering any fetch with a 404."""
    flow = adapter.webhook_flow(request)
    try:
        fetch = next(flow)
        # Only an https URL of an Amazon SNS host is ever fetched (SES's certificate).
        assert fetch.url.scheme == "https"
        assert fetch.url.host.endswith(".amazonaws.com")
        flow.send(httpx.Response(404, request=fetch))
    except StopIteration:
        raise AssertionError("a request without a valid signature was accepted") from None
    finally:
        flow.close()


@pytest.mark.parametrize("key", sorted(SIGNERS))
@FUZZ_PER_PROVIDER
@given(data=st.data())
def test_unverified_requests_are_refused_with_our_error(key: str, data: st.DataObject) -> None:
    """A forged or missing credential, whatever else the request holds: refused, typed."""
    signer = SIGNERS[key]
    adapter = signer.build(VirtualClock())
    request = hostile_request(signer, data)
    with pytest.raises(WebhookVerificationError):
        adapter.parse_webhook(request)
    with pytest.raises(WebhookVerificationError):
        _check_flow(adapter, request)


#: URLs ``urllib.parse.urlsplit`` refuses with ValueError. WebhookApp builds the URL from the
#: caller's ``Host`` header, so anyone can send them; they crashed the verification of Twilio,
#: Plivo, SMSAPI, Viber and Vonage (a 500 from WebhookApp, a ValueError from ``handle``).
UNSPLITTABLE_URLS = [
    "https://[::1/hooks/x?anysend_message_id=msg-1",
    "https://hooks.example.com\uff03/hooks/x?sig=1&token=2",
]


@pytest.mark.parametrize("url", UNSPLITTABLE_URLS, ids=["ipv6-bracket", "nfkc-netloc"])
@pytest.mark.parametrize("key", sorted(SIGNERS))
def test_unsplittable_urls_are_refused_with_our_error(key: str, url: str) -> None:
    """A genuine callback at a URL urllib cannot split: events or our errors (regression).

    Providers that sign the URL or carry a secret in it (Twilio, Plivo, SMSAPI) refuse it.
    """
    signer = SIGNERS[key]
    clock = VirtualClock()
    request = signer.request(signer.payloads[0], clock.now().timestamp())
    hostile = request.model_copy(update={"url": url})
    adapter = signer.build(clock)
    if key in ("twilio", "plivo", "smsapi"):
        with pytest.raises(WebhookVerificationError):
            adapter.parse_webhook(hostile)
        return
    try:
        events = adapter.parse_webhook(hostile)
    except WEBHOOK_ERRORS:
        return
    _only_events(events)


@pytest.mark.parametrize("url", ["https://[x/cert.pem", "https://sns.amazonaws.com\uff03/c.pem"])
def test_ses_unsplittable_certificate_url_is_refused(url: str) -> None:
    """An SNS ``SigningCertURL`` urllib cannot split: refused before any fetch (regression)."""
    signer = SIGNED_PROVIDERS["ses"]
    clock = VirtualClock()
    item = signer.freshen(signer.payloads[0], clock.now().timestamp())
    envelope = json.loads(item.data) | {"SigningCertURL": url}
    request = signer.signed(item.replace(json.dumps(envelope).encode()), clock.now().timestamp())
    with pytest.raises(WebhookVerificationError, match="SigningCertURL"):
        next(signer.build(clock).webhook_flow(request))


def _damaged(signer: SignedProvider, item: Payload, data: st.DataObject) -> Payload:
    """``item`` damaged; for SES, the SES record inside the SNS envelope (which is re-signed)."""
    if signer.key != "ses":
        return item.replace(_bodies(item, data))
    envelope = json.loads(item.data)
    try:
        kind = "application/json" if json.loads(envelope["Message"]) else None
    except ValueError:
        kind = None  # a notice in plain text ("Successfully validated SNS topic...")
    inner = Payload(item.file, "POST", kind, envelope["Message"].encode())
    envelope["Message"] = _bodies(inner, data).decode("utf-8", "replace")
    return item.replace(json.dumps(envelope).encode())


def _only_events(events: object) -> None:
    assert isinstance(events, list)
    assert all(isinstance(e, (DeliveryEvent, InboundMessage)) for e in events)


@pytest.mark.parametrize("key", sorted(SIGNED_PROVIDERS))
@FUZZ_PER_PROVIDER
@given(data=st.data())
def test_signed_damaged_payloads_give_events_or_our_errors(key: str, data: st.DataObject) -> None:
    """Genuinely signed, damaged callbacks: events, or our webhook errors (nothing else)."""
    signer = SIGNED_PROVIDERS[key]
    clock = VirtualClock()
    adapter = signer.build(clock)
    at = clock.now().timestamp()
    item = data.draw(st.sampled_from(signer.payloads))
    request = signer.signed(_damaged(signer, signer.freshen(item, at), data), at)
    try:
        events = adapter.parse_webhook(request)
    except WEBHOOK_ERRORS:
        return
    _only_events(events)


#: Adapters that receive no callbacks at all (push, chat webhooks, SMTP, test doubles).
NO_CALLBACKS = sorted(n for n in available() if load(n).verify_webhook is Provider.verify_webhook)


@pytest.mark.parametrize("name", NO_CALLBACKS)
@settings(max_examples=20, **_SETTINGS)
@given(data=st.data())
def test_adapters_without_callbacks_refuse_everything(name: str, data: st.DataObject) -> None:
    """An adapter that receives no callbacks refuses any request with our error."""
    cls = load(name)
    adapter = cls.__new__(cls)  # no settings needed: nothing of the request is read
    signer = data.draw(st.sampled_from(sorted(SIGNERS.values(), key=lambda s: s.key)))
    request = hostile_request(signer, data)
    for verify in (True, False):
        with pytest.raises(WebhookVerificationError, match="does not receive callbacks"):
            adapter.parse_webhook(request, verify=verify)


# -- client.webhooks.handle with a store ----------------------------------------------------------


def snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the store (its schema version aside)."""
    with closing(sqlite3.connect(path)) as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            name: sorted(map(tuple, db.execute(f"SELECT * FROM {name}")))  # noqa: S608
            for name in names
            if name != "anysend_meta"
        }


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[anysend.Client, Path]]:
    """A sync client with every signing adapter (one per name) and a store file.

    Its HTTP client answers 404 to everything: no test reaches the network (an SNS
    certificate URL in a damaged SES body would otherwise be fetched).
    """
    clock = VirtualClock()
    adapters = {s.name: s.build(clock) for s in SIGNED_PROVIDERS.values()}
    path = tmp_path_factory.mktemp("fuzz") / "anysend.db"
    http = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    client = anysend.Client(list(adapters.values()), store=str(path), clock=clock, http_client=http)
    assert client.store is not None
    client.store.get_message("none")  # creates the schema
    with client:
        yield client, path
    http.close()


@FUZZ
@given(key=st.sampled_from(sorted(SIGNED_PROVIDERS)), data=st.data())
def test_handle_never_stores_an_unverified_body(
    receiver: tuple[anysend.Client, Path], key: str, data: st.DataObject
) -> None:
    """``webhooks.handle`` of a forged or unsigned request: refused, typed; store unchanged."""
    client, path = receiver
    signer = SIGNED_PROVIDERS[key]
    request = hostile_request(signer, data)
    before = snapshot(path)
    with pytest.raises(WebhookVerificationError):
        client.webhooks.handle(signer.name, request)
    assert snapshot(path) == before


@FUZZ
@given(key=st.sampled_from(sorted(SIGNED_PROVIDERS)), data=st.data())
def test_handle_of_signed_damaged_payloads_raises_only_our_errors(
    receiver: tuple[anysend.Client, Path], key: str, data: st.DataObject
) -> None:
    """Verified but damaged callbacks are stored or refused with our errors, never crash."""
    client, _ = receiver
    signer = SIGNED_PROVIDERS[key]
    clock = VirtualClock()
    at = clock.now().timestamp()
    item = data.draw(st.sampled_from(signer.payloads))
    request = signer.signed(_damaged(signer, signer.freshen(item, at), data), at)
    try:
        events = client.webhooks.handle(signer.name, request)
    except WEBHOOK_ERRORS:
        return
    _only_events(events)


# -- the ASGI app: any request, never a 500 -------------------------------------------------------


@st.composite
def asgi_requests(draw: st.DrawFn) -> tuple[str, dict[str, Any], bytes]:
    """A provider name, an ASGI HTTP scope with a hostile host, path, query and headers, a body."""
    key = draw(st.sampled_from(sorted(SIGNED_PROVIDERS)))
    signer = SIGNED_PROVIDERS[key]
    data = draw(st.data())
    request = hostile_request(signer, data)
    host = draw(_HOSTS)
    path = draw(st.sampled_from([f"/hooks/{signer.name}", "/hooks/", "/hooks/nope", "/x"]))
    headers = [(b"host", host.encode("utf-8"))] + [
        (k.encode("utf-8"), v.encode("latin-1")) for k, v in request.headers.items()
    ]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": draw(st.sampled_from(["POST", "GET", "DELETE"])),
        "scheme": draw(st.sampled_from(["https", "http"])),
        "path": path,
        "raw_path": path.encode(),
        "query_string": draw(_QUERIES).encode("utf-8"),
        "root_path": "",
        "headers": headers,
        "server": ("hooks.example.com", 443),
        "client": ("203.0.113.9", 50000),
    }
    return key, scope, request.body


async def _call(app: WebhookApp, scope: dict[str, Any], body: bytes) -> int:
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    return int(sent[0]["status"])


@FUZZ
@given(case=asgi_requests())
@example(
    case=(
        "twilio",
        {
            "type": "http",
            "method": "POST",
            "scheme": "https",
            "path": "/hooks/twilio",
            "raw_path": b"/hooks/twilio",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"[::1"), (b"x-twilio-signature", b"AAAA")],
            "server": ("hooks.example.com", 443),
        },
        b"MessageSid=SM1&MessageStatus=delivered",
    )
).via("a Host that urlsplit refuses (Invalid IPv6 URL) crashed Twilio's verify: 500")
def test_asgi_app_answers_hostile_requests_without_a_500(
    receiver: tuple[anysend.Client, Path], case: tuple[str, dict[str, Any], bytes]
) -> None:
    """Whatever the host, path, query, headers or body: 401, 400, 404, 405 or 413, never 500."""
    client, path = receiver
    _, scope, body = case
    app = WebhookApp(client, prefix="/hooks", max_body=4096)
    before = snapshot(path)
    status = asyncio.run(_call(app, scope, body))
    assert status in (401, 400, 404, 405, 413), status
    assert snapshot(path) == before


# -- provider URLs and the environment ------------------------------------------------------------


def _real_urls() -> list[str]:
    """A URL per configured signing adapter (secrets in clear), and a few plain ones."""
    clock = VirtualClock()
    urls = [to_url(s.build(clock), redact=False) for s in SIGNED_PROVIDERS.values()]
    return [
        *sorted(set(urls)),
        "console://",
        "memory://?channels=sms,email&name=backup",
        "smtp://apikey:s3cr%40t@smtp.example.com:587?from=shop@example.com",
        "slack://?webhook_url=https%3A%2F%2Fhooks.slack.com%2Fservices%2FT000%2FB000%2FXXXX",
    ]


REAL_URLS = _real_urls()
SCHEMES = sorted(available())


_SETTING_VALUES = st.sampled_from(
    ["", "true", "0", "-1", "99999999999999999999", "1e400", "nan", "[", "{}", '{"a":1}', "a,b"]
) | st.text(max_size=30)


@st.composite
def provider_urls(draw: st.DrawFn) -> str:
    """A real provider URL with bytes edited or a setting's value replaced, or any text."""
    how = draw(st.sampled_from(["edited", "value", "tail"]))
    url = draw(st.sampled_from(REAL_URLS))
    if how == "edited":
        return edited_bytes(url.encode(), draw(st.data())).decode("utf-8", "replace")
    if how == "value":
        head, _, query = url.partition("?")
        pairs = parse_qsl(query, keep_blank_values=True) or [("sender", "x")]
        index = draw(st.integers(0, len(pairs) - 1))
        name = draw(st.sampled_from([pairs[index][0], "replay_window", "region", "from"]))
        pairs[index] = (name, draw(_SETTING_VALUES))
        return f"{head}?{urlencode(pairs)}"
    tail = draw(st.text(max_size=60) | st.text(string.printable, max_size=60))
    return f"{draw(st.sampled_from(SCHEMES))}://{tail}"


@FUZZ
@given(url=provider_urls())
def test_provider_urls_give_a_provider_or_configuration_error(url: str) -> None:
    """``from_url`` of an edited real URL: a provider or ConfigurationError; redaction works."""
    try:
        provider = from_url(url)
    except ConfigurationError:
        pass
    else:
        assert isinstance(provider, Provider)
    for cls in (None, *(load(s) for s in ("twilio", "sendgrid", "smtp"))):
        assert isinstance(redact_url(url, cls), str)


_SPEC_SEPARATORS = st.sampled_from(["||", "\n", "\r\n", " || ", "|"])


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    """``ANYSEND_PROVIDERS`` with real and edited URLs, and ``ANYSEND_<NAME>_<FIELD>`` values."""
    urls = draw(st.lists(provider_urls() | st.sampled_from(REAL_URLS), min_size=0, max_size=3))
    env = {"ANYSEND_PROVIDERS": draw(_SPEC_SEPARATORS).join(urls)}
    names = st.sampled_from([s.upper().replace("-", "_") for s in SCHEMES])
    fields = st.sampled_from(
        ["FROM", "SENDER", "AUTH_TOKEN", "API_KEY", "PORT", "CHANNELS", "HEADERS", "NOPE", ""]
    ) | st.text(string.ascii_uppercase + "_", max_size=12)
    for _ in range(draw(st.integers(0, 4))):
        name = f"ANYSEND_{draw(names)}_{draw(fields)}"
        env[name] = draw(
            st.sampled_from(["", "{}", "[1]", "25", "sms,email", '{"a": 1}']) | st.text(max_size=30)
        )
    return env


@FUZZ
@given(spec=st.lists(provider_urls(), max_size=3), separator=_SPEC_SEPARATORS)
def test_url_lists_give_providers_or_configuration_error(spec: list[str], separator: str) -> None:
    """``from_urls`` of several edited URLs: providers, or ConfigurationError."""
    try:
        providers = from_urls(separator.join(spec))
    except ConfigurationError:
        return
    assert all(isinstance(p, Provider) for p in providers)


@FUZZ
@given(env=environments())
def test_environments_give_a_client_or_configuration_error(env: dict[str, str]) -> None:
    """``from_env`` and ``Client.from_env`` of hostile variables: a client or ConfigurationError."""
    try:
        providers = from_env(env)
    except ConfigurationError:
        providers = None
    try:
        client = anysend.Client.from_env(env)
    except ConfigurationError:
        assert providers is None
        return
    with client:
        assert providers is not None
        assert [type(p) for p in client.providers.values()] == [type(p) for p in providers]


# -- templates ------------------------------------------------------------------------------------

#: Pieces of Jinja2 that a template author (or a mistake) may write: tags, filters, sandbox
#: escapes, recursion, broken syntax. No big numbers or repetition: the sandbox bounds
#: ``range`` but not CPU or memory, and template files come from the application.
_TEMPLATE_PIECES = [
    "Hi ",
    "{{ name }}",
    "{{ missing }}",
    "{{ name|upper }}",
    "{{ name|int }}",
    "{{ name|nonexistent_filter }}",
    "{{ name ~ '!' }}",
    "{{ items|join(',') }}",
    "{{ items[7] }}",
    "{{ info.a.b }}",
    "{{ 1 / 0 }}",
    "{{ name.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ name|attr('__class__') }}",
    "{{ items.append(1) }}",
    "{{ info.update({'a': 1}) }}",
    "{{ '{0.__class__}'.format(name) }}",
    "{{ range(3)|list }}",
    "{% if name %}",
    "{% else %}",
    "{% endif %}",
    "{% for x in items %}",
    "{{ x }}",
    "{% endfor %}",
    "{% set y = name %}",
    "{{ y }}",
    "{% raw %}",
    "{% endraw %}",
    "{% include 'a/sms.txt' %}",
    "{% include 'nope/sms.txt' %}",
    "{% extends 'a/chat.txt' %}",
    "{% block b %}",
    "{% endblock %}",
    "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "{{ caller() }}",
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    "\n",
    "\r",
    "\u2028",
    "\x00",
    "<b>",
    "zażółć",
    " ",
]
_TEMPLATE_FILES = [
    "a/sms.txt",
    "a/email.subject.txt",
    "a/email.html",
    "a/email.txt",
    "a/push.title.txt",
    "a/push.body.txt",
    "a/chat.txt",
    "a/pl/sms.txt",
    "a/pl-PL/email.subject.txt",
    "_layouts/base.html",
]
_template_texts = st.lists(st.sampled_from(_TEMPLATE_PIECES) | st.text(max_size=8), max_size=8).map(
    "".join
)
#: Template ``a`` with a random text in some of its part files, and stray files.
_sources = st.builds(
    lambda files, extra: {**extra, **files},
    st.fixed_dictionaries(
        {"a/sms.txt": _template_texts},
        optional=dict.fromkeys(_TEMPLATE_FILES[1:], _template_texts),
    ),
    st.dictionaries(st.text(max_size=12), _template_texts, max_size=2),
)
_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["{{ name }}", "{% raw %}", "<script>x</script>", "\r\nBcc: x@y"]),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_data = st.fixed_dictionaries(
    {},
    optional={"name": _values, "items": _values, "info": _values, "x": _values},
)
_locales = st.sampled_from(
    [None, "pl-PL", "pl_pl", "pl", "en", "pl-PL.UTF-8", "../..", ""]
) | st.text(max_size=8)


@FUZZ
@given(
    source=_sources,
    data=_data,
    name=st.sampled_from(["a"] * 6 + ["_layouts", "nope", "", "a/pl", "../a"])
    | st.text(max_size=6),
    channel=st.sampled_from(list(Channel)),
    locale=_locales,
)
def test_templates_render_or_raise_only_our_errors(
    source: dict[str, str], data: dict[str, Any], name: str, channel: Channel, locale: str | None
) -> None:
    """Any source, data, name, channel and locale: rendered content, None, or our errors."""
    templates = Templates(source, html_to_text=lambda html: html)
    try:
        rendered = templates.render(name, channel, data, locale)
    except (TemplateError, ConfigurationError):
        return
    assert rendered is None or isinstance(rendered, RenderedContent)


@FUZZ
@given(value=st.text(max_size=80) | st.sampled_from(["{{ secret }}", "{% raw %}{{", "<a href=x>"]))
def test_data_is_never_rendered_as_a_template(value: str) -> None:
    """A data value holding template syntax is printed as text (no second rendering)."""
    templates = Templates(
        {"a/sms.txt": "{{ name }}", "a/email.subject.txt": "s", "a/email.html": "{{ name }}"},
        html_to_text=lambda html: html,
    )
    sms = templates.render("a", Channel.SMS, {"name": value, "secret": "LEAKED"})
    assert sms is not None
    assert sms.text == value.strip()
    email = templates.render("a", Channel.EMAIL, {"name": value, "secret": "LEAKED"})
    assert email is not None
    assert email.html == str(markupsafe.escape(value)).strip()


@FUZZ
@given(attribute=st.from_regex(r"_[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True), value=_values)
def test_the_sandbox_refuses_underscore_attributes(attribute: str, value: object) -> None:
    """``{{ value.<_anything> }}`` is a TemplateError, whatever the value."""
    templates = Templates({"a/sms.txt": f"{{{{ value.{attribute} }}}}"})
    with pytest.raises(TemplateError):
        templates.render("a", Channel.SMS, {"value": value})


# -- the SMS segmenter ----------------------------------------------------------------------------

_sms_texts = st.text(
    st.characters(codec=None, exclude_categories=())
    | st.sampled_from(sorted(GSM7_EXTENSION))
    | st.sampled_from(["\ud83d", "\ude00", "😀", "ż", "€"]),
    max_size=400,
)


@FUZZ
@given(text=_sms_texts)
@example(text="\ud83d" * 71)  # lone surrogates: one UTF-16 unit each
@example(text="a" * 152 + "€")  # an escape pair that does not fit the first segment
def test_any_text_splits_into_segments(text: str) -> None:
    """Any text, lone surrogates included: segments that join back and fit their limit."""
    split = segments(text)
    assert "".join(split.parts) == text
    assert split.count == len(split.parts) >= 1
    assert split.remaining >= 0
