"""``AsyncClient``: the one implementation of the send orchestration.

This file is the source of truth; ``anysend/_sync/_client.py`` (the sync ``Client``) is
generated from it by ``scripts/unasync.py``, whose docstring lists the naming rules.

The decisions (chain, addresses, content, limits, status) come from ``anysend._routing``; this
module only does the I/O: calling adapters, retrying, failing over, recording attempts.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast

import httpx

from anysend._async._idempotency import AsyncIdempotencyCache
from anysend._async._ratelimit import AsyncRateLimits
from anysend._clock import Clock, SystemClock
from anysend._exceptions import (
    AnysendError,
    ConfigurationError,
    ErrorCategory,
    ProviderError,
    UnsupportedFeatureError,
    WebhookVerificationError,
    as_provider_error,
    redact_secrets,
    warn_if_unverified,
)
from anysend._flows import Policy, key_message_id, zone_of
from anysend._logging import logger, register_secrets
from anysend._models import Channel, Message, OutboundMessage, QuietHours, Recipient
from anysend._ratelimit import RateLimit
from anysend._results import (
    Attempt,
    AttemptOutcome,
    ErrorInfo,
    Receipt,
    SendResult,
    SkipReason,
    trusted,
)
from anysend._retry import RetryPolicy
from anysend._routing import Address, ChannelLimits, Router, final_status, skip
from anysend._status import DeliveryStatus, Reason
from anysend._synchronization import AsyncPools
from anysend._transport import (
    AsyncRawAnswer,
    AsyncRawSender,
    AsyncTransport,
    RawAdapter,
    RawRequest,
    RawResponse,
    default_transport,
    httpx_is_mocked,
)
from anysend._types import AsyncAttemptHook, AsyncDirectProvider, AsyncResultHook
from anysend.providers import Provider

if TYPE_CHECKING:
    import ssl

    from anysend._async._flows import AsyncFlowEngine
    from anysend._async._profiles import AsyncProfiles
    from anysend._async._redis import AsyncRedisShared
    from anysend._async._store import AsyncStore
    from anysend._async._webhooks import AsyncWebhooks
    from anysend._batch import Entry
    from anysend._bulk import BulkResult
    from anysend._events import DeliveryEvent, InboundMessage, WebhookRequest
    from anysend._flows import Flow
    from anysend._records import HistoryEntry, Report
    from anysend._templates import RenderedContent, Templates

__all__ = ["AsyncClient"]

_T = TypeVar("_T")

_DEFAULT_POLICY = Policy()
_KEY_WAIT = 30.0  # seconds to wait for another process sending the same idempotency key
_KEY_POLL = 0.05
#: httpx's pool limits but for idle connections: httpcore 1.0 counts every connection, not
#: only the idle ones, against ``max_keepalive_connections`` (20 by default), and with more
#: open than that closes each connection as it goes idle: under ``send_many``'s threads it
#: closed connections another thread had just been handed ("Bad file descriptor"), and it
#: opened a new connection for most requests. Keeping as many idle as may be open avoids both.
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)


def _duration(span: timedelta) -> str:
    """A window in words: ``1 day``, ``7 days``, ``12 hours``, ``90 minutes``."""
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
#: The fields of a successful attempt and result that the client sets (the rest: defaults).
_SENT_GIVEN = frozenset(
    {"channel", "provider", "outcome", "address", "number", "receipt", "started_at", "duration"}
)
#: The one "address" of an address-less provider's send (read, never changed).
_NO_ADDRESS = [Address("")]
_NOBODY: frozenset[str] = frozenset()  # no provider benched (no store: no health kept)
_RESULT_GIVEN = frozenset(
    {"message_id", "status", "channel", "provider", "address", "receipt", "attempts"}
)


def _nothing() -> None:
    """A reservation that reserved nothing."""


def _sent(
    message_id: str,
    channel: Channel,
    provider: str,
    address: str,
    receipt: Receipt,
    attempts: list[Attempt],
) -> SendResult:
    """The result of a send a provider accepted (its parts are validated already)."""
    values = {
        "message_id": message_id,
        "status": receipt.status,
        "channel": channel,
        "provider": provider,
        "address": address,
        "receipt": receipt,
        "attempts": tuple(attempts),
        "idempotent_replay": False,
        "scheduled_for": None,
    }
    return trusted(SendResult, values, _RESULT_GIVEN)


def _unreachable(provider: Provider, exc: httpx.TransportError) -> ProviderError:
    """The error for a request that failed on the way: not sent, or sent and not answered."""
    if isinstance(exc, _NOT_SENT):
        timeout = isinstance(exc, httpx.TimeoutException)
        return ProviderError(
            f"could not reach {provider.name}: {type(exc).__name__}: {exc}",
            category=ErrorCategory.TIMEOUT if timeout else ErrorCategory.UNAVAILABLE,
            provider=provider.name,
        )
    # The request went out; the provider may have accepted it.
    return ProviderError(
        f"no answer from {provider.name} after the request was sent: {type(exc).__name__}: {exc}",
        category=ErrorCategory.AMBIGUOUS_TIMEOUT,
        provider=provider.name,
    )


def _unread(provider: Provider, response: httpx.Response, exc: Exception | str) -> ProviderError:
    """The provider answered but the adapter could not read it.

    After a 2xx the message may well have been accepted: it is not sent again.
    """
    return ProviderError(
        f"{provider.name} adapter could not read the response: {exc}",
        category=ErrorCategory.AMBIGUOUS_TIMEOUT if response.is_success else ErrorCategory.UNKNOWN,
        retryable=False,
        provider=provider.name,
        status_code=response.status_code,
        raw=response.text,
    )


_RAW_HOOKS: dict[type[Provider], bool] = {}
_RAW_NAMES = frozenset({"raw_request", "raw_receipt", "build_request", "parse_response"})


def _raw_receipt(
    provider: Provider, raw: RawRequest, answer: RawResponse, outbound: OutboundMessage
) -> Receipt:
    """The adapter's receipt for a raw answer (``parse_response`` when ``raw_receipt`` passes)."""
    try:
        receipt = cast(RawAdapter, provider).raw_receipt(answer, outbound)
        if receipt is None:
            receipt = provider.parse_response(answer.to_httpx(raw.to_httpx()), outbound)
    except AnysendError:
        raise
    except Exception as exc:
        raise _unread(provider, answer.to_httpx(raw.to_httpx()), exc) from exc
    return receipt


def _sandbox_urls(sandbox: bool | str, providers: Sequence[Provider]) -> dict[str, str]:
    """The base URLs that point every HTTP adapter at an anysend sandbox (``sandbox=``)."""
    if sandbox is False:
        return {}
    if sandbox is True:
        url = os.environ.get("ANYSEND_SANDBOX_URL") or "http://127.0.0.1:8780"
    elif isinstance(sandbox, str) and sandbox.startswith(("http://", "https://")):
        url = sandbox
    else:
        raise ConfigurationError("sandbox= takes True or the sandbox's http(s) URL")
    url = url.rstrip("/")
    # A sandbox promises that nothing leaves the machine: refuse an adapter that would still
    # reach a server of its own (SMTP to a real host); HTTP adapters all go to the sandbox.
    leaving = [
        f"{p.name} ({host})"
        for p in providers
        if not p.is_http()
        and isinstance(host := getattr(p.settings, "host", None), str)
        and host.lower().strip("[]") not in _LOOPBACK
    ]
    if leaving:
        raise ConfigurationError(
            f"sandbox= would still send through {', '.join(leaving)}: point it at the "
            "sandbox's SMTP server (anysend sandbox --smtp-port, sandbox.providers()) or "
            "leave it out"
        )
    return {p.name: f"{url}/{p.name}" for p in providers if p.is_http()}


_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _raw_hooks(provider: Provider) -> bool:
    """Whether the adapter's raw hooks stand for its whole send (see ``RawRequest``).

    They must come from the class that also defines ``build_request`` and
    ``parse_response`` (a subclass overriding one of those without the hooks would be
    bypassed), with the default one-request ``send_flow``, and none replaced on the instance.
    """
    kind = type(provider)
    found = _RAW_HOOKS.get(kind)
    if found is None:
        owners = {
            name: next((k for k in kind.__mro__ if name in k.__dict__), None) for name in _RAW_NAMES
        }
        found = _RAW_HOOKS[kind] = (
            owners["raw_request"] is not None
            and len(set(owners.values())) == 1
            and kind.send_flow is Provider.send_flow
        )
    return found and _RAW_NAMES.isdisjoint(provider.__dict__)


class AsyncClient:
    """Sends messages over a chain of channels and providers (with ``await``).

    Args:
        providers: the adapters to use; several on one channel fail over in order. A string
            is read as provider URLs (``"smtp://user:pass@host:587?from=a@b.c || console://"``,
            see the configuration guide).
        templates: a folder of templates, a mapping of template files, or a
            :class:`~anysend.Templates`.
        default_region: ISO 3166 region (``"PL"``) for phone numbers without a country code.
        retry: the retry policy (see :class:`~anysend.RetryPolicy` for the defaults).
        timeout: seconds for each HTTP request (or an ``httpx.Timeout``).
        round_robin: rotate between the providers of every channel (``True``) or of the
            channels listed, instead of always starting with the first.
        limits: channel limits checked before sending.
        on_attempt: hooks awaited after every attempt and skip.
        on_result: hooks awaited with every result.
        on_invalid_address: hooks awaited with every attempt whose provider said the address
            is dead for good (``attempt.contact_invalid``): a push token unregistered, a number
            not on WhatsApp, a chat that blocked the bot. Delete or flag the address there.
        clock: the clock to read and sleep on (tests pass ``anysend.testing.VirtualClock``).
        http_client: an ``httpx.AsyncClient`` to send through (the caller closes it);
            by default the client makes and owns one.
        base_urls: per provider name, a base URL to send its requests to instead of the
            provider's own (a local sandbox or a mock server).
        sandbox: send every HTTP adapter's requests to an ``anysend sandbox``: ``True`` for
            the one at ``ANYSEND_SANDBOX_URL`` (default ``http://127.0.0.1:8780``), or its
            URL. Each provider's requests then go to ``{url}/{provider name}``; an entry of
            ``base_urls`` wins for its provider. An adapter that is not HTTP and would reach a
            host other than 127.0.0.1 (SMTP) is refused (``ConfigurationError``).
        check_deliverability: look up email domains in DNS when validating (off by default).
        idempotency_ttl: seconds an idempotency key is remembered.
        store: where messages, statuses, flows and profiles are kept: an
            :class:`~anysend.AsyncStore`, or a SQLite file path (``"anysend.db"``,
            ``"sqlite:///anysend.db"``, ``":memory:"``). Without one the client only sends;
            flows, profiles, history, reports, webhooks handling and quiet hours need one.
        policies: per message category, what it may do (see :class:`~anysend.Policy`).
        quiet_hours: the window in which non-transactional messages wait (each recipient's
            own ``quiet_hours`` wins); needs a store.
        default_timezone: the IANA zone for recipients without ``timezone``.
        health_threshold: provider-level failures in a row after which a provider is benched
            (skipped while another provider of the channel can serve); needs a store.
        health_cooldown: how long a benched provider rests before it is tried again.
        rate_limits: per provider name, a :class:`~anysend.RateLimit` (messages per second,
            requests in flight, per provider or per recipient) over the adapter's published
            default; ``None`` turns a default off.
        transport: how HTTP requests go out: ``"auto"`` (aiohttp when ``anysend[fast]`` is
            installed and no proxy is configured, httpx otherwise), ``"aiohttp"`` or
            ``"httpx"``. APNs (HTTP/2) and a given ``http_client`` always use httpx, and so
            does ``"auto"`` while a test mocks httpx (respx, pytest-httpx). The same timeouts
            and errors apply whichever runs.
        verify: check HTTPS servers' certificates (``True``, the default, with the CA bundle
            httpx uses), or an ``ssl.SSLContext`` of your own; ``False`` turns checks off, for
            a local sandbox only, and emits an :class:`~anysend.InsecureTransportWarning`
            (and a log line) every time such a client is made. Applies to every HTTP
            transport the client makes (httpx, HTTP/2 for APNs, aiohttp); with ``http_client``
            configure that client instead.
        shared: a Redis URL (``"redis://127.0.0.1:6379/0"``, needs ``anysend[redis]``) for
            the state the processes of a deployment share: rate limits (every process
            together keeps each provider's limit) and idempotency keys (claimed there instead
            of in the store). Without it both live in this process (keys also in the store).

    A client is a context manager that closes its connections (``async with``).
    An async client belongs to the event loop it is first used in; use one client per loop.
    """

    def __init__(
        self,
        providers: Iterable[Provider] | str = (),
        *,
        templates: Templates | str | os.PathLike[str] | Mapping[str, str] | None = None,
        default_region: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | httpx.Timeout = 10.0,
        round_robin: bool | Iterable[Channel] = False,
        limits: ChannelLimits | None = None,
        on_attempt: Sequence[AsyncAttemptHook] = (),
        on_result: Sequence[AsyncResultHook] = (),
        on_invalid_address: Sequence[AsyncAttemptHook] = (),
        clock: Clock | None = None,
        http_client: httpx.AsyncClient | None = None,
        base_urls: Mapping[str, str] | None = None,
        sandbox: bool | str = False,
        check_deliverability: bool = False,
        idempotency_ttl: float = 24 * 3600.0,
        store: AsyncStore | str | os.PathLike[str] | None = None,
        policies: Mapping[str, Policy] | None = None,
        quiet_hours: QuietHours | None = None,
        default_timezone: str = "UTC",
        health_threshold: int = 5,
        health_cooldown: timedelta = timedelta(minutes=1),
        rate_limits: Mapping[str, RateLimit | None] | None = None,
        transport: str = "auto",
        verify: bool | ssl.SSLContext = True,
        shared: str | AsyncRedisShared | None = None,
    ) -> None:
        if isinstance(providers, str):
            from anysend.providers import from_urls

            providers = from_urls(providers)
        providers = list(providers)
        for provider in providers:
            if not isinstance(provider, Provider):
                raise ConfigurationError(f"{provider!r} is not an anysend.providers.Provider")
            if not provider.supports_async():
                raise ConfigurationError(
                    f"{type(provider).__name__} cannot be used by {type(self).__name__}: "
                    "it is not an HTTP adapter and has no asend() method"
                )
        register_secrets(secret for provider in providers for secret in provider.secrets())
        if templates is not None:
            from anysend._templates import Templates

            if not isinstance(templates, Templates):
                templates = Templates(templates)
        self._router = Router(
            providers,
            templates=templates,
            default_region=default_region,
            check_deliverability=check_deliverability,
            round_robin=round_robin,
            limits=limits or ChannelLimits(),
        )
        self._retry = retry or RetryPolicy()
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._on_attempt = list(on_attempt)
        self._on_result = list(on_result)
        self._on_invalid_address = list(on_invalid_address)
        self._clock: Clock = clock or SystemClock()
        base_urls = {**_sandbox_urls(sandbox, providers), **(base_urls or {})}
        self._base_urls = {name: httpx.URL(url) for name, url in base_urls.items()}
        if verify is not True and http_client is not None:
            raise ConfigurationError(
                "verify= applies to the HTTP clients anysend makes: set it on your http_client"
            )
        warn_if_unverified(verify, f"the HTTPS connections of this {type(self).__name__}")
        self._verify = verify
        self._own_http = http_client is None
        self._http = http_client
        # A faster transport (aiohttp) when one is available; always None in the sync Client.
        self._fast: AsyncTransport | None = (
            default_transport(transport, verify=verify) if http_client is None else None
        )
        self._fast_auto = transport == "auto"
        # The fast transport's raw sends, for adapters with the raw hooks (aiohttp only).
        self._send_raw: AsyncRawSender | None = getattr(self._fast, "send_raw", None)
        self._http2: httpx.AsyncClient | None = None
        self._pools = AsyncPools()  # the sync Client's: one per thread
        self._ssl_contexts: dict[bool, ssl.SSLContext] = {}
        self._http_pid = os.getpid()
        self._http_lock = threading.Lock()
        if self._own_http and any(p.http2 for p in providers):
            try:
                import h2  # noqa: F401
            except ImportError:
                raise ConfigurationError(
                    'an adapter needs HTTP/2 (APNs): pip install "anysend[push]"'
                ) from None
        self._idempotency = AsyncIdempotencyCache(ttl=idempotency_ttl, clock=self._clock)
        self._shared: AsyncRedisShared | None = None
        if shared is not None:  # redis-py loads only for it
            from anysend._async._redis import open_shared

            self._shared = open_shared(shared)
        self._own_shared = isinstance(shared, str)
        self._rate_limits = AsyncRateLimits(
            providers, rate_limits, clock=self._clock, shared=self._shared
        )
        self._limited = frozenset(self._rate_limits.limits)
        self._idempotency_ttl = idempotency_ttl
        self._store: AsyncStore | None = None
        self._own_store = False
        if store is not None:  # the store's module (SQLite, the records) loads only for one
            from anysend._async._store import AsyncStore, open_store

            self._store = open_store(store)
            self._own_store = not isinstance(store, AsyncStore)
        if quiet_hours is not None and self._store is None:
            raise ConfigurationError(
                "quiet hours hold messages for later, which needs a store: "
                f"{type(self).__name__}(..., quiet_hours=..., store='anysend.db')"
            )
        self._policies = dict(policies or {})
        for name, policy in self._policies.items():
            if not isinstance(policy, Policy):
                raise ConfigurationError(f"policies[{name!r}] must be an anysend.Policy")
        self._quiet_hours = quiet_hours
        self._default_zone = default_timezone
        zone_of(default_timezone)
        self._health_threshold = health_threshold
        self._health_cooldown = health_cooldown
        self._flows: AsyncFlowEngine | None = None
        self._profiles: AsyncProfiles | None = None
        self._webhooks: AsyncWebhooks | None = None
        self._closed = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> AsyncClient:
        """A client with the providers named in ``ANYSEND_PROVIDERS`` (and their settings).

        Args:
            environ: the variables to read (``os.environ`` by default).
            **kwargs: every other client argument (templates, retry, ...).

        Raises:
            ConfigurationError: the variables are missing or invalid (secrets never shown).
        """
        from anysend.providers import from_env

        return cls(from_env(environ), **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(providers={list(self._router.providers.values())!r})"

    @property
    def providers(self) -> dict[str, Provider]:
        """The configured providers by name (a repeated name gets ``-2``, ``-3`` ...)."""
        return dict(self._router.providers)

    @property
    def store(self) -> AsyncStore | None:
        """The store, when the client has one."""
        return self._store

    def _need_store(self, feature: str) -> AsyncStore:
        if self._store is None:
            raise ConfigurationError(
                f"{feature} needs a store: {type(self).__name__}(..., store='anysend.db') "
                "(or ':memory:' for tests)"
            )
        return self._store

    def _policy(self, category: str | None) -> Policy:
        return self._policies.get(category or "", _DEFAULT_POLICY)

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections the client owns and every adapter's connections."""
        self._closed = True
        if self._fast is not None:
            await self._fast.aclose()
        if self._own_http:
            await self._pools.aclose()
            self._http = self._http2 = None
        for provider in self._router.providers.values():
            closer = getattr(provider, "aclose", None)
            if callable(closer):
                await closer()
        if self._store is not None and self._own_store:
            await self._store.aclose()  # a store given as an object is the caller's to close
        if self._shared is not None and self._own_shared:
            await self._shared.aclose()

    def _http_client(self, http2: bool = False) -> httpx.AsyncClient:
        # A client built before os.fork() gets fresh pools in the child: sockets are not
        # shared across processes. Adapters that need HTTP/2 (APNs) get a pool of their own.
        # The sync Client gives each thread its own pools (see Pools in _synchronization).
        # ``_http``/``_http2`` keep the pool last handed out, for inspection.
        if not self._own_http:
            assert self._http is not None
            return self._http
        pid = os.getpid()
        if pid != self._http_pid:
            with self._http_lock:
                if pid != self._http_pid:
                    self._pools = AsyncPools()
                    self._http = self._http2 = None
                    self._http_pid = pid
        pools = self._pools
        if http2:
            self._http2 = pools.get(True, self._make_http2)
            return self._http2
        self._http = pools.get(False, self._make_http)
        return self._http

    def _make_http(self) -> httpx.AsyncClient:
        verify = self._ssl_context(False)
        return httpx.AsyncClient(timeout=self._timeout, verify=verify, limits=_LIMITS)

    def _make_http2(self) -> httpx.AsyncClient:
        verify = self._ssl_context(True)
        return httpx.AsyncClient(timeout=self._timeout, http2=True, verify=verify, limits=_LIMITS)

    def _ssl_context(self, http2: bool) -> ssl.SSLContext:
        # Made once per kind (httpcore sets a kind's ALPN protocols on it) and shared by the
        # sync Client's per-thread pools: loading the CA bundle costs milliseconds a pool.
        if not isinstance(self._verify, bool):
            return self._verify
        with self._http_lock:
            context = self._ssl_contexts.get(http2)
            if context is None:
                context = self._ssl_contexts[http2] = httpx.create_ssl_context(self._verify)
            return context

    # -- sending -------------------------------------------------------------------------------

    async def send(
        self,
        message: Message,
        to: Recipient | Mapping[str, Any] | str,
        *,
        via: Sequence[Channel | str] | Channel | str | None = None,
    ) -> SendResult:
        """Send ``message`` to ``to`` over the first channel in the chain that takes it.

        Args:
            message: what to say.
            to: who to say it to: a Recipient, a dict of its fields, or a profile id
                (``"user-42"``; needs a store).
            via: the channel chain, in order (one channel may be given alone); default: every
                channel that has a provider and an address, in ``Channel`` order.

        Returns:
            The result, with every attempt; ``result.raise_for_status()`` raises when
            nothing was sent.

        Raises:
            InvalidRecipientError: an address in the chain is malformed (nothing was sent).
            TemplateError: the template is missing or broken, or data is missing.
            ConfigurationError: the client is closed, or a template is used without templates,
                or the recipient is a profile id and there is no store or no such profile.
        """
        if self._closed:
            raise ConfigurationError("the client is closed")
        recipient = to if isinstance(to, Recipient) else await self._resolve(to)
        profile = isinstance(to, str)
        key = message.idempotency_key
        # A keyed send has the key's id, so that its retry after a crash is the same record.
        message_id = os.urandom(16).hex() if key is None else key_message_id(key)
        store = self._store
        if key is None:
            if store is None and recipient.quiet_hours is None:
                # Nothing for _deliver to do: no store, and so no quiet hours of the client.
                return await self._send(message_id, message, recipient, via)
            return await self._deliver(message_id, message, recipient, via, profile=profile)
        first_send = self._first_send(key, message_id, message, recipient, via, profile=profile)
        return await self._idempotency.run(key, first_send)

    def _first_send(
        self,
        key: str,
        message_id: str,
        message: Message,
        recipient: Recipient,
        via: Sequence[Channel | str] | Channel | str | None,
        *,
        profile: bool,
    ) -> Callable[[], Awaitable[SendResult]]:
        """The first send of an idempotency key (claimed in Redis or the store, and kept there).

        A closure made here, not in :meth:`send`: the cells of its variables would otherwise
        be made (and held while awaiting) on every send, keyed or not.
        """
        store: AsyncStore | AsyncRedisShared | None = self._shared or self._store

        async def first_send() -> SendResult:
            if store is None:
                return await self._deliver(message_id, message, recipient, via, profile=profile)
            replay = await self._claim_key(store, key, message_id)
            if replay is not None:
                return replay
            try:
                result = await self._deliver(message_id, message, recipient, via, profile=profile)
            except BaseException:
                await store.release_idempotent(key)
                raise
            expires = self._clock.now() + timedelta(seconds=self._idempotency_ttl)
            await store.put_idempotent(key, result, expires_at=expires)
            return result

        return first_send

    async def _claim_key(
        self, store: AsyncStore | AsyncRedisShared, key: str, message_id: str
    ) -> SendResult | None:
        """Claim a key in the store; a result to return instead of sending, or ``None``.

        Another process sending the same key is waited for (up to 30 seconds); if it has
        not finished by then, the answer is ``unknown``: it may be sending it still.
        """
        waited = 0.0
        while True:
            now = self._clock.now()
            expires = now + timedelta(seconds=self._idempotency_ttl)
            claimed, stored = await store.claim_idempotent(key, now=now, expires_at=expires)
            if claimed:
                return None
            if stored is not None:
                return stored.model_copy(update={"idempotent_replay": True})
            if waited >= _KEY_WAIT:
                return SendResult(
                    message_id=message_id, status=DeliveryStatus.UNKNOWN, idempotent_replay=True
                )
            await self._clock.asleep(_KEY_POLL)
            waited += _KEY_POLL

    def send_many(
        self,
        items: Iterable[tuple[Message, Recipient | Mapping[str, Any] | str]]
        | AsyncIterable[tuple[Message, Recipient | Mapping[str, Any] | str]],
        *,
        via: Sequence[Channel | str] | Channel | str | None = None,
        concurrency: int = 50,
        progress: bool | Callable[[int, int], None] | None = None,
    ) -> AsyncIterator[BulkResult]:
        """Send many messages, streaming: results come back as each send finishes.

        Items are read lazily, at most ``concurrency`` sends run at once, and nothing is kept
        once its result is yielded, so memory stays flat however many items there are. A
        failure of one item never stops the others: bad input that :meth:`send` would raise
        comes back as that item's ``error``.

        Example:
            ```python
            async for item in client.send_many((welcome, person) for person in people):
                if not item.ok:
                    print(item.index, item.error or item.result.error)
            ```

        Args:
            items: ``(message, to)`` pairs, from any iterable (or async iterable).
            via: the channel chain for every item.
            concurrency: the most sends in flight at once.
            progress: ``True`` shows a progress bar on standard error (needs
                ``anysend[cli]``); a callable is called with ``(finished, sent)`` after
                every item.

        Returns:
            An iterator of :class:`~anysend.BulkResult`, in completion order (each knows
            its ``index`` in the input).
        """
        from anysend._bulk import AsyncBulk

        bulk = AsyncBulk(self, via=via, concurrency=concurrency, progress=progress)
        return bulk.run(items)

    def _reserve(self, concurrency: int) -> Callable[[], None]:
        """Raise the fast transport's connection limits by ``concurrency`` for a while.

        ``send_many`` calls it, so that its sends never wait for a connection of their own
        client; the returned function ends the reservation. The httpx pools keep their limits.
        """
        reserve = getattr(self._fast, "reserve", None)
        if reserve is None:
            return _nothing
        return cast("Callable[[], None]", reserve(concurrency))

    async def _resolve(self, to: Recipient | Mapping[str, Any] | str) -> Recipient:
        """The recipient: as given, or the stored profile for an id."""
        if isinstance(to, Recipient):
            return to
        if isinstance(to, str):
            store = self._need_store("sending to a profile id")
            profile = await store.get_profile(to)
            if profile is None:
                raise ConfigurationError(f"no profile with id {to!r}")
            return profile
        from anysend._batch import recipient_from  # an unknown field: InvalidRecipientError

        return recipient_from(to)

    async def _deliver(
        self,
        message_id: str,
        message: Message,
        recipient: Recipient,
        via: Sequence[Channel | str] | Channel | str | None,
        *,
        run_id: str | None = None,
        step_id: str | None = None,
        flow: str | None = None,
        schedule: bool = True,
        profile: bool = False,
    ) -> SendResult:
        """Send and record: the store's guards (schedule, quiet hours, caps), then the send."""
        store = self._store
        if store is None:
            if schedule and self._quiet_window(message, recipient) is not None:
                raise ConfigurationError(
                    "quiet hours hold messages for later, which needs a store: "
                    f"{type(self).__name__}(..., store='anysend.db')"
                )
            return await self._send(message_id, message, recipient, via)
        now = self._clock.now()
        if schedule:
            later = None
            if message.send_at is not None and message.send_at > now:
                later = message.send_at
            else:
                later = self._quiet_window(message, recipient)
            if later is not None:
                return await self._engine().schedule(
                    message, recipient, via, later, profile=profile
                )
        capped = await self._capped(message_id, message, recipient, via)
        if capped is not None:
            await store.save_result(
                capped,
                now=now,
                recipient_id=recipient.id,
                category=message.category,
                run_id=run_id,
                step_id=step_id,
                flow=flow,
            )
            return await self._finish(capped)
        result = await self._send(message_id, message, recipient, via)
        await store.save_result(
            result,
            now=self._clock.now(),
            recipient_id=recipient.id,
            category=message.category,
            run_id=run_id,
            step_id=step_id,
            flow=flow,
        )
        return result

    def _quiet_window(self, message: Message, recipient: Recipient) -> datetime | None:
        """The end of the recipient's quiet hours when now is inside them, else ``None``."""
        quiet = recipient.quiet_hours or self._quiet_hours
        if quiet is None or self._policy(message.category).transactional:
            return None
        zone = zone_of(recipient.timezone, self._default_zone)
        return quiet.next_allowed(self._clock.now(), zone)

    async def _capped(
        self,
        message_id: str,
        message: Message,
        recipient: Recipient,
        via: Sequence[Channel | str] | Channel | str | None,
    ) -> SendResult | None:
        """A skipped result when the category's frequency cap is reached, else ``None``."""
        policy = self._policy(message.category)
        if policy.cap is None or policy.transactional or recipient.id is None:
            return None
        assert self._store is not None
        assert message.category is not None
        since = self._clock.now() - policy.cap.per
        count = await self._store.count_sent(recipient.id, message.category, since)
        if count >= policy.cap.count:
            # A flow step's message is in the store (pending) before it is sent: it must not
            # count against its own cap.
            own = await self._store.get_message(message_id)
            if (
                own is not None
                and own.recipient_id == recipient.id
                and own.category == message.category
                and own.created_at > since
            ):
                count -= 1
        if count < policy.cap.count:
            return None
        chain = self._router.chain(recipient, via)
        channel = chain[0] if chain else Channel.EMAIL
        detail = (
            f"{count} {message.category} message(s) in the last {_duration(policy.cap.per)}; "
            f"the cap is {policy.cap.count}"
        )
        attempt = skip(channel, SkipReason.FREQUENCY_CAPPED, detail)
        return SendResult(
            message_id=message_id,
            status=DeliveryStatus.REJECTED,
            attempts=(attempt,),
        )

    async def _send(
        self,
        message_id: str,
        message: Message,
        recipient: Recipient,
        via: Sequence[Channel | str] | Channel | str | None,
    ) -> SendResult:
        router = self._router
        started = self._clock.monotonic()
        attempts: list[Attempt] = []
        # Decide everything that can fail on bad input before anything is sent: every
        # address is validated and every channel's content rendered up front.
        plan: list[tuple[Channel, list[Address], RenderedContent | None]] = []
        for channel in router.chain(recipient, via):
            addresses = router.addresses(recipient, channel)
            plan.append((channel, addresses, router.content(message, channel, recipient)))

        reroute = self._policy(message.category).reroute
        for channel, addresses, content in plan:
            skipped = self._skip_reason(message, recipient, channel, addresses, content)
            if skipped is not None:
                await self._record(attempts, skipped)
                continue
            assert content is not None
            if not addresses:  # an address-less provider (a configured webhook URL)
                addresses = _NO_ADDRESS
            tried = len(attempts)
            sent, stop = await self._send_channel(
                message_id, message, recipient, channel, addresses, content, started, attempts
            )
            if sent is None and stop:
                # A provider may have accepted it (another channel could make a duplicate),
                # or the content itself was refused (another channel would not help).
                break
            if (
                sent is None
                and not reroute
                and any(a.outcome is not AttemptOutcome.SKIPPED for a in attempts[tried:])
            ):
                break  # this category never moves to another channel once one was tried
            if sent is not None:
                provider_name, address, receipt = sent
                result = _sent(message_id, channel, provider_name, address, receipt, attempts)
                if self._on_result or logger.isEnabledFor(logging.INFO):
                    return await self._finish(result)
                return result  # nothing for _finish to do
        result = SendResult(
            message_id=message_id, status=final_status(attempts), attempts=tuple(attempts)
        )
        return await self._finish(result)

    def _skip_reason(
        self,
        message: Message,
        recipient: Recipient,
        channel: Channel,
        addresses: list[Address],
        content: RenderedContent | None,
    ) -> Attempt | None:
        providers = self._router.by_channel.get(channel, [])
        if not providers:
            return skip(channel, SkipReason.NO_PROVIDER, f"no provider serves {channel.value}")
        if not addresses and channel not in self._router.addressless:
            return skip(channel, SkipReason.NO_ADDRESS, f"the recipient has no {channel.value}")
        if not recipient.preferences.allows(channel, message.category):
            return skip(channel, SkipReason.OPTED_OUT, f"opted out of {channel.value}")
        if self._policy(message.category).consent and (
            recipient.preferences.categories.get(message.category or "", {}).get(channel)
            is not True
        ):
            return skip(
                channel,
                SkipReason.NO_CONSENT,
                f"{message.category} on {channel.value} needs the recipient's opt-in",
            )
        if content is None:
            return skip(channel, SkipReason.NO_CONTENT, f"nothing to send on {channel.value}")
        return None

    async def _send_channel(
        self,
        message_id: str,
        message: Message,
        recipient: Recipient,
        channel: Channel,
        addresses: list[Address],
        content: RenderedContent,
        started: float,
        attempts: list[Attempt],
    ) -> tuple[tuple[str, str, Receipt] | None, bool]:
        """Send on one channel: each address (push devices fan out), failing over providers.

        Returns the first (provider, address, receipt) that was accepted, or ``None``, and
        whether to stop: some address ended in an ambiguous timeout (nothing else is tried
        for it) or the content was refused (no other channel is tried either).
        """
        router = self._router
        store = self._store
        first: tuple[str, str, Receipt] | None = None
        ambiguous = False
        for device, address in enumerate(addresses):
            if store is not None and address.to:
                blocked = await store.blocked(channel, address.to)
                if blocked is not None:
                    why, _, detail = blocked.partition(": ")
                    reason = SkipReason(why)
                    await self._record(attempts, skip(channel, reason, f"{address.to}: {detail}"))
                    continue
            outbound = router.outbound(
                message_id, message, recipient, channel, address, content, device
            )
            try:
                router.check_limits(outbound)
            except ProviderError as exc:
                await self._record(attempts, self._failed(channel, None, outbound, 1, exc))
                continue
            providers = router.providers_for(channel, address.push_target)
            if not providers:
                kind = address.push_target.kind if address.push_target else channel.value
                await self._record(
                    attempts, skip(channel, SkipReason.NO_PROVIDER, f"no provider serves {kind}")
                )
            benched: set[str] | frozenset[str] = _NOBODY
            if store is not None and providers:
                benched = await store.unhealthy([p.name for p in providers], now=self._clock.now())
                if len(benched) == len(providers):
                    benched = set()  # every one is benched: probe them rather than give up
            for provider in providers:
                if provider.name in benched:
                    await self._record(
                        attempts,
                        skip(
                            channel,
                            SkipReason.PROVIDER_BENCHED,
                            f"{provider.name} failed repeatedly; resting",
                            provider=provider.name,
                        ),
                    )
                    continue
                prepared = router.options_for(outbound, message, provider)
                try:
                    provider.check_supported(prepared)
                except UnsupportedFeatureError as exc:
                    await self._record(
                        attempts,
                        skip(channel, SkipReason.UNSUPPORTED, str(exc), provider=provider.name),
                    )
                    continue
                except Exception as exc:  # a limit or rule of this provider: try the next one
                    error = as_provider_error(exc, provider.name)
                    failed = self._failed(channel, provider.name, prepared, 1, error)
                    await self._record(attempts, failed)
                    continue
                tried = len(attempts)
                try:
                    receipt = await self._attempt(provider, prepared, 1, attempts, started)
                except UnsupportedFeatureError as exc:
                    await self._record(
                        attempts,
                        skip(channel, SkipReason.UNSUPPORTED, str(exc), provider=provider.name),
                    )
                    continue
                except ProviderError as exc:
                    if any(
                        a.error is not None and a.error.category is ErrorCategory.AMBIGUOUS_TIMEOUT
                        for a in attempts[tried:]
                    ):
                        # This provider may have it (from the ambiguous try, whatever its
                        # retries answered later): never re-sent elsewhere.
                        ambiguous = True
                        break
                    if exc.category.scope == "provider":
                        await self._health(provider, ok=False)
                        continue  # fail over to the next provider of this channel
                    if exc.contact_invalid and store is not None and address.to:
                        await store.mark_invalid(
                            channel, address.to, exc.category.value, now=self._clock.now()
                        )
                    elif exc.category is ErrorCategory.OPTED_OUT and store and address.to:
                        # The provider says the person opted out: never try them here again.
                        await store.suppress(
                            channel, address.to, "opted_out", now=self._clock.now()
                        )
                    if (
                        exc.category.scope == "content"
                        and exc.reason is not Reason.OUTSIDE_MESSAGING_WINDOW
                    ):
                        # The content is at fault: fail fast everywhere. (A closed WhatsApp
                        # window is about this channel now, not the content: move on.)
                        ambiguous = True
                    break  # the recipient or content: another provider would not help
                if store is not None:
                    await self._health(provider, ok=True)
                if first is None:
                    first = (provider.name, outbound.to, receipt)
                break
        return first, ambiguous

    async def _health(self, provider: Provider, *, ok: bool) -> None:
        if self._store is not None:
            await self._store.record_health(
                provider.name,
                ok,
                now=self._clock.now(),
                threshold=self._health_threshold,
                cooldown=self._health_cooldown,
            )

    def _provider_failure(self, provider: Provider, exc: Exception) -> ProviderError:
        """The ``ProviderError`` for a failed try, secrets redacted; a 429 pauses the provider."""
        if not isinstance(exc, AnysendError):
            logger.exception("provider %s raised an unexpected error", provider.name)
        # A credential the provider echoed back never reaches results, stores or logs.
        error = redact_secrets(as_provider_error(exc, provider.name), provider.secrets())
        if (
            error.category is ErrorCategory.RATE_LIMITED
            and error.retry_after
            and provider.name in self._limited
        ):
            # The provider says slow down: every send through it waits, not only this one.
            self._rate_limits.penalize(
                provider.name, min(error.retry_after, self._retry.max_retry_after)
            )
        return error

    async def _retries(
        self,
        provider: Provider,
        outbound: OutboundMessage,
        started: float,
        attempts: list[Attempt],
        first: ProviderError,
    ) -> Receipt:
        """The retries of a provider whose first try failed with ``first`` (retryable)."""

        async def again(number: int) -> Receipt:
            return await self._attempt(provider, outbound, number, attempts)

        return await self._retrying(provider, started, first, again)

    async def _retrying(
        self,
        provider: Provider,
        started: float,
        first: ProviderError,
        again: Callable[[int], Awaitable[_T]],
    ) -> _T:
        """``again(try_number)`` under the retry policy, after a first try that failed."""
        pending: ProviderError | None = first
        import tenacity  # only once a retry is needed: a first success pays nothing for it

        retrying = tenacity.AsyncRetrying(
            **self._retry.tenacity_kwargs(
                idempotent=provider.capabilities.idempotency,
                started=started,
                monotonic=self._clock.monotonic,
                sleep=self._clock.asleep,
            )
        )
        async for attempt in retrying:
            with attempt:
                if pending is not None:
                    # Hand tenacity the first failure so that it decides the first wait.
                    error, pending = pending, None
                    raise error
                return await again(attempt.retry_state.attempt_number)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(
        self,
        provider: Provider,
        outbound: OutboundMessage,
        number: int,
        attempts: list[Attempt],
        started: float | None = None,
    ) -> Receipt:
        """One try of one provider, recorded whatever happens.

        With ``started`` (when the send began), a first try that fails with an error the
        retry policy retries goes on to the retries (:meth:`_retries`): the one call for a
        provider, with retries, and a first success builds no retry machinery.
        """
        started_at = self._clock.now()
        t0 = self._clock.monotonic()
        try:
            if provider.name in self._limited:
                # Wait for the provider's rate limit (and free the slot whatever happens).
                async with self._rate_limits.slot(provider.name, outbound.to):
                    receipt = await self._send_once(provider, outbound)
            elif provider.is_http():
                raw = self._raw_request(provider, outbound)
                if raw is None:
                    receipt = await self._send_http(provider, outbound)
                else:  # _send_http's fast path, here: one coroutine fewer per send
                    try:
                        answer = await self._fast_send(raw)
                    except httpx.TransportError as exc:
                        raise _unreachable(provider, exc) from exc
                    receipt = _raw_receipt(provider, raw, answer, outbound)
            else:
                receipt = await cast(AsyncDirectProvider, provider).asend(outbound)
        except UnsupportedFeatureError:
            raise
        except Exception as exc:
            error = self._provider_failure(provider, exc)
        else:
            # Every part is validated already (the receipt by its adapter): see trusted().
            values = {
                "channel": outbound.channel,
                "provider": provider.name,
                "outcome": AttemptOutcome.SENT,
                "address": outbound.to,
                "number": number,
                "error": None,
                "skip_reason": None,
                "detail": None,
                "receipt": receipt,
                "started_at": started_at,
                "duration": float(self._clock.monotonic() - t0),
            }
            await self._record(attempts, trusted(Attempt, values, _SENT_GIVEN))
            return receipt
        duration = self._clock.monotonic() - t0
        failed = self._failed(
            outbound.channel, provider.name, outbound, number, error, started_at, duration
        )
        await self._record(attempts, failed)
        if started is not None and self._retry.should_retry(
            error, idempotent=provider.capabilities.idempotency
        ):
            return await self._retries(provider, outbound, started, attempts, error)
        raise error

    async def _send_once(self, provider: Provider, outbound: OutboundMessage) -> Receipt:
        if provider.is_http():
            return await self._send_http(provider, outbound)
        return await cast(AsyncDirectProvider, provider).asend(outbound)

    async def _send_http(self, provider: Provider, outbound: OutboundMessage) -> Receipt:
        """Drive an HTTP adapter's send flow: send each request it yields, feed it answers."""
        raw = self._raw_request(provider, outbound)
        if raw is not None:
            try:
                answer = await self._fast_send(raw)
            except httpx.TransportError as exc:
                raise _unreachable(provider, exc) from exc
            return _raw_receipt(provider, raw, answer, outbound)
        flow = provider.send_flow(outbound)
        try:
            request = next(flow)
            while True:
                response = await self._http_send(provider, request)
                try:
                    request = flow.send(response)
                except StopIteration as stop:
                    return cast(Receipt, stop.value)
                except AnysendError:
                    raise
                except Exception as exc:
                    raise _unread(provider, response, exc) from exc
        finally:
            flow.close()

    def _raw_request(self, provider: Provider, outbound: OutboundMessage) -> RawRequest | None:
        """The adapter's fast path, when it has one and this send may take it, else ``None``.

        It is taken where ``_http_send`` would use the fast transport, and never with a base
        URL override: the same request and answer as the send flow, without httpx's objects.
        """
        if (
            self._send_raw is None
            or provider.http2
            or not _raw_hooks(provider)
            or provider.name in self._base_urls
            or (self._fast_auto and httpx_is_mocked())  # respx in a test: use httpx
        ):
            return None
        return cast(RawAdapter, provider).raw_request(outbound)

    def _fast_send(self, raw: RawRequest) -> AsyncRawAnswer:
        assert self._send_raw is not None
        return self._send_raw(raw, timeout=self._timeout)

    async def _http_send(self, provider: Provider, request: httpx.Request) -> httpx.Response:
        base = self._base_urls.get(provider.name)
        if base is not None:
            request.url = request.url.copy_with(
                scheme=base.scheme,
                host=base.host,
                port=base.port,
                path=base.path.rstrip("/") + request.url.path,
            )
            request.headers["Host"] = request.url.netloc.decode("ascii")
        try:
            fast = self._fast
            if (
                fast is not None
                and not provider.http2
                and not (self._fast_auto and httpx_is_mocked())  # respx in a test: use httpx
            ):
                return await fast.send(request, timeout=self._timeout)
            return await self._http_client(provider.http2).send(request)
        except httpx.TransportError as exc:
            raise _unreachable(provider, exc) from exc

    # -- flows, profiles, the customer view ----------------------------------------------------

    def _engine(self) -> AsyncFlowEngine:
        if self._flows is None:
            from anysend._async._flows import AsyncFlowEngine

            self._flows = AsyncFlowEngine(self, self._need_store("flows and scheduling"))
        return self._flows

    async def start(
        self,
        flow: Flow,
        *,
        to: Recipient | Mapping[str, Any] | str,
        data: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> str:
        """Start a flow for one recipient; its steps run from :meth:`run_due` (or a worker).

        Args:
            flow: the plan.
            to: the recipient, or a profile id (resolved again whenever a step fires, so a
                contact point marked invalid meanwhile is not used).
            data: the template data of every step.
            key: your name for this run (``"cart:123"``): :meth:`cancel` takes it, and
                starting the same key again while it runs returns the running one.

        Returns:
            The run's id.

        Raises:
            ConfigurationError: the client has no store.
        """
        return await self._engine().start(flow, to=to, data=dict(data or {}), key=key)

    async def cancel(self, key: str) -> int:
        """Cancel what is still pending in the runs started with ``key``.

        Returns how many runs were canceled (scheduled single messages count too).
        """
        return await self._engine().cancel(key)

    async def record_event(
        self,
        recipient: Recipient | str,
        name: str,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        """Record a business event (``"purchase"``) for a recipient (or profile id).

        Runs whose flow lists ``name`` in ``cancel_on`` are canceled at once; steps with
        ``until=name`` are skipped when they fire. Returns how many runs were canceled.
        """
        return await self._engine().record_event(recipient, name, dict(data or {}))

    async def run_due(self, *, limit: int = 100) -> int:
        """Run the flow steps and scheduled messages that are due; returns how many ran.

        Safe to call from several processes at once: each step is claimed atomically.
        """
        return await self._engine().run_due(limit=limit)

    async def work(
        self,
        *,
        poll: float = 1.0,
        once: bool = False,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> int:
        """Run due steps in a loop (what ``anysend worker`` does); returns how many ran.

        Args:
            poll: the longest wait between two looks at the store, in seconds.
            once: return as soon as nothing is due.
            should_stop: called between steps; return ``True`` to stop.
        """
        return await self._engine().work(poll=poll, once=once, should_stop=should_stop)

    @property
    def profiles(self) -> AsyncProfiles:
        """Recipients kept in the store by id (see :class:`~anysend.AsyncProfiles`)."""
        if self._profiles is None:
            from anysend._async._profiles import AsyncProfiles

            self._profiles = AsyncProfiles(self, self._need_store("profiles"))
        return self._profiles

    @property
    def webhooks(self) -> AsyncWebhooks:
        """The callback receiver: verify, parse, store (see :class:`~anysend.AsyncWebhooks`)."""
        if self._webhooks is None:
            from anysend._async._webhooks import AsyncWebhooks

            self._webhooks = AsyncWebhooks(self, self._need_store("webhooks handling"))
        return self._webhooks

    async def history(self, recipient_id: str) -> list[HistoryEntry]:
        """One person's timeline across channels: messages, statuses, events, inbound."""
        return await self._need_store("history").history(recipient_id)

    async def forget(self, recipient_id: str) -> dict[str, int]:
        """Erase a person's data (GDPR): profile, messages, events, inbound, runs.

        Suppressions (opt-outs) stay, keyed by a hash of the address only, so that the
        person is not messaged again. Returns how many records of each kind were erased.
        """
        return await self._need_store("forget").forget(recipient_id)

    async def report(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        by: str = "channel",
    ) -> Report:
        """Counts and rates per ``channel``, ``provider``, ``category`` or ``flow``.

        Args:
            since: the start of the period (messages created from then on).
            until: the end of the period (now by default).
            by: what the rows group by.
        """
        until = until or self._clock.now() + timedelta(microseconds=1)
        return await self._need_store("reports").report(since=since, until=until, by=by)

    async def prune(self, older_than: timedelta) -> int:
        """Delete messages, events and inbound messages older than ``older_than``.

        A retention setting: ``anysend worker --retention-days`` runs it daily.
        """
        store = self._need_store("pruning")
        return await store.prune(self._clock.now() - older_than)

    # -- callbacks ------------------------------------------------------------------------------

    async def parse_webhook(
        self, provider: str | Provider, request: WebhookRequest, *, verify: bool = True
    ) -> list[DeliveryEvent | InboundMessage]:
        """Verify and parse a callback for ``provider`` (its name, or the adapter itself).

        Unlike ``Provider.parse_webhook`` this may use the network, through the client's own
        connection pool: an adapter whose verification needs a document from the provider
        (Amazon SNS's signing certificate for SES) fetches it once and caches it.

        Raises:
            ConfigurationError: no configured provider has that name.
            WebhookVerificationError: the callback is not authentic.
            WebhookParseError: the body cannot be understood.
        """
        if isinstance(provider, Provider):
            adapter: Provider | None = provider
            provider = provider.name
        else:
            adapter = self._router.providers.get(provider)
        if adapter is None:
            known = ", ".join(self._router.providers) or "none"
            raise ConfigurationError(f"no provider named {provider!r} (configured: {known})")
        flow = adapter.webhook_flow(request, verify=verify)
        try:
            fetch = next(flow)
            while True:
                try:
                    response = await self._http_client().send(fetch)
                except httpx.HTTPError as exc:
                    raise WebhookVerificationError(
                        f"could not fetch {fetch.url.host} to verify the {provider} callback: "
                        f"{type(exc).__name__}"
                    ) from exc
                fetch = flow.send(response)
        except StopIteration as stop:
            return cast("list[DeliveryEvent | InboundMessage]", stop.value)
        finally:
            flow.close()

    # -- records and hooks ---------------------------------------------------------------------

    @staticmethod
    def _failed(
        channel: Channel,
        provider: str | None,
        outbound: OutboundMessage,
        number: int,
        error: ProviderError,
        started_at: datetime | None = None,
        duration: float = 0.0,
    ) -> Attempt:
        return Attempt(
            channel=channel,
            provider=provider,
            outcome=AttemptOutcome.FAILED,
            address=outbound.to,
            number=number,
            error=ErrorInfo.from_exception(error),
            started_at=started_at,
            duration=duration,
        )

    async def _record(self, attempts: list[Attempt], attempt: Attempt) -> None:
        attempts.append(attempt)
        if attempt.outcome is AttemptOutcome.FAILED:
            assert attempt.error is not None
            logger.info(
                "%s via %s failed (try %d): %s",
                attempt.channel.value,
                attempt.provider,
                attempt.number,
                attempt.error.category.value,
            )
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s via %s: %s %s",
                attempt.channel.value,
                attempt.provider,
                attempt.outcome.value,
                attempt.skip_reason.value if attempt.skip_reason else "",
            )
        if not self._on_attempt and not self._on_invalid_address:
            return
        hooks = [("on_attempt", hook) for hook in self._on_attempt]
        if attempt.contact_invalid:
            hooks += [("on_invalid_address", hook) for hook in self._on_invalid_address]
        for kind, hook in hooks:
            try:
                await hook(attempt)
            except Exception:
                logger.exception("an %s hook raised; the send goes on", kind)

    async def _finish(self, result: SendResult) -> SendResult:
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "message %s: %s%s",
                result.message_id,
                result.status.value,
                f" via {result.channel.value}/{result.provider}" if result.channel else "",
            )
        for hook in self._on_result:
            try:
                await hook(result)
            except Exception:
                logger.exception("an on_result hook raised; the result stands")
        return result

    # -- batch sends ------------------------------------------------------------------------------

    async def send_batch(
        self,
        message: Message,
        recipients: Iterable[
            Recipient
            | Mapping[str, Any]
            | str
            | tuple[Recipient | Mapping[str, Any] | str, Mapping[str, Any]]
        ],
        *,
        via: Sequence[Channel | str] | Channel | str | None = None,
        provider: str | None = None,
        concurrency: int = 50,
    ) -> list[BulkResult]:
        """Send one message to many recipients, in as few requests as the provider allows.

        Providers with a batch API (SendGrid's personalizations, Mailgun's recipient
        variables: up to 1,000 recipients a request) get one request per chunk of recipients
        whose rendered message is the same but for what the provider personalises (the
        address and name; for SendGrid the subject too). Every recipient still gets a copy
        of their own, an anysend message id of their own, a result of their own and, with a
        store, a record of their own that their callbacks find. Everything else is sent one
        by one as :meth:`send_many` sends it.

        Example:
            ```python
            results = await client.send_batch(newsletter, [ann, bob, ("user-42", {"name": "Cy"})])
            failed = [r for r in results if not r.ok]
            ```

        Args:
            message: what to say (a template is rendered for each recipient).
            recipients: each a Recipient, a dict of its fields or a profile id, or a
                ``(recipient, data)`` pair whose ``data`` is laid over ``message.data`` for
                that recipient.
            via: the channel chain, as in :meth:`send`. A recipient is batched on the first
                channel of their chain when it is not skipped and its first provider (or
                ``provider``) has a batch API; otherwise they are sent as :meth:`send` would.
            provider: the name of the provider to batch through (default: the first provider
                of the channel, in failover order).
            concurrency: the most one-by-one sends in flight at once.

        Returns:
            One :class:`~anysend.BulkResult` per recipient, in input order: its ``result``, or
            its ``error`` for bad input that :meth:`send` would raise (an invalid address, a
            template error, an unknown profile).

        A chunk's request is retried as a whole under the retry policy and counts once
        against rate limits. When it fails for good, every recipient of the chunk fails with
        that error, and no other provider or channel is tried for them (:meth:`send_many`
        fails over one message at a time).

        Raises:
            ConfigurationError: the client is closed, or no provider has that name.
        """
        from anysend._batch import Batcher, split_item
        from anysend._bulk import BulkResult

        if self._closed:
            raise ConfigurationError("the client is closed")
        if provider is not None and provider not in self._router.providers:
            known = ", ".join(self._router.providers) or "none"
            raise ConfigurationError(f"no provider named {provider!r} (configured: {known})")
        if concurrency < 1:
            raise ConfigurationError("concurrency must be at least 1")
        results: dict[int, BulkResult] = {}
        singles: list[tuple[int, Message, Recipient | Mapping[str, Any] | str]] = []
        batcher: Batcher[Entry] = Batcher()
        benched: dict[str, bool] = {}
        count = 0
        for index, item in enumerate(recipients):
            count = index + 1
            try:
                to, data = split_item(item)
                own = message
                if data:
                    own = message.model_copy(update={"data": {**message.data, **data}})
                entry = await self._batch_entry(index, own, to, via, provider, benched)
            except AnysendError as exc:
                results[index] = BulkResult(index, error=exc)
                continue
            if entry is None:
                singles.append((index, own, to))
                continue
            chunk = batcher.add(entry.key, entry.provider.max_batch, entry.outbound.to, entry)
            if chunk is not None:
                await self._send_chunk(chunk.items, results, singles)
        for chunk in batcher.flush():
            await self._send_chunk(chunk.items, results, singles)
        if singles:
            items = [(own, to) for _, own, to in singles]
            async for done in self.send_many(items, via=via, concurrency=concurrency):
                index = singles[done.index][0]
                results[index] = BulkResult(index, result=done.result, error=done.error)
        return [results[index] for index in range(count)]

    async def _batch_entry(
        self,
        index: int,
        message: Message,
        to: Recipient | Mapping[str, Any] | str,
        via: Sequence[Channel | str] | Channel | str | None,
        provider_name: str | None,
        benched: dict[str, bool],
    ) -> Entry | None:
        """The recipient routed for a batch, or ``None`` to send them as :meth:`send` would.

        Raises what :meth:`send` raises for bad input, before anything is sent: every address
        of the chain is validated and every channel's content rendered.
        """
        from anysend._batch import Entry, batch_key

        recipient = await self._resolve(to)
        router = self._router
        plan = [
            (
                channel,
                router.addresses(recipient, channel),
                router.content(message, channel, recipient),
            )
            for channel in router.chain(recipient, via)
        ]
        if message.idempotency_key is not None or not plan:
            return None
        store = self._store
        now = self._clock.now()
        if store is not None and message.send_at is not None and message.send_at > now:
            return None  # the store holds it for later
        if self._quiet_window(message, recipient) is not None:
            return None
        channel, addresses, content = plan[0]
        if self._skip_reason(message, recipient, channel, addresses, content) is not None:
            return None
        if len(addresses) != 1 or addresses[0].push_target is not None or content is None:
            return None
        if provider_name is not None:
            adapter = router.providers[provider_name]
            if channel not in adapter.channels:
                return None
        else:
            found = router.providers_for(channel)
            if not found:
                return None
            adapter = found[0]
        if adapter.max_batch < 2:
            return None
        message_id = os.urandom(16).hex()
        if store is not None:
            if await store.blocked(channel, addresses[0].to) is not None:
                return None
            if adapter.name not in benched:
                benched[adapter.name] = bool(await store.unhealthy([adapter.name], now=now))
            if benched[adapter.name]:
                return None
            if await self._capped(message_id, message, recipient, via) is not None:
                return None
        outbound = router.outbound(message_id, message, recipient, channel, addresses[0], content)
        prepared = router.options_for(outbound, message, adapter)
        try:
            router.check_limits(prepared)
            adapter.check_supported(prepared)
        except AnysendError:
            return None  # send() records why, and tries the next provider
        key = batch_key(adapter, prepared)
        if key is None:
            return None
        # The adapter itself (not its name) keeps two configured instances apart.
        return Entry(index, to, message, recipient, adapter, prepared, (adapter, channel, key))

    async def _send_chunk(
        self,
        entries: list[Entry],
        results: dict[int, BulkResult],
        singles: list[tuple[int, Message, Recipient | Mapping[str, Any] | str]],
    ) -> None:
        """Send one chunk in one request; record a result per recipient.

        A chunk of one, or one the adapter refuses to batch, is sent one by one instead.
        """
        from anysend._bulk import BulkResult

        if len(entries) < 2:
            singles += [(e.index, e.message, e.to) for e in entries]
            return
        provider = entries[0].provider
        messages = [entry.outbound for entry in entries]
        attempts: list[list[Attempt]] = [[] for _ in entries]
        try:
            receipts = await self._try_batch(provider, messages, attempts)
        except UnsupportedFeatureError:
            singles += [(e.index, e.message, e.to) for e in entries]
            return
        except ProviderError as exc:
            if exc.category.scope == "provider":
                await self._health(provider, ok=False)
            outcomes = [
                SendResult(message_id=m.id, status=final_status(found), attempts=tuple(found))
                for m, found in zip(messages, attempts, strict=True)
            ]
        else:
            await self._health(provider, ok=True)
            outcomes = [
                SendResult(
                    message_id=m.id,
                    status=receipt.status,
                    channel=m.channel,
                    provider=provider.name,
                    address=m.to,
                    receipt=receipt,
                    attempts=tuple(found),
                )
                for m, receipt, found in zip(messages, receipts, attempts, strict=True)
            ]
        store = self._store
        for entry, outcome in zip(entries, outcomes, strict=True):
            result = await self._finish(outcome)
            if store is not None:
                await store.save_result(
                    result,
                    now=self._clock.now(),
                    recipient_id=entry.recipient.id,
                    category=entry.message.category,
                )
            results[entry.index] = BulkResult(entry.index, result=result)

    async def _try_batch(
        self, provider: Provider, messages: list[OutboundMessage], attempts: list[list[Attempt]]
    ) -> list[Receipt]:
        """One batch request, with retries as a whole (as :meth:`_try_provider` for one)."""
        started = self._clock.monotonic()
        try:
            return await self._attempt_batch(provider, messages, 1, attempts)
        except ProviderError as exc:
            if not self._retry.should_retry(exc, idempotent=provider.capabilities.idempotency):
                raise
            first = exc

        async def again(number: int) -> list[Receipt]:
            return await self._attempt_batch(provider, messages, number, attempts)

        return await self._retrying(provider, started, first, again)

    async def _attempt_batch(
        self,
        provider: Provider,
        messages: list[OutboundMessage],
        number: int,
        attempts: list[list[Attempt]],
    ) -> list[Receipt]:
        """One try of one batch request, recorded for every recipient whatever happens.

        The request counts once against the provider's rate limit.
        """
        started_at = self._clock.now()
        t0 = self._clock.monotonic()
        try:
            if provider.name in self._limited:
                async with self._rate_limits.slot(provider.name):
                    receipts = await self._send_batch_http(provider, messages)
            else:
                receipts = await self._send_batch_http(provider, messages)
        except UnsupportedFeatureError:
            raise
        except Exception as exc:
            error = self._provider_failure(provider, exc)
            # A refusal of the whole request says no one address is dead for good.
            error.contact_invalid = False
        else:
            duration = self._clock.monotonic() - t0
            for message, receipt, found in zip(messages, receipts, attempts, strict=True):
                sent = Attempt(
                    channel=message.channel,
                    provider=provider.name,
                    outcome=AttemptOutcome.SENT,
                    address=message.to,
                    number=number,
                    receipt=receipt,
                    started_at=started_at,
                    duration=duration,
                )
                await self._record(found, sent)
            return receipts
        duration = self._clock.monotonic() - t0
        for message, found in zip(messages, attempts, strict=True):
            failed = self._failed(
                message.channel, provider.name, message, number, error, started_at, duration
            )
            await self._record(found, failed)
        raise error

    async def _send_batch_http(
        self, provider: Provider, messages: list[OutboundMessage]
    ) -> list[Receipt]:
        """Build, send and read one batch request (one receipt per message)."""
        request = provider.build_batch_request(messages)
        response = await self._http_send(provider, request)
        try:
            receipts = provider.parse_batch_response(response, messages)
        except AnysendError:
            raise
        except Exception as exc:
            raise _unread(provider, response, f"{type(exc).__name__}: {exc}") from exc
        if len(receipts) != len(messages):
            problem = f"{len(receipts)} receipts for {len(messages)} messages"
            raise _unread(provider, response, problem)
        return receipts
