"""Upstream calls in flight per account (limits.md §4): an account at its bound waits for one of
its own calls to end, up to the connect timeout, and never takes the room other accounts need."""

from __future__ import annotations

import asyncio
import collections

from app.upstream.errors import UpstreamTimeout


class _Account:
    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()


class AccountSlots:
    def __init__(self, per_account: int, wait_s: float) -> None:
        self._limit = per_account
        self._wait = wait_s
        self._accounts: dict[str, _Account] = {}

    async def acquire(self, account: str) -> None:
        state = self._accounts.get(account)
        if state is None:
            state = self._accounts[account] = _Account()
        if state.busy < self._limit and not state.waiters:
            state.busy += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        try:
            async with asyncio.timeout(self._wait):
                await waiter  # the slot is handed over by `release`, already counted
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():
                self.release(account)  # handed a slot just as we gave up: pass it on
            if isinstance(exc, TimeoutError):
                raise UpstreamTimeout("AIGW_MAX_UPSTREAM_CONNECTIONS_PER_ACCOUNT reached") from None
            raise
        finally:
            if waiter in state.waiters:
                state.waiters.remove(waiter)

    def release(self, account: str) -> None:
        state = self._accounts.get(account)
        if state is None:
            return
        while state.waiters:
            waiter = state.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes to the waiter as it is
                return
        state.busy -= 1
        if state.busy <= 0:
            del self._accounts[account]

    def busy(self, account: str) -> int:
        state = self._accounts.get(account)
        return 0 if state is None else state.busy
