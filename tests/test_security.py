"""Security guarantees (issue #8), each proved against the real code paths.

* Templates: the Jinja2 sandbox refuses internals and code execution with our TemplateError,
  data never escapes it (nor changes, nor gets rendered), HTML alone is autoescaped, and
  undefined variables are errors.
* Email header injection: a line break or NUL in anything that becomes an email header is
  refused with ContentError before any network call, by SMTP and every HTTP email adapter.
* Attachment file names are sanitised (and RFC 2231-encoded by SMTP).
* Secrets: every credential setting is a SecretStr and never shows in reprs, logs, errors or
  results, for every registered adapter.

TLS verification is proved in ``tests/test_tls.py``.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest
import respx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import BaseModel, SecretStr

import anysend
from anysend import (
    Attachment,
    Channel,
    ContentError,
    DeliveryError,
    ErrorCategory,
    Message,
    OutboundMessage,
    PushContent,
    PushTarget,
    Recipient,
    TemplateError,
    Templates,
    WebhookRequest,
    WebhookVerificationError,
)
from anysend._email import LINE_BREAKS, check_header_safety
from anysend._models import MAX_FILENAME_BYTES, safe_filename
from anysend.providers import Provider, available, load
from anysend.providers.mailgun import Mailgun
from anysend.providers.postmark import Postmark
from anysend.providers.sendgrid import SendGrid
from anysend.providers.ses import SES
from anysend.providers.smtp import SMTP
from anysend.testing import VirtualClock
from tests.smtp_server import SMTPServer

#: Every character that ends a line for some email parser, and NUL (one at a time).
BREAKS = ["\r\n", *LINE_BREAKS]

# -- templates: the sandbox ------------------------------------------------------------------


class Customer:
    """A data value with everything an attacker would reach for."""

    __secret__ = "dunder-class-attribute"
    name = "Ann"

    def __init__(self) -> None:
        self._private = "private-attribute"
        self.__mangled = "mangled-attribute"

    def greet(self) -> str:
        return f"Hi {self.name}"


#: (id, template source): each reaches for Python internals; each must be refused.
ESCAPES = [
    ("str-mro", "{{ ''.__class__.__mro__ }}"),
    ("str-subclasses", "{{ ''.__class__.__mro__[1].__subclasses__() }}"),
    ("tuple-subclasses", "{{ ().__class__.__bases__[0].__subclasses__() }}"),
    ("getitem-dunder", "{{ ''['__class__'] }}"),
    ("self-init-globals", "{{ self.__init__.__globals__ }}"),
    ("self-context", "{{ self._TemplateReference__context }}"),
    ("data-class", "{{ customer.__class__ }}"),
    ("data-dict", "{{ customer.__dict__ }}"),
    ("data-dunder-attribute", "{{ customer.__secret__ }}"),
    ("data-private", "{{ customer._private }}"),
    ("data-mangled", "{{ customer._Customer__mangled }}"),
    ("data-init-globals", "{{ customer.__init__.__globals__ }}"),
    ("method-globals", "{{ customer.greet.__globals__ }}"),
    ("method-func-code", "{{ customer.greet.__func__.__code__ }}"),
    ("format-attribute", '{{ "{0.__class__}".format(customer) }}'),
    ("format-globals", '{{ "{0.__init__.__globals__}".format(customer) }}'),
    ("format-map", '{{ "{c.__class__}".format_map({"c": customer}) }}'),
    ("format-from-data", "{{ fmt.format(customer) }}"),
    ("percent-format", '{{ "%s" % customer.__class__ }}'),
    ("attr-filter", "{{ customer|attr('__class__') }}"),
    ("attr-filter-chain", "{{ (customer|attr('__init__'))|attr('__globals__') }}"),
    ("map-attribute", "{{ [customer]|map(attribute='__class__')|list }}"),
    ("map-dotted-attribute", "{{ [customer]|map(attribute='__init__.__globals__')|list }}"),
    ("groupby-attribute", "{{ [customer]|groupby('__class__') }}"),
    ("sort-attribute", "{{ [customer, customer]|sort(attribute='__class__') }}"),
    ("cycler-globals", "{{ cycler.__init__.__globals__ }}"),
    ("cycler-instance", "{{ cycler('a', 'b').__init__.__globals__ }}"),
    ("joiner-globals", "{{ joiner.__init__.__globals__ }}"),
    ("namespace-globals", "{{ namespace.__init__.__globals__ }}"),
    ("namespace-internals", "{% set ns = namespace(a=1) %}{{ ns._Namespace__attrs }}"),
    ("lipsum-globals", "{{ lipsum.__globals__ }}"),
    ("lipsum-os", "{{ lipsum.__globals__['os'].popen('id').read() }}"),
    ("range-internals", "{{ range.__self__ }}"),
    ("str-dunder-method", "{{ 'a'.__add__('b') }}"),
    ("import", "{% import 'os' as os %}"),
    ("include-absolute", "{% include '/etc/passwd' %}"),
    ("include-parent", "{% include '../../../../etc/passwd' %}"),
    ("huge-range", "{{ range(10**9)|list|length }}"),
]


def render_sms(source: str, **data: Any) -> str | None:
    """Render ``source`` as an SMS template with a Customer and a hostile format string."""
    data.setdefault("customer", Customer())
    data.setdefault("fmt", "{0.__class__.__init__.__globals__}")
    content = Templates({"t/sms.txt": source}).render("t", Channel.SMS, data)
    assert content is not None
    return content.text


@pytest.mark.parametrize("source", [s for _, s in ESCAPES], ids=[i for i, _ in ESCAPES])
def test_sandbox_refuses_internals_with_template_error(source: str) -> None:
    """Every path to Python internals raises our TemplateError, chained to Jinja2's error."""
    with pytest.raises(TemplateError) as info:
        render_sms(source)
    assert isinstance(info.value.__cause__, jinja2.TemplateError | OverflowError | RecursionError)
    for leaked in ("dunder-class-attribute", "private-attribute", "mangled-attribute", "<module"):
        assert leaked not in str(info.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ lipsum.__globals__['os'].system('touch {path}') }}",
        "{{ cycler.__init__.__globals__.os.system('touch {path}') }}",
        "{{ self.__init__.__globals__.__builtins__.open('{path}', 'w') }}",
        "{{ customer.__init__.__globals__.__builtins__.open('{path}', 'w') }}",
        "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
        "{% if c.__name__ == 'Popen' %}{{ c(['touch', '{path}']) }}{% endif %}{% endfor %}",
        "{{ joiner.__init__.__globals__.os.system('touch {path}') }}",
        "{{ namespace.__init__.__globals__.os.system('touch {path}') }}",
        '{{ "{0.__init__.__globals__[__builtins__]}".format(customer) }}',
    ],
)
def test_sandbox_runs_no_code(source: str, tmp_path: Path) -> None:
    """Classic sandbox escapes that would create a file: refused, and no file appears."""
    canary = tmp_path / "pwned"
    with pytest.raises(TemplateError, match="sandbox"):
        render_sms(source.replace("{path}", str(canary)))
    assert not canary.exists()


def test_data_is_printed_never_rendered() -> None:
    """Template syntax inside a data value is text: it is never compiled or evaluated."""
    hostile = "{{ 7*7 }}{% include '/etc/passwd' %}{{ lipsum.__globals__ }}"
    assert render_sms("Hi {{ name }}", name=hostile) == f"Hi {hostile}"
    templates = Templates({"t/email.subject.txt": "Re: {{ name }}", "t/email.txt": "x"})
    content = templates.render("t", Channel.EMAIL, {"name": hostile})
    assert content is not None
    assert content.subject == f"Re: {hostile}"


@pytest.mark.parametrize(
    "source",
    [
        "{{ items.append('x') }}",
        "{{ items.clear() }}",
        "{{ items.pop() }}",
        "{{ settings.update({'admin': True}) }}",
        "{{ settings.pop('role') }}",
        "{{ settings.setdefault('admin', True) }}",
        "{% set customer.name = 'Eve' %}",
    ],
)
def test_templates_cannot_change_the_data(source: str) -> None:
    """The sandbox is immutable: a template cannot change the caller's lists and dicts."""
    items, settings, customer = ["a"], {"role": "user"}, Customer()
    with pytest.raises(TemplateError):
        render_sms(source, items=items, settings=settings, customer=customer)
    assert (items, settings, customer.name) == (["a"], {"role": "user"}, "Ann")


def test_public_data_attributes_and_methods_still_work() -> None:
    """The sandbox refuses internals only: ordinary attributes, methods and filters work."""
    text = render_sms(
        "{{ customer.name }} {{ customer.greet() }} {{ items|join(',') }}", items=[1, 2]
    )
    assert text == "Ann Hi Ann 1,2"


def test_autoescape_in_html_only() -> None:
    """<script> from data is escaped in email.html (and its layouts), never in text parts."""
    script = "<script>alert('x')</script>"
    templates = Templates(
        {
            "_layouts/base.html": "<body>{% block body %}{% endblock %}{{ name }}</body>",
            "t/email.subject.txt": "Hi {{ name }}",
            "t/email.html": "{% extends '_layouts/base.html' %}{% block body %}"
            "<p>{{ name }}</p>{% endblock %}",
            "t/email.txt": "Hi {{ name }}",
            "t/sms.txt": "Hi {{ name }}",
            "t/push.title.txt": "Hi {{ name }}",
            "t/push.body.txt": "Hi {{ name }}",
            "t/chat.txt": "Hi {{ name }}",
        }
    )
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    mail = templates.render("t", Channel.EMAIL, {"name": script})
    assert mail is not None
    assert mail.html is not None
    assert script not in mail.html
    assert mail.html == f"<body><p>{escaped}</p>{escaped}</body>"
    assert (mail.subject, mail.text) == (f"Hi {script}", f"Hi {script}")
    sms = templates.render("t", Channel.SMS, {"name": script})
    push = templates.render("t", Channel.PUSH, {"name": script})
    chat = templates.render("t", Channel.TELEGRAM, {"name": script})
    assert sms is not None
    assert push is not None
    assert chat is not None
    assert [sms.text, push.push_title, push.push_body, chat.text] == [f"Hi {script}"] * 4


@pytest.mark.parametrize(
    "source",
    [
        "{{ missing }}",
        "{{ customer.missing }}",
        "{{ [missing] }}",
        "{{ {'a': missing} }}",
        "{% for x in missing %}{{ x }}{% endfor %}",
        "{{ missing ~ 'x' }}",
        "{% if missing %}yes{% endif %}",
    ],
)
def test_undefined_is_our_template_error(source: str) -> None:
    """A missing variable is a TemplateError, even inside a list (never the word Undefined)."""
    with pytest.raises(TemplateError):
        render_sms(source)


@pytest.mark.parametrize("brk", BREAKS, ids=[repr(b) for b in BREAKS])
def test_template_subject_with_a_line_break_from_data_is_refused(brk: str) -> None:
    """A subject or push title rendering any line break (or NUL) from data: TemplateError."""
    templates = Templates(
        {
            "t/email.subject.txt": "Order {{ ref }}",
            "t/email.txt": "x",
            "t/push.title.txt": "Order {{ ref }}",
        }
    )
    data = {"ref": f"42{brk}Bcc: victim@example.net"}
    with pytest.raises(TemplateError, match="line break"):
        templates.render("t", Channel.EMAIL, data)
    with pytest.raises(TemplateError, match="line break"):
        templates.render("t", Channel.PUSH, data)


# -- email header injection ------------------------------------------------------------------

SENDER = "Shop <shop@example.com>"
INJECTED = "Bcc: victim@example.net"


def _email_adapters(smtp_server: SMTPServer) -> dict[str, Provider]:
    return {
        "smtp": SMTP(
            host=smtp_server.host,
            port=smtp_server.port,
            security="none",
            sender=SENDER,
            timeout=5.0,
        ),
        "sendgrid": SendGrid(api_key="SG.test-key-0123456789", sender=SENDER),
        "mailgun": Mailgun(api_key="key-0123456789", domain="mg.example.com", sender=SENDER),
        "postmark": Postmark(server_token="server-token-0123456789", sender=SENDER),
        "ses": SES(
            access_key_id="AKIAIOSFODNN7EXAMPLE",
            secret_access_key="secret-access-key-0123456789",
            region="eu-west-1",
            sender=SENDER,
        ),
    }


def _attachment(**fields: Any) -> Attachment:
    """An attachment built without validation, as a buggy caller or adapter might."""
    values: dict[str, Any] = {
        "filename": "invoice.pdf",
        "content": b"%PDF-1.7",
        "content_type": "application/pdf",
        "inline": False,
        "content_id": None,
    }
    values.update(fields)
    return Attachment.model_construct(**values)


#: Field -> how to put ``bad`` (a line break and an injected header) into an outbound email.
INJECTIONS: dict[str, Callable[[str], dict[str, Any]]] = {
    "subject": lambda bad: {"subject": f"Hi{bad}"},
    "recipient name": lambda bad: {"recipient": Recipient(email="ann@example.com", name=f"A{bad}")},
    "to": lambda bad: {"to": f"ann@example.com{bad}"},
    "sender": lambda bad: {"sender": f"shop@example.com{bad}"},
    "sender name": lambda bad: {"sender": f"Shop{bad} <shop@example.com>"},
    "cc": lambda bad: {"cc": (f"bob@example.com{bad}",)},
    "bcc": lambda bad: {"bcc": (f"audit@example.com{bad}",)},
    "reply_to": lambda bad: {"reply_to": (f"help@example.com{bad}",)},
    "header name": lambda bad: {"headers": {f"X-Note{bad}": "x"}},
    "header value": lambda bad: {"headers": {"X-Note": f"ok{bad}"}},
    "unsubscribe_url": lambda bad: {"unsubscribe_url": f"https://example.com/u{bad}"},
    "attachment filename": lambda bad: {"attachments": (_attachment(filename=f"a.pdf{bad}"),)},
    "attachment content type": lambda bad: {
        "attachments": (_attachment(content_type=f"application/pdf{bad}"),)
    },
    "inline content id": lambda bad: {
        "html": '<img src="cid:logo">',
        "attachments": (_attachment(inline=True, content_id=f"logo{bad}"),),
    },
    "tag": lambda bad: {"tags": (f"vip{bad}",)},
    "metadata value": lambda bad: {"metadata": {"order": f"42{bad}"}},
    "metadata key": lambda bad: {"metadata": {f"order{bad}": "42"}},
}


def outbound_email(**fields: Any) -> OutboundMessage:
    """An email as the client hands it to an adapter."""
    values: dict[str, Any] = {
        "id": "msg-1",
        "channel": Channel.EMAIL,
        "to": "ann@example.com",
        "subject": "Order 42",
        "text": "It has shipped",
    }
    values.update(fields)
    return OutboundMessage(**values)


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    yield server
    assert server.connections == 0  # no injection test ever reached the server
    server.stop()


@pytest.mark.parametrize("field", list(INJECTIONS))
@pytest.mark.parametrize("adapter", ["smtp", "sendgrid", "mailgun", "postmark", "ses"])
def test_header_injection_is_refused_before_any_network_call(
    adapter: str, field: str, smtp_server: SMTPServer
) -> None:
    """Every line break (and NUL) in every header-bound field: ContentError, nothing sent.

    HTTP adapters are sans-I/O, so refusing in build_request means no request exists; the
    SMTP adapter refuses before connecting (the module's server never sees a connection).
    """
    provider = _email_adapters(smtp_server)[adapter]
    for brk in BREAKS:
        message = outbound_email(**INJECTIONS[field](f"{brk}{INJECTED}"))
        send = provider.send if isinstance(provider, SMTP) else provider.build_request
        with pytest.raises(ContentError) as info:
            send(message)
        assert "injection" in str(info.value) or "valid header name" in str(info.value), brk
    assert smtp_server.connections == 0


def test_check_header_safety_accepts_clean_messages() -> None:
    """The guard refuses nothing ordinary: tabs, non-ASCII, long values, several headers."""
    check_header_safety(
        outbound_email(
            subject="Zamówienie\t42 ✓ " + "x" * 500,
            recipient=Recipient(email="ann@example.com", name="Ann Kowalska-Żak, PhD"),
            headers={"X-Campaign": "spring", "X-Ref": "a\tb"},
            tags=("vip",),
            metadata={"order": "42"},
            attachments=(Attachment(filename="faktura żółta.pdf", content=b"x"),),
        )
    )


@pytest.fixture
def mocked() -> Iterator[respx.MockRouter]:
    """respx around every request: any request at all fails the test at the end."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


#: What the client lets through its own validation, for each adapter to refuse.
CLIENT_INJECTIONS: dict[str, tuple[Message, Recipient]] = {
    "subject": (
        Message(subject=f"Hi\u2028{INJECTED}", text="x"),
        Recipient(email="ann@example.com"),
    ),
    "recipient name": (
        Message(subject="Hi", text="x"),
        Recipient(email="ann@example.com", name=f"Ann\r\n{INJECTED}"),
    ),
    "header value": (
        Message(subject="Hi", text="x", headers={"X-Note": f"ok\x85{INJECTED}"}),
        Recipient(email="ann@example.com"),
    ),
    "reply_to": (
        Message(subject="Hi", text="x", reply_to=(f"help@example.com\n{INJECTED}",)),
        Recipient(email="ann@example.com"),
    ),
    "attachment content type": (
        Message(
            subject="Hi",
            text="x",
            attachments=(
                Attachment(
                    filename="a.pdf", content=b"x", content_type=f"application/pdf\r\n{INJECTED}"
                ),
            ),
        ),
        Recipient(email="ann@example.com"),
    ),
}


@pytest.mark.parametrize("field", list(CLIENT_INJECTIONS))
@pytest.mark.parametrize("adapter", ["sendgrid", "mailgun", "postmark", "ses", "smtp"])
def test_client_send_with_injection_makes_no_request(
    adapter: str, field: str, smtp_server: SMTPServer, mocked: respx.MockRouter
) -> None:
    """Through Client.send: the attempt fails as content_rejected and no request is made."""
    route = mocked.route()
    message, recipient = CLIENT_INJECTIONS[field]
    provider = _email_adapters(smtp_server)[adapter]
    with anysend.Client([provider], clock=VirtualClock()) as client:
        result = client.send(message, to=recipient)
    assert not result.ok
    assert result.error is not None
    assert result.error.category is ErrorCategory.CONTENT_REJECTED
    assert not route.called
    assert smtp_server.connections == 0


@pytest.mark.parametrize("adapter", ["sendgrid", "mailgun", "postmark", "ses", "smtp"])
def test_template_subject_with_a_newline_from_data_sends_nothing(
    adapter: str, smtp_server: SMTPServer, mocked: respx.MockRouter
) -> None:
    """A template that renders a line break into the subject: send() raises, nothing is sent."""
    route = mocked.route()
    templates = {"order/email.subject.txt": "Order {{ ref }}", "order/email.txt": "Shipped"}
    provider = _email_adapters(smtp_server)[adapter]
    with (
        anysend.Client([provider], templates=templates, clock=VirtualClock()) as client,
        pytest.raises(TemplateError, match="line break"),
    ):
        client.send(
            Message(template="order", data={"ref": f"42\r\n{INJECTED}"}),
            to=Recipient(email="ann@example.com"),
        )
    assert not route.called
    assert smtp_server.connections == 0


# -- attachment file names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("invoice.pdf", "invoice.pdf"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("..\\..\\windows\\win.ini", "_.._windows_win.ini"),
        ("C:\\Users\\ann\\report.pdf", "C_Users_ann_report.pdf"),
        ("/etc/shadow", "_etc_shadow"),
        (".bashrc", "bashrc"),
        ("...hidden.txt", "hidden.txt"),
        ("trailing.dots...", "trailing.dots"),
        ("a\r\nContent-Type: text/html.pdf", "a_Content-Type_ text_html.pdf"),
        ("tab\there.pdf", "tab_here.pdf"),
        ("nul\x00byte.pdf", "nul_byte.pdf"),
        ("nel\x85line.pdf", "nel_line.pdf"),
        ("sep\u2028line\u2029.pdf", "sep_line_.pdf"),
        ("invoice\u202efdp.exe", "invoice_fdp.exe"),
        ("isolate\u2066x\u2069.pdf", "isolate_x_.pdf"),
        ('re"port<1>|?*.pdf', "re_port_1_.pdf"),
        ("con.txt", "_con.txt"),
        ("LPT1", "_LPT1"),
        ("faktura żółta.pdf", "faktura żółta.pdf"),
        ("\u0646\u0627\u0645\u0647\u200c\u0647\u0627.pdf",) * 2,  # Persian, with a ZWNJ kept
    ],
)
def test_attachment_filenames_are_sanitised(given: str, expected: str) -> None:
    """Separators, controls, bidi overrides, hidden-file dots and device names are neutralised."""
    assert safe_filename(given) == expected
    assert Attachment(filename=given, content=b"x").filename == expected


@pytest.mark.parametrize("given", ["", "..", ".", "...", " . ", ". ."])
def test_attachment_filename_with_nothing_left_is_refused(given: str) -> None:
    """A name that is nothing but unsafe characters is refused when the Attachment is built."""
    with pytest.raises(ValueError, match="empty"):
        Attachment(filename=given, content=b"x")


@pytest.mark.parametrize(
    ("given", "extension"),
    [("a" * 400 + ".pdf", ".pdf"), ("ż" * 300 + ".tar.gz", ".gz"), ("x" * 300, "")],
)
def test_overlong_attachment_filenames_are_shortened_keeping_the_extension(
    given: str, extension: str
) -> None:
    """Names over 255 UTF-8 bytes are cut (never mid-character), the extension kept."""
    name = safe_filename(given)
    assert len(name.encode("utf-8")) <= MAX_FILENAME_BYTES
    assert name.endswith(extension)
    assert given.startswith(name[: len(name) - len(extension)])


@pytest.mark.parametrize(
    ("sender", "expect_rfc2231"),
    [("shop@example.com", True), ("sklep@żółw.example", True), ("sklep-ż@example.com", False)],
)
def test_smtp_encodes_non_ascii_filenames_per_rfc_2231(sender: str, expect_rfc2231: bool) -> None:
    """A non-ASCII name is RFC 2231-encoded (UTF-8 only in SMTPUTF8 mail) and round-trips."""
    name = "faktura żółta " + "ę" * 40 + ".pdf"
    smtp = SMTP(host="127.0.0.1", security="none", sender=sender)
    composed = smtp.compose(
        outbound_email(attachments=(Attachment(filename=name, content=b"%PDF"),))
    )
    raw = composed.as_bytes()
    if expect_rfc2231:
        assert raw.isascii()
        assert re.search(rb"filename\*(0\*)?=utf-8''faktura%20%C5%BC%C3%B3%C5%82ta", raw)
    else:  # the message is SMTPUTF8 anyway (RFC 6532): UTF-8 is allowed as it is
        assert composed.smtputf8
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert [part.get_filename() for part in parsed.iter_attachments()] == [name]


def test_http_adapters_send_the_sanitised_filename() -> None:
    """The name an HTTP adapter sends is the sanitised one (SendGrid's JSON as the example)."""
    attachment = Attachment(filename="../x\u202efdp.exe", content=b"x")
    request = SendGrid(api_key="SG.test-key-0123456789", sender=SENDER).build_request(
        outbound_email(attachments=(attachment,))
    )
    assert json.loads(request.content)["attachments"][0]["filename"] == "_x_fdp.exe"


# -- secrets ---------------------------------------------------------------------------------

#: A settings field whose name says it may hold a credential.
SECRET_NAME = re.compile(
    r"token|key|secret|passw|auth|credential|private|signing|service_account|webhook_url"
)

#: Fields with such a name that hold no secret, and why (each must still exist).
NOT_SECRET: dict[tuple[str, str], str] = {
    ("apns", "key_id"): "the key's id, sent in clear in every JWT header",
    ("fcm", "service_account_file"): "a path to the key file; the key itself is not in settings",
    ("mailgun", "reject_reused_tokens"): "an on/off switch",
    ("plivo", "auth_id"): "the account id, sent in clear in every API URL",
    ("sendgrid", "webhook_public_key"): "a public key",
    ("ses", "access_key_id"): "the key id, sent in clear in every Authorization header",
    ("twilio", "api_key_sid"): "the API key's id (SK...), sent in clear as the user name",
    ("vonage", "api_key"): "the account id, sent in clear; api_secret is the credential",
}


def _holds_secret_str(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return any(_holds_secret_str(arg) for arg in typing.get_args(annotation))


def test_every_credential_setting_of_every_adapter_is_a_secret_str() -> None:
    """Introspect every registered adapter: a secret-looking settings field is a SecretStr."""
    plain: list[str] = []
    seen: set[tuple[str, str]] = set()
    for name in sorted(available()):
        settings: type[BaseModel] = load(name).Settings
        for field_name, info in settings.model_fields.items():
            if not SECRET_NAME.search(field_name):
                continue
            seen.add((name, field_name))
            if not _holds_secret_str(info.annotation) and (name, field_name) not in NOT_SECRET:
                plain.append(f"{name}.{field_name}: {info.annotation}")
    assert not plain, f"credential settings that are not SecretStr: {plain}"
    assert set(NOT_SECRET) <= seen, "stale NOT_SECRET entries"


# -- the leak table: every adapter, dummy secrets, respx-mocked sends -------------------------

S = "sEcReT"  # every dummy secret holds this marker and a field-specific tail


def _secret(provider: str, field_name: str) -> str:
    return f"{S}-{provider}-{field_name}-5f3a9c1e"


def _ec_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _rsa_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _browser_keys() -> dict[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return {"p256dh": _b64url(public), "auth": _b64url(b"0123456789abcdef")}


@dataclass
class Case:
    """One adapter with dummy secrets: how to build it, what to send, what the provider says."""

    name: str
    settings: Callable[[], dict[str, Any]]
    recipient: Recipient
    message: Message
    via: str
    ok: Callable[[httpx.Request], httpx.Response]


EMAIL = Message(subject="Order 42", text="It has shipped")
TEXT = Message(text="Order 42 has shipped")
PUSH = Message(push=PushContent(title="Order 42", body="It has shipped"))
ANN_EMAIL = Recipient(email="ann@example.com")
ANN_PHONE = Recipient(phone="+48600700800")


def _json(status: int, body: Any, **headers: str) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(status, json=body, headers=headers)


SERVICE_ACCOUNT_TOKEN_URI = "https://oauth2.googleapis.com/token"


def _fcm_ok(request: httpx.Request) -> httpx.Response:
    if str(request.url) == SERVICE_ACCOUNT_TOKEN_URI:
        return httpx.Response(
            200, json={"access_token": "ya29.fixture", "expires_in": 60, "token_type": "Bearer"}
        )
    return httpx.Response(200, json={"name": "projects/anysend-test/messages/1"})


CASES: list[Case] = [
    Case(
        "apns",
        lambda: {
            "team_id": "TEAM123456",
            "key_id": "KEY1234567",
            "private_key": _ec_pem(),
            "topic": "com.example.shop",
        },
        Recipient(push=(PushTarget(kind="apns", token="a" * 64),)),
        PUSH,
        "push",
        lambda request: httpx.Response(200, headers={"apns-id": "7F1C2E4A-0000-4000-8000-0000"}),
    ),
    Case(
        "discord",
        lambda: {"webhook_url": f"https://discord.com/api/webhooks/1/{_secret('discord', 'url')}"},
        Recipient(id="ops"),
        TEXT,
        "chat",
        _json(200, {"id": "1180000000000000001", "type": 0, "content": "x"}),
    ),
    Case(
        "fcm",
        lambda: {
            "service_account": json.dumps(
                {
                    "type": "service_account",
                    "project_id": "anysend-test",
                    "private_key_id": _secret("fcm", "private_key_id"),
                    "private_key": _rsa_pem(),
                    "client_email": "sender@anysend-test.iam.gserviceaccount.com",
                    "token_uri": SERVICE_ACCOUNT_TOKEN_URI,
                }
            )
        },
        Recipient(push=(PushTarget(kind="fcm", token="fcm-device-" + "b" * 40),)),
        PUSH,
        "push",
        _fcm_ok,
    ),
    Case(
        "mailgun",
        lambda: {
            "api_key": _secret("mailgun", "api_key"),
            "domain": "mg.example.com",
            "sender": "shop@example.com",
            "webhook_signing_key": _secret("mailgun", "signing"),
        },
        ANN_EMAIL,
        EMAIL,
        "email",
        _json(200, {"id": "<1@mg.example.com>", "message": "Queued. Thank you."}),
    ),
    Case(
        "messenger",
        lambda: {
            "page_access_token": _secret("messenger", "page"),
            "app_secret": _secret("messenger", "app"),
            "verify_token": _secret("messenger", "verify"),
        },
        Recipient(chat_ids={"messenger": "123456"}),
        TEXT,
        "messenger",
        _json(200, {"recipient_id": "123456", "message_id": "m_1"}),
    ),
    Case(
        "plivo",
        lambda: {
            "auth_id": "MAXXXXXXXXXXXXXXXXXX",
            "auth_token": _secret("plivo", "auth_token"),
            "sender": "+15555550100",
        },
        ANN_PHONE,
        TEXT,
        "sms",
        _json(202, {"api_id": "a", "message": "message(s) queued", "message_uuid": ["u-1"]}),
    ),
    Case(
        "postmark",
        lambda: {
            "server_token": _secret("postmark", "server_token"),
            "sender": "shop@example.com",
            "webhook_username": "postmark",
            "webhook_password": _secret("postmark", "webhook_password"),
        },
        ANN_EMAIL,
        EMAIL,
        "email",
        _json(200, {"ErrorCode": 0, "Message": "OK", "MessageID": "pm-1"}),
    ),
    Case(
        "sendgrid",
        lambda: {"api_key": "SG." + _secret("sendgrid", "api_key"), "sender": "shop@example.com"},
        ANN_EMAIL,
        EMAIL,
        "email",
        lambda request: httpx.Response(202, headers={"X-Message-Id": "sg-1"}),
    ),
    Case(
        "ses",
        lambda: {
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": _secret("ses", "secret_access_key"),
            "session_token": _secret("ses", "session_token"),
            "region": "eu-west-1",
            "sender": "shop@example.com",
        },
        ANN_EMAIL,
        EMAIL,
        "email",
        _json(200, {"MessageId": "ses-1"}),
    ),
    Case(
        "slack",
        lambda: {
            "webhook_url": f"https://hooks.slack.com/services/T0/B0/{_secret('slack', 'url')}"
        },
        Recipient(id="ops"),
        TEXT,
        "chat",
        lambda request: httpx.Response(200, text="ok"),
    ),
    Case(
        "smsapi",
        lambda: {
            "token": _secret("smsapi", "token"),
            "sender": "Shop",
            "callback_url": "https://shop.example.com/hooks/smsapi?token="
            + _secret("smsapi", "callback_secret"),
            "callback_secret": _secret("smsapi", "callback_secret"),
        },
        ANN_PHONE,
        TEXT,
        "sms",
        _json(
            200,
            {
                "count": 1,
                "list": [
                    {
                        "id": "6F00000000000000000000A1",
                        "points": 0.16,
                        "number": "48600700800",
                        "date_sent": 1700000000,
                        "submitted_number": "48600700800",
                        "status": "QUEUE",
                    }
                ],
            },
        ),
    ),
    Case(
        "teams",
        lambda: {
            "webhook_url": "https://example.webhook.office.com/webhookb2/" + _secret("teams", "url")
        },
        Recipient(id="ops"),
        TEXT,
        "chat",
        lambda request: httpx.Response(202),
    ),
    Case(
        "telegram",
        lambda: {
            "bot_token": "123456:" + _secret("telegram", "bot_token"),
            "secret_token": _secret("telegram", "secret_token"),
        },
        Recipient(chat_ids={"telegram": "123456"}),
        TEXT,
        "telegram",
        _json(
            200,
            {
                "ok": True,
                "result": {
                    "message_id": 1,
                    "date": 1700000000,
                    "chat": {"id": 123456, "type": "private"},
                    "text": "x",
                },
            },
        ),
    ),
    Case(
        "twilio",
        lambda: {
            "account_sid": "AC" + "0" * 32,
            "auth_token": _secret("twilio", "auth_token"),
            "sender": "+15555550100",
        },
        ANN_PHONE,
        TEXT,
        "sms",
        _json(201, {"sid": "SM" + "1" * 32, "status": "queued", "error_code": None}),
    ),
    Case(
        "viber",
        lambda: {"auth_token": _secret("viber", "auth_token"), "sender_name": "Shop"},
        Recipient(chat_ids={"viber": "01234567890A="}),
        TEXT,
        "viber",
        _json(200, {"status": 0, "status_message": "ok", "message_token": 5741311803571721087}),
    ),
    Case(
        "vonage",
        lambda: {
            "api_key": "abcd1234",
            "api_secret": _secret("vonage", "api_secret"),
            "signature_secret": _secret("vonage", "signature_secret"),
            "webhook_token": _secret("vonage", "webhook_token"),
            "sender": "Shop",
        },
        ANN_PHONE,
        TEXT,
        "sms",
        _json(
            200,
            {
                "message-count": "1",
                "messages": [{"to": "48600700800", "message-id": "0C0000", "status": "0"}],
            },
        ),
    ),
    Case(
        "webhook",
        lambda: {
            "url": "https://crm.example.com/hooks/anysend",
            "secret": _secret("webhook", "secret"),
            "headers": {"X-Api-Key": _secret("webhook", "header")},
        },
        Recipient(id="u-1"),
        TEXT,
        "webhook",
        _json(200, {"id": "crm-1"}),
    ),
    Case(
        "webpush",
        lambda: {"vapid_private_key": _ec_pem(), "vapid_subject": "mailto:ops@example.com"},
        Recipient(
            push=(
                PushTarget(
                    kind="webpush",
                    token="https://updates.push.services.mozilla.com/wpush/v2/abc",
                    keys=_browser_keys(),
                ),
            )
        ),
        PUSH,
        "push",
        lambda request: httpx.Response(
            201, headers={"Location": "https://updates.push.services.mozilla.com/m/1"}
        ),
    ),
    Case(
        "whatsapp",
        lambda: {
            "access_token": _secret("whatsapp", "access_token"),
            "phone_number_id": "106540352242922",
            "app_secret": _secret("whatsapp", "app_secret"),
            "verify_token": _secret("whatsapp", "verify_token"),
        },
        ANN_PHONE,
        TEXT,
        "whatsapp",
        _json(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": "48600700800", "wa_id": "48600700800"}],
                "messages": [{"id": "wamid.1"}],
            },
        ),
    ),
]


#: Adapters without secrets to leak.
NO_SECRETS = frozenset({"console", "memory"})


def test_the_leak_table_covers_every_registered_adapter() -> None:
    """Every registered adapter with settings secrets has a row in CASES (SMTP: its own test)."""
    assert {case.name for case in CASES} | {"smtp"} | NO_SECRETS == set(available())
    for name in NO_SECRETS:
        assert not any(
            _holds_secret_str(info.annotation) for info in load(name).Settings.model_fields.values()
        )


def needles(provider: Provider) -> set[str]:
    """What would show a secret: each value, each line of a key, the dummy marker."""
    found = {S}
    for secret in provider.secrets():
        found.add(secret)
        texts = [secret]
        try:
            document = json.loads(secret)
        except ValueError:
            document = None
        if isinstance(document, dict):  # a service-account key file: its key and key id
            texts += [str(document.get(k, "")) for k in ("private_key", "private_key_id")]
        for text in texts:
            for line in text.splitlines():
                if len(line) >= 24 and not line.startswith("-----"):
                    found.add(line)
    return found


def leaks(texts: dict[str, str], secrets: set[str]) -> list[str]:
    """Where a secret shows, with the first characters of the secret."""
    return [
        f"{where} ({secret[:12]!r}...)"
        for where, text in texts.items()
        for secret in secrets
        if secret in text
    ]


def _echo_everything(provider: Provider) -> Callable[[httpx.Request], httpx.Response]:
    """A 401 whose body quotes every secret back, as some providers do."""
    quoted = " ".join(provider.secrets())

    def answer(request: httpx.Request) -> httpx.Response:
        body = {
            "message": f"invalid credentials {quoted}",
            "error": {"message": f"bad token {quoted}", "code": 401, "type": "OAuthException"},
            "errors": [{"message": quoted, "field": "token"}],
            "ErrorCode": 10,
            "Message": f"Bad or missing server token {quoted}",
            "status_message": quoted,
        }
        return httpx.Response(401, json=body, headers={"Content-Type": "application/json"})

    return answer


def _forged_callback(provider: Provider) -> WebhookRequest:
    """A callback with wrong credentials of every common kind."""
    body = b'{"event": "delivered", "RecordType": "Delivery", "Type": "Notification"}'
    return WebhookRequest(
        url=f"https://shop.example.com/hooks/{provider.name}?token=wrong-token-0000",
        headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(b"postmark:wrong").decode(),
            "X-Hub-Signature-256": "sha256=" + "0" * 64,
            "X-Twilio-Signature": "AAAA",
            "X-Telegram-Bot-Api-Secret-Token": "wrong-token-0000",
            "X-Viber-Content-Signature": "0" * 64,
            "X-Plivo-Signature-V3": "AAAA",
            "X-Plivo-Signature-V3-Nonce": "1",
            "X-Twilio-Email-Event-Webhook-Signature": "AAAA",
            "X-Twilio-Email-Event-Webhook-Timestamp": "1700000000",
            "X-Anysend-Signature": "v1=" + "0" * 64,
            "X-Anysend-Timestamp": "1700000000",
        },
        body=body,
    )


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record, formatted with its traceback, plus its raw arguments."""
    parts = [caplog.text]
    parts += [repr(record.args) for record in caplog.records]
    return "\n".join(parts)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    for name in (None, "anysend", "httpx", "httpcore"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_secrets_never_leak(case: Case, debug_logs: pytest.LogCaptureFixture) -> None:
    """Reprs, DEBUG logs, errors and results of a send, a failed send and a forged callback.

    Each adapter gets dummy secrets; the failed send answers 401 with every secret quoted
    back in the body (the result must still not hold them).
    """
    provider = load(case.name)(**case.settings())
    secrets = needles(provider)
    assert len(secrets) > 1, "the case sets no secret"
    shown: dict[str, str] = {
        "repr(provider)": repr(provider),
        "str(provider)": str(provider),
        "repr(settings)": repr(provider.settings),
        "str(settings)": str(provider.settings),
        "settings JSON": provider.settings.model_dump_json(),
    }
    with respx.mock(assert_all_mocked=True) as router:
        route = router.route()
        route.side_effect = case.ok
        with anysend.Client([provider], clock=VirtualClock()) as client:
            shown["repr(client)"] = repr(client)
            sent = client.send(case.message, to=case.recipient, via=[case.via])
            assert sent.ok, sent.error
            shown["result of a send"] = sent.model_dump_json()

            route.side_effect = _echo_everything(provider)
            failed = client.send(case.message, to=case.recipient, via=[case.via])
            assert not failed.ok
            assert failed.error is not None
            shown["result of a failed send"] = failed.model_dump_json()
            with pytest.raises(DeliveryError) as delivery:
                failed.raise_for_status()
            shown["str(DeliveryError)"] = str(delivery.value)
            shown["repr(DeliveryError)"] = repr(delivery.value)

            with pytest.raises(anysend.AnysendError) as refused:
                client.parse_webhook(provider.name, _forged_callback(provider))
            shown["str(callback error)"] = str(refused.value)
            shown["repr(callback error)"] = repr(refused.value)
    if provider.capabilities.webhooks or provider.capabilities.inbound:
        assert isinstance(refused.value, WebhookVerificationError)
    shown["logs"] = _log_text(debug_logs)
    assert any(r.name == "httpx" for r in debug_logs.records), "httpx logged nothing: no check"
    assert not leaks(shown, secrets), f"{case.name} shows a secret in {leaks(shown, secrets)}"


def test_smtp_password_never_leaks(debug_logs: pytest.LogCaptureFixture) -> None:
    """The SMTP password: reprs, logs, a sent result and a refused login's result and error."""
    password = f"{S}-smtp-password-5f3a9c1e"
    server = SMTPServer(users={"shop": password}, auth_require_tls=False).start()
    try:
        shown: dict[str, str] = {}
        for given in (password, f"{S}-smtp-wrong-password-0000"):
            smtp = SMTP(
                host=server.host,
                port=server.port,
                security="none",  # loopback only: the adapter allows a login in clear there
                username="shop",
                password=given,
                sender=SENDER,
                timeout=5.0,
            )
            with anysend.Client([smtp], clock=VirtualClock()) as client:
                shown[f"repr(client) {given}"] = repr(client)
                shown[f"repr(settings) {given}"] = repr(smtp.settings)
                result = client.send(EMAIL, to=ANN_EMAIL)
            shown[f"result {given}"] = result.model_dump_json()
            if given != password:
                assert result.error is not None
                assert result.error.category is ErrorCategory.AUTH
                with pytest.raises(DeliveryError) as info:
                    result.raise_for_status()
                shown["DeliveryError"] = f"{info.value!s} {info.value!r}"
            else:
                assert result.ok
        shown["logs"] = _log_text(debug_logs)
        assert len(server.handler.received) == 1
    finally:
        server.stop()
    assert not leaks(shown, {S}), leaks(shown, {S})


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_adapter_errors_for_a_plain_401_name_no_secret(case: Case) -> None:
    """The adapter's own error for a 401 (no echo) holds no secret in str, repr or raw."""
    provider = load(case.name)(**case.settings())
    with respx.mock(assert_all_mocked=True) as router:
        router.route().mock(return_value=httpx.Response(401, json={"message": "unauthorized"}))
        with anysend.Client([provider], clock=VirtualClock()) as client:
            result = client.send(case.message, to=case.recipient, via=[case.via])
    assert result.error is not None
    assert result.error.category is ErrorCategory.AUTH
    error = result.error
    assert not leaks({"error": f"{error.message} {error.raw!r}"}, needles(provider))


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["telegram", "postmark", "ses"])
async def test_secrets_never_leak_from_the_async_client(
    name: str, debug_logs: pytest.LogCaptureFixture
) -> None:
    """AsyncClient redacts the same way (a token in the URL, in a header, in a signature)."""
    case = next(case for case in CASES if case.name == name)
    provider = load(name)(**case.settings())
    with respx.mock(assert_all_mocked=True) as router:
        router.route().mock(side_effect=_echo_everything(provider))
        async with anysend.AsyncClient([provider], clock=VirtualClock()) as client:
            result = await client.send(case.message, to=case.recipient, via=[case.via])
            shown = {"client": repr(client)}
    assert not result.ok
    shown |= {"result": result.model_dump_json(), "logs": _log_text(debug_logs)}
    assert not leaks(shown, needles(provider)), leaks(shown, needles(provider))
