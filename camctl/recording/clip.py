"""Export a time range of one camera into a single MP4, by stream copy across segment files.

The clip starts at the keyframe at or before the requested start (a clip cannot start decoding
mid-GOP), so it may begin up to one keyframe interval early. Timestamps keep wall-clock spacing:
a gap inside the range stays a gap in the clip, and is reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import av
import av.error

from camctl.errors import NoFootage, StorageError
from camctl.recording.index import CameraIndex, SegmentRecord, within
from camctl.recording.journal import Gap
from camctl.recording.repair import whole_data_end
from camctl.units import iso_time

TIME_BASE = Fraction(1, 90000)


@dataclass(frozen=True)
class ClipResult:
    camera_id: str
    path: Path
    start: float  # wall clock of the first frame in the clip
    end: float
    frames: int
    bytes: int
    segments: int
    gaps: list[Gap]
    from_copy: bool = False  # some of it was fetched from the copy elsewhere (this disk lost it)

    def to_json(self) -> dict[str, Any]:
        return {
            "camera_id": self.camera_id,
            "path": str(self.path),
            "start": iso_time(self.start),
            "end": iso_time(self.end),
            "duration": round(self.end - self.start, 3),
            "frames": self.frames,
            "bytes": self.bytes,
            "segments": self.segments,
            "gaps": [g.to_report() for g in self.gaps],
        }


def export_clip(
    index: CameraIndex,
    start: float,
    end: float,
    output: Path,
    progress: Callable[[float], None] = lambda _fraction: None,
) -> ClipResult:
    window = index.window(start, end)
    if not window.segments:
        raise NoFootage(_no_footage(index, start, end))
    tmp = output.with_name(f".{output.name}.{os.getpid()}.part")
    try:
        writer = _ClipWriter(tmp, window.segments[0])
        try:
            for n, record in enumerate(window.segments):
                writer.copy(record, start, end)
                progress((n + 1) / len(window.segments))
        finally:
            writer.close()
        if writer.frames == 0:
            raise NoFootage(_no_footage(index, start, end))
        tmp.replace(output)
    except OSError as exc:
        raise StorageError(f"cannot write {output}: {(exc.strerror or str(exc)).lower()}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return ClipResult(
        index.camera_id,
        output,
        writer.first_t or start,
        writer.last_end,
        writer.frames,
        output.stat().st_size,
        len(window.segments),
        window.gaps,
        any(s.remote is not None for s in window.segments),
    )


FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"  # playable while it is being written


class Sink(Protocol):
    """Where a streamed clip goes: anything PyAV can write to."""

    def write(self, data: Any, /) -> int: ...


def stream_clip(
    index: CameraIndex,
    start: float,
    end: float,
    sink: Sink,
    started: Callable[[float], None] = lambda _first: None,
) -> int:
    """The range as a fragmented MP4 written to `sink` as it is read (a fragment per GOP), for a
    player that starts before the end is cut; started(t) is told the first frame's time before
    any byte is written. Returns the frames written; NoFootage when there are none."""
    window = index.window(start, end)
    if not window.segments:
        raise NoFootage(_no_footage(index, start, end))
    writer = _ClipWriter(sink, window.segments[0], FRAGMENTED, started)
    try:
        for record in window.segments:
            writer.copy(record, start, end)
    finally:
        writer.close()
    if writer.frames == 0:
        raise NoFootage(_no_footage(index, start, end))
    return writer.frames


class _ClipWriter:
    """Video and (when the first segment has it) audio, by stream copy, on one wall-clock timeline."""

    def __init__(
        self,
        path: Path | Sink,
        first: SegmentRecord,
        movflags: str = "+faststart",
        started: Callable[[float], None] = lambda _first: None,
    ) -> None:
        self._started = started
        self.frames = 0
        self.first_t: float | None = None
        self.last_end = 0.0
        self._pending: list[tuple[float, Any, Fraction]] = []  # the GOP before the clip's start
        self._sources: list[Any] = []  # segments open for reading: every one whose packets may be pending
        self.audio: Any = None
        self._audio_next = 0  # where the next audio packet goes, in samples
        try:
            target = str(path) if isinstance(path, Path) else path
            self.container: Any = av.open(target, "w", format="mp4", options={"movflags": movflags})
            with av.open(str(first.readable())) as template:
                self.stream: Any = self.container.add_stream_from_template(template.streams.video[0])
                if template.streams.audio:
                    self.audio = self.container.add_stream_from_template(template.streams.audio[0])
        except av.error.FFmpegError as exc:
            raise StorageError(f"cannot start the clip from {first.path}: {exc.strerror or exc}") from None
        self.stream.time_base = TIME_BASE
        if self.audio is not None:
            self.audio.time_base = Fraction(1, self.audio.codec_context.sample_rate or 48000)

    def copy(self, record: SegmentRecord, start: float, end: float) -> None:
        try:
            whole = None if record.journalled else whole_data_end(record.path)
            # Left open while its packets wait in _pending: a packet read from a closed container
            # points at a freed stream (a crash when the GOP before `start` is in this segment and
            # the clip's first picture in the next).
            container = av.open(str(record.readable()))
            self._sources.append(container)
            streams: list[Any] = [container.streams.video[0]]
            if self.audio is not None and container.streams.audio:
                streams.append(container.streams.audio[0])
            for packet in container.demux(streams):
                tb = packet.time_base or TIME_BASE
                if packet.dts is None:
                    continue
                if whole is not None and not within(packet, whole):
                    return  # the torn end of a segment cut short
                t = record.start + float(packet.dts * tb)
                if t >= end:
                    if packet.stream.type == "video":
                        return
                    continue
                if t < start and self.first_t is None:
                    if packet.is_keyframe and packet.stream.type == "video":
                        self._pending.clear()
                    self._pending.append((t, packet, tb))
                    continue
                for early_t, early, early_tb in self._pending:
                    self._mux(early_t, early, early_tb)
                self._pending.clear()
                if len(self._sources) > 1:
                    self._close_sources(keep=container)
                self._mux(t, packet, tb)
        except av.error.FFmpegError:
            return  # a segment cut short by a crash: keep what it had

    def _mux(self, t: float, packet: Any, tb: Fraction) -> None:
        if packet.stream.type == "audio":
            self._mux_audio(t, packet, tb)
            return
        if self.first_t is None:
            if not packet.is_keyframe:
                return  # only start on a keyframe
            self.first_t = t
            self._started(t)
        offset = packet.pts - packet.dts if packet.pts is not None else 0
        packet.dts = round((t - self.first_t) / TIME_BASE)
        packet.pts = packet.dts + round(offset * tb / TIME_BASE)
        packet.duration = round((packet.duration or 0) * tb / TIME_BASE)
        packet.time_base = TIME_BASE
        packet.stream = self.stream
        self.container.mux(packet)
        self.frames += 1
        self.last_end = t + float(packet.duration * TIME_BASE)

    def _mux_audio(self, t: float, packet: Any, tb: Fraction) -> None:
        """Audio packets back to back from the clip's first picture; a hair's overlap is absorbed."""
        if self.first_t is None or self.audio is None:
            return
        rate = self.audio.time_base.denominator
        at = round((t - self.first_t) * rate)
        samples = round((packet.duration or 0) * tb * rate)
        if at < self._audio_next:
            if at + samples // 2 < self._audio_next:
                return
            at = self._audio_next
        packet.dts = packet.pts = at
        packet.duration = samples
        packet.time_base = self.audio.time_base
        packet.stream = self.audio
        self.container.mux(packet)
        self._audio_next = at + samples

    def _close_sources(self, keep: Any) -> None:
        for source in self._sources:
            if source is not keep:
                source.close()
        self._sources = [keep]

    def close(self) -> None:
        self._pending.clear()
        for source in self._sources:
            source.close()
        self._sources = []
        self.container.close()


def _no_footage(index: CameraIndex, start: float, end: float) -> str:
    span = f"{iso_time(start)} to {iso_time(end)}"
    if not index.segments:
        return f"{index.camera_id}: nothing recorded (no segments)"
    return (
        f"{index.camera_id}: no footage from {span} "
        f"(recorded: {iso_time(index.segments[0].start)} to {iso_time(index.segments[-1].end)})"
    )
