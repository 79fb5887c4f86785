"""The grid: every camera's latest frame composed into one picture, encoded in real time.

Paced by the clock, never by the cameras: at each tick every tile takes its camera's newest frame
(the same one again when the camera is slower, the newest only when it is faster), so a dead or
slow camera never holds the grid up. When composing and encoding fall behind, ticks are skipped
and counted, the output's timestamps stay on the clock, and the encoder ladder steps to cheaper
settings (preset, then every other tick); the bitrate controller keeps the storage budget.
"""

from __future__ import annotations

import collections
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from camctl.encoding.bitrate import BitrateController
from camctl.encoding.compositor import Compositor
from camctl.encoding.encoder import KeyframeEncoder
from camctl.encoding.ladder import EncoderLadder, Step
from camctl.encoding.output import StreamOutput
from camctl.media.live import LiveFrame

RATE_WINDOW = 2.0  # seconds over which the progress line measures fps and bitrate


class TileSource(Protocol):
    online: bool

    def latest(self) -> LiveFrame | None: ...


@dataclass
class GridStats:
    started: float = field(default_factory=time.monotonic)
    frames: int = 0
    skipped: int = 0  # ticks lost because composing and encoding fell behind
    bytes: int = 0
    online: int = 0  # tiles showing a live camera at the latest tick
    bitrate: int = 0  # the controller's current target
    preset: str | None = None  # the encoder ladder's rung: libx264's preset ...
    encoded_fps: float = 0.0  # ... and the frame rate encoded (halved on its lowest rung)
    steps: list[Step] = field(default_factory=list)  # the ladder's steps so far
    latencies: collections.deque[float] = field(default_factory=lambda: collections.deque(maxlen=3000))
    _recent: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)

    def note(self, now: float, size: int) -> None:
        self.frames += 1
        self.bytes += size
        self._recent.append((now, size))
        while self._recent and now - self._recent[0][0] > RATE_WINDOW:
            self._recent.popleft()

    def rates(self) -> tuple[float, float]:
        """(fps, kbps) over the last couple of seconds."""
        if len(self._recent) < 2:
            return 0.0, 0.0
        span = self._recent[-1][0] - self._recent[0][0]
        if span <= 0:
            return 0.0, 0.0
        return (len(self._recent) - 1) / span, sum(s for _t, s in list(self._recent)[1:]) * 8 / span / 1000

    def latency_ms(self, quantile: float) -> float | None:
        if len(self.latencies) < 2:
            return None
        return round(statistics.quantiles(self.latencies, n=100)[round(quantile * 100) - 1] * 1000, 1)


class Grid:
    def __init__(
        self,
        sources: Sequence[TileSource],
        compositor: Compositor,
        encoder: KeyframeEncoder,
        output: StreamOutput,
        controller: BitrateController,
        ladder: EncoderLadder | None = None,
    ) -> None:
        self.sources = list(sources)
        self.compositor = compositor
        self.encoder = encoder
        self.output = output
        self.controller = controller
        self.fps = encoder.fps
        self.ladder = ladder or EncoderLadder(encoder.name, encoder.fps)
        self.stats = GridStats(bitrate=encoder.bitrate)
        self._show_rung()

    def run(
        self, stop: threading.Event, duration: float | None = None, on_second: Callable[[GridStats], None] | None = None
    ) -> GridStats:
        """Runs until stop is set or `duration` seconds of grid were made; closes the output."""
        stats = self.stats
        start = stats.started = time.monotonic()
        tick, busy, skipped_before, next_report = 0, 0.0, 0, start + 1.0
        try:
            while not stop.is_set() and (duration is None or tick < duration * self.fps):
                due = start + tick / self.fps
                if stop.wait(max(0.0, due - time.monotonic())):
                    break
                late = int((time.monotonic() - due) * self.fps)
                if late > 0:  # behind: skip the lost ticks, stay on the clock
                    stats.skipped += late
                    tick += late
                if tick % self.ladder.rung.stride:
                    tick += 1  # the ladder's lower frame rate: this tick is not encoded
                    continue
                began = time.monotonic()
                if self.encoder.keyframe_due:
                    self._adapt(began - start, stats.skipped - skipped_before, busy)
                    stats.bitrate, skipped_before, busy = self.controller.bitrate, stats.skipped, 0.0
                self._frame(tick)
                busy += time.monotonic() - began
                tick += 1
                if on_second is not None and began >= next_report:
                    next_report = began + 1.0
                    on_second(stats)
            for packet in self.encoder.flush():
                self._write(packet, None)
        finally:
            self.output.close()
        return stats

    def _adapt(self, elapsed: float, lost: int, busy: float) -> None:
        """At a keyframe: the ladder's rung for the next GOP, from how the last one went; the
        bitrate for the storage budget."""
        gop_seconds = self.encoder.gop * self.ladder.rung.stride / self.fps
        struggling = None
        if lost > self.encoder.gop // 20:  # a lost tick or two (a slow first picture) is not a trend
            struggling = f"{lost} ticks skipped"
        elif busy > 0.9 * gop_seconds:
            struggling = f"encoding took {busy / gop_seconds:.0%} of real time"
        rung = self.ladder.update(elapsed, struggling)
        if rung is not None:
            self.encoder.set_preset(rung.preset)
            self._show_rung()
        change = self.controller.update(name="grid")  # load is the ladder's: the bitrate is for storage
        if change is not None:
            self.encoder.set_bitrate(change.new)

    def _show_rung(self) -> None:
        self.stats.preset, self.stats.encoded_fps = self.ladder.rung.preset, self.ladder.encoded_fps
        self.stats.steps = self.ladder.steps

    def _frame(self, tick: int) -> None:
        latest: list[tuple[int, float, Any] | None] = []
        for source in self.sources:
            live = source.latest() if source.online else None
            latest.append((live.number, live.timestamp, live.frame) if live is not None else None)
        self.stats.online = sum(1 for item in latest if item is not None)
        picture = self.compositor.compose(latest)
        picture.pts = tick
        newest = max((item[1] for item in latest if item is not None), default=None)
        for packet in self.encoder.encode(picture):
            self._write(packet, newest)

    def _write(self, packet: Any, captured: float | None) -> None:
        self.output.write(packet)
        now = time.time()
        self.stats.note(time.monotonic(), packet.size)
        if captured is not None:
            self.stats.latencies.append(now - captured)
