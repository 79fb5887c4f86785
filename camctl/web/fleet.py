"""Every camctl node on the NATS bus, for the page's header: who they are, where their page is,
how many of their cameras are up, and which stopped answering.

A status request (`seguranca.camera.status.get`) is answered by every node (under run-all, by each
camera's worker and by the supervisor for workers being restarted), each reply naming its node and
its `http.public_url`. A node that answered before and no longer does is listed as unreachable,
with when it was last heard, never silently dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from camctl.bus.client import Bus
from camctl.bus.subjects import STATUS_REQUEST_SUBJECT
from camctl.config import Config
from camctl.units import iso_time

WAIT = 0.5  # seconds the replies are gathered
FRESH = 2.0  # an answer this recent is served again: pages poll, and each ask costs every node a reply
FORGET = 86400.0  # a node unheard of for this long leaves the list


class Fleet:
    def __init__(self, bus: Callable[[], Bus | None], config: Callable[[], Config]) -> None:
        self._bus = bus
        self._config = config
        self._seen: dict[str, dict[str, Any]] = {}  # node -> its last answer, and when
        self._answer: tuple[float, list[dict[str, Any]]] | None = None  # (monotonic time, nodes)
        self._lock = asyncio.Lock()  # callers at once share one ask

    async def nodes(self) -> list[dict[str, Any]]:
        async with self._lock:
            if self._answer is not None and time.monotonic() - self._answer[0] < FRESH:
                return self._answer[1]
            listed = await self._gather()
            self._answer = (time.monotonic(), listed)
            return listed

    async def _gather(self) -> list[dict[str, Any]]:
        config = self._config()
        replies = await self._ask()
        now = time.time()
        heard: dict[str, dict[str, Any]] = {}
        for reply in replies:
            node = str(reply.get("node") or "?")
            entry = heard.setdefault(node, {"node": node, "url": reply.get("url"), "cameras": {}})
            entry["url"] = entry["url"] or reply.get("url")
            for camera in reply.get("cameras") or []:
                if isinstance(camera, dict) and "camera_id" in camera:
                    entry["cameras"][camera["camera_id"]] = bool(camera.get("online"))
        if config.node not in heard:  # NATS down, or not yet answered: this node is still here
            heard[config.node] = {"node": config.node, "url": config.http.public_url, "cameras": {}}
        for node, entry in heard.items():
            self._seen[node] = {**entry, "last_seen": now}
        self._seen = {n: e for n, e in self._seen.items() if now - e["last_seen"] < FORGET}
        listed = []
        for node, entry in sorted(self._seen.items()):
            cameras = entry["cameras"]
            listed.append({
                "node": node,
                "url": entry["url"],
                "self": node == config.node,
                "reachable": node in heard,
                "last_seen": iso_time(entry["last_seen"]),
                "cameras": len(cameras),
                "online": sum(cameras.values()),
            })  # fmt: skip
        return listed

    async def _ask(self) -> list[dict[str, Any]]:
        bus = self._bus()
        nc = bus.nc if bus is not None else None
        if nc is None or not nc.is_connected:
            return []
        replies: list[dict[str, Any]] = []

        async def collect(msg: Any) -> None:
            with contextlib.suppress(ValueError, UnicodeDecodeError):
                body = json.loads(msg.data)
                if isinstance(body, dict):
                    replies.append(body)

        inbox = nc.new_inbox()
        subscription = await nc.subscribe(inbox, cb=collect)
        try:
            await nc.publish(STATUS_REQUEST_SUBJECT, b"", reply=inbox)
            await asyncio.sleep(WAIT)  # replies come from nodes we do not know of: no count to await
        finally:
            await subscription.unsubscribe()
        return replies

    async def handler(self, _request: web.Request) -> web.Response:
        return web.json_response({"nodes": await self.nodes()})
