"""A camera's streams (main, sub, ...) and the roles that say which stream serves what.

Almost every IP camera offers a main stream (full size, for recording) and a sub stream (small,
for tiles, phones and analysis). A stream with no role opens no RTSP session; a stream with roles
is one session shared by all of them.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from camctl.config.base import Duration, PathError, SecretText, Section, Text, type_name

STREAM_NAME = re.compile(r"[a-z][a-z0-9_]{0,15}")
MAIN = "main"
SUB = "sub"
ROLES = ("record", "analysis", "live", "grid", "snapshot")
Decode = Literal["auto", "full", "keyframes", "off"]
DECODE_MODES: tuple[Decode, ...] = ("auto", "full", "keyframes", "off")


class StreamConfig(Section):
    """One of a camera's streams; what it does not set comes from the camera."""

    url: Text = Field(description="rtsp:// or rtsps:// (credentials in it are this stream's), or demo:")
    username: Text | None = None
    password: SecretText | None = None
    transport: Literal["tcp", "udp", "auto"] | None = None
    timeout: Duration | None = None

    @classmethod
    def prepare(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data


class RolesConfig(Section):
    """Which stream serves what; unset roles follow the defaults (sub where there is one)."""

    record: list[Text] = Field(description="streams recorded (copies, no decode)")
    analysis: Text = Field(description="decoded for frame events, frame.jpg, the analysis ring and motion")
    live: Text = Field(description="what the page's tiles play")
    grid: Text = Field(description="what the grid composes")
    snapshot: Text = Field(description="what `camctl snapshot` takes by default")

    @field_validator("record", mode="before")
    @classmethod
    def _record(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and not value:
            raise ValueError("name at least one stream to record (recording is what camctl is for)")
        return value

    def used(self) -> list[str]:
        """The streams some role names, each once, in the order their roles come."""
        names = [*self.record, self.analysis, self.live, self.grid, self.snapshot]
        return list(dict.fromkeys(names))

    def of(self, stream: str) -> list[str]:
        """The roles a stream has."""
        return [role for role in ROLES if stream in (self.record if role == "record" else [getattr(self, role)])]


def default_roles(streams: list[str]) -> dict[str, Any]:
    """Record main; everything that looks at pictures takes the sub stream when there is one."""
    small = SUB if SUB in streams else MAIN
    return {"record": [MAIN], "analysis": small, "live": small, "grid": small, "snapshot": MAIN}


def prepare_streams(data: dict[str, Any]) -> dict[str, Any]:
    """`streams:` turned into each stream's mapping, with `url` set from main (so that everything
    that knows one URL per camera reads the main stream), and the roles filled in."""
    streams = data.get("streams")
    if streams is not None:
        if "url" in data:
            raise PathError("url", "give either url (one stream) or streams, not both")
        if not isinstance(streams, dict) or not streams:
            raise PathError("streams", f"expected a mapping of stream name to URL, got {type_name(streams)}")
        named: dict[str, Any] = {}
        for name, spec in streams.items():
            if not isinstance(name, str) or not STREAM_NAME.fullmatch(name):
                raise PathError("streams", f"{name!r}: stream names are lower-case letters, digits and _")
            named[name] = {"url": spec} if isinstance(spec, str) else spec
        if MAIN not in named:
            raise PathError("streams", f"a camera's streams include main (the full-size one); got {', '.join(named)}")
        main = named[MAIN]
        if isinstance(main, dict) and "url" in main:
            data["url"] = main["url"]  # the camera's credentials, transport, ... are main's
        data["streams"] = named
    roles = data.get("roles")
    names = list(data["streams"]) if isinstance(data.get("streams"), dict) else [MAIN]
    if roles is None or isinstance(roles, dict):
        data["roles"] = default_roles(names) | (roles or {})
    return data


def check_roles(roles: RolesConfig, streams: list[str]) -> None:
    for role in ROLES:
        wanted = roles.record if role == "record" else [getattr(roles, role)]
        for name in wanted:
            if name not in streams:
                raise PathError(f"roles.{role}", f"no stream {name!r} (this camera has: {', '.join(streams)})")
