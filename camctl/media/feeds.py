"""A camera's opened streams, and which of them serves what (its roles).

Each stream some role names is one RTSP session, whose consumers include a `LiveCamera` (pictures,
decoded only while used) and a `LiveStream` (its own packets as fMP4 for live viewers). HTTP,
events and status reach a camera through this: `/cam1/frame.jpg` is the analysis stream's
picture, `?stream=main` another's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from camctl.config import CameraConfig
from camctl.media.live import LiveCamera
from camctl.media.live_stream import LiveStream

MAIN = "main"


class UnknownStream(LookupError):
    """A stream asked for by name that this camera does not have open."""


@dataclass(eq=False)  # by identity: a camera is one set of feeds
class CameraFeeds:
    camera: CameraConfig
    pictures: dict[str, LiveCamera] = field(default_factory=dict)  # by stream name
    streams: dict[str, LiveStream] = field(default_factory=dict)

    def pick(self, stream: str | None, role: str) -> str:
        """The stream named, or the one the role says; UnknownStream when it is not open."""
        roles = self.camera.roles
        name = stream or (roles.record[0] if role == "record" else str(getattr(roles, role)))
        if name not in self.pictures:
            have = ", ".join(self.pictures)
            raise UnknownStream(f"{self.camera.id} has no stream {name!r} open (streams: {have})")
        return name

    def picture(self, stream: str | None, role: str = "analysis") -> LiveCamera:
        return self.pictures[self.pick(stream, role)]

    @property
    def analysis(self) -> LiveCamera:
        return self.pictures[self.camera.roles.analysis]

    @property
    def main(self) -> LiveCamera:
        """The stream the camera's seed status describes: the recorded one."""
        return self.pictures.get(MAIN) or self.pictures[self.camera.roles.record[0]]

    @property
    def online(self) -> bool:
        return all(view.online for view in self.pictures.values())

    @property
    def error(self) -> str | None:
        """The main stream's reason, else the first other stream's, named ("sub: ...")."""
        if self.main.error:
            return self.main.error
        return next((f"{name}: {v.error}" for name, v in self.pictures.items() if v.error), None)

    @property
    def error_kind(self) -> str | None:
        return next((v.error_kind for v in (self.main, *self.pictures.values()) if v.error_kind), None)

    def status(self, now: float) -> dict[str, Any]:
        """The seed's status payload: online only when every stream is, fps and bitrate of the
        recorded stream, frames and decoder of the analysed one; then each stream's line."""
        payload = self.main.status(now)
        analysed = self.analysis.status(now)
        payload |= {
            "online": self.online,
            "error": self.error,
            "dropped_frames": sum(view.dropped_frames for view in self.pictures.values()),
            "last_frame_age_ms": analysed["last_frame_age_ms"],
            "frames": analysed["frames"],
            "decoder": analysed["decoder"],
        }
        payload["streams"] = {
            name: {**view.stream_status(now), "roles": self.camera.roles.of(name)}
            for name, view in self.pictures.items()
        }
        return payload
