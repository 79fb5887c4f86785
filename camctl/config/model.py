"""The whole config file, and the rules that span its sections."""

from __future__ import annotations

import socket
from typing import Any, ClassVar

from pydantic import Field, ValidationInfo, field_validator, model_validator

from camctl.config.base import PathError, Section, Text, type_name
from camctl.config.camera import CameraConfig, CameraDefaults, check_encoder, check_preset, with_defaults
from camctl.config.http import HttpConfig
from camctl.config.sections import CopyConfig, GridConfig, IngestConfig, NatsConfig, StorageConfig
from camctl.errors import ConfigError
from camctl.rules.layout import MAX_TILES

BUILTIN_DEMO = "<built-in demo config>"


class Config(Section):
    """A camctl.yaml. Cameras inherit `defaults:`; everything else has a default of its own."""

    hidden = ("source", "offsite")
    given = ("source", "copy")
    filled: ClassVar[tuple[str, ...]] = ("source",)  # given by the loader, never by the file

    source: Text = BUILTIN_DEMO  # the file it came from
    defaults: CameraDefaults = Field(CameraDefaults(), description="for every camera that does not say otherwise")
    cameras: dict[str, CameraConfig] = Field(description="camera id -> its settings, or just its URL")
    storage: StorageConfig = Field(default_factory=StorageConfig)
    nats: NatsConfig = NatsConfig()
    http: HttpConfig = HttpConfig()
    ingest: IngestConfig = IngestConfig()
    encoder: Text = Field("auto", description="auto: the best that opens (camctl probe --encoders), or a name")
    node: Text = Field(default_factory=socket.gethostname, description="this box's name in events (default: host)")
    grid: GridConfig | None = Field(None, description="the grid run-all keeps running")
    # `copy:` in YAML (a field named copy would shadow BaseModel.copy)
    offsite: CopyConfig | None = Field(None, description="a copy of the footage elsewhere (rclone)")

    @classmethod
    def prepare(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if not (k in ("node", "grid", "defaults", "copy") and not v)}
            if "copy" in data:
                data["offsite"] = data.pop("copy")
            data.setdefault("cameras", None)  # none at all: said as such, not as a missing key
        return data

    @field_validator("cameras", mode="before")
    @classmethod
    def _cameras(cls, raw: Any, info: ValidationInfo) -> Any:
        if raw is None or raw == {}:
            raise ValueError("no cameras configured (add at least one under cameras:)")
        if not isinstance(raw, dict):
            raise ValueError(f"expected a mapping of camera id to settings, got {type_name(raw)}")
        defaults = info.data.get("defaults")
        return {str(cam_id): with_defaults(str(cam_id), settings, defaults) for cam_id, settings in raw.items()}

    @field_validator("cameras")
    @classmethod
    def _slugs(cls, cameras: dict[str, CameraConfig]) -> dict[str, CameraConfig]:
        seen: list[CameraConfig] = []
        for cam in cameras.values():
            clash = next((c.id for c in seen if cam.slug in (c.id, c.slug)), None)
            if clash:
                raise PathError(cam.id, f"slug {cam.slug!r} collides with camera {clash}")
            seen.append(cam)
        return cameras

    @field_validator("encoder")
    @classmethod
    def _encoder(cls, name: str) -> str:
        return check_encoder(name)

    @model_validator(mode="after")
    def _grid_fits(self) -> Config:
        grid = self.grid
        if grid is None:
            return self
        for cam in grid.cameras or ():
            if cam not in self.cameras:
                raise PathError("grid.cameras", f"unknown camera {cam!r}")
        count = len(grid.cameras) if grid.cameras else sum(1 for c in self.cameras.values() if c.enabled)
        if count > MAX_TILES:
            raise PathError("grid.cameras", f"a grid holds up to {MAX_TILES} cameras: name the {count} to show")
        check_preset(grid.preset, self.encoder, "grid.preset")
        return self

    def camera(self, camera_id: str) -> CameraConfig:
        """Look a camera up by id or slug (`cam_1` or `cam1`)."""
        for cam in self.cameras.values():
            if camera_id in (cam.id, cam.slug):
                return cam
        known = ", ".join(self.cameras) or "none"
        raise ConfigError(f"unknown camera {camera_id!r} (known: {known})")

    def select(self, camera_ids: list[str] | None) -> list[CameraConfig]:
        """The named cameras, or every enabled one when none are named."""
        if camera_ids:
            return [self.camera(c) for c in camera_ids]
        return [c for c in self.cameras.values() if c.enabled]
