"""ONVIF against a real ONVIF device implementation on loopback (ipycam's ONVIF service, whose
profiles lead to fake cameras' main and sub streams): `camctl probe onvif://` lists the device and
its profiles, `camctl discover` finds it by a unicast probe to 127.0.0.1, a camera given by
`onvif:` records its main profile and analyses its sub, a wrong password exits 4 unshown."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from camctl.envfile import ENV_FILE_NAME
from camctl.onvif.discovery import parse_matches
from tests.conftest import Result, require
from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.onvif_camera import OnvifCamera, check_onvif_camera
from tests.recording_helpers import segment_files, wait_for
from tests.test_streams import camera_status, stream_state

SECRET = "s3cret-onvif-pw"  # the test camera's


@pytest.fixture
def onvif_camera(fake_cameras: Callable[..., FakeCameras]) -> Iterator[tuple[FakeCameras, OnvifCamera]]:
    require("a virtual ONVIF camera (ipycam)", check_onvif_camera)
    cams = fake_cameras(count=1, size="640x360", fps=15, gop=15, sub="320x180@10")
    streams = {"main": "640x360@15", "sub": "320x180@10"}
    with OnvifCamera(cams.url("cam1"), cams.url("cam1", "sub"), username="admin", password=SECRET, **streams,
                     model="Garage-Cam", probe_match="standard") as device:  # fmt: skip
        yield cams, device


def test_probe_lists_the_device_its_profiles_and_streams_and_prints_a_config_entry(
    onvif_camera: tuple[FakeCameras, OnvifCamera], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    cams, device = onvif_camera
    shown = camctl("probe", device.url, "--json", timeout=60)
    assert shown.returncode == 0, shown.stderr
    found = json.loads(shown.stdout)
    assert found["manufacturer"] == "PythonCam" and found["model"] == "Garage-Cam", found
    sizes = {p["token"]: (p["width"], p["height"], p["fps"], p["codec"]) for p in found["profiles"]}
    assert sorted(sizes.values()) == [(320, 180, 10.0, "H264"), (640, 360, 15.0, "H264")], sizes
    streams = {p["token"]: p["stream_uri"] for p in found["profiles"]}
    assert streams[found["main"]] == cams.url("cam1") and streams[found["sub"]] == cams.url("cam1", "sub")
    assert abs(found["clock_drift_s"]) < 3 and found["clock_warning"] is None
    assert found["snapshot_uri"].startswith("http://127.0.0.1:")
    assert SECRET not in shown.text + shown.stderr and "admin:***@" in found["address"]

    table = camctl("probe", device.url, timeout=60)
    assert table.returncode == 0 and "Garage-Cam" in table.text and cams.url("cam1", "sub") in table.text
    assert SECRET not in table.text + table.stderr

    entry = camctl("probe", device.url, "--config", timeout=60)
    assert entry.returncode == 0, entry.stderr
    assert f"main: {cams.url('cam1')}" in entry.text and f"sub: {cams.url('cam1', 'sub')}" in entry.text
    assert "${CAMCTL_ONVIF_PASSWORD}" in entry.text and SECRET not in entry.text
    written = tmp_path / "entry.yaml"
    written.write_text(entry.text)
    check = camctl("config", "check", config=written, CAMCTL_ONVIF_PASSWORD=SECRET)  # the entry is a config
    assert check.returncode == 0, check.stderr


def test_a_wrong_password_exits_4_and_shows_no_password_nothing_listening_exits_3(
    onvif_camera: tuple[FakeCameras, OnvifCamera], camctl: Callable[..., Result]
) -> None:
    _cams, device = onvif_camera
    wrong = device.url.replace(SECRET, "not-the-pw-123")
    refused = camctl("probe", wrong, timeout=60)
    assert refused.returncode == 4, refused.stderr
    assert "authentication refused" in refused.stderr and "not-the-pw-123" not in refused.stderr + refused.text
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) <= 2, refused.stderr
    nobody = camctl("probe", f"onvif://admin:{SECRET}@127.0.0.1:{free_port()}", "--timeout", "5", timeout=60)
    assert nobody.returncode == 3 and "unreachable" in nobody.stderr, nobody.stderr
    assert SECRET not in nobody.stderr + nobody.text


def test_discover_finds_it_by_a_unicast_probe_reads_its_profiles_and_adds_it_to_the_config(
    onvif_camera: tuple[FakeCameras, OnvifCamera], camctl: Callable[..., Result], tmp_path: Path
) -> None:
    _cams, device = onvif_camera
    host, port = device.discovery
    found = camctl("discover", "--host", host, "--port", str(port), "--wait", "1.5", "--json", timeout=60)
    assert found.returncode == 0, found.stderr
    (entry,) = json.loads(found.stdout)
    assert entry["onvif_url"] == f"onvif://127.0.0.1:{device.port}" and entry["model"] == "Garage-Cam", entry
    assert entry["configured"] is None

    config = tmp_path / "camctl.yaml"
    config.write_text("# the installer's own notes stay\ncameras:\n  cam_1: 'demo:'\nnode: garage\n")
    added = camctl("discover", "--host", host, "--port", str(port), "--wait", "1.5", "--user", "admin", "--add",
                   config=config, CAMCTL_ONVIF_PASSWORD=SECRET, timeout=60)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "cam_2" in added.stderr and SECRET not in added.stderr + added.text + config.read_text()
    assert (tmp_path / "camctl.yaml.bak").read_text().startswith("# the installer's own notes stay")
    assert (
        "node: garage" in config.read_text() and 'onvif: "onvif://admin:${CAMCTL_ONVIF_PASSWORD}@' in config.read_text()
    )
    again = camctl("discover", "--host", host, "--port", str(port), "--wait", "1.5", "--json", config=config,
                   CAMCTL_ONVIF_PASSWORD=SECRET, timeout=60)  # fmt: skip
    assert json.loads(again.stdout)[0]["configured"] == "cam_2"
    nobody = camctl("discover", "--host", host, "--port", str(free_port()), "--wait", "0.5", timeout=60)
    assert nobody.returncode == 3 and "no ONVIF device answered" in nobody.stderr


def test_a_camera_given_by_onvif_records_its_main_profile_and_analyses_its_sub(
    onvif_camera: tuple[FakeCameras, OnvifCamera], nats_server: NatsServer, camctl: Callable[..., Result],
    tmp_path: Path,
) -> None:  # fmt: skip
    _cams, device = onvif_camera
    port = free_port()
    root = tmp_path / "rec"
    config = tmp_path / "camctl.yaml"
    onvif_url = device.url.replace(SECRET, "${CAM_PASSWORD}")
    config.write_text(
        f"cameras:\n  cam_1: {{onvif: '{onvif_url}', analysis_fps: 5}}\n"
        f"storage: {{root: '{root}', segment_seconds: 2, retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats_server.url}'}}\nhttp: {{listen: '127.0.0.1:{port}'}}\nnode: test\n"
    )
    (tmp_path / ENV_FILE_NAME).write_text(f"CAM_PASSWORD={SECRET}\n")  # as an installer keeps it
    (tmp_path / ENV_FILE_NAME).chmod(0o600)
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("both ONVIF streams online", lambda: camera_status(port).get("online"), 40)
        assert stream_state(port, "sub", "resolution") == "320x180"
        assert stream_state(port, "main", "resolution") == "640x360"
        assert stream_state(port, "sub", "decode") in ("full", "keyframes")
        assert stream_state(port, "main", "decode") == "off"
        wait_for("a closed segment of the main", lambda: len(segment_files(root, "cam_1")) >= 2, 30)
        status = json.dumps(camera_status(port))
        assert SECRET not in status, status
        assert proc.terminate()[0] == 0, proc.stderr
    assert SECRET not in proc.stderr
    shot = camctl("snapshot", "cam_1", "-o", str(tmp_path / "x.jpg"), config=config)
    assert shot.returncode == 0 and (tmp_path / "x.jpg").stat().st_size > 1000, shot.stderr
    shown = camctl("config", "show", config=config)
    assert f"@127.0.0.1:{device.port}/sub" in shown.text and SECRET not in shown.text, shown.text


def test_a_probe_match_is_read_however_the_camera_wraps_it() -> None:
    """Cameras differ: ipycam answers with a bare ProbeMatch under another action name."""
    bare = b"""<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"
      xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery">
      <s:Header><a:RelatesTo>urn:uuid:abc</a:RelatesTo></s:Header><s:Body><d:ProbeMatch>
      <a:EndpointReference><a:Address>urn:uuid:cam</a:Address></a:EndpointReference>
      <d:Scopes>onvif://www.onvif.org/hardware/DS-2CD2143 onvif://www.onvif.org/mfr/Hikvision onvif://www.onvif.org/name/Porch%20cam</d:Scopes>
      <d:XAddrs>http://10.0.0.7:8000/onvif/device_service</d:XAddrs></d:ProbeMatch></s:Body></s:Envelope>"""
    (found,) = parse_matches(bare, "127.0.0.1", "abc")
    assert (found.model, found.maker, found.name, found.port) == ("DS-2CD2143", "Hikvision", "Porch cam", 8000)
    assert found.onvif_url == "onvif://127.0.0.1:8000", "the address it answered from, its service's port"
    assert parse_matches(bare, "127.0.0.1", "another-probe") == [], "an answer to another probe is not ours"
    assert parse_matches(b"<not xml", "127.0.0.1") == []
