"""NATS credentials: events through a nats-server that needs a user and password, through TLS, and
through a 3-server cluster that loses the server camctl is connected to. No secret is shown."""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from camctl.client import Frames, UnknownCamera
from camctl.errors import BusUnreachable
from tests.conftest import Result, require
from tests.harness import CamctlProcess, NatsServer, free_port, nats_server_binary
from tests.ingest_helpers import EventTap

CAMERA = "demo:?size=160x120&fps=10&gop=10"
FRAME = "seguranca.camera.frame"


def _config(tmp_path: Path, nats: str) -> Path:
    config = tmp_path / "camctl.yaml"
    config.write_text(f"cameras:\n  cam_1: '{CAMERA}'\nnats: {nats}\nhttp: {{listen: '127.0.0.1:{free_port()}'}}\n")
    return config


def test_events_flow_through_a_server_that_needs_a_user_and_password_and_nothing_shows_it(
    camctl: Callable[..., Result], tmp_path: Path
) -> None:
    password = "nats-S3cret-pw"
    with NatsServer(auth=f"camctl:{password}") as server:
        config = _config(tmp_path, f"{{url: '{server.url}', user: camctl, password: '{password}'}}")
        shown = camctl("--config", str(config), "config", "show")
        assert shown.returncode == 0 and password not in shown.text and "user: camctl" in shown.text
        tap = EventTap(f"nats://camctl:{password}@127.0.0.1:{server.port}", [FRAME])
        with tap, CamctlProcess(config, tmp_path / "d", "ingest") as proc:
            tap.wait("a frame event", lambda _e: True, timeout=20)
            status = camctl("--config", str(config), "status", "--json")
            assert status.returncode == 0, status.stderr
            assert json.loads(status.text)["source"].startswith("NATS nats://")
            assert proc.terminate()[0] == 0
        assert password not in proc.stderr
        wrong = _config(tmp_path, f"{{url: '{server.url}', user: camctl, password: not-the-password}}")
        with CamctlProcess(wrong, tmp_path / "w", "ingest", name="wrong") as refused:
            deadline = time.monotonic() + 15
            while "credentials refused" not in refused.stderr and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "credentials refused" in refused.stderr, "one line says why events are off"
            assert refused.terminate()[0] == 0


def _family(pid: int) -> list[int]:
    """pid and its descendants (run-all's workers), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def test_run_all_with_a_nats_password_shows_it_nowhere_not_in_ps_banner_log_or_status(tmp_path: Path) -> None:
    """Before: run-all's banner printed a NATS password given in the URL, and every worker's
    command line carried it (`ps -eo args`)."""
    password = "nats-Run4ll-pw"
    with NatsServer(auth=f"camctl:{password}") as server:
        port = free_port()
        config = tmp_path / "camctl.yaml"
        config.write_text(f"cameras:\n  cam_1: '{CAMERA}'\n  cam_2: '{CAMERA}'\n"
                          f"nats: {{url: 'nats://camctl:{password}@127.0.0.1:{server.port}'}}\n"
                          f"http: {{listen: '127.0.0.1:{port}'}}\n")  # fmt: skip
        tap = EventTap(f"nats://camctl:{password}@127.0.0.1:{server.port}", [FRAME])
        with tap, CamctlProcess(config, tmp_path / "d", "run-all") as proc:
            tap.wait("a frame event from each camera", lambda e: e[1]["camera_id"] == "cam_2", timeout=30)
            family = _family(proc.proc.pid)
            assert len(family) >= 3, "the supervisor and its two workers"
            for pid in family:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                assert password not in args, f"pid {pid}: {args}"
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as response:
                assert password not in response.read().decode()
            assert proc.terminate()[0] == 0
        assert "events" in proc.stderr and "nats://" in proc.stderr, "the banner names the server"
        assert password not in proc.stderr and password not in proc.stdout.decode()


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 (openssl, as an operator would make them)."""
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem"))
    ext = folder / "san.cnf"
    ext.write_text("subjectAltName = IP:127.0.0.1\n")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=camctl test CA")  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-out",
        str(cert), "-days", "2", "-extfile", str(ext))  # fmt: skip
    return ca, cert, key


def test_events_flow_through_tls(camctl: Callable[..., Result], tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    with NatsServer(extra=["--tls", "--tlscert", str(cert), "--tlskey", str(key)]) as server:
        config = _config(tmp_path, f"{{url: 'tls://127.0.0.1:{server.port}', tls: {{ca: '{ca}'}}}}")
        tap = EventTap(f"tls://127.0.0.1:{server.port}", [FRAME], tls=ssl.create_default_context(cafile=str(ca)))
        with tap, CamctlProcess(config, tmp_path / "d", "ingest") as proc:
            tap.wait("a frame event over TLS", lambda _e: True, timeout=20)
            status = camctl("--config", str(config), "status", "--json")
            assert status.returncode == 0 and json.loads(status.text)["source"].startswith("NATS tls://")
            assert proc.terminate()[0] == 0
        untrusted = _config(tmp_path, f"{{url: 'tls://127.0.0.1:{server.port}'}}")  # no CA: the cert is not trusted
        with CamctlProcess(untrusted, tmp_path / "u", "ingest", name="untrusted") as refused:
            deadline = time.monotonic() + 15
            while "NATS at tls://" not in refused.stderr and time.monotonic() < deadline:
                time.sleep(0.1)
            assert "NATS at tls://" in refused.stderr and "certificate" in refused.stderr.lower()
            assert refused.terminate()[0] == 0


def test_a_cluster_that_loses_camctls_server_delivers_again_within_5_s(tmp_path: Path) -> None:
    # Every port picked by its server and read back: each member routes to those started before it
    # (a full mesh of explicit routes: any one of them may go and the other two stay joined).
    servers: list[NatsServer] = []
    try:
        for _ in range(3):
            earlier = ",".join(f"nats://127.0.0.1:{s.route_port}" for s in servers)
            cluster = ["--cluster_name", "camctl-test", "--cluster", "nats://127.0.0.1:-1"]
            routes = ["--routes", earlier] if earlier else []
            servers.append(NatsServer(extra=[*cluster, *routes, "-m", "-1"]).start())
        monitors = [s.monitor_port for s in servers]
        assert all(monitors) and all(s.route_port for s in servers)
        urls = ",".join(s.url for s in servers)
        config = _config(tmp_path, f"{{url: '{urls}'}}")
        with CamctlProcess(config, tmp_path / "d", "ingest") as proc:
            home = _server_of(monitors, "camctl@")
            listener = next(i for i in range(3) if i != home)
            with EventTap(servers[listener].url, [FRAME]) as tap:
                tap.wait("a frame event through the cluster", lambda _e: True, timeout=30)
                servers[home].stop()
                lost = time.time()
                _s, _event, received = tap.wait("an event after the loss", lambda e: e[2] > lost + 0.2, timeout=15)
                assert received - lost <= 5.0, f"events back {received - lost:.1f} s after the server went"
            assert proc.terminate()[0] == 0
    finally:
        for server in servers:
            server.stop()


def _server_of(monitors: list[int], client: str, timeout: float = 20.0) -> int:
    """Which server (by index) a client whose name starts with `client` is connected to."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for index, port in enumerate(monitors):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/connz", timeout=2) as response:
                names = [c.get("name", "") for c in json.loads(response.read()).get("connections", [])]
            if any(name.startswith(client) for name in names):
                return index
        time.sleep(0.2)
    raise AssertionError(f"no server has a client named {client}*")


def test_a_consumer_finds_the_bus_and_its_credentials_from_camctl_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Frames("cam_1")` with no URL: the NATS of the config every command reads ($CAMCTL_CONFIG),
    logged in with its user and password; the wrong password is one line, not a hang."""
    require("nats-server", nats_server_binary)
    with NatsServer(auth="camctl:consumer-secret") as server:
        config = _config(tmp_path, f"{{url: '{server.url}', user: camctl, password: consumer-secret}}")
        monkeypatch.setenv("CAMCTL_CONFIG", str(config))
        with pytest.raises(UnknownCamera, match=f"no camctl answered on {server.url}"):
            Frames("cam_1", timeout=3)  # connected and asked: nobody runs the camera
        config.write_text(config.read_text().replace("consumer-secret", "wrong-secret"))
        with pytest.raises(BusUnreachable, match="credentials refused") as refused:
            Frames("cam_1", timeout=3)
        assert "wrong-secret" not in str(refused.value)
