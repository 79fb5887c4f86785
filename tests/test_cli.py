"""The CLI surface: config check/show, help, version, error lines and exit codes, documentation."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from camctl.cli import app
from tests.conftest import Result

REPO = Path(__file__).resolve().parent.parent


def test_config_check_typo_exits_2_naming_file_and_key(camctl: Callable[..., Result], tmp_path: Path) -> None:
    cfg = tmp_path / "camctl.yaml"
    cfg.write_text("cameras:\n  cam_2:\n    url: rtsp://127.0.0.1:8554/cam2\n    transprot: tcp\n")
    result = camctl("config", "check")  # found as ./camctl.yaml
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "camctl: camctl.yaml: cameras.cam_2.transprot: unknown key (did you mean transport?)"
    )
    for other in (("probe",), ("snapshot", "cam_2")):
        assert camctl(*other).returncode == 2  # every command refuses a bad config the same way


def test_config_check_ok_and_json(camctl: Callable[..., Result], tmp_path: Path) -> None:
    cfg = tmp_path / "site.yaml"
    cfg.write_text("cameras:\n  door: rtsp://127.0.0.1:8554/door\n  yard: 'demo:'\n")
    result = camctl("config", "check", "--json", CAMCTL_CONFIG=str(cfg))
    assert result.returncode == 0
    assert json.loads(result.stdout) == {"ok": True, "source": str(cfg), "cameras": ["door", "yard"], "warnings": []}


def test_config_show_masks_passwords(camctl: Callable[..., Result], tmp_path: Path) -> None:
    cfg = tmp_path / "camctl.yaml"
    cfg.write_text(
        "defaults: {username: admin, password: '${CAM_PW:-fallback-pw}'}\n"
        "cameras:\n  cam_1: rtsp://bob:url-pw-123@127.0.0.1:8554/cam1\n  cam_2: rtsp://127.0.0.1:8554/cam2\n"
        "nats: {url: 'nats://user:nats-pw-456@127.0.0.1:4222'}\n"
    )
    shown = camctl("config", "show", CAM_PW="env-pw-789")
    as_json = camctl("config", "show", "--json", CAM_PW="env-pw-789")
    for result in (shown, as_json):
        assert result.returncode == 0, result.stderr
        for secret in ("url-pw-123", "nats-pw-456", "env-pw-789"):
            assert secret not in result.text
    data = json.loads(as_json.stdout)
    assert data["cameras"]["cam_1"]["url"] == "rtsp://bob:***@127.0.0.1:8554/cam1"
    assert data["cameras"]["cam_2"]["password"] == "***"
    assert data["nats"]["url"] == "nats://user:***@127.0.0.1:4222"
    assert "url: rtsp://bob:***@127.0.0.1:8554/cam1" in shown.text


def test_missing_explicit_config_exits_2(camctl: Callable[..., Result], tmp_path: Path) -> None:
    result = camctl("config", "check", config=tmp_path / "nope.yaml")
    assert result.returncode == 2
    assert "nope.yaml: config file not found (given by --config)" in result.stderr


def test_usage_errors_exit_2_and_version(camctl: Callable[..., Result]) -> None:
    assert camctl("probe", "--bogus").returncode == 2
    assert camctl("snapshot").returncode == 2
    version = camctl("--version")
    assert version.returncode == 0 and re.fullmatch(r"camctl \d+\.\d+\.\d+\n", version.text)


def test_the_installed_console_script_runs(tmp_path: Path) -> None:
    """`camctl` as pip installed it (the entry point camctl.cli:main), a process of its own."""
    script = Path(sys.executable).with_name("camctl")
    assert script.is_file(), f"no console script beside {sys.executable} (pip install -e .)"
    env = {k: v for k, v in os.environ.items() if k != "CAMCTL_CONFIG"} | {"CAMCTL_DATA_DIR": str(tmp_path)}
    proc = subprocess.run([str(script), "--version"], capture_output=True, timeout=60, cwd=tmp_path, env=env,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(rb"camctl \d+\.\d+\.\d+\n", proc.stdout) and proc.stderr == b""
    usage = subprocess.run([str(script), "snapshot"], capture_output=True, timeout=60, cwd=tmp_path, env=env,
                           check=False)  # fmt: skip
    assert usage.returncode == 2 and b"Usage: camctl snapshot" in usage.stderr and usage.stdout == b""


def test_the_camctl_fixture_sends_long_running_commands_to_a_process() -> None:
    from tests.conftest import PROCESS_COMMANDS, _command_of

    assert _command_of(["--config", "c.yaml", "--debug", "--log-format", "json", "record", "-d", "3"]) == "record"
    assert _command_of(["-c", "grid.yaml", "config", "check"]) == "config"
    assert _command_of(["--version"]) is None
    assert {"record", "run-all", "ingest", "motion", "grid", "copy"} <= PROCESS_COMMANDS
    assert not {"config", "probe", "snapshot", "status", "recordings", "clip", "prune", "mark"} & PROCESS_COMMANDS


def test_a_command_in_the_tests_process_leaves_it_as_it_found_it(camctl: Callable[..., Result], tmp_path: Path) -> None:
    """The camctl fixture runs the CLI in this process: what the CLI changes here (logging, umask,
    environment, cwd, signal handlers, secrets to mask) is put back, and stdout and stderr stay apart."""
    import logging
    import signal

    from camctl.secrets import redact

    (tmp_path / "camctl.yaml").write_text("cameras:\n  cam_1: rtsp://admin:${CAM_PW}@127.0.0.1:8554/cam1\n")
    (tmp_path / "camctl.env").write_text("CAM_PW=in-process-pw\nRCLONE_CONFIG_NAS_TYPE=local\n")
    (tmp_path / "camctl.env").chmod(0o600)
    root = logging.getLogger()
    before = (list(root.handlers), root.level, os.umask(0o022), dict(os.environ), Path.cwd(),
              signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))  # fmt: skip
    os.umask(before[2])
    result = camctl("--debug", "config", "check", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["cameras"] == ["cam_1"] and "{" not in result.stderr
    after = (list(root.handlers), root.level, os.umask(0o022), dict(os.environ), Path.cwd(),
             signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))  # fmt: skip
    os.umask(after[2])
    assert after == before
    assert "RCLONE_CONFIG_NAS_TYPE" not in os.environ and redact("in-process-pw") == "in-process-pw"


def _command_names() -> list[str]:
    from typer.main import get_command

    root = get_command(app)
    names: list[str] = []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        if cmd.hidden:
            continue  # internal (run-all's per-camera worker), not for people
        sub = getattr(cmd, "commands", None)
        names += [f"{name} {s}" for s in sub] if sub else [name]
    return names


def test_every_command_has_help_with_an_example_and_is_in_the_readme(camctl: Callable[..., Result]) -> None:
    readme = (REPO / "README.md").read_text()
    names = _command_names()
    assert {"probe", "snapshot", "config check", "config show"} <= set(names)
    for name in names:
        result = camctl(*name.split(), "--help")
        assert result.returncode == 0 and "Usage:" in result.text
        assert f"camctl {name}" in readme, f"README lacks an example of `camctl {name}`"


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test" in readme and "scripts/test" in ci


def test_example_config_in_recipes_is_valid(camctl: Callable[..., Result]) -> None:
    result = camctl("config", "check", config=REPO / "recipes" / "camctl.example.yaml",
                    CAMCTL_HTTP_PASSWORD="a-long-page-password")  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_prune_timer_recipe_runs_prune_every_10_minutes() -> None:
    import configparser

    def unit(name: str) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(strict=False, interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read_string((REPO / "recipes" / name).read_text())
        return parser

    service, timer = unit("camctl-prune.service"), unit("camctl-prune.timer")
    exec_start = service["Service"]["ExecStart"].split()
    assert service["Service"]["Type"] == "oneshot" and exec_start[-1] == "prune" and "camctl" in exec_start[0]
    assert timer["Timer"]["OnUnitActiveSec"] == "10min" and timer["Install"]["WantedBy"] == "timers.target"
    readme = (REPO / "README.md").read_text()
    assert "camctl-prune.timer" in readme and "*/10 * * * * camctl" in readme


def test_a_camera_port_out_of_range_is_a_config_error_not_a_crash(
    camctl: Callable[..., Result], tmp_path: Path
) -> None:
    config = tmp_path / "camctl.yaml"
    config.write_text("cameras:\n  cam_1: rtsp://admin:Sekrit-pw@127.0.0.1:99999/x\n")
    result = camctl("--config", str(config), "probe")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "bad port" in result.stderr and "Sekrit-pw" not in result.stderr
