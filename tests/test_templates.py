"""Tests for anysend._templates: per-channel, per-locale Jinja2 rendering of notifications."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.exceptions import SecurityError

from anysend._exceptions import ConfigurationError, TemplateError
from anysend._models import Channel
from anysend._templates import RenderedContent, Templates

CHAT_LIKE = [
    Channel.WHATSAPP,
    Channel.TELEGRAM,
    Channel.MESSENGER,
    Channel.VIBER,
    Channel.CHAT,
    Channel.WEBHOOK,
]


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Write a template layout under ``root`` from relative paths to file contents."""
    for relative, content in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


class CountingLoader(jinja2.DictLoader):
    """A DictLoader that counts how often each template source and the listing are read."""

    def __init__(self, mapping: dict[str, str]) -> None:
        super().__init__(mapping)
        self.loads: dict[str, int] = {}
        self.listings = 0

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, None, Callable[[], bool]]:
        self.loads[template] = self.loads.get(template, 0) + 1
        return super().get_source(environment, template)

    def list_templates(self) -> list[str]:
        self.listings += 1
        return super().list_templates()


class UnlistableLoader(jinja2.BaseLoader):
    """A loader that can load but cannot list its templates."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        raise jinja2.TemplateNotFound(template)


@pytest.fixture
def locale_tree(tmp_path: Path) -> Templates:
    """A directory source with root, ``pl`` and ``pl-PL`` folders holding different channels."""
    write_tree(
        tmp_path,
        {
            "promo/email.subject.txt": "Hello {{ name }}",
            "promo/email.html": "<p>Hello {{ name }}</p>",
            "promo/email.txt": "Hello {{ name }} (root text)",
            "promo/sms.txt": "Hello {{ name }} (root sms)",
            "promo/push.title.txt": "Hello",
            "promo/push.body.txt": "Hi {{ name }}",
            "promo/pl/email.subject.txt": "Cześć {{ name }}",
            "promo/pl/email.html": "<p>Cześć {{ name }}</p>",
            "promo/pl/sms.txt": "Cześć {{ name }} (pl sms)",
            "promo/pl-PL/sms.txt": "Cześć {{ name }} (pl-PL sms)",
        },
    )
    return Templates(tmp_path, html_to_text=lambda html: f"derived: {html}")


# --- parts of each channel --------------------------------------------------------------------


def test_email_renders_subject_html_and_text() -> None:
    """An email gets its subject, HTML and text parts from the three email files."""
    templates = Templates(
        {
            "welcome/email.subject.txt": "Welcome, {{ name }}",
            "welcome/email.html": "<h1>Hi {{ name }}</h1>",
            "welcome/email.txt": "Hi {{ name }}",
        }
    )
    content = templates.render("welcome", Channel.EMAIL, {"name": "Ada"})
    assert content == RenderedContent(
        subject="Welcome, Ada", html="<h1>Hi Ada</h1>", text="Hi Ada", locale=None
    )


def test_email_with_text_only_has_no_html() -> None:
    """An email template with a text part and no HTML renders text and leaves html unset."""
    templates = Templates({"t/email.subject.txt": "S", "t/email.txt": "Body"})
    content = templates.render("t", Channel.EMAIL, {})
    assert content == RenderedContent(subject="S", text="Body")


def test_sms_renders_text() -> None:
    """The SMS text comes from sms.txt and nothing else is set."""
    templates = Templates({"otp/sms.txt": "Your code is {{ code }}"})
    assert templates.render("otp", Channel.SMS, {"code": "123456"}) == RenderedContent(
        text="Your code is 123456"
    )


def test_push_renders_title_and_body() -> None:
    """Push gets push_title and push_body from push.title.txt and push.body.txt."""
    templates = Templates(
        {"t/push.title.txt": "Back in stock", "t/push.body.txt": "{{ item }} is back"}
    )
    content = templates.render("t", Channel.PUSH, {"item": "Lamp"})
    assert content == RenderedContent(push_title="Back in stock", push_body="Lamp is back")


def test_push_with_body_only() -> None:
    """A push template needs only one of title and body; the other stays None."""
    templates = Templates({"t/push.body.txt": "Only a body"})
    assert templates.render("t", Channel.PUSH, {}) == RenderedContent(push_body="Only a body")


@pytest.mark.parametrize("channel", CHAT_LIKE)
def test_chat_txt_serves_every_chat_like_channel(channel: Channel) -> None:
    """chat.txt is the text of whatsapp, telegram, messenger, viber, chat and webhook."""
    templates = Templates({"t/chat.txt": "Hello on {{ channel }}"})
    content = templates.render("t", channel, {})
    assert content == RenderedContent(text=f"Hello on {channel.value}")


def test_channel_file_overrides_chat_txt_for_that_channel_only() -> None:
    """telegram.txt replaces chat.txt for telegram, while other chat channels keep chat.txt."""
    templates = Templates({"t/chat.txt": "generic", "t/telegram.txt": "*telegram* text"})
    assert templates.render("t", Channel.TELEGRAM, {}) == RenderedContent(text="*telegram* text")
    assert templates.render("t", Channel.WHATSAPP, {}) == RenderedContent(text="generic")


def test_channel_without_parts_renders_none() -> None:
    """A channel the template has no file for renders to None, not an error."""
    templates = Templates({"t/sms.txt": "hi"})
    assert templates.render("t", Channel.EMAIL, {}) is None
    assert templates.render("t", Channel.PUSH, {}) is None
    assert templates.render("t", Channel.TELEGRAM, {}) is None


def test_parts_are_stripped() -> None:
    """Leading and trailing whitespace (such as a file's final newline) is removed."""
    templates = Templates({"t/sms.txt": "\n\n  Hello {{ name }}  \n", "t/push.title.txt": " T\n"})
    assert templates.render("t", Channel.SMS, {"name": "Ada"}) == RenderedContent(text="Hello Ada")
    assert templates.render("t", Channel.PUSH, {}) == RenderedContent(push_title="T")


def test_data_gets_locale_and_channel() -> None:
    """Templates see ``locale`` (the folder used) and ``channel`` besides the caller's data."""
    templates = Templates(
        {"t/sms.txt": "{{ channel }} {{ locale }}", "t/de/sms.txt": "{{ locale }}"}
    )
    assert templates.render("t", Channel.SMS, {}) == RenderedContent(text="sms None")
    assert templates.render("t", Channel.SMS, {}, "de-AT") == RenderedContent(
        text="de", locale="de"
    )


def test_data_can_override_locale_and_channel() -> None:
    """Caller data that defines ``locale`` or ``channel`` wins over the injected values."""
    templates = Templates({"t/sms.txt": "{{ channel }} {{ locale }}"})
    content = templates.render("t", Channel.SMS, {"channel": "mine", "locale": "xx"})
    assert content == RenderedContent(text="mine xx")


def test_rendered_content_is_frozen() -> None:
    """RenderedContent cannot be changed after it is built."""
    content = RenderedContent(text="x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        content.text = "y"  # type: ignore[misc]


# --- locale fallback --------------------------------------------------------------------------


def test_locale_region_folder_is_used_first(locale_tree: Templates) -> None:
    """For pl-PL, a channel with a part in pl-PL/ renders from pl-PL/."""
    content = locale_tree.render("promo", Channel.SMS, {"name": "Ola"}, "pl-PL")
    assert content == RenderedContent(text="Cześć Ola (pl-PL sms)", locale="pl-PL")


def test_locale_falls_back_to_language_folder(locale_tree: Templates) -> None:
    """For pl-PL, a channel absent from pl-PL/ but present in pl/ renders from pl/."""
    content = locale_tree.render("promo", Channel.EMAIL, {"name": "Ola"}, "pl-PL")
    assert content is not None
    assert content.locale == "pl"
    assert content.subject == "Cześć Ola"


def test_locale_falls_back_to_root(locale_tree: Templates) -> None:
    """A channel present only in the root renders from the root, even when pl/ has others."""
    content = locale_tree.render("promo", Channel.PUSH, {"name": "Ola"}, "pl-PL")
    assert content == RenderedContent(push_title="Hello", push_body="Hi Ola", locale=None)


def test_language_only_locale_skips_region_folders(locale_tree: Templates) -> None:
    """Locale "pl" uses pl/ and never a region folder such as pl-PL/."""
    content = locale_tree.render("promo", Channel.SMS, {"name": "Ola"}, "pl")
    assert content == RenderedContent(text="Cześć Ola (pl sms)", locale="pl")


def test_no_locale_uses_root_only(locale_tree: Templates) -> None:
    """Without a locale, only the root folder is used."""
    content = locale_tree.render("promo", Channel.SMS, {"name": "Ola"})
    assert content == RenderedContent(text="Hello Ola (root sms)", locale=None)


def test_unknown_locale_uses_root(locale_tree: Templates) -> None:
    """A locale without a folder (de-DE) falls back to the root."""
    content = locale_tree.render("promo", Channel.SMS, {"name": "Max"}, "de-DE")
    assert content == RenderedContent(text="Hello Max (root sms)", locale=None)


@pytest.mark.parametrize("locale", ["pl_PL", "PL-pl", "pl-pl", "pl_PL.UTF-8"])
def test_locale_spellings_are_normalised(locale_tree: Templates, locale: str) -> None:
    """pl_PL, PL-pl, pl-pl and POSIX pl_PL.UTF-8 all select the pl-PL folder."""
    content = locale_tree.render("promo", Channel.SMS, {"name": "Ola"}, locale)
    assert content is not None
    assert content.locale == "pl-PL"


def test_locale_folder_spelling_is_normalised() -> None:
    """A folder named pt_br/ serves locale pt-BR and is reported as "pt-BR"."""
    templates = Templates({"t/sms.txt": "root", "t/pt_br/sms.txt": "olá"})
    assert templates.render("t", Channel.SMS, {}, "pt-BR") == RenderedContent(
        text="olá", locale="pt-BR"
    )


def test_garbage_locale_uses_root() -> None:
    """A locale that is not a language tag (a path) is ignored and the root is used."""
    templates = Templates({"t/sms.txt": "root", "t/pl/sms.txt": "pl"})
    assert templates.render("t", Channel.SMS, {}, "../pl") == RenderedContent(text="root")


def test_one_channel_never_mixes_locale_folders() -> None:
    """Email from pl/ derives its text from pl/email.html, not the root's email.txt."""
    templates = Templates(
        {
            "t/email.subject.txt": "Subject",
            "t/email.html": "<p>English</p>",
            "t/email.txt": "English text",
            "t/pl/email.subject.txt": "Temat",
            "t/pl/email.html": "<p>Polski</p>",
        },
        html_to_text=lambda html: html.replace("<p>", "").replace("</p>", ""),
    )
    content = templates.render("t", Channel.EMAIL, {}, "pl")
    assert content == RenderedContent(
        subject="Temat", html="<p>Polski</p>", text="Polski", locale="pl"
    )


def test_locale_folder_without_subject_does_not_borrow_root_subject() -> None:
    """An email part in pl/ without pl/email.subject.txt is an error, not a mixed language."""
    templates = Templates(
        {"t/email.subject.txt": "Subject", "t/email.txt": "Text", "t/pl/email.txt": "Tekst"}
    )
    with pytest.raises(TemplateError, match=r"email\.subject\.txt"):
        templates.render("t", Channel.EMAIL, {}, "pl")


def test_chat_override_follows_the_chosen_folder() -> None:
    """pl/chat.txt beats the root's telegram.txt: the folder is chosen before the file."""
    templates = Templates({"t/telegram.txt": "root telegram", "t/pl/chat.txt": "pl chat"})
    assert templates.render("t", Channel.TELEGRAM, {}, "pl") == RenderedContent(
        text="pl chat", locale="pl"
    )


# --- errors -----------------------------------------------------------------------------------


def test_missing_variable_raises_template_error_naming_it() -> None:
    """StrictUndefined: a missing variable raises TemplateError naming the variable and file."""
    templates = Templates({"t/sms.txt": "Hello\n{{ first_name }}"})
    with pytest.raises(TemplateError, match="first_name") as info:
        templates.render("t", Channel.SMS, {})
    assert "t/sms.txt" in str(info.value)
    assert "line 2" in str(info.value)
    assert isinstance(info.value.__cause__, jinja2.UndefinedError)


def test_missing_attribute_raises_template_error() -> None:
    """A missing attribute of a given object is an error, never an empty string."""
    templates = Templates({"t/sms.txt": "Hello {{ user.name }}"})
    with pytest.raises(TemplateError, match="name"):
        templates.render("t", Channel.SMS, {"user": {}})


def test_syntax_error_names_file_and_line() -> None:
    """A syntax error raises TemplateError with the file name and line number, chained."""
    templates = Templates({"t/sms.txt": "line one\n{% if %}\n"})
    with pytest.raises(TemplateError, match=r"t/sms\.txt.*line 2") as info:
        templates.render("t", Channel.SMS, {})
    assert isinstance(info.value.__cause__, jinja2.TemplateSyntaxError)


def test_syntax_error_in_layout_names_the_layout(tmp_path: Path) -> None:
    """A syntax error in an extended layout names the layout file (relative) and its line."""
    write_tree(
        tmp_path,
        {
            "_layouts/base.html": "<html>\n\n{% block body %}{% endblok %}",
            "t/email.subject.txt": "S",
            "t/email.html": "{% extends '_layouts/base.html' %}",
        },
    )
    with pytest.raises(TemplateError, match=r"_layouts/base\.html', line 3") as info:
        Templates(tmp_path).render("t", Channel.EMAIL, {})
    assert "t/email.html" in str(info.value)


def test_runtime_error_in_layout_reports_the_layout_line() -> None:
    """A missing variable used by a layout names the layout file and line."""
    templates = Templates(
        {
            "_layouts/base.html": "<html>\n{{ footer }}\n{% block body %}{% endblock %}",
            "t/email.subject.txt": "S",
            "t/email.html": "{% extends '_layouts/base.html' %}",
        }
    )
    with pytest.raises(TemplateError, match=r"'_layouts/base\.html', line 2.*footer"):
        templates.render("t", Channel.EMAIL, {})


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__base__.__subclasses__() }}",
        "{{ func.__globals__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ '{0.__class__}'.format(func) }}",
    ],
)
def test_sandbox_blocks_unsafe_attribute_access(source: str) -> None:
    """The sandbox turns __class__/__mro__/__subclasses__/__globals__ access into TemplateError."""
    templates = Templates({"t/sms.txt": source})
    with pytest.raises(TemplateError, match="sandbox") as info:
        templates.render("t", Channel.SMS, {"func": test_sandbox_blocks_unsafe_attribute_access})
    assert isinstance(info.value.__cause__, SecurityError)


def test_python_exception_in_template_is_wrapped() -> None:
    """A Python error raised while rendering (division by zero) becomes a chained TemplateError."""
    templates = Templates({"t/sms.txt": "{{ 1 / count }}"})
    with pytest.raises(TemplateError, match="ZeroDivisionError") as info:
        templates.render("t", Channel.SMS, {"count": 0})
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_include_of_missing_file_is_template_error() -> None:
    """Including a file that does not exist raises TemplateError naming the missing file."""
    templates = Templates({"t/sms.txt": "{% include '_partials/nope.txt' %}"})
    with pytest.raises(TemplateError, match=r"_partials/nope\.txt"):
        templates.render("t", Channel.SMS, {})


def test_missing_subject_raises() -> None:
    """An email template without email.subject.txt raises TemplateError."""
    templates = Templates({"t/email.html": "<p>Hi</p>", "t/email.txt": "Hi"})
    with pytest.raises(TemplateError, match=r"email\.subject\.txt"):
        templates.render("t", Channel.EMAIL, {})


@pytest.mark.parametrize("value", ["Hello\nBcc: victim@example.com", "Hello\rX", "a\r\nb"])
def test_subject_with_line_break_raises(value: str) -> None:
    """A subject that renders with CR or LF inside raises TemplateError (header injection)."""
    templates = Templates({"t/email.subject.txt": "{{ s }}", "t/email.txt": "body"})
    with pytest.raises(TemplateError, match="line break"):
        templates.render("t", Channel.EMAIL, {"s": value})


def test_push_title_with_line_break_raises() -> None:
    """A push title that renders with a newline inside raises TemplateError."""
    templates = Templates({"t/push.title.txt": "{{ s }}", "t/push.body.txt": "body"})
    with pytest.raises(TemplateError, match="line break"):
        templates.render("t", Channel.PUSH, {"s": "one\ntwo"})


def test_push_body_may_have_line_breaks() -> None:
    """Line breaks inside a push body (and SMS text) are kept."""
    templates = Templates({"t/push.body.txt": "one\ntwo"})
    assert templates.render("t", Channel.PUSH, {}) == RenderedContent(push_body="one\ntwo")


def test_unknown_template_raises_with_where_it_looked() -> None:
    """An unknown template name raises TemplateError naming it and the templates found."""
    templates = Templates({"welcome/sms.txt": "hi", "_layouts/base.html": "x"})
    with pytest.raises(TemplateError, match="no template named 'nope'") as info:
        templates.render("nope", Channel.SMS, {})
    message = str(info.value)
    assert "welcome" in message
    assert "sms.txt" in message
    assert "_layouts" not in message.split("templates found:")[1]


@pytest.mark.parametrize("name", ["_layouts", "", "welcome/sms.txt", "../welcome", ".hidden"])
def test_names_that_are_not_notification_folders_are_unknown(name: str) -> None:
    """Underscore folders, empty names and paths are never template names."""
    templates = Templates(
        {"welcome/sms.txt": "hi", "_layouts/sms.txt": "x", ".hidden/sms.txt": "x"}
    )
    assert not templates.exists(name)
    with pytest.raises(TemplateError, match="no template named"):
        templates.render(name, Channel.SMS, {})


def test_missing_directory_is_configuration_error(tmp_path: Path) -> None:
    """A source directory that does not exist fails at construction with ConfigurationError."""
    with pytest.raises(ConfigurationError, match="does not exist"):
        Templates(tmp_path / "missing")
    with pytest.raises(ConfigurationError):
        Templates(str(tmp_path / "missing"))


def test_unsupported_source_type_is_configuration_error() -> None:
    """A source that is neither a path, a mapping nor a loader is refused."""
    with pytest.raises(ConfigurationError):
        Templates(42)  # type: ignore[arg-type]


def test_loader_that_cannot_list_is_configuration_error() -> None:
    """A loader without list_templates() raises ConfigurationError on first use."""
    templates = Templates(UnlistableLoader())
    with pytest.raises(ConfigurationError, match="list"):
        templates.render("t", Channel.SMS, {})


# --- autoescape and HTML to text --------------------------------------------------------------


def test_autoescape_only_in_html() -> None:
    """email.html escapes data; subject, email.txt and sms.txt keep <b> literally."""
    templates = Templates(
        {
            "t/email.subject.txt": "{{ v }}",
            "t/email.html": "<p>{{ v }}</p>",
            "t/email.txt": "{{ v }}",
            "t/sms.txt": "{{ v }}",
        }
    )
    data = {"v": "<b>bold</b> & co"}
    email = templates.render("t", Channel.EMAIL, data)
    assert email is not None
    assert email.html == "<p>&lt;b&gt;bold&lt;/b&gt; &amp; co</p>"
    assert email.subject == "<b>bold</b> & co"
    assert email.text == "<b>bold</b> & co"
    assert templates.render("t", Channel.SMS, data) == RenderedContent(text="<b>bold</b> & co")


def test_text_derived_from_html_with_inscriptis() -> None:
    """Without email.txt, the text part is derived from the HTML: words stay, tags go."""
    pytest.importorskip("inscriptis")
    templates = Templates(
        {
            "t/email.subject.txt": "S",
            "t/email.html": (
                "<html><body><h1>Back in stock</h1><p>The <b>{{ item }}</b> is back.</p>"
                '<a href="https://shop.example/lamp">Buy now</a></body></html>'
            ),
        }
    )
    content = templates.render("t", Channel.EMAIL, {"item": "Lamp"})
    assert content is not None
    assert content.text is not None
    for words in ("Back in stock", "The Lamp is back.", "Buy now", "https://shop.example/lamp"):
        assert words in content.text
    assert "<" not in content.text
    assert content.text == content.text.strip()


def test_custom_html_to_text_is_used() -> None:
    """A user-supplied html_to_text receives the rendered HTML and its result is the text."""
    seen: list[str] = []

    def convert(html: str) -> str:
        seen.append(html)
        return "  converted  "

    templates = Templates(
        {"t/email.subject.txt": "S", "t/email.html": "<p>{{ x }}</p>"}, html_to_text=convert
    )
    content = templates.render("t", Channel.EMAIL, {"x": "y"})
    assert seen == ["<p>y</p>"]
    assert content == RenderedContent(subject="S", html="<p>y</p>", text="converted")


def test_failing_html_to_text_is_template_error() -> None:
    """An exception from html_to_text is wrapped in a chained TemplateError."""

    def convert(html: str) -> str:
        raise RuntimeError("boom")

    templates = Templates(
        {"t/email.subject.txt": "S", "t/email.html": "<p>x</p>"}, html_to_text=convert
    )
    with pytest.raises(TemplateError, match="boom") as info:
        templates.render("t", Channel.EMAIL, {})
    assert isinstance(info.value.__cause__, RuntimeError)


def test_missing_inscriptis_is_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without inscriptis, deriving text raises ConfigurationError naming anysend[html]."""
    monkeypatch.setitem(sys.modules, "inscriptis", None)
    templates = Templates({"t/email.subject.txt": "S", "t/email.html": "<p>x</p>"})
    with pytest.raises(ConfigurationError, match=r'pip install "anysend\[html\]"'):
        templates.render("t", Channel.EMAIL, {})


def test_missing_inscriptis_is_fine_when_text_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without inscriptis, an email with its own email.txt renders (nothing is derived)."""
    monkeypatch.setitem(sys.modules, "inscriptis", None)
    templates = Templates(
        {"t/email.subject.txt": "S", "t/email.html": "<p>x</p>", "t/email.txt": "x"}
    )
    assert templates.render("t", Channel.EMAIL, {}) == RenderedContent(
        subject="S", html="<p>x</p>", text="x"
    )


# --- layouts, index and caching ---------------------------------------------------------------


def test_extends_and_include_from_layouts(tmp_path: Path) -> None:
    """email.html can extend _layouts/base.html and include a partial; _layouts is no template."""
    write_tree(
        tmp_path,
        {
            "_layouts/base.html": (
                "<html><body>{% block body %}{% endblock %}"
                "{% include '_layouts/footer.html' %}</body></html>"
            ),
            "_layouts/footer.html": "<footer>{{ shop }}</footer>",
            "_layouts/signature.txt": "-- {{ shop }}",
            "t/email.subject.txt": "S",
            "t/email.html": (
                "{% extends '_layouts/base.html' %}{% block body %}<p>{{ item }}</p>{% endblock %}"
            ),
            "t/email.txt": "{{ item }}\n{% include '_layouts/signature.txt' %}",
        },
    )
    templates = Templates(tmp_path)
    content = templates.render("t", Channel.EMAIL, {"item": "<Lamp>", "shop": "Shop & Co"})
    assert content == RenderedContent(
        subject="S",
        html="<html><body><p>&lt;Lamp&gt;</p><footer>Shop &amp; Co</footer></body></html>",
        text="<Lamp>\n-- Shop & Co",
    )
    assert not templates.exists("_layouts")


def test_channels_lists_channels_with_parts_in_any_locale() -> None:
    """channels() returns every channel with a part in the root or any locale folder."""
    templates = Templates(
        {
            "t/email.subject.txt": "S",
            "t/email.txt": "x",
            "t/de/sms.txt": "x",
            "t/telegram.txt": "x",
            "t/notes.md": "not a part",
        }
    )
    assert templates.channels("t") == {Channel.EMAIL, Channel.SMS, Channel.TELEGRAM}


def test_channels_of_chat_txt_covers_all_chat_like_channels() -> None:
    """A chat.txt gives the template every chat-like channel."""
    templates = Templates({"t/chat.txt": "x", "t/push.body.txt": "x"})
    assert templates.channels("t") == {Channel.PUSH, *CHAT_LIKE}


def test_channels_of_unknown_template_raises() -> None:
    """channels() of an unknown template raises TemplateError."""
    with pytest.raises(TemplateError, match="no template named"):
        Templates({"t/sms.txt": "x"}).channels("other")


def test_exists() -> None:
    """exists() is true for a folder with part files and false otherwise."""
    templates = Templates({"t/sms.txt": "x", "only_notes/README.md": "x", "loose.txt": "x"})
    assert templates.exists("t")
    assert not templates.exists("only_notes")
    assert not templates.exists("loose.txt")
    assert not templates.exists("missing")


def test_loader_source_is_used_as_is() -> None:
    """A jinja2 loader passed as the source is used directly."""
    loader = jinja2.DictLoader({"t/sms.txt": "from loader"})
    assert Templates(loader).render("t", Channel.SMS, {}) == RenderedContent(text="from loader")


def test_templates_are_listed_and_compiled_once() -> None:
    """Rendering twice reads the file list once and loads (compiles) each file once."""
    loader = CountingLoader(
        {
            "_layouts/base.html": "<b>{% block body %}{% endblock %}</b>",
            "t/email.subject.txt": "S {{ n }}",
            "t/email.html": (
                "{% extends '_layouts/base.html' %}{% block body %}{{ n }}{% endblock %}"
            ),
            "t/email.txt": "{{ n }}",
            "t/sms.txt": "{{ n }}",
        }
    )
    templates = Templates(loader)
    first = templates.render("t", Channel.EMAIL, {"n": 1})
    second = templates.render("t", Channel.EMAIL, {"n": 2})
    templates.render("t", Channel.SMS, {"n": 1})
    templates.render("t", Channel.SMS, {"n": 2})
    assert templates.exists("t")
    assert templates.channels("t") == {Channel.EMAIL, Channel.SMS}
    assert first is not None
    assert second is not None
    assert (first.html, second.html) == ("<b>1</b>", "<b>2</b>")
    assert loader.listings == 1
    assert loader.loads == {
        "t/email.subject.txt": 1,
        "t/email.html": 1,
        "_layouts/base.html": 1,
        "t/email.txt": 1,
        "t/sms.txt": 1,
    }


def test_mapping_source_is_copied() -> None:
    """Changing the mapping after construction does not change the templates."""
    mapping = {"t/sms.txt": "before"}
    templates = Templates(mapping)
    mapping["t/sms.txt"] = "after"
    assert templates.render("t", Channel.SMS, {}) == RenderedContent(text="before")


def test_channel_given_as_string_value() -> None:
    """A channel's string value is accepted like the enum member."""
    templates = Templates({"t/sms.txt": "x"})
    channel: Any = "sms"
    assert templates.render("t", channel, {}) == RenderedContent(text="x")
