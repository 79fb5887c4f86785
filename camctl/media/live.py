"""The pictures of one camera stream: decoded only while something uses them, the latest few
kept in a ring, and the stream's health measured.

A `LiveCamera` is a consumer of the stream's shared session. Decoding is the dominant cost of the
whole box, so it decodes in one of three modes, chosen per picture:
- `full`: every picture (P-frames need their predecessors): while someone streams the pictures
  (MJPEG, grid tiles, a transcoder) or asked for a still lately, and for analysis above the
  keyframe rate;
- `keyframes`: keyframes only, for analysis at or below the keyframe rate (about 7x cheaper);
- `off`: nothing decoded (a stream only recorded or watched as-is); the pictures since the last
  keyframe are kept, so a still asked for is decoded from them on demand at full size.
A frame event is offered to the bus at the camera's analysis rate, by the analysis stream only.
JPEG is not made here: only when someone asks for one.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import av
import av.error

from camctl.config import StreamView
from camctl.media.access_units import KeyframeJoiner
from camctl.media.audio import AudioInfo
from camctl.media.decode import DecoderChoice, open_best_decoder
from camctl.media.source import Packet, StreamInfo

log = logging.getLogger("camctl.ingest")

WINDOW = 5.0  # seconds over which fps and bitrate are measured
FRESH_SECONDS = 0.5  # a snapshot's picture older than this (keyframe-only analysis) is decoded anew
DEMAND_SECONDS = 10.0  # a still asked for keeps the stream decoded this long (the next one is at hand)
MAX_GOP_BYTES = 16 * 1024 * 1024  # pictures kept for a still on demand (a longer GOP waits for a keyframe)
MAX_KEYFRAME_GAP = 60.0  # seconds; a longer one is a timestamp jump, not a GOP
KEYFRAME_SLACK = 1.05  # analysis at up to this much above the measured keyframe rate still takes keyframes
Mode = str  # full, keyframes, off


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
        camera: StreamView,
        on_frame: Callable[[LiveCamera, LiveFrame], None] = lambda _cam, _frame: None,
        on_change: Callable[[LiveCamera], None] = lambda _cam: None,
        ring: int = 3,
        hardware_decode: bool = True,
        analysed: bool = True,
    ) -> None:
        """camera: the view of the stream (camctl.config.stream_view); analysed: this is the camera's
        analysis stream (frame events, at the camera's decode mode); any other decodes on demand."""
        self.camera = camera
        self.stream = camera.stream
        self.analysed = analysed
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
        self.decoder: str | None = None  # the FFmpeg decoder open now (None while nothing is decoded)
        self.claimed_fps: float | None = None
        self.audio: AudioInfo | None = None
        self.size: tuple[int, int] | None = None  # announced, then decoded
        self.mode: Mode = "off"  # what the latest picture was decoded for
        self.users = 0  # streams of decoded pictures being served (MJPEG, grid tiles)
        self._demand_until = 0.0  # monotonic: a still was asked for
        self._info: StreamInfo | None = None
        self._decoder: DecoderChoice | None = None
        self._joiner = KeyframeJoiner()
        self._gop: list[tuple[Packet, float]] = []  # the pictures since the last keyframe
        self._gop_bytes = 0
        self._keyframes: collections.deque[float] = collections.deque(maxlen=6)  # their camera times
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
        self._info = info
        self._close_decoder()
        self._joiner = KeyframeJoiner()
        self._gop, self._gop_bytes = [], 0
        self._keyframes.clear()
        self.size = (info.width, info.height) if info.width else self.size
        self.claimed_fps = info.claimed_fps
        self.audio = info.audio
        self._connects += 1
        self.reconnects = self._connects - 1
        self.connected_at = time.time()
        self._frame_times.clear()
        self._arrivals.clear()

    def on_packet(self, packet: Packet, arrived: float) -> None:
        self._arrivals.append((arrived, packet.size))
        if self._info is None:
            return
        for whole, when in self._joiner.push(packet, arrived):
            self._picture(whole, when)

    def _picture(self, packet: Packet, arrived: float) -> None:
        """One whole coded picture: kept for stills, measured, and decoded if the mode says so."""
        key = bool(packet.is_keyframe)
        if key:
            if packet.pts is not None and packet.time_base is not None:
                self._keyframes.append(float(packet.pts * packet.time_base))  # camera time: a burst at connect
            self._gop, self._gop_bytes = [], 0
        elif not self._gop:
            return  # before the first keyframe: nothing can be decoded from it
        if self._gop_bytes <= MAX_GOP_BYTES:
            self._gop.append((packet, arrived))
            self._gop_bytes += packet.size
        self._frame_times.append(arrived)
        if not self.online:
            self.online, self.error, self.error_kind = True, None, None
            self.on_change(self)
        mode = self.wanted_mode()
        if mode == "off":
            if self.mode != "off":
                self._close_decoder()  # its buffers (a 1080p hardware decoder holds tens of MB)
                self.mode = "off"
            return
        if mode == "keyframes" and not key:
            return
        if (self.mode == "full" and mode == "full") or key:
            self.mode = mode
            self._decode([(packet, arrived)])
        elif self._gop_bytes <= MAX_GOP_BYTES:  # every picture from now on: from the GOP's keyframe
            self.mode = mode
            self._decode(self._gop)
        # else: a GOP too long to keep; decoding starts at the next keyframe

    def wanted_mode(self) -> Mode:
        """What the pictures are decoded for now."""
        if self.users or self.picture_listeners or time.monotonic() < self._demand_until:
            return "full"
        if not self.analysed:
            return "off"
        mode = self.camera.camera.decode
        if mode == "auto":
            return "keyframes" if self._keyframes_suffice() else "full"
        return mode

    def _keyframes_suffice(self) -> bool:
        rate, interval = self.camera.camera.analysis_fps, self.keyframe_interval()
        return rate is not None and interval is not None and rate * interval <= KEYFRAME_SLACK

    def keyframe_interval(self) -> float | None:
        """Seconds between keyframes, as measured (None until two have come)."""
        times = list(self._keyframes)
        if len(times) < 2:
            return None
        gaps = sorted(b - a for a, b in itertools.pairwise(times) if 0 < b - a < MAX_KEYFRAME_GAP)
        return gaps[len(gaps) // 2] if gaps else None

    def _decode(self, pictures: list[tuple[Packet, float]]) -> None:
        """Decodes the pictures in order; the last picture out is taken (catching up on a GOP, the
        ones before it are only the way to it)."""
        decoder = self._decoder or self._open_decoder()
        if decoder is None:
            return
        out: list[tuple[av.VideoFrame, float]] = []
        for packet, when in pictures:
            try:
                out += [(frame, when) for frame in decoder.context.decode(packet)]
            except av.error.FFmpegError:
                self.dropped_frames += 1  # damaged or missing data: this picture is lost
        for frame, when in out[-1:] if len(pictures) > 1 else out:
            self._take(frame, when)

    def _open_decoder(self) -> DecoderChoice | None:
        if self._info is None:
            return None
        self._decoder = open_best_decoder(self._info, self.hardware_decode)
        if self.decoder != self._decoder.name:
            skipped = "; ".join(f"{n}: {why}" for n, why in self._decoder.skipped.items())
            log.info(
                "%s: decoding with %s%s", self.camera.label, self._decoder.name, f" ({skipped})" if skipped else ""
            )
        self.decoder = self._decoder.name
        return self._decoder

    def _close_decoder(self) -> None:
        self._decoder, self.decoder = None, None

    def demand(self, seconds: float = DEMAND_SECONDS) -> None:
        """Someone wants a picture (the event loop): decode from now on, for a while."""
        self._demand_until = max(self._demand_until, time.monotonic() + seconds)

    @contextlib.contextmanager
    def watched(self) -> Iterator[None]:
        """While a stream of decoded pictures is served (MJPEG, grid tiles): every picture decoded."""
        self.users += 1
        try:
            yield
        finally:
            self.users -= 1

    async def still(self, timeout: float, fresh: bool = False) -> LiveFrame | None:
        """The latest picture for a still: the one decoded for analysis while the stream is being
        decoded (what the frame event named), else one decoded on demand from the pictures kept
        since the last keyframe, at full size. fresh (a snapshot): a picture of now, even where
        analysis decodes keyframes only. None when none comes within `timeout`."""
        latest = self.latest()
        if latest is not None and not (fresh and time.time() - latest.timestamp > FRESH_SECONDS):
            return latest
        if not self.online:
            return None
        number = self._ring[-1].number if self._ring else 0
        self.demand()
        return await self.newer(number, timeout) or latest

    def on_audio(self, packet: Packet, arrived: float) -> None:
        """Analysis looks at pictures only."""

    def on_offline(self, reason: str, kind: str) -> None:
        changed = self.online or self.error != reason
        self.online, self.error, self.error_kind = False, reason, kind
        self.connected_at = None
        self._info = None
        self._close_decoder()
        self.mode = "off"
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
        self.size = (frame.width, frame.height)
        self._ring.append(live)
        self._wake()
        if not self.analysed:
            return
        rate = self.camera.camera.analysis_fps
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
        """The newest decoded picture while the stream is being decoded (None when it is not: an
        old picture is no still of now)."""
        return self._ring[-1] if self._ring and self.online and self.mode != "off" else None

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

    def stream_status(self, now: float) -> dict[str, Any]:
        """The stream's own line in a camera's status: whether and how it is decoded, its rate."""
        fps, kbps = self.measured(now) if self.online else (None, None)
        interval = self.keyframe_interval()
        return {
            "online": self.online,
            "error": self.error,
            "decode": self.mode if self.online else "off",
            "decoder": self.decoder,
            "resolution": "{}x{}".format(*self.size) if self.size else None,
            "fps": round(fps, 2) if fps is not None else 0.0,
            "bitrate_kbps": round(kbps) if kbps is not None else 0,
            "keyframe_interval": round(interval, 2) if interval is not None else None,
            "decoded_frames": self.frames,
            "dropped_frames": self.dropped_frames,
        }


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
