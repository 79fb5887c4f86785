"""A camera's latest decoded pictures in shared memory, for analysis on the same box without JPEG.

One file per camera in /dev/shm (POSIX shared memory on Linux), written by the process that
decodes the camera (its run-all worker, or `camctl ingest`), mapped read-only by any consumer in
the file's group (mode 0640). Layout, little-endian, all offsets in bytes:

    header (64):  magic "CAMRING1" | version u32 | slots u32 | slot_bytes u32 | pad u32 |
                  writes u64 (frames written so far; the latest is in slot (writes-1) % slots) |
                  writer_pid u32 | pad u32 | created f64 | pad
    slot i at 64 + i * (72 + slot_bytes):
      slot header (72): seq u64 | number u64 | timestamp f64 | width u32 | height u32 |
                        format 8s (yuv420p, gray, rgb24, bgr24) | stride u32 x 3 | nbytes u32 |
                        sample_crc u32 | pad | seq_end u64 (at 64)
      data: the planes one after the other, each `stride x rows` bytes (yuv420p: Y, U, V)

A sequence counter per slot makes torn reads detectable (a seqlock): write number w sets `seq` to
2w+1 before touching the slot and `seq_end`, then `seq`, to 2w+2 after. A reader copies the slot
and keeps the copy only if `seq` read before equals `seq` and `seq_end` read after, and is even.
Python has no memory barrier to put between the picture and the counters, and the Jetson's ARM
cores may make stores visible out of order; so the slot also carries the CRC-32 of every
SAMPLE_STEP-th byte of its picture (a few KB of a 1080p one), which the reader checks on its copy:
a picture torn across two writes differs there.
No lock is ever taken, so a consumer that dies mid-read leaves nothing behind; a writer that
restarts replaces the file (readers see a new inode and map it again).
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

RING_DIR = Path("/dev/shm")  # noqa: S108 - POSIX shared memory itself; each ring named per camera
MAGIC = b"CAMRING1"
VERSION = 2
HEADER = struct.Struct("<8sIIIIQIId")  # magic, version, slots, slot_bytes, pad, writes, pid, pad, created
HEADER_BYTES = 64
WRITES_AT = 24  # offset of `writes` in the header
SLOT = struct.Struct("<QQdII8sIIIII")  # seq, number, timestamp, width, height, format, strides x3, nbytes, crc
SLOT_HEADER_BYTES = 72
SEQ_END_AT = 64  # offset of seq_end in a slot header
SAMPLE_STEP = 997  # a prime: the sampled bytes fall on every column, not one (row strides are even)
U64 = struct.Struct("<Q")
FORMATS = ("yuv420p", "gray", "rgb24", "bgr24")
DEFAULT_SLOTS = 4


class RingMissing(LookupError):
    """No ring for that camera on this box (not decoded here, or not started yet)."""


def ring_name(camera_id: str, node: str) -> str:
    """A file name safe for any camera id and node name, and stable across restarts."""
    digest = hashlib.sha256(f"{node}\0{camera_id}".encode()).hexdigest()[:12]
    slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in camera_id)[:32]
    return f"camctl-{slug}-{digest}"


def plane_rows(fmt: str, height: int) -> tuple[int, ...]:
    if fmt == "yuv420p":
        return (height, (height + 1) // 2, (height + 1) // 2)
    return (height,)


def picture_bytes(frame: Any) -> int:
    """Bytes a decoded picture (av.VideoFrame) takes in a slot: its planes, rows of padding kept."""
    rows = plane_rows(frame.format.name, frame.height)
    return sum(plane.line_size * count for plane, count in zip(frame.planes, rows, strict=True))


class RingWriter:
    """Owned by the process that decodes the camera; not thread-safe (one camera thread writes)."""

    def __init__(self, name: str, slot_bytes: int, slots: int = DEFAULT_SLOTS, folder: Path = RING_DIR) -> None:
        self.name, self.slots, self.slot_bytes = name, slots, slot_bytes
        self.path = folder / name
        size = HEADER_BYTES + slots * (SLOT_HEADER_BYTES + slot_bytes)
        # A new file each time (then renamed over the old one): readers of a ring left by a previous
        # worker notice the new inode and map again, instead of reading a file that shrank under them.
        tmp = folder / f".{name}.{os.getpid()}"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            os.fchmod(fd, 0o640)  # the umask must not widen nor narrow it: the group reads
            os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        HEADER.pack_into(self._map, 0, MAGIC, VERSION, slots, slot_bytes, 0, 0, os.getpid(), 0, time.time())
        tmp.replace(self.path)
        self.writes = 0

    def write(self, number: int, timestamp: float, frame: Any) -> int | None:
        """Copies a decoded picture (av.VideoFrame in one of FORMATS) into the next slot; returns
        the write's count (1-based), or None when the picture does not fit (a larger camera)."""
        fmt = frame.format.name
        nbytes = picture_bytes(frame)
        if fmt not in FORMATS or nbytes > self.slot_bytes:
            return None
        w = self.writes
        slot = w % self.slots
        base = HEADER_BYTES + slot * (SLOT_HEADER_BYTES + self.slot_bytes)
        m = self._map
        U64.pack_into(m, base, 2 * w + 1)  # being written
        start = at = base + SLOT_HEADER_BYTES
        strides = [plane.line_size for plane in frame.planes]
        for plane, stride, count in zip(frame.planes, strides, plane_rows(fmt, frame.height), strict=True):
            size = stride * count
            m[at : at + size] = memoryview(plane)[:size]
            at += size
        padded = [*strides, 0, 0][:3]
        crc = zlib.crc32(m[start : start + nbytes : SAMPLE_STEP])
        SLOT.pack_into(m, base, 2 * w + 1, number, timestamp, frame.width, frame.height, fmt.encode(), *padded, nbytes,
                       crc)  # fmt: skip
        U64.pack_into(m, base + SEQ_END_AT, 2 * w + 2)
        U64.pack_into(m, base, 2 * w + 2)  # whole
        self.writes = w + 1
        U64.pack_into(m, WRITES_AT, self.writes)
        return self.writes

    def close(self, remove: bool = True) -> None:
        with contextlib.suppress(ValueError, BufferError):
            self._map.close()
        if remove:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
