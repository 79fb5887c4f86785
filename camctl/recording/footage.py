"""One camera's recordings kept in memory, for the HTTP recordings API and playback.

Rebuilding the index from the disk on every call (a directory walk, the whole journal, a measure
of every file the journal does not know) is what makes mediamtx's `/list` slow after days. Here
the disk is read once; after that only the journal's new lines are read (the recorder appends a
line as each segment closes, so the index is current without a callback), and segments that
retention deleted drop off the front of the list (it deletes oldest first). A compacted journal
(a new file) is read again whole.

What was read is kept beside the footage (`<root>/<cam>/.footage-index.json`, rewritten at most
every 10 minutes): after a restart the index starts from it, reads only the journal lines written
since, and looks for unjournalled files only in the newest hour folders, instead of the whole
journal and every folder (seconds per camera for a few weeks of footage).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from camctl.errors import StorageError
from camctl.recording.copies import FootageCopy, with_copies
from camctl.recording.index import GAP_TOLERANCE, CameraIndex, SegmentRecord, measure_segment, unexplained_gaps
from camctl.recording.journal import Gap, journal_path
from camctl.storage.files import write_atomically
from camctl.storage.layout import Segment, scan_camera_segments, segment_folder
from camctl.units import iso_time

SETTLED = 15.0  # seconds without a write after which an unjournalled file is taken as left by a crash
SNAPSHOT_NAME = ".footage-index.json"
SNAPSHOT_VERSION = 1
SNAPSHOT_EVERY = 600.0  # seconds between rewrites of the kept index, at most (a few MB: spare the SSD)


@dataclass(frozen=True)
class Span:
    """Continuous footage: consecutive segments with no hole between them, all on this disk or
    all only in the copy elsewhere."""

    start: float
    end: float
    frames: int
    complete: bool  # False: a segment in it was cut short (a crash) and holds less than its time
    copy: bool = False  # only in the copy elsewhere (copy.to): fetched from there to play

    def to_json(self) -> dict[str, Any]:
        shown = {
            "start": iso_time(self.start),
            "end": iso_time(self.end),
            "duration": round(self.end - self.start, 3),
            "frames": self.frames,
            "complete": self.complete,
        }
        return shown | ({"copy": True} if self.copy else {})


def spans_of(segments: list[SegmentRecord]) -> list[Span]:
    spans: list[Span] = []
    for seg in segments:
        last = spans[-1] if spans else None
        copy = seg.remote is not None
        if last is not None and seg.start - last.end <= GAP_TOLERANCE and last.copy == copy:
            spans[-1] = Span(
                last.start, max(last.end, seg.end), last.frames + seg.frames, last.complete and seg.journalled, copy
            )
        else:
            spans.append(Span(seg.start, seg.end, seg.frames, seg.journalled, copy))
    return spans


class FootageIndex:
    """Thread-safe; `window()` refreshes from the journal's tail, then answers from memory."""

    def __init__(self, root: Path, camera_id: str, copies: FootageCopy | None = None) -> None:
        """copies: the copy elsewhere, whose segments fill in what this disk no longer has."""
        self.root = root
        self.camera_id = camera_id
        self.copies = copies
        self._lock = threading.Lock()
        self._journal = journal_path(root, camera_id)
        self._journal_id: tuple[int, int] | None = None  # (device, inode) of the journal read
        self._offset = -1  # bytes of it read; -1: nothing loaded yet
        # Oldest first; after a restart, rows of the kept index ([file, start, end, frames, bytes,
        # journalled]) that become records when a window first needs them (weeks of footage are
        # listed a day at a time: making 60k records up front is most of a restart's first listing).
        self._segments: list[SegmentRecord | list[Any]] = []
        self._starts: list[float] = []
        self._files: dict[str, SegmentRecord | list[Any]] = {}  # by file, relative to the camera folder
        self._gaps: list[Gap] = []
        # Files the journal does not know: the one being written (its line comes when it closes),
        # or one a crash left; measured once it has not changed for a while.
        self._unjournalled: dict[str, Segment] = {}
        self._snapshot = root / camera_id / SNAPSHOT_NAME
        self._saved: tuple[float, int] = (float("-inf"), -1)  # (monotonic time, journal offset) kept

    def window(self, start: float | None = None, end: float | None = None) -> CameraIndex:
        """Segments and gaps overlapping [start, end] (None: unbounded), oldest first, with the
        holes no journal line explains as gaps of unknown reason."""
        with self._lock:
            self._refresh()
            first = 0 if start is None else max(0, bisect.bisect_right(self._starts, start) - 1)
            last = len(self._segments) if end is None else bisect.bisect_left(self._starts, end)
            segments = [s for s in self._records(first, last) if start is None or s.end > start]
            gaps = [g for g in self._gaps if (start is None or g.end > start) and (end is None or g.start < end)]
        gaps += unexplained_gaps(self.camera_id, segments, gaps)
        gaps.sort(key=lambda g: g.start)
        index = CameraIndex(self.camera_id, segments, gaps)
        if self.copies is None:
            return index
        return with_copies(index, self.copies.records(self.camera_id, start, end)).window(start, end)

    def nearest(self, moment: float, count: int = 2) -> list[Span]:
        """The spans closest to a moment with no footage (for a 404 that helps)."""
        spans = spans_of(self.window().segments)
        spans.sort(key=lambda s: min(abs(s.start - moment), abs(s.end - moment)))
        return sorted(spans[:count], key=lambda s: s.start)

    # --- keeping current --------------------------------------------------------------------

    def _refresh(self) -> None:
        try:
            st = self._journal.stat()
            journal_id: tuple[int, int] | None = (st.st_dev, st.st_ino)
            size = st.st_size
        except OSError:
            journal_id, size = None, 0
        if self._offset < 0 and self._resume(journal_id, size):
            self._read_tail()
        elif self._offset < 0 or journal_id != self._journal_id or size < self._offset:
            self._load(journal_id)
        elif size > self._offset:
            self._read_tail()
        self._measure_settled()
        self._drop_deleted()
        self._keep()

    # --- the index kept on disk -------------------------------------------------------------

    def _resume(self, journal_id: tuple[int, int] | None, size: int) -> bool:
        """From the kept index, when it describes this journal; False: read everything."""
        try:
            kept = json.loads(self._snapshot.read_bytes())
            if kept.get("version") != SNAPSHOT_VERSION or journal_id is None:
                return False
            if tuple(kept["journal"]) != journal_id or not 0 <= int(kept["offset"]) <= size:
                return False  # a compacted or replaced journal: its offsets mean nothing here
            rows: list[list[Any]] = kept["segments"]
            starts = [float(row[1]) for row in rows]
            names = [str(row[0]) for row in rows]
            gaps = [Gap(self.camera_id, float(a), float(b), str(why)) for a, b, why in kept["gaps"]]
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return False
        cam_dir = self.root / self.camera_id
        self._journal_id, self._offset = journal_id, int(kept["offset"])
        self._segments, self._starts, self._gaps, self._unjournalled = list(rows), starts, gaps, {}
        self._files = dict(zip(names, rows, strict=True))
        # Files written since it was kept (the one being written, one a crash left) are in the
        # newest hour folders; older folders only lose files, to retention.
        since = segment_folder(cam_dir / names[-1]) if names else None
        for seg in scan_camera_segments(self.root, self.camera_id, since):
            name = str(seg.path.relative_to(cam_dir))
            if name not in self._files:
                self._unjournalled[name] = seg
        self._saved = (time.monotonic(), self._offset)
        return True

    def _keep(self) -> None:
        """The index as read so far, beside the footage, at most every 10 minutes (and when new)."""
        saved_at, saved_offset = self._saved
        if self._offset == saved_offset or (saved_offset >= 0 and time.monotonic() - saved_at < SNAPSHOT_EVERY):
            return
        self._saved = (time.monotonic(), self._offset)
        if self._journal_id is None:
            return
        prefix = len(str(self.root / self.camera_id)) + 1  # a file's name relative to its camera folder
        kept = {
            "version": SNAPSHOT_VERSION,
            "journal": list(self._journal_id),
            "offset": self._offset,
            "segments": [
                r if isinstance(r, list) else [str(r.path)[prefix:], r.start, r.end, r.frames, r.bytes, r.journalled]
                for r in self._segments
            ],
            "gaps": [[g.start, g.end, g.reason] for g in self._gaps],
        }
        with contextlib.suppress(StorageError):  # a read-only disk: the next start reads it all
            write_atomically(self._snapshot, json.dumps(kept, separators=(",", ":")).encode())

    def _load(self, journal_id: tuple[int, int] | None) -> None:
        """The whole camera from the disk: its files, and the journal for what it knows of them."""
        self._journal_id, self._offset = journal_id, 0
        self._segments, self._starts, self._files, self._gaps = [], [], {}, []
        self._unjournalled = {}
        entries: dict[str, dict[str, Any]] = {}
        gaps: list[Gap] = []
        for entry in self._new_entries():
            if entry.get("type") == "segment":
                entries[str(entry["file"])] = entry
            else:
                gaps.append(Gap(self.camera_id, float(entry["from"]), float(entry["to"]), str(entry["reason"])))
        cam_dir = self.root / self.camera_id
        for seg in scan_camera_segments(self.root, self.camera_id):
            name = str(seg.path.relative_to(cam_dir))
            known = entries.get(name)
            # A journalled file of another size was cut or replaced after it closed: measured.
            if known is not None and int(known.get("bytes", seg.size)) == seg.size:
                self._add(name, _journalled(self.camera_id, seg.path, known))
            else:
                self._unjournalled[name] = seg
        self._gaps = sorted(gaps, key=lambda g: g.start)

    def _read_tail(self) -> None:
        for entry in self._new_entries():
            if entry.get("type") == "segment":
                name = str(entry["file"])
                path = self.root / self.camera_id / name
                self._unjournalled.pop(name, None)
                if path.is_file():
                    self._add(name, _journalled(self.camera_id, path, entry))
            else:
                gap = Gap(self.camera_id, float(entry["from"]), float(entry["to"]), str(entry["reason"]))
                bisect.insort(self._gaps, gap, key=lambda g: g.start)

    def _measure_settled(self) -> None:
        """An unjournalled file unchanged for SETTLED seconds is no segment being written: the
        recorder was killed (or crashed) while writing it. It is measured and listed as incomplete."""
        now = time.time()
        for name, seg in list(self._unjournalled.items()):
            try:
                st = seg.path.stat()
            except OSError:
                del self._unjournalled[name]  # pruned, or repaired away
                continue
            if now - st.st_mtime >= SETTLED:
                del self._unjournalled[name]
                self._add(name, _measured(self.camera_id, replace(seg, size=st.st_size)))

    def _new_entries(self) -> list[dict[str, Any]]:
        """Whole lines appended since the last read (a line being written waits for next time)."""
        try:
            with self._journal.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return []
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        found = []
        for line in complete.splitlines():
            try:
                entry = json.loads(line)
                if entry.get("type") == "segment":
                    float(entry["start"]), float(entry["end"]), int(entry["frames"]), str(entry["file"])
                elif entry.get("type") == "gap":
                    float(entry["from"]), float(entry["to"]), str(entry["reason"])
                else:
                    continue
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a torn line (a crash): skipped, as read_journal does
            found.append(entry)
        return found

    def _records(self, first: int, last: int) -> list[SegmentRecord]:
        """The segments [first, last), rows of the kept index made records on the way."""
        folder = str(self.root / self.camera_id)
        for at in range(first, min(last, len(self._segments))):
            row = self._segments[at]
            if isinstance(row, list):
                name, start, end, frames, size, journalled = row
                path = Path(f"{folder}/{name}")
                record = SegmentRecord(self.camera_id, path, float(start), float(end), int(frames), int(size),
                                       bool(journalled))  # fmt: skip
                self._segments[at] = self._files[str(name)] = record
        return cast(list[SegmentRecord], self._segments[first:last])

    def _add(self, name: str, record: SegmentRecord) -> None:
        known = self._files.get(name)
        if known is not None:  # measured while being written, journalled since: its times may move
            known_start = float(known[1]) if isinstance(known, list) else known.start
            at = self._segments.index(known, bisect.bisect_left(self._starts, known_start))
            del self._segments[at], self._starts[at]
        at = bisect.bisect_right(self._starts, record.start)
        self._segments.insert(at, record)
        self._starts.insert(at, record.start)
        self._files[name] = record

    def _drop_deleted(self) -> None:
        """Retention deletes the oldest segments first: they leave the index from the front."""
        dropped = 0
        while dropped < len(self._segments) and not self._records(dropped, dropped + 1)[0].path.exists():
            dropped += 1
        if dropped:
            cam_dir = self.root / self.camera_id
            for record in self._records(0, dropped):
                self._files.pop(str(record.path.relative_to(cam_dir)), None)
            del self._segments[:dropped], self._starts[:dropped]
            oldest = self._starts[0] if self._starts else float("inf")
            self._gaps = [g for g in self._gaps if g.end >= oldest]


def _journalled(camera_id: str, path: Path, entry: dict[str, Any]) -> SegmentRecord:
    size = int(entry.get("bytes", 0))
    return SegmentRecord(camera_id, path, float(entry["start"]), float(entry["end"]), int(entry["frames"]), size, True)


def _measured(camera_id: str, seg: Segment) -> SegmentRecord:
    start, duration, frames = measure_segment(seg.path, seg.start)
    return SegmentRecord(camera_id, seg.path, start, start + duration, frames, seg.size, False)
