"""A segment cut short by a full disk: cut back to its last whole fragment, so it always plays.

A fragmented MP4 is `ftyp`, `moov`, then `moof`+`mdat` pairs (one per fragment), and `mfra` when
finished. A write that failed halfway leaves a torn box at the end ("partial file", "Invalid NAL
unit size" in players); everything before it is whole and plays. Only box headers are read.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

log = logging.getLogger("camctl.record")

_HEADER = struct.Struct(">I4s")


def playable_end(path: Path) -> int:
    """Byte offset where the last whole fragment (or the index after it) ends; 0 when the file
    holds no whole fragment."""
    return _scan(path)[0]


def whole_data_end(path: Path) -> int:
    """Where a file's whole frames end: the last whole fragment of a fragmented MP4 (a segment),
    the file's size for a plain one (a clip). A frame the demuxer hands out past it was cut."""
    end, fragmented = _scan(path)
    return end if fragmented else path.stat().st_size


def _scan(path: Path) -> tuple[int, bool]:
    """(playable end, whether the file has fragments), from the box headers."""
    size = path.stat().st_size
    good = pos = 0
    moov = pending_moof = fragmented = False
    with path.open("rb") as f:
        while pos + _HEADER.size <= size:
            f.seek(pos)
            length, kind = _HEADER.unpack(f.read(_HEADER.size))
            header = _HEADER.size
            if length == 1:  # 64-bit size follows
                (length,) = struct.unpack(">Q", f.read(8))
                header += 8
            if length < header or pos + length > size:
                break  # torn (or size 0, "to the end of the file": never written by camctl's muxer)
            pos += length
            if kind == b"moov":
                moov = True
            elif kind == b"moof":
                pending_moof = fragmented = True
            elif kind == b"mdat" and pending_moof and moov:
                pending_moof = False
                good = pos
            elif kind == b"mfra" and good:
                good = pos
    return good, fragmented


def repair_segment(path: Path) -> bool:
    """Cuts a torn segment back to what plays; removes it when nothing does. True when it stays."""
    try:
        end = playable_end(path)
        if end == 0:
            path.unlink(missing_ok=True)
            log.warning("%s: removed: cut before its first whole fragment (nothing in it plays)", path.name)
            return False
        if end < path.stat().st_size:
            with path.open("r+b") as f:
                f.truncate(end)  # shrinking needs no free space
            log.warning("%s: cut back to its last whole fragment (%d bytes)", path.name, end)
    except OSError as exc:
        log.error("%s: cannot repair: %s", path, exc.strerror or exc)
        return path.exists()
    return True
