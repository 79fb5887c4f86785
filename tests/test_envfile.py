"""camctl.env beside the config: the secrets systemd's EnvironmentFile= and compose's .env hold,
read by camctl itself so that an operator's shell sees what the service sees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from camctl.config import load_config
from camctl.envfile import parse_env_text
from camctl.errors import ConfigError

CONFIG = "cameras: {cam_1: {url: 'rtsp://127.0.0.1:8554/cam1', password: '${CAM_PASSWORD}'}}\n"


def test_env_lines_as_systemd_and_compose_write_them() -> None:
    text = "# a comment\n\nA=1\nexport B = two words\nC='quoted # not a comment'\nD=\"x\"\nE=\nnot a line\n"
    assert parse_env_text(text) == {"A": "1", "B": "two words", "C": "quoted # not a comment", "D": "x", "E": ""}


def test_the_file_beside_the_config_fills_what_the_environment_lacks(tmp_path: Path) -> None:
    config = tmp_path / "camctl.yaml"
    config.write_text(CONFIG)
    (tmp_path / "camctl.env").write_text("CAM_PASSWORD=from-the-file\n")
    assert load_config(config, environ={}).cameras["cam_1"].password.reveal() == "from-the-file"  # type: ignore[union-attr]
    given = load_config(config, environ={"CAM_PASSWORD": "from-the-shell"})
    assert given.cameras["cam_1"].password.reveal() == "from-the-shell", "the environment wins"  # type: ignore[union-attr]


def test_an_unreadable_env_file_is_named_when_a_variable_is_then_missing(tmp_path: Path) -> None:
    config = tmp_path / "camctl.yaml"
    config.write_text(CONFIG)
    (tmp_path / "camctl.env").mkdir()  # unreadable as a file, also for root
    with pytest.raises(ConfigError) as caught:
        load_config(config, environ={})
    message = str(caught.value)
    assert "environment variable CAM_PASSWORD is not set" in message
    assert f"{tmp_path / 'camctl.env'} is not readable" in message


def test_loading_registers_nothing_and_writes_no_environment_until_the_program_adopts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two configs loaded in one process (a test, a reload) do not leak into each other: loading
    returns the secrets and camctl.env variables it found; only adopt_config (an entry point's
    work) masks the secrets from then on and hands RCLONE_* variables to rclone."""
    from camctl.config import read_config
    from camctl.lifecycle import adopt_config
    from camctl.secrets import redact

    monkeypatch.setenv("RCLONE_CONFIG_SITEA_TYPE", "")  # recorded, so that the test leaves the environment as it was
    monkeypatch.delenv("RCLONE_CONFIG_SITEA_TYPE")
    sites = {}
    for site in ("a", "b"):
        folder = tmp_path / site
        folder.mkdir()
        (folder / "camctl.yaml").write_text(
            f"cameras: {{cam_1: 'rtsp://admin:cam-pw-{site}-7391@127.0.0.1:8554/cam1'}}\n"
            f"nats: {{url: 'nats://127.0.0.1:4222', token: 'nats-token-{site}-7391'}}\n"
            f"defaults: {{restream: 'rtsp://camctl:mtx-pw-{site}-7391@127.0.0.1:8554/{{camera_id}}'}}\n"
        )
        (folder / "camctl.env").write_text(f"RCLONE_CONFIG_SITE{site.upper()}_TYPE=local\nOTHER_{site.upper()}=1\n")
        sites[site] = read_config(folder / "camctl.yaml", environ={})
    a, b = sites["a"], sites["b"]
    assert {"cam-pw-a-7391", "nats-token-a-7391", "mtx-pw-a-7391"} <= a.secrets
    assert not any("-b-" in secret for secret in a.secrets) and not any("-a-" in secret for secret in b.secrets)
    assert a.variables == {"RCLONE_CONFIG_SITEA_TYPE": "local", "OTHER_A": "1"}
    assert redact("cam-pw-a-7391 nats-token-a-7391") == "cam-pw-a-7391 nats-token-a-7391", "loading registered"
    assert "RCLONE_CONFIG_SITEA_TYPE" not in os.environ, "loading wrote the environment"

    assert adopt_config(a) is a.config
    assert redact("cam-pw-a-7391, nats-token-a-7391, mtx-pw-a-7391") == "***, ***, ***"
    assert redact("cam-pw-b-7391") == "cam-pw-b-7391", "the other config's secrets stay its own"
    assert os.environ["RCLONE_CONFIG_SITEA_TYPE"] == "local" and "OTHER_A" not in os.environ
