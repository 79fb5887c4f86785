"""Live viewers of a camera's own stream: `/<cam>/live.ws` (WebSocket, for the page) and
`/<cam>/live.mp4` (chunked fragmented MP4, for ffplay, VLC, curl).

Each viewer has its own queue, bounded in time and bytes. A viewer that cannot keep up (MAX_LAG
behind the camera, or VIEWER_BUDGET queued) loses what is queued and starts again at the next
keyframe; one that keeps falling behind is dropped. Either way only that viewer notices: the
camera's thread hands each event to the event loop once, for all viewers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator

from aiohttp import WSMsgType, web

from camctl.media.live_stream import Event, Fragment, Header, LiveStream, Offline
from camctl.secrets import redact
from camctl.web.hls import IDLE as HLS_IDLE
from camctl.web.hls import HlsPackager
from camctl.web.node import HLS_INIT, HLS_SEGMENT, Handler, camera_offline, send, unknown_camera

log = logging.getLogger("camctl.live")

MAX_LAG = 2.0  # seconds of video queued for one viewer before it skips to the next keyframe
VIEWER_BUDGET = 4 * 1024 * 1024  # and bytes (a 4K camera's burst)
MAX_SKIPS = 5  # skips within SKIP_WINDOW before a viewer is dropped
FIRST_PICTURE_WAIT = 5.0  # seconds live.mp4 waits for a camera that is connecting
SKIP_WINDOW = 60.0


class ViewerDropped(Exception):
    pass


class Viewer:
    def __init__(self, budget: int = VIEWER_BUDGET) -> None:
        self.budget = budget
        self._queue: collections.deque[Event] = collections.deque()
        self._bytes = 0
        self._oldest = 0.0  # when the first fragment queued came from the camera
        self._ready = asyncio.Event()
        self._last = 0  # the newest fragment's sequence number queued, to skip a repeat
        self._header: Header | None = None  # the stream being sent, to skip a repeat
        self._waiting_key = False
        self._skips: collections.deque[float] = collections.deque()
        self.dropped: str | None = None
        self.skipped = 0  # times this viewer lost its queue

    def offer(self, event: Event) -> None:
        """In the event loop: queue an event, or skip, or drop the viewer."""
        if self.dropped:
            return
        if isinstance(event, Fragment):
            if event.sequence <= self._last:
                return
            self._last = event.sequence
            if self._waiting_key and not event.key:
                return
            self._waiting_key = False
            behind = self._bytes > 0 and event.arrived - self._oldest > MAX_LAG
            if behind or self._bytes + len(event.data) > self.budget:
                self._skip()
                if self.dropped or not event.key:
                    return
            if self._bytes == 0:
                self._oldest = event.arrived
            self._bytes += len(event.data)
        elif isinstance(event, Header) and event is self._header:
            return  # the same stream again (a join racing the camera): sent once
        else:
            if isinstance(event, Header):
                self._header = event
            self._waiting_key = False
        self._queue.append(event)
        self._ready.set()

    def _skip(self) -> None:
        now = time.monotonic()
        self._queue = collections.deque(e for e in self._queue if not isinstance(e, Fragment))
        self._bytes = 0
        self._waiting_key = True
        self.skipped += 1
        self._skips.append(now)
        while self._skips and self._skips[0] < now - SKIP_WINDOW:
            self._skips.popleft()
        if len(self._skips) > MAX_SKIPS:
            self.dropped = f"too slow: fell {len(self._skips)} GOPs behind within {SKIP_WINDOW:g}s"
            self._ready.set()

    async def events(self) -> list[Event]:
        """What is queued, once there is something; raises ViewerDropped when dropped."""
        await self._ready.wait()
        if self.dropped:
            raise ViewerDropped(self.dropped)
        self._ready.clear()
        out, self._queue, self._bytes = list(self._queue), collections.deque(), 0
        return out


class ViewerLimit(Exception):
    pass


class LiveHub:
    """A camera's viewers, in the event loop. Subscribed to the stream only while someone watches."""

    def __init__(self, stream: LiveStream, loop: asyncio.AbstractEventLoop, max_viewers: int) -> None:
        self.stream = stream
        self.loop = loop
        self.max_viewers = max_viewers
        self.viewers: set[Viewer] = set()
        self.hls: HlsPackager | None = None  # while someone reads the stream's HLS playlist
        self._hls_expiry: asyncio.Task[None] | None = None

    @property
    def watching(self) -> int:
        """Viewers for the status: each live.ws/live.mp4 client, and the HLS players as one."""
        return len(self.viewers) + (1 if self.hls is not None else 0)

    def packager(self) -> HlsPackager:
        """The stream's HLS segments, packaged from now on until nobody asks for IDLE seconds."""
        if self.hls is None:
            self.hls = HlsPackager(self.stream, self.loop)
            self.hls.start()
            self._hls_expiry = self.loop.create_task(self._expire_hls(self.hls))
        self.hls.last_request = time.monotonic()
        return self.hls

    async def _expire_hls(self, packager: HlsPackager) -> None:
        try:
            while not packager.idle:
                await asyncio.sleep(HLS_IDLE / 6)  # a sweep period, not a synchronisation
        finally:
            packager.stop()
            if self.hls is packager:
                self.hls = None

    def join(self) -> Viewer:
        if len(self.viewers) >= self.max_viewers:
            raise ViewerLimit(f"{len(self.viewers)} viewers already watch this camera (http.max_viewers)")
        viewer = Viewer()
        first = self.stream.snapshot() if self.viewers else self.stream.subscribe(self._from_camera)
        self.viewers.add(viewer)
        for event in first:
            viewer.offer(event)
        return viewer

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        if not self.viewers:
            self.stream.unsubscribe(self._from_camera)

    def _from_camera(self, event: Event) -> None:
        """In the camera's thread: one hand-over to the loop per event, whatever the viewers."""
        self.loop.call_soon_threadsafe(self._dispatch, event)

    def _dispatch(self, event: Event) -> None:
        for viewer in list(self.viewers):
            viewer.offer(event)


def stream_message(header: Header) -> str:
    return json.dumps({"type": "stream", "codec": header.codec, "mime": header.mime,
                       "width": header.width, "height": header.height})  # fmt: skip


def offline_message(reason: str) -> str:
    return json.dumps({"type": "offline", "reason": redact(reason)})


def live_routes(hub_for: Callable[[str, str | None], LiveHub | None]) -> dict[str, Handler]:
    """hub_for: the hub of a camera (by id or slug) and stream (None: its live role's), None when
    the camera is unknown; it raises LookupError for a stream the camera does not have open."""

    def hub(request: web.Request) -> LiveHub:
        try:
            asked = request.match_info.get("stream") or request.query.get("stream") or None
            found = hub_for(request.match_info["cam"], asked)
        except LookupError as exc:
            raise web.HTTPNotFound(text=json.dumps({"error": str(exc)}), content_type="application/json") from None
        if found is None:
            raise unknown_camera()
        return found

    @contextlib.contextmanager
    def watching(request: web.Request) -> Iterator[tuple[LiveHub, Viewer]]:
        """The camera's hub and a new viewer of it, left on the way out; 503 when it is full."""
        camera = hub(request)
        try:
            viewer = camera.join()
        except ViewerLimit as exc:
            body = {"error": "too many viewers", "camera_id": camera.stream.camera.id, "reason": str(exc)}
            raise web.HTTPServiceUnavailable(text=json.dumps(body), content_type="application/json",
                                             headers={"Retry-After": "5"}) from None  # fmt: skip
        try:
            yield camera, viewer
        finally:
            camera.leave(viewer)

    async def live_ws(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=15.0)
        with watching(request) as (_camera, viewer):
            await ws.prepare(request)
            sender = asyncio.create_task(_send_ws(request, viewer, ws))
            try:
                async for msg in ws:  # the page sends nothing; this notices it going
                    if msg.type == WSMsgType.ERROR:
                        break
            finally:
                sender.cancel()
        return ws

    async def live_mp4(request: web.Request) -> web.StreamResponse:
        with watching(request) as (camera, viewer):
            first, reason = await _until_header(viewer, FIRST_PICTURE_WAIT)
            if not first:
                return camera_offline(camera.stream.camera.id, reason)
            response = web.StreamResponse(headers={"Content-Type": "video/mp4", "Cache-Control": "no-store"})
            await response.prepare(request)
            await _send_mp4(request, viewer, response, first)
            return response

    async def live_m3u8(request: web.Request) -> web.StreamResponse:
        camera = hub(request)
        packager = camera.packager()
        if not await packager.first_segment():
            return camera_offline(camera.stream.camera.id, packager.reason or "no picture yet")
        body = packager.playlist(f"hls/{camera.stream.camera.stream}/")
        return web.Response(text=body, content_type="application/vnd.apple.mpegurl",
                            headers={"Cache-Control": "no-cache"})  # fmt: skip

    def hls_part(request: web.Request) -> bytes | None:
        camera = hub(request)
        if camera.hls is None:
            return None
        camera.hls.last_request = time.monotonic()
        part = request.match_info
        return camera.hls.init(int(part["gen"])) if "gen" in part else camera.hls.segment(int(part["seq"]))

    async def hls_file(request: web.Request) -> web.StreamResponse:
        data = hls_part(request)
        if data is None:  # gone off the playlist, or the packaging stopped: the player reloads it
            raise web.HTTPNotFound(text='{"error": "no such segment (reload the playlist)"}',
                                   content_type="application/json")  # fmt: skip
        return web.Response(body=data, content_type="video/mp4", headers={"Cache-Control": "max-age=60"})

    return {"live.ws": live_ws, "live.mp4": live_mp4, "live.m3u8": live_m3u8,
            HLS_INIT: hls_file, HLS_SEGMENT: hls_file}  # fmt: skip


def _runs(events: list[Event]) -> list[bytes | Header | Offline]:
    """Consecutive fragments joined into one write (a viewer that was busy gets one message, not
    many); headers and offline notices stay apart."""
    out: list[bytes | Header | Offline] = []
    pending: list[bytes] = []
    for event in events:
        if isinstance(event, Fragment):
            pending.append(event.data)
            continue
        if pending:
            out.append(b"".join(pending))
            pending = []
        out.append(event)
    if pending:
        out.append(b"".join(pending))
    return out


async def _until_header(viewer: Viewer, timeout: float) -> tuple[list[Event], str]:
    """The events from the stream's header on, once it comes (a camera that is connecting or
    waiting for its first keyframe gets `timeout` seconds); else [] and why there is no picture."""
    reason = "no picture yet"
    try:
        async with asyncio.timeout(timeout):
            while True:
                events = await viewer.events()
                for at, event in enumerate(events):
                    if isinstance(event, Header):
                        return events[at:], reason
                    if isinstance(event, Offline):
                        reason = event.reason
    except (TimeoutError, ViewerDropped):
        return [], reason


async def _send_ws(request: web.Request, viewer: Viewer, ws: web.WebSocketResponse) -> None:
    try:
        while True:
            for event in _runs(await viewer.events()):
                if isinstance(event, bytes):
                    await send(request, ws.send_bytes(event))
                elif isinstance(event, Header):
                    await send(request, ws.send_str(stream_message(event)))
                    await send(request, ws.send_bytes(event.init))
                else:
                    await send(request, ws.send_str(offline_message(event.reason)))
                    if event.final:
                        await ws.close(code=1001, message=b"camera stopped here")
                        return
    except ViewerDropped as exc:
        log.warning("live viewer dropped: %s", exc)
        await ws.close(code=4000, message=str(exc)[:120].encode())
    except (ConnectionError, RuntimeError):
        await ws.close()


async def _send_mp4(request: web.Request, viewer: Viewer, response: web.StreamResponse, first: list[Event]) -> None:
    """One stream: ends when the camera goes offline or starts a new stream (a new init segment
    cannot follow in the same file); the client reconnects."""
    events, started = first, False
    try:
        while True:
            for event in _runs(events):
                if isinstance(event, Header):
                    if started:
                        return
                    started = True
                    await send(request, response.write(event.init))
                elif isinstance(event, bytes):
                    await send(request, response.write(event))
                else:
                    return
            events = await viewer.events()
    except (ConnectionError, RuntimeError, ViewerDropped):
        return
