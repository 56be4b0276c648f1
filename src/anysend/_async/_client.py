"""``AsyncClient``: the one implementation of the send orchestration.

This file is the source of truth; ``anysend/_sync/_client.py`` (the sync ``Client``) is
generated from it by ``scripts/unasync.py``, whose docstring lists the naming rules.

The decisions (chain, addresses, content, limits, status) come from ``anysend._routing``; this
module only does the I/O: calling adapters, retrying, failing over, recording attempts.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, cast

import httpx

from anysend._async._idempotency import AsyncIdempotencyCache
from anysend._clock import Clock, SystemClock
from anysend._events import DeliveryEvent, InboundMessage, WebhookRequest
from anysend._exceptions import (
    AnysendError,
    ConfigurationError,
    ErrorCategory,
    ProviderError,
    UnsupportedFeatureError,
    WebhookVerificationError,
    as_provider_error,
)
from anysend._logging import logger, register_secrets
from anysend._models import Channel, Message, OutboundMessage, Recipient
from anysend._results import Attempt, AttemptOutcome, ErrorInfo, Receipt, SendResult, SkipReason
from anysend._retry import RetryPolicy
from anysend._routing import Address, ChannelLimits, Router, final_status, skip
from anysend._templates import RenderedContent, Templates
from anysend._types import AsyncAttemptHook, AsyncDirectProvider, AsyncResultHook
from anysend.providers import Provider

__all__ = ["AsyncClient"]


_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


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
        check_deliverability: look up email domains in DNS when validating (off by default).
        idempotency_ttl: seconds an idempotency key is remembered.

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
        check_deliverability: bool = False,
        idempotency_ttl: float = 24 * 3600.0,
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
        if templates is not None and not isinstance(templates, Templates):
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
        self._base_urls = {name: httpx.URL(url) for name, url in (base_urls or {}).items()}
        self._own_http = http_client is None
        self._http = http_client
        self._http2: httpx.AsyncClient | None = None
        self._http_pid = os.getpid()
        if self._own_http and any(p.http2 for p in providers):
            try:
                import h2  # noqa: F401
            except ImportError:
                raise ConfigurationError(
                    'an adapter needs HTTP/2 (APNs): pip install "anysend[push]"'
                ) from None
        self._idempotency = AsyncIdempotencyCache(ttl=idempotency_ttl, clock=self._clock)
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
        if self._own_http:
            for pool in (self._http, self._http2):
                if pool is not None:
                    await pool.aclose()
            self._http = self._http2 = None
        for provider in self._router.providers.values():
            closer = getattr(provider, "aclose", None)
            if callable(closer):
                await closer()

    def _http_client(self, http2: bool = False) -> httpx.AsyncClient:
        # A client built before os.fork() gets fresh pools in the child: sockets are not
        # shared across processes. Adapters that need HTTP/2 (APNs) get a pool of their own.
        pid = os.getpid()
        if self._own_http and pid != self._http_pid:
            self._http = self._http2 = None
            self._http_pid = pid
        if http2 and self._own_http:
            if self._http2 is None:
                self._http2 = httpx.AsyncClient(timeout=self._timeout, http2=True)
            return self._http2
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        return self._http

    # -- sending -------------------------------------------------------------------------------

    async def send(
        self,
        message: Message,
        to: Recipient | Mapping[str, Any],
        *,
        via: Sequence[Channel | str] | Channel | str | None = None,
    ) -> SendResult:
        """Send ``message`` to ``to`` over the first channel in the chain that takes it.

        Args:
            message: what to say.
            to: who to say it to (a Recipient, or a dict of its fields).
            via: the channel chain, in order (one channel may be given alone); default: every
                channel that has a provider and an address, in ``Channel`` order.

        Returns:
            The result, with every attempt; ``result.raise_for_status()`` raises when
            nothing was sent.

        Raises:
            InvalidRecipientError: an address in the chain is malformed (nothing was sent).
            TemplateError: the template is missing or broken, or data is missing.
            ConfigurationError: the client is closed, or a template is used without templates.
        """
        if self._closed:
            raise ConfigurationError("the client is closed")
        recipient = to if isinstance(to, Recipient) else Recipient.model_validate(to)
        message_id = uuid.uuid4().hex
        if message.idempotency_key is None:
            return await self._send(message_id, message, recipient, via)

        async def first_send() -> SendResult:
            return await self._send(message_id, message, recipient, via)

        return await self._idempotency.run(message.idempotency_key, first_send)

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

        for channel, addresses, content in plan:
            skipped = self._skip_reason(message, recipient, channel, addresses, content)
            if skipped is not None:
                await self._record(attempts, skipped)
                continue
            assert content is not None
            if not addresses:  # an address-less provider (a configured webhook URL)
                addresses = [Address("")]
            sent, ambiguous = await self._send_channel(
                message_id, message, recipient, channel, addresses, content, started, attempts
            )
            if sent is None and ambiguous:
                # A provider may have accepted it: another channel could make a duplicate.
                break
            if sent is not None:
                provider_name, address, receipt = sent
                result = SendResult(
                    message_id=message_id,
                    status=receipt.status,
                    channel=channel,
                    provider=provider_name,
                    address=address,
                    receipt=receipt,
                    attempts=tuple(attempts),
                )
                return await self._finish(result)
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
        if not addresses and not any(p.capabilities.addressless for p in providers):
            return skip(channel, SkipReason.NO_ADDRESS, f"the recipient has no {channel.value}")
        if not recipient.preferences.allows(channel, message.category):
            return skip(channel, SkipReason.OPTED_OUT, f"opted out of {channel.value}")
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
        whether some address ended in an ambiguous timeout (nothing else is tried for it).
        """
        router = self._router
        first: tuple[str, str, Receipt] | None = None
        ambiguous = False
        for device, address in enumerate(addresses):
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
            for provider in providers:
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
                try:
                    receipt = await self._try_provider(provider, prepared, started, attempts)
                except UnsupportedFeatureError as exc:
                    await self._record(
                        attempts,
                        skip(channel, SkipReason.UNSUPPORTED, str(exc), provider=provider.name),
                    )
                    continue
                except ProviderError as exc:
                    if exc.category is ErrorCategory.AMBIGUOUS_TIMEOUT:
                        ambiguous = True
                        break  # never re-sent elsewhere: it may already be on its way
                    if exc.category.scope == "provider":
                        continue  # fail over to the next provider of this channel
                    break  # the recipient or content: another provider would not help
                if first is None:
                    first = (provider.name, outbound.to, receipt)
                break
        return first, ambiguous

    async def _try_provider(
        self,
        provider: Provider,
        outbound: OutboundMessage,
        started: float,
        attempts: list[Attempt],
    ) -> Receipt:
        """One provider, with retries. The first try builds no retry machinery."""
        idempotent = provider.capabilities.idempotency
        try:
            return await self._attempt(provider, outbound, 1, attempts)
        except ProviderError as exc:
            if not self._retry.should_retry(exc, idempotent=idempotent):
                raise
            pending: ProviderError | None = exc
        import tenacity  # only once a retry is needed: a first success pays nothing for it

        retrying = tenacity.AsyncRetrying(
            **self._retry.tenacity_kwargs(
                idempotent=idempotent,
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
                number = attempt.retry_state.attempt_number
                return await self._attempt(provider, outbound, number, attempts)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(
        self,
        provider: Provider,
        outbound: OutboundMessage,
        number: int,
        attempts: list[Attempt],
    ) -> Receipt:
        """One try of one provider, recorded whatever happens."""
        started_at = self._clock.now()
        t0 = self._clock.monotonic()
        try:
            if provider.is_http():
                receipt = await self._send_http(provider, outbound)
            else:
                receipt = await cast(AsyncDirectProvider, provider).asend(outbound)
        except UnsupportedFeatureError:
            raise
        except Exception as exc:
            if not isinstance(exc, AnysendError):
                logger.exception("provider %s raised an unexpected error", provider.name)
            error = as_provider_error(exc, provider.name)
        else:
            attempt = Attempt(
                channel=outbound.channel,
                provider=provider.name,
                outcome=AttemptOutcome.SENT,
                address=outbound.to,
                number=number,
                receipt=receipt,
                started_at=started_at,
                duration=self._clock.monotonic() - t0,
            )
            await self._record(attempts, attempt)
            return receipt
        duration = self._clock.monotonic() - t0
        failed = self._failed(
            outbound.channel, provider.name, outbound, number, error, started_at, duration
        )
        await self._record(attempts, failed)
        raise error

    async def _send_http(self, provider: Provider, outbound: OutboundMessage) -> Receipt:
        """Drive an HTTP adapter's send flow: send each request it yields, feed it answers."""
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
                    # The provider answered but the adapter could not read it. After a 2xx
                    # the message may well have been accepted: do not send it again.
                    category = (
                        ErrorCategory.AMBIGUOUS_TIMEOUT
                        if response.is_success
                        else ErrorCategory.UNKNOWN
                    )
                    raise ProviderError(
                        f"{provider.name} adapter could not read the response: {exc}",
                        category=category,
                        retryable=False,
                        provider=provider.name,
                        status_code=response.status_code,
                        raw=response.text,
                    ) from exc
        finally:
            flow.close()

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
            return await self._http_client(provider.http2).send(request)
        except _NOT_SENT as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            raise ProviderError(
                f"could not reach {provider.name}: {type(exc).__name__}: {exc}",
                category=ErrorCategory.TIMEOUT if timeout else ErrorCategory.UNAVAILABLE,
                provider=provider.name,
            ) from exc
        except httpx.TransportError as exc:
            # The request went out; the provider may have accepted it.
            raise ProviderError(
                f"no answer from {provider.name} after the request was sent: "
                f"{type(exc).__name__}: {exc}",
                category=ErrorCategory.AMBIGUOUS_TIMEOUT,
                provider=provider.name,
            ) from exc

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
        else:
            logger.debug(
                "%s via %s: %s %s",
                attempt.channel.value,
                attempt.provider,
                attempt.outcome.value,
                attempt.skip_reason.value if attempt.skip_reason else "",
            )
        hooks = [("on_attempt", hook) for hook in self._on_attempt]
        if attempt.contact_invalid:
            hooks += [("on_invalid_address", hook) for hook in self._on_invalid_address]
        for kind, hook in hooks:
            try:
                await hook(attempt)
            except Exception:
                logger.exception("an %s hook raised; the send goes on", kind)

    async def _finish(self, result: SendResult) -> SendResult:
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
