"""Recorded footage over HTTP: the recordings API and recording.mp4 (Range, exact start, errors)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import av

from camctl.recording.footage import FootageIndex, spans_of
from camctl.recording.journal import journal_path
from tests.harness import CamctlProcess, NatsServer, free_port
from tests.ingest_helpers import http_get, write_ingest_config
from tests.recording_helpers import segment_files, wait_for


def get_range(url: str, first: int, last: int) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers={"Range": f"bytes={first}-{last}"})  # noqa: S310 - loopback
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test URL
        return response.status, dict(response.headers), response.read()


def journalled(root: Path, camera_id: str) -> int:
    path = journal_path(root, camera_id)
    return path.read_text().count('"type":"segment"') if path.exists() else 0


@contextlib.contextmanager
def recording_node(nats_server: NatsServer, tmp_path: Path) -> Iterator[tuple[CamctlProcess, str, Path]]:
    """run-all recording a demo camera in 2 s segments, once three of them are journalled:
    (the process, its base URL, the storage root)."""
    port, root = free_port(), tmp_path / "rec"
    extra = f"storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
    config = write_ingest_config(
        tmp_path / "camctl.yaml", {"cam_1": "'demo:?size=320x240&fps=10&gop=10'"}, nats_server.url, port, extra
    )
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("three journalled segments", lambda: journalled(root, "cam_1") >= 3, timeout=30)
        yield proc, f"http://127.0.0.1:{port}", root


def test_the_recordings_api_lists_spans_and_serves_seekable_footage_from_the_keyframe_before_start(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    with recording_node(nats_server, tmp_path) as (proc, base, root):
        code, _h, body = http_get(f"{base}/api/recordings/cam1")
        assert code == 200, body
        listing = json.loads(body)
        assert listing["camera_id"] == "cam_1" and len(listing["spans"]) == 1, listing
        span = listing["spans"][0]
        assert span["complete"] and span["frames"] >= 50 and span["duration"] >= 5, span

        # the footage of a range starting mid-GOP: from the keyframe at or before it
        start = time.time() - 4.5
        moment = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start)) + f".{int(start % 1 * 1000):03d}Z"
        url = f"{base}/cam1/recording.mp4?start={moment}&duration=2"
        code, headers, mp4 = http_get(url)
        assert code == 200, mp4
        assert int(headers["Content-Length"]) == len(mp4) and headers.get("Accept-Ranges") == "bytes"
        first = time.mktime(time.strptime(headers["X-Footage-Start"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        first += float("0." + headers["X-Footage-Start"][20:23])
        assert start - 1.05 <= first <= start, "the keyframe at or before start (1 s GOPs)"
        with av.open(io.BytesIO(mp4)) as container:
            packets = [p for p in container.demux(video=0) if p.size]
            assert packets[0].is_keyframe and len(packets) == int(headers["X-Footage-Frames"])
            assert mp4.find(b"moov") < mp4.find(b"mdat"), "fast start: the index before the data"
        status, range_headers, part = get_range(url, 100, 1099)
        assert status == 206 and part == mp4[100:1100], "HTTP Range: a seek bar works"
        assert range_headers["Content-Range"] == f"bytes 100-1099/{len(mp4)}"

        # kept current: a segment that closes later is listed without a rescan
        count = journalled(root, "cam_1")
        wait_for("another segment", lambda: journalled(root, "cam_1") > count, timeout=10)
        later = json.loads(http_get(f"{base}/api/recordings/cam1")[2])
        assert later["spans"][0]["end"] > span["end"]

        # bad input: one reason, 400; no footage: 404 with the nearest spans
        for query, why in (
            ("start=yesterday-ish", "start:"),
            (f"start={moment}&duration=2h", "http.max_clip"),
            (f"start={moment}&duration=-5", "duration"),
            ("duration=10", "start is required"),
        ):
            code, _h, body = http_get(f"{base}/cam1/recording.mp4?{query}")
            assert code == 400 and why in json.loads(body)["error"], (query, body)
        code, _h, body = http_get(f"{base}/api/recordings/cam1?start=now&end=-1h")
        assert code == 400 and "end must be after start" in json.loads(body)["error"]
        code, _h, body = http_get(f"{base}/cam1/recording.mp4?start=2020-01-01T00:00:00Z&duration=60")
        missing = json.loads(body)
        assert code == 404 and missing["error"] == "no footage" and len(missing["nearest"]) == 1, missing
        assert http_get(f"{base}/api/recordings/cam9")[0] == 404
        assert proc.terminate()[0] == 0


def test_a_segment_cut_in_half_is_listed_as_incomplete_and_its_playable_part_plays(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    config.write_text(
        "cameras:\n  cam_1: 'demo:?size=320x240&fps=10&gop=10'\n"
        f"storage: {{root: '{root}', segment_seconds: 4, retention: {{min_free: null}}}}\n"
    )
    with CamctlProcess(config, tmp_path / "d", "record", "--duration", "9"):
        wait_for("two segments", lambda: journalled(root, "cam_1") >= 2, timeout=30)
    files = segment_files(root, "cam_1")
    victim = files[1]
    intact = victim.with_name("intact.bin")
    shutil.copy(victim, intact)
    with victim.open("r+b") as f:
        f.truncate(victim.stat().st_size // 2)  # a disk that failed, or a copy cut short
    left = time.time() - 60
    os.utime(victim, (left, left))  # a minute ago: not a segment still being written
    index = FootageIndex(root, "cam_1").window()
    cut = next(s for s in index.segments if s.path == victim)
    assert not cut.journalled and 0 < cut.frames < 40, "measured from what is left of the file"
    assert not spans_of(index.segments)[0].complete
    from camctl.recording.clip import export_clip

    clip = export_clip(index, cut.start, cut.end, tmp_path / "part.mp4")
    assert clip.frames == cut.frames
    with av.open(str(clip.path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == cut.frames, "every frame left decodes"


def test_format_fmp4_streams_the_range_as_it_is_read_and_it_decodes(nats_server: NatsServer, tmp_path: Path) -> None:
    with recording_node(nats_server, tmp_path) as (proc, base, _root):
        span = json.loads(http_get(f"{base}/api/recordings/cam1")[2])["spans"][0]
        code, headers, body = http_get(f"{base}/cam1/recording.mp4?start={span['start']}&duration=4&format=fmp4")
        assert code == 200 and headers["X-Footage-Start"] == span["start"], headers
        assert "Content-Length" not in headers, "streamed, not cut first"
        assert body[4:8] == b"ftyp" and b"moof" in body, "a fragmented MP4"
        with av.open(io.BytesIO(body)) as container:
            frames = sum(1 for _ in container.decode(video=0))
        assert 38 <= frames <= 41, f"{frames} frames for 4 s at 10 fps"
        code, _h, body = http_get(f"{base}/cam1/recording.mp4?start=2020-01-01T00:00:00Z&format=fmp4")
        assert code == 404 and json.loads(body)["nearest"]
        code, _h, body = http_get(f"{base}/cam1/recording.mp4?start={span['start']}&format=webm")
        assert code == 400 and "fmp4" in json.loads(body)["error"]
        assert proc.terminate()[0] == 0


def test_a_camera_removed_from_the_config_keeps_its_footage_listed_and_served(tmp_path: Path) -> None:
    """Until retention prunes it, footage of a camera no longer configured is still evidence."""
    root = tmp_path / "rec"
    storage = f"storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
    before = tmp_path / "before.yaml"
    before.write_text("cameras:\n  old_door: 'demo:?size=160x120&fps=10&gop=10'\n" + storage)
    with CamctlProcess(before, tmp_path / "d1", "record", "--duration", "5"):
        wait_for("footage of old_door", lambda: journalled(root, "old_door") >= 1, timeout=30)
    port = free_port()
    after = tmp_path / "after.yaml"
    elsewhere = f"nats: {{url: 'nats://127.0.0.1:{free_port()}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\n"
    after.write_text("cameras:\n  cam_2: 'demo:?size=160x120&fps=5'\n" + storage + elsewhere)
    base = f"http://127.0.0.1:{port}"
    with CamctlProcess(after, tmp_path / "d2", "ingest"):
        listed = wait_for("the HTTP server", lambda: (r := http_get(f"{base}/api/recordings"))[0] == 200 and r, 30)
        cameras = {c["camera_id"]: c for c in json.loads(listed[2])["cameras"]}
        assert cameras["old_door"]["configured"] is False and cameras["cam_2"]["configured"] is True
        span = json.loads(http_get(f"{base}{cameras['old_door']['recordings']}")[2])["spans"][0]
        code, headers, body = http_get(f"{base}{span['url']}")
        assert code == 200 and headers["Content-Type"] == "video/mp4"
        with av.open(io.BytesIO(body)) as container:
            assert sum(1 for _ in container.decode(video=0)) > 0
        assert http_get(f"{base}/api/recordings/never_was")[0] == 404
