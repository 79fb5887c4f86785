"""`camctl events`: marks become events, listed, filtered, shown and reviewed through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tests.in_process import Result


def _config(tmp_path: Path) -> Path:
    config = tmp_path / "camctl.yaml"
    config.write_text(
        "cameras:\n  cam_1: 'demo:'\n  cam_2:\n    url: 'demo:'\n"
        "    zones: {driveway: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]}\n"
        "    events: {alert: {labels: [person]}}\n"
        f"storage: {{root: '{tmp_path / 'rec'}'}}\n"
    )
    return config


def test_marks_are_events_listed_newest_first_filtered_shown_and_reviewed(
    camctl: Callable[..., Result], tmp_path: Path
) -> None:
    config = _config(tmp_path)
    nothing = camctl("events", config=config)
    assert nothing.returncode == 0 and nothing.text.strip() == "no events", nothing.stderr
    for camera, start, label in (("cam_1", "-3m", "delivery"), ("cam_2", "-2m", "person"), ("cam_2", "-1m", "")):
        assert camctl("mark", camera, "--from", start, "--to", "-30s", "--label", label, config=config).returncode == 0
    listed = camctl("events", "--json", config=config)
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.text)
    events = data["events"]
    assert data["database"] == str(tmp_path / "rec" / ".events" / "events.sqlite3") and data["more"] is False
    assert [(e["camera_id"], e["label"], e["severity"], e["source"]) for e in events] == [
        ("cam_2", "mark", "detection", "mark"), ("cam_2", "person", "alert", "mark"),
        ("cam_1", "delivery", "detection", "mark"),
    ], "newest first; a person is an alert on cam_2 by its rule, a mark without a label is a `mark`"  # fmt: skip
    assert all(e["end"] - e["start"] > 29 and e["reviewed"] is False for e in events)

    def ids(*options: str) -> list[str]:
        result = camctl("events", *options, "--json", config=config)
        assert result.returncode == 0, result.stderr
        return [e["label"] for e in json.loads(result.text)["events"]]

    assert ids("--camera", "cam2") == ["mark", "person"], "a camera by its slug"
    assert ids("--severity", "alert") == ["person"]
    assert ids("--label", "delivery", "--label", "person") == ["person", "delivery"]
    assert ids("--since", "-10s") == [] and ids("--until", "-90s") == ["person", "delivery"]
    page = json.loads(camctl("events", "--limit", "1", "--json", config=config).text)
    assert len(page["events"]) == 1 and page["more"] is True
    table = camctl("events", "--limit", "2", config=config)
    assert "camctl events (UTC, newest first)" in table.text and "person" in table.text and "alert" in table.text
    assert "more: camctl events --before " in table.text

    person = events[1]["id"]
    shown = camctl("events", "show", person, config=config)
    assert shown.returncode == 0 and f"{person}: person on cam_2 (main), alert, from mark" in shown.text
    assert json.loads(camctl("events", "show", person, "--json", config=config).text)["id"] == person
    reviewed = camctl("events", "review", person, "--json", config=config)
    assert json.loads(reviewed.text) == {"changed": 1, "reviewed": True}
    assert ids("--unreviewed") == ["mark", "delivery"]
    assert "2 event(s) marked reviewed" in camctl("events", "review", "--all", config=config).text
    assert ids("--unreviewed") == []
    assert camctl("events", "review", person, "--undo", config=config).returncode == 0
    assert ids("--unreviewed") == ["person"]


def test_unknown_events_bad_options_and_an_empty_box_are_one_line_and_exit_2(
    camctl: Callable[..., Result], tmp_path: Path
) -> None:
    config = _config(tmp_path)
    empty = camctl("events", "show", "nope", config=config)
    assert empty.returncode == 2 and "no event 'nope': nothing has happened yet" in empty.stderr
    assert camctl("mark", "cam_1", "--from", "-1m", config=config).returncode == 0
    for args, message in (
        (("events", "show", "nope"), "camctl: no event 'nope' in "),
        (("events", "review", "nope", "also-not"), "camctl: no event 'nope', 'also-not' in "),
        (("events", "review"), "camctl: name the events to review, or say --all"),
        (("events", "--severity", "urgent"), "camctl: --severity 'urgent': one of alert, detection"),
        (("events", "--since", "yesterday-ish"), "camctl: "),
        (("events", "--camera", "cam_9"), "camctl: unknown camera 'cam_9'"),
    ):
        result = camctl(*args, config=config)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith(message) and "Traceback" not in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_clip_around_an_event_is_its_camera_s_footage_from_before_it_to_after_it(
    camctl: Callable[..., Result], camctl_process: Callable[..., Result], tmp_path: Path
) -> None:
    config = tmp_path / "camctl.yaml"
    storage = f"storage: {{root: '{tmp_path / 'rec'}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
    config.write_text(f"cameras:\n  cam_1: 'demo:?size=320x240&fps=15&gop=15'\n  cam_2: 'demo:'\n{storage}")
    recorded = camctl_process("record", "cam_1", "--duration", "12s", config=config, timeout=40)
    assert recorded.returncode == 0, recorded.stderr
    # A mark of a second of it, 5 s before the end: the clip is 5 s before it to 5 s after it, as far
    # as the footage goes (it ended as the mark was made).
    marked = camctl("mark", "cam_1", "--from", "-5s", "--to", "-4s", "--label", "person", "--json", config=config)
    assert marked.returncode == 0, marked.stderr
    (event,) = json.loads(camctl("events", "--json", config=config).text)["events"]
    out = tmp_path / "event.mp4"
    clip = camctl("clip", "--event", event["id"], "-o", str(out), "--json", config=config)
    assert clip.returncode == 0, clip.stderr
    made = json.loads(clip.text)
    assert made["camera_id"] == "cam_1" and out.stat().st_size == made["bytes"] > 0
    from camctl.units import parse_time

    first = parse_time(made["start"], 0)
    assert event["start"] - 5 - 1.5 <= first <= event["start"] - 5 + 0.1, "from the keyframe at or before 5 s ahead"
    assert 8 <= made["duration"] <= 12, made
    for args, message in (
        (("clip", "--event", event["id"], "--from", "-1m"), "give --from/--to or --event, not both"),
        (("clip", "cam_2", "--event", event["id"]), f"event {event['id']} is of cam_1, not cam_2"),
        (("clip", "--event", "nope"), "no event 'nope'"),
        (("clip", "cam_1"), "give a camera and --from"),
    ):
        refused = camctl(*args, config=config)
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
