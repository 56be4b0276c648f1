"""Providers from URLs and environment variables.

One URL describes one configured provider. The mapping is the same everywhere:

**URL scheme = entry-point name = ``Provider.name``.** The scheme picks the adapter registered
under that name in the ``anysend.providers`` entry-point group (``smtp`` loads whatever the
``smtp`` entry point names, ``memory`` loads :class:`~anysend.testing.MemoryProvider`); the
rest of the URL fills in the adapter's ``Settings``::

    scheme://[username[:password]@][host][:port][/path][?query]

Where each part goes:

* **URL parts** go to settings fields through the adapter's optional class attribute
  ``url_fields`` (a dict from ``"username"``, ``"password"``, ``"host"``, ``"port"``,
  ``"path"`` to field names). Without it the default is ``username``, ``password``, ``host``
  and ``port`` to the fields of the same names, for the fields the adapter has. A part that
  has no field to go to is refused, with one exception: the host ``default`` means "no host"
  and is always ignored, for Apprise-style URLs that need a ``@`` but have no server
  (``twilio://SID:TOKEN@default?from=+15551234567``). The path is what follows the ``/``
  that ends the host, without that ``/``; a path that goes to a list field is split on ``/``.
* **Query parameters** go to the fields of the same name (or alias); ``from`` is an alias for
  ``sender``. A list, set, frozenset or tuple field (also ``X | None``) takes a
  comma-separated value, and a repeated key appends (``?tags=a,b&tags=c``); a scalar given
  twice is refused. A dict field takes ``field.key=value`` pairs (``?headers.X-Api-Key=abc``)
  or a JSON object (``?headers={...}``, percent-encoded).
* **Keyword overrides** (``from_url(url, password=...)``) are Python values, by field name or
  alias, and come last. Later wins: query parameters over URL parts, overrides over both;
  dict fields are merged key by key.

Values stay strings and the settings model converts them (``"587"`` to an int;
``true``/``false``, ``1``/``0``, ``yes``/``no``, ``on``/``off`` to a bool). The username,
password, path, query names and query values are percent-decoded (as UTF-8); the host is taken
as written. ``+`` stays a plus sign (phone numbers), so write a space as ``%20``. Percent-encode
``: / ? # %`` in the username and password (the host begins after the last ``@``, so a password
may keep its ``@``), and ``& # %`` in query values, plus ``,`` inside list items. A URL holds
no whitespace and no fragment: ``#`` is refused unless encoded as ``%23``.

Examples::

    smtp://apikey:s3cr%40t@smtp.example.com:587?from=shop@example.com
        -> username="apikey", password="s3cr@t", host="smtp.example.com", port=587,
           sender="shop@example.com"
    twilio://ACXXXX:TOKEN@default?from=+15551234567
        -> (with url_fields = {"username": "account_sid", "password": "auth_token"})
           account_sid="ACXXXX", auth_token="TOKEN", sender="+15551234567"
    memory://?channels=sms,email&idempotency=false&name=backup
        -> MemoryProvider(name="backup", channels={"sms", "email"}, idempotency=False)
    console://
        -> Console() with its defaults

Several URLs (:func:`from_urls`, the ``ANYSEND_PROVIDERS`` variable of :func:`from_env`) are
separated by ``||`` or newlines, in failover order. :func:`from_env` also reads
``ANYSEND_<NAME>_<FIELD>`` variables, so secrets need not sit in the URL::

    ANYSEND_PROVIDERS="smtp://mail.example.com:587?from=shop@example.com"
    ANYSEND_SMTP_USERNAME=apikey
    ANYSEND_SMTP_PASSWORD=...

Errors are :class:`~anysend.ConfigurationError` and never contain a secret: URLs in messages
pass through :func:`redact_url`, and validation messages are rebuilt without the values given.
"""

from __future__ import annotations

import collections.abc as abc
import json
import os
import re
import types
import typing
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Literal, get_args, get_origin
from urllib.parse import quote, unquote

import pydantic_core
from pydantic import AliasChoices, Secret, SecretBytes, SecretStr, ValidationError

from anysend._exceptions import ConfigurationError

if typing.TYPE_CHECKING:
    from anysend.providers._base import Provider, ProviderSettings

__all__ = ["from_env", "from_url", "from_urls", "redact_url", "to_url"]

#: The environment variable that lists the provider URLs.
ENV_PROVIDERS = "ANYSEND_PROVIDERS"
#: The prefix of per-provider variables: ``ANYSEND_<NAME>_<FIELD>``.
ENV_PREFIX = "ANYSEND_"

URL_PARTS = ("username", "password", "host", "port", "path")
DEFAULT_URL_FIELDS: dict[str, str] = {
    "username": "username",
    "password": "password",
    "host": "host",
    "port": "port",
}
REDACTED = "***"

_Kind = Literal["list", "dict", "scalar"]

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-_]*)://", re.ASCII)
_PORT = re.compile(r"[0-9]{1,5}", re.ASCII)
_PLAIN_HOST = re.compile(r"[A-Za-z0-9._\-]+", re.ASCII)
_IPV6_HOST = re.compile(r"[0-9A-Fa-f:.]+", re.ASCII)
_SPEC_SEPARATOR = re.compile(r"\|\||\r\n|\r|\n")
_SECRET_WORDS = (
    "key",
    "secret",
    "token",
    "pass",
    "auth",
    "sid",
    "signature",
    "credential",
    "private",
    "cookie",
    "session",
)
_SECRET_TYPES = (SecretStr, SecretBytes, Secret)
_LIST_ORIGINS: frozenset[object] = frozenset(
    {
        list,
        set,
        frozenset,
        tuple,
        abc.Sequence,
        abc.MutableSequence,
        abc.Set,
        abc.MutableSet,
        abc.Collection,
        abc.Iterable,
    }
)
_DICT_ORIGINS: frozenset[object] = frozenset({dict, abc.Mapping, abc.MutableMapping})
_BUILTIN_ERRORS = frozenset(get_args(pydantic_core.core_schema.ErrorType)) - {
    "value_error",
    "assertion_error",
}
# Characters left as they are in query values written by to_url (all safe for from_url).
_QUERY_SAFE = "@:/+!$'()*;~"


# -- the registry, looked up late (this module is imported by anysend.providers) ------------------


def load(name: str) -> type[Provider]:
    """Import the adapter registered as ``name`` (:func:`anysend.providers.load`).

    Raises:
        ConfigurationError: no adapter has that name, or it cannot be imported.
    """
    from anysend import providers

    try:
        return providers.load(name)
    except ConfigurationError:
        raise
    except Exception as exc:  # an adapter whose module or optional dependency fails to import
        raise ConfigurationError(
            f"the provider {name!r} could not be loaded ({type(exc).__name__}: {exc}); "
            "is the package or extra that provides it installed?"
        ) from exc


def available() -> dict[str, str]:
    """Every registered adapter name (:func:`anysend.providers.available`)."""
    from anysend import providers

    try:
        return providers.available()
    except Exception:  # a broken installation must not stop configuration from the list
        return {}


# -- public API ---------------------------------------------------------------------------------


def from_url(url: str, /, **overrides: Any) -> Provider:
    """Build the provider that ``url`` describes.

    Args:
        url: ``scheme://[username[:password]@][host][:port][/path][?query]``; the scheme is
            the provider's entry-point name (see the module documentation for the mapping).
        **overrides: settings given as Python values, by field name or alias (``from`` for
            ``sender``); they win over the URL.

    Returns:
        The configured provider.

    Raises:
        ConfigurationError: the URL is malformed, names no installed provider, or gives
            settings the provider does not have or cannot accept. The message names the
            provider and the setting and never contains a secret.

    Example:
        ```python
        from anysend.providers._config import from_url

        backup = from_url("memory://?channels=sms,email&name=backup")
        ```
    """
    if not isinstance(url, str):
        raise ConfigurationError(f"a provider URL must be a string, not {type(url).__name__}")
    text = url.strip()
    parts = _parse_strict(text)
    cls = load(parts.scheme.lower())
    return _build(cls, parts, text, overrides)


def from_urls(spec: str) -> list[Provider]:
    """Build the providers of several URLs, in failover order.

    Args:
        spec: URLs separated by ``||`` and/or newlines; whitespace around them and blank
            entries are ignored.

    Returns:
        One provider per URL, in the order given.

    Raises:
        ConfigurationError: ``spec`` holds no URL, or one of them is wrong (the message says
            which entry).
    """
    providers: list[Provider] = []
    for index, url, total in _entries(spec, "from_urls"):
        with _entry(index, total, None):
            providers.append(from_url(url))
    return providers


def from_env(environ: Mapping[str, str] | None = None) -> list[Provider]:
    """Build the providers that the environment describes.

    ``ANYSEND_PROVIDERS`` holds the URLs (as for :func:`from_urls`). Each
    ``ANYSEND_<NAME>_<FIELD>`` variable sets one setting of every listed provider of that name,
    winning over its URL: ``NAME`` is the provider name upper-cased with ``-`` (and any other
    character not allowed in a variable name) as ``_``, ``FIELD`` the settings field (or
    alias, or ``FROM`` for ``SENDER``) upper-cased. List fields take comma-separated values,
    dict fields a JSON object; an empty variable counts as unset. A variable that names no
    setting of a listed provider is refused, so typos do not go unnoticed; variables of
    providers that are not listed are ignored.

    Args:
        environ: the variables to read; ``os.environ`` by default.

    Returns:
        One provider per URL in ``ANYSEND_PROVIDERS``, in failover order.

    Raises:
        ConfigurationError: ``ANYSEND_PROVIDERS`` is missing or empty, a URL or a variable is
            wrong, or a setting is invalid.

    Example:
        ```python
        providers = from_env({
            "ANYSEND_PROVIDERS": "smtp://mail.example.com:587?from=shop@example.com",
            "ANYSEND_SMTP_USERNAME": "apikey",
            "ANYSEND_SMTP_PASSWORD": "...",
        })
        ```
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    spec = env.get(ENV_PROVIDERS, "")
    if not spec.strip():
        raise ConfigurationError(
            f"{ENV_PROVIDERS} is not set: set it to one or more provider URLs separated by "
            f"'||' or newlines, e.g. {ENV_PROVIDERS}='smtp://mail.example.com:587"
            "?from=shop@example.com', and put secrets in ANYSEND_<NAME>_<FIELD> variables "
            "such as ANYSEND_SMTP_PASSWORD"
        )
    parsed: list[tuple[int, int, str, _Parts, type[Provider]]] = []
    for index, url, total in _entries(spec, ENV_PROVIDERS):
        with _entry(index, total, ENV_PROVIDERS):
            parts = _parse_strict(url)
            parsed.append((index, total, url, parts, load(parts.scheme.lower())))
    configured = {parts.scheme.lower(): cls for _, _, _, parts, cls in parsed}
    overrides = _env_overrides(env, configured)
    providers: list[Provider] = []
    for index, total, url, parts, cls in parsed:
        with _entry(index, total, ENV_PROVIDERS):
            providers.append(_build(cls, parts, url, overrides[parts.scheme.lower()]))
    return providers


def redact_url(url: str, provider: type[Provider] | None = None) -> str:
    """Return ``url`` with its secrets replaced by ``***``, for messages and logs.

    The password is always replaced, and so is a port that is not a number (a password
    written without ``@``). With the provider class, every part and query parameter whose
    settings field is a secret (``SecretStr``, ``SecretBytes``) is replaced; without it, every
    query parameter whose name contains ``key``, ``secret``, ``token``, ``pass``, ``auth``,
    ``sid``, ``signature``, ``credential``, ``private``, ``cookie`` or ``session``. Dict
    entries (``headers.X-Api-Key=...``) and unknown names are judged by name either way. Text
    that is not a ``scheme://`` URL could be anything, so it comes back as ``***``. Never
    raises.

    Args:
        url: the URL to show.
        provider: the provider class, to find its secret fields.

    Returns:
        The URL, safe to show.
    """
    parts = _split(url.strip()) if isinstance(url, str) else None
    if parts is None:
        return REDACTED
    model: type[ProviderSettings] | None = None
    mapping: dict[str, str] = {}
    secret: set[str] = set()
    if provider is not None:
        try:
            model, mapping, secret = provider.Settings, _url_fields(provider), _secrets(provider)
        except Exception:  # a broken adapter class: fall back to judging by name
            model, mapping, secret = None, {}, set()
    changes: dict[str, Any] = {}
    for part in ("username", "host", "path"):
        text = getattr(parts, part)
        if text and mapping.get(part) in secret and not (part == "host" and text == "default"):
            changes[part] = REDACTED
    if parts.password:
        changes["password"] = REDACTED
    if parts.port and not _valid_port(parts.port):
        changes["port"] = REDACTED
    if parts.query:
        pieces = parts.query.split("&")
        changes["query"] = "&".join(_redact_pair(p, model, secret) for p in pieces)
    return _join(replace(parts, **changes))


def to_url(provider: Provider, *, redact: bool = True) -> str:
    """Describe ``provider`` as a URL that :func:`from_url` reads back.

    The scheme is the class's ``name``; settings that differ from their defaults become URL
    parts (through ``url_fields``, when the value fits there) or query parameters. Values
    that no URL can hold (``None`` in place of a default, a stream object) are left out or
    shown as text, so only plain settings round-trip.

    Args:
        provider: the provider to describe.
        redact: show secrets (secret fields, the password part and dict entries whose name
            looks secret) as ``***``; with ``False`` the URL holds them in the clear.

    Returns:
        The URL; ``from_url(to_url(p, redact=False))`` has settings equal to ``p.settings``.

    Raises:
        ConfigurationError: the provider class has no ``name``.
    """
    cls = type(provider)
    if not cls.name:
        raise ConfigurationError(f"{cls.__name__} has no name, so it has no URL scheme")
    settings = provider.settings
    model = type(settings)
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        value = getattr(settings, name)
        if not info.is_required():
            try:
                default = info.get_default(call_default_factory=True)
            except Exception:  # a factory that needs other fields: show the value
                default = _NO_DEFAULT
            if _same(value, default):
                continue
        values[name] = value

    secret = _secrets(cls)

    def hide(field: str, part: str | None = None) -> bool:
        return redact and (part == "password" or field in secret)

    texts: dict[str, str] = {}
    for part, field in _url_fields(cls).items():
        if field in values:
            text = _part_text(part, values[field], _field_kind(model, field))
            if text is not None:
                texts[part] = REDACTED if hide(field, part) else text
                del values[field]

    netloc = ""
    if "username" in texts or "password" in texts:
        netloc = texts.get("username", "")
        if "password" in texts:
            netloc += ":" + texts["password"]
        netloc += "@"
        if "host" not in texts:
            netloc += "default"
    netloc += texts.get("host", "")
    if "port" in texts:
        netloc += ":" + texts["port"]
    url = f"{cls.name}://{netloc}"
    if "path" in texts:
        url += "/" + texts["path"]
    pairs: list[str] = []
    for field, value in values.items():
        key = "from" if field == "sender" and _resolve(model, "from") == "sender" else field
        pairs.extend(
            _query_pairs(quote(key, safe=""), value, _field_kind(model, field), hide(field), redact)
        )
    if pairs:
        url += "?" + "&".join(pairs)
    return url


# -- parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parts:
    """A URL cut into its raw (still percent-encoded) parts."""

    scheme: str
    has_userinfo: bool
    username: str | None
    password: str | None
    host: str
    port: str | None
    path: str | None
    query: str | None


def _split(text: str) -> _Parts | None:
    """Cut ``text`` into parts leniently (for redaction); ``None`` when it has no scheme."""
    match = _SCHEME.match(text)
    if match is None:
        return None
    rest = text[match.end() :]
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    path_text, qmark, query = tail.partition("?")
    userinfo, at, hostport = netloc.rpartition("@")
    username = password = None
    if at:
        username, colon, password_text = userinfo.partition(":")
        password = password_text if colon else None
    if hostport.startswith("[") and "]" in hostport:
        close = hostport.index("]") + 1
        host, after = hostport[:close], hostport[close:]
        port = after[1:] if after.startswith(":") else (after or None)
    else:
        host, colon, port_text = hostport.partition(":")
        port = port_text if colon else None
    return _Parts(
        scheme=match.group(1),
        has_userinfo=bool(at),
        username=username,
        password=password,
        host=host,
        port=port,
        path=path_text[1:] if path_text else None,
        query=query if qmark else None,
    )


def _join(parts: _Parts) -> str:
    netloc = ""
    if parts.has_userinfo:
        netloc = parts.username or ""
        if parts.password is not None:
            netloc += ":" + parts.password
        netloc += "@"
    netloc += parts.host
    if parts.port is not None:
        netloc += ":" + parts.port
    url = f"{parts.scheme}://{netloc}"
    if parts.path is not None:
        url += "/" + parts.path
    if parts.query is not None:
        url += "?" + parts.query
    return url


def _parse_strict(text: str) -> _Parts:
    """Cut ``text`` into parts, refusing what is not a well-formed provider URL.

    The messages never repeat the text: what is not a URL may be a pasted secret.
    """
    if not text:
        raise ConfigurationError("empty provider URL: expected scheme://..., e.g. console://")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text):
        raise ConfigurationError(
            "a provider URL cannot contain spaces or control characters: percent-encode them "
            "(a space is %20); to give several URLs, separate them with '||' or newlines and "
            "use from_urls"
        )
    parts = _split(text)
    if parts is None:
        raise ConfigurationError(
            "not a provider URL: expected scheme://[username[:password]@][host][:port][/path]"
            "[?query], where the scheme is a provider name such as smtp or console"
        )
    shown = _skeleton(text)
    if "#" in text:
        raise ConfigurationError(f"'#' must be percent-encoded as %23 in a provider URL ({shown})")
    if parts.port and not _valid_port(parts.port):
        raise ConfigurationError(
            f"the port must be a number from 0 to 65535 ({shown}); percent-encode ':' in a "
            "password and '@' before the host"
        )
    if parts.host.startswith("[") and not parts.host.endswith("]"):
        raise ConfigurationError(f"unterminated IPv6 host '[' ({shown})")
    return parts


def _valid_port(text: str) -> bool:
    return _PORT.fullmatch(text) is not None and int(text) <= 65535


def _entries(spec: str, source: str) -> Iterable[tuple[int, str, int]]:
    if not isinstance(spec, str):
        raise ConfigurationError(f"{source}: expected a string of URLs, not {type(spec).__name__}")
    urls = [u.strip() for u in _SPEC_SEPARATOR.split(spec) if u.strip()]
    if not urls:
        raise ConfigurationError(
            f"{source}: no provider URL given; separate several with '||' or newlines, "
            "e.g. 'smtp://mail.example.com:587 || console://'"
        )
    return [(i, url, len(urls)) for i, url in enumerate(urls, 1)]


@contextmanager
def _entry(index: int, total: int, source: str | None) -> Iterator[None]:
    """When several URLs are given, say which one a ConfigurationError is about."""
    try:
        yield
    except ConfigurationError as exc:
        if total == 1 and source is None:
            raise
        where = source if total == 1 else f"{source or 'URL'} {index} of {total}"
        raise ConfigurationError(f"{where}: {exc}") from None


# -- settings fields ----------------------------------------------------------------------------


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None`` from an annotation."""
    origin = get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return annotation


def _kind_of(annotation: Any) -> _Kind:
    bare = _unwrap(annotation)
    base = get_origin(bare) or bare
    if base in _LIST_ORIGINS:
        return "list"
    if base in _DICT_ORIGINS:
        return "dict"
    return "scalar"


def _is_secret_type(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, _SECRET_TYPES):
        return True
    origin = get_origin(annotation)
    if isinstance(origin, type) and issubclass(origin, _SECRET_TYPES):
        return True
    return any(_is_secret_type(a) for a in get_args(annotation))


def _field_kind(model: type[ProviderSettings], field: str) -> _Kind:
    return _kind_of(model.model_fields[field].annotation)


def _field_is_secret(model: type[ProviderSettings], field: str) -> bool:
    info = model.model_fields.get(field)
    return info is not None and _is_secret_type(info.annotation)


def _aliases(model: type[ProviderSettings], field: str) -> list[str]:
    info = model.model_fields[field]
    found = [info.alias] if isinstance(info.alias, str) else []
    alias = info.validation_alias
    if isinstance(alias, str):
        found.append(alias)
    elif isinstance(alias, AliasChoices):
        found.extend(c for c in alias.choices if isinstance(c, str))
    return found


def _resolve(model: type[ProviderSettings], key: str) -> str | None:
    """The field that ``key`` names: a field name, an alias, or ``from`` for ``sender``."""
    if key in model.model_fields:
        return key
    for field in model.model_fields:
        if key in _aliases(model, field):
            return field
    if key == "from" and "sender" in model.model_fields:
        return "sender"
    return None


def _input_key(model: type[ProviderSettings], field: str) -> str:
    """The key under which the model accepts ``field`` (its alias unless names are allowed)."""
    config = model.model_config
    if config.get("populate_by_name") or config.get("validate_by_name"):
        return field
    info = model.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, AliasChoices):
        for choice in alias.choices:
            if isinstance(choice, str):
                return choice
    return field


def _url_fields(cls: type[Provider]) -> dict[str, str]:
    """The adapter's URL-part-to-field mapping (its ``url_fields``, or the default)."""
    fields = cls.Settings.model_fields
    declared = getattr(cls, "url_fields", None)
    if declared is None:
        return {part: f for part, f in DEFAULT_URL_FIELDS.items() if f in fields}
    if not isinstance(declared, Mapping):
        raise ConfigurationError(f"{cls.__name__}.url_fields must be a dict of URL part to field")
    mapping = dict(declared)
    for part, field in mapping.items():
        if part not in URL_PARTS:
            raise ConfigurationError(
                f"{cls.__name__}.url_fields has {part!r}; URL parts are {', '.join(URL_PARTS)}"
            )
        if field not in fields:
            raise ConfigurationError(
                f"{cls.__name__}.url_fields maps {part} to {field!r}, which is not a setting"
            )
    return mapping


def _secrets(cls: type[Provider]) -> set[str]:
    """The secret fields: typed ``SecretStr``/``SecretBytes``, or filled from the password."""
    model = cls.Settings
    found = {f for f in model.model_fields if _field_is_secret(model, f)}
    password_field = _url_fields(cls).get("password")
    if password_field is not None:
        found.add(password_field)
    return found


def _looks_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _skeleton(text: str) -> str:
    """The shape of a URL for error messages: scheme, host and port, query names; no values.

    A value could be a secret under any name (an unencoded ``&`` or ``#`` inside a webhook URL
    turns part of it into a parameter of its own), so errors never show one.
    """
    scheme, sep, rest = text.partition("://")
    if not sep:
        return REDACTED
    rest, _, _fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    host = authority.rpartition("@")[2]
    name, colon, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if colon and not port.isdigit():  # "user:password" written without "@"
        host = f"{name}:{REDACTED}"
    if "@" in authority:
        host = f"{REDACTED}@{host}"
    shown = f"{scheme}://{host}{'/...' if slash and path else ''}"
    if qmark:
        names = [pair.partition("=")[0] for pair in query.split("&") if pair]
        shown += "?" + "&".join(f"{name}={REDACTED}" for name in names)
    return shown


# -- building -----------------------------------------------------------------------------------


class _Context:
    """What building needs to report errors: the provider, the URL to show, secrets to hide."""

    def __init__(self, cls: type[Provider], shown: str) -> None:
        self.cls = cls
        self.model = cls.Settings
        self.label = cls.name or cls.__name__
        self.shown = shown
        self.secret_fields = _secrets(cls)
        self.secrets: set[str] = set()

    def keep_out(self, value: object) -> None:
        """Remember a secret value so that no message repeats it."""
        if isinstance(value, (SecretStr, SecretBytes, Secret)):
            value = value.get_secret_value()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            self.secrets.update(s for s in (value, quote(value, safe="")) if s)
        elif isinstance(value, Mapping):
            for item in value.values():
                self.keep_out(item)
        elif isinstance(value, (list, tuple, set, frozenset)):
            for item in value:
                self.keep_out(item)

    def error(self, detail: str) -> ConfigurationError:
        """A ConfigurationError naming the provider and the URL, with secrets scrubbed."""
        text = f"{self.label}: {detail} (in {self.shown})"
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return ConfigurationError(text)

    def decode(self, raw: str, what: str) -> str:
        """Percent-decode ``raw`` as UTF-8."""
        try:
            return unquote(raw, errors="strict")
        except UnicodeDecodeError:
            problem = f"{what} is not valid percent-encoded UTF-8"
        raise self.error(problem)

    def unknown(self, key: str) -> ConfigurationError:
        """The error for a name that is no setting."""
        known = ", ".join(self.model.model_fields) or "none"
        return self.error(f"unknown setting {key!r} (settings: {known})")


def _build(cls: type[Provider], parts: _Parts, text: str, overrides: Mapping[str, Any]) -> Provider:
    """Build a provider from its URL parts, query and overrides, in that order."""
    ctx = _Context(cls, _skeleton(text))
    model = ctx.model
    mapping = _url_fields(cls)
    data: dict[str, Any] = {}
    if parts.password:
        ctx.keep_out(parts.password)

    # 1. URL parts.
    for part in URL_PARTS:
        raw: str | None = getattr(parts, part)
        if not raw or (part == "host" and raw.lower() == "default"):
            continue
        field = mapping.get(part)
        if field is None:
            takes = ", ".join(mapping) or "none"
            raise ctx.error(
                f"this provider takes no {part} in its URL (URL parts it takes: {takes})"
            )
        if part == "host" and raw.startswith("["):
            raw = raw[1:-1]
        decoded = part not in ("host", "port")
        value: Any
        if _field_kind(model, field) == "list":
            pieces = [s for s in raw.split("/" if part == "path" else ",") if s]
            value = [ctx.decode(s, f"the URL {part}") if decoded else s for s in pieces]
        else:
            value = ctx.decode(raw, f"the URL {part}") if decoded else raw
        if field in ctx.secret_fields:
            ctx.keep_out(value)
        data[field] = value

    # 2. Query parameters; 3. keyword overrides. Later wins; dicts merge key by key.
    if parts.query is not None:
        _merge(data, _parse_query(parts.query, ctx))
    given: dict[str, Any] = {}
    for key, value in overrides.items():
        field = _resolve(model, key)
        if field is None:
            raise ctx.unknown(key)
        if field in given:
            raise ctx.error(f"setting {field!r} is given more than once")
        if field in ctx.secret_fields:
            ctx.keep_out(value)
        given[field] = value
    _merge(data, given)
    return _instantiate(ctx, data)


def _merge(data: dict[str, Any], layer: Mapping[str, Any]) -> None:
    for field, value in layer.items():
        earlier = data.get(field)
        if isinstance(earlier, Mapping) and isinstance(value, Mapping):
            data[field] = {**earlier, **value}
        else:
            data[field] = value


def _parse_query(query: str, ctx: _Context) -> dict[str, Any]:
    """Turn the query into settings values, by field name."""
    model = ctx.model
    result: dict[str, Any] = {}
    for piece in query.split("&"):
        if not piece:
            continue
        key_raw, _, value_raw = piece.partition("=")
        key = ctx.decode(key_raw, "a query parameter name")
        field = _resolve(model, key)
        sub: str | None = None
        if field is None and "." in key_raw:
            prefix_raw, _, sub_raw = key_raw.partition(".")
            field = _resolve(model, ctx.decode(prefix_raw, "a query parameter name"))
            if field is not None and _field_kind(model, field) != "dict":
                raise ctx.error(f"{field!r} is not a mapping, so {key!r} cannot set a key of it")
            sub = ctx.decode(sub_raw, "a query parameter name")
        if field is None:
            raise ctx.unknown(key)
        secret = field in ctx.secret_fields or _looks_secret(key)
        kind = _field_kind(model, field)
        if kind == "list":
            pieces = value_raw.split(",")
            items = [ctx.decode(s, f"the value of {key!r}") for s in pieces if s]
            if secret:
                ctx.keep_out(items)
            result.setdefault(field, []).extend(items)
            continue
        value = ctx.decode(value_raw, f"the value of {key!r}")
        if secret:
            ctx.keep_out(value)
        if kind == "dict":
            if sub is not None:
                entries: dict[str, Any] = {sub: value}
            else:
                entries = _json_object(value, ctx, f"{key!r} takes {key}.name=value pairs or")
            if secret:
                ctx.keep_out(entries)
            target = result.setdefault(field, {})
            repeated = sorted(set(target) & set(entries))
            if repeated:
                raise ctx.error(f"{field}.{repeated[0]} is given more than once")
            target.update(entries)
        elif field in result:
            raise ctx.error(f"setting {field!r} is given more than once")
        else:
            result[field] = value
    return result


def _json_object(text: str, ctx: _Context, what: str) -> dict[str, Any]:
    """Parse a dict setting given whole, as a JSON object (the value is never repeated)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict):
        return value
    raise ctx.error(f"{what} a JSON object, and the value given is not one")


def _instantiate(ctx: _Context, data: Mapping[str, Any]) -> Provider:
    """Validate the settings and build the provider, with messages free of secrets."""
    model = ctx.model
    payload = {_input_key(model, field): value for field, value in data.items()}
    # Validate here rather than in Provider.__init__, whose message repeats the values given,
    # and raise outside the except blocks so that no chained exception carries them either.
    problem: str | None = None
    try:
        settings = model.model_validate(payload)
    except ValidationError as exc:
        problem = _describe(exc, ctx)
    except (TypeError, ValueError) as exc:
        problem = f"invalid settings ({type(exc).__name__}: {exc})"
    if problem is not None:
        raise ctx.error(problem)
    try:
        return ctx.cls(settings)
    except ConfigurationError as exc:
        problem = str(exc)
    except (TypeError, ValueError) as exc:
        problem = f"cannot be set up ({type(exc).__name__}: {exc})"
    raise ctx.error(problem)


def _describe(exc: ValidationError, ctx: _Context) -> str:
    """Rebuild a validation message without the values given (they may be secrets)."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = error["loc"]
        if not loc:
            lines.append(f"settings: {error['msg']}")
            continue
        field = _resolve(ctx.model, str(loc[0])) or str(loc[0])
        where = ".".join([field, *(str(p) for p in loc[1:])])
        message = error["msg"]
        # Built-in messages never quote the input; a validator's own message might.
        if field in ctx.secret_fields and error["type"] not in _BUILTIN_ERRORS:
            message = "invalid value (details hidden: the setting is secret)"
        lines.append(f"setting {where!r}: {message}")
    return "invalid settings: " + "; ".join(lines)


# -- environment --------------------------------------------------------------------------------


def _env_name(name: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", name.upper())


def _env_overrides(
    env: Mapping[str, str], configured: Mapping[str, type[Provider]]
) -> dict[str, dict[str, Any]]:
    """Sort the ``ANYSEND_<NAME>_<FIELD>`` variables into overrides for each listed provider.

    A variable belongs to the longest provider name (listed or installed) that prefixes it, so
    ``ANYSEND_SMTP_RELAY_HOST`` is ``smtp-relay``'s when that provider exists, not ``smtp``'s.
    """
    known = sorted({*configured, *available()}, key=len, reverse=True)
    prefixes = [(f"{ENV_PREFIX}{_env_name(name)}_", name) for name in known]
    overrides: dict[str, dict[str, Any]] = {name: {} for name in configured}
    for variable in sorted(env):
        if variable == ENV_PROVIDERS:
            continue
        owner = next(((p, n) for p, n in prefixes if variable.startswith(p)), None)
        if owner is None or owner[1] not in configured:
            continue
        prefix, name = owner
        cls = configured[name]
        field = _env_field(cls.Settings, variable[len(prefix) :])
        if field is None:
            names = ", ".join(prefix + _env_name(f) for f in cls.Settings.model_fields)
            raise ConfigurationError(
                f"{variable} is not a setting of the {name} provider (its variables: {names})"
            )
        raw = env[variable]
        if raw == "":
            continue
        kind = _field_kind(cls.Settings, field)
        if kind == "list":
            value: Any = [s.strip() for s in raw.split(",") if s.strip()]
        elif kind == "dict":
            value = _json_object(raw, _Context(cls, variable), f"{variable} takes")
        else:
            value = raw
        overrides[name][field] = value
    return overrides


def _env_field(model: type[ProviderSettings], suffix: str) -> str | None:
    for field in model.model_fields:
        if suffix in {_env_name(n) for n in (field, *_aliases(model, field))}:
            return field
    if suffix == "FROM" and "sender" in model.model_fields:
        return "sender"
    return None


# -- writing URLs -------------------------------------------------------------------------------


class _NoDefault:
    pass


_NO_DEFAULT = _NoDefault()


def _same(value: Any, default: Any) -> bool:
    try:
        return bool(value == default) and type(value) is type(default)
    except Exception:  # an odd __eq__: treat as different
        return False


def _plain(value: Any) -> str | None:
    """The text of a scalar setting value, or ``None`` when it has none."""
    if value is None:
        return None
    if isinstance(value, (SecretStr, SecretBytes, Secret)):
        value = value.get_secret_value()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)


def _part_text(part: str, value: Any, kind: _Kind) -> str | None:
    """The URL-part text of ``value``, or ``None`` when it must go to the query instead."""
    if part == "path" and kind == "list":
        items = [_plain(v) for v in value] if isinstance(value, (list, tuple)) else []
        if not items or any(not item for item in items):
            return None
        return "/".join(quote(item or "", safe="") for item in items)
    if kind != "scalar" or isinstance(value, (Mapping, list, tuple, set, frozenset)):
        return None
    text = _plain(value)
    if not text:
        return None
    if part == "port":
        return text if not isinstance(value, bool) and _valid_port(text) else None
    if part == "host":
        if text.lower() == "default":
            return None
        if _PLAIN_HOST.fullmatch(text):
            return text
        if ":" in text and _IPV6_HOST.fullmatch(text):
            return f"[{text}]"
        return None
    if part == "path":
        return quote(text, safe="/")
    return quote(text, safe="")


def _query_pairs(key: str, value: Any, kind: _Kind, hide: bool, redact: bool) -> list[str]:
    def encode(text: str) -> str:
        return REDACTED if hide and text else quote(text, safe=_QUERY_SAFE)

    if value is None:
        return []
    if kind == "list" and isinstance(value, (list, tuple, set, frozenset)):
        items = [_plain(v) or "" for v in value]
        if isinstance(value, (set, frozenset)):
            items.sort()
        if hide and items:
            return [f"{key}={REDACTED}"]
        return [f"{key}=" + ",".join(quote(item, safe=_QUERY_SAFE) for item in items)]
    if kind == "dict" and isinstance(value, Mapping):
        plain = all(isinstance(v, (str, SecretStr, Secret)) for v in value.values())
        if value and plain and all(isinstance(k, str) for k in value):
            pairs = []
            for sub, item in value.items():
                text = _plain(item) or ""
                secret = hide or (redact and _looks_secret(sub))
                shown = REDACTED if secret and text else quote(text, safe=_QUERY_SAFE)
                pairs.append(f"{key}.{quote(sub, safe='')}={shown}")
            return pairs
        if hide:
            return [f"{key}={REDACTED}"]
        try:
            text = json.dumps({str(k): _plain(v) for k, v in value.items()})
        except (TypeError, ValueError):
            text = str(value)
        if redact and _looks_secret(text):
            return [f"{key}={REDACTED}"]
        return [f"{key}={quote(text, safe='')}"]
    return [f"{key}={encode(_plain(value) or '')}"]


def _redact_pair(piece: str, model: type[ProviderSettings] | None, secret: set[str]) -> str:
    """One ``key=value`` of a query, its value replaced when it is (or looks) secret."""
    key_raw, eq, value = piece.partition("=")
    if not eq or not value:
        return piece
    key = unquote(key_raw)
    if model is None:
        hidden = _looks_secret(key)  # a JSON dict's keys are not looked into without the class
    elif (field := _resolve(model, key)) is not None:
        # A dict given whole as JSON is hidden when any of its keys looks secret.
        whole_dict = _field_kind(model, field) == "dict"
        hidden = field in secret or (whole_dict and _looks_secret(unquote(value)))
    else:
        prefix, dot, sub = key.partition(".")
        field = _resolve(model, prefix) if dot else None
        if field is not None and _field_kind(model, field) == "dict":
            hidden = field in secret or _looks_secret(sub)
        else:
            hidden = _looks_secret(key)
    return f"{key_raw}={REDACTED}" if hidden else piece
