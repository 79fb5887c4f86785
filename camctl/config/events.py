"""What becomes an event, and which events are alerts: `events:` per camera (or in `defaults:`),
and the polygons (zones, motion masks) they are drawn with."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, WithJsonSchema, field_validator

from camctl.config.base import Between, Duration, Section, Text
from camctl.rules.polygons import Polygon as PolygonPoints
from camctl.rules.polygons import parse_polygon

ZONE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
DEFAULT_ALERT_LABELS = ("person", "car")  # Frigate's default alerts: people and cars, anywhere

_POLYGON_SCHEMA = {
    "type": "array", "minItems": 3, "description": "[[x, y], ...]: fractions of the picture, 0..1, from the top left",
    "items": {"type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "number", "minimum": 0, "maximum": 1}},
}  # fmt: skip
Polygon = Annotated[PolygonPoints, BeforeValidator(parse_polygon), WithJsonSchema(_POLYGON_SCHEMA)]


def zone_names(zones: Any) -> Any:
    if isinstance(zones, dict):
        for name in zones:
            if not isinstance(name, str) or not ZONE_NAME.fullmatch(name):
                raise ValueError(f"zone {name!r}: zone names use letters, digits, _ and - (they are used in URLs)")
    return zones


class AlertRule(Section):
    """Which events are alerts (the rest are detections): an event of one of `labels` (any label
    when not given) that entered one of `zones` (anywhere when not given)."""

    labels: list[Text] | None = Field(list(DEFAULT_ALERT_LABELS), description="labels that alert; null: any")
    zones: list[Text] | None = Field(None, description="only in these zones; null: anywhere in the picture")


class EventsConfig(Section):
    """How detections become events on this camera, and which are alerts."""

    min_score: Annotated[float, Between(0, 1)] = Field(0.5, description="detections below this score are ignored")
    min_frames: Annotated[int, Between(1, 100, integer=True)] = Field(
        2, description="frames an object is seen in before it is an event (one flicker is not)"
    )
    hold: Duration = Field(5.0, description="unseen this long, an object's event ends")
    alert: AlertRule = Field(default_factory=AlertRule, description="which events are alerts")

    @field_validator("hold")
    @classmethod
    def _hold(cls, seconds: float) -> float:
        if not 0.1 <= seconds <= 3600:
            raise ValueError("must be between 100ms and 1h")
        return seconds
