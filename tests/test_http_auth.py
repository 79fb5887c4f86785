"""HTTP authentication on run-all's front: every route but /healthz needs a user, frame events carry
URLs signed for their path and a minute, failed logins are refused after ten, the page works behind
the same credentials, and the CLI on the box still gets warm snapshots."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from camctl.signing import KEY_FILE, Signer
from tests.conftest import Result
from tests.harness import CamctlProcess, FakeCameras, NatsServer, free_port
from tests.ingest_helpers import EventTap
from tests.recording_helpers import wait_for

USER, PASSWORD = "operator", "s3cret-operator-pw"
ROUTES = ["/", "/cam1/", "/static/app.js", "/static/timeline.js", "/status", "/metrics", "/api/cameras",
          "/api/events", "/api/recordings/cam1", "/api/fleet", "/cam_1/frame.jpg", "/cam1/stream.mjpeg",
          "/cam_1/live.mp4", "/cam_1/live.m3u8", "/cam_1/hls/main/init-1.mp4", "/cam_1/hls/main/0.mp4"]  # fmt: skip


def _config(tmp_path: Path, fake_cameras: Callable[..., FakeCameras], nats: NatsServer, port: int, users: str) -> Path:
    """run-all on one small fake camera, HTTP on loopback with these users."""
    cams = fake_cameras(count=1, size="320x240", fps=15, gop=15, bitrate=300)
    config = tmp_path / "camctl.yaml"
    config.write_text(
        f"cameras:\n  cam_1: '{cams.url()}'\nstorage: {{root: '{tmp_path / 'rec'}', retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats.url}'}}\nhttp: {{listen: '127.0.0.1:{port}', users: {{{users}}}}}\n"
    )
    return config


def _head(url: str, auth: str | None = None) -> tuple[int, dict[str, str]]:
    """Status and headers only (several routes stream forever)."""
    request = urllib.request.Request(url, headers={"Authorization": auth} if auth else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback test URL
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers)
    except OSError:
        return 0, {}  # nothing listening yet


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _websocket_status(port: int, path: str, auth: str | None = None) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        extra = f"Authorization: {auth}\r\n" if auth else ""
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: camctl\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
        )
        return int(sock.recv(64).split()[1])


def test_every_route_but_healthz_needs_a_user_and_events_carry_signed_urls(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, camctl: Callable[..., Result], tmp_path: Path
) -> None:
    port = free_port()
    config = _config(tmp_path, fake_cameras, nats_server, port, f"{USER}: {PASSWORD}, viewer: another-password")
    base, good = f"http://127.0.0.1:{port}", _basic(USER, PASSWORD)
    tap = EventTap(nats_server.url, ["seguranca.camera.frame"])
    with tap, CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        wait_for("the camera online", lambda: _head(f"{base}/cam_1/frame.jpg", good)[0] == 200, timeout=30)
        assert _head(f"{base}/healthz")[0] == 200, "health checks need no password"
        for route in ROUTES:
            status, headers = _head(base + route)
            assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic"), route
            assert _head(base + route, good)[0] == 200, route
            assert _head(base + route, _basic("viewer", "another-password"))[0] == 200, route
        footage = "/cam1/recording.mp4?start=-1m&duration=30"  # 404 until a segment closes: not 401
        assert _head(base + footage)[0] == 401 and _head(base + footage, good)[0] in (200, 404)
        assert _websocket_status(port, "/cam_1/live.ws") == 401
        assert _websocket_status(port, "/cam_1/live.ws", good) == 101

        # The frame event's url works on its own, for its path only, until it expires.
        _subject, event, _at = tap.wait("a frame event", lambda _e: True, timeout=10)
        assert list(event)[:6] == ["camera_id", "timestamp", "frame_number", "resolution", "fps", "url"]
        assert set(event) - {"camera_id", "timestamp", "frame_number", "resolution", "fps", "url"} <= {"stream", "ring"}
        url = event["url"]
        assert url.startswith(f"{base}/cam1/frame.jpg?exp=") and "&sig=" in url
        status, headers = _head(url)
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        assert _head(url.replace("sig=", "sig=0"))[0] == 403, "a tampered signature"
        assert _head(url.replace("/cam1/frame.jpg", "/cam1/stream.mjpeg"))[0] == 403, "another path"
        key = (tmp_path / "d" / KEY_FILE).read_bytes()
        expired = Signer(key).sign("/cam1/frame.jpg", now=time.time() - 120)
        assert _head(base + expired)[0] == 403, "an expired one"

        # The CLI on the box gets a warm snapshot through a URL it signs itself.
        shot = camctl("--config", str(config), "snapshot", "cam_1", "-o", str(tmp_path / "s.jpg"),
                      CAMCTL_DATA_DIR=str(tmp_path / "d"))  # fmt: skip
        assert shot.returncode == 0 and "(warm)" in shot.stderr, shot.stderr

        # Ten wrong passwords from one address: refused for a while, even the right one; logged
        # with the user's name, never the password tried.
        for _ in range(10):
            assert _head(f"{base}/status", _basic(USER, "wrong-guess-123"))[0] == 401
        assert _head(f"{base}/status", good)[0] == 429
        assert proc.terminate()[0] == 0, proc.stderr
    assert "HTTP login refused for user 'operator' from 127.0.0.1" in proc.stderr
    assert "wrong-guess-123" not in proc.stderr and PASSWORD not in proc.stderr


def test_the_page_plays_behind_the_same_credentials(
    fake_cameras: Callable[..., FakeCameras], nats_server: NatsServer, browser: Any, tmp_path: Path
) -> None:
    port = free_port()
    config = _config(tmp_path, fake_cameras, nats_server, port, f"{USER}: {PASSWORD}")
    with CamctlProcess(config, tmp_path / "d", "run-all") as proc:
        base = f"http://127.0.0.1:{port}"
        wait_for("the camera online", lambda: _head(f"{base}/cam_1/frame.jpg", _basic(USER, PASSWORD))[0] == 200,
                 timeout=30)  # fmt: skip
        stranger = browser.new_page()
        with pytest.raises(Exception, match="ERR_INVALID_AUTH_CREDENTIALS"):  # the browser got 401 and no user
            stranger.goto(base + "/")
        stranger.close()
        context = browser.new_context(http_credentials={"username": USER, "password": PASSWORD})
        page = context.new_page()
        page.goto(base + "/")
        wait_for("the video playing", lambda: page.evaluate(
            "() => { const v = document.querySelector('video[data-camera=\"cam_1\"]'); "
            "return v !== null && v.currentTime > 0.5 && v.videoWidth === 320; }"), timeout=20)  # fmt: skip
        wait_for("the badge live", lambda: page.locator('.badge[data-camera="cam_1"]').get_attribute("data-online")
                 == "true", timeout=10)  # fmt: skip
        context.close()
        assert proc.terminate()[0] == 0, proc.stderr
    assert json.dumps(PASSWORD) not in proc.stderr


def test_the_gate_checks_users_and_forgets_quiet_addresses() -> None:
    from camctl.secrets import Secret
    from camctl.web.auth import FAILURE_WINDOW, MAX_TRACKED, Gate

    gate = Gate({USER: Secret(PASSWORD)}, Signer(b"k" * 32))
    assert gate.user(_basic(USER, PASSWORD)) == USER
    assert gate.user(_basic(USER, PASSWORD + "x")) is None and gate.user("Basic !!!") is None
    assert gate.user(None) is None and gate.user("Bearer abc") is None
    for n in range(MAX_TRACKED + 10):  # a scan from many addresses, long ago
        gate._failed(f"10.0.{n // 256}.{n % 256}", _basic("x", "y"), now=0.0)
    gate._failed("192.0.2.1", _basic("x", "y"), now=FAILURE_WINDOW * 10)
    assert len(gate._failures) <= 2, "memory for failed logins stays bounded"
