"""WebKitGTK (Safari's engine) driven through its WebDriver: Xvfb on a display of its own choosing,
WebKitWebDriver on a free loopback port, and Debian's MiniBrowser as the browser, through selenium.

Used by tests/test_webkit.py (the `webkit` fixture) and by the live-view benchmark
(webkit_glass_to_screen). Every process started here is stopped by its owner, by PID: Xvfb, and
WebKitWebDriver's process group (the driver, MiniBrowser and WebKit's helper processes).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import select
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from tests.harness import STAMP_BITS, STAMP_ROWS, ComponentMissing, free_port

WEBKIT_INSTALL_HINT = (
    "apt-get install -y webkit2gtk-driver xvfb gstreamer1.0-libav gstreamer1.0-plugins-good "
    "gstreamer1.0-plugins-bad; pip install selenium (scripts/test does both)"
)
# WebKitGTK plays <video> through GStreamer: these plugins (any one of each line) and their packages.
GST_PLUGINS = (
    (("playback", "app"), "gstreamer1.0-plugins-base"),  # playbin, appsrc/appsink
    (("isomp4",), "gstreamer1.0-plugins-good"),  # qtdemux: MP4 and fragmented MP4
    (("videoparsersbad",), "gstreamer1.0-plugins-bad"),  # h264parse
    (("libav",), "gstreamer1.0-libav"),  # avdec_h264: the only H.264 decoder without a GPU
    (("hls", "adaptivedemux2"), "gstreamer1.0-plugins-bad"),  # hlsdemux (or good's hlsdemux2): HLS
)
MINIBROWSER_PATTERNS = (
    "/usr/lib/*/webkit2gtk-4.1/MiniBrowser",
    "/usr/lib/*/webkit2gtk-4.0/MiniBrowser",
    "/usr/lib/*/webkitgtk-6.0/MiniBrowser",
    "/usr/libexec/webkit2gtk-4.1/MiniBrowser",
    "/usr/libexec/webkit2gtk-4.0/MiniBrowser",
)


def minibrowser_binary() -> str:
    """Debian's MiniBrowser (webkit2gtk-driver depends on it), or CAMCTL_MINIBROWSER."""
    chosen = os.environ.get("CAMCTL_MINIBROWSER")
    if chosen:
        if not os.access(chosen, os.X_OK):
            raise ComponentMissing(f"CAMCTL_MINIBROWSER={chosen} is not an executable")
        return chosen
    for pattern in MINIBROWSER_PATTERNS:
        for found in sorted(Path("/").glob(pattern.lstrip("/"))):
            if os.access(found, os.X_OK):
                return str(found)
    raise ComponentMissing(f"WebKitGTK's MiniBrowser not found; install: {WEBKIT_INSTALL_HINT}")


def _gst_plugin_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("GST_PLUGIN_SYSTEM_PATH_1_0", "").split(":") if p]
    return [*dirs, *sorted(Path("/usr/lib").glob("*/gstreamer-1.0")), Path("/usr/lib/gstreamer-1.0")]


def check_webkit() -> None:
    """Raises ComponentMissing unless WebKitGTK can be driven here and can decode H.264."""
    for program in ("WebKitWebDriver", "Xvfb"):
        if shutil.which(program) is None:
            raise ComponentMissing(f"{program} not found; install: {WEBKIT_INSTALL_HINT}")
    minibrowser_binary()
    try:
        import selenium.webdriver  # noqa: F401
    except ImportError:
        raise ComponentMissing(f"the selenium Python package is missing; install: {WEBKIT_INSTALL_HINT}") from None
    dirs = _gst_plugin_dirs()
    missing = [f"{'/'.join(plugins)} ({package})" for plugins, package in GST_PLUGINS
               if not any((d / f"libgst{plugin}.so").exists() for d in dirs for plugin in plugins)]  # fmt: skip
    if missing:
        raise ComponentMissing(f"GStreamer plugins WebKitGTK needs are missing: {', '.join(missing)}; "
                               f"install: {WEBKIT_INSTALL_HINT}")  # fmt: skip


def _stop_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stops a child started in a session of its own, with every process of its group (MiniBrowser
    and WebKit's helpers under WebKitWebDriver). The leader is reaped last: until then its PID, the
    group's id, cannot be given to another process."""
    if proc.returncode is not None:
        return  # already reaped: its group's id may belong to someone else by now
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:  # exited, not reaped
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # whatever of the group is left, the leader too if it lingers
    proc.wait(grace)


def _answers(port: int) -> bool:
    """WebKitWebDriver's /status answers 200 (straight to 127.0.0.1: no proxy from the environment)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/status")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


class WebKitBrowser:
    """`with WebKitBrowser() as browser:` browser.driver is a selenium WebDriver for MiniBrowser
    (WebKitGTK), on an Xvfb display of its own (software rendering); video plays without a gesture.
    WebKit's sandbox is off (root in a container has no user namespaces for bubblewrap)."""

    def __init__(
        self,
        width: int = 1280,
        height: int = 800,
        hls: bool = False,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        compositing: bool = True,
    ) -> None:
        """hls: switch on WebKitGTK's HLS through GStreamer's hlsdemux (WEBKIT_GST_ENABLE_HLS_SUPPORT=1;
        off by default, so a stock WebKitGTK answers canPlayType('application/vnd.apple.mpegurl')
        with ''). args: more MiniBrowser options (its WebKitSettings options, --enable-mediasource=false
        and the like, do not reach the automation session's views); env: more environment for the
        browser (WEBKIT_*, GST_DEBUG). compositing=False: WEBKIT_DISABLE_COMPOSITING_MODE=1, without
        which WebDriver's screenshots show a <video> black (webkit_glass_to_screen needs it)."""
        self.width, self.height = width, height
        self.hls = hls
        self.args = args or []
        self.extra_env = env or {}
        self.compositing = compositing
        self._log_text = ""
        self.display = ""
        self.xvfb: subprocess.Popen[bytes] | None = None
        self.webdriver: subprocess.Popen[bytes] | None = None
        self.driver: Any = None
        self.port = 0
        self._runtime = tempfile.TemporaryDirectory(prefix="camctl-webkit-")
        self._log: IO[bytes] = tempfile.TemporaryFile()

    def log(self) -> str:
        """What Xvfb, WebKitWebDriver and the browser wrote (kept after the browser stops)."""
        if not self._log.closed:
            self._log.seek(0)
            self._log_text = self._log.read().decode(errors="replace")
        return self._log_text

    def _start_xvfb(self, timeout: float) -> None:
        read, write = os.pipe()
        try:
            self.xvfb = subprocess.Popen(
                ["Xvfb", "-displayfd", str(write), "-nolisten", "tcp", "-noreset",
                 "-screen", "0", f"{self.width}x{self.height}x24"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, pass_fds=(write,),
            )  # fmt: skip
        finally:
            os.close(write)
        try:
            number = b""
            deadline = time.monotonic() + timeout
            while not number.endswith(b"\n"):
                ready, _, _ = select.select([read], [], [], max(0.0, deadline - time.monotonic()))
                chunk = os.read(read, 64) if ready else b""
                if not chunk:
                    raise RuntimeError(f"Xvfb gave no display number: {self.log()[-1500:]}")
                number += chunk
        finally:
            os.close(read)
        self.display = f":{int(number)}"

    def _env(self) -> dict[str, str]:
        runtime = Path(self._runtime.name)
        runtime.chmod(0o700)
        # its own X display only, and no proxy: the browser talks to camctl on 127.0.0.1 directly
        dropped = {"WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"}
        env = {k: v for k, v in os.environ.items() if k.upper() not in dropped}
        env.update(
            DISPLAY=self.display,
            GDK_BACKEND="x11",
            XDG_RUNTIME_DIR=str(runtime),
            NO_AT_BRIDGE="1",  # no accessibility bus to look for
            # root in a container: no unprivileged user namespaces for bubblewrap
            WEBKIT_DISABLE_SANDBOX_THIS_IS_DANGEROUS="1",
        )
        if self.hls:
            env["WEBKIT_GST_ENABLE_HLS_SUPPORT"] = "1"
        if not self.compositing:
            env["WEBKIT_DISABLE_COMPOSITING_MODE"] = "1"
        env.update(self.extra_env)
        return env

    def _start_webdriver(self, timeout: float) -> None:
        for _attempt in range(3):  # another worker may take the free port first: try another
            self.port = free_port()
            self.webdriver = subprocess.Popen(
                ["WebKitWebDriver", f"--port={self.port}", "--host=127.0.0.1"],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, env=self._env(),
                start_new_session=True,
            )  # fmt: skip
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if _answers(self.port):
                    return
                if os.waitid(os.P_PID, self.webdriver.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    break  # it ended (the port taken meanwhile?): its group is stopped below, then reaped
                time.sleep(0.05)
            _stop_group(self.webdriver)
        raise RuntimeError(f"WebKitWebDriver did not answer: {self.log()[-1500:]}")

    def start(self, timeout: float = 30.0) -> Self:
        import urllib3
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.proxy import Proxy, ProxyType
        from selenium.webdriver.remote.client_config import ClientConfig
        from selenium.webdriver.remote.remote_connection import RemoteConnection
        from selenium.webdriver.webkitgtk.options import Options

        try:
            self._start_xvfb(timeout)
            self._start_webdriver(timeout)
            options = Options()
            options.binary_location = minibrowser_binary()
            options.add_argument("--automation")
            # autoplay: automation sessions play <video> without a gesture, muted or not (checked
            # with WebKitGTK 2.50); the policy also says so for MiniBrowser's own views
            options.add_argument("--autoplay-policy=allow")
            for arg in self.args:
                options.add_argument(arg)
            direct = Proxy()
            direct.proxy_type = ProxyType.DIRECT  # never a proxy from the environment for 127.0.0.1
            # a browser that cannot start leaves the new session waiting: not for long
            config = ClientConfig(remote_server_addr=f"http://127.0.0.1:{self.port}", proxy=direct, timeout=timeout)
            try:
                self.driver = webdriver.Remote(command_executor=RemoteConnection(client_config=config), options=options)
            except (WebDriverException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise RuntimeError(f"WebKitGTK did not start ({exc}); it said: {self.log()[-1500:]}") from None
            config.timeout = 60  # a page load or a screenshot on a busy box
            self.driver.set_window_rect(x=0, y=0, width=self.width, height=self.height)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.driver is not None:
            with contextlib.suppress(Exception):  # a browser already gone
                self.driver.quit()
            self.driver = None
        if self.webdriver is not None:
            _stop_group(self.webdriver)
            self.webdriver = None
        if self.xvfb is not None:
            if self.xvfb.poll() is None:
                self.xvfb.terminate()
                try:
                    self.xvfb.wait(5)
                except subprocess.TimeoutExpired:
                    self.xvfb.kill()
                    self.xvfb.wait(5)
            self.xvfb = None

    def close(self) -> None:
        """Stops everything, and removes the browser's runtime folder (log() still answers)."""
        self.stop()
        self.log()
        self._runtime.cleanup()
        self._log.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


# --- glass-to-screen latency from element screenshots -----------------------------------------

# In WebKitGTK a canvas read of a <video> is unreliable, so the picture is read where the user sees
# it: an element screenshot. With accelerated compositing on (WebKitGTK's default) WebDriver's
# screenshots leave video layers black; the browser for this needs WebKitBrowser(compositing=False).
HIDE_OVERLAYS_JS = """
const style = document.createElement('style');
style.id = 'camctl-latency';
style.textContent = '.tile .top, .tile .bottom, .tile .reason, .tile .note { visibility: hidden !important; }';
document.head.appendChild(style);
"""
VIDEO_STATE_JS = """
const video = document.querySelector(`video[data-camera="${arguments[0]}"]`);
if (!video) return null;
const box = video.getBoundingClientRect();
return {width: box.width, height: box.height, videoWidth: video.videoWidth, videoHeight: video.videoHeight,
        time: video.currentTime, fit: getComputedStyle(video).objectFit, rate: video.playbackRate,
        lag: video.buffered.length ? video.buffered.end(video.buffered.length - 1) - video.currentTime : null,
        way: video.closest('.tile')?.dataset.playback || null};
"""
# A transparent element over the stamp's rows of the picture (as object-fit: contain places it):
# its screenshot is the stamp alone, a PNG some 40 times smaller than the whole video's.
STAMP_BAND_JS = """
const [camera, rows] = arguments;
const video = document.querySelector(`video[data-camera="${camera}"]`);
const box = video.getBoundingClientRect();
const scale = Math.min(box.width / video.videoWidth, box.height / video.videoHeight);
const left = box.left + (box.width - video.videoWidth * scale) / 2;
const top = box.top + (box.height - video.videoHeight * scale) / 2;
const band = document.getElementById('camctl-stamp-band') || document.createElement('div');
band.id = 'camctl-stamp-band';
Object.assign(band.style, {position: 'fixed', left: `${left}px`, top: `${top + (video.videoHeight - rows) * scale}px`,
  width: `${video.videoWidth * scale}px`, height: `${rows * scale}px`, pointerEvents: 'none', zIndex: 100});
document.body.appendChild(band);
"""


def png_rgb(png: bytes) -> Any:
    """A PNG as a numpy array of rows x columns x RGB (PyAV's FFmpeg decodes it)."""
    import io

    import av

    with av.open(io.BytesIO(png), format="png_pipe") as container:
        frame = next(container.decode(video=0))
        return frame.to_ndarray(format="rgb24")


def stamp_in_screenshot(rgb: Any, video_width: int, video_height: int, fit: str = "contain") -> tuple[int, float]:
    """(frame number, capture time in epoch seconds) from a screenshot of a picture of
    scripts/fake-cameras --stamp (video_width x video_height), placed in the screenshot as
    object-fit places it ("fill": the screenshot is exactly the picture, as the stamp band is)."""
    shot_height, shot_width = int(rgb.shape[0]), int(rgb.shape[1])
    scale_x, scale_y = shot_width / video_width, shot_height / video_height
    if fit != "fill":
        scale_x = scale_y = max(scale_x, scale_y) if fit == "cover" else min(scale_x, scale_y)
    left = (shot_width - video_width * scale_x) / 2
    top = (shot_height - video_height * scale_y) / 2
    y = min(shot_height - 1, int(top + (video_height - STAMP_ROWS / 2) * scale_y))  # the stamp's middle row
    row = rgb[y].astype("float32")
    luma = 0.299 * row[:, 0] + 0.587 * row[:, 1] + 0.114 * row[:, 2]
    cell = video_width // STAMP_BITS
    value = 0
    for i in range(STAMP_BITS):
        x = min(shot_width - 1, max(0, int(left + (i * cell + cell / 2) * scale_x)))
        value = value << 1 | bool(luma[x] > 128)
    field = value & ((1 << 40) - 1)  # wall-clock milliseconds modulo 2**40, as fake-cameras writes them
    now_ms = time.time_ns() // 1_000_000
    millis = now_ms - (now_ms - field) % (1 << 40)
    return value >> 40, millis / 1000


def _wait_playing(driver: Any, camera: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    first: float | None = None
    while True:
        now: dict[str, Any] | None = driver.execute_script(VIDEO_STATE_JS, camera)
        if now and now["videoWidth"] > 0:
            if first is None:
                first = now["time"]
            elif now["time"] > first + 0.3:
                return now
        if time.monotonic() > deadline:
            raise TimeoutError(f"{camera}'s video did not play in {timeout}s: {now}")
        time.sleep(0.05)


def webkit_glass_to_screen(
    driver: Any,
    url_of_page: str,
    camera: str,
    samples: int,
    *,
    settle: float = 3.0,
    interval: float = 0.05,
    whole_video: bool = False,
    timeout: float = 30.0,
    details: dict[str, Any] | None = None,
) -> list[float]:
    """Glass-to-screen latency of a stamped camera's live picture in WebKitGTK, in milliseconds:
    the moment of an element screenshot minus the capture time stamped in the picture on screen
    (scripts/fake-cameras --stamp; both clocks are this machine's). driver: a WebKitBrowser's,
    started with compositing=False (else the screenshots are black: RuntimeError).

    Opens url_of_page (camctl's page: http://127.0.0.1:8080/ or /<cam>/), waits for the camera's
    <video> to play, then `settle` seconds (a new viewer starts behind and catches up, played at
    1.25x), hides the tile's overlays (.top, .bottom) and takes `samples` screenshots, `interval`
    seconds apart, of a transparent element over the stamp's rows (whole_video: of the <video>
    itself, ~3x slower). A screenshot's moment is the middle of its WebDriver request; half its
    round trip, the uncertainty, goes to details["half_round_trip_ms"]. It samples the picture
    on screen at random instants, so it reads on average half a frame interval more than a measure
    at presentation (Chromium's requestVideoFrameCallback in bench_live.py). Stamps that read as
    nonsense (negative or above 10 s) are left out and counted in details["misread"]; details also
    gets "way" (the tile's data-playback), "frames" (frame numbers seen), "picture" (its size), and
    after the last screenshot "lag_s" (buffered end - currentTime) and "playback_rate"."""
    from selenium.webdriver.common.by import By

    driver.get(url_of_page)
    playing = _wait_playing(driver, camera, timeout)
    time.sleep(settle)  # the time to measure from, not a synchronisation: playing is awaited above
    driver.execute_script(HIDE_OVERLAYS_JS)
    if whole_video:
        element = driver.find_element(By.CSS_SELECTOR, f'video[data-camera="{camera}"]')
        height, fit = playing["videoHeight"], playing["fit"]
    else:
        driver.execute_script(STAMP_BAND_JS, camera, STAMP_ROWS)
        element = driver.find_element(By.ID, "camctl-stamp-band")
        height, fit = STAMP_ROWS, "fill"
    shots: list[tuple[bytes, float, float]] = []
    for _ in range(samples):
        before = time.time()
        png = element.screenshot_as_png
        shots.append((png, before, time.time()))
        time.sleep(interval)  # pacing, so that screenshots do not take the box's CPU from the page
    after_all: dict[str, Any] = driver.execute_script(VIDEO_STATE_JS, camera) or {}
    latencies, frames, halves, misread, brightest = [], [], [], 0, 0
    for png, before, after in shots:
        rgb = png_rgb(png)
        brightest = max(brightest, int(rgb.max()))
        number, captured = stamp_in_screenshot(rgb, playing["videoWidth"], height, fit)
        latency = ((before + after) / 2 - captured) * 1000
        halves.append((after - before) * 500)
        if 0 <= latency < 10_000:
            latencies.append(latency)
            frames.append(number)
        else:
            misread += 1
    if shots and brightest < 32:
        raise RuntimeError("every screenshot of the video is black: start the browser with "
                           "WebKitBrowser(compositing=False) (WEBKIT_DISABLE_COMPOSITING_MODE=1)")  # fmt: skip
    if details is not None:
        details.update(misread=misread, frames=frames, half_round_trip_ms=halves, way=playing["way"],
                       picture=(playing["videoWidth"], playing["videoHeight"]), lag_s=after_all.get("lag"),
                       playback_rate=after_all.get("rate"))  # fmt: skip
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def summary_ms(values: list[float]) -> dict[str, float]:
    """n, p50, p95 and mean of latencies in ms, rounded to 0.1 ms (nan where there are none)."""
    mean = statistics.fmean(values) if values else float("nan")
    return {"n": len(values), "p50": round(percentile(values, 0.5), 1), "p95": round(percentile(values, 0.95), 1),
            "mean": round(mean, 1)}  # fmt: skip
