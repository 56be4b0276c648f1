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
import contextlib
import enum
from collections import deque
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
    """``AsyncClient.send_many``: ``concurrency`` workers on the loop, results as they finish.

    Each worker takes the next item, sends it, hands the result over and takes another, so an
    item costs no task of its own and no wait over every pending send. A worker takes an item
    only with a ticket, given back once the item's result has been yielded: at most
    ``concurrency`` items are in flight or waiting to be yielded, however slowly the results
    are read.
    """

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

    async def run(self, items: Iterable[Item] | AsyncIterable[Item]) -> AsyncIterator[BulkResult]:
        """Yield a result per item as each finishes."""
        update, close = _progress(self._progress, items)
        feed = _Feed(items, self._concurrency)
        count = self._concurrency
        if isinstance(items, Sized):
            count = max(1, min(count, len(items)))
        send, via = self._client.send, self._via

        async def work() -> None:
            try:
                while True:
                    taken = feed.take_now()
                    if taken is LATER:
                        taken = await feed.take()
                    if taken is None:
                        return
                    index, (message, to) = taken
                    try:
                        outcome = BulkResult(index, result=await send(message, to, via=via))
                    except AnysendError as exc:
                        outcome = BulkResult(index, error=exc)
                    feed.put(outcome)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # from the items, or a bug: the caller hears of it
                feed.fail(exc)
            finally:
                feed.leave()

        end_reservation = self._client._reserve(self._concurrency)
        workers = [asyncio.ensure_future(work()) for _ in range(count)]
        feed.workers = len(workers)
        finished = sent = 0
        try:
            while True:
                outcome = await feed.get()
                if outcome is None:
                    return
                finished += 1
                sent += outcome.ok
                if update is not None:
                    update(finished, sent)
                yield outcome
                feed.give_back()
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            end_reservation()
            close()


class _Later(enum.Enum):
    LATER = "later"


LATER = _Later.LATER


class _Feed:
    """What ``AsyncBulk``'s workers share: the items, the tickets and the finished results.

    A sync iterable and a free ticket (the usual case) make :meth:`take_now` enough: no
    coroutine, no future. Waiting for a ticket, or for an async iterable, goes through
    :meth:`take`.
    """

    def __init__(self, items: Iterable[Item] | AsyncIterable[Item], concurrency: int) -> None:
        self._sync: Iterator[Item] | None = None
        self._async: AsyncIterator[Item] | None = None
        self._lock: asyncio.Lock | None = None
        if isinstance(items, AsyncIterable):
            self._async = aiter(items)
            self._lock = asyncio.Lock()  # an async generator takes one __anext__ at a time
        else:
            self._sync = iter(items)
        self._index = 0
        self._exhausted = False
        self._tickets = concurrency
        self._ticket_waiters: deque[asyncio.Future[None]] = deque()
        self.workers = 0
        self._done: deque[BulkResult] = deque()
        self._failure: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def take_now(self) -> tuple[int, Item] | _Later | None:
        """The next item and its index; ``None`` when there are none; ``LATER``: :meth:`take`."""
        if self._sync is None or not self._tickets or self._ticket_waiters:
            return LATER
        if self._exhausted:
            return None
        try:
            item = next(self._sync)
        except StopIteration:
            self._exhausted = True
            return None
        self._tickets -= 1
        index = self._index
        self._index += 1
        return index, item

    async def take(self) -> tuple[int, Item] | None:
        """The next item and its index, once a ticket is free; ``None`` when there are none."""
        if not self._tickets or self._ticket_waiters:
            waiter = asyncio.get_running_loop().create_future()
            self._ticket_waiters.append(waiter)
            try:
                await waiter  # a ticket handed over by give_back()
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self.give_back()  # handed one just as the wait was canceled: pass it on
                else:
                    with contextlib.suppress(ValueError):
                        self._ticket_waiters.remove(waiter)
                raise
        else:
            self._tickets -= 1
        item = await self._next()
        if item is None:
            self.give_back()
            return None
        index = self._index
        self._index += 1
        return index, item

    def give_back(self) -> None:
        """A ticket is free again (its item's result was yielded): to the longest waiter."""
        waiters = self._ticket_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._tickets += 1

    async def _next(self) -> Item | None:
        if self._sync is not None:
            if self._exhausted:
                return None
            try:
                return next(self._sync)
            except StopIteration:
                self._exhausted = True
                return None
        assert self._async is not None
        assert self._lock is not None
        async with self._lock:
            if self._exhausted:
                return None
            try:
                return await anext(self._async)
            except StopAsyncIteration:
                self._exhausted = True
                return None

    def put(self, outcome: BulkResult) -> None:
        self._done.append(outcome)
        self._wake()

    def fail(self, exc: BaseException) -> None:
        """A worker failed outside an item's send (the items themselves, or a bug)."""
        if self._failure is None:
            self._failure = exc
        self._exhausted = True
        self._wake()

    def leave(self) -> None:
        self.workers -= 1
        if not self.workers:
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self) -> BulkResult | None:
        """The next finished result; ``None`` once every item is done. Re-raises a failure."""
        while True:
            if self._failure is not None:
                raise self._failure
            if self._done:
                return self._done.popleft()
            if not self.workers:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


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
