"""Keys in URLs (issue 10 item 5): userinfo and credential query parameters are masked wherever a URL is shown."""

from __future__ import annotations

import pytest

from evalscope.engine.redact import redact_url, register_url_secrets, scrub
from evalscope.perf.config import make_config


@pytest.mark.parametrize(
    ("url", "secret", "shown"),
    [
        ("http://bob:sk-UI-1234abcd@h:8000/v1", "sk-UI-1234abcd", "http://***@h:8000/v1"),
        ("https://sk-ONLYUSER-99@h/v1", "sk-ONLYUSER-99", "https://***@h/v1"),
        ("http://h/v1?api_key=sk-Q-5678&x=1", "sk-Q-5678", "http://h/v1?api_key=***&x=1"),
        ("http://h/v1?key=AIzaKEY123", "AIzaKEY123", "http://h/v1?key=***"),
        ("http://h/v1?access_token=tok-ABCDEF", "tok-ABCDEF", "http://h/v1?access_token=***"),
        ("http://h/v1?token=tk-001122", "tk-001122", "http://h/v1?token=***"),
        ("http://h/x?sv=2020&sig=abc%2Bdef%3D", "abc%2Bdef%3D", "http://h/x?sv=2020&sig=***"),
        ("http://h/v1?X-Api-Key=hdrkey77", "hdrkey77", "http://h/v1?X-Api-Key=***"),
    ],
)
def test_redact_url(url: str, secret: str, shown: str) -> None:
    assert redact_url(url) == shown
    register_url_secrets(url)
    assert secret not in scrub(f"error talking to {url}: refused")


def test_a_user_name_is_not_masked_in_all_text() -> None:
    register_url_secrets("http://user:sk-PW-8080abcd@h/v1")
    assert scrub("the user said: sk-PW-8080abcd") == "the user said: ***"


def test_ordinary_parameters_and_urls_are_kept() -> None:
    url = "http://127.0.0.1:8000/v1/chat/completions?api-version=2024-06-01&max_tokens=5&monkey=1"
    assert redact_url(url) == url
    assert redact_url(None) is None


def test_perf_config_saves_the_url_redacted() -> None:
    cfg = make_config({"url": "http://u:sk-CFG-4242@127.0.0.1:8000/v1?api_key=sk-CFG-4343"})
    saved = cfg.public_dict()["url"]
    assert "sk-CFG" not in saved and saved == "http://***@127.0.0.1:8000/v1?api_key=***"
