"""Recorded footage over HTTP: what is recorded when, and the footage of a time range.

`GET /api/recordings/<cam>?start=&end=` lists spans of continuous footage and the gaps between
them (with their reasons), from the camera's in-memory index. `GET /<cam>/recording.mp4?start=&
duration=` is the footage from the keyframe at or before `start`, by stream copy, as a fast-start
MP4 served with Content-Length and HTTP Range (a browser's or VLC's seek bar works). A range is
cut once into a small cache on the recordings' disk, so the Range requests of one playback reuse
it. Times are RFC 3339 (or `-10m`, `now`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, NoReturn
from urllib.parse import quote, urlencode

import av.error
from aiohttp import web

from camctl.config import Config
from camctl.config.camera import CAMERA_ID
from camctl.errors import NoFootage, StorageError
from camctl.recording.clip import ClipResult, export_clip, stream_clip
from camctl.recording.copies import footage_copy
from camctl.recording.footage import FootageIndex, spans_of
from camctl.recording.journal import JOURNAL_NAME
from camctl.recording.marks import read_marks
from camctl.recording.motion_log import read_motion
from camctl.units import iso_time, parse_duration, parse_time
from camctl.web.node import Handler, send

DEFAULT_LIST = 86400.0  # the last day, when no start is given
DEFAULT_CLIP = 60.0  # seconds of footage when no duration is given
CACHE_FOLDER = ".clips"  # under the storage root: same disk as the footage, skipped by its scans
CACHE_KEEP = 8  # cut ranges kept for reuse
CACHE_AGE = 600.0  # seconds a cut range is kept after its last use
STREAM_QUEUE = 32  # chunks of a streamed range held for a slow client before reading waits


class FootageCamera(NamedTuple):
    id: str  # its recordings folder: the camera's id, or cam_1.sub for a recorded sub stream
    slug: str
    stream: str = "main"

    @property
    def camera_id(self) -> str:
        return self.id.partition(".")[0]

    @property
    def query(self) -> str:
        """What a URL of this footage adds to say its stream."""
        return "" if self.stream == "main" else f"&stream={self.stream}"


def cameras_on_disk(root: Path) -> set[str]:
    """The camera folders under the storage root that hold a recording journal."""
    try:
        return {d.name for d in root.iterdir() if (d / JOURNAL_NAME).is_file()}
    except OSError:
        return set()


class FootageRoutes:
    def __init__(self, config: Callable[[], Config]) -> None:
        self._config = config
        self._indexes: dict[tuple[Path, str], FootageIndex] = {}
        self._cutting: dict[str, asyncio.Lock] = {}

    def index(self, camera: FootageCamera) -> FootageIndex:
        root = self._config().storage.root
        key = (root, camera.id)
        if key not in self._indexes:
            self._indexes[key] = FootageIndex(root, camera.id, footage_copy(root, self._config().offsite))
        return self._indexes[key]

    def camera(self, request: web.Request) -> FootageCamera:
        """A configured camera by id or slug, or one removed from the config whose footage is still
        on disk (by its id, the folder's name): footage stays reachable until retention prunes it.
        `?stream=sub`: that stream's recordings (default main)."""
        name, stream = request.match_info["cam"], request.query.get("stream") or "main"
        config = self._config()
        for camera in config.cameras.values():
            if name in (camera.id, camera.slug):
                try:
                    return FootageCamera(camera.footage_of(stream), camera.slug, stream)
                except ValueError as exc:
                    body = json.dumps({"error": str(exc)})
                    raise web.HTTPNotFound(text=body, content_type="application/json") from None
        folder = name if stream == "main" else f"{name}.{stream}"
        if CAMERA_ID.fullmatch(name) and folder in cameras_on_disk(config.storage.root):
            return FootageCamera(folder, name, stream)
        raise web.HTTPNotFound(text='{"error": "unknown camera"}', content_type="application/json")

    async def cameras(self, _request: web.Request) -> web.Response:
        """Every camera with footage on disk, configured or not (a camera removed from the config
        keeps its footage until retention prunes it)."""
        config = self._config()
        on_disk = await asyncio.get_running_loop().run_in_executor(None, cameras_on_disk, config.storage.root)
        configured = {c.id: c for c in config.cameras.values()}
        listed = []
        for folder in sorted(on_disk | set(configured)):
            cam, _, stream = folder.partition(".")  # cam_1.sub: the sub stream of cam_1
            known = configured.get(cam)
            link = f"/api/recordings/{known.slug if known else cam}" + (f"?stream={stream}" if stream else "")
            listed.append({"camera_id": cam, "stream": stream or "main", "configured": known is not None,
                           "recordings": link})  # fmt: skip
        return web.json_response({"cameras": listed})

    async def recordings(self, request: web.Request) -> web.Response:
        camera = self.camera(request)
        now = time.time()
        start = _time(request, "start", now - DEFAULT_LIST, now)
        end = _time(request, "end", now, now)
        if end <= start:
            _bad("end must be after start")
        window = await asyncio.get_running_loop().run_in_executor(None, self.index(camera).window, start, end)
        cap = self._config().http.max_clip
        spans = []
        for span in spans_of(window.segments):
            shown = dict(span.to_json())
            query = {"start": iso_time(span.start), "duration": f"{min(span.end - span.start, cap):.3f}"}
            shown["url"] = f"/{camera.slug}/recording.mp4?{urlencode(query)}{camera.query}"
            spans.append(shown)
        body = {
            "camera_id": camera.camera_id,
            "stream": camera.stream,
            "start": iso_time(start),
            "end": iso_time(end),
            "spans": spans,
            "gaps": [g.to_report() for g in window.gaps],
            "recorded_seconds": round(sum(s.duration for s in window.segments), 3),
            # where something moved (camctl motion on this box), for the timeline
            "motion": [
                {"start": iso_time(m["start"]), "end": iso_time(m["end"]), "score": m["score"]}
                for m in read_motion(self._config().storage.root, camera.camera_id, start, end)
            ],
            # what someone marked (NATS, camctl mark, POST /api/marks), each a link to its moment
            "marks": [
                {
                    "start": iso_time(m["start"]),
                    "end": iso_time(m["end"]),
                    "label": m["label"],
                    "source": m["source"],
                    "link": f"/{camera.slug}/?t={quote(iso_time(m['start']))}",
                }
                for m in read_marks(self._config().storage.root, camera.camera_id, start, end)
            ],
        }
        return web.json_response(body)

    async def recording_mp4(self, request: web.Request) -> web.StreamResponse:
        camera = self.camera(request)
        now = time.time()
        if "start" not in request.query:
            _bad("start is required (RFC 3339, like 2026-12-01T03:12:00Z)")
        start = _time(request, "start", now, now)
        try:
            duration = parse_duration(request.query.get("duration", str(DEFAULT_CLIP)))
        except ValueError as exc:
            _bad(f"duration: {exc}")
        cap = self._config().http.max_clip
        if not 0 < duration <= cap:
            _bad(f"duration must be more than 0 and at most {cap:g}s (http.max_clip)")
        index = self.index(camera)
        loop = asyncio.get_running_loop()
        form = request.query.get("format", "mp4")
        if form not in ("mp4", "fmp4"):
            _bad("format: mp4 (seekable, the default) or fmp4 (streamed as it is cut)")
        if form == "fmp4":
            return await self._stream(request, camera, index, start, start + duration)
        try:
            clip = await self._cut(index, camera.id, start, start + duration, loop)
        except NoFootage as exc:
            raise await _no_footage(index, start, exc) from None
        except StorageError as exc:
            raise _cannot_cut(exc) from None
        name = f"{camera.id}_{_stamp(clip.start)}.mp4"
        disposition = "attachment" if request.query.get("download") else "inline"
        headers = {
            "X-Footage-From": "copy" if clip.from_copy else "disk",  # copy: this disk lost it, fetched from copy.to
            "X-Footage-Start": iso_time(clip.start),  # the first frame's capture time: a keyframe at or before start
            "X-Footage-End": iso_time(clip.end),
            "X-Footage-Frames": str(clip.frames),
            "Content-Disposition": f'{disposition}; filename="{name}"',
            "Cache-Control": "private, max-age=60",
        }
        return web.FileResponse(clip.path, headers=headers)

    async def _stream(
        self, request: web.Request, camera: FootageCamera, index: FootageIndex, start: float, end: float
    ) -> web.StreamResponse:
        """format=fmp4: fragments go out as the range is read, the first within a GOP's reading."""
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=STREAM_QUEUE)
        first: asyncio.Future[float] = loop.create_future()
        gone = threading.Event()  # the client left: the reading thread stops at its next write

        def started(t: float) -> None:
            loop.call_soon_threadsafe(_settle, first, t, None)

        def cut() -> None:
            try:
                stream_clip(index.window(start, end), start, end, _QueueSink(chunks, loop, gone), started)
            except (NoFootage, StorageError) as exc:
                loop.call_soon_threadsafe(_settle, first, None, exc)
            except (OSError, av.error.FFmpegError):  # the client left mid-stream
                pass
            finally:  # whatever happened, the handler is not left waiting
                loop.call_soon_threadsafe(_settle, first, None, StorageError("the footage could not be read"))
                if not gone.is_set():
                    asyncio.run_coroutine_threadsafe(chunks.put(None), loop).result()

        reading = loop.run_in_executor(None, cut)
        response: web.StreamResponse | None = None
        try:
            try:
                first_t = await first
            except NoFootage as exc:
                raise await _no_footage(index, start, exc) from None
            except StorageError as exc:
                raise _cannot_cut(exc) from None
            response = web.StreamResponse(headers={
                "Content-Type": "video/mp4", "X-Footage-Start": iso_time(first_t), "Cache-Control": "no-store",
                "Content-Disposition": f'inline; filename="{camera.id}_{_stamp(first_t)}.mp4"',
            })  # fmt: skip
            await response.prepare(request)
            while (chunk := await chunks.get()) is not None:
                await send(request, response.write(chunk))
            await response.write_eof()
            return response
        except (ConnectionError, RuntimeError):  # the client left
            return response if response is not None else web.Response(status=499)
        finally:
            gone.set()
            while not reading.done():  # a write waiting for room gets it, then stops
                with contextlib.suppress(asyncio.QueueEmpty):
                    chunks.get_nowait()
                await asyncio.wait({reading}, timeout=0.05)

    async def _cut(
        self, index: FootageIndex, camera_id: str, start: float, end: float, loop: asyncio.AbstractEventLoop
    ) -> ClipResult:
        """The range cut once (a playback's Range requests reuse it); kept a while in the cache."""
        folder = self._config().storage.root / CACHE_FOLDER
        key = hashlib.sha256(f"{camera_id}|{start:.3f}|{end:.3f}".encode()).hexdigest()[:24]
        path = folder / f"{key}.mp4"
        meta = folder / f"{key}.json"
        async with self._cutting.setdefault(key, asyncio.Lock()):
            cached = _cached(path, meta)
            if cached is not None:
                return cached

            def cut() -> ClipResult:
                folder.mkdir(mode=0o750, exist_ok=True)
                _trim_cache(folder)
                window = index.window(start, end)
                clip = export_clip(window, start, end, path)
                meta.write_text(json.dumps({"start": clip.start, "end": clip.end, "frames": clip.frames,
                                            "from_copy": clip.from_copy}))  # fmt: skip
                return clip

            try:
                return await loop.run_in_executor(None, cut)
            finally:
                self._cutting.pop(key, None)

    def routes(self) -> tuple[dict[str, Handler], list[tuple[str, Handler]]]:
        """(per-camera routes, other routes) for build_app."""
        return {"recording.mp4": self.recording_mp4}, [
            ("/api/recordings", self.cameras),
            ("/api/recordings/{cam}", self.recordings),
        ]


class _QueueSink(io.RawIOBase):
    """What PyAV writes the streamed MP4 to: each write waits for room in the handler's queue."""

    def __init__(self, chunks: asyncio.Queue[bytes | None], loop: asyncio.AbstractEventLoop, gone: threading.Event):
        super().__init__()
        self._chunks, self._loop, self._gone = chunks, loop, gone

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self._gone.is_set():
            raise BrokenPipeError("the client left")
        asyncio.run_coroutine_threadsafe(self._chunks.put(bytes(data)), self._loop).result()
        return len(data)


def _settle(future: asyncio.Future[float], value: float | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    elif value is not None:
        future.set_result(value)


async def _no_footage(index: FootageIndex, start: float, exc: NoFootage) -> web.HTTPNotFound:
    nearest = await asyncio.get_running_loop().run_in_executor(None, index.nearest, start)
    body = {"error": "no footage", "detail": str(exc), "nearest": [s.to_json() for s in nearest]}
    return web.HTTPNotFound(text=json.dumps(body), content_type="application/json")


def _cannot_cut(exc: StorageError) -> web.HTTPInternalServerError:
    body = {"error": "cannot cut the footage", "detail": str(exc)}
    return web.HTTPInternalServerError(text=json.dumps(body), content_type="application/json")


def _stamp(t: float) -> str:
    return iso_time(t).replace(":", "").replace("-", "")


def _cached(path: Path, meta: Path) -> ClipResult | None:
    try:
        known = json.loads(meta.read_text())
        size = path.stat().st_size
        os.utime(path)  # used again: kept longer
    except (OSError, ValueError):
        return None
    return ClipResult("", path, float(known["start"]), float(known["end"]), int(known["frames"]), size, 0, [],
                      bool(known.get("from_copy")))  # fmt: skip


def _trim_cache(folder: Path) -> None:
    """Keeps the newest CACHE_KEEP cuts used within CACHE_AGE; the rest goes."""
    clips = sorted(folder.glob("*.mp4"), key=lambda p: p.stat().st_mtime, reverse=True)
    now = time.time()
    for n, clip in enumerate(clips):
        with contextlib.suppress(OSError):
            if n >= CACHE_KEEP - 1 or now - clip.stat().st_mtime > CACHE_AGE:
                clip.unlink()
                clip.with_suffix(".json").unlink(missing_ok=True)


def _time(request: web.Request, name: str, default: float, now: float) -> float:
    value = request.query.get(name)
    if value is None:
        return default
    try:
        return parse_time(value, now)
    except ValueError as exc:
        _bad(f"{name}: {exc}")


def _bad(why: str) -> NoReturn:
    raise web.HTTPBadRequest(text=json.dumps({"error": why}), content_type="application/json")
