"""Where an encoded stream goes: a file (.mp4, .mkv), an RTSP server, an HLS directory, or stdout."""

from __future__ import annotations

import errno
import os
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from camctl.errors import StorageError
from camctl.rules.target import Target
from camctl.storage.files import free_space

MIN_FREE_FOR_HLS = 1 << 20  # less than a segment of the grid: the next one cannot be written


def unused_path(path: Path) -> Path:
    """path, or path with -2, -3... before its suffix when a file is already there."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate


class StreamOutput:
    """One H.264 stream muxed into the target; packets come from our own encoder, headers in-band."""

    def __init__(self, target: Target, codec: str, width: int, height: int, fps: int) -> None:
        if target.format in ("mp4", "matroska"):  # never over an earlier grid (a restart, a second run)
            path = unused_path(Path(target.url))
            target = replace(target, url=str(path), shown=str(path))
        self.target = target
        self.time_base = Fraction(1, fps)
        self.bytes = 0
        self._space_checked = 0.0
        try:
            if target.format not in ("rtsp", "mpegts"):
                Path(target.url).parent.mkdir(parents=True, exist_ok=True)
            self.container: Any = av.open(target.url, "w", format=target.format, options=dict(target.options))
            self.stream: Any = self.container.add_mux_stream(codec, width=width, height=height)
            self.stream.time_base = self.time_base
        except (OSError, av.error.FFmpegError) as exc:
            raise self._error(exc) from None

    def write(self, packet: Any) -> None:
        packet.stream = self.stream
        packet.time_base = self.time_base
        self.bytes += packet.size
        try:
            self.container.mux(packet)
        except (OSError, av.error.FFmpegError) as exc:
            raise self._error(exc) from None
        if self.target.format == "hls":
            self._check_space()

    def _check_space(self) -> None:
        """FFmpeg's HLS muxer drops its segments' write errors: a full disk would leave a playlist
        that no longer moves while the grid reports success. Look at the disk once a second."""
        now = time.monotonic()
        if now - self._space_checked < 1.0:
            return
        self._space_checked = now
        if free_space(Path(self.target.url).parent) < MIN_FREE_FOR_HLS:
            raise self._error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))

    def close(self) -> None:
        try:
            self.container.close()
        except (OSError, av.error.FFmpegError) as exc:
            raise self._error(exc) from None

    def _error(self, exc: BaseException) -> StorageError:
        reason = getattr(exc, "strerror", None) or str(exc)
        return StorageError(f"cannot write {self.target.shown}: {reason}")
