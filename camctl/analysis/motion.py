"""Motion in a camera's analysis frames: frame differencing with a noise threshold and a minimum area.

Each picture is reduced to a small grey image (WIDTH pixels wide, averaged blocks: sensor noise
averages out); a pixel moved when it differs from the same pixel of a slowly updated background by
more than `threshold` grey levels; the picture has motion when the moved pixels cover more than
`min_area` of it. Motion starts after START_FRAMES such pictures in a row and ends after
`hold` seconds without any: one event pair per movement, not one per frame. Boxes are the
bounding boxes of the moved cells (a coarse grid), normalised to 0..1 (x, y, w, h).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from camctl.bus import subjects
from camctl.rules.polygons import Polygon

if TYPE_CHECKING:
    from camctl.config import MotionConfig

WIDTH = 160  # pixels across the small image differencing runs on
START_FRAMES = 2  # pictures with motion in a row before motion starts (one bright flash is not motion)
BACKGROUND_RATE = 0.1  # how fast the background follows a still scene (light changing slowly)
CELL = 8  # pixels per side of the grid cells boxes are made of


@dataclass(frozen=True)
class Sensitivity:
    threshold: float = 25.0  # grey levels a pixel must change by (above sensor noise)
    min_area: float = 0.005  # fraction of the picture that must change
    hold: float = 2.0  # seconds without motion before it ends
    mask: tuple[Polygon, ...] = ()  # where motion is ignored (a clock overlay, a tree): fractions of the picture

    @classmethod
    def of(cls, config: MotionConfig) -> Sensitivity:
        """A camera's `motion:` settings."""
        return cls(config.threshold, config.min_area, config.hold, tuple(config.mask))


@dataclass(frozen=True)
class MotionEvent:
    camera_id: str
    state: str  # "start" or "end"
    start: float  # when the motion started (the frame's capture time)
    end: float | None  # when it ended; None in a start event
    score: float  # the largest moved fraction of the picture during it (0..1)
    boxes: list[list[float]]  # where it moved, in the latest moving picture: [x, y, w, h], 0..1
    frame_number: int

    def to_json(self) -> subjects.MotionEvent:
        """The payload on seguranca.camera.motion."""
        return {"camera_id": self.camera_id, "state": self.state, "start": round(self.start, 6),
                "end": round(self.end, 6) if self.end is not None else None, "score": round(self.score, 4),
                "boxes": self.boxes, "frame_number": self.frame_number}  # fmt: skip


@dataclass
class MotionDetector:
    camera_id: str
    sensitivity: Sensitivity = field(default_factory=Sensitivity)
    _background: np.ndarray[Any, np.dtype[np.float32]] | None = field(default=None, repr=False)
    _streak: int = 0
    _started: float | None = None
    _last_motion: float = 0.0
    _score: float = 0.0
    _moved: np.ndarray[Any, np.dtype[np.bool_]] | None = field(default=None, repr=False)  # the latest moving picture
    _unmasked: np.ndarray[Any, np.dtype[np.bool_]] | None = field(default=None, repr=False)  # where motion counts

    def push(self, grey: np.ndarray[Any, Any], timestamp: float, number: int) -> MotionEvent | None:
        """A picture's luma (h, w) uint8; returns the event it starts or ends, if any."""
        small = shrink(grey)
        if self._background is None or self._background.shape != small.shape:
            self._background = small
            return None
        moved = np.abs(small - self._background) > self.sensitivity.threshold
        if self.sensitivity.mask:
            if self._unmasked is None or self._unmasked.shape != small.shape:
                self._unmasked = ~rasterize(self.sensitivity.mask, small.shape)
            moved &= self._unmasked
        score = float(moved.mean())
        # The background follows a still scene; where something moves it keeps the old picture.
        still = ~moved
        self._background[still] += BACKGROUND_RATE * (small[still] - self._background[still])
        if score >= self.sensitivity.min_area:
            self._streak += 1
            self._last_motion = timestamp
            self._score = max(self._score, score)
            self._moved = moved  # its boxes are found only for an event (a flood fill per picture costs)
            if self._started is None and self._streak >= START_FRAMES:
                self._started = timestamp
                return MotionEvent(self.camera_id, "start", timestamp, None, self._score, boxes_of(moved), number)
            return None
        self._streak = 0
        if self._started is not None and timestamp - self._last_motion >= self.sensitivity.hold:
            boxes = boxes_of(self._moved) if self._moved is not None else []
            event = MotionEvent(self.camera_id, "end", self._started, self._last_motion, self._score, boxes,
                                number)  # fmt: skip
            self._started, self._score = None, 0.0
            return event
        return None


def rasterize(polygons: Sequence[Polygon], shape: tuple[int, ...]) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """The pixels (by their centres) of an (h, w) picture inside any of the polygons (even-odd rule)."""
    h, w = shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    px, py = (xs + 0.5) / w, (ys + 0.5) / h
    covered = np.zeros((h, w), dtype=bool)
    for polygon in polygons:
        inside = np.zeros((h, w), dtype=bool)
        for (x1, y1), (x2, y2) in zip(polygon, [*polygon[1:], polygon[0]], strict=True):
            if y1 == y2:
                continue  # a horizontal edge crosses no row of centres
            crosses = (y1 > py) != (y2 > py)
            inside ^= crosses & (px < x1 + (py - y1) * (x2 - x1) / (y2 - y1))
        covered |= inside
    return covered


def shrink(grey: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Block averages, about WIDTH pixels wide (noise averages out, and differencing is cheap)."""
    h, w = grey.shape[:2]
    step = max(1, w // WIDTH)
    h2, w2 = h // step * step, w // step * step
    if grey.dtype != np.uint8 or step > 16:  # sums of up to 16 x 16 bytes fit 16 bits
        blocks = grey[:h2, :w2].astype(np.float32).reshape(h2 // step, step, w2 // step, step)
        return np.asarray(blocks.mean(axis=(1, 3), dtype=np.float32))
    # Rows, then columns, summed in 16 bits: a quarter of the float path's time on a 640x360 sub.
    rows = grey[:h2, :w2].reshape(h2 // step, step, w2).sum(axis=1, dtype=np.uint16)
    sums = rows.reshape(h2 // step, w2 // step, step).sum(axis=2, dtype=np.uint16)
    small: np.ndarray[Any, np.dtype[np.float32]] = sums.astype(np.float32) * np.float32(1.0 / (step * step))
    return small


def boxes_of(moved: np.ndarray[Any, np.dtype[np.bool_]]) -> list[list[float]]:
    """Bounding boxes of connected moved cells (4-neighbours on a CELL grid), normalised."""
    h, w = moved.shape
    rows, cols = max(1, h // CELL), max(1, w // CELL)
    cells = moved[: rows * CELL, : cols * CELL].reshape(rows, CELL, cols, CELL).mean(axis=(1, 3)) > 0.1
    seen = np.zeros_like(cells)
    boxes = []
    for r0, c0 in zip(*np.nonzero(cells), strict=True):
        if seen[r0, c0]:
            continue
        stack, top, left, bottom, right = [(r0, c0)], r0, c0, r0, c0
        seen[r0, c0] = True
        while stack:
            r, c = stack.pop()
            top, left, bottom, right = min(top, r), min(left, c), max(bottom, r), max(right, c)
            for nr, nc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= nr < rows and 0 <= nc < cols and cells[nr, nc] and not seen[nr, nc]:
                    seen[nr, nc] = True
                    stack.append((nr, nc))
        boxes.append([round(left / cols, 4), round(top / rows, 4), round((right - left + 1) / cols, 4),
                      round((bottom - top + 1) / rows, 4)])  # fmt: skip
    return boxes


LUMA_FIRST = ("yuv420p", "yuvj420p", "nv12", "yuv422p", "yuvj422p", "yuv444p", "gray")  # plane 0 is luma


def luma_plane(frame: Any) -> np.ndarray[Any, Any] | None:
    """A decoded av.VideoFrame's luma as (h, w) uint8 without converting it; None for a format
    whose first plane is not luma."""
    if frame.format.name not in LUMA_FIRST:
        return None
    plane = frame.planes[0]
    rows: np.ndarray[Any, Any] = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
    return rows[: frame.height, : frame.width]


def luma_of(array: np.ndarray[Any, Any], fmt: str) -> np.ndarray[Any, Any]:
    """The grey picture of a client frame, whatever its format."""
    if fmt == "yuv420p":
        return array[: array.shape[0] * 2 // 3]
    if fmt == "gray":
        return array
    grey: np.ndarray[Any, Any] = array.mean(axis=2)  # rgb24 / bgr24: equal weights are enough to see change
    return grey
