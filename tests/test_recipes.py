"""Deployment recipes: Dockerfile, compose files, mediamtx and systemd units are checked for the
promises the README makes (structure, limits, health check, non-root), and by `docker compose
config` where docker with the compose plugin exists."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.conftest import Result
from tests.harness import REPO

RECIPES = REPO / "recipes"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((RECIPES / name).read_text())
    assert isinstance(data, dict)
    return data


def test_compose_follows_the_seed() -> None:
    compose = load("docker-compose.yml")
    services = compose["services"]
    camctl = services["camera-stream-manager"]
    assert camctl["restart"] == "unless-stopped"
    assert camctl["deploy"]["resources"]["limits"]["memory"] == "1.5G"
    assert "/mnt/ssd/recordings:/recordings" in camctl["volumes"]
    assert set(camctl["networks"]) == {"seguranca-net", "shared-nats"}
    assert camctl["command"][-1] == "run-all"
    assert set(compose["networks"]) == {"seguranca-net", "shared-nats"}
    assert "nats" in services["nats"]["image"]
    mediamtx = services["mediamtx"]
    assert mediamtx["image"].startswith("bluenviron/mediamtx")
    assert {"8554:8554", "8888:8888", "8889:8889"} <= set(mediamtx["ports"])
    nvidia = load("docker-compose.nvidia.yml")["services"]["camera-stream-manager"]
    assert nvidia["runtime"] == "nvidia"


def test_mediamtx_uses_tcp_and_the_seed_ports() -> None:
    mediamtx = load("mediamtx.yml")
    assert mediamtx["rtspTransports"] == ["tcp"]
    assert (mediamtx["rtspAddress"], mediamtx["hlsAddress"], mediamtx["webrtcAddress"]) == (":8554", ":8888", ":8889")
    assert "grid" in mediamtx["paths"]
    assert mediamtx["paths"]["all_others"] == {"source": "publisher"}, "camctl's restreamed cameras are taken"


def test_dockerfile_runs_run_all_as_non_root_with_a_health_check() -> None:
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0].startswith("FROM python:3.11-slim")
    user = next(line for line in instructions if line.startswith("USER "))
    assert user.split()[1] not in ("root", "0")
    health = " ".join(lines[lines.index(next(x for x in lines if x.startswith("HEALTHCHECK"))) :][:2])
    assert "/healthz" in health
    assert 'ENTRYPOINT ["camctl"]' in instructions and 'CMD ["run-all"]' in instructions
    assert any(line.startswith("VOLUME") and "/recordings" in line for line in instructions)


def test_docker_config_recipe_is_a_valid_camctl_config(camctl: Callable[..., Result]) -> None:
    result = camctl("config", "check", "--json", config=RECIPES / "camctl.docker.yaml",
                    CAMCTL_HTTP_PASSWORD="a-long-page-password")  # fmt: skip
    assert result.returncode == 0, result.stderr
    unset = camctl("config", "check", config=RECIPES / "camctl.docker.yaml")
    assert unset.returncode == 2 and "CAMCTL_HTTP_PASSWORD is not set" in unset.stderr, "no page without a password"


def test_systemd_unit_runs_run_all_with_the_memory_budget() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((RECIPES / "camctl.service").read_text())
    service = parser["Service"]
    assert service["ExecStart"].endswith("run-all") and service["User"] != "root"
    assert service["Restart"] == "always" and service["MemoryMax"] == "1536M"
    assert service["KillSignal"] == "SIGTERM"
    assert service["UMask"] == "0027", "footage for camctl's user and group only"


def test_docker_compose_config_accepts_the_recipes() -> None:
    docker = shutil.which("docker")
    has_compose = (
        docker is not None
        and subprocess.run([docker, "compose", "version"], capture_output=True, check=False, timeout=30).returncode == 0
    )
    if not has_compose:
        pytest.skip("docker with the compose plugin is not installed here (the structure checks above still ran)")
    assert docker is not None
    result = subprocess.run(
        [docker, "compose", "-f", "docker-compose.yml", "-f", "docker-compose.nvidia.yml", "config", "--quiet"],
        cwd=RECIPES, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
