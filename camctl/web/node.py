"""The app and the routes every camctl HTTP server has: the page (`/`, `/static/`), `/status`,
`/healthz`, `/metrics`, `/api/cameras`, `/api/events` (status as server-sent events), and the
per-camera routes `/<cam>/<name>` (cam: the camera's id or slug). What they answer comes from a
`NodeView`: a single process's own cameras, or run-all's front gathering its workers'."""

from __future__ import annotations

import asyncio
import json
import mimetypes
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from camctl.config import Config
from camctl.secrets import redact
from camctl.web.auth import Gate
from camctl.web.limits import ConnectionLimits

STATIC = Path(__file__).resolve().parent / "static"
mimetypes.add_type("application/manifest+json", ".webmanifest")  # the page installs as an app
EVENTS_PERIOD = 1.0  # seconds between status updates to the page
STALLED_WRITE = 5.0  # a stream's write that waits longer: the client is gone or hopeless, let it go


async def send(request: web.Request, write: Awaitable[None]) -> None:
    """One write of an endless stream (live video, MJPEG, events): a client that stops reading
    blocks it for good, and with it the handler, its upstream and a clean shutdown. After
    STALLED_WRITE seconds the connection is dropped (ConnectionResetError)."""
    try:
        async with asyncio.timeout(STALLED_WRITE):
            await write
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError("the client stopped reading") from None


CAM = r"{cam:[A-Za-z0-9][A-Za-z0-9_-]{0,63}}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# HLS parts of a camera's stream (camctl.web.hls), the stream in the path: players pick a part's
# format by its extension, which a query string would hide
HLS_INIT = r"hls/{stream:[a-z][a-z0-9_]{0,15}}/init-{gen:[0-9]{1,9}}.mp4"
HLS_SEGMENT = r"hls/{stream:[a-z][a-z0-9_]{0,15}}/{seq:[0-9]{1,12}}.mp4"


@dataclass(frozen=True)
class NodeView:
    cameras: Callable[[], Awaitable[list[dict[str, Any]]]]  # status payloads, one per camera
    health: Callable[[], dict[str, Any]]
    metrics: Callable[[], Awaitable[str]]  # Prometheus text
    nats: Callable[[], dict[str, Any] | None]  # the bus's state
    config: Callable[[], Config]  # the current one (SIGHUP may change it)
    extra: Callable[[], dict[str, Any]] = dict  # more top-level /status keys (run-all: its grid)


def camera_list(config: Config) -> list[dict[str, Any]]:
    """What the page needs to lay out its tiles, in the config's order."""
    return [
        {"camera_id": c.id, "name": c.name or c.id, "slug": c.slug, "live": c.roles.live,
         "main": "main" if "main" in c.roles.used() else c.roles.live}  # what a chosen camera plays
        for c in config.select(None)
    ]  # fmt: skip


def build_app(
    view: NodeView,
    camera_routes: Mapping[str, Handler],
    gate: Gate | None = None,
    limits: ConnectionLimits | None = None,
    routes: Sequence[tuple[str, Handler]] = (),
    posts: Sequence[tuple[str, Handler]] = (),
) -> web.Application:
    """camera_routes: name -> handler, served at /<cam>/<name>; gate: who may use it (None: anyone,
    for loopback-only servers and run-all's workers behind their private sockets); limits: how
    many requests at once (None: unbounded, for workers, which only their front talks to);
    routes: more (path, handler), `{cam}` in a path standing for a camera's id or slug; posts: the
    same for POST."""
    guards = [m.middleware for m in (limits, gate) if m is not None]  # limits first: they bound failed logins too
    app = web.Application(middlewares=guards)

    async def status(_request: web.Request) -> web.Response:
        body = {"time": time.time(), "cameras": await view.cameras(), "nats": view.nats(), **view.extra()}
        return web.json_response(redact.data(body))  # an error text must never carry a password

    async def healthz(_request: web.Request) -> web.Response:
        health = view.health()
        return web.json_response(health, status=200 if health.get("ok") else 503)

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=await view.metrics(), content_type="text/plain", charset="utf-8")

    async def cameras(_request: web.Request) -> web.Response:
        config = view.config()
        return web.json_response({"node": config.node, "cameras": camera_list(config)})

    latest: dict[str, Any] = {"at": 0.0, "text": ""}

    async def status_text() -> str:
        """One gathering per period for every page open: ten pages cost the workers one query."""
        if time.monotonic() - latest["at"] >= EVENTS_PERIOD / 2:
            body = {"time": time.time(), "cameras": await view.cameras(), "nats": view.nats()}
            latest["text"], latest["at"] = json.dumps(redact.data(body)), time.monotonic()
        return str(latest["text"])

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        try:
            while True:
                await send(request, response.write(f"data: {await status_text()}\n\n".encode()))
                await asyncio.sleep(EVENTS_PERIOD)  # the page's refresh period, not a synchronisation
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def page(_request: web.Request) -> web.FileResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.router.add_get("/", page)
    app.router.add_get(f"/{CAM}/", page)  # one camera's page (?t=<time>: its footage from then)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/cameras", cameras)
    app.router.add_get("/api/events", events)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    for path, handler in routes:
        app.router.add_get(path.replace("{cam}", CAM), handler)
    for path, handler in posts:  # behind the same gate and limits
        app.router.add_post(path.replace("{cam}", CAM), handler)
    for name, handler in camera_routes.items():
        app.router.add_get(f"/{CAM}/{name}", handler)
    return app


def unknown_camera() -> web.HTTPNotFound:
    return web.HTTPNotFound(text='{"error": "unknown camera"}', content_type="application/json")


def camera_offline(camera_id: str, reason: str | None) -> web.Response:
    body = {"error": "camera offline", "camera_id": camera_id, "reason": reason}
    return web.json_response(redact.data(body), status=503, headers={"Retry-After": "1"})
