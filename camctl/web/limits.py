"""How many requests the HTTP front serves at once, in all and per client address.

Streams (MJPEG, live video, events) hold their request for as long as they play: without a bound,
one client opening hundreds of them takes the box's memory and the workers' connections. Past a
limit the front answers 503 with Retry-After at once (as mediamtx does), so the client learns
why, and everybody else is still served. `/healthz` is never counted nor refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from camctl.lifecycle import return_freed_memory

log = logging.getLogger("camctl.http")

OPEN_PATHS = frozenset({"/healthz"})
LOG_EVERY = 60.0  # seconds between two warnings about the same limit
STREAM = 1.0  # a request that lasted this long was a stream: its buffers are worth giving back
TRIM_AFTER = 1.0  # seconds after a stream ends (others ending meanwhile wait for the same trim)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ConnectionLimits:
    def __init__(self, total: int, per_client: int) -> None:
        self.total = total
        self.per_client = per_client
        self.open = 0
        self.refused = 0
        self._by_client: dict[str, int] = {}
        self._logged: dict[str, float] = {}
        self._trim: asyncio.TimerHandle | None = None

    def in_use(self, address: str) -> int:
        return self._by_client.get(address, 0)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in OPEN_PATHS:
            return await handler(request)
        address = request.remote or "?"
        mine = self._by_client.get(address, 0)
        if self.open >= self.total:
            return self._refuse("total", f"{self.open} requests in progress (http.max_connections)")
        if mine >= self.per_client:
            return self._refuse(
                address, f"{mine} requests in progress from {address} (http.max_connections_per_client)"
            )
        self.open += 1
        self._by_client[address] = mine + 1
        began = time.monotonic()
        try:
            return await handler(request)
        finally:
            self.open -= 1
            left = self._by_client[address] - 1
            if left:
                self._by_client[address] = left
            else:
                del self._by_client[address]  # the map holds the clients connected now, no more
            if time.monotonic() - began >= STREAM:
                self._trim_soon()

    def _trim_soon(self) -> None:
        """Hundreds of streams ending leave their buffers free but the process at its peak size."""
        if self._trim is None:
            loop = asyncio.get_running_loop()
            self._trim = loop.call_later(TRIM_AFTER, self._trimmed)

    def _trimmed(self) -> None:
        self._trim = None
        return_freed_memory()

    def _refuse(self, which: str, why: str) -> web.Response:
        self.refused += 1
        now = time.monotonic()
        if now - self._logged.get(which, -LOG_EVERY) >= LOG_EVERY:
            if len(self._logged) > 1024:
                self._logged.clear()
            self._logged[which] = now
            log.warning("HTTP request refused: %s", why)
        return web.json_response({"error": "too many connections", "detail": why}, status=503,
                                 headers={"Retry-After": "5"})  # fmt: skip
