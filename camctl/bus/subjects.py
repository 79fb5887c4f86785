"""Every NATS subject camctl speaks on, the seed's and camctl's own, with the shape of its payload.

The seed's (`seguranca-camera-stream-manager`): frames and camera status, published; snapshots
and status, on request. camctl's own: motion (`camctl motion`) and marks (from analysis services).
What comes next takes its subject here too (detections in, events out), so that a consumer reads
one module to know the whole bus. No NATS client is imported here: payloads are plain data.
"""

from __future__ import annotations

import json
from typing import Any, NotRequired, TypedDict

FRAME_SUBJECT = "seguranca.camera.frame"  # published: a frame to analyse (FrameEvent)
STATUS_SUBJECT = "seguranca.camera.status"  # published: a camera's health (StatusEvent)
SNAPSHOT_SUBJECT = "seguranca.camera.snapshot"  # request/reply: <subject>.<camera_id> (SnapshotRequest) -> JPEG
STATUS_REQUEST_SUBJECT = "seguranca.camera.status.get"  # request: every node replies with its cameras
MOTION_SUBJECT = "seguranca.camera.motion"  # published by `camctl motion`: movement began or ended (MotionEvent)
MARK_SUBJECT = "seguranca.camera.mark"  # in, a reply when asked: a span that matters (MarkRequest -> MarkAnswer)


class FrameEvent(TypedDict):
    """Exactly the seed's six keys, then camctl's: the analysed stream and the shared-memory ring."""

    camera_id: str
    timestamp: float  # wall clock, when the frame arrived
    frame_number: int  # increasing across reconnects
    resolution: str  # "1920x1080"
    fps: float
    url: str  # the JPEG of this frame (signed when the HTTP server asks for users)
    stream: NotRequired[str]
    ring: NotRequired[str]
    ring_write: NotRequired[int]


class StatusEvent(TypedDict, total=False):
    """The seed's keys (measured over the last 5 s), then camctl's; see the README's `ingest`."""

    camera_id: str
    online: bool
    fps: float
    bitrate_kbps: float
    dropped_frames: int
    uptime_seconds: float
    error: str | None
    reconnects: int
    last_frame_age_ms: float | None
    frames: int
    decoder: str | None
    node: str
    streams: dict[str, dict[str, Any]]


class SnapshotRequest(TypedDict, total=False):
    quality: int  # 1-100
    width: int
    stream: str  # default: the camera's snapshot role


class MotionEvent(TypedDict):
    camera_id: str
    state: str  # start | end
    start: float
    end: float | None
    score: float  # the share of the picture that changed
    boxes: list[list[float]]  # [x, y, w, h], fractions of the picture
    frame_number: int


class MarkRequest(TypedDict, total=False):
    camera_id: str
    start: str | float  # RFC 3339, epoch seconds, -2m or now
    end: str | float
    label: str


class Mark(TypedDict):
    """A mark as kept, and as a mark's sender is answered."""

    camera_id: str
    start: str  # RFC 3339
    end: str
    label: str
    source: str  # nats | http | cli
    link: str  # the page at its moment


class MarkAnswer(TypedDict):
    ok: bool
    mark: NotRequired[Mark]
    error: NotRequired[str]


def frame_event(
    camera_id: str, timestamp: float, frame_number: int, resolution: str, fps: float, url: str
) -> FrameEvent:
    """Exactly the seed's `seguranca.camera.frame` payload."""
    return {
        "camera_id": camera_id,
        "timestamp": round(timestamp, 6),
        "frame_number": frame_number,
        "resolution": resolution,
        "fps": fps,
        "url": url,
    }


def encode(payload: Any) -> bytes:
    """A payload as it goes on the wire: compact JSON."""
    return json.dumps(payload, separators=(",", ":")).encode()
