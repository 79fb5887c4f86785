"""Detections become events (camctl/events/tracker.py), zones and masks are polygons over the
picture (camctl/rules/polygons.py), and the config says both (camctl/config/events.py)."""

from __future__ import annotations

import re

import pytest

from camctl.config import parse_config
from camctl.config.events import AlertRule, EventsConfig
from camctl.errors import ConfigError
from camctl.events.tracker import Detection, Tracker
from camctl.rules.polygons import contains, foot, parse_polygon

DRIVEWAY = parse_polygon([[0.0, 0.6], [0.5, 0.6], [0.5, 1.0], [0.0, 1.0]])
STREET = parse_polygon([[0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [0.5, 0.5]])


def test_polygons_contain_points_and_a_box_stands_on_its_foot() -> None:
    triangle = parse_polygon([[0.1, 0.1], [0.9, 0.1], [0.5, 0.9]])
    assert contains(triangle, 0.5, 0.5) and not contains(triangle, 0.1, 0.8) and not contains(triangle, 0.95, 0.5)
    assert contains(DRIVEWAY, 0.5, 0.8), "a point on an edge is inside"
    assert foot([0.2, 0.3, 0.2, 0.4]) == pytest.approx((0.3, 0.7))
    concave = parse_polygon([[0, 0], [1, 0], [1, 1], [0.5, 0.4], [0, 1]])  # a notch from below
    assert contains(concave, 0.2, 0.5) and not contains(concave, 0.5, 0.8)
    for bad, why in (([[0, 0], [1, 1]], "3 to 64 points"), ([[0, 0], [1, 0], [2, 1]], "outside the picture"),
                     ([[0, 0], [0.5, 0.5], [1, 1]], "on one line"), ([[0, 0], [1, "x"], [1, 1]], "two numbers"),
                     ("0,0 1,0 1,1", "list of [x, y] points")):  # fmt: skip
        with pytest.raises(ValueError, match=re.escape(why)):
            parse_polygon(bad)


def _walk(tracker: Tracker, start: float, frames: int, label: str = "person", score: float = 0.8,
          x0: float = 0.7, dx: float = -0.05, y: float = 0.3) -> list[str]:  # fmt: skip
    """A box walking from x0 by dx a frame, 10 frames a second; the kinds of changes seen."""
    kinds = []
    for n in range(frames):
        box = (x0 + n * dx, y, 0.1, 0.3)
        kinds += [c.kind for c in tracker.push(start + n / 10, [Detection(label, score, box)])]
    return kinds


def test_one_walking_person_is_one_event_that_enters_a_zone_and_becomes_an_alert_there() -> None:
    rules = EventsConfig(alert=AlertRule(labels=["person"], zones=["driveway"]), min_frames=2, hold=1.0)
    tracker = Tracker(rules, {"driveway": DRIVEWAY, "street": STREET})
    changes = []
    for n in range(12):  # from the street (top right) down the left into the driveway
        box = (0.6 - n * 0.05, 0.1 + n * 0.05, 0.1, 0.3)
        changes += tracker.push(100 + n / 10, [Detection("person", 0.6 + n / 100, box)])
    kinds = [c.kind for c in changes]
    assert kinds == ["start"] + ["update"] * 10, "one event, started on its second frame"
    start = changes[0]
    assert start.track.first_seen == 100 and start.track.severity == "detection"
    assert start.new_zones == ("street",) and not start.raised
    raised = [c for c in changes if c.raised]
    assert len(raised) == 1 and "driveway" in raised[0].new_zones, "an alert from the frame it stood in the driveway"
    assert all(c.better for c in changes), "each frame's score was better: a new thumbnail each time"
    track = changes[-1].track
    assert track.zones == ["street", "driveway"] and track.severity == "alert" and track.frames == 12
    ended = tracker.push(100 + 1.1 + 1.0, [])
    assert [c.kind for c in ended] == ["end"] and ended[0].track.last_seen == pytest.approx(101.1)
    assert tracker.tracks == []


def test_a_flicker_a_weak_score_and_another_label_are_not_the_same_event() -> None:
    tracker = Tracker(EventsConfig(min_frames=3, min_score=0.5, hold=0.5), {})
    assert _walk(tracker, 0, 2) == [], "two frames of three: not yet an event"
    assert [c.kind for c in tracker.expire(10)] == [], "a flicker that never became an event ends unsaid"
    assert _walk(tracker, 20, 5, score=0.4) == [], "below min_score: ignored"
    assert _walk(tracker, 30, 4) == ["start", "update"]
    # a car where the person is, at the same time: its own object
    kinds = [c.kind for c in tracker.push(30.4, [Detection("person", 0.8, (0.5, 0.3, 0.1, 0.3)),
                                                Detection("car", 0.9, (0.5, 0.3, 0.1, 0.3))])]  # fmt: skip
    assert kinds == ["update"] and {t.label for t in tracker.tracks} == {"person", "car"}


def test_two_people_apart_are_two_events_and_stopping_ends_both_at_their_last_sighting() -> None:
    tracker = Tracker(EventsConfig(min_frames=1, hold=5), {})
    for n in range(5):
        left, right = (0.1 + n * 0.01, 0.5, 0.1, 0.3), (0.8 - n * 0.01, 0.5, 0.1, 0.3)
        tracker.push(n / 10, [Detection("person", 0.9, left), Detection("person", 0.7, right)])
    assert len(tracker.tracks) == 2 and all(t.frames == 5 for t in tracker.tracks)
    ended = tracker.close_all()
    assert [c.kind for c in ended] == ["end", "end"] and all(c.track.last_seen == pytest.approx(0.4) for c in ended)
    assert next(t for t in (c.track for c in ended) if t.score == 0.7).box[0] == pytest.approx(0.76)


def test_the_config_takes_zones_masks_and_alert_rules_and_explains_a_bad_polygon() -> None:
    config = parse_config(
        "cameras:\n  cam_1:\n    url: rtsp://127.0.0.1:8554/cam1\n"
        "    zones: {driveway: [[0.1, 0.6], [0.5, 0.6], [0.5, 1.0], [0.1, 1.0]]}\n"
        "    motion: {mask: [[[0, 0], [1, 0], [1, 0.08], [0, 0.08]]]}\n"
        "    events: {alert: {labels: [person, car], zones: [driveway]}, min_score: 0.6}\n"
        "  cam_2: rtsp://127.0.0.1:8554/cam2\n",
        environ={},
    )
    cam = config.cameras["cam_1"]
    assert list(cam.zones) == ["driveway"] and cam.zones["driveway"][0] == (0.1, 0.6)
    assert len(cam.motion.mask) == 1 and cam.events.min_score == 0.6 and cam.events.alert.zones == ["driveway"]
    plain = config.cameras["cam_2"].events
    assert plain.alert.labels == ["person", "car"] and plain.alert.zones is None and plain.min_frames == 2
    for camera, message in (
        ("zones: {d: [[0.1, 0.6], [0.5, 0.6]]}", "cameras.cam_1.zones.d: a polygon has 3 to 64 points, this one 2"),
        ("zones: {d: [[0.1, 0.6], [1.5, 0.6], [0.5, 1]]}", "cameras.cam_1.zones.d: point 2 [1.5, 0.6] is outside"),
        ("events: {alert: {zones: [porch]}}", "cameras.cam_1.events.alert.zones: unknown zone 'porch'"),
        ("zones: {'a b': [[0, 0], [1, 0], [1, 1]]}", "zone names use letters, digits"),
        ("motion: {mask: [[[0, 0], [0.5, 0.5], [1, 1]]]}", "cameras.cam_1.motion.mask.0: the points lie on one line"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(f"cameras:\n  cam_1:\n    url: rtsp://127.0.0.1:8554/cam1\n    {camera}\n", environ={})
