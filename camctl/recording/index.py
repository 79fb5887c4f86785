"""What is recorded: segments and gaps per camera, rebuilt from the disk at every call.

The files are the truth. The journal says what the recorder knew (exact start and end, frames,
why a gap happened); a file it does not mention (the recorder was killed while writing it) is
measured by reading the file, and time between segments that no journal entry explains is a gap
whose reason is unknown.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import av.error

from camctl.recording.journal import Gap, read_journal
from camctl.recording.repair import whole_data_end
from camctl.recording.segment_writer import START_TAG
from camctl.storage.layout import Segment, scan_segments
from camctl.units import iso_time

GAP_TOLERANCE = 1.0  # seconds between two segments that still count as continuous


@dataclass(frozen=True)
class SegmentRecord:
    camera_id: str
    path: Path
    start: float
    end: float
    frames: int
    bytes: int
    journalled: bool  # False: measured from the file (being written, or the recorder was killed)
    # Footage gone from this disk and kept in the copy elsewhere: fetches it, returns where it is.
    remote: Callable[[], Path] | None = field(default=None, compare=False, repr=False)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def readable(self) -> Path:
        """The file to read: this disk's, or the copy's fetched into the cache."""
        return self.path if self.remote is None else self.remote()


@dataclass(frozen=True)
class CameraIndex:
    camera_id: str
    segments: list[SegmentRecord]
    gaps: list[Gap]

    def window(self, start: float | None, end: float | None) -> CameraIndex:
        """Only what overlaps [start, end]."""

        def overlaps(a: float, b: float) -> bool:
            return (start is None or b > start) and (end is None or a < end)

        return CameraIndex(
            self.camera_id,
            [s for s in self.segments if overlaps(s.start, s.end)],
            [g for g in self.gaps if overlaps(g.start, g.end)],
        )


def build_index(root: Path, camera_ids: list[str] | None = None) -> dict[str, CameraIndex]:
    by_camera: dict[str, list[Segment]] = {}
    for seg in scan_segments(root):
        by_camera.setdefault(seg.camera_id, []).append(seg)
    wanted = camera_ids if camera_ids is not None else sorted(by_camera)
    return {cam: camera_index(root, cam, by_camera.get(cam, [])) for cam in wanted}


def camera_index(root: Path, camera_id: str, segments: list[Segment]) -> CameraIndex:
    entries, journal_gaps = read_journal(root, camera_id)
    cam_dir = root / camera_id
    records: list[SegmentRecord] = []
    for seg in segments:
        entry = entries.get(str(seg.path.relative_to(cam_dir)))
        if entry is not None:
            records.append(
                SegmentRecord(
                    camera_id,
                    seg.path,
                    float(entry["start"]),
                    float(entry["end"]),
                    int(entry["frames"]),
                    seg.size,
                    True,
                )
            )
        else:
            start, duration, frames = measure_segment(seg.path, seg.start)
            records.append(SegmentRecord(camera_id, seg.path, start, start + duration, frames, seg.size, False))
    records.sort(key=lambda r: r.start)
    gaps = [g for g in journal_gaps if not records or g.end >= records[0].start]
    gaps += unexplained_gaps(camera_id, records, journal_gaps)
    gaps.sort(key=lambda g: g.start)
    return CameraIndex(camera_id, records, gaps)


def unexplained_gaps(camera_id: str, records: list[SegmentRecord], known: list[Gap]) -> list[Gap]:
    """Holes between consecutive segments that no journalled gap covers."""
    found: list[Gap] = []
    for prev, nxt in itertools.pairwise(records):
        if nxt.start - prev.end <= GAP_TOLERANCE:
            continue
        if any(g.start <= prev.end + GAP_TOLERANCE and g.end >= nxt.start - GAP_TOLERANCE for g in known):
            continue
        reason = "recorder stopped (killed or crashed)" if not prev.journalled else "not recording"
        found.append(Gap(camera_id, prev.end, nxt.start, reason))
    return found


def measure_segment(path: Path, named_start: float) -> tuple[float, float, int]:
    """(start, duration, frames) read from the file itself; a file cut short by a crash is
    measured up to its last complete fragment."""
    start, frames, first, last_end = named_start, 0, None, 0.0
    try:
        with av.open(str(path)) as container:
            comment = str(container.metadata.get("comment", ""))
            if comment.startswith(START_TAG):
                with contextlib.suppress(ValueError):
                    start = float(comment[len(START_TAG) :].split(maxsplit=1)[0])
            stream = container.streams.video[0]
            tb = stream.time_base
            whole = whole_data_end(path)
            try:
                for packet in container.demux(stream):
                    if packet.dts is None or tb is None:
                        continue
                    if not within(packet, whole):
                        break  # in a torn last fragment: it would not decode
                    frames += 1
                    at = float(packet.dts * tb)
                    first = at if first is None else first
                    last_end = at + float((packet.duration or 0) * tb)
            except av.error.FFmpegError:
                pass  # the torn end of a killed recording
    except (av.error.FFmpegError, IndexError, OSError):
        return start, 0.0, 0
    return start, max(0.0, last_end - (first or 0.0)), frames


def within(packet: Any, whole: int) -> bool:
    """Whether a demuxed packet lies before `whole` (repair.whole_data_end): the demuxer still
    hands out, shortened, the frame a crash or a failed disk cut in two, and it does not decode."""
    return packet.pos is None or packet.pos < 0 or packet.pos + packet.size <= whole


def index_json(index: CameraIndex) -> dict[str, Any]:
    return {
        "camera_id": index.camera_id,
        "segments": [
            {
                "path": str(s.path),
                "start": iso_time(s.start),
                "end": iso_time(s.end),
                "duration": round(s.duration, 3),
                "frames": s.frames,
                "bytes": s.bytes,
                "complete": s.journalled,
                **({"copy": True} if s.remote is not None else {}),  # kept elsewhere only (copy.to)
            }
            for s in index.segments
        ],
        "gaps": [g.to_report() for g in index.gaps],
        "recorded_seconds": round(sum(s.duration for s in index.segments), 3),
        "bytes": sum(s.bytes for s in index.segments),
    }
