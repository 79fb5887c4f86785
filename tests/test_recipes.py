"""Deployment recipes: Dockerfile, compose files, mediamtx and systemd units are checked for the
promises the README makes (structure, limits, health check, non-root), and by `docker compose
config` where docker with the compose plugin exists."""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from camctl.envfile import parse_env_text
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
    assert "${CAMCTL_STORAGE:-/mnt/ssd/recordings}:/recordings" in camctl["volumes"]
    assert set(camctl["networks"]) == {"seguranca-net", "shared-nats"}
    assert camctl["command"][-1] == "run-all"
    assert set(compose["networks"]) == {"seguranca-net", "shared-nats"}
    assert "nats" in services["nats"]["image"]
    mediamtx = services["mediamtx"]
    assert mediamtx["image"].startswith("bluenviron/mediamtx")
    assert {"8554:8554", "8888:8888", "8889:8889", "8189:8189/udp"} <= set(mediamtx["ports"]), "WebRTC media is UDP"
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
                    CAMCTL_HTTP_PASSWORD="a-long-page-password", MTX_PUBLISH_PASSWORD="publisher")  # fmt: skip
    assert result.returncode == 0, result.stderr
    unset = camctl("config", "check", config=RECIPES / "camctl.docker.yaml", MTX_PUBLISH_PASSWORD="publisher")
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


ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}")


def env_refs(text: str) -> dict[str, str]:
    """Every ${NAME...} in text outside comments: name -> its modifier ('' none, ':-x' default,
    ':?x' required)."""
    active = re.sub(r"(^|\s)#.*", "", text, flags=re.MULTILINE)
    return {m[1]: m[2] or "" for m in ENV_REF.finditer(active)}


def test_every_variable_the_recipes_use_is_in_the_env_example_under_one_name() -> None:
    documented = set(parse_env_text((RECIPES / "camctl.env.example").read_text()))
    for name in ("camctl.example.yaml", "camctl.docker.yaml", "docker-compose.yml", "camctl.demo.yaml"):
        used = set(env_refs((RECIPES / name).read_text()))
        assert used <= documented, f"{name} uses {sorted(used - documented)}, which camctl.env.example lacks"


def test_compose_passes_camctl_every_variable_its_config_needs() -> None:
    environment = load("docker-compose.yml")["services"]["camera-stream-manager"]["environment"]
    assert isinstance(environment, dict)
    needed = {name for name, how in env_refs((RECIPES / "camctl.docker.yaml").read_text()).items() if not how}
    assert needed <= set(environment), f"the container lacks {sorted(needed - set(environment))}"
    for name in needed:
        assert env_refs(str(environment[name]))[name].startswith(":?"), f"compose refuses to start without {name}"


def test_mediamtx_has_no_anonymous_read_or_publish_and_compose_sets_every_password() -> None:
    users = load("mediamtx.yml")["authInternalUsers"]
    compose_env = load("docker-compose.yml")["services"]["mediamtx"]["environment"]
    for index, user in enumerate(users):
        actions = {p["action"] for p in user["permissions"]}
        if user["user"] == "any":
            assert actions <= {"api", "metrics", "pprof"}, "anyone may only reach the API, from loopback"
            assert user["ips"] and set(user["ips"]) <= {"127.0.0.1", "::1"}
            continue
        # mediamtx takes an empty password as "any password": each is locked until compose sets it.
        assert str(user["pass"]).startswith("sha256:"), f"{user['user']} must not open with an empty password"
        variable = compose_env[f"MTX_AUTHINTERNALUSERS_{index}_PASS"]
        assert next(iter(env_refs(variable).values())).startswith(":?"), f"{user['user']}'s password is required"
    by_name = {u["user"]: {p["action"] for p in u["permissions"]} for u in users}
    assert by_name["viewer"] == {"read", "playback"}
    # camctl publishes as the user that may publish, with the password compose gives that user.
    docker = (RECIPES / "camctl.docker.yaml").read_text()
    publisher = next(i for i, u in enumerate(users) if "publish" in {p["action"] for p in u["permissions"]})
    publish_var = next(iter(env_refs(compose_env[f"MTX_AUTHINTERNALUSERS_{publisher}_PASS"])))
    assert f"rtsp://{users[publisher]['user']}:${{{publish_var}}}@mediamtx:8554/" in docker
    mediamtx = load("mediamtx.yml")
    assert mediamtx["webrtcLocalUDPAddress"] == ":8189" and "MTX_WEBRTCADDITIONALHOSTS" in compose_env


def test_compose_makes_the_recordings_folder_the_container_users_before_camctl_starts() -> None:
    services = load("docker-compose.yml")["services"]
    camctl, owner = services["camera-stream-manager"], services["recordings-owner"]
    assert camctl["depends_on"]["recordings-owner"]["condition"] == "service_completed_successfully"
    recordings = next(v for v in camctl["volumes"] if v.endswith(":/recordings"))
    assert recordings in owner["volumes"]
    uid = re.search(r"--uid (\d+)", (REPO / "Dockerfile").read_text())
    assert uid is not None and f"chown {uid[1]}:{uid[1]} /recordings" in " ".join(owner["entrypoint"])


def test_the_images_own_config_is_the_demo_reachable_through_a_published_port(camctl: Callable[..., Result]) -> None:
    """The Dockerfile's `docker run -p 8080:8080 -e CAMCTL_HTTP_PASSWORD=... camctl` comment."""
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "COPY recipes/camctl.demo.yaml /etc/camctl/camctl.yaml" in dockerfile
    assert "docker run --rm -p 8080:8080 -e CAMCTL_HTTP_PASSWORD=" in dockerfile
    shown = camctl("config", "show", "--json", config=RECIPES / "camctl.demo.yaml",
                   CAMCTL_HTTP_PASSWORD="a-long-page-password")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.text)
    assert config["http"]["listen"] == "0.0.0.0:8080", "inside a container, loopback is unreachable from -p"
    assert config["storage"]["root"] == "/recordings"
    assert all(cam["url"].startswith("demo:") for cam in config["cameras"].values())
