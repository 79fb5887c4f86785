"""A camera given by ONVIF (`onvif: onvif://...`): each of its streams is found when connecting,
so that a camera handing out stream URIs with session tokens, or a new address, still plays."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from camctl.config import StreamView
from camctl.errors import AuthFailed, CameraUnreachable
from camctl.onvif.address import DEFAULT_PORT, OnvifAddress
from camctl.onvif.device import OnvifAuthRefused, OnvifError, stream_uri


def is_onvif(camera: StreamView) -> bool:
    return camera.url.lower().startswith("onvif://")


def resolved(camera: StreamView, timeout: float) -> StreamView:
    """The camera's view with its stream's RTSP URL asked of the camera now (onvif://host/main:
    the largest profile; /sub: the smallest). AuthFailed or CameraUnreachable, as RTSP would."""
    parts = urlsplit(camera.url)
    address = OnvifAddress(parts.hostname or "", parts.port or DEFAULT_PORT, camera.username, camera.password)
    try:
        url = stream_uri(address, parts.path.strip("/"), timeout)
    except OnvifAuthRefused as exc:
        raise AuthFailed(camera.label, f"ONVIF: {exc.reason}", camera.display_url) from None
    except OnvifError as exc:
        raise CameraUnreachable(camera.label, f"ONVIF: {exc.reason}", camera.display_url) from None
    return replace(camera, url=url)
