"""Opening a camera: its RTSP stream, or a built-in demo camera (`demo:` URLs)."""

from __future__ import annotations

from camctl.config import StreamView
from camctl.media.demo import DemoSource
from camctl.media.source import RtspSource, Source
from camctl.onvif.resolve import is_onvif, resolved


def open_source(camera: StreamView, timeout: float | None = None) -> Source:
    """Connect to the camera's stream; raises AuthFailed, CameraTimeout or CameraUnreachable."""
    if camera.is_demo:
        return DemoSource(camera)
    timeout = camera.timeout if timeout is None else timeout
    if is_onvif(camera):  # its RTSP URL asked anew at each connection
        camera = resolved(camera, timeout)
    return RtspSource(camera, timeout)
