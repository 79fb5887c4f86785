"""Composes the grid picture from each camera's latest frame.

The canvas is one yuv420p array (the layout `VideoFrame.from_ndarray` takes: Y rows, then U and V
packed row after row). Each camera's frame is scaled into its tile only when a new one arrived;
every picture gets the camera's name and the time its frame was captured, so a frozen tile shows
its age. An offline camera gets a grey "NO SIGNAL" tile with the current time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import Interpolation, VideoReformatter

from camctl.encoding.font import draw_text
from camctl.rules.layout import Layout, Tile, fit

Planes = tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8], npt.NDArray[np.uint8]]
NO_SIGNAL_LUMA = 48


def planes(array: npt.NDArray[np.uint8], width: int, height: int) -> Planes:
    """Views of Y, U and V in a (height * 3 / 2, width) yuv420p array."""
    quarter = height // 4
    u = array[height : height + quarter].reshape(height // 2, width // 2)
    v = array[height + quarter : height + 2 * quarter].reshape(height // 2, width // 2)
    return array[:height], u, v


@dataclass
class TileState:
    label: str
    number: int = -1  # frame number of the picture in `scaled`
    scaled: Planes | None = None
    placed: Tile | None = None
    captured: float = 0.0


class Compositor:
    def __init__(self, layout: Layout, labels: list[str]) -> None:
        self.layout = layout
        self.tiles = [TileState(label) for label in labels]
        self.canvas = np.zeros((layout.height * 3 // 2, layout.width), dtype=np.uint8)
        self._y, self._u, self._v = planes(self.canvas, layout.width, layout.height)
        self._reformatter = VideoReformatter()  # our own: a frame's cached one is shared with JPEG encoding
        self.scale = max(1, layout.tile(0).height // 180)  # font pixels: 3 at a 540-line tile

    def compose(self, frames: list[tuple[int, float, av.VideoFrame] | None], now: float | None = None) -> av.VideoFrame:
        """One grid picture; frames[i] is (number, captured, frame) for tile i, None when offline."""
        now = time.time() if now is None else now
        for index, (state, latest) in enumerate(zip(self.tiles, frames, strict=True)):
            tile = self.layout.tile(index)
            if latest is None:
                self._no_signal(state, tile, now)
                continue
            number, captured, frame = latest
            if number != state.number or state.scaled is None:
                state.placed = fit(frame.width, frame.height, tile)
                scaled = self._reformatter.reformat(
                    frame, width=state.placed.width, height=state.placed.height, format="yuv420p",
                    interpolation=Interpolation.BILINEAR,
                )  # fmt: skip
                state.scaled = planes(
                    np.asarray(scaled.to_ndarray(), dtype=np.uint8), state.placed.width, state.placed.height
                )
                state.number, state.captured = number, captured
                if state.placed != tile:
                    self._fill(tile, 16)  # bars around a picture of another shape
            self._blit(state)
            self._labels(state, tile, state.captured)
        return av.VideoFrame.from_ndarray(self.canvas, format="yuv420p")

    def _blit(self, state: TileState) -> None:
        if state.scaled is None or state.placed is None:
            return
        p = state.placed
        y, u, v = state.scaled
        self._y[p.y : p.y + p.height, p.x : p.x + p.width] = y
        cx, cy, cw, ch = p.x // 2, p.y // 2, p.width // 2, p.height // 2
        self._u[cy : cy + ch, cx : cx + cw] = u
        self._v[cy : cy + ch, cx : cx + cw] = v

    def _fill(self, tile: Tile, luma: int) -> None:
        self._y[tile.y : tile.y + tile.height, tile.x : tile.x + tile.width] = luma
        cx, cy, cw, ch = tile.x // 2, tile.y // 2, tile.width // 2, tile.height // 2
        self._u[cy : cy + ch, cx : cx + cw] = 128
        self._v[cy : cy + ch, cx : cx + cw] = 128

    def _no_signal(self, state: TileState, tile: Tile, now: float) -> None:
        state.number, state.scaled = -1, None
        self._fill(tile, NO_SIGNAL_LUMA)
        text = "NO SIGNAL"
        scale = self.scale * 2
        width = (len(text) * 6 + 1) * scale
        draw_text(
            self._y,
            (self._u, self._v),
            text,
            tile.x + max(0, (tile.width - width) // 4 * 2),
            tile.y + tile.height // 2 // 2 * 2 - 4 * scale,
            scale,
        )
        self._labels(state, tile, now)

    def _labels(self, state: TileState, tile: Tile, captured: float) -> None:
        margin = 2 * self.scale
        draw_text(self._y, (self._u, self._v), state.label, tile.x + margin, tile.y + margin, self.scale)
        clock = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(captured))
        draw_text(
            self._y,
            (self._u, self._v),
            clock,
            tile.x + margin,
            tile.y + tile.height - margin - 9 * self.scale,
            self.scale,
        )
