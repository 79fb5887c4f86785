"""HLS of a camera's stream, for players without Media Source Extensions (older iPhones, TVs,
VLC, ffmpeg): `/<cam>/live.m3u8` lists fMP4 segments cut from the same per-frame fragments the
live view sends, one segment per GOP (or a few short GOPs), each starting at a keyframe.

A stream is packaged only while someone reads its playlist: the first request subscribes to the
camera's live stream, and IDLE seconds without one unsubscribes again. Segments live in memory,
the last KEEP of them; a new stream from the camera (a reconnection) gets a new init segment and
an EXT-X-DISCONTINUITY, as the spec asks.
"""

from __future__ import annotations

import asyncio
import collections
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from camctl.media.fmp4 import TIMESCALE
from camctl.media.live_stream import Event, Fragment, Header, LiveStream, Offline

KEEP = 8  # segments in the playlist (and in memory)
MIN_SEGMENT = 0.9  # seconds: shorter GOPs are joined into one segment
MAX_SEGMENT = 6.0  # seconds: a longer GOP still closes at its next keyframe (the spec needs one)
IDLE = 30.0  # seconds without a request before the stream stops being packaged
FIRST_WAIT = 12.0  # seconds a first playlist request waits for a whole segment


@dataclass(slots=True)
class Segment:
    sequence: int
    generation: int  # which init segment it follows
    started: float  # wall clock of its first frame (EXT-X-PROGRAM-DATE-TIME)
    duration: float
    data: bytes
    discontinuity: bool


@dataclass(slots=True)
class _Open:
    started: float
    first_dts: int
    last_dts: int
    step: int
    parts: list[bytes] = field(default_factory=list)

    def duration(self, next_dts: int | None = None) -> float:
        end = next_dts if next_dts is not None else self.last_dts + self.step
        return max(0, end - self.first_dts) / TIMESCALE


class HlsPackager:
    """Segments of one stream, in the event loop; fed by the camera's thread through the loop."""

    def __init__(self, stream: LiveStream, loop: asyncio.AbstractEventLoop) -> None:
        self.stream = stream
        self.loop = loop
        self.inits: dict[int, bytes] = {}
        self.codec = ""
        self.generation = 0
        self.segments: collections.deque[Segment] = collections.deque(maxlen=KEEP)
        self.next_sequence = 0
        self.last_request = time.monotonic()
        self.reason: str | None = None  # why there is no picture now
        self._open: _Open | None = None
        self._discontinuity = False
        self._dropped_discontinuities = 0  # EXT-X-DISCONTINUITY tags gone off the playlist's front
        self._changed = asyncio.Event()
        self._subscribed = False

    # --- the camera's side -------------------------------------------------------------------------

    def start(self) -> None:
        for event in self.stream.subscribe(self._from_camera):
            self._take(event)
        self._subscribed = True

    def stop(self) -> None:
        if self._subscribed:
            self.stream.unsubscribe(self._from_camera)
            self._subscribed = False

    def _from_camera(self, event: Event) -> None:
        self.loop.call_soon_threadsafe(self._take, event)

    def _take(self, event: Event) -> None:
        if isinstance(event, Header):
            self._close(None)
            if self.inits:
                self._discontinuity = True
            self.generation += 1
            self.inits[self.generation] = event.init
            self.codec = event.codec
            self.reason = None
            for old in [g for g in self.inits if g < self.generation - 1]:
                if all(s.generation != old for s in self.segments):
                    del self.inits[old]
        elif isinstance(event, Offline):
            self._close(None)
            self._discontinuity = bool(self.inits)
            self.reason = event.reason
        elif isinstance(event, Fragment) and self.inits:
            self._fragment(event)

    def _fragment(self, frag: Fragment) -> None:
        current = self._open
        if current is None:
            if not frag.key:
                return  # a segment starts at a keyframe
        elif frag.key and current.duration(frag.dts) >= MIN_SEGMENT:
            self._close(frag.dts)
            current = None
        elif not frag.key and current.duration(frag.dts) > MAX_SEGMENT * 4:
            self._open = None  # a GOP far longer than any target: give up on this one, wait for a keyframe
            self._discontinuity = True
            return
        if current is None:
            current = self._open = _Open(frag.arrived, frag.dts, frag.dts, TIMESCALE // 30)
        if frag.dts > current.last_dts:
            current.step = frag.dts - current.last_dts
        current.last_dts = frag.dts
        current.parts.append(frag.data)

    def _close(self, next_dts: int | None) -> None:
        current, self._open = self._open, None
        if current is None or not current.parts:
            return
        duration = current.duration(next_dts)
        if len(self.segments) == KEEP and self.segments[0].discontinuity:
            self._dropped_discontinuities += 1
        self.segments.append(Segment(self.next_sequence, self.generation, current.started, duration,
                                     b"".join(current.parts), self._discontinuity))  # fmt: skip
        self.next_sequence += 1
        self._discontinuity = False
        self._changed.set()
        self._changed = asyncio.Event()

    # --- the players' side ---------------------------------------------------------------------------

    async def first_segment(self, timeout: float = FIRST_WAIT) -> bool:
        """Waits (up to timeout) until a segment is listed; False when none came."""
        deadline = time.monotonic() + timeout
        while not self.segments:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                async with asyncio.timeout(left):
                    await self._changed.wait()
            except TimeoutError:
                return False
        return True

    def playlist(self, prefix: str) -> str:
        """The media playlist; segment and init URIs are `prefix` + a name (relative to the playlist)."""
        segments = list(self.segments)
        target = max([1, *(math.ceil(s.duration) for s in segments)])
        first = segments[0] if segments else None
        lines = ["#EXTM3U", "#EXT-X-VERSION:7", f"#EXT-X-TARGETDURATION:{target}",
                 f"#EXT-X-MEDIA-SEQUENCE:{first.sequence if first else self.next_sequence}",
                 f"#EXT-X-DISCONTINUITY-SEQUENCE:{self._dropped_discontinuities}",
                 "#EXT-X-INDEPENDENT-SEGMENTS"]  # fmt: skip
        generation = None
        for segment in segments:
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if segment.generation != generation:
                generation = segment.generation
                lines.append(f'#EXT-X-MAP:URI="{prefix}init-{generation}.mp4"')
            moment = datetime.fromtimestamp(segment.started, UTC).isoformat(timespec="milliseconds")
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{moment.replace('+00:00', 'Z')}")
            lines.append(f"#EXTINF:{segment.duration:.3f},")
            lines.append(f"{prefix}{segment.sequence}.mp4")
        return "\n".join(lines) + "\n"

    def segment(self, sequence: int) -> bytes | None:
        for segment in self.segments:
            if segment.sequence == sequence:
                return segment.data
        return None

    def init(self, generation: int) -> bytes | None:
        return self.inits.get(generation)

    @property
    def idle(self) -> bool:
        return time.monotonic() - self.last_request > IDLE
