from __future__ import annotations

from camctl.secrets import Redactor, Secret, mask_url


def test_secret_never_shows_itself() -> None:
    s = Secret("hunter22")
    assert "hunter22" not in f"{s} {s!r} {[s]}"
    assert s.reveal() == "hunter22"


def test_redactor_masks_url_userinfo_and_known_passwords() -> None:
    r = Redactor()
    r.register(Secret("hunter22"))
    text = r("open rtsp://admin:hunter22@10.0.0.1/x failed; also rtsp://u:other@h/ and 'hunter22'")
    assert "hunter22" not in text and "other" not in text
    assert "rtsp://admin:***@10.0.0.1/x" in text and "rtsp://u:***@h/" in text


def test_mask_url() -> None:
    assert mask_url("rtsp://10.0.0.1:554/s", "admin", True) == "rtsp://admin:***@10.0.0.1:554/s"
    assert mask_url("rtsp://a:b@h/s") == "rtsp://a:***@h/s"
    assert mask_url("rtsp://h/s") == "rtsp://h/s"


def test_structured_output_masks_values_not_keys() -> None:
    r = Redactor()
    r.register(Secret("password"))
    assert r.data({"password": "password", "url": ["rtsp://a:b@h/"], "n": 1}) == {
        "password": "***",
        "url": ["rtsp://a:***@h/"],
        "n": 1,
    }
