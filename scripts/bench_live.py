#!/usr/bin/env python3
"""Live view: glass-to-screen latency in Chromium, time to first picture, and server CPU per viewer,
each beside camctl's MJPEG stream in the same run.

1. Latency: one stamped fake camera (frame number and capture time in its bottom rows, encoded live
   with x264 zerolatency); the page's <video> (live.ws, MSE) and an <img> of stream.mjpeg are drawn
   to a canvas at every presented frame and the stamp read back: now - capture time, p50/p95.
2. First picture: a new page opens a camera with a 2 s GOP; from navigation start to the first
   frame presented (requestVideoFrameCallback), for the video and for the MJPEG <img>.
3. WebKitGTK (Safari's engine): the same stamped camera's glass-to-screen from element screenshots
   of the page's video (a canvas read of a video is unreliable there), beside an MJPEG <img>.
4. HLS: how far behind the camera live.m3u8 plays, read by the ffmpeg CLI (raw pictures, stamps).
5. The page with 4 and 16 cameras (1080p30 main + 640x360@15 sub each, and the stamped one):
   kbit/s its WebSockets receive and the stamped tile's glass-to-screen, tiles playing their mains
   (before streams and roles) and their subs.
6. CPU per viewer: run-all on 4 cameras 1080p30 served by VLC from a pre-encoded file (cheap: no
   encoding in the load generator), with 0, 1 and 8 viewers per camera reading live.mp4, then
   stream.mjpeg; the run-all process tree's CPU over each window.

    .venv/bin/python scripts/bench_live.py --seconds 60            (every part)
    .venv/bin/python scripts/bench_live.py --only hls --seconds 30  (one part)
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_runall import tree, usage

from tests.harness import (
    CamctlProcess,
    FakeCameras,
    NatsServer,
    VlcCamera,
    chromium_binary,
    free_port,
    looping_test_video,
)
from tests.ingest_helpers import http_get

STAMP_JS = """
// The stamp of scripts/fake-cameras --stamp: 64 cells across the bottom 16 rows, bit 1 bright.
window.readStamp = (source, width, height) => {
  const canvas = window.stampCanvas || (window.stampCanvas = document.createElement('canvas'));
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  ctx.drawImage(source, 0, 0, width, height);
  const row = ctx.getImageData(0, height - 8, width, 1).data;
  const cell = Math.floor(width / 64);
  let value = 0n;
  const luma = (at) => 0.299 * row[at] + 0.587 * row[at + 1] + 0.114 * row[at + 2];  // only luma is stamped
  for (let i = 0; i < 64; i++) value = (value << 1n) | (luma((i * cell + (cell >> 1)) * 4) > 128 ? 1n : 0n);
  const field = value & ((1n << 40n) - 1n), now = BigInt(Date.now());
  const millis = now - ((now - field) % (1n << 40n));
  return {number: Number(value >> 40n), latency: Number(now - millis)};
};
"""

VIDEO_LATENCY_JS = """
([camera, seconds]) => new Promise(resolve => {
  const video = document.querySelector(`video[data-camera="${camera}"]`);
  const found = [];
  let last = -1;
  const onFrame = () => {
    const s = readStamp(video, video.videoWidth, video.videoHeight);
    if (s.number !== last) { last = s.number; found.push(s.latency); }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  setTimeout(() => resolve(found), seconds * 1000);
})
"""

MJPEG_LATENCY_JS = """
([camera, seconds]) => new Promise(resolve => {
  const img = document.createElement('img');
  img.src = `/${camera}/stream.mjpeg`;
  document.body.replaceChildren(img);
  const found = [];
  let last = -1;
  const poll = () => {   // an <img> has no per-frame callback: look at every display refresh
    if (img.naturalWidth) {
      const s = readStamp(img, img.naturalWidth, img.naturalHeight);
      if (s.number !== last) { last = s.number; found.push(s.latency); }
    }
    requestAnimationFrame(poll);
  };
  requestAnimationFrame(poll);
  setTimeout(() => { img.src = ''; resolve(found); }, seconds * 1000);
})
"""

VIDEO_FIRST_PICTURE_JS = """
camera => new Promise(resolve => {
  const wait = () => {
    const video = document.querySelector(`video[data-camera="${camera}"]`);
    if (!video) { requestAnimationFrame(wait); return; }
    video.requestVideoFrameCallback((now) => resolve(now));
  };
  wait();
})
"""

MJPEG_FIRST_PICTURE_JS = """
camera => new Promise(resolve => {
  const img = new Image();
  img.onload = () => { const at = performance.now(); img.src = ''; resolve(at); };
  img.src = `/${camera}/stream.mjpeg`;
})
"""


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


def summary(values: list[float]) -> dict[str, Any]:
    return {"n": len(values), "p50": pct(values, 0.5), "p95": pct(values, 0.95),
            "mean": round(statistics.fmean(values), 1) if values else None}  # fmt: skip


def write_config(work: Path, urls: list[str], nats: str, port: int, transport: str = "tcp") -> Path:
    config = work / "camctl.yaml"
    cameras = "".join(f"  cam_{i}: {{url: '{url}', transport: {transport}}}\n" for i, url in enumerate(urls, start=1))
    config.write_text(
        f"cameras:\n{cameras}storage: {{root: '{work / 'rec'}', retention: {{min_free: null}}}}\n"
        f"nats: {{url: '{nats}'}}\nhttp: {{listen: '127.0.0.1:{port}', max_viewers: 50}}\n"
    )
    return config


def wait_online(base: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _h, body = http_get(f"{base}/status")
        cameras = json.loads(body)["cameras"] if status == 200 else []
        if len(cameras) == count and all(c["online"] for c in cameras):
            return
        time.sleep(0.2)
    raise SystemExit("cameras did not come online")


def stamped_run_all(stack: ExitStack, work: Path, data: str) -> tuple[CamctlProcess, str]:
    """run-all on one stamped camera (1280x720 @ 30 fps, GOP 2 s, encoded live), online; its base URL."""
    cams = stack.enter_context(FakeCameras(count=1, size="1280x720", fps=30, gop=60, bitrate=2000, stamp=True))
    nats = stack.enter_context(NatsServer())
    port = free_port()
    config = write_config(work, [cams.url()], nats.url, port)
    proc = stack.enter_context(CamctlProcess(config, work / data, "run-all"))
    base = f"http://127.0.0.1:{port}"
    wait_online(base, 1)
    return proc, base


def browser_runs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with ExitStack() as stack:
        proc, base = stamped_run_all(stack, work, "data")
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(
            executable_path=chromium_binary(), args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        # One at a time: the MJPEG baseline costs camctl a JPEG encode per frame and the browser a
        # decode, and on two cores either would slow the other down.
        firsts: dict[str, list[float]] = {"mse": [], "mjpeg": []}
        for _ in range(args.joins):
            page = browser.new_page()
            page.goto(base + "/#cam_1")  # the page itself: its video from live.ws
            firsts["mse"].append(page.evaluate(VIDEO_FIRST_PICTURE_JS, "cam_1"))
            page.close()
            page = browser.new_page()
            page.goto(base + "/static/style.css")  # a page of the same origin without the player
            firsts["mjpeg"].append(page.evaluate(MJPEG_FIRST_PICTURE_JS, "cam_1"))  # from navigation, as above
            page.close()
        samples = {}
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.add_init_script(STAMP_JS)
        page.goto(base + "/#cam_1")
        page.wait_for_function("() => document.querySelector('video[data-camera=\"cam_1\"]')?.videoWidth > 0")
        samples["mse"] = page.evaluate(VIDEO_LATENCY_JS, ["cam_1", args.seconds])
        page.close()
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        page.add_init_script(STAMP_JS)
        page.goto(base + "/static/style.css")
        samples["mjpeg"] = page.evaluate(MJPEG_LATENCY_JS, ["cam_1", args.seconds])
        browser.close()
        proc.terminate()
    # A misread stamp (a bit lost to compression) gives nonsense: dropped, and counted.
    kept = {k: [v for v in vs if 0 <= v < 10_000] for k, vs in samples.items()}
    return {
        "latency_ms": {k: summary(v) | {"misread": len(samples[k]) - len(v)} for k, v in kept.items()},
        "first_picture_ms": {k: summary(v) for k, v in firsts.items()},
        "camera": "1280x720 30 fps, GOP 2 s, x264 zerolatency (stamped, encoded live)",
    }


@contextmanager
def readers(url: str, count: int) -> Iterator[list[int]]:
    """`count` clients reading a stream as fast as it comes (raw sockets: cheap for the benchmark)."""
    host, port = url.split("/")[2].split(":")
    path = "/" + url.split("/", 3)[3]
    received = [0] * count
    stop = threading.Event()
    socks = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: camctl\r\n\r\n".encode())
        socks.append(sock)

    def pump(i: int, sock: socket.socket) -> None:
        buf = bytearray(256 * 1024)
        while not stop.is_set():
            try:
                n = sock.recv_into(buf)
            except OSError:
                return
            if not n:
                return
            received[i] += n

    threads = [threading.Thread(target=pump, args=(i, s), daemon=True) for i, s in enumerate(socks)]
    for thread in threads:
        thread.start()
    try:
        yield received
    finally:
        stop.set()
        for sock in socks:
            sock.close()


def cpu_runs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    video = looping_test_video(seconds=20, size="1920x1080", fps=30)
    with ExitStack() as stack:
        cams = [stack.enter_context(VlcCamera(video)) for _ in range(4)]
        nats = stack.enter_context(NatsServer())
        port = free_port()
        config = write_config(work, [c.url for c in cams], nats.url, port, transport="auto")  # VLC: RTP over UDP
        proc = stack.enter_context(CamctlProcess(config, work / "data-cpu", "run-all"))
        base = f"http://127.0.0.1:{port}"
        wait_online(base, 4)
        time.sleep(5)  # warm-up: every worker connected and decoding
        pids = tree(proc.proc.pid)
        results: dict[str, Any] = {}
        for kind, route in (("none", None), ("live.mp4", "live.mp4"), ("mjpeg", "stream.mjpeg")):
            for per_camera in (1, 8) if route else (0,):
                with ExitStack() as clients:
                    counters = [clients.enter_context(readers(f"{base}/cam_{i}/{route}", per_camera))
                                for i in range(1, 5)] if route else []  # fmt: skip
                    time.sleep(3)  # joined, at the live edge
                    before_bytes = sum(sum(c) for c in counters)
                    before_cpu, before_front = usage(pids)[1], usage([proc.proc.pid])[1]
                    time.sleep(args.cpu_seconds)
                    spent = usage(pids)[1] - before_cpu
                    front = usage([proc.proc.pid])[1] - before_front
                    got = sum(sum(c) for c in counters) - before_bytes
                results[f"{kind} x{per_camera}"] = {
                    "cpu_percent": round(100 * spent / args.cpu_seconds, 1),
                    "front_cpu_percent": round(100 * front / args.cpu_seconds, 1),  # relaying only: no decode
                    "viewers": 4 * per_camera,
                    "mbit_s_out": round(got * 8 / args.cpu_seconds / 1e6, 1),
                }
        proc.terminate()
    base_cpu = results["none x0"]["cpu_percent"]
    for entry in results.values():
        entry["over_none_percent"] = round(entry["cpu_percent"] - base_cpu, 1)
    return {"cameras": "4 x 1920x1080 30 fps from VLC (pre-encoded x264)", "seconds": args.cpu_seconds,
            "by_viewers": results}  # fmt: skip


def webkit_runs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Glass-to-screen in WebKitGTK (Safari's engine): element screenshots of the stamp's rows of
    the page's video (tests/webkit.py), beside the same camera's MJPEG <img> in the same run."""
    from tests.webkit import WebKitBrowser, webkit_glass_to_screen

    with ExitStack() as stack:
        proc, base = stamped_run_all(stack, work, "data-webkit")
        browser = stack.enter_context(WebKitBrowser(compositing=False))
        details: dict[str, Any] = {}
        video = webkit_glass_to_screen(browser.driver, base + "/", "cam_1", args.webkit_samples, details=details)
        mjpeg, misread = webkit_mjpeg(browser.driver, base, args.webkit_samples)
        proc.terminate()
    return {"browser": "WebKitGTK MiniBrowser on Xvfb (software rendering), element screenshots",
            details["way"]: summary(video) | {"misread": details["misread"]},
            "mjpeg": summary(mjpeg) | {"misread": misread}}  # fmt: skip


def webkit_mjpeg(driver: Any, base: str, samples: int) -> tuple[list[float], int]:
    """The baseline in the same browser: an <img> of stream.mjpeg at its own size, screenshots of
    it (slower than the stamp band's, so each reads a little later)."""
    from selenium.webdriver.common.by import By

    from tests.webkit import png_rgb, stamp_in_screenshot

    driver.get(base + "/static/style.css")  # the origin, without the page's players
    driver.execute_script("""const img = document.createElement('img'); img.id = 'mjpeg';
        img.src = '/cam_1/stream.mjpeg'; document.body.replaceChildren(img);""")
    deadline = time.monotonic() + 30
    while not driver.execute_script("return document.getElementById('mjpeg').naturalWidth"):
        if time.monotonic() > deadline:
            raise SystemExit("no MJPEG picture in WebKitGTK in 30 s")
        time.sleep(0.1)
    time.sleep(2)  # past the first pictures
    element = driver.find_element(By.ID, "mjpeg")
    found, misread = [], 0
    for _ in range(samples):
        before = time.time()
        png = element.screenshot_as_png
        after = time.time()
        _number, captured = stamp_in_screenshot(png_rgb(png), 1280, 720, "fill")
        latency = ((before + after) / 2 - captured) * 1000
        if 0 <= latency < 10_000:
            found.append(latency)
        else:
            misread += 1
        time.sleep(0.05)  # pacing, as the video's screenshots
    return found, misread


def stamp_latency(row: bytes, width: int) -> float | None:
    """now - the capture time in a frame's stamp row (luma), ms; None for an unreadable stamp."""
    cell = width // 64
    value = 0
    for i in range(64):
        value = value << 1 | (row[i * cell + cell // 2] > 128)
    field, now = value & ((1 << 40) - 1), time.time_ns() // 1_000_000
    return float(now - (now - (now - field) % (1 << 40)))


def hls_runs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """How far behind the camera live.m3u8 plays: ffmpeg reads the playlist (as a player would,
    from where the playlist starts it) and hands over raw pictures; the stamp of each is read."""
    width, height, fps = 1280, 720, 30
    with ExitStack() as stack:
        cams = stack.enter_context(FakeCameras(count=1, size=f"{width}x{height}", fps=fps, gop=fps, bitrate=2000,
                                               stamp=True))  # fmt: skip
        nats = stack.enter_context(NatsServer())
        port = free_port()
        config = write_config(work, [cams.url()], nats.url, port)
        proc = stack.enter_context(CamctlProcess(config, work / "data-hls", "run-all"))
        base = f"http://127.0.0.1:{port}"
        wait_online(base, 1)
        ffmpeg = subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", f"{base}/cam_1/live.m3u8", "-an",
             "-vf", f"crop={width}:2:0:{height - 8}", "-pix_fmt", "gray", "-f", "rawvideo", "-"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert ffmpeg.stdout is not None
        latencies: list[float] = []
        started = time.monotonic()
        first: float | None = None
        try:
            while time.monotonic() - started < args.seconds:
                row = ffmpeg.stdout.read(2 * width)[:width]  # two rows: yuv420p crops by twos
                if len(row) < width:
                    break
                latency = stamp_latency(row, width)
                if first is None:
                    first = time.monotonic() - started
                if latency is not None and 0 <= latency < 60_000:
                    latencies.append(latency)
        finally:
            ffmpeg.terminate()
            ffmpeg.wait(10)
        proc.terminate()
    steady = latencies[len(latencies) // 4 :]  # after the first segments, read as fast as they come
    return {"camera": f"{width}x{height} {fps} fps, GOP 1 s (a segment per GOP)", "reader": "ffmpeg CLI",
            "first_picture_s": round(first, 2) if first is not None else None,
            "behind_live_ms": summary(steady)}  # fmt: skip


PAGE_BYTES_JS = """
() => { window.received = 0;
  const count = (ws) => ws.addEventListener('message', (e) => {
    window.received += typeof e.data === 'string' ? e.data.length : e.data.byteLength; });
  const Original = window.WebSocket;
  window.WebSocket = function (...a) { const ws = new Original(...a); count(ws); return ws; };
  window.WebSocket.prototype = Original.prototype; }
"""


def page_runs(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The page with 4 and 16 cameras on a laptop's screen: what it receives per second, and the
    glass-to-screen of a stamped tile, with the tiles playing their mains (before streams and
    roles) and their subs (now). Cameras besides the stamped one: 1080p30 main + 640x360@15 sub,
    replayed loops; the stamped one (cam_1) 1280x720 has only a main."""
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {}
    with ExitStack() as stack:
        stamped = stack.enter_context(FakeCameras(count=1, size="1280x720", fps=30, gop=30, bitrate=2000,
                                                  stamp=True))  # fmt: skip
        most = max(args.page_cameras)
        others = FakeCameras(count=most - 1, size="1920x1080", fps=30, gop=30, bitrate=2048, sub="640x360@15")
        stack.callback(others.stop)
        others.start(timeout=900)  # the loops are encoded once, then cached
        nats = stack.enter_context(NatsServer())
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(
            executable_path=chromium_binary(), args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
        )
        for count in args.page_cameras:
            for tiles in ("main", "sub"):
                port = free_port()
                config = page_config(work / f"page-{count}-{tiles}.yaml", stamped, others, count, tiles, nats.url, port)
                with CamctlProcess(config, work / f"data-page-{count}-{tiles}", "run-all") as proc:
                    wait_online(f"http://127.0.0.1:{port}", count, timeout=120)
                    results[f"{count} cameras, tiles play {tiles}"] = measure_page(browser, port, args.page_seconds)
                    proc.terminate(timeout=30)
        browser.close()
    return {"screen": "1600x900 Chromium", "seconds": args.page_seconds, "pages": results}


def page_config(path: Path, stamped: FakeCameras, others: FakeCameras, count: int, tiles: str, nats: str,
                port: int) -> Path:  # fmt: skip
    """cam_1 the stamped camera (a main only); the others a main and a sub, tiles playing `tiles`."""
    lines = [f"  cam_1: {{url: '{stamped.url()}'}}\n"]
    for n, name in enumerate(list(others.urls)[: count - 1], start=2):
        streams = f"{{main: '{others.url(name)}', sub: '{others.url(name, 'sub')}'}}"
        lines.append(f"  cam_{n}: {{streams: {streams}, roles: {{live: {tiles}}}}}\n")
    storage = f"storage: {{root: '{path.parent / 'rec-page'}', retention: {{min_free: null}}}}\n"
    path.write_text(f"cameras:\n{''.join(lines)}{storage}nats: {{url: '{nats}'}}\n"
                    f"http: {{listen: '127.0.0.1:{port}', max_viewers: 50}}\n")  # fmt: skip
    return path


def measure_page(browser: Any, port: int, seconds: float) -> dict[str, Any]:
    """Kbit/s the page's WebSockets receive, and the stamped tile's glass-to-screen."""
    page = browser.new_page(viewport={"width": 1600, "height": 900})
    page.add_init_script(STAMP_JS)
    page.add_init_script(f"({PAGE_BYTES_JS})()")
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for_function("() => document.querySelector('video[data-camera=\"cam_1\"]')?.videoWidth > 0",
                           timeout=60000)  # fmt: skip
    time.sleep(5)  # every tile joined and at its live edge
    before, started = page.evaluate("window.received"), time.monotonic()
    samples = page.evaluate(VIDEO_LATENCY_JS, ["cam_1", seconds])
    rate = (page.evaluate("window.received") - before) * 8 / 1000 / (time.monotonic() - started)
    page.close()
    kept = [v for v in samples if 0 <= v < 10_000]
    return {"received_kbit_s": round(rate), "glass_to_screen_ms": summary(kept), "misread": len(samples) - len(kept)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="latency measurement")
    parser.add_argument("--joins", type=int, default=10, help="new pages opened for time to first picture")
    parser.add_argument("--cpu-seconds", type=float, default=20.0, help="each CPU window")
    parser.add_argument("--page-cameras", type=int, nargs="+", default=[4, 16], help="cameras on the page")
    parser.add_argument("--page-seconds", type=float, default=20.0, help="each page's measurement")
    parser.add_argument("--webkit-samples", type=int, default=100, help="screenshots in WebKitGTK")
    parser.add_argument("--only", choices=("browser", "cpu", "hls", "page", "webkit"), help="run one part")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="camctl-bench-live-"))
    report: dict[str, Any] = {}
    parts = {"browser": browser_runs, "webkit": webkit_runs, "hls": hls_runs, "page": page_runs, "cpu": cpu_runs}
    for name, run in parts.items():
        if args.only in (None, name):
            report[name] = run(args, work)
            print(json.dumps(report), file=sys.stderr)  # kept if a later part fails
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
