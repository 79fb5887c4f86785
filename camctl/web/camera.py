"""A process's own cameras over HTTP: the JPEG behind each frame event, live MJPEG, and the raw
tiles a grid in another process reads.

JPEG is encoded only when asked, off the event loop, and cached per frame and settings, so any
number of analysis services can fetch the same frame for the price of one encode.
"""

from __future__ import annotations

import asyncio
import collections
import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from camctl.config import Config
from camctl.encoding.tiles import TileScaler, keepalive
from camctl.media.feeds import CameraFeeds, UnknownStream
from camctl.media.jpeg import encode_jpeg, jpeg_settings, scaled_size
from camctl.media.live import LiveCamera, LiveFrame
from camctl.web.node import Handler, NodeView, camera_offline, send, unknown_camera

STILL_WAIT = 5.0  # seconds frame.jpg waits for a picture decoded on demand


class JpegCache:
    """The latest few encodes per camera, keyed by (frame number, quality, width)."""

    def __init__(self, size: int = 32) -> None:
        self._entries: collections.OrderedDict[tuple[str, int, int, int], bytes] = collections.OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self.size = size
        self.hits = self.misses = 0

    async def get(self, cam: str, live: LiveFrame, quality: int, width: int | None) -> bytes:
        key = (cam, live.number, quality, width or 0)
        cached = self._entries.get(key)
        if cached is not None:
            self.hits += 1
            return cached
        # One encode at a time per camera: ten clients asking for the same new frame wait for the
        # first one's encode instead of each encoding it.
        async with self._locks.setdefault(cam, asyncio.Lock()):
            cached = self._entries.get(key)
            if cached is not None:
                self.hits += 1
                return cached
            self.misses += 1
            jpeg = await asyncio.get_running_loop().run_in_executor(None, encode_jpeg, live.frame, quality, width)
        self._entries[key] = jpeg
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return jpeg


def camera_routes(cameras: dict[str, CameraFeeds], cache: JpegCache) -> dict[str, Handler]:
    """The per-camera routes; cameras: by id and by slug. `?stream=main` picks a stream; without
    it, stills and MJPEG show the analysis stream (what frame events describe), tiles the grid's."""

    def camera(request: web.Request, role: str = "analysis") -> LiveCamera:
        feeds = cameras.get(request.match_info["cam"])
        if feeds is None:
            raise unknown_camera()
        try:
            return feeds.picture(request.query.get("stream") or None, role)
        except UnknownStream as exc:
            raise web.HTTPNotFound(text=json.dumps({"error": str(exc)}), content_type="application/json") from None

    def offline(cam: LiveCamera) -> web.Response:
        return camera_offline(cam.camera.id, cam.error)

    def settings(request: web.Request) -> tuple[int, int | None]:
        try:
            return jpeg_settings(request.query.get("quality"), request.query.get("width"))
        except ValueError as exc:
            raise web.HTTPBadRequest(text=json.dumps({"error": str(exc)}), content_type="application/json") from None

    async def frame_jpg(request: web.Request) -> web.StreamResponse:
        cam = camera(request)
        quality, width = settings(request)
        # A stream named (camctl snapshot asks so): a picture of now; none (an event's url): the
        # analysed picture, which with keyframe-only analysis is the latest keyframe.
        live = await cam.still(STILL_WAIT, fresh="stream" in request.query)
        if live is None:
            return offline(cam)
        jpeg = await cache.get(cam.camera.label, live, quality, width)
        return web.Response(
            body=jpeg,
            content_type="image/jpeg",
            headers={
                "X-Frame-Number": str(live.number),
                "X-Frame-Timestamp": f"{live.timestamp:.6f}",
                "X-Camera-Id": cam.camera.id,
                "X-Camera-Stream": cam.stream,
                "X-Camera-Url": cam.camera.display_url,  # lets a client check it is its camera (masked)
                "X-Image-Size": "{}x{}".format(*scaled_size(live.frame.width, live.frame.height, width)),
                "Cache-Control": "no-store",
            },
        )

    async def stream_mjpeg(request: web.Request) -> web.StreamResponse:
        cam = camera(request)
        quality, width = settings(request)
        if not cam.online:
            return offline(cam)
        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame",
                                               "Cache-Control": "no-store"})  # fmt: skip
        await response.prepare(request)
        number = 0
        with cam.watched():  # every picture decoded while someone watches them
            while True:
                live = await cam.newer(number, 5.0)
                if live is None:
                    if not cam.online:
                        break
                    continue
                number = live.number
                jpeg = await cache.get(cam.camera.label, live, quality, width)
                head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                try:
                    await send(request, response.write(head + jpeg + b"\r\n"))
                except (ConnectionError, RuntimeError):
                    break
        return response

    async def tiles_yuv(request: web.Request) -> web.StreamResponse:
        """Newest frames scaled into a grid tile, raw: what a grid in another process reads."""
        cam = camera(request, "grid")
        try:
            width, height = int(request.query["width"]), int(request.query["height"])
            if not (16 <= width <= 3840 and 16 <= height <= 2160):  # a tile of a 4K grid at most
                raise ValueError
            scaler = TileScaler(width, height)
        except (KeyError, ValueError):
            raise web.HTTPBadRequest(text='{"error": "width 16-3840, height 16-2160"}',
                                     content_type="application/json") from None  # fmt: skip
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        loop = asyncio.get_running_loop()
        number = 0
        try:
            with cam.watched():
                while True:
                    live = await cam.newer(number, 1.0)
                    if live is None or not cam.online:
                        await send(request, response.write(keepalive(cam.online)))
                        continue
                    number = live.number
                    tile = await loop.run_in_executor(None, scaler.record, number, live.timestamp, live.frame)
                    await send(request, response.write(tile))
        except (ConnectionError, RuntimeError):
            pass
        return response

    return {"frame.jpg": frame_jpg, "stream.mjpeg": stream_mjpeg, "tiles.yuv": tiles_yuv}


def local_view(
    cameras: dict[str, CameraFeeds],
    status: Callable[[], list[dict[str, Any]]],
    metrics: Callable[[], str],
    nats: Callable[[], dict[str, Any] | None],
    config: Callable[[], Config],
) -> NodeView:
    """What /status, /healthz and /metrics answer for this process's own cameras."""

    async def statuses() -> list[dict[str, Any]]:
        return status()

    async def metrics_text() -> str:
        return metrics()

    def health() -> dict[str, Any]:
        unique = set(cameras.values())
        return {"ok": True, "cameras": len(unique), "online": sum(1 for c in unique if c.online)}

    return NodeView(statuses, health, metrics_text, nats, config)
