"""Copies closed segments to the copy's target as they are recorded, through rclone.

Oldest wanted first (a target away for hours is caught up in the order footage ages out), in
bounded rounds; a segment counts as copied once the target reports its size and MD5 equal to the
file's here (read back where the target keeps no hash), and it is then written in the copy's
index, here and there. Recording never waits for any of it: this runs beside the recorders and
only reads their closed files."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camctl.config import CopyConfig
from camctl.errors import CamctlError
from camctl.offsite.rclone import Rclone, target_path
from camctl.recording.copies import (
    REMOTE_INDEX,
    Copied,
    append_index,
    index_folder,
    pull_index,
    rclone_for,
    read_hour,
    read_index,
)
from camctl.recording.footage import FootageIndex
from camctl.recording.index import SegmentRecord
from camctl.recording.journal import JOURNAL_NAME
from camctl.storage.layout import Segment
from camctl.storage.retention import tier_of
from camctl.storage.spans import kept_spans
from camctl.units import format_size, iso_time

log = logging.getLogger("camctl.copy")

BATCH_FILES = 32  # segments per rclone run: progress is recorded at least this often
BATCH_BYTES = 512 * 2**20
FULL_SCAN_EVERY = 60.0  # seconds: older segments a mark made wanted, or a failed round left
RETENTION_EVERY = 3600.0
BACKOFF_MAX = 60.0
SPAN_LOGS = ("marks.jsonl", "motion.jsonl")  # copied beside the footage: the timeline's marks there
WANTED_TIERS = {"all": ("continuous", "motion", "marked"), "motion": ("motion", "marked"), "marked": ("marked",)}


@dataclass
class CopyStatus:
    to: str
    what: str
    state: str = "starting"  # copying | up to date | target unreachable | stopped
    backlog_segments: int = 0
    backlog_bytes: int = 0
    oldest_end: float | None = None  # when the oldest segment waiting was closed (epoch)
    copied_segments: int = 0  # since start
    copied_bytes: int = 0
    last_copied: float | None = None
    last_error: str | None = None
    errors: int = 0
    lags: deque[float] = field(default_factory=lambda: deque(maxlen=500))  # close -> checked there

    @property
    def oldest_waiting(self) -> float | None:
        """Seconds since the oldest segment waiting was closed."""
        return None if self.oldest_end is None else max(0.0, time.time() - self.oldest_end)

    def to_json(self) -> dict[str, Any]:
        lags = sorted(self.lags)
        return {
            "to": self.to,
            "what": self.what,
            "state": self.state,
            "backlog": {"segments": self.backlog_segments, "bytes": self.backlog_bytes,
                        "oldest_seconds": None if self.oldest_waiting is None else round(self.oldest_waiting, 1)},
            "copied": {"segments": self.copied_segments, "bytes": self.copied_bytes,
                       "last": iso_time(self.last_copied) if self.last_copied else None},
            "lag_seconds": {"p50": round(statistics.median(lags), 2),
                            "p95": round(lags[min(len(lags) - 1, int(len(lags) * 0.95))], 2)} if lags else None,
            "last_error": self.last_error,
            "errors": self.errors,
        }  # fmt: skip


class Copier:
    def __init__(self, root: Path, copy: CopyConfig, segment_seconds: float, rclone: Rclone | None = None) -> None:
        self.root = root
        self.copy = copy
        self.rclone = rclone or rclone_for(copy)
        self.folder = index_folder(root, copy)
        self.tick = min(5.0, max(1.0, segment_seconds / 4))
        self.status = CopyStatus(copy.shown, copy.what)
        self._copied: dict[str, Copied] | None = None  # loaded at the first round, after the pull
        self._indexes: dict[str, FootageIndex] = {}
        self._since: dict[str, float] = {}
        self._pending: dict[str, SegmentRecord] = {}  # waiting, by file
        self._last_full = float("-inf")
        self._last_retention = float("-inf")

    # --- the loop -------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Rounds until stopped; a target away is retried with backoff, and said once; meanwhile
        the backlog said in status stays current (this disk is read, not the target)."""
        backoff, next_round = 0.0, 0.0
        while not stop.is_set():
            if time.monotonic() < next_round:
                if self._copied is not None:  # known once the copy's index was read
                    with contextlib.suppress(CamctlError, OSError):
                        self.waiting()
            else:
                try:
                    self.round(stop)
                    self._retention()
                    if self.status.last_error is not None:
                        log.info("copy: %s answers again", self.status.to)
                    self.status.last_error, backoff = None, 0.0
                except (CamctlError, OSError) as exc:
                    if stop.is_set():
                        break
                    self._failed(str(exc))
                    backoff = min(BACKOFF_MAX, max(2.0, backoff * 2))
                except Exception:  # a bug must not end the copying unnoticed
                    log.exception("copy: a round failed")
                    self._failed("a round failed (see the log)")
                    backoff = BACKOFF_MAX
                next_round = time.monotonic() + (backoff or self.tick)
            stop.wait(min(self.tick, max(0.05, next_round - time.monotonic())))
        self.status.state = "stopped"

    def _failed(self, reason: str) -> None:
        if reason != self.status.last_error:
            log.warning("copy to %s: %s (%d segment(s) waiting; retrying)", self.status.to, reason,
                        self.status.backlog_segments)  # fmt: skip
        self.status.state, self.status.last_error = "target unreachable", reason
        self.status.errors += 1
        self._last_full = float("-inf")  # what that round left is looked for again

    def stop(self) -> None:
        self.rclone.stop()

    def round(self, stop: threading.Event | None = None) -> int:
        """Copies everything waiting now, a batch at a time, then what closed meanwhile; returns
        the segments copied. A segment is tried once per round."""
        done = 0
        tried: set[str] = set()
        waiting = self.waiting()
        while waiting and not (stop is not None and stop.is_set()):
            self.status.state = "copying"
            batch: list[SegmentRecord] = []
            size = 0
            for record in waiting:
                if batch and (len(batch) >= BATCH_FILES or size + record.bytes > BATCH_BYTES):
                    break
                batch.append(record)
                size += record.bytes
            tried |= {self._relative(r) for r in batch}
            done += self._send(batch)
            waiting = waiting[len(batch) :]
            self._waiting_now(sorted(self._pending.values(), key=lambda r: r.start))
            if len(waiting) > 0:
                log.info("copy: %d segment(s) copied, %d waiting (%s)", done, len(waiting),
                         format_size(self.status.backlog_bytes))  # fmt: skip
            else:  # what closed meanwhile
                waiting = [r for r in self.waiting() if self._relative(r) not in tried]
        if not waiting:
            self.status.state = "up to date"
        return done

    @property
    def copied(self) -> dict[str, Copied]:
        """Every segment the copy holds, by file; read at first use, after fetching the copy's
        index (what another box, or this one before, copied)."""
        if self._copied is None:
            pull_index(self.root, self.copy, self.rclone)
            self._copied = read_index(self.folder)
        return self._copied

    # --- what waits -----------------------------------------------------------------------------

    def waiting(self, full: bool | None = None) -> list[SegmentRecord]:
        """Closed segments wanted there and not yet copied, oldest first (every camera, every
        recorded stream). A full look reads every camera's whole index (a mark may make old
        footage wanted); in between only what closed since the last look is added."""
        copied = self.copied
        now = time.monotonic()
        if full is None:
            full = now - self._last_full >= FULL_SCAN_EVERY
        if full:
            self._last_full = now
            self._pending = {}
        wanted = WANTED_TIERS[self.copy.what]
        for camera in self._camera_folders():
            index = self._indexes.setdefault(camera, FootageIndex(self.root, camera))
            window = index.window(None if full else self._since.get(camera), None)
            if window.segments:
                self._since[camera] = window.segments[-1].start
            records = [r for r in window.segments if r.journalled and self._relative(r) not in copied]
            if records and self.copy.what != "all":
                motion, marks = kept_spans(self.root, [camera.split(".", 1)[0]])
                records = [r for r in records if tier_of(_segment(r), r.end, motion, marks) in wanted]
            self._pending |= {self._relative(r): r for r in records}
        found = sorted(self._pending.values(), key=lambda r: r.start)
        self._waiting_now(found)
        return found

    def _waiting_now(self, waiting: list[SegmentRecord]) -> None:
        self.status.backlog_segments = len(waiting)
        self.status.backlog_bytes = sum(r.bytes for r in waiting)
        self.status.oldest_end = waiting[0].end if waiting else None

    def _camera_folders(self) -> list[str]:
        try:
            folders = self.root.iterdir()
            return sorted(d.name for d in folders if not d.name.startswith(".") and (d / JOURNAL_NAME).is_file())
        except OSError:
            return []

    def _relative(self, record: SegmentRecord) -> str:
        return record.path.relative_to(self.root).as_posix()

    # --- one batch ------------------------------------------------------------------------------

    def _send(self, batch: list[SegmentRecord]) -> int:
        """Sends a batch, checks it there, and records what arrived equal; a file that arrived
        unequal (or was there already, unequal) is sent once more over it, then left for a later
        round and said."""
        digests: dict[str, tuple[SegmentRecord, str]] = {}
        for record in batch:
            try:
                digests[self._relative(record)] = (record, _md5(record.path))
            except FileNotFoundError:
                self._pending.pop(self._relative(record), None)  # pruned meanwhile
                continue
        files = sorted(digests)
        logs = sorted({f"{f.split('/')[0]}/{name}" for f in files for name in SPAN_LOGS
                       if (self.root / f.split("/")[0] / name).is_file()})  # fmt: skip
        checked: list[Copied] = []
        unequal: dict[str, str] = {}
        for attempt in (1, 2):
            sending = files if attempt == 1 else sorted(unequal)
            if not sending:
                break
            self.rclone.copy(self.root, sending + (logs if attempt == 1 else []), self.copy.to, force=attempt > 1)
            arrived, unequal = self._check(sending, digests)
            checked += arrived
        now = time.time()
        for name, why in unequal.items():
            log.warning("copy: %s arrived unequal twice (%s): sent again in a later round", name, why)
            self.status.last_error = f"{name} arrived unequal ({why})"
            self._last_full = float("-inf")
        if checked:
            touched = append_index(self.folder, checked)
            self.rclone.copy(self.folder, touched, target_path(self.copy.to, REMOTE_INDEX))
            for entry in checked:
                self.copied[entry.file] = entry
                self._pending.pop(entry.file, None)
                self.status.lags.append(entry.copied - entry.end)
            self.status.copied_segments += len(checked)
            self.status.copied_bytes += sum(e.bytes for e in checked)
            self.status.last_copied = now
        return len(checked)

    def _check(
        self, files: list[str], digests: dict[str, tuple[SegmentRecord, str]]
    ) -> tuple[list[Copied], dict[str, str]]:
        """(what is there with this size and MD5, {file: how it differs}); a target that keeps no
        hash has its files read back."""
        there = self.rclone.listing(self.copy.to, files)
        unhashed = [f for f in files if f in there and there[f][1] is None]
        read_back = self.rclone.md5_by_reading(self.copy.to, unhashed) if unhashed else {}
        now = time.time()
        arrived: list[Copied] = []
        unequal: dict[str, str] = {}
        for name in files:
            record, digest = digests[name]
            size, md5 = there.get(name, (-1, None))
            md5 = md5 or read_back.get(name)
            if size == record.bytes and md5 == digest:
                arrived.append(Copied(name, record.start, record.end, record.frames, record.bytes, digest, now))
            elif not record.path.exists():  # pruned here meanwhile: nothing to send any more
                self._pending.pop(name, None)
            else:
                unequal[name] = (
                    "missing there" if size < 0 else f"{size} bytes, MD5 {md5}; here {record.bytes}, {digest}"
                )
        return arrived, unequal

    # --- the copy's own retention ---------------------------------------------------------------

    def _retention(self) -> None:
        """Copies older than copy.retention go, there and from this box's index of them."""
        age = self.copy.retention
        now = time.monotonic()
        if age is None or now - self._last_retention < RETENTION_EVERY:
            return
        self._last_retention = now
        self.rclone.delete_older(self.copy.to, age)
        cutoff = time.time() - age
        for path in self.folder.glob("*/*/*.jsonl"):
            entries = read_hour(path)
            if entries and max(e.end for e in entries) < cutoff:
                path.unlink(missing_ok=True)
                for entry in entries:
                    self.copied.pop(entry.file, None)


def _segment(record: SegmentRecord) -> Segment:
    return Segment(record.start, record.camera_id, record.path, record.bytes)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
