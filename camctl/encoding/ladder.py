"""The encoder ladder: less work per frame before fewer frames, when encoding cannot keep up.

Lowering the bitrate barely changes x264's CPU cost; its preset does (veryfast -> ultrafast is
about 2.5x cheaper at 1080p). So under load the grid, or a transcoded camera, steps its encoder's
preset down first, then encodes every other frame (half the frame rate, on the same clock), and
steps back up one rung at a time after a few calm GOPs. Every change lands on a keyframe (the
encoder is reopened there) and is kept with its reason, for the log, the summary and status.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

log = logging.getLogger("camctl.encoding")

# Cheaper settings, in order, per encoder: (preset, stride); stride 2 = every other tick.
PRESETS = {"libx264": ["veryfast", "superfast", "ultrafast"]}
CALM_INTERVALS = 4  # calm keyframe intervals on a rung before trying the one above ...
MAX_CALM_INTERVALS = 32  # ... doubled (up to this) each time the rung above failed at once


@dataclass(frozen=True)
class Rung:
    preset: str | None  # None: the encoder has no preset ladder (hardware encoders are fast already)
    stride: int

    def describe(self, fps: float) -> str:
        rate = f"{fps / self.stride:g} fps"
        return f"{self.preset} @ {rate}" if self.preset else rate


@dataclass(frozen=True)
class Step:
    at: float  # seconds since the grid started
    frm: str
    to: str
    reason: str

    def to_json(self) -> dict[str, object]:
        shown = asdict(self)
        shown["from"] = shown.pop("frm")
        return shown


class EncoderLadder:
    def __init__(self, encoder: str, fps: float, pinned: str | None = None, name: str = "grid") -> None:
        """pinned: a preset to keep (no preset steps; frames are still halved when needed);
        name: what the log lines say it is for (the grid, or a camera's id)."""
        self.name = name
        presets: list[str | None] = [pinned] if pinned else list(PRESETS.get(encoder, [None]))
        self.fps = fps
        self.rungs = [Rung(p, 1) for p in presets] + [Rung(presets[-1], 2)]
        self.index = 0
        self.steps: list[Step] = []
        self._calm = 0
        # Per rung: calm intervals needed before climbing to the rung above it. A climb that fails
        # before it has held as long as the calm that earned it doubles the wait (the box is just
        # short of that rung): without this, a grid squeezed for a minute went up and down 19 times,
        # and one under steady load whose climb failed at the third interval flapped for ever.
        self._wait = [CALM_INTERVALS] * len(self.rungs)
        self._since_step = 0

    @property
    def rung(self) -> Rung:
        return self.rungs[self.index]

    @property
    def encoded_fps(self) -> float:
        """The frame rate encoded on this rung (halved on the lowest)."""
        return round(self.fps / self.rung.stride, 2)

    def update(self, at: float, struggling: str | None) -> Rung | None:
        """At a keyframe; struggling: why encoding fell behind since the last one, or None.
        Returns the rung to use from here when it changed."""
        self._since_step += 1
        if struggling is not None:
            self._calm = 0
            if self.index + 1 < len(self.rungs):
                climbed_here = bool(self.steps) and self.steps[-1].reason.startswith("calm")
                if climbed_here and self._since_step <= CALM_INTERVALS:
                    self._wait[self.index + 1] = min(MAX_CALM_INTERVALS, 2 * self._wait[self.index + 1])
                return self._move(at, self.index + 1, struggling)
            return None
        self._calm += 1
        wait = self._wait[self.index]
        if self._calm >= wait and self.index > 0:
            self._calm = 0
            return self._move(at, self.index - 1, f"calm for {wait} keyframe intervals")
        return None

    def _move(self, at: float, index: int, reason: str) -> Rung:
        step = Step(round(at, 2), self.rung.describe(self.fps), self.rungs[index].describe(self.fps), reason)
        self.index, self._since_step = index, 0
        self.steps.append(step)
        log.info("%s: encoder %s -> %s (%s)", self.name, step.frm, step.to, reason)
        return self.rung
