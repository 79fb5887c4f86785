"""Measuring a stream from its packets: frame rate, bitrate and keyframe interval."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from fractions import Fraction


@dataclass
class StreamMeter:
    """Counts frames by presentation time: RTSP hands a frame over in several packets
    (parameter sets, slices) that share one timestamp."""

    time_base: Fraction
    frames: int = 0
    bytes: int = 0
    first_pts: int | None = None
    last_pts: int | None = None
    _bytes_before_last: int = 0
    _keyframes: list[int] = field(default_factory=list)  # frame indices
    _pending_bytes: int = 0
    _pending_key: bool = False

    def add(self, pts: int | None, size: int, keyframe: bool) -> None:
        if pts is None:  # parameter sets sent ahead of their frame
            self._pending_bytes += size
            self._pending_key |= keyframe
            return
        if pts != self.last_pts:
            if self.first_pts is None:
                self.first_pts = pts
            self._bytes_before_last = self.bytes
            self.last_pts = pts
            self.frames += 1
        self.bytes += size + self._pending_bytes
        if (keyframe or self._pending_key) and (not self._keyframes or self._keyframes[-1] != self.frames - 1):
            self._keyframes.append(self.frames - 1)
        self._pending_bytes, self._pending_key = 0, False

    @property
    def span_seconds(self) -> float:
        if self.first_pts is None or self.last_pts is None:
            return 0.0
        return float((self.last_pts - self.first_pts) * self.time_base)

    @property
    def keyframes(self) -> int:
        return len(self._keyframes)

    @property
    def fps(self) -> float | None:
        span = self.span_seconds
        return (self.frames - 1) / span if span > 0 else None

    @property
    def bitrate_kbps(self) -> float | None:
        # The last frame's bytes lie beyond the span: count the bytes up to it.
        span = self.span_seconds
        return self._bytes_before_last * 8 / span / 1000 if span > 0 else None

    @property
    def gop(self) -> int | None:
        """Frames between keyframes (median), or None before two keyframes were seen."""
        gaps = [b - a for a, b in zip(self._keyframes, self._keyframes[1:], strict=False)]
        return round(statistics.median(gaps)) if gaps else None
