"""A real ONVIF device for the tests: ipycam's ONVIF service (PyPI `ipycam`, "Pure Python Virtual IP
Camera with ONVIF support") as a child process on loopback, whose main and sub profiles lead to
given RTSP URLs (the FakeCameras' main and sub streams).

    with FakeCameras(sub="320x180@10") as cams, OnvifCamera(cams.url("cam1"), cams.url("cam1", "sub"),
            main="640x360@15", sub="320x180@10") as onvif:
        onvif.url          # onvif://admin:secret@127.0.0.1:PORT
        onvif.discovery    # ("127.0.0.1", UDP port) answering a unicast WS-Discovery Probe

What runs is ipycam's own SOAP handling (ipycam.onvif.ONVIFService behind ipycam.http's
IPCameraHTTPHandler): GetDeviceInformation, GetCapabilities, GetServices, GetScopes,
GetProfiles (H264, size, fps, bitrate per profile), GetStreamUri, GetSnapshotUri,
GetSystemDateAndTime and WS-Security UsernameToken (PasswordDigest) checks: a wrong password gets
HTTP 401 with a SOAP Fault "Sender not authorized"; and its WS-Discovery ProbeMatch. Only the
sockets are ours: ipycam's IPCamera.start() would bind 0.0.0.0, join 239.255.255.250 and send
multicast Hello/Bye, and would encode video with FFmpeg/go2rtc; here the HTTP server is bound to
127.0.0.1 on a free port, and the WS-Discovery responder (ipycam's WSDiscoveryServer loop, with
its announcements off) to 127.0.0.1 on a free UDP port, answering unicast Probes only. No video
is encoded: the stream URIs are the given RTSP URLs (ipycam builds them as
rtsp://{local_ip}:{rtsp_port}/{stream_name}, so they must be rtsp://127.0.0.1:PORT/PATH, one
port for both, without credentials, as real cameras hand them out). The snapshot URI
(http://127.0.0.1:PORT/snapshot.jpg, HTTP Basic auth) serves a still JPEG drawn once.

The child is stopped by closing its stdin, then by PID (terminate, kill), never by name.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Any, Self
from urllib.parse import quote, urlsplit

from tests.harness import REPO, ComponentMissing, LineReader, ManagedChild, _stop_by_stdin

ONVIF_INSTALL_HINT = "pip install ipycam onvif-zeep-async (ipycam pulls numpy and opencv-python)"


def check_onvif_camera() -> None:
    """Raises ComponentMissing unless the virtual ONVIF camera (ipycam) can run here."""
    probe = "import ipycam.onvif, ipycam.http, ipycam.discovery, ipycam.config; print(ipycam.__version__)"
    try:
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        raise ComponentMissing("importing ipycam timed out") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        raise ComponentMissing(f"ipycam unusable ({last}); install: {ONVIF_INSTALL_HINT}")


def _size_fps(spec: str) -> tuple[int, int, int]:
    size, _, fps = spec.partition("@")
    width, _, height = size.partition("x")
    return int(width), int(height), int(fps or 15)


def _stream_parts(url: str) -> tuple[int, str]:
    """(port, stream name) of rtsp://127.0.0.1:PORT/NAME: what ipycam can hand out as a stream URI."""
    parts = urlsplit(url)
    if parts.scheme != "rtsp" or parts.hostname != "127.0.0.1" or parts.username or not parts.port:
        raise ValueError(f"{url}: the ONVIF camera can only point to rtsp://127.0.0.1:PORT/PATH (no credentials)")
    name = url.split("/", 3)[3] if url.count("/") >= 3 else ""
    return parts.port, name


class OnvifCamera(ManagedChild):
    """ipycam's ONVIF service on a free loopback port; profiles Profile_Main and Profile_Sub."""

    def __init__(
        self,
        main_url: str,
        sub_url: str | None = None,
        *,
        username: str = "admin",
        password: str = "secret",  # noqa: S107 (the test camera's)
        main: str = "640x360@15",
        sub: str = "320x180@10",
        main_bitrate: int = 512,
        sub_bitrate: int = 512,
        manufacturer: str = "PythonCam",
        model: str = "VirtualCam-1",
        serial: str = "PY-000001",
        name: str = "camctl-test",
        discovery: bool = True,
        discovery_port: int = 0,
        probe_match: str = "ipycam",
    ) -> None:
        """main/sub: WxH@FPS the profiles announce (as FakeCameras' size/fps and sub); bitrates in
        kbit/s. username "" and password "" turn authentication off (an open camera).
        discovery: also answer unicast WS-Discovery Probes on 127.0.0.1, on discovery_port (0: a free
        UDP port; 3702 is WS-Discovery's own, for a test that must find it where a real camera is).
        probe_match: "ipycam" answers as ipycam does (Action .../discovery/ProbeMatch and a bare
        d:ProbeMatch, which strict parsers such as the WSDiscovery package drop); "standard" answers
        as WS-Discovery has it (Action .../discovery/ProbeMatches, d:ProbeMatches/d:ProbeMatch)."""
        if probe_match not in {"ipycam", "standard"}:
            raise ValueError(f"probe_match {probe_match!r}: ipycam or standard")
        rtsp_port, main_name = _stream_parts(main_url)
        sub_port, sub_name = _stream_parts(sub_url or main_url)
        if sub_port != rtsp_port:
            raise ValueError("main and sub stream must be on one RTSP port (ipycam has one rtsp_port)")
        mw, mh, mfps = _size_fps(main)
        sw, sh, sfps = _size_fps(sub)
        self.username, self.password = username, password
        self.spec: dict[str, Any] = {
            "config": {
                "local_ip": "127.0.0.1",
                "rtsp_port": rtsp_port,
                "main_stream_name": main_name,
                "sub_stream_name": sub_name,
                "main_width": mw,
                "main_height": mh,
                "main_fps": mfps,
                "main_bitrate": f"{main_bitrate}K",
                "sub_width": sw,
                "sub_height": sh,
                "sub_fps": sfps,
                "sub_bitrate": f"{sub_bitrate}K",
                "manufacturer": manufacturer,
                "model": model,
                "serial_number": serial,
                # ipycam writes the name into its WS-Discovery Scopes as onvif://www.onvif.org/name/<name>
                # unencoded: a second scope after a space gives discovery the model, as real cameras do.
                "name": f"{quote(name)} onvif://www.onvif.org/hardware/{quote(model)}",
                "username": username,
                "password": password,
            },
            "discovery": discovery,
            "discovery_port": discovery_port,
            "probe_match": probe_match,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.discovery_port = 0
        self._log = tempfile.TemporaryFile()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """onvif://user:pass@127.0.0.1:PORT, as camctl's config and `camctl probe` take it."""
        auth = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}@" if self.username else ""
        return f"onvif://{auth}127.0.0.1:{self.port}"

    @property
    def xaddr(self) -> str:
        return f"http://127.0.0.1:{self.port}/onvif/device_service"

    @property
    def discovery(self) -> tuple[str, int]:
        return "127.0.0.1", self.discovery_port

    def start(self, timeout: float = 30.0) -> Self:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.onvif_camera", json.dumps(self.spec)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        try:
            ready = json.loads(LineReader(self.proc.stdout, "onvif-camera").next(deadline, "start"))
            self.port, self.discovery_port = int(ready["port"]), int(ready["discovery_port"])
            self._wait_answering(deadline)
        except (TimeoutError, RuntimeError, ValueError, KeyError) as exc:
            self.stop()
            raise RuntimeError(f"{exc}; onvif-camera said: {self.log()[-2000:]}") from None
        return self

    def _wait_answering(self, deadline: float) -> None:
        """Until a SOAP GetSystemDateAndTime gets an answer (200, or 401 with auth on)."""
        body = (
            b'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
            b'<s:Body><GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>'
        )
        while True:
            request = urllib.request.Request(  # noqa: S310 (our loopback URL)
                self.xaddr, data=body, headers={"Content-Type": "application/soap+xml; charset=utf-8"}
            )
            try:
                with urllib.request.urlopen(request, timeout=2):  # noqa: S310
                    return
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return
                raise RuntimeError(f"the ONVIF camera answered HTTP {exc.code}") from None
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("the ONVIF camera does not answer") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            _stop_by_stdin(self.proc)
            self.proc = None


def _serve(spec: dict[str, Any]) -> int:  # pragma: no cover - runs in the child
    """The child: ipycam's ONVIF service on 127.0.0.1; prints one JSON line once bound, runs until
    stdin ends."""
    import socket
    import threading
    from http.server import ThreadingHTTPServer

    import cv2
    import numpy as np
    from ipycam.config import CameraConfig  # type: ignore[import-untyped]
    from ipycam.discovery import WSDiscoveryServer  # type: ignore[import-untyped]
    from ipycam.http import IPCameraHTTPHandler  # type: ignore[import-untyped]
    from ipycam.onvif import ONVIFService  # type: ignore[import-untyped]

    config = CameraConfig(**spec["config"])
    onvif = ONVIFService(config)  # no PTZ controller: PTZ calls answer without moving anything
    if spec.get("probe_match") == "standard":  # this instance's copy of ipycam's template, as the standard has it
        template = onvif._templates["probe_match"]
        template = template.replace("/discovery/ProbeMatch<", "/discovery/ProbeMatches<")
        template = template.replace("<d:ProbeMatch>", "<d:ProbeMatches><d:ProbeMatch>")
        onvif._templates["probe_match"] = template.replace("</d:ProbeMatch>", "</d:ProbeMatch></d:ProbeMatches>")

    still = np.full((config.main_height, config.main_width, 3), (60, 90, 30), dtype=np.uint8)
    cv2.putText(still, "ONVIF test camera", (10, config.main_height // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.0,
                (255, 255, 255), 2)  # fmt: skip

    class Device:
        """What IPCameraHTTPHandler needs of an IPCamera for ONVIF and the snapshot."""

        def __init__(self) -> None:
            self.config, self.onvif = config, onvif

        def get_snapshot_frame(self) -> Any:
            return still.copy()

    class Handler(IPCameraHTTPHandler):  # type: ignore[misc]
        camera = Device()

    class Server(ThreadingHTTPServer):
        daemon_threads = True

    http_server = Server(("127.0.0.1", 0), Handler)
    config.onvif_port = http_server.server_address[1]  # XAddrs, snapshot URI and ProbeMatch use it

    class LoopbackDiscovery(WSDiscoveryServer):  # type: ignore[misc]
        """ipycam's responder loop on a loopback UDP socket: no multicast join, no Hello/Bye."""

        def __init__(self) -> None:
            threading.Thread.__init__(self, daemon=True)
            self.onvif, self.running = onvif, True
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", int(spec.get("discovery_port", 0))))
            self.sock.settimeout(1.0)

        def _send_announcement(self, action: str) -> None:
            pass  # Hello/Bye go to 239.255.255.250: never from a test

    discovery = LoopbackDiscovery() if spec.get("discovery", True) else None
    discovery_port = discovery.sock.getsockname()[1] if discovery else 0
    if discovery:
        discovery.start()
    threading.Thread(target=http_server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
    print(json.dumps({"ready": True, "port": config.onvif_port, "discovery_port": discovery_port}), flush=True)
    sys.stdin.buffer.read()  # until the parent closes our stdin (or dies)
    http_server.shutdown()
    if discovery:
        discovery.stop()
    return 0


if __name__ == "__main__":
    sys.exit(_serve(json.loads(sys.argv[1])))
