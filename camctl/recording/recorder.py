"""Records one camera into consecutive segments, forever: connect, copy, roll, reconnect.

Every frame received lands in exactly one segment: a segment ends just before the first keyframe
at or after its boundary and the next one starts with that keyframe. Segment boundaries are aligned
to the wall clock (every `segment_seconds`), frames are placed on the wall clock by the Timeline, so
consecutive segments are contiguous in time. When the camera goes away the open segment is closed,
the time until the first keyframe after reconnecting is journalled as a gap with its reason, and
reconnects back off exponentially (with jitter, so that cameras behind one switch do not retry in
lockstep).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import tenacity

from camctl.config import CameraConfig
from camctl.errors import AuthFailed, CameraError, StorageError
from camctl.media.access_units import access_units
from camctl.media.source import Source, open_source
from camctl.recording.journal import Gap, Journal
from camctl.recording.segment_writer import SegmentInfo, SegmentWriter
from camctl.recording.timeline import Timeline

log = logging.getLogger("camctl.record")

STORAGE_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class Backoff:
    initial: float = 1.0
    maximum: float = 30.0
    auth_maximum: float = 300.0  # a refused password will not fix itself within seconds
    jitter: float = 1.0


@dataclass
class RecorderStatus:
    state: str = "starting"  # connecting, recording, offline, storage error, stopped
    error: str | None = None
    segments: int = 0
    frames: int = 0
    dropped_frames: int = 0  # received but not written (storage trouble)
    failure: str | None = None  # kind of the latest failure: storage, auth, unreachable, timeout
    reconnects: int = 0
    current: Path | None = None
    gaps: list[Gap] = field(default_factory=list)


class CameraRecorder:
    def __init__(
        self,
        camera: CameraConfig,
        root: Path,
        segment_seconds: float,
        on_segment: Callable[[SegmentInfo], None] = lambda _info: None,
        on_storage_error: Callable[[StorageError], None] = lambda _exc: None,
        backoff: Backoff = Backoff(),
        open_camera: Callable[[CameraConfig], Source] = open_source,
        storage_retry: float = STORAGE_RETRY_SECONDS,
    ) -> None:
        self.camera = camera
        self.root = root
        self.segment_seconds = segment_seconds
        self.on_segment = on_segment
        self.on_storage_error = on_storage_error
        self.backoff = backoff
        self.open_camera = open_camera
        self.storage_retry = storage_retry
        self.status = RecorderStatus()
        self.journal = Journal(root, camera.id)
        self.timeline = Timeline()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards the writer: the main thread may finalise it
        self._writer: SegmentWriter | None = None
        self._boundary = 0.0
        self._gap_from: float | None = time.time()
        self._gap_reason = "recording started"
        self._storage_retry_at = 0.0
        self._warned_audio = False
        self._thread = threading.Thread(target=self._run, name=f"record-{camera.id}", daemon=True)

    # --- control, from the main thread -------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def finalize(self) -> None:
        """Closes the open segment even if the thread is stuck reading a silent camera."""
        if self._lock.acquire(timeout=2.0):
            try:
                self._close_segment("recording stopped")
                self._record_gap(time.time())
            finally:
                self._lock.release()
        self.status.state = "stopped"

    # --- the recording thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                source = self._connect()
                if source is None:
                    break
                try:
                    self._record(source)
                except CameraError as exc:
                    self._went_offline(exc.reason)
                finally:
                    source.close()
        except Exception:  # a bug must not go unnoticed, nor take the other cameras down
            log.exception("%s: recorder failed", self.camera.id)
            self.status.error = "internal error (see log)"
        finally:
            self.finalize()

    def _connect(self) -> Source | None:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(CameraError),
            wait=self._wait,
            stop=tenacity.stop_when_event_set(self._stop),
            sleep=self._sleep,
            before_sleep=self._retry_log,
            reraise=True,
        )
        self.status.state = "connecting"
        try:
            for attempt in retrying:
                with attempt:
                    return self.open_camera(self.camera)
        except CameraError:
            return None  # stopped while the camera was down
        return None

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)  # a stop request cuts the backoff short

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        ceiling = self.backoff.auth_maximum if isinstance(exc, AuthFailed) else self.backoff.maximum
        wait = tenacity.wait_exponential_jitter(initial=self.backoff.initial, max=ceiling, jitter=self.backoff.jitter)
        return float(wait(state))

    def _retry_log(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, CameraError) else str(exc)
        self.status.state, self.status.error = "offline", reason
        self.status.failure = exc.kind if isinstance(exc, CameraError) else "unreachable"
        if self._gap_from is not None and self._gap_reason == "recording started":
            self._gap_reason = reason
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: %s; retrying in %.1fs (%s)", self.camera.id, reason, wait, self.camera.display_url)

    def _record(self, source: Source) -> None:
        info = source.info
        self.timeline.restart()
        self.status.state, self.status.error = "recording", None
        log.info("%s: connected (%s %sx%s)", self.camera.id, info.codec, info.width or "?", info.height or "?")
        if info.audio and not self._warned_audio:
            self._warned_audio = True
            log.warning("%s: the camera sends %s audio; camctl records video only", self.camera.id, info.audio)
        for au in access_units(source.packets(), info.codec):
            if self._stop.is_set():
                return
            t = self.timeline.place(au.seconds, time.time())
            with self._lock:
                if self._stop.is_set():  # finalised meanwhile by the main thread
                    return
                self.status.frames += 1
                if self._writer is not None and au.key and t >= self._boundary:
                    self._close_segment(None)
                writer = self._writer or self._open_segment(au.key, t, source)
                if writer is None:
                    self.status.dropped_frames += 1
                    continue
                try:
                    writer.write(au, t, self.timeline.step)
                except StorageError as exc:
                    self._storage_failed(exc)

    def _open_segment(self, key: bool, t: float, source: Source) -> SegmentWriter | None:
        """Starts a segment at a keyframe, unless storage is failing and not yet due for a retry."""
        if not key or t < self._storage_retry_at:
            return None
        info = source.info
        try:
            self._writer = SegmentWriter(
                self.root, self.camera.id, info.codec, info.width, info.height, t, info.extradata
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

    def _close_segment(self, gap_reason: str | None) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        self.status.current = None
        if gap_reason is not None:
            self._gap_from, self._gap_reason = writer.end, gap_reason
        try:
            info = writer.close()
        except StorageError as exc:  # what reached the disk stays playable; the next open tells more
            log.warning("%s", exc)
            return
        if info.frames == 0:
            info.path.unlink(missing_ok=True)
            return
        self.status.segments += 1
        try:
            self.journal.segment(info)
        except OSError as exc:
            log.warning("%s: cannot write the journal: %s", self.camera.id, exc.strerror)
        self.on_segment(info)

    def _record_gap(self, until: float) -> None:
        if self._gap_from is None:
            return
        gap = Gap(self.camera.id, self._gap_from, until, self._gap_reason)
        self._gap_from = None
        if gap.end - gap.start < 0.5:
            return  # connecting takes a moment; that is not footage anyone lost
        self.status.gaps.append(gap)
        try:
            self.journal.gap(gap)
        except OSError as exc:
            log.warning("%s: cannot write the journal: %s", self.camera.id, exc.strerror)
        log.info("%s: gap of %.1fs (%s)", self.camera.id, gap.end - gap.start, gap.reason)

    def _went_offline(self, reason: str) -> None:
        with self._lock:
            if self._writer is not None:
                self._close_segment(reason)
            elif self._gap_from is None:
                self._gap_from, self._gap_reason = time.time(), reason
        self.status.state, self.status.error, self.status.failure = "offline", reason, "unreachable"
        self.status.reconnects += 1
        log.warning("%s: offline: %s", self.camera.id, reason)

    def _storage_failed(self, exc: StorageError) -> None:
        """Keeps the camera session; frames are dropped until storage works again."""
        if self._writer is not None:
            end = self._writer.end
            self._close_segment(None)  # keeps what reached the disk, journalled if it can be
            self._gap_from = end if self._gap_from is None else self._gap_from
        if self._gap_from is None:
            self._gap_from = time.time()
        self._gap_reason = f"storage: {exc}"
        self._storage_retry_at = time.time() + self.storage_retry
        if self.status.state != "storage error":
            log.error("%s", exc)
        self.status.state, self.status.error, self.status.failure = "storage error", str(exc), "storage"
        self.on_storage_error(exc)
