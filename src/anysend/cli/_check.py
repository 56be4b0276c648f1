"""``anysend check`` (validate the configuration) and ``anysend providers`` (list adapters).

``check`` reads the providers (``--provider`` or the environment), the templates and the
store the way the client would, and then, unless ``--offline``, calls each provider's
cheapest authenticated endpoint (an account or "who am I" read that sends nothing):

===========  ==================================================================
provider     request
===========  ==================================================================
twilio       ``GET /2010-04-01/Accounts/{sid}.json`` (basic auth)
sendgrid     ``GET /v3/scopes`` (bearer API key)
mailgun      ``GET /v3/domains/{domain}`` (basic auth ``api:KEY``)
postmark     ``GET /server`` (``X-Postmark-Server-Token``)
telegram     ``GET /bot{token}/getMe``
whatsapp     ``GET /{api_version}/{phone_number_id}`` (Graph API, bearer access token)
messenger    ``GET /{api_version}/me`` (Graph API, bearer Page access token)
viber        ``POST /pa/get_account_info`` (``X-Viber-Auth-Token``, body ``{}``)
vonage       ``GET /account/get-balance`` (basic auth ``api_key:api_secret``)
plivo        ``GET /v1/Account/{auth_id}/`` (basic auth)
smsapi       ``GET /profile`` (bearer OAuth token)
ses          ``GET /v2/email/account`` (SES v2 ``GetAccount``, SigV4-signed)
fcm          the adapter's own OAuth2 token exchange: ``POST`` of a signed JWT to the
             key's ``token_uri`` (the access token is neither kept nor printed)
discord      ``GET <webhook_url>`` without its query (Discord's "Get Webhook with
             Token"; shown as ``/api/webhooks/{id}/***``)
smtp         connect, ``EHLO``, ``STARTTLS`` or TLS as configured, ``AUTH`` when a
             username is set; ``QUIT`` before any mail command
===========  ==================================================================

Each request goes to the adapter's own base URL (its ``default_base_url``, region or
``endpoint_url``), with the credentials and API version it sends with. Viber answers HTTP
200 with a ``status``, and the Graph API and Google's token endpoint refuse with 400 and an
error code: those answers are read too (:data:`VERDICTS`), so a refused credential is a
failed line. Only codes are printed, never a provider's message or a credential; tokens in a
path are hidden (:func:`_hide_token`).

Slack and Teams incoming-webhook URLs have no such endpoint (:data:`NO_ENDPOINT`), nor have
``apns``, ``webpush``, ``webhook`` and ``console``; ``vonage`` configured for signed requests
only has no API secret for the balance endpoint (:class:`NoProbe`). Those are checked offline
only, and the line says why. The probes live here, in the command line, rather than on the
``Provider`` class: they are a diagnostic, not part of sending, and need no adapter change.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anysend._exceptions import AnysendError, ConfigurationError
from anysend.cli._config import NO_PROVIDERS, providers_from
from anysend.cli._output import FAILED, USAGE, out, print_json

if TYPE_CHECKING:
    import httpx

    from anysend.providers import Provider

__all__ = ["NO_ENDPOINT", "PROBES", "VERDICTS", "Check", "NoProbe", "check", "list_providers"]


@dataclass
class Check:
    """One line of the report: what was checked, how it went, and why."""

    item: str
    status: str  # "ok", "failed", "error" (the configuration is wrong), "skipped"
    detail: str = ""

    def as_json(self) -> dict[str, str]:
        """The line as a JSON-ready dict."""
        return {"item": self.item, "status": self.status, "detail": self.detail}


def _secret(value: Any) -> str:
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _twilio(provider: Provider) -> httpx.Request:
    import httpx

    s: Any = provider.settings
    if s.api_key_sid and s.api_key_secret is not None:
        auth = _basic(s.api_key_sid, _secret(s.api_key_secret))
    else:
        auth = _basic(s.account_sid, _secret(s.auth_token or ""))
    url = f"https://api.twilio.com/2010-04-01/Accounts/{s.account_sid}.json"
    return httpx.Request("GET", url, headers={"Authorization": auth})


def _sendgrid(provider: Provider) -> httpx.Request:
    import httpx

    base = getattr(provider, "base_url", "https://api.sendgrid.com")
    key = _secret(provider.settings.api_key)  # type: ignore[attr-defined]
    return httpx.Request("GET", f"{base}/v3/scopes", headers={"Authorization": f"Bearer {key}"})


def _mailgun(provider: Provider) -> httpx.Request:
    import httpx

    from anysend.providers.mailgun import BASE_URLS

    s: Any = provider.settings
    url = f"{BASE_URLS[s.region]}/v3/domains/{s.domain}"
    return httpx.Request("GET", url, headers={"Authorization": _basic("api", _secret(s.api_key))})


def _postmark(provider: Provider) -> httpx.Request:
    import httpx

    token = _secret(provider.settings.server_token)  # type: ignore[attr-defined]
    headers = {"X-Postmark-Server-Token": token, "Accept": "application/json"}
    return httpx.Request("GET", "https://api.postmarkapp.com/server", headers=headers)


def _telegram(provider: Provider) -> httpx.Request:
    import httpx

    s: Any = provider.settings
    return httpx.Request("GET", f"{s.api_base.rstrip('/')}/bot{_secret(s.bot_token)}/getMe")


class NoProbe(Exception):
    """These settings cannot make the provider's authenticated read; the message says why."""


def _whatsapp(provider: Provider) -> httpx.Request:
    import httpx

    s: Any = provider.settings
    url = f"{provider.default_base_url}/{s.api_version}/{s.phone_number_id}"
    return httpx.Request("GET", url, headers={"Authorization": f"Bearer {_secret(s.access_token)}"})


def _messenger(provider: Provider) -> httpx.Request:
    import httpx

    s: Any = provider.settings
    token = _secret(s.page_access_token)
    url = f"{provider.default_base_url}/{s.api_version}/me"
    return httpx.Request("GET", url, headers={"Authorization": f"Bearer {token}"})


def _viber(provider: Provider) -> httpx.Request:
    import httpx

    token = _secret(provider.settings.auth_token)  # type: ignore[attr-defined]
    url = f"{provider.default_base_url}/pa/get_account_info"
    return httpx.Request("POST", url, json={}, headers={"X-Viber-Auth-Token": token})


def _vonage(provider: Provider) -> httpx.Request:
    import httpx

    s: Any = provider.settings
    if s.api_secret is None:
        raise NoProbe("no api_secret (signed requests only): the balance endpoint needs it")
    auth = _basic(s.api_key, _secret(s.api_secret))
    url = f"{provider.default_base_url}/account/get-balance"
    return httpx.Request("GET", url, headers={"Authorization": auth})


def _plivo(provider: Provider) -> httpx.Request:
    from urllib.parse import quote

    import httpx

    s: Any = provider.settings
    url = f"{provider.default_base_url}/v1/Account/{quote(s.auth_id)}/"
    auth = _basic(s.auth_id, _secret(s.auth_token))
    return httpx.Request("GET", url, headers={"Authorization": auth, "Accept": "application/json"})


def _smsapi(provider: Provider) -> httpx.Request:
    import httpx

    token = _secret(provider.settings.token)  # type: ignore[attr-defined]
    base = getattr(provider, "base_url", provider.default_base_url)
    return httpx.Request("GET", f"{base}/profile", headers={"Authorization": f"Bearer {token}"})


def _ses(provider: Provider) -> httpx.Request:
    from datetime import datetime, timezone

    import httpx

    from anysend.providers._sigv4 import Credentials, sign

    ses: Any = provider  # anysend.providers.ses.SES (its extra may be missing here)
    s: Any = provider.settings
    request = httpx.Request("GET", f"{ses.base_url}/v2/email/account")
    session = _secret(s.session_token) if s.session_token is not None else None
    credentials = Credentials(s.access_key_id, _secret(s.secret_access_key), session)
    when = datetime.fromtimestamp(ses.now(), tz=timezone.utc)
    return sign(request, credentials, region=s.region, service="ses", when=when)


def _fcm(provider: Provider) -> httpx.Request:
    fcm: Any = provider  # anysend.providers.fcm.FCM: its own token request, signed now
    request: httpx.Request = fcm.token_request(fcm.now())
    return request


def _discord(provider: Provider) -> httpx.Request:
    import httpx

    url = httpx.URL(_secret(provider.settings.webhook_url))  # type: ignore[attr-defined]
    return httpx.Request("GET", url.copy_with(query=None))


#: Per provider name, the authenticated read that proves the credentials.
PROBES: dict[str, Callable[[Any], httpx.Request]] = {
    "twilio": _twilio,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "postmark": _postmark,
    "telegram": _telegram,
    "whatsapp": _whatsapp,
    "messenger": _messenger,
    "viber": _viber,
    "vonage": _vonage,
    "plivo": _plivo,
    "smsapi": _smsapi,
    "ses": _ses,
    "fcm": _fcm,
    "discord": _discord,
}

#: Adapters with no authenticated read to call, and why (said on their line).
NO_ENDPOINT: dict[str, str] = {
    "slack": "an incoming-webhook URL has no auth endpoint to call: settings only",
    "teams": "an incoming-webhook URL has no auth endpoint to call: settings only",
}

# A verdict on an answer whose HTTP status alone does not tell: "accepted", "refused" or
# "failed", and a note (codes only, never the provider's text).
_Verdict = tuple[str, str]


def _graph_verdict(provider: Provider, response: httpx.Response) -> _Verdict | None:
    """Graph API errors: an auth code (190, 102, 10, 200-299, ...) is a refusal."""
    from anysend import ErrorCategory
    from anysend.providers import response_body
    from anysend.providers._meta import GRAPH_ERROR_CODES, parse_graph_error

    if response.is_success:
        return None
    error = parse_graph_error(response_body(response))
    if error is None or error.code is None:
        return None
    code = error.code
    auth = GRAPH_ERROR_CODES.get(code) is ErrorCategory.AUTH or 200 <= code <= 299
    return ("refused" if auth else "failed", f", Graph error {code}")


def _viber_verdict(provider: Provider, response: httpx.Response) -> _Verdict | None:
    """Viber answers HTTP 200 with ``status`` 0 (ok) or an error status (2: bad token)."""
    from anysend.providers import response_body

    body = response_body(response)
    status = body.get("status") if isinstance(body, dict) else None
    if not response.is_success or status == 0:
        return None
    if status == 2:
        return ("refused", ", status 2")
    return ("failed", f", status {status}" if isinstance(status, int) else ", no status")


def _fcm_verdict(provider: Provider, response: httpx.Response) -> _Verdict | None:
    """The token endpoint: the adapter's own reading (``invalid_grant`` and the like refuse)."""
    from anysend import ErrorCategory, ProviderError

    fcm: Any = provider
    try:
        fcm.parse_token_response(response, 0.0)
    except ProviderError as exc:
        import re

        # An OAuth error code (RFC 6749 5.2: ``invalid_grant``); anything else is not printed.
        plain = exc.code is not None and re.fullmatch(r"[a-z_]{1,40}", exc.code) is not None
        note = f", {exc.code}" if plain else ""
        return ("refused" if exc.category is ErrorCategory.AUTH else "failed", note)
    return None


#: Per provider name, how to read an answer whose HTTP status is not the whole story.
VERDICTS: dict[str, Callable[[Any, httpx.Response], _Verdict | None]] = {
    "whatsapp": _graph_verdict,
    "messenger": _graph_verdict,
    "viber": _viber_verdict,
    "fcm": _fcm_verdict,
}


def _probe_http(provider: Provider, timeout: float) -> Check:
    import httpx

    label = f"provider {provider.name}"
    try:
        request = PROBES[provider.name](provider)
    except NoProbe as exc:
        return Check(label, "skipped", str(exc))
    path = _hide_token(request.url.path)
    if provider.name == "discord" and path == request.url.path:
        path = "/***"  # not a Discord webhook path: the token may be anywhere in it
    shown = f"{request.method} {request.url.copy_with(path=path)}"
    try:
        with httpx.Client(timeout=timeout) as http:
            response = http.send(request)
    except httpx.HTTPError as exc:
        return Check(label, "failed", f"cannot reach {request.url.host}: {type(exc).__name__}")
    judge = VERDICTS.get(provider.name)
    verdict = judge(provider, response) if judge is not None else None
    code = response.status_code
    if verdict is None:
        if response.is_success:
            verdict = ("accepted", "")
        elif code in (401, 403):
            verdict = ("refused", "")
        else:
            verdict = ("failed", "")
    outcome, note = verdict
    if outcome == "accepted":
        return Check(label, "ok", f"credentials accepted ({shown}: {code})")
    if outcome == "refused":
        return Check(label, "failed", f"credentials refused ({shown}: {code}{note})")
    return Check(label, "failed", f"{shown} answered {code}{note}")


def _hide_token(path: str) -> str:
    """Telegram and Discord put a token in the path: never print it.

    Telegram's ``/bot<token>/getMe`` shows as ``/bot***/getMe``; a Discord webhook's
    ``/api/webhooks/<id>/<token>`` as ``/api/webhooks/<id>/***``.
    """
    if path.startswith("/bot"):
        return "/bot***/" + path.split("/", 2)[-1]
    head, found, tail = path.partition("/webhooks/")
    if found:
        return f"{head}/webhooks/{tail.split('/', 1)[0]}/***"
    return path


def _probe_smtp(provider: Provider, timeout: float) -> Check:
    import smtplib
    import ssl

    s: Any = provider.settings
    label = f"provider {provider.name}"
    context = ssl.create_default_context(cafile=s.ca_file)
    if not s.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    port = s.port or {"tls": 465, "starttls": 587}.get(s.security, 25)
    try:
        server: smtplib.SMTP
        if s.security == "tls":
            server = smtplib.SMTP_SSL(s.host, port, timeout=timeout, context=context)
        else:
            server = smtplib.SMTP(s.host, port, timeout=timeout)
        with server:
            server.ehlo()
            if s.security == "starttls":
                server.starttls(context=context)
                server.ehlo()
            if s.username:
                server.login(s.username, _secret(s.password or ""))
                return Check(label, "ok", f"logged in to {s.host}:{port}")
        return Check(label, "ok", f"{s.host}:{port} answers (no username: no login tried)")
    except smtplib.SMTPAuthenticationError as exc:
        return Check(label, "failed", f"credentials refused by {s.host}:{port} ({exc.smtp_code})")
    except (OSError, smtplib.SMTPException) as exc:
        return Check(label, "failed", f"cannot talk to {s.host}:{port}: {type(exc).__name__}")


def _providers(urls: list[str]) -> tuple[list[Provider], list[Check]]:
    """The providers, and a line for each (a wrong URL is a line, not an exception)."""
    from anysend.providers import redact_url

    checks: list[Check] = []
    found: list[Provider] = []
    if urls:
        for url in urls:
            try:
                (provider,) = providers_from([url])
            except ConfigurationError as exc:
                checks.append(Check(f"provider {redact_url(url)}", "error", str(exc)))
                continue
            found.append(provider)
    elif os.environ.get("ANYSEND_PROVIDERS", "").strip():
        try:
            found = providers_from([])
        except ConfigurationError as exc:
            checks.append(Check("ANYSEND_PROVIDERS", "error", str(exc)))
    else:
        checks.append(Check("providers", "error", NO_PROVIDERS))
    for provider in found:
        channels = ", ".join(sorted(c.value for c in provider.channels))
        checks.append(Check(f"provider {provider.name}", "ok", f"settings valid ({channels})"))
    return found, checks


def _templates(path: Path) -> Check:
    """Every template file compiles."""
    import jinja2

    from anysend import Templates

    label = f"templates {path}"
    try:
        source = Templates(path)
        names = sorted(source._get_index())
        env = source._env
        for file in env.list_templates():
            env.get_template(file)
    except jinja2.TemplateSyntaxError as exc:
        return Check(label, "error", f"{exc.filename or exc.name}:{exc.lineno}: {exc.message}")
    except AnysendError as exc:
        return Check(label, "error", str(exc))
    shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
    return Check(label, "ok", f"{len(names)} template(s): {shown or 'none'}")


def _store(path: str) -> Check:
    """The store opens, and its schema is one this anysend reads."""
    import sqlite3

    from anysend import SQLiteStore

    label = f"store {path}"
    plain = path.removeprefix("sqlite:///")
    if plain != ":memory:" and not Path(plain).exists():
        return Check(label, "ok", "does not exist yet (created on first use)")
    try:
        store = SQLiteStore(path)
        try:
            version = store.schema_version
        finally:
            store.close()
    except (AnysendError, sqlite3.Error, OSError) as exc:
        return Check(label, "error", f"cannot open it: {exc}")
    return Check(label, "ok", f"schema version {version}")


def check(
    *,
    providers: list[str],
    templates: Path | None,
    store: str | None,
    offline: bool,
    timeout: float,
    json: bool,
) -> int:
    """Run ``anysend check``; returns the exit code."""
    found, checks = _providers(providers)
    if templates is not None:  # --templates or ANYSEND_TEMPLATES
        checks.append(_templates(templates))
    path = store or os.environ.get("ANYSEND_STORE")
    if path:
        checks.append(_store(path))
    for provider in found:
        label = f"provider {provider.name}"
        if offline:
            checks.append(Check(label, "skipped", "--offline: not reached"))
        elif provider.name in PROBES:
            checks.append(_probe_http(provider, timeout))
        elif provider.name == "smtp":
            checks.append(_probe_smtp(provider, timeout))
        elif provider.name in NO_ENDPOINT:
            checks.append(Check(label, "skipped", NO_ENDPOINT[provider.name]))
        else:
            checks.append(Check(label, "skipped", "no auth endpoint to call: settings only"))
    if json:
        print_json(
            {
                "ok": all(c.status in ("ok", "skipped") for c in checks),
                "checks": [c.as_json() for c in checks],
            }
        )
    else:
        _print(checks)
    if any(c.status == "error" for c in checks):
        return USAGE
    return FAILED if any(c.status == "failed" for c in checks) else 0


_STYLES = {"ok": "green", "failed": "red", "error": "red", "skipped": "dim"}


def _print(checks: list[Check]) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table("", "checked", "result", box=None, pad_edge=False)
    marks = {"ok": "✓", "failed": "✗", "error": "✗", "skipped": "-"}
    for item in checks:
        style = _STYLES[item.status]
        table.add_row(
            f"[{style}]{marks[item.status]}[/]",
            escape(item.item),
            f"[{style}]{escape(item.detail)}[/]",
        )
    out().print(table)


def list_providers(*, json: bool) -> None:
    """Run ``anysend providers``."""
    from anysend import providers as registry

    rows: list[dict[str, Any]] = []
    for name, target in sorted(registry.available().items()):
        row: dict[str, Any] = {
            "name": name,
            "target": target,
            "builtin": name in registry._BUILTINS,
            "channels": [],
            "http": None,
            "auth_check": name in PROBES or name == "smtp",
            "installed": True,
            "problem": None,
        }
        try:
            cls = registry.load(name)
        except ConfigurationError as exc:
            row.update(installed=False, problem=str(exc))
        else:
            row["channels"] = sorted(c.value for c in cls.channels)
            row["http"] = cls.is_http()
        rows.append(row)
    if json:
        print_json(rows)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table("name", "channels", "source", "auth check", "status", pad_edge=False)
    for row in rows:
        status = "[green]ready[/]" if row["installed"] else f"[yellow]{escape(row['problem'])}[/]"
        source = "built-in" if row["builtin"] else f"entry point {escape(row['target'])}"
        table.add_row(
            row["name"],
            ", ".join(row["channels"]) or "-",
            source,
            "yes" if row["auth_check"] else "-",
            status,
        )
    out().print(table)
