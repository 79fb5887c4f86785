"""One segment file: fragmented MP4, stream copy, readable up to its last fragment at any moment.

Fragments are cut at every keyframe and at least every second, and flushed to the file as they
are cut: a SIGKILL or power loss costs at most the fragment in progress. Closing writes the
fragment index (mfra), so a finished file seeks fast and shows its true duration.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from camctl.errors import StorageError
from camctl.media.access_units import AccessUnit
from camctl.media.audio import AudioSample, AudioTrack
from camctl.rules.mp4 import MOVFLAGS
from camctl.storage.files import folders_inside
from camctl.storage.layout import segment_path

TIME_BASE = Fraction(1, 90000)
TICKS = 90000  # per second: float arithmetic per frame, Fractions only where PyAV wants one
START_TAG = "camctl-start="


@dataclass(frozen=True)
class SegmentInfo:
    camera_id: str
    path: Path
    start: float  # wall clock of the first frame
    end: float  # wall clock where the last frame ends
    frames: int
    bytes: int
    codec: str
    audio: str | None = None  # the audio track's codec, when the segment has one

    def to_json(self, root: Path) -> dict[str, Any]:
        audio = {"audio": self.audio} if self.audio else {}
        return audio | {
            "type": "segment",
            "file": str(self.path.relative_to(root / self.camera_id)),
            "start": round(self.start, 6),
            "end": round(self.end, 6),
            "frames": self.frames,
            "bytes": self.bytes,
            "codec": self.codec,
        }


class SegmentWriter:
    def __init__(
        self,
        root: Path,
        camera_id: str,
        codec: str,
        width: int,
        height: int,
        start: float,
        extradata: bytes | None,
        audio: AudioTrack | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.codec = codec
        self.start = start
        self.frames = 0
        self.audio_samples = 0  # audio packets written
        self.failed = False  # a write failed: the file may end in a torn fragment
        self.end = start
        self._pending: tuple[AccessUnit, float, float] | None = None  # the last frame, until the next
        self.path = _free_path(root, camera_id, start)
        # With two tracks the muxer interleaves them; it must never hold video back for long waiting
        # for audio that stopped (what is held is what a crash loses).
        options = {"movflags": MOVFLAGS, "frag_duration": "1000000", "flush_packets": "1",
                   "max_interleave_delta": "500000"}  # fmt: skip
        try:
            folders_inside(root, self.path.parent)
            self.container: Any = av.open(str(self.path), "w", format="mp4", options=options)
        except (OSError, av.error.FFmpegError) as exc:
            raise _storage_error(self.path, exc) from None
        self.container.metadata["comment"] = f"{START_TAG}{start:.6f} camera={camera_id}"
        self.stream: Any = self.container.add_mux_stream(codec, width=width, height=height)
        self.stream.time_base = TIME_BASE
        self.audio_codec: str | None = None
        self._audio: Any = None
        self._audio_next = 0  # where the next audio packet starts, in samples from the segment start
        if audio is not None:
            self._audio = self.container.add_stream_from_template(audio.template)
            self._audio.time_base = Fraction(1, audio.info.sample_rate)
            self.audio_codec = audio.info.recorded_as
        # The first frame also carries the SDP's parameter sets (Annex B), for cameras that send
        # them only there: the muxer builds the MP4 codec header from that first frame.
        self._prefix = extradata if extradata and extradata.startswith((b"\0\0\1", b"\0\0\0\1")) else b""

    def write(self, au: AccessUnit, dts: float, pts: float, duration: float) -> None:
        """Adds one frame decoded at wall-clock dts and shown at pts (seconds); duration: that of
        the camera's frame interval. A frame lasts until the next one is decoded, so it is muxed
        when the next arrives (or the segment ends): no hole between frames, nor between segments."""
        self._mux_pending(dts)
        self._pending = (au, dts, pts)
        self.end = dts + duration  # on the decode timeline, as `start` is; final once the next frame comes

    def end_video(self, cut: float) -> None:
        """The next frame (a keyframe at `cut`) opens the next segment: the last frame lasts until
        then, in the file and in the journal alike."""
        self._mux_pending(cut)

    def _mux_pending(self, until: float) -> None:
        if self._pending is None:
            return
        au, dts, pts = self._pending
        self._pending = None
        if until <= dts:  # a camera's timestamps going back: the nominal interval
            until = self.end
        packet = av.Packet(self._prefix + au.data if self._prefix else au.data)
        self._prefix = b""
        packet.dts = round((dts - self.start) * TICKS)
        packet.pts = max(packet.dts, round((pts - self.start) * TICKS))
        packet.duration = max(1, round((until - self.start) * TICKS) - packet.dts)
        packet.time_base = TIME_BASE
        packet.is_keyframe = au.key
        packet.stream = self.stream
        self.end = until
        self._mux(packet)
        self.frames += 1

    def write_audio(self, sample: AudioSample) -> None:
        """Adds one audio packet at its wall-clock time; audio from before the segment's start
        belongs to the previous segment, and a packet a hair early follows the previous one."""
        if self._audio is None:
            return
        at = round((sample.t - self.start) * sample.sample_rate)
        if at < self._audio_next:
            if at + sample.samples // 2 < self._audio_next:
                return  # mostly overlaps what is written: a repeat or the previous segment's
            at = self._audio_next
        packet = av.Packet(sample.data)
        packet.pts = packet.dts = at
        packet.duration = sample.samples
        packet.time_base = self._audio.time_base
        packet.stream = self._audio
        self._mux(packet)
        self._audio_next = at + sample.samples
        self.audio_samples += 1

    def _mux(self, packet: Any) -> None:
        try:
            self.container.mux(packet)
        except (OSError, av.error.FFmpegError) as exc:
            self.failed = True  # the file may end in a torn fragment now
            raise _storage_error(self.path, exc) from None

    def close(self) -> SegmentInfo:
        """Finishes the file (last fragment and index). Safe to call after a write error."""
        try:
            if not self.failed:
                with contextlib.suppress(StorageError):  # failed: the caller keeps what plays of it
                    self._mux_pending(self.end)
            self.container.close()
        except (OSError, av.error.FFmpegError) as exc:
            self.failed = True
            raise _storage_error(self.path, exc) from None
        finally:
            self.container = _Closed()
        audio = self.audio_codec if self.audio_samples else None
        return SegmentInfo(
            self.camera_id, self.path, self.start, self.end, self.frames, _size(self.path), self.codec, audio
        )


class _Closed:
    def mux(self, _packet: object) -> None:
        raise StorageError("segment already closed")

    def close(self) -> None:
        return None


def _free_path(root: Path, camera_id: str, start: float) -> Path:
    """The segment's path; a name is never reused (two starts within one second: the next second),
    so an existing recording is never overwritten, nor named after a moment yet to come (a frame
    may be placed a moment ahead of its arrival after a burst; the exact start is in the file)."""
    second = int(min(start, time.time()))
    while True:
        path = segment_path(root, camera_id, datetime.fromtimestamp(second, UTC))
        if not path.exists():
            return path
        second += 1


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _storage_error(path: Path, exc: BaseException) -> StorageError:
    reason = getattr(exc, "strerror", None) or type(exc).__name__
    return StorageError(f"cannot write {path}: {str(reason).rstrip('.').lower()}")
