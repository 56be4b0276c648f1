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
smtp         connect, ``EHLO``, ``STARTTLS`` or TLS as configured, ``AUTH`` when a
             username is set; ``QUIT`` before any mail command
===========  ==================================================================

Other adapters have no such endpoint known to anysend: their settings are checked offline
only, and the line says so. The probes live here, in the command line, rather than on the
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

__all__ = ["PROBES", "Check", "check", "list_providers"]


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


#: Per provider name, the authenticated read that proves the credentials.
PROBES: dict[str, Callable[[Any], httpx.Request]] = {
    "twilio": _twilio,
    "sendgrid": _sendgrid,
    "mailgun": _mailgun,
    "postmark": _postmark,
    "telegram": _telegram,
}


def _probe_http(provider: Provider, timeout: float) -> Check:
    import httpx

    label = f"provider {provider.name}"
    request = PROBES[provider.name](provider)
    shown = f"{request.method} {request.url.copy_with(path=_hide_token(request.url.path))}"
    try:
        with httpx.Client(timeout=timeout) as http:
            response = http.send(request)
    except httpx.HTTPError as exc:
        return Check(label, "failed", f"cannot reach {request.url.host}: {type(exc).__name__}")
    if response.is_success:
        return Check(label, "ok", f"credentials accepted ({shown}: {response.status_code})")
    if response.status_code in (401, 403):
        return Check(label, "failed", f"credentials refused ({shown}: {response.status_code})")
    return Check(label, "failed", f"{shown} answered {response.status_code}")


def _hide_token(path: str) -> str:
    """Telegram puts the bot token in the path: never print it."""
    if path.startswith("/bot"):
        return "/bot***/" + path.split("/", 2)[-1]
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
