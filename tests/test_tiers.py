"""Keep what matters: tiered retention (continuous, motion, marked) on compressed ages with real
segment files, marks from `camctl mark`, from NATS and from a POST, the mark on the page's
timeline, and motion found by run-all itself."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from camctl.bus.subjects import MARK_SUBJECT
from camctl.storage.layout import scan_segments, segment_path
from camctl.storage.retention import Limits, prune
from tests.conftest import Result
from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import http_get
from tests.recording_helpers import wait_for


def minute_segments(root: Path, camera: str, minutes: int, now: datetime, size: int = 1000) -> list[float]:
    """One 60 s segment a minute for `minutes`, the last one starting a minute before now; their starts."""
    starts = []
    for minute in range(minutes):
        start = now - timedelta(minutes=minutes - minute)
        path = segment_path(root, camera, start)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\0" * size)
        starts.append(start.timestamp())
    return starts


def test_tiers_keep_motion_and_marked_footage_longer_and_space_frees_continuous_first(
    camctl: Callable[..., Result], tmp_path: Path
) -> None:
    """Ages compressed to minutes: continuous 10 min, motion 30 min, marked 50 min; a movement 20
    minutes ago and a mark 40 minutes ago (`camctl mark`) keep their segments, the rest goes."""
    root = tmp_path / "rec"
    # Whole seconds (segment names are); not whole minutes: a test begun at 59 s past would see
    # the oldest of its last ten minutes age out while its commands run.
    now = datetime.now(UTC).replace(microsecond=0)
    minute_segments(root, "cam_1", 60, now)
    minute_segments(root, "cam_1.sub", 60, now, size=200)  # the sub's footage goes by cam_1's tiers
    moved = (now - timedelta(minutes=20)).timestamp()
    (root / "cam_1" / "motion.jsonl").write_text(
        json.dumps({"start": moved + 10, "end": moved + 20, "score": 0.1}) + "\n"
    )
    config = tmp_path / "camctl.yaml"
    config.write_text(
        f"cameras:\n  cam_1: {{streams: {{main: 'demo:', sub: 'demo:?size=320x180'}}}}\n"
        f"storage: {{root: '{root}', retention: {{continuous: 10m, motion: 30m, marked: 50m, min_free: null}}}}\n"
    )
    marked_at = now - timedelta(minutes=40) + timedelta(seconds=5)
    until = (marked_at + timedelta(seconds=20)).isoformat()
    mark = camctl("mark", "cam1", "--from", marked_at.isoformat(), "--to", until, "--label", "van at the gate",
                  "--json", config=config)  # fmt: skip
    assert mark.returncode == 0, mark.stderr
    assert json.loads(mark.stdout)["link"].startswith("http://") and "/cam1/?t=" in json.loads(mark.stdout)["link"]

    plan = camctl("prune", "--plan", "--json", config=config)
    assert plan.returncode == 0, plan.stderr
    tiers = json.loads(plan.stdout)["tiers"]
    assert tiers["motion"]["bytes"] == 1200 and tiers["marked"]["bytes"] == 1200, tiers  # a main + a sub segment each
    assert tiers["marked"]["keep_seconds"] == 3000 and tiers["motion"]["keep_seconds"] == 1800
    assert tiers["continuous"]["going_bytes"] == 48 * 1200 and tiers["motion"]["going_bytes"] == 0, tiers
    human = camctl("prune", "--plan", config=config)
    assert "marked: " in human.text and "kept 50m" in human.text, human.text

    done = camctl("prune", "--json", config=config)
    assert done.returncode == 0, done.stderr
    left = {(s.camera_id, round(s.start)) for s in scan_segments(root)}
    for camera in ("cam_1", "cam_1.sub"):
        kept = sorted(start for cam, start in left if cam == camera)
        assert round(moved) in kept and round(marked_at.timestamp() - 5) in kept, (camera, kept)
        assert len(kept) == 10 + 2, f"the last 10 minutes and the two spans that matter: {kept}"

    # Space runs out: the oldest continuous footage goes first, then motion, marks last.
    segments = {s.path: s for s in scan_segments(root)}
    tiny = prune(root, Limits(max_age=None, max_bytes=4 * 1200, motion_age=1800, marked_age=3000), time.time())
    gone = [tiny.tiers[s.path] for s in tiny.delete]
    assert gone == sorted(gone, key=("continuous", "motion", "marked").index), gone
    assert "marked" not in gone and len(segments) - len(tiny.delete) >= 4


def test_marks_from_nats_and_http_show_on_the_timeline_as_links(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="320x180", fps=10, gop=10, bitrate=200)
    port = free_port()
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    config.write_text(
        f"cameras:\n  cam_1: '{cams.url()}'\n"
        f"storage: {{root: '{root}', segment_seconds: 2, retention: {{marked: 30d, min_free: null}}}}\n"
        f"nats: {{url: '{nats_server.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\nnode: test\n"
    )
    base = f"http://127.0.0.1:{port}"
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("recording", lambda: http_get(f"{base}/cam1/frame.jpg")[0] == 200, 30)
        answer = _request(nats_server.url, MARK_SUBJECT, {"camera_id": "cam_1", "start": "-8s", "end": "-4s",
                                                          "label": "parcel left"})  # fmt: skip
        assert answer["ok"], answer
        refused = _request(nats_server.url, MARK_SUBJECT, {"camera_id": "cam_9", "start": "-8s"})
        assert not refused["ok"] and "unknown camera" in refused["error"]
        posted = _post(f"{base}/api/marks/cam1", {"start": time.time() - 3, "label": "door opened"})
        assert posted[0] == 201 and posted[1]["camera_id"] == "cam_1", posted
        assert _post(f"{base}/api/marks/cam1", {"start": "yesterday-ish"})[0] == 400
        assert _post(f"{base}/api/marks/nope", {"start": "-1s"})[0] == 404

        listing = json.loads(http_get(f"{base}/api/recordings/cam1?start=-5m")[2])
        labels = [m["label"] for m in listing["marks"]]
        assert labels == ["parcel left", "door opened"], listing["marks"]
        assert all(m["link"].startswith("/cam1/?t=") for m in listing["marks"])

        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.goto(f"{base}/cam1/")
        page.click('.tile[data-camera="cam_1"] button[data-zoom="1m"]')
        mark = page.locator('.timeline[data-camera="cam_1"] .mark[data-label="parcel left"]')
        wait_for("the mark on the timeline", lambda: mark.count() == 1, 15)
        assert "/cam1/?t=" in (mark.get_attribute("href") or "") and "parcel left" in (
            mark.get_attribute("title") or ""
        )
        page.close()
        assert proc.terminate()[0] == 0, proc.stderr
    assert "parcel left" in (root / "cam_1" / "marks.jsonl").read_text()


def _request(url: str, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    import asyncio

    import nats

    async def ask() -> dict[str, Any]:
        nc = await nats.connect(url)
        try:
            reply = await nc.request(subject, json.dumps(body).encode(), timeout=10)
            answer: dict[str, Any] = json.loads(reply.data)
            return answer
        finally:
            await nc.close()

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API holds this thread's event loop
        return thread.submit(lambda: asyncio.run(ask())).result(timeout=30)


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})  # noqa: S310 - loopback http
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.serial  # frames analysed in real time while the scene moves
def test_run_all_finds_motion_itself_for_the_motion_tier_and_the_timeline(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, tmp_path: Path
) -> None:
    cams = fake_cameras(count=1, size="640x360", fps=15, scene=True, sub="320x180@10")
    port = free_port()
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    config.write_text(
        f"cameras:\n  cam_1: {{streams: {{main: '{cams.url('cam1')}', sub: '{cams.url('cam1', 'sub')}'}}}}\n"
        f"defaults: {{motion: {{hold: 1s}}}}\n"
        f"storage: {{root: '{root}', segment_seconds: 2, retention: {{motion: 7d, min_free: null}}}}\n"
        f"nats: {{url: '{nats_server.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\nnode: test\n"
    )
    base = f"http://127.0.0.1:{port}"
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("recording", lambda: http_get(f"{base}/cam1/frame.jpg")[0] == 200, 30)
        time.sleep(3)  # a still, noisy scene analysed for a while: nothing to note
        assert not (root / "cam_1" / "motion.jsonl").exists() or not (root / "cam_1" / "motion.jsonl").read_text()
        cams.move("cam1")
        time.sleep(1.5)  # the scene moving for a while (the camera's time, nothing to await)
        cams.still("cam1")
        listing = f"{base}/api/recordings/cam1?start=-5m"
        moved = wait_for("the movement journalled", lambda: json.loads(http_get(listing)[2])["motion"], 15)
        assert len(moved) == 1 and moved[0]["score"] > 0, moved
        assert proc.terminate()[0] == 0, proc.stderr
