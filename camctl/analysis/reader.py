"""Reading a camera's shared-memory ring (the layout is in `camctl.analysis.ring`): numpy arrays,
never a torn picture, following a writer that restarted."""

from __future__ import annotations

import mmap
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camctl.analysis.ring import (
    HEADER,
    HEADER_BYTES,
    MAGIC,
    RING_DIR,
    SAMPLE_STEP,
    SEQ_END_AT,
    SLOT,
    SLOT_HEADER_BYTES,
    U64,
    VERSION,
    WRITES_AT,
    RingMissing,
    plane_rows,
)


@dataclass(frozen=True)
class RingFrame:
    number: int  # camctl's frame number (the event's frame_number)
    timestamp: float  # capture time (the event's timestamp)
    width: int
    height: int
    format: str
    array: np.ndarray[Any, np.dtype[np.uint8]]  # yuv420p: (h*3/2, w) I420; gray: (h, w); rgb24/bgr24: (h, w, 3)
    write: int  # which write of the ring this was (1-based): the count of frames written until it


class RingReader:
    """Maps a camera's ring read-only; follows a writer that replaced it (a worker restart)."""

    def __init__(self, name: str, folder: Path = RING_DIR) -> None:
        self.name = name
        self.path = folder / name
        self._map: mmap.mmap | None = None
        self._inode: int | None = None
        self.slots = self.slot_bytes = 0
        self._open()

    def _open(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise RingMissing(self.name) from None
        try:
            st = os.fstat(fd)
            if st.st_size < HEADER_BYTES:
                raise RingMissing(f"{self.name}: not a camctl ring")
            m = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        magic, version, slots, slot_bytes, *_ = HEADER.unpack_from(m, 0)
        if magic != MAGIC or version != VERSION or st.st_size < HEADER_BYTES + slots * (SLOT_HEADER_BYTES + slot_bytes):
            m.close()
            raise RingMissing(f"{self.name}: not a camctl ring (version {version})")
        if self._map is not None:
            self._map.close()
        self._map, self._inode, self.slots, self.slot_bytes = m, st.st_ino, slots, slot_bytes

    def replaced(self) -> bool:
        """Whether the writer replaced the ring since it was mapped (then it is mapped again)."""
        try:
            inode = self.path.stat().st_ino
        except FileNotFoundError:
            return False  # the writer is gone: the old map still holds its last pictures
        if inode == self._inode:
            return False
        self._open()
        return True

    @property
    def writes(self) -> int:
        return int(U64.unpack_from(self._mapped(), WRITES_AT)[0])

    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            raise RingMissing(f"{self.name}: closed")
        return self._map

    def read(self, write: int | None = None, attempts: int = 3) -> RingFrame | None:
        """The picture of a given write (1-based, as `writes` counts them), or the latest; None
        when that write was overwritten already (or none was made). Never a torn picture."""
        m = self._mapped()
        for _ in range(attempts):
            latest = self.writes
            w = latest if write is None else write
            if w <= 0 or w > latest or latest - w >= self.slots:
                return None
            base = HEADER_BYTES + ((w - 1) % self.slots) * (SLOT_HEADER_BYTES + self.slot_bytes)
            seq, number, timestamp, width, height, fmt_raw, s0, s1, s2, nbytes, crc = SLOT.unpack_from(m, base)
            if seq != 2 * w:
                if write is not None:
                    return None  # being overwritten by a later write
                continue  # the writer moved on meanwhile: take the newer one
            start = base + SLOT_HEADER_BYTES
            data = np.frombuffer(m, np.uint8, nbytes, start).copy()
            seq_end = U64.unpack_from(m, base + SEQ_END_AT)[0]
            torn = U64.unpack_from(m, base)[0] != seq or seq_end != seq
            if torn or zlib.crc32(data[::SAMPLE_STEP].tobytes()) != crc:
                if write is not None:
                    return None
                continue
            fmt = fmt_raw.rstrip(b"\0").decode()
            return RingFrame(
                number, timestamp, width, height, fmt, _as_array(data, fmt, width, height, (s0, s1, s2)), w
            )
        return None

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None


def _as_array(
    data: np.ndarray[Any, np.dtype[np.uint8]], fmt: str, width: int, height: int, strides: tuple[int, int, int]
) -> np.ndarray[Any, np.dtype[np.uint8]]:
    """The slot's bytes as the picture's array, row padding dropped."""
    if fmt in ("rgb24", "bgr24"):
        return data[: strides[0] * height].reshape(height, strides[0])[:, : width * 3].reshape(height, width, 3)
    if fmt == "gray":
        return data[: strides[0] * height].reshape(height, strides[0])[:, :width]
    # yuv420p as one I420 picture, (h * 3/2, w): what OpenCV's COLOR_YUV2RGB_I420 takes
    rows = plane_rows(fmt, height)
    planes, at = [], 0
    for stride, count, plane_width in zip(strides, rows, (width, (width + 1) // 2, (width + 1) // 2), strict=True):
        planes.append(data[at : at + stride * count].reshape(count, stride)[:, :plane_width])
        at += stride * count
    y, u, v = planes
    if width % 2 or height % 2:
        return np.ascontiguousarray(y)  # odd sizes have no I420 packing: the luma only
    chroma = np.concatenate([u.reshape(-1), v.reshape(-1)]).reshape(height // 2, width)
    return np.concatenate([y, chroma])
