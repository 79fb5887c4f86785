"""`camctl record`: every selected camera into the rolling buffer until stopped."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from camctl.config import CameraConfig, StorageConfig, stream_view
from camctl.config.streams import MAIN
from camctl.encoding.transcode import recording_input
from camctl.errors import ExitStatus, StorageError
from camctl.lifecycle import stop_on_signals
from camctl.recording.recorder import CameraRecorder, RecordingCamera
from camctl.recording.retention import RetentionRunner
from camctl.storage.retention import Limits

log = logging.getLogger("camctl.record")

STOP_GRACE = 3.0  # seconds for the recorders to close their segments after SIGTERM


def check_writable(root: Path) -> None:
    """Fails early (exit 5) when the recordings folder cannot be created or written."""
    probe = root / f".camctl-write-test.{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"cannot write recordings to {root}: {(exc.strerror or str(exc)).lower()}") from None


def record_cameras(
    cameras: list[CameraConfig],
    storage: StorageConfig,
    limits: Limits,
    duration: float | None,
    stall_seconds: float | None = None,
) -> list[RecordingCamera]:
    """Records until SIGTERM/SIGINT or `duration` seconds; returns the recorders for a summary.
    stall_seconds: a camera that sends nothing this long is offline (and reconnected)."""
    check_writable(storage.root)
    # Once per segment round: after each camera's segment would scan the tree N times a round.
    retention = RetentionRunner(storage.root, limits, interval=storage.segment_seconds / 2)
    retention.run(force=False)
    recorders = []
    for cam in cameras:
        view = stream_view(cam, MAIN)
        recorder = CameraRecorder(
            view,
            storage.root,
            storage.segment_seconds,
            on_segment=lambda _info: retention.run(),
            on_storage_error=lambda _exc: retention.run(force=True),
        )
        feed = recording_input(view, recorder, storage, len(cameras))
        recorders.append(RecordingCamera(recorder, feed=feed, read_timeout=stall_seconds))
    stop = threading.Event()
    with stop_on_signals(stop):
        for rec in recorders:
            rec.start()
        log.info("recording %d camera(s) into %s", len(recorders), storage.root)
        stop.wait(duration)
        stop_all(recorders)
    return recorders


def stop_all(recorders: list[RecordingCamera], grace: float = STOP_GRACE) -> None:
    for rec in recorders:
        rec.stop()
    deadline = time.monotonic() + grace
    for rec in recorders:
        if not rec.join(max(0.0, deadline - time.monotonic())):
            rec.finalize()  # stuck reading a silent camera: close its segment from here


@dataclass(frozen=True)
class CameraRecordSummary:
    camera_id: str
    segments: int
    frames: int
    dropped_frames: int
    reconnects: int
    gaps: int
    storage_lost_seconds: float
    audio: str | None  # what the audio is recorded as, when the camera sends any
    audio_packets: int  # audio packets received
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RecordResult:
    root: Path
    cameras: tuple[CameraRecordSummary, ...]
    exit_status: ExitStatus

    def to_json(self) -> dict[str, Any]:
        return {"root": str(self.root), "cameras": [c.to_json() for c in self.cameras]}


def record(
    cameras: list[CameraConfig],
    storage: StorageConfig,
    limits: Limits,
    duration: float | None,
    stall_seconds: float | None = None,
) -> RecordResult:
    """`camctl record`: until SIGTERM/SIGINT or `duration` seconds, then what each camera got."""
    recorders = record_cameras(cameras, storage, limits, duration, stall_seconds)
    summaries = tuple(
        CameraRecordSummary(
            r.camera.id,
            r.status.segments,
            r.status.frames,
            r.status.dropped_frames,
            r.status.reconnects,
            len(r.status.gaps),
            round(r.status.storage_lost, 1),
            r.status.audio,
            r.status.audio_packets,
            r.status.error,
        )
        for r in recorders
    )
    return RecordResult(storage.root, summaries, record_exit_status(recorders))


def record_exit_status(recorders: list[RecordingCamera]) -> ExitStatus:
    """0 when every camera recorded without losing footage to storage; 5 when storage lost some
    (a full disk, write errors); else the worst camera problem."""
    if any(r.status.storage_lost > 0 for r in recorders):
        return ExitStatus.STORAGE
    if all(r.status.segments > 0 for r in recorders):
        return ExitStatus.OK
    if any(r.status.failure == "storage" for r in recorders):
        return ExitStatus.STORAGE
    if any(r.status.failure == "auth" for r in recorders):
        return ExitStatus.AUTH
    return ExitStatus.UNREACHABLE
