"""A camera: where its stream is, how to log in, and what camctl does with it."""

from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BeforeValidator, Field, field_validator, model_validator

from camctl.config.base import Between, Bitrate, Bool, Duration, PathError, SecretText, Section, Text
from camctl.config.events import EventsConfig, Polygon, zone_names
from camctl.config.streams import (
    DECODE_MODES,
    MAIN,
    SUB,
    Decode,
    RolesConfig,
    StreamConfig,
    check_roles,
    prepare_streams,
)
from camctl.demo_spec import parse_demo_url
from camctl.rules.encoders import ENCODERS, X264_PRESETS
from camctl.secrets import Secret, mask_url, redact

Transport = Literal["tcp", "udp", "auto"]
TRANSPORTS: tuple[Transport, ...] = ("tcp", "udp", "auto")
ANALYSIS_FORMATS = ("yuv420p", "gray", "rgb24", "bgr24")
DEFAULT_TIMEOUT = 10.0
CAMERA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_encoder(name: str) -> str:
    name = name.strip()
    known = ("auto", *ENCODERS)
    if name not in known:
        hint = difflib.get_close_matches(name, known, n=1)
        more = f" (did you mean {hint[0]}?)" if hint else f" (one of: {', '.join(known)})"
        raise ValueError(f"{name!r} is not an encoder camctl knows{more}")
    return name


def check_preset(preset: str | None, encoder: str, path: str = "preset") -> None:
    """libx264's preset; refused beside an encoder named explicitly that is not libx264."""
    if preset is not None and encoder not in ("auto", "libx264"):
        raise PathError(path, f"presets are libx264's; this encodes with {encoder}")


def preset_name(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if name not in X264_PRESETS:
        raise ValueError(f"{name!r} is not a libx264 preset (one of: {', '.join(X264_PRESETS)})")
    return name


class TranscodeConfig(Section):
    """Re-encode the camera's stream at `bitrate` before recording (stream copy when absent)."""

    bitrate: Bitrate = Field(description="the target, e.g. 2M")
    encoder: Text = Field("auto", description="auto (the best that opens) or an encoder name")
    min_bitrate: Bitrate | None = Field(None, description="floor for the dynamic bitrate; default a quarter")
    preset: Text | None = Field(None, description="libx264's preset, pinned (the ladder then only halves the rate)")

    @field_validator("encoder")
    @classmethod
    def _encoder(cls, name: str) -> str:
        return check_encoder(name)

    @field_validator("preset")
    @classmethod
    def _preset(cls, name: str | None) -> str | None:
        return preset_name(name)

    @model_validator(mode="after")
    def _preset_fits(self) -> TranscodeConfig:
        check_preset(self.preset, self.encoder)
        return self


class AnalysisConfig(Section):
    """How the camera's analysis frames go into shared memory (for consumers on this box)."""

    width: Annotated[int | None, Between(16, 7680, integer=True)] = Field(
        None, description="scaled to this width, keeping the shape; default the camera's size"
    )
    format: Text = Field("yuv420p", description="yuv420p (the decoder's own), gray, rgb24 or bgr24")
    slots: Annotated[int, Between(2, 64, integer=True)] = Field(4, description="pictures kept")

    @field_validator("width")
    @classmethod
    def _even(cls, width: int | None) -> int | None:
        return None if width is None else width // 2 * 2

    @field_validator("format")
    @classmethod
    def _format(cls, fmt: str) -> str:
        fmt = fmt.strip()
        if fmt not in ANALYSIS_FORMATS:
            raise ValueError(f"{fmt!r} is not one of {', '.join(ANALYSIS_FORMATS)}")
        return fmt


class MotionConfig(Section):
    """Motion on the camera's analysis stream: `camctl motion`'s sensitivity, and whether the
    recorder finds it itself (for the retention's motion tier and the timeline)."""

    detect: Literal["auto", "on", "off"] = Field(
        "auto", description="found by the recording process itself; auto: when storage.retention.motion is set"
    )
    threshold: Annotated[float, Between(1, 254)] = Field(25.0, description="grey levels a pixel must change by")
    min_area: Annotated[float, Between(0.0001, 1)] = Field(0.005, description="fraction of the picture changed")
    hold: Duration = Field(2.0, description="without motion this long, it ends")
    mask: list[Polygon] = Field(default_factory=list, description="polygons where motion is ignored (a clock, a tree)")


# Keys a camera takes from `defaults:` when it does not set them.
INHERITED = (
    "username", "password", "transport", "timeout", "transcode", "audio", "restream", "analysis", "motion", "decode",
    "events",
)  # fmt: skip


class _CameraSettings(Section):
    """What a camera may take from `defaults:`, checked the same way in both places."""

    username: Text | None = None
    password: SecretText | None = None
    transport: Transport = "tcp"
    timeout: Duration = Field(DEFAULT_TIMEOUT, description="connect and read timeout")
    transcode: TranscodeConfig | None = Field(None, description="record re-encoded at a bitrate (default: copy)")
    audio: Bool = Field(True, description="record the camera's audio")
    analysis: AnalysisConfig = AnalysisConfig()
    motion: MotionConfig = MotionConfig()
    events: EventsConfig = Field(default_factory=EventsConfig, description="what becomes an event, what alerts")
    decode: Decode = Field(
        "auto",
        description="the analysis stream: auto (keyframes only when analysis_fps is at or below the keyframe "
        "rate, else full), full, keyframes, or off (no frame events; stills decoded on demand)",
    )

    @field_validator("decode", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> str:
        text = "off" if value is False else str(value).strip().lower()
        if text not in DECODE_MODES:
            raise ValueError(f"{text!r} is not one of {', '.join(DECODE_MODES)}")
        return text

    @field_validator("transport", mode="before")
    @classmethod
    def _transport(cls, value: Any) -> str:
        text = str(value).strip().lower()
        if text not in TRANSPORTS:
            raise ValueError(f"{text!r} is not one of {', '.join(TRANSPORTS)}")
        return text

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, seconds: float) -> float:
        if not 0.1 <= seconds <= 600:
            raise ValueError("must be between 100ms and 10m")
        return seconds

    @field_validator("transcode", mode="before")
    @classmethod
    def _transcode(cls, value: Any) -> Any:
        return None if value is False else value


class CameraDefaults(_CameraSettings):
    """`defaults:`, for every camera that does not say otherwise."""

    restream: Text | Literal[False] | None = Field(
        None, description="rtsp:// URL to publish each camera to; {camera_id} and {slug} are filled in"
    )

    @field_validator("restream")
    @classmethod
    def _restream(cls, template: str | bool | None) -> str | None:
        if not isinstance(template, str):
            return None
        restream_target(template, "cam_1", "cam1")  # the template's errors, under defaults.restream
        return template


class CameraConfig(_CameraSettings):
    """One camera. In YAML, `cam_1: rtsp://...` is short for `cam_1: {url: rtsp://...}`."""

    hidden = ("id",)
    given = ("id", "_own_credentials")  # from the key it is listed under, and with_defaults

    id: Text = ""  # the key it is listed under
    url: Text = Field(description="rtsp:// or rtsps:// (credentials in it are split out), or demo: (the main stream)")
    streams: dict[str, StreamConfig] = Field(
        default_factory=dict, description="name -> URL, instead of url: main (recorded) and e.g. sub (analysed)"
    )
    roles: RolesConfig = Field(
        default_factory=lambda: RolesConfig(record=[MAIN], analysis=MAIN, live=MAIN, grid=MAIN, snapshot=MAIN),
        description="which stream serves what (default: record main, the rest from sub when there is one)",
    )
    name: Text = ""
    enabled: Bool = True
    analysis_fps: Annotated[float | None, Between(0.1, 120)] = Field(None, description="frames per second analysed")
    slug: Text = Field("", description="its name in URLs (default cam1 for cam_1)")
    restream: SecretText | None = Field(None, description="rtsp:// URL the camera's own stream is published to")
    zones: Annotated[dict[str, Polygon], BeforeValidator(zone_names)] = Field(
        default_factory=dict, description="name -> polygon: where in the picture an event was (by a box's foot)"
    )

    @classmethod
    def prepare(cls, data: Any) -> Any:
        """The id's form, the shorthand, credentials split out of the URL, the slug, the restream
        template: what a camera needs before its fields are checked one by one."""
        if isinstance(data, str):
            data = {"url": data}
        if not isinstance(data, dict):
            return data
        data = dict(data)
        own_credentials = data.pop("_own_credentials", False)
        cam_id = str(data.get("id", ""))
        if cam_id and not CAMERA_ID.fullmatch(cam_id):
            raise ValueError("camera ids use letters, digits, _ and - (they name files and NATS subjects)")
        given_streams = "streams" in data
        data = prepare_streams(data)
        if "url" not in data:
            return data
        try:
            url, user, password = split_camera_url(str(data["url"]).strip())
        except ValueError as exc:
            raise PathError("streams.main.url" if given_streams else "url", str(exc)) from None
        data["url"] = url
        data["streams"] = _streams_split(data.get("streams"), url)
        if user is not None:
            if own_credentials:
                raise ValueError("credentials are both in the url and in username/password: keep one")
            data["username"], data["password"] = user, password
        if url.startswith("demo:"):
            data["username"], data["password"] = None, None
        data.setdefault("slug", cam_id.replace("_", "").lower())
        data.setdefault("name", cam_id)
        restream = data.get("restream")
        if restream is False:
            data["restream"] = None
        elif restream is not None and not isinstance(restream, Secret):
            if isinstance(restream, bool):
                raise PathError("restream", "expected an rtsp:// URL, or false")
            data["restream"] = restream_target(str(restream), cam_id, str(data["slug"]))
        return data

    @field_validator("slug")
    @classmethod
    def _slug(cls, slug: str) -> str:
        if not CAMERA_ID.fullmatch(slug):
            raise ValueError("use letters, digits, _ and -")
        return slug

    @model_validator(mode="after")
    def _roles_name_streams(self) -> CameraConfig:
        check_roles(self.roles, list(self.streams))
        return self

    @model_validator(mode="after")
    def _rules_name_zones(self) -> CameraConfig:
        for zone in self.events.alert.zones or ():
            if zone not in self.zones:
                known = ", ".join(self.zones) or "none: add zones: {name: [[x, y], ...]} to the camera"
                raise PathError("events.alert.zones", f"unknown zone {zone!r} (zones: {known})")
        return self

    def footage_of(self, stream: str | None) -> str:
        """The recordings folder of a stream (None: main); ValueError for a stream it does not have."""
        name = stream or MAIN
        if name not in self.streams:
            raise ValueError(f"{self.id} has no stream {name!r} (streams: {', '.join(self.streams)})")
        return self.id if name == MAIN else f"{self.id}.{name}"

    @property
    def has_sub(self) -> bool:
        return len(self.streams) > 1

    @property
    def restream_shown(self) -> str | None:
        return mask_url(self.restream.reveal()) if self.restream else None

    @property
    def display_url(self) -> str:
        """The main stream's URL for people (`config show`): the password is always masked. What
        connects to a stream is its view (camctl.config.stream_view)."""
        if self.url.startswith("demo:"):
            return self.url
        return mask_url(self.url, self.username, self.password is not None)


def _onvif_streams(data: dict[str, Any]) -> dict[str, Any]:
    """`onvif: onvif://user:pass@host` is two streams found by ONVIF when connecting: main (the
    largest profile) and sub (the smallest), onvif://host/main and onvif://host/sub."""
    if "url" in data or "streams" in data:
        raise PathError("onvif", "give one of url, streams or onvif")
    base = str(data.pop("onvif")).strip().rstrip("/")
    if not base.lower().startswith("onvif://") or "/" in base.split("://", 1)[1]:
        raise PathError("onvif", f"{redact(mask_url(base))!r} is not an onvif://[user:password@]host[:port] URL")
    return {**data, "streams": {MAIN: f"{base}/{MAIN}", SUB: f"{base}/{SUB}"}}


def _streams_split(streams: Any, main_url: str) -> dict[str, Any]:
    """Each stream's URL validated, the credentials in it made that stream's own; main's URL is
    the camera's (its credentials were split out as the camera's)."""
    if not isinstance(streams, dict):
        return {MAIN: {"url": main_url}}
    out: dict[str, Any] = {}
    for name, spec in streams.items():
        if name == MAIN and isinstance(spec, dict):
            out[name] = {**spec, "url": main_url}
            continue
        if not isinstance(spec, dict) or "url" not in spec:
            out[name] = spec  # the stream's own model says what is wrong
            continue
        try:
            url, user, password = split_camera_url(str(spec["url"]).strip())
        except ValueError as exc:
            raise PathError(f"streams.{name}.url", str(exc)) from None
        if user is not None:
            if "username" in spec or "password" in spec:
                raise PathError(f"streams.{name}", "credentials are both in the url and in username/password")
            out[name] = {**spec, "url": url, "username": user, "password": password}
        else:
            out[name] = {**spec, "url": url}
    return out


def split_camera_url(url: str) -> tuple[str, str | None, Secret | None]:
    """Validates the URL and splits credentials out of it: (url, username, password)."""
    scheme = url.partition(":")[0].lower()
    if scheme == "demo":
        parse_demo_url(url)
        return url, None, None
    shown = redact(mask_url(url)) if "://" in url else url
    if scheme not in ("rtsp", "rtsps", "onvif"):
        raise ValueError(f"{shown!r} is not an rtsp://, rtsps:// or demo: URL")
    if scheme == "onvif" and urlsplit(url).path.strip("/") not in (MAIN, SUB):
        raise ValueError(f"{shown!r}: an ONVIF stream is onvif://host/main or onvif://host/sub")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"{shown!r} is not a valid URL (bad port?)") from None
    if not parts.hostname:
        raise ValueError(f"{shown!r} has no host")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if port is not None:
        netloc += f":{port}"
    clean = urlunsplit((scheme, netloc, parts.path, parts.query, ""))
    user = parts.username
    password = Secret(unquote(parts.password)) if parts.password is not None else None
    return clean, unquote(user) if user is not None else None, password


def restream_target(template: str, cam_id: str, slug: str) -> Secret:
    """The publish target with {camera_id} and {slug} filled in."""
    template = template.strip()
    try:
        url = template.format(camera_id=cam_id, slug=slug)
    except (KeyError, IndexError, ValueError):
        raise PathError("restream", f"{redact(template)!r}: the placeholders are {{camera_id}} and {{slug}}") from None
    parts = urlsplit(url)
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise PathError("restream", f"{redact(url)!r} is not an rtsp:// URL (e.g. rtsp://mediamtx:8554/{{camera_id}})")
    return Secret(url)


def with_defaults(cam_id: str, raw: Any, defaults: CameraDefaults | None) -> Any:
    """The camera's raw settings with what it does not set taken from `defaults:`."""
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, dict):
        return raw
    for key in CameraConfig.given:
        if key in raw:  # the id is the key the camera is listed under
            raise PathError(f"{cam_id}.{key}", "unknown key (a camera's id is the key it is listed under)")
    if "onvif" in raw:  # its streams, found by ONVIF when connecting
        raw = _onvif_streams(raw)
    merged = {**raw, "id": cam_id, "_own_credentials": "username" in raw or "password" in raw}
    if defaults is None:
        return merged
    url = raw.get("url")
    streams = raw.get("streams")
    if url is None and isinstance(streams, dict):
        main = streams.get(MAIN)
        url = main.get("url") if isinstance(main, dict) else main
    url_credentials = isinstance(url, str) and "@" in url.partition("://")[2].partition("/")[0]
    for key in INHERITED:
        if key in raw or (key in ("username", "password") and url_credentials):
            continue
        merged[key] = getattr(defaults, key)
    return merged
