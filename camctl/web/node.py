"""The app and the routes every camctl HTTP server has: `/status`, `/healthz`, `/metrics`, and
the per-camera routes `/<cam>/<name>` (cam: the camera's id or slug). What they answer comes from
a `NodeView`: a single process's own cameras, or run-all's front gathering its workers'."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from camctl.secrets import redact

CAM = r"{cam:[A-Za-z0-9][A-Za-z0-9_-]{0,63}}"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class NodeView:
    cameras: Callable[[], Awaitable[list[dict[str, Any]]]]  # status payloads, one per camera
    health: Callable[[], dict[str, Any]]
    metrics: Callable[[], Awaitable[str]]  # Prometheus text
    nats: Callable[[], dict[str, Any] | None]  # the bus's state


def build_app(view: NodeView, camera_routes: Mapping[str, Handler]) -> web.Application:
    """camera_routes: name -> handler, served at /<cam>/<name>."""
    app = web.Application()

    async def status(_request: web.Request) -> web.Response:
        body = {"time": time.time(), "cameras": await view.cameras(), "nats": view.nats()}
        return web.json_response(redact.data(body))  # an error text must never carry a password

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response(view.health())

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(text=await view.metrics(), content_type="text/plain", charset="utf-8")

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    for name, handler in camera_routes.items():
        app.router.add_get(f"/{CAM}/{name}", handler)
    return app


def unknown_camera() -> web.HTTPNotFound:
    return web.HTTPNotFound(text='{"error": "unknown camera"}', content_type="application/json")


def camera_offline(camera_id: str, reason: str | None) -> web.Response:
    body = {"error": "camera offline", "camera_id": camera_id, "reason": reason}
    return web.json_response(redact.data(body), status=503, headers={"Retry-After": "1"})
