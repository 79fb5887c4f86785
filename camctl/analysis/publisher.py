"""The camera side of the frame ring: the analysis pictures of one camera, written while someone reads.

Copying a 1080p picture costs about a third of a millisecond; a camera nobody analyses on this box
should not pay it 30 times a second. A reader says it is there by touching the ring's marker file
(`<ring>.readers`, group-writable) every second or so; the writer looks at the marker's time once
a second and writes only while a reader touched it in the last READER_TIMEOUT seconds. The first
pictures therefore reach a new reader within a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from av.video.reformatter import VideoReformatter

from camctl.analysis.ring import RING_DIR, RingWriter, picture_bytes, ring_name
from camctl.config import AnalysisConfig

log = logging.getLogger("camctl.ingest")

READER_TIMEOUT = 5.0  # seconds since a reader last touched the marker before writing stops
CHECK_EVERY = 1.0  # seconds between looks at the marker


def marker_path(ring: Path) -> Path:
    return ring.with_name(ring.name + ".readers")


class RingPublisher:
    """One camera's ring; `offer` runs in the camera's thread for every analysis frame."""

    def __init__(self, camera_id: str, node: str, analysis: AnalysisConfig, folder: Path = RING_DIR) -> None:
        self.camera_id = camera_id
        self.name = ring_name(camera_id, node)
        self.analysis = analysis
        self.folder = folder
        self.marker: Path | None = marker_path(folder / self.name)
        self.writer: RingWriter | None = None
        self.wanted = False
        self._next_check = 0.0
        self._reformatter = VideoReformatter()  # our own: a frame's reformat() keeps one per frame
        try:
            # Kept when it exists: a worker restarting finds its readers' marks and writes at once.
            fd = os.open(self.marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)
            os.fchmod(fd, 0o660)  # readers of the group touch it
            os.close(fd)
            os.utime(self.marker, (0, 0))  # nobody reads yet
        except FileExistsError:
            pass
        except OSError as exc:  # no /dev/shm (a container without it): analysis goes by JPEG only
            log.warning("%s: no shared-memory frames (%s)", camera_id, exc)
            self.marker = None

    def offer(self, number: int, timestamp: float, frame: Any) -> int | None:
        """Writes the picture when someone reads; returns the write's count for the event, or None."""
        now = time.monotonic()
        if now >= self._next_check:
            self._next_check = now + CHECK_EVERY
            self.wanted = self._readers_present()
        if not self.wanted:
            return None
        picture = self._prepared(frame)
        size = picture_bytes(picture)
        writer = self.writer
        if writer is None or size > writer.slot_bytes:
            writer = self._open(size)
        return writer.write(number, timestamp, picture)

    def _readers_present(self) -> bool:
        if self.marker is None:
            return False
        try:
            return time.time() - self.marker.stat().st_mtime < READER_TIMEOUT
        except OSError:
            return False

    def _prepared(self, frame: Any) -> Any:
        """The picture as analysis wants it: scaled to `width` (keeping its shape), in `format`;
        done once here rather than in every consumer."""
        width, fmt = self.analysis.width, self.analysis.format
        if (width is None or width == frame.width) and fmt == frame.format.name:
            return frame
        if width is None:
            width = frame.width
        height = max(2, round(frame.height * width / frame.width / 2) * 2)
        return self._reformatter.reformat(frame, width=width, height=height, format=fmt)

    def _open(self, size: int) -> RingWriter:
        if self.writer is not None:
            self.writer.close(remove=False)  # replaced below: readers map the new file
        writer = self.writer = RingWriter(self.name, size, self.analysis.slots, self.folder)
        log.info("%s: analysis frames in shared memory %s (%d slots)", self.camera_id, writer.path,
                 self.analysis.slots)  # fmt: skip
        return writer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.marker is not None:
            with contextlib.suppress(OSError):
                self.marker.unlink()
