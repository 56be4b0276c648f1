"""Bulk sending: ``client.send_many(items)`` streams any number of sends with bounded memory.

Items are pulled from the iterable only as fast as sends finish (at most ``concurrency`` in
flight), and each result is yielded as soon as it is ready, so a campaign of a million
recipients holds a few hundred items in memory at any time. One item's failure, even bad input
that ``send()`` would raise, never stops the others: it comes back as a :class:`BulkResult`
with the error.

:class:`AsyncBulk` runs tasks on the event loop for ``AsyncClient``; :class:`Bulk` runs a thread
pool for ``Client`` (the sync client is thread-safe).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
    Sized,
)
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from anysend._exceptions import AnysendError, ConfigurationError
from anysend._models import Channel, Message, Recipient

if TYPE_CHECKING:
    from anysend._async._client import AsyncClient
    from anysend._results import SendResult
    from anysend._sync._client import Client

__all__ = ["AsyncBulk", "Bulk", "BulkResult", "Progress"]

To = Recipient | Mapping[str, Any] | str
Item = tuple[Message, To]
Via = Sequence[Channel | str] | Channel | str | None
Progress = Callable[[int, int], None]
"""A progress callback: ``(finished, sent)`` after every item."""


@dataclass(frozen=True)
class BulkResult:
    """The outcome of one item of ``send_many``.

    Attributes:
        index: the item's position in the input (results arrive in completion order).
        result: the send's result, when ``send()`` returned one.
        error: the exception ``send()`` raised for this item (bad input: an invalid address,
            a template error), when it raised.
    """

    index: int
    result: SendResult | None = None
    error: AnysendError | None = None

    @property
    def ok(self) -> bool:
        """Whether the item was sent (or scheduled)."""
        return self.result is not None and self.result.ok


def _check(concurrency: int) -> None:
    if concurrency < 1:
        raise ConfigurationError("concurrency must be at least 1")


def _progress(
    progress: bool | Progress | None, items: object
) -> tuple[Progress | None, Callable[[], None]]:
    """A callback and its closer: a rich progress bar for ``True``, the callable as given.

    The bar shows a total when the items have a length (a list), and a count otherwise.
    """
    if progress is None or progress is False:
        return None, lambda: None
    if progress is not True:
        return progress, lambda: None
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )
    except ImportError:
        raise ConfigurationError(
            'a progress bar needs rich: pip install "anysend[cli]" (or pass a callback)'
        ) from None
    bar = Progress(
        TextColumn("sending"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[sent]} sent"),
        TimeElapsedColumn(),
        transient=False,
        console=Console(stderr=True),
    )
    total = len(items) if isinstance(items, Sized) else None
    task = bar.add_task("send", total=total, sent=0)
    bar.start()

    def update(finished: int, sent: int) -> None:
        bar.update(task, completed=finished, sent=sent)

    return update, bar.stop


class AsyncBulk:
    """``AsyncClient.send_many``: tasks on the loop, at most ``concurrency`` at once."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        via: Via,
        concurrency: int,
        progress: bool | Progress | None,
    ) -> None:
        _check(concurrency)
        self._client = client
        self._via = via
        self._concurrency = concurrency
        self._progress = progress

    async def _one(self, index: int, item: Item) -> BulkResult:
        message, to = item
        try:
            return BulkResult(index, result=await self._client.send(message, to, via=self._via))
        except AnysendError as exc:
            return BulkResult(index, error=exc)

    async def run(self, items: Iterable[Item] | AsyncIterable[Item]) -> AsyncIterator[BulkResult]:
        """Yield a result per item as each finishes."""
        update, close = _progress(self._progress, items)
        source = _aiter(items)
        pending: set[asyncio.Task[BulkResult]] = set()
        index = 0
        finished = sent = 0
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < self._concurrency:
                    try:
                        item = await source.__anext__()
                    except StopAsyncIteration:
                        exhausted = True
                        break
                    pending.add(asyncio.ensure_future(self._one(index, item)))
                    index += 1
                if not pending:
                    return
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    outcome = task.result()
                    finished += 1
                    sent += outcome.ok
                    if update is not None:
                        update(finished, sent)
                    yield outcome
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            close()


async def _aiter(items: Iterable[Item] | AsyncIterable[Item]) -> AsyncIterator[Item]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class Bulk:
    """``Client.send_many``: a thread pool, at most ``concurrency`` sends at once."""

    def __init__(
        self,
        client: Client,
        *,
        via: Via,
        concurrency: int,
        progress: bool | Progress | None,
    ) -> None:
        _check(concurrency)
        self._client = client
        self._via = via
        self._concurrency = concurrency
        self._progress = progress

    def _one(self, index: int, item: Item) -> BulkResult:
        message, to = item
        try:
            return BulkResult(index, result=self._client.send(message, to, via=self._via))
        except AnysendError as exc:
            return BulkResult(index, error=exc)

    def run(self, items: Iterable[Item]) -> Iterator[BulkResult]:
        """Yield a result per item as each finishes."""
        update, close = _progress(self._progress, items)
        source = iter(items)
        pending: set[concurrent.futures.Future[BulkResult]] = set()
        index = 0
        finished = sent = 0
        exhausted = False
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self._concurrency, thread_name_prefix="anysend-send"
        )
        try:
            while True:
                while not exhausted and len(pending) < self._concurrency:
                    try:
                        item = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    pending.add(pool.submit(self._one, index, item))
                    index += 1
                if not pending:
                    return
                done, pending_left = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED
                )
                pending = set(pending_left)
                for future in done:
                    outcome = future.result()
                    finished += 1
                    sent += outcome.ok
                    if update is not None:
                        update(finished, sent)
                    yield outcome
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            close()
