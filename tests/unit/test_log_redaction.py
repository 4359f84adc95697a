"""What the log may show of a registry URL: the HTTP libraries' request lines only at trace, and URLs in
crio's own lines and errors without userinfo, query or fragment."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from crio.core import logs
from crio.core.urlredact import loggable_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:5000/v2/", "http://127.0.0.1:5000/v2/"),
        (
            "https://bucket.s3.example/blobs/sha256:ab?X-Amz-Credential=AKIA&X-Amz-Signature=f00d",
            "https://bucket.s3.example/blobs/sha256:ab?REDACTED",
        ),
        ("https://user:secret@registry.example:443/v2/x", "https://REDACTED@registry.example:443/v2/x"),
        ("https://auth.example/token?service=r&scope=x#frag", "https://auth.example/token?REDACTED#REDACTED"),
        ("http://[::1]:5000/v2/?sig=1", "http://[::1]:5000/v2/?REDACTED"),
        ("https://example/empty-query?", "https://example/empty-query"),
        (
            "file:///var/lib/sigstore/a@sha256=ab/signature-1",
            "file:///var/lib/sigstore/a@sha256=ab/signature-1",
        ),
        ("/relative/path?token=t", "/relative/path"),
        ("http://host:bad/x?sig=1", "http://host:bad/x"),
    ],
)
def test_loggable_url_drops_what_grants_access(url: str, shown: str) -> None:
    assert loggable_url(url) == shown
    for secret in ("secret", "f00d", "AKIA", "token=t", "sig=1"):
        assert secret not in loggable_url(url)


@pytest.fixture
def restore_levels() -> Iterator[None]:
    names = ("", "crio", *logs.URL_LOGGERS)
    saved = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("level", "requests_logged"),
    [("info", False), ("debug", False), ("warn", False), ("error", False), ("trace", True)],
)
@pytest.mark.usefixtures("restore_levels")
def test_http_request_lines_only_at_trace(level: str, requests_logged: bool) -> None:
    logs.set_level(level)
    for name in logs.URL_LOGGERS:
        library = logging.getLogger(name)
        assert library.isEnabledFor(logging.INFO) is requests_logged, (level, name)
        assert library.isEnabledFor(logging.DEBUG) is requests_logged, (level, name)
        assert library.isEnabledFor(logging.WARNING) is (level != "error"), (level, name)


@pytest.mark.usefixtures("restore_levels")
def test_a_reload_to_trace_and_back_quietens_the_libraries_again() -> None:
    logs.set_level("trace")
    logs.set_level("info")
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
    assert logging.getLogger("crio").isEnabledFor(logging.INFO)
