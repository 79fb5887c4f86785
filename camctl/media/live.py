"""The live side of a camera: decoded frames, the latest few kept in a ring, and health measured.

A `LiveCamera` is a consumer of the camera's shared session. Every frame is decoded (P-frames need
their predecessors), the latest are kept for HTTP and snapshots, and a frame event is offered to
the bus at the camera's analysis rate. JPEG is not made here: only when someone asks for one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import av.error

from camctl.config import CameraConfig
from camctl.media.access_units import KeyframeJoiner
from camctl.media.audio import AudioInfo
from camctl.media.decode import DecoderChoice, open_best_decoder
from camctl.media.source import Packet, StreamInfo

log = logging.getLogger("camctl.ingest")

WINDOW = 5.0  # seconds over which fps and bitrate are measured


@dataclass(frozen=True)
class LiveFrame:
    number: int  # monotonic per camera, across reconnects
    timestamp: float  # wall clock when the frame arrived
    frame: av.VideoFrame

    @property
    def resolution(self) -> str:
        return f"{self.frame.width}x{self.frame.height}"


class LiveCamera:
    def __init__(
        self,
        camera: CameraConfig,
        on_frame: Callable[[LiveCamera, LiveFrame], None] = lambda _cam, _frame: None,
        on_change: Callable[[LiveCamera], None] = lambda _cam: None,
        ring: int = 3,
        hardware_decode: bool = True,
    ) -> None:
        self.camera = camera
        self.on_frame = on_frame
        self.on_change = on_change
        self.hardware_decode = hardware_decode
        self.online = False
        self.error: str | None = "connecting"
        self.error_kind: str | None = None
        self.connected_at: float | None = None
        self.reconnects = 0
        self.dropped_frames = 0
        self.frames = 0
        self.decoder: str | None = None
        self.claimed_fps: float | None = None
        self.audio: AudioInfo | None = None
        self._decoder: DecoderChoice | None = None
        self._joiner = KeyframeJoiner()
        # Others that want every decoded picture (a transcoder): one decode serves them all.
        self.picture_listeners: list[Callable[[av.VideoFrame, float], None]] = []
        self._ring: collections.deque[LiveFrame] = collections.deque(maxlen=ring)
        self._arrivals: collections.deque[tuple[float, int]] = collections.deque()  # (time, bytes) per packet
        self._frame_times: collections.deque[float] = collections.deque()
        self._next_event = 0.0
        self._connects = 0
        # Web handlers waiting for a newer frame, one future per event loop they run on: waiting
        # costs no thread (hundreds of MJPEG clients once took every executor thread, and with them
        # the JPEG encodes of frame.jpg).
        self._waiting: dict[asyncio.AbstractEventLoop, asyncio.Future[None]] = {}
        self._waiting_lock = threading.Lock()

    # --- session callbacks (the camera's thread) -------------------------------------------------

    def on_connected(self, info: StreamInfo) -> None:
        self._decoder = open_best_decoder(info, self.hardware_decode)
        if self.decoder != self._decoder.name:
            skipped = "; ".join(f"{n}: {why}" for n, why in self._decoder.skipped.items())
            log.info("%s: decoding with %s%s", self.camera.id, self._decoder.name, f" ({skipped})" if skipped else "")
        self.decoder = self._decoder.name
        self._joiner = KeyframeJoiner()
        self.claimed_fps = info.claimed_fps
        self.audio = info.audio
        self._connects += 1
        self.reconnects = self._connects - 1
        self.connected_at = time.time()
        self._frame_times.clear()
        self._arrivals.clear()

    def on_packet(self, packet: Packet, arrived: float) -> None:
        self._arrivals.append((arrived, packet.size))
        decoder = self._decoder
        if decoder is None:
            return
        for whole, when in self._joiner.push(packet, arrived):
            try:
                frames = decoder.context.decode(whole)
            except av.error.FFmpegError:
                self.dropped_frames += 1  # damaged or missing data: this picture is lost
                continue
            for frame in frames:
                self._take(frame, when)

    def on_audio(self, packet: Packet, arrived: float) -> None:
        """Analysis looks at pictures only."""

    def on_offline(self, reason: str, kind: str) -> None:
        changed = self.online or self.error != reason
        self.online, self.error, self.error_kind = False, reason, kind
        self.connected_at = None
        self._decoder = None
        if changed:
            self.on_change(self)

    def on_stopped(self) -> None:
        self.online = False
        self._wake()

    # --- frames -----------------------------------------------------------------------------------

    def _take(self, frame: av.VideoFrame, arrived: float) -> None:
        for listener in self.picture_listeners:
            listener(frame, arrived)
        self.frames += 1
        live = LiveFrame(self.frames, arrived, frame)
        self._ring.append(live)
        self._wake()
        self._frame_times.append(arrived)
        if not self.online:
            self.online, self.error, self.error_kind = True, None, None
            self.on_change(self)
        rate = self.camera.analysis_fps
        if rate is None:
            self.on_frame(self, live)
        elif arrived >= self._next_event:
            # A schedule, not "1/rate since the last one": the rate holds even with jittery arrivals;
            # when far behind (the first frame, or after an outage) the schedule starts over.
            self._next_event += 1 / rate
            if self._next_event <= arrived:
                self._next_event = arrived + 1 / rate
            self.on_frame(self, live)

    def latest(self) -> LiveFrame | None:
        return self._ring[-1] if self._ring and self.online else None

    async def newer(self, number: int, timeout: float) -> LiveFrame | None:
        """The latest frame once it is newer than `number`, or None after `timeout` (for streams:
        MJPEG, grid tiles; an offline camera's stream sends its keep-alive, or ends, then)."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while True:
                    with self._waiting_lock:
                        future = self._waiting.get(loop)
                        if future is None or future.done():
                            future = self._waiting[loop] = loop.create_future()
                    latest = self.latest()  # after registering: a frame that came meanwhile is seen
                    if latest is not None and latest.number > number:
                        return latest
                    await asyncio.shield(future)
        except TimeoutError:
            return None

    def _wake(self) -> None:
        """A new frame, or the camera stopped (the camera's thread): every waiting loop is told."""
        with self._waiting_lock:
            waiting, self._waiting = self._waiting, {}
        for loop, future in waiting.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there
                loop.call_soon_threadsafe(_resolve, future)

    # --- health -----------------------------------------------------------------------------------

    def measured(self, now: float) -> tuple[float | None, float | None]:
        """(fps, bitrate kbit/s) over the last WINDOW seconds."""
        while self._frame_times and self._frame_times[0] < now - WINDOW:
            self._frame_times.popleft()
        while self._arrivals and self._arrivals[0][0] < now - WINDOW:
            self._arrivals.popleft()
        frames, arrivals = list(self._frame_times), list(self._arrivals)
        if len(frames) < 2:
            return None, None
        span = max(frames[-1] - frames[0], 1e-3)
        fps = (len(frames) - 1) / span
        kbps = sum(size for _t, size in arrivals) * 8 / 1000 / max(now - arrivals[0][0], 1e-3) if arrivals else None
        return fps, kbps

    def status(self, now: float) -> dict[str, Any]:
        """The seed's status payload (names and types kept), with extra fields after them."""
        fps, kbps = self.measured(now) if self.online else (None, None)
        latest = self._ring[-1] if self._ring else None
        return {
            "camera_id": self.camera.id,
            "online": self.online,
            "fps": round(fps, 2) if fps is not None else 0.0,
            "bitrate_kbps": round(kbps) if kbps is not None else 0,
            "dropped_frames": self.dropped_frames,
            "uptime_seconds": round(now - self.connected_at) if self.online and self.connected_at else 0,
            "error": self.error,
            "reconnects": self.reconnects,
            "last_frame_age_ms": round((now - latest.timestamp) * 1000) if latest else None,
            "frames": self.frames,
            "decoder": self.decoder,
            "audio": self.audio.to_json() if self.audio else None,  # what the camera sends
        }


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
