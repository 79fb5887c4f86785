"""camctl.env beside the config: the secrets systemd's EnvironmentFile= and compose's .env hold,
read by camctl itself so that an operator's shell sees what the service sees."""

from __future__ import annotations

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
