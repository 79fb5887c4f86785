"""Publishing a camera's own stream to an RTSP server (ANNOUNCE + RECORD over TCP, as mediamtx
takes it), by stream copy, so that the server offers every camera on RTSP, HLS and WebRTC while
the camera keeps its one session.

A consumer of the camera's session: packets are copied into a bounded queue and sent by a thread
of their own, which connects, reconnects with backoff while the server is away, and starts each
connection at a keyframe. The camera's thread never waits for the server: when the queue is full
the oldest packets go and the sender starts again at the next keyframe.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import av.error

from camctl.config import CameraConfig
from camctl.lifecycle import StoppableThread
from camctl.media.access_units import PictureJoiner
from camctl.media.source import Packet, StreamInfo

log = logging.getLogger("camctl.restream")

QUEUE_SECONDS = 4.0  # of packets held while the server is slow, before starting over at a keyframe
TIME_BASE = Fraction(1, 90_000)
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0


@dataclass(frozen=True, slots=True)
class _Unit:
    data: bytes
    key: bool
    dts: float | None  # seconds on the camera's clock; None: untimed (follows the previous packet)
    pts: float | None
    generation: int  # which camera connection it came from


class Restreamer(StoppableThread):
    def __init__(self, camera: CameraConfig, url: str, open_timeout: float = 10.0) -> None:
        super().__init__(f"restream-{camera.id}")
        self.camera = camera
        self._url = url
        self.shown = camera.restream_shown or ""
        self.open_timeout = open_timeout
        self._queue: collections.deque[_Unit] = collections.deque()
        self._ready = threading.Condition()
        self._info: StreamInfo | None = None
        self._generation = 0
        self._joiner = PictureJoiner()
        self._limit = 120  # packets: QUEUE_SECONDS at the camera's rate, set when it connects
        self.connected = False
        self.error: str | None = None
        self.sent = 0
        self.reconnects = 0

    # --- session callbacks (the camera's thread): never block ------------------------------------------

    def on_connected(self, info: StreamInfo) -> None:
        self._joiner = PictureJoiner(info.codec)
        with self._ready:
            self._info = info
            self._generation += 1
            self._limit = max(30, round(QUEUE_SECONDS * (info.claimed_fps or 30)))
            self._queue.clear()

    def on_packet(self, packet: Packet, arrived: float) -> None:
        """Whole pictures (a keyframe in parts is joined: each picture one RTP timestamp)."""
        for picture in self._joiner.push(packet, arrived):
            tb = picture.time_base
            dts = float(picture.dts * tb) if picture.dts is not None and tb is not None else None
            pts = float(picture.pts * tb) if picture.pts is not None and tb is not None else dts
            unit = _Unit(picture.data, picture.key, dts, pts, self._generation)
            with self._ready:
                if len(self._queue) >= self._limit:
                    self._queue.clear()  # the server is slower than the camera: start again at a keyframe
                self._queue.append(unit)
                self._ready.notify()

    def on_audio(self, packet: Packet, arrived: float) -> None:
        """Video only, as the live view."""

    def on_offline(self, reason: str, kind: str) -> None:
        with self._ready:
            self._info = None
            self._generation += 1
            self._queue.clear()
            self._ready.notify()

    def on_stopped(self) -> None:
        self.stop()

    def stop(self) -> None:
        super().stop()
        with self._ready:
            self._ready.notify()

    # --- the sender's thread ----------------------------------------------------------------------------

    def _next(self, timeout: float) -> tuple[_Unit, StreamInfo] | None:
        with self._ready:
            self._ready.wait_for(lambda: bool(self._queue) or self._stop.is_set(), timeout)
            if not self._queue or self._info is None:
                return None
            return self._queue.popleft(), self._info

    def _run(self) -> None:
        backoff = BACKOFF_FIRST
        while not self._stop.is_set():
            item = self._next(1.0)
            if item is None or not item[0].key:
                continue  # a connection starts at a keyframe
            started = time.monotonic()
            try:
                self._publish(*item)
                continue  # the camera reconnected, or stop: no server trouble
            except (av.error.FFmpegError, OSError, ValueError) as exc:
                reason = str(exc).replace(self._url, self.shown)
                if self.connected or self.error != reason:
                    log.warning("%s: restream to %s: %s; retrying", self.camera.id, self.shown, reason)
                self.connected, self.error = False, reason
            if time.monotonic() - started > BACKOFF_MAX:
                backoff = BACKOFF_FIRST  # it had been working: come back quickly
            self._stop.wait(backoff)  # the server is away: a stop cuts the wait short
            backoff = min(BACKOFF_MAX, backoff * 2)
            self.reconnects += 1

    def _publish(self, first: _Unit, info: StreamInfo) -> None:
        """One connection to the server, from a keyframe until an error, a new camera connection, or stop."""
        output: Any = av.open(self._url, "w", format="rtsp", options={"rtsp_transport": "tcp"},
                              timeout=(self.open_timeout, self.open_timeout))  # fmt: skip
        try:
            stream = output.add_stream_from_template(_template(info, first.data))
            stream.time_base = TIME_BASE
            origin: float | None = None
            last = -1
            if not self.connected:
                log.info("%s: restreaming to %s", self.camera.id, self.shown)
            self.connected, self.error = True, None
            unit: _Unit | None = first
            while unit is not None and not self._stop.is_set():
                if unit.generation != first.generation:
                    return  # the camera reconnected: a new stream, from its next keyframe
                packet = av.Packet(unit.data)
                if unit.dts is None or unit.pts is None:
                    dts = pts = last + 1  # untimed: right after the previous one
                else:
                    origin = unit.dts if origin is None else origin
                    dts = max(last + 1, round((unit.dts - origin) / TIME_BASE))
                    pts = max(dts, round((unit.pts - origin) / TIME_BASE))
                packet.dts, packet.pts = dts, pts
                packet.time_base = TIME_BASE
                packet.is_keyframe = unit.key
                packet.stream = stream
                output.mux(packet)
                last = dts
                self.sent += 1
                item = self._next(5.0)
                unit = item[0] if item is not None else None
        finally:
            with contextlib.suppress(av.error.FFmpegError, OSError):
                output.close()


def _template(info: StreamInfo, keyframe: bytes) -> Any:
    """A stream whose codec parameters (size, SPS/PPS for the SDP) come from the camera's keyframe:
    FFmpeg's raw H.264/H.265 demuxer reads them, and the RTSP muxer copies them."""
    prefix = info.extradata if info.extradata and info.extradata.startswith((b"\0\0\1", b"\0\0\0\1")) else b""
    source = av.open(io.BytesIO(prefix + keyframe), format="hevc" if info.codec == "hevc" else "h264")
    return source.streams.video[0]
