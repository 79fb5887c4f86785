"""Polygons over a camera's picture (zones, motion masks): points as fractions of the picture,
x from the left and y from the top, 0..1, so that one polygon fits the main and the sub stream.
Pure rules: the config validates against them, events and motion use them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

Point = tuple[float, float]
Polygon = tuple[Point, ...]
MAX_POINTS = 64


def parse_polygon(value: Any) -> Polygon:
    """[[x, y], ...] with 3 to MAX_POINTS points in 0..1; ValueError saying what is wrong."""
    if not isinstance(value, list | tuple) or not all(isinstance(p, list | tuple) for p in value):
        raise ValueError("a polygon is a list of [x, y] points, e.g. [[0.1, 0.6], [0.5, 0.6], [0.5, 1.0]]")
    if not 3 <= len(value) <= MAX_POINTS:
        raise ValueError(f"a polygon has 3 to {MAX_POINTS} points, this one {len(value)}")
    points: list[Point] = []
    for n, point in enumerate(value, start=1):
        if len(point) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in point):
            raise ValueError(f"point {n}: expected [x, y] (two numbers), got {list(point)!r}")
        x, y = float(point[0]), float(point[1])
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"point {n} [{x:g}, {y:g}] is outside the picture: x and y are fractions, 0 to 1")
        points.append((x, y))
    if abs(_area(points)) < 1e-6:
        raise ValueError("the points lie on one line: a polygon encloses some of the picture")
    return tuple(points)


def contains(polygon: Sequence[Point], x: float, y: float) -> bool:
    """Whether (x, y) lies inside the polygon (even-odd rule; a point on an edge counts as inside)."""
    inside = False
    count = len(polygon)
    for i in range(count):
        (x1, y1), (x2, y2) = polygon[i], polygon[(i + 1) % count]
        if _on_segment(x, y, x1, y1, x2, y2):
            return True
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def foot(box: Sequence[float]) -> Point:
    """Where a box [x, y, w, h] stands: the middle of its bottom edge (Frigate's rule: a person's
    feet are in the driveway, not their head)."""
    x, y, w, h = box
    return (x + w / 2, y + h)


def _area(points: Sequence[Point]) -> float:
    return sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, [*points[1:], points[0]], strict=True)) / 2


def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    cross = (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)
    if abs(cross) > 1e-9:
        return False
    return min(x1, x2) - 1e-9 <= x <= max(x1, x2) + 1e-9 and min(y1, y2) - 1e-9 <= y <= max(y1, y2) + 1e-9
