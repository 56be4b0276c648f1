"""Providers from URLs and environment variables (``anysend.providers._config``)."""

from __future__ import annotations

import string
import traceback
from typing import ClassVar
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import Field, SecretStr, field_validator

from anysend import Channel, ConfigurationError
from anysend.providers import Provider, ProviderSettings
from anysend.providers import _config as config
from anysend.providers._config import from_env, from_url, from_urls, redact_url, to_url
from anysend.providers.console import Console
from anysend.testing import MemoryProvider

PASSWORD = "Pa55-w0rd-do-not-leak"
TOKEN = "tok-0123456789abcdef"


# -- test providers -----------------------------------------------------------------------------


class WidgetSettings(ProviderSettings):
    """An SMTP-like provider with one field of every kind."""

    host: str = "localhost"
    port: int = 25
    username: str | None = None
    password: SecretStr | None = None
    sender: str | None = None
    use_tls: bool = True
    channels: frozenset[Channel] = frozenset({Channel.EMAIL})
    tags: list[str] = Field(default_factory=list)
    headers: dict[str, str] = Field(default_factory=dict)
    api_key: SecretStr | None = Field(default=None, alias="apiKey")


class Widget(Provider):
    """Default URL mapping: username, password, host and port."""

    name: ClassVar[str] = "widget"
    Settings: ClassVar[type[ProviderSettings]] = WidgetSettings
    settings: WidgetSettings


class WidgetPro(Widget):
    """A provider whose name extends another's (for ANYSEND_<NAME>_ prefixes)."""

    name: ClassVar[str] = "widget-pro"


class TwilySettings(ProviderSettings):
    """A Twilio-like provider: account SID and auth token in the URL's user info."""

    account_sid: str
    auth_token: SecretStr
    sender: str | None = None

    @field_validator("auth_token")
    @classmethod
    def _leaky(cls, value: SecretStr) -> SecretStr:
        # A careless validator that quotes the secret: the message must still not leak it.
        if not value.get_secret_value().startswith("tok"):
            raise ValueError(f"auth token {value.get_secret_value()} must start with tok")
        return value


class Twily(Provider):
    """``url_fields`` maps username and password to differently named fields."""

    name: ClassVar[str] = "twily"
    url_fields: ClassVar[dict[str, str]] = {"username": "account_sid", "password": "auth_token"}
    Settings: ClassVar[type[ProviderSettings]] = TwilySettings
    settings: TwilySettings


class HookySettings(ProviderSettings):
    """A chat-webhook-like provider: workspace in the host, rooms in the path."""

    bot: str = "anysend"
    token: SecretStr | None = None
    workspace: str = "main"
    rooms: list[str] = Field(default_factory=list)


class Hooky(Provider):
    """Host and path go to fields; the path is split into a list."""

    name: ClassVar[str] = "hooky"
    url_fields: ClassVar[dict[str, str]] = {
        "username": "bot",
        "password": "token",
        "host": "workspace",
        "path": "rooms",
    }
    Settings: ClassVar[type[ProviderSettings]] = HookySettings
    settings: HookySettings


class PathySettings(ProviderSettings):
    """A provider that takes its endpoint path as one string."""

    endpoint: str = "/"


class Pathy(Provider):
    """The path goes to a string field."""

    name: ClassVar[str] = "pathy"
    url_fields: ClassVar[dict[str, str]] = {"path": "endpoint"}
    Settings: ClassVar[type[ProviderSettings]] = PathySettings


FAKES: dict[str, type[Provider]] = {
    cls.name: cls for cls in (Widget, WidgetPro, Twily, Hooky, Pathy)
}
REAL_LOAD = config.load
REAL_AVAILABLE = config.available


def fake_load(name: str) -> type[Provider]:
    """Find the test providers, then the installed ones."""
    return FAKES.get(name) or REAL_LOAD(name)


@pytest.fixture(autouse=True)
def _registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the test providers for every test."""
    monkeypatch.setattr(config, "load", fake_load)
    monkeypatch.setattr(config, "available", lambda: {n: f"tests:{n}" for n in FAKES})


def reveal(secret: SecretStr | None) -> str:
    """The value of a secret setting that must be set."""
    assert secret is not None
    return secret.get_secret_value()


def widget(url: str, **overrides: object) -> WidgetSettings:
    """Settings of the Widget that ``url`` describes."""
    provider = from_url(url, **overrides)
    assert isinstance(provider, Widget)
    return provider.settings


def assert_hidden(exc: BaseException, *secrets: str) -> None:
    """No secret in the message, the repr, or the whole printed traceback."""
    printed = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    for secret in secrets:
        assert secret not in str(exc)
        assert secret not in repr(exc)
        assert secret not in printed


# -- built-ins ----------------------------------------------------------------------------------


def test_console_url_gives_a_default_console() -> None:
    """``console://`` loads the built-in Console with its defaults."""
    provider = from_url("console://")
    assert isinstance(provider, Console)
    assert provider.settings == Console().settings


def test_memory_url_with_query() -> None:
    """``memory://?...`` fills MemoryProvider's settings from the query."""
    provider = from_url("memory://?channels=sms,email&idempotency=false&name=backup")
    assert isinstance(provider, MemoryProvider)
    assert provider.settings.name == "backup"
    assert provider.settings.channels == {Channel.SMS, Channel.EMAIL}
    assert provider.settings.idempotency is False
    assert provider.name == "backup"


def test_surrounding_whitespace_is_ignored() -> None:
    """Whitespace around a URL does not matter."""
    assert isinstance(from_url("  console://\n"), Console)


# -- URL parts ----------------------------------------------------------------------------------


def test_default_mapping_of_url_parts() -> None:
    """Username, password, host and port go to the fields of the same names."""
    s = widget(f"widget://apikey:{PASSWORD}@mail.example.com:587?from=shop@example.com")
    assert s.username == "apikey"
    assert reveal(s.password) == PASSWORD
    assert s.host == "mail.example.com"
    assert s.port == 587
    assert s.sender == "shop@example.com"


def test_ipv6_host() -> None:
    """A bracketed IPv6 host loses its brackets."""
    s = widget("widget://[::1]:2525")
    assert (s.host, s.port) == ("::1", 2525)


def test_user_info_is_percent_decoded() -> None:
    """Username and password are percent-decoded."""
    s = widget("widget://a%40b.c:p%3Aw%2Fd%25%40@host")
    assert s.username == "a@b.c"
    assert reveal(s.password) == "p:w/d%@"


def test_password_may_hold_an_unencoded_at_sign() -> None:
    """The host starts after the last ``@``."""
    s = widget("widget://user:p@ss@host")
    assert reveal(s.password) == "p@ss"
    assert s.host == "host"


def test_url_fields_maps_parts_to_other_fields() -> None:
    """A class's ``url_fields`` sends URL parts to the fields it names."""
    provider = from_url(f"twily://AC123:{TOKEN}@default?from=+15551234567")
    assert isinstance(provider, Twily)
    assert provider.settings.account_sid == "AC123"
    assert provider.settings.auth_token.get_secret_value() == TOKEN
    assert provider.settings.sender == "+15551234567"


def test_default_host_is_ignored() -> None:
    """The host ``default`` means no host: refused nowhere, and leaves a host field alone."""
    assert widget("widget://user@default").host == "localhost"
    assert widget("widget://user@DEFAULT:2525").port == 2525


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("twily://AC1:tok@example.com", "host"),
        ("twily://AC1:tok@default:99", "port"),
        ("console://someone@", "username"),
        ("widget://host/some/path", "path"),
    ],
)
def test_url_part_without_a_field_is_refused(url: str, part: str) -> None:
    """A URL part with nowhere to go is an error naming the part."""
    with pytest.raises(ConfigurationError, match=f"takes no {part}"):
        from_url(url)


def test_path_to_a_list_field_is_split() -> None:
    """A path that goes to a list field is split on ``/``, each piece decoded."""
    provider = from_url(f"hooky://bot:{TOKEN}@team/general/a%2Fb/")
    assert isinstance(provider, Hooky)
    assert provider.settings.workspace == "team"
    assert provider.settings.rooms == ["general", "a/b"]
    assert provider.settings.bot == "bot"


def test_path_to_a_string_field_is_decoded() -> None:
    """A path that goes to a string field is percent-decoded whole, less its first ``/``."""
    provider = from_url("pathy:///v1/hooks%3Fx")
    assert isinstance(provider.settings, PathySettings)
    assert provider.settings.endpoint == "v1/hooks?x"


def test_empty_parts_are_not_given() -> None:
    """Empty user info, host, port and path leave the defaults."""
    s = widget("widget://@:/")
    assert (s.username, s.host, s.port) == (None, "localhost", 25)


# -- query parameters ---------------------------------------------------------------------------


def test_query_values_are_percent_decoded_and_plus_is_kept() -> None:
    """Query names and values are percent-decoded; ``+`` stays a plus (phone numbers)."""
    s = widget("widget://?%73ender=+48%20600%26700&username=a%2Cb")
    assert s.sender == "+48 600&700"
    assert s.username == "a,b"


def test_from_is_an_alias_for_sender() -> None:
    """``from`` sets ``sender``."""
    assert widget("widget://?from=a@b.c").sender == "a@b.c"
    assert widget("widget://?sender=a@b.c").sender == "a@b.c"


def test_from_and_sender_together_are_refused() -> None:
    """Giving ``sender`` twice (once as ``from``) is an error."""
    with pytest.raises(ConfigurationError, match="sender"):
        from_url("widget://?from=a@b.c&sender=d@e.f")


def test_repeated_scalar_is_refused() -> None:
    """A scalar setting given twice in the query is an error."""
    with pytest.raises(ConfigurationError, match="more than once"):
        from_url("widget://?port=1&port=2")


def test_field_alias_as_query_key() -> None:
    """A query key may be the field's alias."""
    s = widget(f"widget://?apiKey={TOKEN}")
    assert reveal(s.api_key) == TOKEN
    s = widget(f"widget://?api_key={TOKEN}")
    assert reveal(s.api_key) == TOKEN


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("false", False), ("1", True), ("0", False), ("yes", True), ("no", False)],
)
def test_bools_are_coerced(text: str, expected: bool) -> None:
    """Boolean settings take true/false, 1/0, yes/no."""
    assert widget(f"widget://?use_tls={text}").use_tls is expected


def test_ints_are_coerced() -> None:
    """Numeric settings take their text."""
    assert widget("widget://?port=2525").port == 2525


def test_comma_separated_lists_and_repeats_append() -> None:
    """List fields take comma-separated values; a repeated key appends."""
    s = widget("widget://?tags=a,b&tags=c,,d%2Ce&channels=sms,email")
    assert s.tags == ["a", "b", "c", "d,e"]
    assert s.channels == {Channel.SMS, Channel.EMAIL}


def test_empty_list_value_gives_an_empty_list() -> None:
    """``?channels=`` sets no channels."""
    assert widget("widget://?channels=").channels == frozenset()


def test_dict_pairs() -> None:
    """Dict fields take ``field.key=value`` pairs."""
    s = widget("widget://?headers.X-Api-Key=abc&headers.Accept=text%2Fplain&headers.a.b=c")
    assert s.headers == {"X-Api-Key": "abc", "Accept": "text/plain", "a.b": "c"}


def test_dict_as_json_object() -> None:
    """A dict field may also be given whole, as a JSON object."""
    s = widget("widget://?headers=%7B%22A%22%3A%20%221%22%7D&headers.B=2")
    assert s.headers == {"A": "1", "B": "2"}


def test_dict_value_that_is_not_json_is_refused() -> None:
    """A dict field given whole must be a JSON object."""
    with pytest.raises(ConfigurationError, match="JSON object"):
        from_url("widget://?headers=%5B1%5D")


def test_repeated_dict_key_is_refused() -> None:
    """The same dict entry given twice is an error."""
    with pytest.raises(ConfigurationError, match="more than once"):
        from_url("widget://?headers.A=1&headers.A=2")


def test_dict_pair_on_a_scalar_field_is_refused() -> None:
    """``field.key=value`` works only for dict fields."""
    with pytest.raises(ConfigurationError, match="not a mapping"):
        from_url("widget://?port.x=1")


def test_unknown_query_field_is_refused() -> None:
    """An unknown query key names the provider and the key."""
    with pytest.raises(ConfigurationError, match=r"widget: unknown setting 'prot'") as info:
        from_url("widget://?prot=25")
    assert "port" in str(info.value)  # the known settings are listed


# -- precedence and overrides -------------------------------------------------------------------


def test_later_wins_url_parts_then_query_then_overrides() -> None:
    """Query parameters win over URL parts, keyword overrides over both."""
    assert widget("widget://host:25?port=26").port == 26
    assert widget("widget://host:25?port=26", port=27).port == 27
    assert widget("widget://old@host?username=new").username == "new"


def test_overrides_merge_dicts_and_replace_lists() -> None:
    """A dict override merges key by key; a list override replaces."""
    s = widget("widget://?headers.A=1&headers.B=2&tags=x", headers={"B": "3", "C": "4"}, tags=["y"])
    assert s.headers == {"A": "1", "B": "3", "C": "4"}
    assert s.tags == ["y"]


def test_overrides_accept_aliases_and_from() -> None:
    """Overrides may use the alias and ``from``."""
    s = widget("widget://", apiKey=TOKEN, **{"from": "a@b.c"})
    assert s.sender == "a@b.c"
    assert reveal(s.api_key) == TOKEN


def test_unknown_override_is_refused() -> None:
    """An override that names no setting is an error."""
    with pytest.raises(ConfigurationError, match="unknown setting 'pasword'"):
        from_url("widget://", pasword="x")


# -- malformed URLs and secrets in errors -------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        f"{PASSWORD}",
        f"widget:/{PASSWORD}",
        f"1widget://{PASSWORD}",
        f"widget://user:{PASSWORD} @host",
        f"widget://user:{PASSWORD}#@host",
        f"widget://user:{PASSWORD}",
        "widget://host:99999",
        f"widget://[::1:{PASSWORD}",
        f"widget://u:{PASSWORD}@host?username=%ff",
    ],
)
def test_malformed_urls_are_refused_without_echo(text: str) -> None:
    """Malformed URLs raise ConfigurationError and never repeat the secret in them."""
    with pytest.raises(ConfigurationError) as info:
        from_url(text)
    assert_hidden(info.value, PASSWORD)


def test_unknown_scheme() -> None:
    """A scheme that names no installed provider is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="no provider named 'nosuch'"):
        from_url("nosuch://x")


def test_scheme_is_case_insensitive() -> None:
    """Schemes are compared in lower case."""
    assert isinstance(from_url("CONSOLE://"), Console)


def test_non_string_url_is_refused() -> None:
    """Only strings are URLs."""
    with pytest.raises(ConfigurationError):
        from_url(42)  # type: ignore[arg-type]


def test_bad_value_of_other_field_does_not_leak_secrets() -> None:
    """An invalid port names provider and field, and hides the password and API key."""
    with pytest.raises(ConfigurationError) as info:
        from_url(f"widget://u:{PASSWORD}@h?port=abc&apiKey={TOKEN}")
    message = str(info.value)
    assert "widget" in message
    assert "'port'" in message
    assert "***" in message
    assert_hidden(info.value, PASSWORD, TOKEN)


def test_bad_value_of_secret_field_does_not_leak_it() -> None:
    """A validator that quotes the secret it refuses still leaks nothing."""
    with pytest.raises(ConfigurationError) as info:
        from_url(f"twily://AC1:{PASSWORD}@default")
    assert "auth_token" in str(info.value)
    assert "twily" in str(info.value)
    assert_hidden(info.value, PASSWORD)


def test_bad_secret_override_does_not_leak_it() -> None:
    """A secret given as an override is hidden too."""
    with pytest.raises(ConfigurationError) as info:
        from_url("twily://AC1@default", auth_token=PASSWORD)
    assert_hidden(info.value, PASSWORD)


def test_missing_required_field_is_named() -> None:
    """A missing required setting is named."""
    with pytest.raises(ConfigurationError, match="account_sid"):
        from_url(f"twily://?auth_token={TOKEN}")


def test_unknown_field_error_hides_the_password() -> None:
    """Errors show only the URL's shape: host and setting names, never a value."""
    with pytest.raises(ConfigurationError) as info:
        from_url(f"widget://u:{PASSWORD}@h?token={TOKEN}")
    assert "widget://***@h?token=***" in str(info.value)
    assert_hidden(info.value, PASSWORD, TOKEN)


def test_json_dict_entry_of_wrong_type_is_named_without_its_value() -> None:
    """A bad dict entry is named; a JSON dict with secret-looking keys is not shown."""
    with pytest.raises(ConfigurationError, match=r"'headers\.Authorization'") as info:
        from_url("widget://?headers=%7B%22Authorization%22%3A%201234567%7D")
    assert "1234567" not in str(info.value)


@settings(max_examples=200, deadline=None)
@given(
    st.text(string.ascii_letters + string.digits + "!$'()*-._~:@/?#&=+,;% ", min_size=12),
    st.sampled_from(["port=abc", "nope=1", "headers=x", "channels=fax", "port=1&port=2", "a=%ff"]),
)
def test_secrets_never_in_errors(secret: str, broken: str) -> None:
    """Whatever the secrets and the mistake, no error repeats the password or API key."""
    encoded = quote(secret, safe="")
    # A "secret" that is a piece of the error's own words (Configuratio, anysend._exc) would
    # be found in any traceback: such values prove nothing either way.
    placeholder = "Z" * len(encoded)
    with pytest.raises(ConfigurationError) as baseline:
        from_url(f"widget://u:{placeholder}@h?{broken}&apiKey={placeholder}")
    printed = "".join(traceback.format_exception(baseline.value))
    assume(secret not in printed and encoded not in printed)
    for url in (
        f"widget://u:{encoded}@h?{broken}&apiKey={encoded}",
        f"widget://u:{encoded}@h?apiKey={encoded}&{broken}",
        f"twily://AC1:{encoded}@default?{broken}",
    ):
        with pytest.raises(ConfigurationError) as info:
            from_url(url)
        assert_hidden(info.value, secret, encoded)


def test_real_registry_lookups() -> None:
    """Unpatched, ``load`` and ``available`` use the installed entry points."""
    assert REAL_LOAD("console") is Console
    assert "memory" in REAL_AVAILABLE()


def test_adapter_that_fails_to_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter whose module cannot be imported gives a ConfigurationError."""

    def broken(name: str) -> type[Provider]:
        raise ImportError("No module named 'vendor_sdk'")

    monkeypatch.setattr("anysend.providers.load", broken)
    with pytest.raises(ConfigurationError, match=r"could not be loaded.*vendor_sdk"):
        REAL_LOAD("acme")


# -- several URLs ---------------------------------------------------------------------------------


def test_from_urls_with_bars_and_newlines() -> None:
    """``||`` and newlines separate URLs, in failover order; blank entries are skipped."""
    providers = from_urls(
        "memory://?name=first || memory://?name=second\n\n  console://  \r\nmemory://?name=last||"
    )
    names = [p.settings.name if isinstance(p, MemoryProvider) else p.name for p in providers]
    assert names == ["first", "second", "console", "last"]


@pytest.mark.parametrize("spec", ["", "  \n || \n"])
def test_from_urls_empty_is_refused(spec: str) -> None:
    """An empty list of URLs is an error."""
    with pytest.raises(ConfigurationError, match="no provider URL"):
        from_urls(spec)


def test_from_urls_says_which_entry_is_wrong() -> None:
    """An error in one of several URLs says which one."""
    with pytest.raises(ConfigurationError, match="URL 2 of 2: memory: unknown setting"):
        from_urls("console:// || memory://?nope=1")


# -- environment --------------------------------------------------------------------------------


def test_from_env_with_secrets_in_separate_variables() -> None:
    """``ANYSEND_<NAME>_<FIELD>`` variables override every provider of that name."""
    providers = from_env(
        {
            "ANYSEND_PROVIDERS": "widget://mail.example.com:587?from=shop@example.com "
            "|| widget://backup.example.com || console://",
            "ANYSEND_WIDGET_PASSWORD": PASSWORD,
            "ANYSEND_WIDGET_USERNAME": "apikey",
            "ANYSEND_WIDGET_APIKEY": TOKEN,
        }
    )
    first, second, console = providers
    assert isinstance(first, Widget)
    assert isinstance(second, Widget)
    assert isinstance(console, Console)
    assert (first.settings.host, first.settings.port) == ("mail.example.com", 587)
    assert first.settings.sender == "shop@example.com"
    for s in (first.settings, second.settings):
        assert s.username == "apikey"
        assert reveal(s.password) == PASSWORD
        assert reveal(s.api_key) == TOKEN
    assert second.settings.host == "backup.example.com"


def test_env_wins_over_the_url() -> None:
    """An environment variable wins over the URL's value."""
    (p,) = from_env({"ANYSEND_PROVIDERS": "widget://h:25", "ANYSEND_WIDGET_PORT": "26"})
    assert isinstance(p, Widget)
    assert p.settings.port == 26


def test_env_lists_dicts_and_from() -> None:
    """List variables are comma-separated, dicts JSON; ``_FROM`` sets the sender."""
    (p,) = from_env(
        {
            "ANYSEND_PROVIDERS": "widget://?headers.A=1",
            "ANYSEND_WIDGET_TAGS": "a, b,,c",
            "ANYSEND_WIDGET_CHANNELS": "sms",
            "ANYSEND_WIDGET_HEADERS": '{"B": "2"}',
            "ANYSEND_WIDGET_FROM": "x@y.z",
            "ANYSEND_WIDGET_USE_TLS": "no",
        }
    )
    assert isinstance(p, Widget)
    assert p.settings.tags == ["a", "b", "c"]
    assert p.settings.channels == {Channel.SMS}
    assert p.settings.headers == {"A": "1", "B": "2"}
    assert p.settings.sender == "x@y.z"
    assert p.settings.use_tls is False


def test_env_bad_json_is_refused() -> None:
    """A dict variable that is not a JSON object is an error naming the variable."""
    with pytest.raises(ConfigurationError, match="ANYSEND_WIDGET_HEADERS"):
        from_env({"ANYSEND_PROVIDERS": "widget://", "ANYSEND_WIDGET_HEADERS": "A=1"})


def test_env_typo_is_refused() -> None:
    """A variable that names no setting of a listed provider is refused."""
    with pytest.raises(ConfigurationError, match="ANYSEND_WIDGET_PASWORD") as info:
        from_env({"ANYSEND_PROVIDERS": "widget://", "ANYSEND_WIDGET_PASWORD": PASSWORD})
    assert "ANYSEND_WIDGET_PASSWORD" in str(info.value)  # the right names are listed
    assert_hidden(info.value, PASSWORD)


def test_env_for_unlisted_providers_is_ignored() -> None:
    """Variables of providers that are not listed, or of other programs, are ignored."""
    (p,) = from_env(
        {
            "ANYSEND_PROVIDERS": "widget://",
            "ANYSEND_TWILY_NOPE": "x",
            "ANYSEND_WIDGET_PRO_PORT": "x",  # widget-pro's, not widget's PRO_PORT
            "ANYSEND_LOG_LEVEL": "debug",
            "HOME": "/root",
        }
    )
    assert isinstance(p, Widget)
    assert p.settings.port == 25


def test_env_longest_provider_name_owns_a_variable() -> None:
    """With ``widget`` and ``widget-pro`` both listed, each gets its own variables."""
    plain, pro = from_env(
        {
            "ANYSEND_PROVIDERS": "widget:// || widget-pro://",
            "ANYSEND_WIDGET_PORT": "1",
            "ANYSEND_WIDGET_PRO_PORT": "2",
        }
    )
    assert isinstance(plain, Widget)
    assert isinstance(pro, WidgetPro)
    assert (plain.settings.port, pro.settings.port) == (1, 2)


def test_env_empty_variable_counts_as_unset() -> None:
    """An empty variable leaves the URL's value."""
    (p,) = from_env({"ANYSEND_PROVIDERS": "widget://h:26", "ANYSEND_WIDGET_PORT": ""})
    assert isinstance(p, Widget)
    assert p.settings.port == 26


@pytest.mark.parametrize("environ", [{}, {"ANYSEND_PROVIDERS": "  "}])
def test_env_without_providers_says_what_to_set(environ: dict[str, str]) -> None:
    """Without ANYSEND_PROVIDERS the error says what to set."""
    with pytest.raises(ConfigurationError, match="ANYSEND_PROVIDERS is not set"):
        from_env(environ)


def test_env_bad_secret_value_does_not_leak() -> None:
    """A bad secret from a variable is hidden, and the error says which entry."""
    with pytest.raises(ConfigurationError, match="ANYSEND_PROVIDERS 2 of 2") as info:
        from_env(
            {
                "ANYSEND_PROVIDERS": "console:// || twily://AC1@default",
                "ANYSEND_TWILY_AUTH_TOKEN": PASSWORD,
            }
        )
    assert_hidden(info.value, PASSWORD)


def test_env_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an argument, ``os.environ`` is read."""
    monkeypatch.setenv("ANYSEND_PROVIDERS", "memory://?name=env")
    (p,) = from_env()
    assert isinstance(p, MemoryProvider)
    assert p.settings.name == "env"


# -- redact_url ---------------------------------------------------------------------------------


def test_redact_password() -> None:
    """The password is always replaced."""
    url = f"widget://user:{PASSWORD}@host:587?from=a@b.c"
    assert redact_url(url) == "widget://user:***@host:587?from=a@b.c"
    assert redact_url(url, Widget) == "widget://user:***@host:587?from=a@b.c"


def test_redact_by_field_type_with_provider() -> None:
    """With the class, secret fields (by name or alias) and secret-looking dict keys go."""
    url = f"widget://?apiKey={TOKEN}&api_key={TOKEN}&password=x&tags=k&headers.X-Token=t&use_tls=1"
    assert redact_url(url, Widget) == (
        "widget://?apiKey=***&api_key=***&password=***&tags=k&headers.X-Token=***&use_tls=1"
    )


def test_redact_by_name_without_provider() -> None:
    """Without the class, parameters with secret-looking names go."""
    url = "x://?token=1&account_sid=2&AuthHeader=3&client_secret=4&passwd=5&from=6&to=7"
    assert redact_url(url) == (
        "x://?token=***&account_sid=***&AuthHeader=***&client_secret=***&passwd=***&from=6&to=7"
    )


def test_redact_url_parts_mapped_to_secrets() -> None:
    """Parts that ``url_fields`` sends to secret fields go too."""
    assert redact_url(f"twily://AC1:{TOKEN}@default", Twily) == "twily://AC1:***@default"
    assert redact_url(f"hooky://bot:{TOKEN}@team/a", Hooky) == "hooky://bot:***@team/a"


def test_redact_non_numeric_port() -> None:
    """A password written without ``@`` parses as a port, so a non-numeric port goes."""
    assert redact_url(f"widget://user:{PASSWORD}") == "widget://user:***"


def test_redact_text_that_is_no_url() -> None:
    """Text without ``scheme://`` could be a secret, so nothing of it is shown."""
    assert redact_url(PASSWORD) == "***"


def test_redact_leaves_clean_urls_alone() -> None:
    """A URL without secrets comes back unchanged."""
    url = "memory://?channels=sms,email&idempotency=false&name=backup"
    assert redact_url(url) == url
    assert redact_url(url, MemoryProvider) == url


# -- to_url -------------------------------------------------------------------------------------


def test_to_url_of_builtins() -> None:
    """Defaults give the bare scheme; other settings become query parameters."""
    assert to_url(Console()) == "console://"
    memory = MemoryProvider(name="backup", channels={"sms", "email"}, idempotency=False)
    assert to_url(memory) == "memory://?name=backup&channels=email,sms&idempotency=false"


def test_to_url_uses_url_parts_and_redacts() -> None:
    """Fields mapped from URL parts go back there; secrets show as ``***``."""
    provider = from_url(f"widget://apikey:{PASSWORD}@mail.example.com:587?from=a@b.c&apiKey=k1")
    assert to_url(provider) == "widget://apikey:***@mail.example.com:587?from=a@b.c&api_key=***"
    clear = to_url(provider, redact=False)
    assert PASSWORD in clear
    assert "api_key=k1" in clear


def test_to_url_twilio_style_uses_default_host() -> None:
    """User info without a host is written with the host ``default``."""
    provider = from_url(f"twily://AC1:{TOKEN}@default?from=%2B15551234567")
    assert to_url(provider) == "twily://AC1:***@default?from=+15551234567"
    assert to_url(provider, redact=False) == f"twily://AC1:{TOKEN}@default?from=+15551234567"


def test_to_url_of_nameless_provider_is_refused() -> None:
    """A provider class without a name has no scheme."""

    class Nameless(Provider):
        """No name."""

    with pytest.raises(ConfigurationError, match="no name"):
        to_url(Nameless())


@pytest.mark.parametrize(
    "provider",
    [
        Console(),
        Console(channels={"sms"}),
        MemoryProvider(),
        MemoryProvider(name="b,a&c", channels=set(), idempotency=False),
        Hooky(bot="b", token="t", workspace="w", rooms=["a/b", "c"]),
        Hooky(workspace="not a host", rooms=[]),
        Pathy(endpoint="/v1/x?y#z"),
        Twily(account_sid="AC:1", auth_token="tok@/:"),
    ],
)
def test_round_trip_examples(provider: Provider) -> None:
    """``from_url(to_url(p, redact=False))`` has equal settings."""
    again = from_url(to_url(provider, redact=False))
    assert type(again) is type(provider)
    assert again.settings == provider.settings


_text = st.text(max_size=12)
_widget_settings = st.fixed_dictionaries(
    {},
    optional={
        "host": _text,
        "port": st.integers(-1, 70000),
        "username": _text,
        "password": _text.map(SecretStr),
        "sender": _text,
        "use_tls": st.booleans(),
        "channels": st.frozensets(st.sampled_from(Channel)),
        "tags": st.lists(_text.filter(bool), max_size=3),
        "headers": st.dictionaries(_text, _text, max_size=3),
        "apiKey": _text.map(SecretStr),
    },
)


@settings(max_examples=200, deadline=None)
@given(_widget_settings)
def test_round_trip_property(values: dict[str, object]) -> None:
    """Any Widget settings survive ``to_url`` and ``from_url``; redaction agrees."""
    provider = Widget(**values)
    url = to_url(provider, redact=False)
    again = from_url(url)
    assert again.settings == provider.settings
    assert to_url(provider) == redact_url(url, Widget)


# -- anything else ------------------------------------------------------------------------------

_url_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40) | st.text(
    alphabet=string.printable, max_size=40
)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["", "console://", "memory://", "widget://", "twily://", "hooky://", "x://"]),
    _url_text,
)
def test_from_url_on_arbitrary_text_raises_only_configuration_error(prefix: str, text: str) -> None:
    """Whatever the text, ``from_url`` returns a provider or raises ConfigurationError."""
    try:
        provider = from_url(prefix + text)
    except ConfigurationError:
        return
    assert isinstance(provider, Provider)


@settings(max_examples=200, deadline=None)
@given(_url_text)
def test_redact_url_never_raises(text: str) -> None:
    """``redact_url`` takes any text."""
    assert isinstance(redact_url(text, Widget), str)
    assert isinstance(redact_url("widget://" + text), str)
