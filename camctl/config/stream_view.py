"""A camera as runtime code sees it: one of its streams, with the settings that connect to it.

The config describes a camera once (`CameraConfig`); what connects, records or decodes works on one
stream of it at a time. A `StreamView` is that stream: its URL, and the credentials, transport and
timeout it connects with (the stream's own, else the camera's), beside the camera's config itself,
untouched, for the camera-level settings (`view.camera.audio`, `view.camera.roles`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from camctl.config.camera import CameraConfig, Transport
from camctl.config.streams import MAIN
from camctl.demo_spec import DemoSpec, parse_demo_url
from camctl.secrets import Secret, mask_url


@dataclass(frozen=True)
class StreamView:
    """One stream of a camera, ready to connect to (made by stream_view)."""

    camera: CameraConfig
    stream: str  # the stream's name: main, sub, ...
    url: str
    username: str | None
    password: Secret | None
    transport: Transport
    timeout: float  # seconds, connect and read

    @property
    def id(self) -> str:
        """The camera's id."""
        return self.camera.id

    @property
    def label(self) -> str:
        """How logs name this view: cam_1 for the main stream, cam_1/sub for another."""
        return self.id if self.stream == MAIN else f"{self.id}/{self.stream}"

    @property
    def footage_id(self) -> str:
        """The folder this view's recordings go to: the camera's id for main, cam_1.sub for a
        sub stream (CameraConfig.footage_of: the one rule for it)."""
        return self.camera.footage_of(self.stream)

    @property
    def is_demo(self) -> bool:
        return self.url.startswith("demo:")

    @property
    def demo(self) -> DemoSpec:
        return parse_demo_url(self.url)

    @property
    def display_url(self) -> str:
        """The URL for people and logs: the password is always masked."""
        if self.is_demo:
            return self.url
        return mask_url(self.url, self.username, self.password is not None)

    def connect_url(self) -> str:
        """The URL handed to FFmpeg, credentials included: never print it."""
        if self.is_demo or self.username is None:
            return self.url
        parts = urlsplit(self.url)
        userinfo = quote(self.username, safe="")
        if self.password is not None:
            userinfo += ":" + quote(self.password.reveal(), safe="")
        return urlunsplit((parts.scheme, f"{userinfo}@{parts.netloc}", parts.path, parts.query, ""))


def stream_view(camera: CameraConfig, name: str) -> StreamView:
    """The camera as seen through one of its streams: that stream's URL, with the camera's
    credentials, transport and timeout unless the stream sets its own (a demo: stream has none)."""
    spec = camera.streams[name]
    demo = spec.url.startswith("demo:")
    return StreamView(
        camera=camera,
        stream=name,
        url=spec.url,
        username=None if demo else spec.username if spec.username is not None else camera.username,
        password=None if demo else spec.password if spec.password is not None else camera.password,
        transport=spec.transport or camera.transport,
        timeout=spec.timeout or camera.timeout,
    )
