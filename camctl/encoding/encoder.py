"""An encoder whose bitrate can change, at keyframe boundaries only.

FFmpeg's libx264 wrapper ignores a bit_rate changed after opening (x264 reconfigures the rate only
under VBV), and hardware encoders differ again; reopening the encoder where a keyframe is due works
for all of them: the new encoder starts with an IDR picture, and with identical settings but the
bitrate its parameter sets are identical, so the stream stays one valid stream.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
from av.video.frame import PictureType

from camctl.media.encoders import open_encoder


class KeyframeEncoder:
    def __init__(
        self,
        name: str,
        width: int,
        height: int,
        fps: int,
        bitrate: int,
        gop: int,
        time_base: Fraction | None = None,
        preset: str | None = None,
    ) -> None:
        self.name, self.width, self.height, self.fps, self.gop = name, width, height, fps, gop
        self.time_base = time_base
        self.bitrate = bitrate
        self.preset = preset  # None: the encoder's low-latency default
        self._pending: tuple[int, str | None] | None = None  # (bitrate, preset) from the next keyframe
        self._since_key = 0
        self._context: Any = self._open(bitrate, preset)

    def _open(self, bitrate: int, preset: str | None) -> Any:
        return open_encoder(self.name, self.width, self.height, self.fps, bitrate, self.gop, self.time_base, preset)

    def set_bitrate(self, bitrate: int) -> None:
        """Takes effect at the next keyframe."""
        self._want(bitrate, self._pending[1] if self._pending else self.preset)

    def set_preset(self, preset: str | None) -> None:
        """Takes effect at the next keyframe (the encoder ladder's cheaper or dearer settings)."""
        self._want(self._pending[0] if self._pending else self.bitrate, preset)

    def _want(self, bitrate: int, preset: str | None) -> None:
        self._pending = (bitrate, preset) if (bitrate, preset) != (self.bitrate, self.preset) else None

    @property
    def keyframe_due(self) -> bool:
        return self._since_key % self.gop == 0

    def encode(self, frame: av.VideoFrame) -> list[Any]:
        packets: list[Any] = []
        if self._pending is not None and self.keyframe_due and self._since_key:
            packets += self._context.encode(None)  # what the old encoder still holds
            self._context = self._open(*self._pending)
            (self.bitrate, self.preset), self._pending, self._since_key = self._pending, None, 0
        # Keyframes on our count, not only the encoder's: its counter restarts at scene cuts
        frame.pict_type = PictureType.I if self.keyframe_due else PictureType.NONE
        packets += self._context.encode(frame)
        self._since_key += 1
        return packets

    def flush(self) -> list[Any]:
        return list(self._context.encode(None))
