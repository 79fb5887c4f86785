"""The copy elsewhere as footage: what was copied (an index kept on this disk and beside the
copy), and segments gone from this disk listed and played from the copy.

Beside the copied segments (same tree as on this disk), the copy holds its own index:
`.copy/index/<cam>/<day>/<hour>.jsonl`, a line per copied segment (file, start, end, frames,
bytes, MD5). This box keeps the same files under `<root>/.copy/<target>/index/`; a new box pointed
at the same copy fetches them (`pull_index`) and lists the old box's footage from them.
"""

from __future__ import annotations

import calendar
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from camctl.config import CopyConfig
from camctl.errors import StorageError, UsageError
from camctl.offsite.rclone import CopyTargetError, Rclone, find_rclone, hide_environment_secrets, target_path
from camctl.recording.index import GAP_TOLERANCE, CameraIndex, SegmentRecord, unexplained_gaps
from camctl.storage.copy_index import COPY_FOLDER
from camctl.storage.files import append_fd, folders_inside, json_lines

log = logging.getLogger("camctl.copy")

REMOTE_INDEX = ".copy/index"  # under the target
CACHE_BYTES = 2 * 10**9  # footage fetched from the copy for playback, kept at most


def rclone_for(copy: CopyConfig) -> Rclone:
    hide_environment_secrets()
    return Rclone(find_rclone(copy.rclone), copy.config, copy.bandwidth)


def index_folder(root: Path, copy: CopyConfig) -> Path:
    """This box's record of what one target holds (a new target is copied to from the start)."""
    return root / COPY_FOLDER / hashlib.sha256(copy.to.encode()).hexdigest()[:12] / "index"


def hour_file(relative: str) -> str:
    """`cam_1/2026-12-07/16/cam_1_...mp4` -> `cam_1/2026-12-07/16.jsonl`: its line in the index."""
    cam, day, hour, _name = relative.split("/")
    return f"{cam}/{day}/{hour}.jsonl"


@dataclass(frozen=True)
class Copied:
    """One segment there, checked."""

    file: str  # relative to the storage root and to the target
    start: float
    end: float
    frames: int
    bytes: int
    md5: str
    copied: float  # when it was checked there

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "start": round(self.start, 6), "end": round(self.end, 6), "frames": self.frames,
                "bytes": self.bytes, "md5": self.md5, "copied": round(self.copied, 3)}  # fmt: skip


def read_hour(path: Path) -> list[Copied]:
    """The lines of an hour's index (lines torn by a crash skipped)."""
    found = []
    for e in json_lines(path):
        with contextlib.suppress(ValueError, KeyError, TypeError):
            found.append(Copied(str(e["file"]), float(e["start"]), float(e["end"]), int(e["frames"]),
                                int(e["bytes"]), str(e["md5"]), float(e.get("copied", 0))))  # fmt: skip
    return found


def read_index(folder: Path) -> dict[str, Copied]:
    """Every copied segment the index knows, by file."""
    found: dict[str, Copied] = {}
    for path in sorted(folder.glob("*/*/*.jsonl")):
        for entry in read_hour(path):
            found[entry.file] = entry
    return found


def append_index(folder: Path, entries: Iterable[Copied]) -> list[str]:
    """Adds lines to the hour files; returns those touched (relative to the folder)."""
    by_hour: dict[str, list[Copied]] = {}
    for entry in entries:
        by_hour.setdefault(hour_file(entry.file), []).append(entry)
    for name, lines in by_hour.items():
        path = folder / name
        folders_inside(folder, path.parent)
        fd = append_fd(path)
        try:
            os.write(fd, "".join(json.dumps(e.to_json(), separators=(",", ":")) + "\n" for e in lines).encode())
        finally:
            os.close(fd)
    return sorted(by_hour)


def pull_index(root: Path, copy: CopyConfig, rclone: Rclone | None = None) -> None:
    """The copy's index fetched onto this disk (a new box lists the old box's footage)."""
    (rclone or rclone_for(copy)).pull(target_path(copy.to, REMOTE_INDEX), index_folder(root, copy))


_FOOTAGE_COPIES: dict[tuple[Path, CopyConfig], FootageCopy] = {}


def footage_copy(root: Path, copy: CopyConfig | None) -> FootageCopy | None:
    """The copy as footage, when one is configured: one per storage root and target in a process
    (every camera's index shares its rclone)."""
    if copy is None:
        return None
    key = (root, copy)
    if key not in _FOOTAGE_COPIES:
        _FOOTAGE_COPIES[key] = FootageCopy(root, copy)
    return _FOOTAGE_COPIES[key]


class FootageCopy:
    """Segments of the copy that this disk no longer has (pruned, or the disk replaced), as
    records that fetch themselves when read."""

    def __init__(self, root: Path, copy: CopyConfig) -> None:
        self.root = root
        self.copy = copy
        self._rclone: Rclone | None = None
        self._folder = index_folder(root, copy)
        self._hours: dict[Path, tuple[float, list[Copied]]] = {}  # hour file -> (mtime, lines)
        self._lock = threading.Lock()
        self._pulled = False

    @property
    def rclone(self) -> Rclone:
        """Its own rclone, unthrottled: copy.bandwidth limits uploads, not a playback's fetch."""
        if self._rclone is None:
            self._rclone = rclone_for(self.copy.model_copy(update={"bandwidth": None}))
        return self._rclone

    def _ensure_index(self) -> None:
        """A box with none of the copy's index yet (a new box pointed at the old one's copy)
        fetches it once; a target away: only this disk's footage is listed."""
        if self._pulled or self._folder.is_dir():
            return
        self._pulled = True
        try:
            pull_index(self.root, self.copy, self.rclone)
        except (CopyTargetError, UsageError) as exc:
            log.warning("copy: %s: its footage is not listed (%s)", self.copy.shown, exc)

    def cameras(self) -> set[str]:
        self._ensure_index()
        try:
            return {d.name for d in self._folder.iterdir() if d.is_dir()}
        except OSError:
            return set()

    def records(self, camera_id: str, start: float | None, end: float | None) -> list[SegmentRecord]:
        """The camera's copies overlapping [start, end] whose file is not on this disk."""
        self._ensure_index()
        found = []
        for entry in self._entries(camera_id, start, end):
            local = self.root / entry.file
            if local.exists():
                continue
            found.append(SegmentRecord(camera_id, local, entry.start, entry.end, entry.frames, entry.bytes, True,
                                       remote=self._fetcher(entry)))  # fmt: skip
        return found

    def _entries(self, camera_id: str, start: float | None, end: float | None) -> list[Copied]:
        """The hour files of the days in range only (weeks of them are kept): a segment may start
        in the hour before the range."""
        folder = self._folder / camera_id
        if start is None or end is None or end - start > 31 * 86400:
            paths = folder.glob("*/*.jsonl")
        else:
            days = range(int((start - 3600) // 86400), int(end // 86400) + 1)
            paths = (
                p
                for day in days
                for p in (folder / time.strftime("%Y-%m-%d", time.gmtime(day * 86400))).glob("*.jsonl")
            )
        entries: list[Copied] = []
        for path in sorted(paths):
            hour = _hour_start(path)
            if hour is None or (end is not None and hour > end) or (start is not None and hour + 3600 < start - 3600):
                continue
            entries += [e for e in self._read(path)
                        if (start is None or e.end > start) and (end is None or e.start < end)]  # fmt: skip
        return sorted({e.file: e for e in entries}.values(), key=lambda e: e.start)

    def _read(self, path: Path) -> list[Copied]:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return []
        with self._lock:
            kept = self._hours.get(path)
            if kept is None or kept[0] != mtime:
                kept = self._hours[path] = (mtime, read_hour(path))
            return kept[1]

    def _fetcher(self, entry: Copied) -> Any:
        cache = self.root / COPY_FOLDER / "cache" / entry.file

        def fetch() -> Path:
            if cache.exists() and cache.stat().st_size == entry.bytes:
                with contextlib.suppress(OSError):
                    os.utime(cache)  # recently used: trimmed last
                return cache
            _trim_cache(self.root / COPY_FOLDER / "cache", CACHE_BYTES - entry.bytes)
            try:
                self.rclone.fetch(self.copy.to, entry.file, cache)
            except CopyTargetError as exc:
                raise StorageError(f"{entry.file}: not on this disk, and the copy cannot be read: {exc}") from None
            return cache

        return fetch


def with_copies(index: CameraIndex, copies: list[SegmentRecord]) -> CameraIndex:
    """The disk's index with the copy's segments where the disk has none; gaps the copy fills
    are gone, holes between the two are gaps as between any segments."""
    if not copies:
        return index
    segments = sorted([*index.segments, *copies], key=lambda s: s.start)

    def filled(start: float, end: float) -> bool:
        return any(c.start < end - GAP_TOLERANCE and c.end > start + GAP_TOLERANCE for c in copies)

    gaps = [g for g in index.gaps if not filled(g.start, g.end)]
    known = [g for g in gaps if g.reason not in ("not recording", "recorder stopped (killed or crashed)")]
    gaps = known + unexplained_gaps(index.camera_id, segments, known)
    gaps.sort(key=lambda g: g.start)
    return CameraIndex(index.camera_id, segments, gaps)


def _hour_start(path: Path) -> float | None:
    """The UTC start of an hour file's hour (`<day>/<HH>.jsonl`)."""
    try:
        return float(calendar.timegm(time.strptime(f"{path.parent.name} {path.stem}", "%Y-%m-%d %H")))
    except ValueError:
        return None


def _trim_cache(folder: Path, keep: int) -> None:
    """Least recently used files go until the cache holds at most `keep` bytes."""
    files = []
    for path in folder.rglob("*.mp4") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            st = path.stat()
            files.append((st.st_mtime, st.st_size, path))
    total = sum(size for _t, size, _p in files)
    for _t, size, path in sorted(files):
        if total <= keep:
            break
        path.unlink(missing_ok=True)
        total -= size
