"""A camera's own stream for live viewers: its packets (no decode, no re-encode) as fragmented MP4,
made once per camera and shared by every viewer.

A consumer of the camera's session. It keeps the init segment and the fragments since the last
keyframe, so a viewer who joins gets a picture at once (from that keyframe) and then follows the
live edge. Listeners are called in the session's thread and must only hand the event over (to an
event loop): a slow viewer is the web side's business and never holds the camera back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from camctl.config import StreamView
from camctl.media.access_units import Picture, PictureJoiner
from camctl.media.decode import picture_size
from camctl.media.fmp4 import TIMESCALE, codec_string, fragment, init_segment, length_prefixed
from camctl.media.source import Packet, StreamInfo

log = logging.getLogger("camctl.live")

MAX_GOP_BYTES = 16 * 1024 * 1024  # a longer GOP than this is not cached: joiners wait for a keyframe
DEFAULT_STEP = TIMESCALE // 30


@dataclass(frozen=True, slots=True)
class Header:
    """A new stream: a viewer starts over with this init segment."""

    init: bytes
    codec: str  # RFC 6381, e.g. avc1.64001f
    width: int
    height: int

    @property
    def mime(self) -> str:
        return f'video/mp4; codecs="{self.codec}"'


@dataclass(frozen=True, slots=True)
class Fragment:
    data: bytes  # moof + mdat
    key: bool
    sequence: int  # increasing per camera, across connections
    arrived: float  # wall clock when the camera's packet came
    dts: int = 0  # on the live timeline, TIMESCALE ticks (HLS segments' durations)


@dataclass(frozen=True, slots=True)
class Offline:
    reason: str
    final: bool = False  # the camera was stopped here (shutdown, removed from the config)


Event = Header | Fragment | Offline


Listener = Callable[[Event], None]


class LiveStream:
    def __init__(self, camera: StreamView) -> None:
        self.camera = camera
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._header: Header | None = None
        self._gop: list[Fragment] = []
        self._gop_bytes = 0
        self._info: StreamInfo | None = None
        self._joiner = PictureJoiner()
        self._sequence = 0
        self._origin: int | None = None  # the connection's first dts, camera ticks
        self._base = 0  # where that dts sits on the live timeline
        self._last_dts = -1  # on the live timeline
        self._step = DEFAULT_STEP
        self.reason: str | None = "connecting"

    # --- viewers ------------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> list[Event]:
        """Adds a listener; returns what a new viewer needs first (the header and the current GOP, or
        why there is no picture), taken under the same lock, so that nothing is missed or doubled."""
        with self._lock:
            self._listeners.append(listener)
            return self._first_events()

    def snapshot(self) -> list[Event]:
        """What a new viewer needs first, for a listener already subscribed (events that are on
        their way to it may be in here too: fragments carry a sequence number to skip repeats)."""
        with self._lock:
            return self._first_events()

    def _first_events(self) -> list[Event]:
        if self._header is None:
            return [Offline(self.reason or "waiting for a keyframe")]
        return [self._header, *self._gop]

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    @property
    def viewers(self) -> int:
        return len(self._listeners)

    def _publish(self, event: Event) -> None:
        for listener in list(self._listeners):
            listener(event)

    # --- session callbacks (the camera's thread) ------------------------------------------------------

    def on_connected(self, info: StreamInfo) -> None:
        with self._lock:
            self._info = info
            self._header = None
            self._gop, self._gop_bytes = [], 0
            self._joiner = PictureJoiner(info.codec)
            self._origin, self._last_dts = None, -1
            self._step = round(TIMESCALE / info.claimed_fps) if info.claimed_fps else DEFAULT_STEP
            self.reason = "waiting for a keyframe"

    def on_packet(self, packet: Packet, arrived: float) -> None:
        info = self._info
        if info is None:
            return
        pictures = self._joiner.push(packet, arrived)
        if pictures:
            with self._lock:
                for picture in pictures:
                    self._emit(info, picture)

    def _emit(self, info: StreamInfo, picture: Picture) -> None:
        """Under the lock: the picture as a fragment to every listener (and the GOP cache)."""
        if self._header is None:
            if not picture.key:
                return
            header = self._start(info, picture.data)
            if header is None:
                return
            self._header = header
            self._publish(header)
        dts, offset = self._times(picture)
        self._sequence += 1
        data = fragment(self._sequence, dts, self._step, offset, picture.key, length_prefixed(picture.data))
        frag = Fragment(data, picture.key, self._sequence, picture.arrived, dts)
        if picture.key:
            self._gop, self._gop_bytes = [], 0
        if self._gop and self._gop_bytes + len(frag.data) > MAX_GOP_BYTES:
            self._gop, self._gop_bytes = [], 0  # half a GOP would not decode: joiners wait for a keyframe
        if self._gop or picture.key:
            self._gop.append(frag)
            self._gop_bytes += len(frag.data)
        self._publish(frag)

    def on_audio(self, packet: Packet, arrived: float) -> None:
        """Live view is video only."""

    def on_offline(self, reason: str, kind: str) -> None:
        self._stop_stream(reason)

    def on_stopped(self) -> None:
        self._stop_stream("stopped", final=True)

    # --- inside --------------------------------------------------------------------------------------

    def _stop_stream(self, reason: str, final: bool = False) -> None:
        with self._lock:
            self._info, self._header = None, None
            self._gop, self._gop_bytes = [], 0
            self.reason = reason
            self._publish(Offline(reason, final))

    def _start(self, info: StreamInfo, keyframe: bytes) -> Header | None:
        prefix = info.extradata if info.extradata and info.extradata.startswith((b"\0\0\1", b"\0\0\0\1")) else b""
        width, height = info.width, info.height
        try:
            if not width:
                width, height = picture_size(info, prefix + keyframe) or (0, 0)
            init = init_segment(info.codec, width, height, prefix + keyframe)
            codec = codec_string(init)
        except (ValueError, OSError) as exc:  # PyAV's errors are OSError/ValueError subclasses
            log.warning("%s: no live stream from this keyframe: %s", self.camera.id, exc)
            return None
        self.reason = None
        log.info("%s: live stream %s %dx%d", self.camera.id, codec, width, height)
        return Header(init, codec, width, height)

    def _times(self, picture: Picture) -> tuple[int, int]:
        """(dts, pts - dts) on the live timeline: the camera's clock from this connection's first
        timed frame, kept strictly increasing (a camera whose clock rewinds or repeats is stepped
        on); a picture without a time (the first of some cameras) one step after the previous."""
        tb, dts_in = picture.time_base, picture.dts if picture.dts is not None else picture.pts
        if dts_in is None or tb is None:
            dts = self._last_dts + self._step
            offset = 0
        else:
            if self._origin is None:
                self._origin = dts_in
                self._base = self._last_dts + self._step if self._last_dts >= 0 else 0
            dts = self._base + round((dts_in - self._origin) * tb * TIMESCALE)
            pts = picture.pts if picture.pts is not None else dts_in
            offset = max(0, round((pts - dts_in) * tb * TIMESCALE))
            if self._last_dts >= 0 and 0 < dts - self._last_dts < TIMESCALE:
                self._step = dts - self._last_dts  # the duration given to the next frame
            if dts <= self._last_dts:
                dts = self._last_dts + self._step
        self._last_dts = dts
        return dts, offset
