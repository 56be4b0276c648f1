"""Render one notification per channel and per locale from a folder of Jinja2 templates.

A *template* in anysend is a folder holding one file per part of each channel (email subject,
email HTML, SMS text, push title, ...), with optional sub-folders for locale variants.
:class:`Templates` finds the parts a channel needs, picks the best locale folder for it,
renders them in a Jinja2 sandbox and returns a :class:`RenderedContent`.

Layout of a template source (a directory, or a mapping whose keys are the same relative
paths written with ``/``)::

    templates/                      # the source directory
      _layouts/                     # folders starting with "_" are not notifications:
        base.html                   #   shared layouts and partials for extends/include
      back_in_stock/                # one folder per notification: the template name
        email.subject.txt           # email subject (required when there is any email part)
        email.html                  # email HTML part (the only autoescaped files are .html)
        email.txt                   # email text part; derived from email.html when missing
        sms.txt                     # SMS text
        push.title.txt              # push title  } at least one of the two
        push.body.txt               # push body   }
        chat.txt                    # text for every chat-like channel: whatsapp, telegram,
                                    #   messenger, viber, chat, webhook
        telegram.txt                # optional override of chat.txt for one channel (also
                                    #   whatsapp.txt, messenger.txt, viber.txt, webhook.txt)
        pl/                         # locale variants: the same file names
          email.subject.txt
          email.html
        pl-PL/
          sms.txt

Rules:

* Locale fallback is decided per channel. For ``"pl-PL"`` (``"pl_PL"`` and any letter case are
  accepted) the folders ``pl-PL``, then ``pl``, then the template root are tried; the first
  folder holding *any* part of the channel supplies *all* of that channel's parts, so one
  channel never mixes languages. Without a locale only the root is used.
* A channel with no part in any of those folders renders to ``None``.
* Templates run in :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` with a strict
  undefined: a missing variable is an error, never an empty string (nor ``Undefined`` printed
  inside a list). The sandbox refuses every attribute that starts with ``_`` (``__class__``,
  ``__globals__``, ``__subclasses__``, name-mangled privates), function and frame internals,
  the same through ``|attr``, ``|map(attribute=...)`` and ``str.format``, and any change to the
  data (``list.append``, ``dict.update``). Data values are only ever printed: a template
  string found in the data is text, never rendered. Only ``.html`` files are autoescaped.
  Templates are compiled once and cached. The sandbox bounds ``range()`` but not CPU or
  memory in general: template files must come from the application, never from its users.
* Every rendered part is stripped of surrounding whitespace. A subject or push title that
  still contains a line break (CR, LF, or any other character ``str.splitlines()`` breaks
  at) or NUL is refused (header injection guard).
* Any failure is raised as :class:`~anysend.TemplateError` (or
  :class:`~anysend.ConfigurationError` for set-up problems), chained to the Jinja2 error.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

from anysend._exceptions import ConfigurationError, TemplateError
from anysend._models import Channel

if TYPE_CHECKING:
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["RenderedContent", "Templates"]

_SUBJECT = "email.subject.txt"
_HTML = "email.html"
_EMAIL_TEXT = "email.txt"
_SMS = "sms.txt"
_PUSH_TITLE = "push.title.txt"
_PUSH_BODY = "push.body.txt"
_CHAT = "chat.txt"

_CHAT_LIKE = (
    Channel.WHATSAPP,
    Channel.TELEGRAM,
    Channel.MESSENGER,
    Channel.VIBER,
    Channel.CHAT,
    Channel.WEBHOOK,
)


def _channel_files(channel: Channel) -> tuple[str, ...]:
    if channel is Channel.EMAIL:
        return (_SUBJECT, _HTML, _EMAIL_TEXT)
    if channel is Channel.SMS:
        return (_SMS,)
    if channel is Channel.PUSH:
        return (_PUSH_TITLE, _PUSH_BODY)
    own = f"{channel.value}.txt"
    return (own,) if own == _CHAT else (own, _CHAT)


#: The part files of each channel; for chat-like channels the channel's own file comes first.
_CHANNEL_FILES: dict[Channel, tuple[str, ...]] = {c: _channel_files(c) for c in Channel}
_PART_FILES = frozenset(name for files in _CHANNEL_FILES.values() for name in files)

_LOCALE = re.compile(r"[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8})*")
_MAX_LISTED = 20

#: folder locale (None for the template root) -> part file name -> loader path
_Folders: TypeAlias = "dict[str | None, dict[str, str]]"


@dataclass(frozen=True, slots=True)
class RenderedContent:
    """The rendered parts of one template for one channel.

    Only the parts of the rendered channel are set; every set part is stripped of leading
    and trailing whitespace.

    Attributes:
        subject: the email subject (email only; never contains CR or LF).
        text: the plain text: the email text part (given or derived from the HTML), the SMS
            text, or the chat-like channel's text.
        html: the email HTML part.
        push_title: the push title (never contains CR or LF).
        push_body: the push body.
        locale: the locale folder the parts came from, such as ``"pl-PL"`` or ``"pl"``;
            ``None`` when they came from the template root.
    """

    subject: str | None = None
    text: str | None = None
    html: str | None = None
    push_title: str | None = None
    push_body: str | None = None
    locale: str | None = None


class Templates:
    """Per-channel, per-locale rendering of notifications with Jinja2.

    A source holds one folder per notification (its *template name*) with one file per part
    of each channel, and optional locale sub-folders with the same file names::

        templates/
          _layouts/base.html          # "_" folders: shared files for extends/include only
          back_in_stock/
            email.subject.txt         # email: subject (required if any email part exists)
            email.html                #        HTML part (autoescaped: only .html files are)
            email.txt                 #        text part (optional; derived from email.html)
            sms.txt                   # sms: text
            push.title.txt            # push: title and/or body
            push.body.txt
            chat.txt                  # whatsapp, telegram, messenger, viber, chat, webhook
            telegram.txt              # optional per-channel override of chat.txt
            pl/                       # locale variants, same file names
              email.subject.txt
            pl-PL/
              sms.txt

    Locale fallback is per channel: for ``"pl-PL"`` (or ``"pl_PL"``, in any letter case; POSIX
    suffixes such as ``".UTF-8"`` are ignored) the folders ``pl-PL``, ``pl`` and the root are
    tried in that order, and the first folder with any part of the channel supplies all of that
    channel's parts. Locale folder names are matched in the same normalised form. A locale
    that is not a language tag is ignored (the root is used).

    Templates see the caller's data plus ``locale`` (the locale folder used, or ``None`` for
    the root) and ``channel`` (the channel's value, such as ``"sms"``) unless the data
    defines those names itself. They run in a sandbox with strict undefined variables and may
    ``{% extends %}`` or ``{% include %}`` any file of the source by its relative path. Each
    file is compiled once; the source's file list is read once, on first use, so later changes
    to the source are not seen.

    Args:
        source: a directory path (read with :class:`jinja2.FileSystemLoader`), a mapping of
            relative paths to template text (:class:`jinja2.DictLoader`), or any
            :class:`jinja2.BaseLoader` that implements ``list_templates()``.
        html_to_text: turns a rendered ``email.html`` into the email text part when there is
            no ``email.txt``. Defaults to inscriptis (``pip install "anysend[html]"``), with
            links kept as ``[label](url)``.

    Raises:
        ConfigurationError: the directory does not exist, or the source or ``html_to_text``
            has the wrong type.

    Example:
        >>> templates = Templates({"welcome/sms.txt": "Hi {{ name }}!"})
        >>> templates.render("welcome", Channel.SMS, {"name": "Ada"}).text
        'Hi Ada!'
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Mapping[str, str] | jinja2.BaseLoader,
        *,
        html_to_text: Callable[[str], str] | None = None,
    ) -> None:
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        if html_to_text is not None and not callable(html_to_text):
            raise ConfigurationError("html_to_text must be a callable taking and returning str")
        self._root: str | None = None
        loader: jinja2.BaseLoader
        if isinstance(source, jinja2.BaseLoader):
            loader = source
            self._description = f"the loader {type(source).__name__}"
        elif isinstance(source, (str, os.PathLike)):
            root = os.path.abspath(os.fspath(source))
            if not os.path.isdir(root):
                raise ConfigurationError(f"template directory {root!r} does not exist")
            loader = jinja2.FileSystemLoader(root)
            self._root = root
            self._description = f"the directory {root!r}"
        elif isinstance(source, Mapping):
            mapping = dict(source)
            for key, value in mapping.items():
                if not isinstance(key, str) or not isinstance(value, str):
                    raise ConfigurationError(
                        f"template mapping entries must be str -> str, got {key!r}"
                    )
            loader = _named_dict_loader_class()(mapping)
            self._description = "the template mapping"
        else:
            raise ConfigurationError(
                "Templates source must be a directory path, a mapping of paths to template "
                f"text, or a jinja2 loader; got {type(source).__name__}"
            )
        self._html_to_text = html_to_text
        # Immutable: a template cannot change the caller's data (list.append, dict.update).
        self._env: ImmutableSandboxedEnvironment = ImmutableSandboxedEnvironment(
            loader=loader,
            undefined=_strict_undefined_class(),
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            auto_reload=False,
            cache_size=-1,  # never evict: every template is compiled exactly once
        )
        self._index: dict[str, _Folders] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Templates({self._description})"

    # --- public API ---------------------------------------------------------------------------

    def render(
        self,
        name: str,
        channel: Channel,
        data: Mapping[str, Any],
        locale: str | None = None,
    ) -> RenderedContent | None:
        """Render the parts of template ``name`` for one channel.

        Args:
            name: the template name (its folder in the source).
            channel: the channel to render for.
            data: the variables the template sees (plus ``locale`` and ``channel``).
            locale: the recipient's locale, such as ``"pl-PL"``; ``None`` uses the root.

        Returns:
            The rendered parts, or ``None`` when the template has no part for the channel in
            the locale folders tried.

        Raises:
            TemplateError: the template does not exist, does not compile, uses a variable
                that is missing from ``data``, breaks the sandbox, has an email part but no
                ``email.subject.txt``, or renders a subject or push title with a line break.
            ConfigurationError: the source cannot list its files, or a text part must be
                derived from HTML and inscriptis is not installed.
        """
        folders = self._folders(name)
        try:
            channel = Channel(channel)
        except ValueError as exc:
            raise TemplateError(f"unknown channel {channel!r}") from exc
        wanted = _CHANNEL_FILES[channel]
        chosen = _choose_folder(folders, wanted, locale)
        if chosen is None:
            return None
        folder, files = chosen

        try:
            context = dict(data)
        except (TypeError, ValueError) as exc:
            raise TemplateError(f"template data must be a mapping, got {type(data)!r}") from exc
        context.setdefault("locale", folder)
        context.setdefault("channel", channel.value)

        def part(file_name: str) -> str | None:
            path = files.get(file_name)
            return None if path is None else self._render_file(path, context)

        if channel is Channel.EMAIL:
            if _SUBJECT not in files:
                raise TemplateError(
                    f"template {name!r} has email parts in {_folder_path(name, folder)!r} "
                    f"but no {_SUBJECT}"
                )
            subject = _single_line(part(_SUBJECT), files[_SUBJECT])
            html = part(_HTML)
            text = part(_EMAIL_TEXT)
            if text is None and html is not None:
                text = self._derive_text(html, files[_HTML])
            return RenderedContent(subject=subject, text=text, html=html, locale=folder)
        if channel is Channel.SMS:
            return RenderedContent(text=part(_SMS), locale=folder)
        if channel is Channel.PUSH:
            title = part(_PUSH_TITLE)
            if title is not None:
                _single_line(title, files[_PUSH_TITLE])
            return RenderedContent(push_title=title, push_body=part(_PUSH_BODY), locale=folder)
        own = next(file_name for file_name in wanted if file_name in files)
        return RenderedContent(text=part(own), locale=folder)

    def exists(self, name: str) -> bool:
        """Whether the source has a template called ``name`` (with at least one part file).

        Raises:
            ConfigurationError: the source cannot list its files.
        """
        return _valid_name(name) and name in self._get_index()

    def channels(self, name: str) -> frozenset[Channel]:
        """The channels template ``name`` has parts for, in any locale folder.

        Raises:
            TemplateError: there is no template called ``name``.
            ConfigurationError: the source cannot list its files.
        """
        present: set[str] = set()
        for files in self._folders(name).values():
            present.update(files)
        return frozenset(
            channel
            for channel, wanted in _CHANNEL_FILES.items()
            if any(part in present for part in wanted)
        )

    # --- index --------------------------------------------------------------------------------

    def _get_index(self) -> dict[str, _Folders]:
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._build_index()
                index = self._index
        return index

    def _build_index(self) -> dict[str, _Folders]:
        try:
            paths = self._env.list_templates()
        except TypeError as exc:
            raise ConfigurationError(
                f"{self._description} cannot list its templates (list_templates()); "
                "anysend needs it to find the parts of each template"
            ) from exc
        except Exception as exc:
            raise ConfigurationError(
                f"could not list the templates of {self._description}: {exc}"
            ) from exc
        index: dict[str, _Folders] = {}
        for path in sorted(paths):
            segments = path.split("/")
            if not 2 <= len(segments) <= 3 or not _valid_name(segments[0]):
                continue
            file_name = segments[-1]
            if file_name not in _PART_FILES:
                continue
            folder: str | None = None
            if len(segments) == 3:
                folder = _normalise_locale(segments[1])
                if folder is None:
                    continue
            files = index.setdefault(segments[0], {}).setdefault(folder, {})
            # Two spellings of one locale folder (pl_PL and pl-PL): the first in order wins.
            files.setdefault(file_name, path)
        return index

    def _folders(self, name: str) -> _Folders:
        index = self._get_index()
        folders = index.get(name) if _valid_name(name) else None
        if folders is None:
            known = sorted(index)
            listed = ", ".join(known[:_MAX_LISTED]) or "none"
            if len(known) > _MAX_LISTED:
                listed += f", ... ({len(known)} in all)"
            raise TemplateError(
                f"no template named {name!r}: looked for part files "
                f"({', '.join(sorted(_PART_FILES))}) in the folder {name!r} and its locale "
                f"folders of {self._description}; templates found: {listed}"
            )
        return folders

    # --- rendering ----------------------------------------------------------------------------

    def _render_file(self, path: str, context: dict[str, Any]) -> str:
        try:
            return self._env.get_template(path).render(context).strip()
        except Exception as exc:
            raise self._wrap(path, exc) from exc

    def _wrap(self, path: str, exc: Exception) -> TemplateError:
        import jinja2
        from jinja2.exceptions import SecurityError

        if isinstance(exc, jinja2.TemplateSyntaxError):
            where = self._display(exc.filename or exc.name or path)
            message = f"syntax error in template {where!r}, line {exc.lineno}: {exc.message}"
            if where != path:
                message += f" (while rendering {path!r})"
            return TemplateError(message)
        if isinstance(exc, jinja2.TemplateNotFound):
            if exc.name == path:
                return TemplateError(f"template file {path!r} could not be loaded: {exc}")
            return TemplateError(
                f"template {path!r} includes or extends {exc.message}, which does not exist"
            )
        location = self._location(exc)
        if isinstance(exc, jinja2.UndefinedError):
            return TemplateError(
                f"template {path!r}{location}: {exc.message} (a variable the template uses "
                "is missing from the data)"
            )
        if isinstance(exc, SecurityError):
            return TemplateError(f"template {path!r}{location}: blocked by the sandbox: {exc}")
        return TemplateError(f"template {path!r}{location}: {type(exc).__name__}: {exc}")

    def _location(self, exc: BaseException) -> str:
        """Where in the template source ``exc`` was raised, from Jinja2's rewritten traceback."""
        found: tuple[str, int] | None = None
        tb = exc.__traceback__
        while tb is not None:
            frame = tb.tb_frame
            if "__jinja_exception__" in frame.f_globals:
                found = (frame.f_code.co_filename, tb.tb_lineno)
            tb = tb.tb_next
        if found is None:
            return ""
        return f" ({self._display(found[0])!r}, line {found[1]})"

    def _display(self, filename: str) -> str:
        """A template file name relative to the source directory where possible."""
        if self._root is not None and os.path.isabs(filename):
            try:
                relative = os.path.relpath(filename, self._root)
            except ValueError:  # another drive on Windows
                return filename
            if not relative.startswith(".."):
                return relative.replace(os.sep, "/")
        return filename

    def _derive_text(self, html: str, path: str) -> str:
        convert = self._html_to_text or _default_html_to_text()
        try:
            text = convert(html)
        except (TemplateError, ConfigurationError):
            raise
        except Exception as exc:
            raise TemplateError(
                f"html_to_text failed on the HTML of {path!r}: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(text, str):
            raise TemplateError(f"html_to_text returned {type(text).__name__}, not str")
        return text.strip()


# --- helpers ----------------------------------------------------------------------------------


def _valid_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and bool(name)
        and "/" not in name
        and "\\" not in name
        and not name.startswith(("_", "."))
    )


def _normalise_locale(value: str) -> str | None:
    """``"pl_pl"``, ``"PL-pl"`` or ``"pl_PL.UTF-8"`` -> ``"pl-PL"``; ``None`` if not a tag."""
    value = value.strip().split(".", 1)[0].split("@", 1)[0]
    if not _LOCALE.fullmatch(value):
        return None
    language, *rest = re.split(r"[-_]", value)
    subtags = [language.lower()]
    for subtag in rest:
        if len(subtag) == 2 and subtag.isalpha():
            subtags.append(subtag.upper())  # region
        elif len(subtag) == 4 and subtag.isalpha():
            subtags.append(subtag.title())  # script
        else:
            subtags.append(subtag.lower())  # numeric region or variant
    return "-".join(subtags)


def _locale_chain(locale: str | None) -> list[str | None]:
    """The folders to try for ``locale``: ``"pl-PL"`` -> ``["pl-PL", "pl", None]``."""
    chain: list[str | None] = []
    normalised = _normalise_locale(locale) if isinstance(locale, str) else None
    if normalised is not None:
        subtags = normalised.split("-")
        chain.extend("-".join(subtags[:end]) for end in range(len(subtags), 0, -1))
    chain.append(None)
    return chain


def _choose_folder(
    folders: _Folders, wanted: tuple[str, ...], locale: str | None
) -> tuple[str | None, dict[str, str]] | None:
    """The first folder of the locale chain holding any of ``wanted``, with its files."""
    for folder in _locale_chain(locale):
        files = folders.get(folder)
        if files and any(part in files for part in wanted):
            return folder, files
    return None


def _folder_path(name: str, folder: str | None) -> str:
    return name if folder is None else f"{name}/{folder}"


#: CR, LF, every other character ``str.splitlines()`` breaks lines at, and NUL: none may
#: reach a subject or a push title (the email header injection guard, as in ``_email``).
_LINE_BREAK = re.compile("[\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\x00]")


def _single_line(value: str | None, path: str) -> str | None:
    if value is not None and _LINE_BREAK.search(value):
        raise TemplateError(
            f"template {path!r} rendered a line break (or NUL); subjects and push titles must "
            "be a single line"
        )
    return value


def _default_html_to_text() -> Callable[[str], str]:
    try:
        inscriptis = importlib.import_module("inscriptis")
        config = importlib.import_module("inscriptis.model.config")
    except ImportError as exc:
        raise ConfigurationError(
            "deriving the email text part from email.html needs inscriptis: "
            'pip install "anysend[html]" (or add an email.txt, or pass html_to_text=...)'
        ) from exc
    get_text: Callable[..., str] = inscriptis.get_text
    parser_config = config.ParserConfig(display_links=True)
    return functools.partial(get_text, config=parser_config)


@functools.cache
def _strict_undefined_class() -> type[jinja2.StrictUndefined]:
    """StrictUndefined that also refuses ``repr()``.

    Jinja2's own prints ``Undefined`` when it sits inside a list or a tuple
    (``{{ [missing] }}``, ``{{ items|map(attribute="__class__")|list }}``), which would
    slip a refused attribute or a missing variable into a message as a word.
    """
    import jinja2

    class _StrictUndefined(jinja2.StrictUndefined):
        __slots__ = ()
        __repr__ = jinja2.StrictUndefined._fail_with_undefined_error

    return _StrictUndefined


@functools.cache
def _named_dict_loader_class() -> type[jinja2.DictLoader]:
    """A DictLoader that reports each template's path as its file name (for error messages)."""
    import jinja2

    class _NamedDictLoader(jinja2.DictLoader):
        def get_source(  # type: ignore[override]  # the file name is the path, not None
            self, environment: jinja2.Environment, template: str
        ) -> tuple[str, str, Callable[[], bool]]:
            source, _, uptodate = super().get_source(environment, template)
            return source, template, uptodate

    return _NamedDictLoader
