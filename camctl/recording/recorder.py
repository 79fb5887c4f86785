"""Records one camera into consecutive segments: a consumer of the camera's shared session.

Every frame received lands in exactly one segment: a segment ends just before the first keyframe
at or after its boundary and the next one starts with that keyframe. Segment boundaries are aligned
to the wall clock (every `segment_seconds`), frames are placed on the wall clock by the Timeline, so
consecutive segments are contiguous in time. When the camera goes away the open segment is closed
and the time until the first keyframe after reconnecting is journalled as a gap with its reason.
When storage fails, frames are dropped (and counted) while the camera session goes on, and a new
segment is tried every `storage_retry` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import av.error

from camctl.config import StreamView
from camctl.errors import StorageError
from camctl.media.access_units import AccessUnit, AccessUnitAssembler
from camctl.media.audio import AudioSample, AudioTrack
from camctl.media.decode import picture_size
from camctl.media.session import DEFAULT_BACKOFF, Backoff, CameraSession, Consumer
from camctl.media.source import Packet, StreamInfo
from camctl.recording.index import GAP_TOLERANCE, measure_segment
from camctl.recording.journal import Gap, Journal
from camctl.recording.lock import RecorderLock
from camctl.recording.repair import repair_segment
from camctl.recording.segment_writer import SegmentInfo, SegmentWriter
from camctl.recording.timeline import Timeline

log = logging.getLogger("camctl.record")

STORAGE_RETRY_SECONDS = 1.0  # forced retention has made room by then, or the disk is really broken
JOURNAL_COMPACT_EVERY = 60  # segments (an hour at the default 60 s); also at the first one
JOURNAL_GAP_DAYS = 7  # gaps older than this leave the journal (their footage is long gone)
AUDIO_HELD = 200  # audio packets waiting for the video to catch up (seconds of audio; then dropped)
AUDIO_WAIT = 1.0  # seconds a finished segment waits for the last of its audio
HOLE_SECONDS = 1.0  # a pause of the camera this long ends the segment and is journalled as a gap


@dataclass
class RecorderStatus:
    state: str = "starting"  # recording, offline, storage error, stopped
    error: str | None = None
    segments: int = 0
    frames: int = 0
    dropped_frames: int = 0  # received but not written (storage trouble)
    audio: str | None = None  # what the audio is recorded as (aac, opus), when the camera sends any
    audio_packets: int = 0  # received: a camera may announce audio and send none (muted)
    failure: str | None = None  # kind of the latest failure: storage, auth, unreachable, timeout
    reconnects: int = 0
    current: Path | None = None
    gaps: list[Gap] = field(default_factory=list)

    @property
    def storage_lost(self) -> float:
        """Seconds of footage lost to storage trouble (full disk, write errors)."""
        return sum(g.end - g.start for g in self.gaps if g.reason.startswith("storage"))


class CameraRecorder:
    def __init__(
        self,
        camera: StreamView,
        root: Path,
        segment_seconds: float,
        on_segment: Callable[[SegmentInfo], None] = lambda _info: None,
        on_storage_error: Callable[[StorageError], None] = lambda _exc: None,
        storage_retry: float = STORAGE_RETRY_SECONDS,
    ) -> None:
        self.camera = camera
        self.root = root
        self.segment_seconds = segment_seconds
        self.on_segment = on_segment
        self.on_storage_error = on_storage_error
        self.storage_retry = storage_retry
        self.status = RecorderStatus()
        # The folder, the journal and the logs name the footage: cam_1 for main, cam_1.sub for a sub stream.
        self.footage_id = camera.footage_id
        self.camera_lock = RecorderLock(root, self.footage_id)  # raises AlreadyRecording: one recorder per camera
        self.journal = Journal(root, self.footage_id)
        self.timeline = Timeline()
        self._lock = threading.Lock()  # the session thread writes; the main thread may finalise
        self._stopped = False
        self._info: StreamInfo | None = None
        self._assembler = AccessUnitAssembler()
        self._writer: SegmentWriter | None = None
        self._boundary = 0.0
        self._gap_from: float | None = time.time()
        self._gap_reason = "recording started"
        self._storage_retry_at = 0.0
        self._audio: AudioTrack | None = None
        self._held_audio: list[AudioSample] = []  # placed, not yet written: written as the video passes them
        self._audio_end = 0.0  # where the latest audio received ends, on the wall clock
        self._draining: tuple[SegmentWriter, float] | None = None  # a finished segment and its cut

    # --- session callbacks (the camera's thread) -------------------------------------------------

    def on_connected(self, info: StreamInfo) -> None:
        if self._info is not None:
            self.status.reconnects += 1
        self._info = info
        self._assembler = AccessUnitAssembler(info.codec, info.time_base)
        self.timeline.restart()
        if self.status.state != "storage error":
            self.status.state, self.status.error = "recording", None
        self._open_audio(info)

    def _open_audio(self, info: StreamInfo) -> None:
        with self._lock:
            if self._audio is not None:
                self._audio.close()
            self._audio, self._held_audio = None, []
            if not (self.camera.camera.audio and info.audio is not None and info.audio_stream is not None):
                self.status.audio = None
                return
            try:
                self._audio = AudioTrack(info.audio_stream, info.audio)
            except (av.error.FFmpegError, ValueError) as exc:  # an audio codec we cannot keep: video goes on
                log.warning("%s: %s audio not recorded: %s", self.footage_id, info.audio.describe(), exc)
                self.status.audio = None
                return
            self.status.audio = info.audio.recorded_as
            how = "transcoded to AAC" if self._audio.transcoded else "copied"
            log.info("%s: recording %s audio (%s)", self.footage_id, info.audio.describe(), how)

    def on_packet(self, packet: Packet, arrived: float) -> None:
        for au in self._assembler.push(packet, arrived):
            self._write(au, au.arrived or arrived)

    def on_audio(self, packet: Packet, arrived: float) -> None:
        with self._lock:  # the encoder is flushed from another thread when recording stops
            track = self._audio
            if track is None or self._stopped:
                return
            self.status.audio_packets += 1
            samples = track.push(packet, arrived)
            self._held_audio += samples
            if samples:
                self._audio_end = samples[-1].end
            if len(self._held_audio) > AUDIO_HELD:  # no video for a while: the segment is closed anyway
                del self._held_audio[: len(self._held_audio) - AUDIO_HELD]

    def on_offline(self, reason: str, kind: str) -> None:
        with self._lock:
            if self._writer is not None:
                self._close_segment(reason)  # the gap starts where its footage ends
            else:
                self._close_segment(None)  # finishes a segment still waiting for its audio
                if self._gap_from is None:
                    self._gap_from, self._gap_reason = time.time(), reason
                elif self._gap_reason == "recording started":
                    self._gap_reason = reason
        self.status.state, self.status.error, self.status.failure = "offline", reason, kind

    def on_stopped(self) -> None:
        self.finalize()

    def finalize(self) -> None:
        """Closes the open segment; safe from the main thread while the camera's thread is stuck
        reading a silent camera, and safe to call twice."""
        if self._lock.acquire(timeout=2.0):
            try:
                self._stopped = True
                self._close_segment("recording stopped")
                self._record_gap(time.time())
            finally:
                self._lock.release()
        self.camera_lock.release()  # even when the camera's thread is stuck: a reload may record it again
        self.status.state = "stopped"

    # --- writing ------------------------------------------------------------------------------

    def _write(self, au: AccessUnit, arrived: float) -> None:
        placed = self.timeline.place(au.presentation, arrived)
        t = placed.dts
        with self._lock:
            if self._stopped:
                return
            self.status.frames += 1
            if placed.hole >= HOLE_SECONDS and self._writer is not None:
                # The camera sent nothing for a while and goes on as if not: the footage has a hole,
                # said in the journal (a segment holds continuous footage only).
                self._close_segment(f"the camera sent nothing for {placed.hole:.1f}s", camera_gone=False)
            if self._writer is not None and au.key and t >= self._boundary:
                self._retire(t)
            writer = self._writer or self._open_segment(au, t)
            if writer is None:
                self.status.dropped_frames += 1
                return
            try:
                writer.write(au, t, placed.pts, self.timeline.step)
                self._write_audio(writer.end)
            except StorageError as exc:
                self._storage_failed(exc)
            self._finish_draining(t)

    def _retire(self, cut: float) -> None:
        """The segment ends before the keyframe at `cut`. Its last audio is still on its way (a
        transcoded track lags by an AAC frame or two), so with audio it stays open for that."""
        writer = self._writer
        if writer is None:
            return
        try:
            writer.end_video(cut)
        except StorageError as exc:
            self._storage_failed(exc)  # closes it with what plays of it
            return
        self._writer = None
        self._finish_draining(None)
        if self._audio is not None:
            self._draining = (writer, cut)
        else:
            self._finish(writer)

    def _write_audio(self, video_end: float) -> None:
        """Writes the held audio in order: what starts before the draining segment's cut goes there,
        then into the open segment what starts before its video's end; the rest waits."""
        held, writer, draining = self._held_audio, self._writer, self._draining
        n = 0
        while n < len(held):
            sample = held[n]
            if draining is not None and sample.t < draining[1]:
                draining[0].write_audio(sample)
            elif writer is not None and sample.t < video_end:
                if sample.t >= writer.start - 0.5 * sample.duration:  # else: from before this segment
                    writer.write_audio(sample)
            else:
                break
            n += 1
        del held[:n]

    def _finish_draining(self, video_t: float | None) -> None:
        """Closes the draining segment once audio has passed its cut, or a second after it (the
        audio stopped); video_t None: now."""
        if self._draining is None:
            return
        writer, cut = self._draining
        if video_t is not None and self._audio_end < cut and video_t < cut + AUDIO_WAIT:
            return
        self._draining = None
        self._finish(writer)

    def _open_segment(self, au: AccessUnit, t: float) -> SegmentWriter | None:
        """Starts a segment at a keyframe, unless storage is failing and not yet due for a retry."""
        info = self._info
        if not au.key or t < self._storage_retry_at or info is None:
            return None
        if not info.width:
            # Cameras that also send audio often open without a picture size (FFmpeg stops probing
            # early); MP4 needs one: the keyframe tells it, once per connection.
            size = picture_size(info, au.data)
            if size is None:
                return None  # not a decodable keyframe: wait for the next one
            info = self._info = replace(info, width=size[0], height=size[1])
        try:
            self._writer = SegmentWriter(
                self.root, self.footage_id, info.codec, info.width, info.height, t, info.extradata, self._audio
            )
        except StorageError as exc:
            self._storage_failed(exc)
            return None
        self._record_gap(t)
        self._boundary = self._next_boundary(t)
        self.status.current = self._writer.path
        self.status.state, self.status.error = "recording", None
        return self._writer

    def _next_boundary(self, t: float) -> float:
        """The first wall-clock multiple of segment_seconds at least half a segment away."""
        step = self.segment_seconds
        boundary = (t // step + 1) * step
        return boundary + step if boundary - t < step / 2 else boundary

    def _close_segment(self, gap_reason: str | None, camera_gone: bool = True) -> None:
        """The camera went away or recording stops (camera_gone), or storage failed: the open
        segment is finished with the audio that reached us; gap_reason: why footage stops here."""
        writer, self._writer = self._writer, None
        if camera_gone and self._audio is not None:
            self._held_audio += self._audio.flush()  # a transcoded track's last AAC frames
        try:
            self._write_audio(writer.end if writer is not None else 0.0)
        except StorageError as exc:
            log.warning("%s", exc)
        self._held_audio.clear()
        self._finish_draining(None)
        if writer is None:
            return
        if gap_reason is not None:
            self._gap_from, self._gap_reason = writer.end, gap_reason
        self._finish(writer)

    def _finish(self, writer: SegmentWriter) -> None:
        """Closes a segment's file and journals it (an empty one is removed)."""
        if writer.path == self.status.current:
            self.status.current = None
        info: SegmentInfo | None
        try:
            info = writer.close()
            if writer.failed:
                info = self._repaired(writer)
        except StorageError as exc:  # a full disk: keep what plays of it, journalled as measured
            log.warning("%s", exc)
            info = self._repaired(writer)
        if info is None:
            return
        if info.frames == 0:
            info.path.unlink(missing_ok=True)
            return
        self.status.segments += 1
        try:
            self.journal.segment(info)
            if self.status.segments % JOURNAL_COMPACT_EVERY == 1:
                # Retention deletes files, not journal lines: drop the lines of deleted segments
                # (and old gaps) now and then, so that the journal stays as small as the buffer.
                self.journal.compact(keep_after=time.time() - JOURNAL_GAP_DAYS * 86400)
        except OSError as exc:
            log.warning("%s: cannot write the journal: %s", self.footage_id, exc.strerror)
        self.on_segment(info)

    def _repaired(self, writer: SegmentWriter) -> SegmentInfo | None:
        """A segment whose writing failed: cut back to its last whole fragment and measured from
        the file (None when nothing in it plays: it is removed). Its end starts the gap."""
        if not repair_segment(writer.path):
            if self._gap_from is None or writer.start < self._gap_from:
                self._gap_from = writer.start
            return None
        start, duration, frames = measure_segment(writer.path, writer.start)
        end = start + duration + (self.timeline.step if frames else 0.0)
        if self._gap_from is not None and end < self._gap_from:
            self._gap_from = end  # the footage lost with the torn end is part of the gap
        size = writer.path.stat().st_size if writer.path.exists() else 0
        return SegmentInfo(self.footage_id, writer.path, start, end, frames, size, writer.codec, writer.audio_codec)

    def _record_gap(self, until: float) -> None:
        if self._gap_from is None:
            return
        gap = Gap(self.footage_id, self._gap_from, until, self._gap_reason)
        self._gap_from = None
        # Connecting takes a moment (longer on a busy box), and reconnecting too: not footage anyone
        # lost. At start, as much as the index lets pass between two segments.
        if gap.end - gap.start < (GAP_TOLERANCE if gap.reason == "recording started" else 0.5):
            return
        self.status.gaps.append(gap)
        try:
            self.journal.gap(gap)
        except OSError as exc:
            log.warning("%s: cannot write the journal: %s", self.footage_id, exc.strerror)
        log.info("%s: gap of %.1fs (%s)", self.footage_id, gap.end - gap.start, gap.reason)

    def _storage_failed(self, exc: StorageError) -> None:
        """Keeps the camera session; frames are dropped until storage works again."""
        if self._writer is not None:
            if self._gap_from is None:
                self._gap_from = self._writer.end  # or earlier: where what plays of it ends
            self._close_segment(None, camera_gone=False)  # keeps what plays of it, journalled
        if self._gap_from is None:
            self._gap_from = time.time()
        self._gap_reason = f"storage: {exc}"
        self._storage_retry_at = time.time() + self.storage_retry
        if self.status.state != "storage error":
            log.error("%s", exc)
        self.status.state, self.status.error, self.status.failure = "storage error", str(exc), "storage"
        self.on_storage_error(exc)


class RecordingCamera:
    """A camera session with a recorder on it: what `camctl record` runs per camera."""

    def __init__(
        self,
        recorder: CameraRecorder,
        backoff: Backoff = DEFAULT_BACKOFF,
        feed: Consumer | None = None,
        read_timeout: float | None = None,
    ) -> None:
        """feed: what the session hands packets to, when not the recorder itself (a transcoder);
        read_timeout: seconds without data before the camera counts as stalled."""
        self.recorder = recorder
        self.feed = feed or recorder
        self.session = CameraSession(recorder.camera, [self.feed], backoff, read_timeout=read_timeout)

    @property
    def camera(self) -> StreamView:
        return self.recorder.camera

    @property
    def status(self) -> RecorderStatus:
        return self.recorder.status

    def start(self) -> None:
        self.session.start()

    def stop(self) -> None:
        self.session.stop()

    def join(self, timeout: float) -> bool:
        return self.session.join(timeout)

    def finalize(self) -> None:
        self.recorder.finalize()
