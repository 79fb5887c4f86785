"""Config: the documented keys, ${ENV} interpolation, and one clear line naming file and key path."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from camctl.config import (
    BUILTIN_DEMO,
    config_schema,
    effective_config,
    find_config_file,
    load_config,
    parse_config,
    stream_view,
)
from camctl.errors import ConfigError
from tests.harness import REPO

SEED_CONFIG = """
defaults: {username: admin, password: password, transport: tcp}
cameras:
  cam_1:
    url: rtsp://192.168.1.101:554/stream
    username: admin
    password: ${CAM1_PASSWORD:-password}
  cam_2:
    url: rtsp://192.168.1.102:554/stream
storage:
  root: /mnt/ssd/recordings
  segment_seconds: 60
  retention: {max_age: 24h, max_bytes: null, min_free: 5GB}
nats: {url: null}
http:
  listen: "0.0.0.0:8080"
  public_url: "http://stream-manager:8080"
  users: {operator: "${HTTP_PW:-a-long-password}"}
"""


def test_issue_example_parses_with_every_key() -> None:
    cfg = parse_config(SEED_CONFIG, "camctl.yaml", environ={"CAM1_PASSWORD": "hunter22"})
    cam = cfg.cameras["cam_1"]
    assert cam.url == "rtsp://192.168.1.101:554/stream"
    assert cam.password is not None and cam.password.reveal() == "hunter22"
    assert cam.slug == "cam1" and cam.transport == "tcp"
    assert cfg.cameras["cam_2"].username == "admin"  # from defaults
    assert cfg.storage.root == Path("/mnt/ssd/recordings")
    assert cfg.storage.segment_seconds == 60
    assert cfg.storage.retention.max_age == 24 * 3600
    assert cfg.storage.retention.max_bytes is None
    assert cfg.storage.retention.min_free == 5 * 10**9
    assert cfg.nats.url is None
    assert (cfg.http.host, cfg.http.port, cfg.http.public_url) == ("0.0.0.0", 8080, "http://stream-manager:8080")
    assert cfg.http.users is not None and cfg.http.users["operator"].reveal() == "a-long-password"


def test_env_default_used_when_variable_unset() -> None:
    cfg = parse_config(SEED_CONFIG, environ={})
    assert cfg.cameras["cam_1"].password is not None
    assert cfg.cameras["cam_1"].password.reveal() == "password"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        (
            "cameras:\n  cam_2:\n    url: rtsp://h/x\n    transprot: tcp\n",
            "camctl.yaml: cameras.cam_2.transprot: unknown key (did you mean transport?)",
        ),
        ("cameras: {cam_1: {url: 'http://h/x'}}\n", "camctl.yaml: cameras.cam_1.url: 'http://h/x' is not an rtsp://"),
        (
            "cameras: {cam_1: {url: 'rtsp://h/x', transport: quic}}\n",
            "camctl.yaml: cameras.cam_1.transport: 'quic' is not one of tcp, udp, auto",
        ),
        (
            "cameras: {c: 'demo:'}\nstorage: {retention: {max_age: 24x}}\n",
            "camctl.yaml: storage.retention.max_age: bad duration '24x'",
        ),
        (
            "cameras: {c: 'demo:'}\nstorage: {retention: {min_free: lots}}\n",
            "camctl.yaml: storage.retention.min_free: bad size 'lots'",
        ),
        (
            "cameras: {c: 'demo:'}\nstorage: {segment_seconds: soon}\n",
            "camctl.yaml: storage.segment_seconds: expected a number",
        ),
        (
            "cameras: {c: 'demo:'}\nstorage: {segment_seconds: 0}\n",
            "camctl.yaml: storage.segment_seconds: 0 is out of range",
        ),
        (
            "cameras: {c: {url: '${NOPE_NOT_SET}'}}\n",
            "camctl.yaml: cameras.c.url: environment variable NOPE_NOT_SET is not set",
        ),
        ("cameras: {c: 'demo:?size=10x10'}\n", "camctl.yaml: cameras.c.url: bad demo size '10x10'"),
        ("cameras: {c: 'demo:?colour=red'}\n", "camctl.yaml: cameras.c.url: unknown demo parameter 'colour'"),
        ("cameras: {'cam 1': 'demo:'}\n", "camctl.yaml: cameras.cam 1: camera ids use letters"),
        ("cameras: {c: 'demo:'}\nhttp: {listen: '8080'}\n", "camctl.yaml: http.listen: '8080' is not HOST:PORT"),
        ("cameras: {c: 'demo:'}\nnats: {url: 'http://x'}\n", "camctl.yaml: nats.url: 'http://x' is not a nats://"),
        ("cameras: {c: 'demo:'}\ncameraz: {}\n", "camctl.yaml: cameraz: unknown key (did you mean cameras?)"),
        ("cameras: [1, 2]\n", "camctl.yaml: cameras: expected a mapping"),
        ("cameras: {}\n", "camctl.yaml: cameras: no cameras configured"),
        ("cameras: {c: 'demo:'\n", "camctl.yaml: line 2:"),
        (
            "cameras: {c: {url: 'rtsp://u:pw@h/x', password: other}}\n",
            "camctl.yaml: cameras.c: credentials are both in the url and in username/password",
        ),
        (
            "cameras: {c: {url: 'demo:', transcode: {encoder: libx264}}}\n",
            "camctl.yaml: cameras.c.transcode.bitrate: missing",
        ),
        (
            "cameras: {c: {url: 'demo:', transcode: {bitrate: fast}}}\n",
            "camctl.yaml: cameras.c.transcode.bitrate: bad bitrate",
        ),
        (
            "cameras: {c: {url: 'demo:', transcode: {bitrate: 1M, encoder: nvenc}}}\n",
            "camctl.yaml: cameras.c.transcode.encoder: 'nvenc' is not an encoder camctl knows (did you mean",
        ),
        ("cameras: {c: 'demo:'}\ngrid: {size: 640x480}\n", "camctl.yaml: grid.output: missing"),
        ("cameras: {c: 'demo:'}\ngrid: {output: g.avi}\n", "camctl.yaml: grid.output: use a .mp4 or .mkv file"),
        (
            "cameras: {c: 'demo:'}\ngrid: {output: g.mp4, cameras: [d]}\n",
            "camctl.yaml: grid.cameras: unknown camera 'd'",
        ),
        (
            "cameras: {c: 'demo:'}\ngrid: {output: g.mp4, size: 641x480}\n",
            "camctl.yaml: grid.size: expected WIDTHxHEIGHT",
        ),
        # Issue 16's findings: each was accepted (or crashed with exit 1) before.
        ("cameras: {c: 'rtsp://admin:pw@h:99999/x'}\n", "camctl.yaml: cameras.c.url: 'rtsp://admin:***@h:99999/x'"),
        ("cameras:\n  c: 'demo:'\n  c: 'demo:?fps=5'\n", "camctl.yaml: line 3: 'c' is given twice"),
        ("cameras: {c: 'demo:'}\nhttp: {listen: '256.1.1.1:8080'}\n", "camctl.yaml: http.listen: '256.1.1.1' is not"),
        (
            "cameras: {c: 'demo:'}\ngrid: {output: g.mp4, preset: quick}\n",
            "camctl.yaml: grid.preset: 'quick' is not a libx264 preset (one of: ultrafast, superfast",
        ),
        (
            "cameras: {c: {url: 'demo:', transcode: {bitrate: 1M, encoder: h264_nvenc, preset: fast}}}\n",
            "camctl.yaml: cameras.c.transcode.preset: presets are libx264's; this encodes with h264_nvenc",
        ),
        # What the models fill in themselves is not a key of the file.
        ("cameras: {c: 'demo:'}\ngrid: {output: g.mp4, width: 5}\n", "camctl.yaml: grid.width: unknown key"),
        ("cameras: {c: {url: 'demo:', id: x}}\n", "camctl.yaml: cameras.c.id: unknown key"),
        ("cameras: {c: 'demo:'}\nsource: x.yaml\n", "camctl.yaml: source: unknown key"),
    ],
)
def test_bad_config_names_file_and_key_path(yaml_text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(yaml_text, "camctl.yaml", environ={})
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


def test_transcode_from_defaults_or_per_camera_and_the_grid_section() -> None:
    config = parse_config(
        "defaults: {transcode: {bitrate: 2M}}\n"
        "cameras:\n  a: 'demo:'\n  b: {url: 'demo:', transcode: null}\n"
        "  c: {url: 'demo:', transcode: {bitrate: 1.5M, encoder: libx264, min_bitrate: 500k, preset: ultrafast}}\n"
        "grid: {output: 'rtsp://u:pw@127.0.0.1:8554/grid', cameras: [c, a], size: 1280x720, bitrate: 2M,"
        " preset: superfast}\n"
    )
    a, b, c = config.cameras["a"], config.cameras["b"], config.cameras["c"]
    assert a.transcode is not None and (a.transcode.bitrate, a.transcode.encoder) == (2_000_000, "auto")
    assert b.transcode is None, "stream copy for this one"
    assert c.transcode is not None and (c.transcode.bitrate, c.transcode.min_bitrate) == (1_500_000, 500_000)
    assert config.grid is not None and config.grid.cameras == ("c", "a")
    assert (config.grid.width, config.grid.height, config.grid.fps, config.grid.bitrate) == (1280, 720, 30, 2_000_000)
    assert config.grid.preset == "superfast" and a.transcode.preset is None
    shown = effective_config(config)
    assert shown["grid"]["output"] == "rtsp://u:***@127.0.0.1:8554/grid"
    assert shown["cameras"]["c"]["transcode"] == {"bitrate": 1_500_000, "encoder": "libx264", "min_bitrate": 500_000,
                                                  "preset": "ultrafast"}  # fmt: skip


def test_credentials_in_url_are_split_out_and_masked() -> None:
    cfg = parse_config("cameras: {c: 'rtsp://bob:p%40ss:w0rd@10.1.2.3:8554/live'}\n", environ={})
    cam = cfg.cameras["c"]
    assert cam.url == "rtsp://10.1.2.3:8554/live"
    assert cam.username == "bob"
    assert cam.password is not None and cam.password.reveal() == "p@ss:w0rd"
    assert cam.display_url == "rtsp://bob:***@10.1.2.3:8554/live"
    assert stream_view(cam, "main").connect_url() == "rtsp://bob:p%40ss%3Aw0rd@10.1.2.3:8554/live"
    assert "w0rd" not in repr(cam) and "w0rd" not in str(effective_config(cfg))


def test_dollar_escape_and_literal_dollar_in_password() -> None:
    cfg = parse_config("cameras: {c: {url: 'rtsp://h/x', password: 'a$b$${X}'}}\n", environ={"X": "no"})
    assert cfg.cameras["c"].password is not None
    assert cfg.cameras["c"].password.reveal() == "a$b${X}"


def test_camera_lookup_by_id_or_slug_and_unknown_camera() -> None:
    cfg = parse_config("cameras: {cam_1: 'demo:', cam_2: 'demo:'}\n", environ={})
    assert cfg.camera("cam1").id == "cam_1"
    with pytest.raises(ConfigError, match=r"unknown camera 'cam_9' \(known: cam_1, cam_2\)"):
        cfg.camera("cam_9")


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    explicit, from_env, local = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "camctl.yaml"
    for f in (explicit, from_env, local):
        f.write_text("cameras: {c: 'demo:'}\n")
    assert find_config_file(explicit, {"CAMCTL_CONFIG": str(from_env)}) == explicit
    assert find_config_file(None, {"CAMCTL_CONFIG": str(from_env)}) == from_env
    assert find_config_file(None, {}) == Path("camctl.yaml")
    local.unlink()
    if not Path("/etc/camctl/camctl.yaml").exists():
        assert find_config_file(None, {}) is None
        assert load_config(None, {}).source == BUILTIN_DEMO
    with pytest.raises(ConfigError, match="config file not found"):
        find_config_file(tmp_path / "missing.yaml", {})


def test_demo_config_has_four_demo_cameras_in_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAMCTL_DATA_DIR", str(tmp_path / "data"))
    from camctl.config import demo_config

    cfg = demo_config()
    assert list(cfg.cameras) == ["cam_1", "cam_2", "cam_3", "cam_4"]
    assert all(stream_view(c, "main").is_demo for c in cfg.cameras.values())
    assert cfg.storage.root == tmp_path / "data" / "recordings"


def test_encoder_is_auto_or_a_known_encoder() -> None:
    from camctl.config import parse_config

    base = 'cameras:\n  cam_1: "demo:"\n'
    assert parse_config(base).encoder == "auto"
    assert parse_config(base + "encoder: libx264\n").encoder == "libx264"
    with pytest.raises(
        ConfigError, match=r"encoder: 'h264_nvnec' is not an encoder camctl knows \(did you mean h264_nvenc\?\)"
    ):
        parse_config(base + "encoder: h264_nvnec\n")


@pytest.mark.parametrize(
    ("http", "message"),
    [
        ('{listen: "0.0.0.0:8080"}', "http.users: http.listen 0.0.0.0:8080 is reachable from other machines"),
        ('{listen: "192.0.2.7:8080"}', "add users: {operator: ${CAMCTL_HTTP_PASSWORD}}"),
        ('{listen: "0.0.0.0:8080", users: {operator: short}}', "http.users.operator: a password of at least 8"),
        ('{listen: "0.0.0.0:8080", users: {}}', "no users: name at least one, or say users: none"),
        ('{listen: "0.0.0.0:8080", users: {"a b": long-enough-pw}}', "user names use letters"),
    ],
)
def test_http_beyond_loopback_needs_users_or_says_none(http: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(f"cameras: {{cam_1: 'demo:'}}\nhttp: {http}\n", "camctl.yaml", environ={})


def test_loopback_needs_no_users_and_none_opts_out_beyond_it() -> None:
    assert parse_config("cameras: {cam_1: 'demo:'}\n", "c.yaml", environ={}).http.listen == "127.0.0.1:8080"
    opted_out = parse_config("cameras: {cam_1: 'demo:'}\nhttp: {listen: '0.0.0.0:8080', users: none}\n", "c.yaml",
                             environ={})  # fmt: skip
    assert opted_out.http.users is None and not opted_out.http.authenticated
    with_users = "cameras: {cam_1: 'demo:'}\nhttp: {users: {operator: s3cret-operator-pw}}\n"
    shown = effective_config(parse_config(with_users, "c.yaml", environ={}))
    assert shown["http"]["users"] == {"operator": "***"}


def test_the_schema_accepts_every_shipped_config_and_catches_a_typo(tmp_path: Path) -> None:
    """`camctl config schema` is what an editor checks camctl.yaml against as it is typed."""
    schema = config_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in ("camctl.example.yaml", "camctl.docker.yaml", "camctl.demo.yaml"):
        document = yaml.safe_load((REPO / "recipes" / name).read_text())
        assert not list(validator.iter_errors(document)), name
    typo = yaml.safe_load("cameras:\n  cam_2:\n    url: rtsp://h/x\n    transprot: tcp\n")
    assert any("transprot" in error.message for error in validator.iter_errors(typo))
    wrong = yaml.safe_load("cameras: {c: 'demo:'}\nstorage: {segment_seconds: 0}\n")
    assert list(validator.iter_errors(wrong)), "out of range"
    shorthand = yaml.safe_load("cameras: {c: 'rtsp://h/x'}\nhttp: {users: none, listen: '0.0.0.0:8080'}\n")
    assert not list(validator.iter_errors(shorthand))
