"""Fixtures with real parts: GStreamer RTSP fake cameras, a nats-server, the camctl CLI (in this
process, or as a child process where only a process will do).

A missing component skips its tests on a developer box but FAILS them under CI=true, with the
command that installs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import (
    ComponentMissing,
    FakeCameras,
    NatsServer,
    VlcCamera,
    check_chromium,
    check_gst_rtsp,
    check_vlc,
    chromium_binary,
    looping_test_video,
    nats_server_binary,
)
from tests.in_process import Result, run_cli
from tests.webkit import WebKitBrowser, check_webkit

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_checked: dict[str, str | None] = {}


def require(component: str, check: Callable[[], object]) -> None:
    if component not in _checked:
        try:
            check()
            _checked[component] = None
        except ComponentMissing as exc:
            _checked[component] = str(exc)
    problem = _checked[component]
    if problem is not None:
        if IN_CI:
            pytest.fail(f"{component} missing under CI=true: {problem}", pytrace=False)
        pytest.skip(f"{component} missing: {problem}")


@pytest.fixture
def fake_cameras() -> Iterator[Callable[..., FakeCameras]]:
    """Factory: fake_cameras(count=2, size='1920x1080', auth='admin:secret', auth_only=['cam2'])."""
    require("GStreamer RTSP server", check_gst_rtsp)
    started: list[FakeCameras] = []

    def start(**kwargs: object) -> FakeCameras:
        cams = FakeCameras(**kwargs).start()  # type: ignore[arg-type]
        started.append(cams)
        return cams

    yield start
    for cams in started:
        cams.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's Chromium, driven by Playwright (never a Playwright browser download)."""
    require("Chromium and Playwright", check_chromium)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_binary(),
            # root in a container: no sandbox; videos play without a click, as on an operator's wall
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def webkit() -> Iterator[Callable[..., WebKitBrowser]]:
    """Factory: webkit(hls=True) starts WebKitGTK (Safari's engine: Debian's MiniBrowser through
    WebKitWebDriver, on an Xvfb display of its own; tests/webkit.py); .driver is its selenium
    WebDriver. Everything it started is stopped after the test, by PID."""
    require("WebKitGTK and WebKitWebDriver", check_webkit)
    started: list[WebKitBrowser] = []

    def start(**kwargs: Any) -> WebKitBrowser:
        browser = WebKitBrowser(**kwargs)
        started.append(browser)
        return browser.start()

    yield start
    for browser in started:
        browser.close()


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    require("nats-server", nats_server_binary)
    with NatsServer() as server:
        yield server


# Commands that run until a signal or for a --duration, with camera sessions, threads and loops that
# could outlive a call, or that leave a daemon for the process's life (copy's rclone): a process
# each, also when a test asks the camctl fixture for one.
PROCESS_COMMANDS = frozenset({"record", "run-all", "ingest", "motion", "grid", "copy", "worker", "grid-worker"})
_VALUED_OPTIONS = frozenset({"--config", "-c", "--log-format"})  # camctl's global options that take a value


def _command_of(argv: list[str]) -> str | None:
    """The subcommand in camctl's argv: the first word after the global options."""
    words = iter(argv)
    for word in words:
        if word in _VALUED_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


@pytest.fixture
def camctl(tmp_path: Path, camctl_process: Callable[..., Result]) -> Callable[..., Result]:
    """Runs the CLI in this process (Typer's CliRunner on camctl.cli.app; tests/in_process.py): the
    environment a child would get (CAMCTL_CONFIG removed, CAMCTL_DATA_DIR inside tmp_path, the
    call's extra variables), cwd tmp_path, and what the CLI changes in the process put back after.
    For config, parse errors, exit codes, rendering and JSON. The PROCESS_COMMANDS go to
    camctl_process whichever fixture is asked (tests say camctl_process for them); signals,
    snapshot's stdout bytes and the console script are camctl_process's too."""

    def run(*args: str, timeout: float = 60, config: Path | None = None, **extra_env: str) -> Result:
        argv = ["--config", str(config)] if config is not None else []
        if _command_of([*argv, *args]) in PROCESS_COMMANDS:
            return camctl_process(*args, timeout=timeout, config=config, **extra_env)
        env: dict[str, str | None] = {"CAMCTL_CONFIG": None, "CAMCTL_DATA_DIR": str(tmp_path / "data"), **extra_env}
        return run_cli([*argv, *args], tmp_path, env, timeout)

    return run


@pytest.fixture
def camctl_process(tmp_path: Path) -> Callable[..., Result]:
    """Runs the real CLI in a child process (`python -m camctl`), with its data directory and cwd
    inside tmp_path: for what only a process shows."""
    env = {k: v for k, v in os.environ.items() if k != "CAMCTL_CONFIG"}
    env["CAMCTL_DATA_DIR"] = str(tmp_path / "data")

    def run(*args: str, timeout: float = 60, config: Path | None = None, **extra_env: str) -> Result:
        argv = [sys.executable, "-m", "camctl"]
        if config is not None:
            argv += ["--config", str(config)]
        proc = subprocess.run(
            [*argv, *args], capture_output=True, timeout=timeout, cwd=tmp_path, env={**env, **extra_env}, check=False
        )
        return Result(proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))

    return run


@pytest.fixture
def vlc_camera() -> Iterator[VlcCamera]:
    """VLC serving a 20 s x264 file in a loop over RTSP (a third-party camera, untidy clock)."""
    require("VLC", check_vlc)
    with VlcCamera(looping_test_video()) as camera:
        yield camera


def _can_mount() -> None:
    """A trial mount: root is not enough in a container without CAP_SYS_ADMIN."""
    if os.geteuid() != 0:
        raise ComponentMissing("a small filesystem needs root (mount -t tmpfs)")
    with tempfile.TemporaryDirectory() as folder:
        trial = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", folder],
                               capture_output=True, text=True, check=False)  # fmt: skip
        if trial.returncode != 0:
            raise ComponentMissing(f"cannot mount a tmpfs here: {trial.stderr.strip() or trial.returncode}")
        subprocess.run(["umount", folder], check=False)


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Callable[[int], Path]]:
    """Factory: small_filesystem(megabytes) mounts a tmpfs of that size and returns its folder
    (a real filesystem that really fills: ENOSPC, not a mock). Unmounted by the test."""
    require("root for tmpfs", _can_mount)
    mounted: list[Path] = []

    def mount(megabytes: int) -> Path:
        folder = tmp_path / f"small-{len(mounted)}"
        folder.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(folder)], check=True)
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)
