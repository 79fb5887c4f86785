"""A copy of the footage elsewhere, as it is recorded: real `rclone serve s3` and `webdav` servers
on loopback, rclone as camctl's child; segments arrive with equal hashes, an outage is caught up
once, and footage gone from the local disk is listed and played from the copy (also by a new box)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import pytest

from camctl.config import CopyConfig
from camctl.recording.copier import Copier
from camctl.recording.copies import Copied, append_index, read_index
from camctl.storage.layout import scan_segments
from camctl.storage.retention import Limits, prune
from camctl.units import iso_time
from tests.conftest import Result, require
from tests.harness import CamctlProcess, FakeCameras, free_port
from tests.ingest_helpers import http_get
from tests.rclone_server import SECRET_KEY, WEBDAV_PASSWORD, RcloneServer, rclone_binary
from tests.recording_helpers import wait_for
from tests.test_tiers import minute_segments


@pytest.fixture
def rclone_server(tmp_path: Path) -> Iterator[Callable[[str], RcloneServer]]:
    """Factory: rclone_server("s3" | "webdav"), stopped after the test."""
    require("rclone", rclone_binary)
    started: list[RcloneServer] = []

    def start(kind: str) -> RcloneServer:
        server = RcloneServer(kind, tmp_path / f"served-{kind}").start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def copy_index(server: RcloneServer) -> list[dict[str, Any]]:
    """The copy's own index, as stored by the server."""
    lines = []
    for path in sorted(server.stored(".copy/index").rglob("*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for p in container.demux(video=0) if p.size)


def journalled(root: Path, camera: str = "cam_1") -> list[dict[str, Any]]:
    lines = (root / camera / "recordings.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["type"] == "segment"]


def secrets_in_argv(secret: str, besides: int) -> list[str]:
    """Command lines of this machine's processes (but the test server's) that hold the secret."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == besides:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if secret in argv:
            found.append(argv)
    return found


def test_run_all_copies_to_s3_through_an_outage_once_and_plays_from_the_copy_what_the_disk_lost(
    fake_cameras: Callable[..., FakeCameras],
    rclone_server: Callable[[str], RcloneServer],
    camctl_process: Callable[..., Result],
    browser: Any,
    tmp_path: Path,
) -> None:
    """The footage the disk lost is listed and cut from the copy through camctl's own rclone
    daemon (kept for the process's life): those commands run as processes."""
    cams = fake_cameras(size="320x240", fps=15, gop=15, bitrate=300)
    s3 = rclone_server("s3")
    root, port = tmp_path / "rec", free_port()
    config = tmp_path / "camctl.yaml"
    config.write_text(
        f"cameras:\n  cam_1: '{cams.url()}'\n"
        f"storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
        f"http: {{listen: '127.0.0.1:{port}'}}\ncopy: {{to: '{s3.remote}'}}\n"
    )

    def copy_status() -> dict[str, Any]:
        code, _h, body = http_get(f"http://127.0.0.1:{port}/status")
        return dict(json.loads(body).get("copy") or {}) if code == 200 else {}

    with CamctlProcess(config, tmp_path / "d", "run-all", env=s3.env()) as proc:
        try:  # 8 s of footage; the rest is run-all, rclone and the S3 server starting on a busy box
            wait_for("three segments copied", lambda: copy_status().get("copied", {}).get("segments", 0) >= 3, 90)
        except AssertionError as exc:  # what the copy said, to tell a slow start from a stuck one
            raise AssertionError(f"{exc}: copy {copy_status()}\n{proc.stderr[-3000:]}") from None
        # The target goes away for 30 s while recording goes on: said in status and metrics.
        s3.stop()
        away = time.monotonic()
        failing = wait_for("the copy says its target is away", lambda: (s := copy_status()).get("last_error") and s, 30)
        assert failing["state"] == "target unreachable", failing
        seen_in_argv = []
        while time.monotonic() - away < 30:  # the outage itself (what the test is about), argv sampled meanwhile
            seen_in_argv += secrets_in_argv(SECRET_KEY, besides=-1)
            time.sleep(0.5)
        waiting = copy_status()["backlog"]
        assert waiting["segments"] >= 5 and waiting["oldest_seconds"] >= 25, waiting  # 2 s segments, 30 s away
        metrics = http_get(f"http://127.0.0.1:{port}/metrics")[2].decode()
        assert f'camctl_copy_up{{to="{s3.remote}"}} 0' in metrics, metrics[-600:]
        assert "camctl_copy_backlog_segments" in metrics

        s3.start()  # back on the same port: caught up, oldest first
        closed = wait_for("the backlog caught up", lambda: (s := copy_status())["backlog"]["segments"] == 0
                          and s["last_error"] is None and journalled(root), 60)  # fmt: skip
        seen_in_argv += secrets_in_argv(SECRET_KEY, besides=s3.proc.pid if s3.proc else -1)
        status_text = http_get(f"http://127.0.0.1:{port}/status")[2].decode()
        assert proc.terminate()[0] == 0, proc.stderr
    assert not seen_in_argv, "an rclone secret in a command line"
    assert SECRET_KEY not in proc.stderr and SECRET_KEY not in status_text and SECRET_KEY not in metrics

    # Every closed segment is there, equal, and listed once in the copy's index.
    index = copy_index(s3)
    files = [e["file"] for e in index]
    assert len(files) == len(set(files)), "a segment copied twice"
    assert {e["file"] for e in closed} <= {f.removeprefix("cam_1/") for f in files}
    for entry in index:
        assert md5(s3.stored(entry["file"])) == md5(root / entry["file"]) == entry["md5"], entry["file"]
    assert [e["start"] for e in index] == sorted(e["start"] for e in index), "caught up oldest first"

    # The local disk loses three segments in the middle: listed and played from the copy.
    segments = journalled(root)
    lost = segments[2:5]
    for entry in lost:
        (root / "cam_1" / entry["file"]).unlink()
    listed = camctl_process("recordings", "cam_1", "--json", config=config, **s3.env())
    assert listed.returncode == 0, listed.stderr
    (cam,) = json.loads(listed.text)["cameras"]
    from_copy = [s for s in cam["segments"] if s.get("copy")]
    assert [s["start"] for s in from_copy] == [iso_time(e["start"]) for e in lost], from_copy
    assert not [g for g in cam["gaps"] if g["start"] >= iso_time(lost[0]["start"])
                and g["end"] <= iso_time(lost[-1]["end"])], cam["gaps"]  # fmt: skip
    clip = tmp_path / "lost.mp4"
    start, end = lost[0]["start"], lost[-1]["end"]
    cut = camctl_process("clip", "cam_1", "--from", iso_time(start), "--to", iso_time(end), "-o", str(clip),
                         config=config, **s3.env())  # fmt: skip
    assert cut.returncode == 0, cut.stderr
    assert frames_in(clip) >= sum(e["frames"] for e in lost) - 2

    # The page's footage API (what the timeline plays) from the copy, under run-all.
    with CamctlProcess(config, tmp_path / "d2", "run-all", env=s3.env()):
        url = f"http://127.0.0.1:{port}/api/recordings/cam_1?start={iso_time(start - 1)}&end={iso_time(end + 1)}"
        spans = wait_for("the footage API", lambda: (r := http_get(url))[0] == 200 and json.loads(r[2])["spans"], 30)
        assert spans[0]["start"] <= iso_time(start + 0.5) and spans[-1]["end"] >= iso_time(end - 0.5), spans
        assert [s["start"] for s in spans if s.get("copy")] == [iso_time(lost[0]["start"])], spans  # drawn as such
        code, headers, body = http_get(f"http://127.0.0.1:{port}/cam_1/recording.mp4?start={iso_time(start)}"
                                       f"&duration={end - start:.3f}", timeout=30)  # fmt: skip
        assert code == 200 and headers["X-Footage-From"] == "copy", body[:200]
        played = tmp_path / "played.mp4"
        played.write_bytes(body)
        assert frames_in(played) >= sum(e["frames"] for e in lost) - 2
        # The page: a link to a moment the disk lost plays it, and the timeline draws that span as the copy's.
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"http://127.0.0.1:{port}/cam1/?t={iso_time(start + 1)}")
        video = 'video[data-camera="cam_1"]'
        wait_for("the lost moment playing", lambda: page.get_attribute(video, "data-time"), timeout=30)
        assert abs(datetime.fromisoformat(page.get_attribute(video, "data-time")).timestamp() - (start + 1)) < 3
        wait_for("the copy's span drawn", lambda: page.locator('.timeline[data-camera="cam_1"] .span.copy').count(),
                 timeout=10)  # fmt: skip
        assert page.get_attribute('.tile[data-camera="cam_1"] .badge', "data-source") == "copy"
        page.close()

    # A new box pointed at the same copy lists the old box's footage.
    new_root = tmp_path / "new-box"
    new_config = tmp_path / "new.yaml"
    new_config.write_text(config.read_text().replace(str(root), str(new_root)))
    listed = camctl_process("recordings", "--json", config=new_config, **s3.env())
    assert listed.returncode == 0, listed.stderr
    (cam,) = json.loads(listed.text)["cameras"]
    assert len(cam["segments"]) == len(copy_index(s3)) and all(s.get("copy") for s in cam["segments"])


def test_copy_to_webdav_checks_by_reading_back_sends_an_unequal_file_again_and_never_twice(
    fake_cameras: Callable[..., FakeCameras],
    rclone_server: Callable[[str], RcloneServer],
    camctl: Callable[..., Result],
    camctl_process: Callable[..., Result],
    tmp_path: Path,
) -> None:
    """A NAS over WebDAV keeps no hash: copies are read back. `what: marked` copies only what a
    mark overlaps; a file already there with the same size but other bytes is found and replaced.
    (`camctl copy` leaves its rclone daemon running until the process exits: a process each.)"""
    cams = fake_cameras(size="320x240", fps=15, gop=15, bitrate=300)
    dav = rclone_server("webdav")
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras:\n  cam_1: '{cams.url()}'\nstorage: {{root: '{root}', segment_seconds: 2}}\n"
                      f"copy: {{to: '{dav.remote}', what: marked}}\n")  # fmt: skip
    assert camctl_process("record", "--duration", "9", config=config).returncode == 0
    segments = journalled(root)
    assert len(segments) >= 4
    marked = segments[2]
    mark = camctl("mark", "cam_1", "--from", iso_time(marked["start"] + 0.2), "--to", iso_time(marked["end"] - 0.2),
                  "--label", "parcel", config=config)  # fmt: skip
    assert mark.returncode == 0, mark.stderr
    # Someone's file of the same size is in its place there already: found unequal, sent again.
    planted = dav.stored(f"cam_1/{marked['file']}")
    planted.parent.mkdir(parents=True)
    planted.write_bytes(b"\0" * (root / "cam_1" / marked["file"]).stat().st_size)

    first = camctl_process("copy", "--json", config=config, **dav.env())
    assert first.returncode == 0, first.stderr
    assert json.loads(first.text)["copied"] == 1, first.text
    assert md5(planted) == md5(root / "cam_1" / marked["file"])
    assert (dav.stored("cam_1/marks.jsonl")).is_file(), "the marks travel with the footage"
    again = camctl_process("copy", "--json", config=config, **dav.env())
    assert json.loads(again.text)["copied"] == 0, again.text
    rest = camctl_process("copy", "--what", "all", "--json", config=config, **dav.env())
    assert json.loads(rest.text)["copied"] == len(segments) - 1, rest.text
    for entry in segments:
        assert md5(dav.stored(f"cam_1/{entry['file']}")) == md5(root / "cam_1" / entry["file"])
    files = [e["file"] for e in copy_index(dav)]
    assert len(files) == len(set(files)) == len(segments)
    assert WEBDAV_PASSWORD not in first.stderr + rest.stderr


def test_a_target_that_refuses_is_one_line_exit_3_without_its_secret(
    rclone_server: Callable[[str], RcloneServer],
    camctl: Callable[..., Result],
    camctl_process: Callable[..., Result],
    tmp_path: Path,
) -> None:
    s3 = rclone_server("s3")
    root = tmp_path / "rec"
    (root / "cam_1").mkdir(parents=True)
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras:\n  cam_1: 'demo:'\nstorage: {{root: '{root}'}}\ncopy: {{to: '{s3.remote}'}}\n")
    wrong = s3.env() | {"RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY": "not-the-" + SECRET_KEY}
    refused = camctl_process("copy", config=config, **wrong)  # its rclone daemon lives as long as camctl
    assert refused.returncode == 3, refused.stderr
    assert refused.stderr.startswith(f"camctl: copy to {s3.remote}: ") and refused.stderr.count("\n") == 1
    assert SECRET_KEY not in refused.stderr and "Traceback" not in refused.stderr
    inline = tmp_path / "inline.yaml"
    inline.write_text(f"cameras:\n  cam_1: 'demo:'\ncopy: {{to: ':s3,secret_access_key={SECRET_KEY}:bucket'}}\n")
    bad = camctl("config", "check", config=inline)
    assert bad.returncode == 2 and "copy.to" in bad.stderr and SECRET_KEY not in bad.stderr + bad.text, bad.stderr
    none = camctl_process("copy", config=tmp_path / "camctl.yaml", RCLONE_CONFIG=os.devnull)
    assert none.returncode == 3  # no such remote defined: the target cannot be reached
    check = camctl("config", "check", config=tmp_path / "camctl.yaml", RCLONE_CONFIG=os.devnull)
    assert check.returncode == 0 and "no rclone remote named 'offsite'" in check.stderr, check.stderr
    assert "no rclone remote" not in camctl("config", "check", config=tmp_path / "camctl.yaml", **s3.env()).stderr


def test_when_space_runs_out_what_the_copy_holds_goes_before_what_is_only_here(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minute_segments(root, "cam_1", 10, now)
    segments = scan_segments(root)
    held = segments[5:8]  # newer than the oldest: age alone would free segments[0:3]
    append_index(root / ".copy" / "target" / "index", [
        Copied(s.path.relative_to(root).as_posix(), s.start, s.start + 60, 1, s.size, "0" * 32, time.time())
        for s in held
    ])  # fmt: skip
    plan = prune(root, Limits(max_bytes=7 * 1000), now.timestamp(), dry_run=True, reserve_segments=0)
    assert sorted(s.path for s in plan.delete) == sorted(s.path for s in held)
    nothing_copied = prune(tmp_path / "other", Limits(max_bytes=7 * 1000), now.timestamp(), dry_run=True)
    assert not nothing_copied.delete


def test_a_folder_target_keeps_copies_for_copy_retention_and_forgets_the_older_ones(tmp_path: Path) -> None:
    """A NAS mounted as a folder; copies older than copy.retention are deleted there and from
    this box's index of them, newer ones stay."""
    require("rclone", rclone_binary)
    root, nas = tmp_path / "rec", tmp_path / "nas"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minute_segments(root, "cam_1", 3, now)
    (root / "cam_1" / "recordings.jsonl").write_text("".join(
        json.dumps({"type": "segment", "file": s.path.relative_to(root / "cam_1").as_posix(), "start": s.start,
                    "end": s.start + 60, "frames": 60, "bytes": s.size}) + "\n"
        for s in scan_segments(root)
    ))  # fmt: skip
    copier = Copier(root, CopyConfig(to=str(nas), retention=3600), 60)
    try:
        assert copier.round() == 3  # each closed (journalled)
        old = nas / "cam_1" / "2020-01-01" / "00" / "cam_1_20200101T000000Z.mp4"
        old.parent.mkdir(parents=True)
        old.write_bytes(b"old")
        os.utime(old, (1577836860, 1577836860))
        old_index = [Copied(old.relative_to(nas).as_posix(), 1577836800, 1577836860, 1, 3, "0" * 32, 1577836900)]
        append_index(copier.folder, old_index)
        assert "cam_1/2020-01-01/00/cam_1_20200101T000000Z.mp4" in read_index(copier.folder)
        copier._retention()
    finally:
        copier.stop()
    assert not old.exists() and not old.parent.exists()
    assert "cam_1/2020-01-01/00/cam_1_20200101T000000Z.mp4" not in read_index(copier.folder)
    kept = sorted(p.name for p in nas.rglob("cam_1_*.mp4"))
    assert len(kept) == 3, kept
