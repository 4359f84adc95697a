"""Daemon logging: one line per event, ``time level logger message``, level names as CRI-O spells them."""

from __future__ import annotations

import logging
import sys

# CRI-O level names → Python logging levels. "trace" is finer than debug.
TRACE = 5
LEVELS: dict[str, int] = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}

logging.addLevelName(TRACE, "TRACE")

# Libraries that log every request URL at INFO (httpx: "HTTP Request: GET <url>"), redirects to pre-signed
# object-store URLs included, whose query is a credential. They only speak up at WARNING unless crio logs
# at trace.
URL_LOGGERS = ("httpx", "httpcore")


class _Formatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", "%Y-%m-%dT%H:%M:%S")


def configure(level: str) -> None:
    """Send crio's logs to stderr at ``level`` (a CRI-O level name); callable again to change the level."""
    root = logging.getLogger()
    if not any(getattr(h, "_crio", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_Formatter())
        handler._crio = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    set_level(level)


def set_level(level: str) -> None:
    """Change the log level of crio's loggers (libraries stay at INFO, and the HTTP client libraries of
    :data:`URL_LOGGERS` at WARNING, unless crio logs at trace)."""
    numeric = LEVELS[level]
    logging.getLogger().setLevel(numeric if numeric == TRACE else max(numeric, logging.INFO))
    logging.getLogger("crio").setLevel(numeric)
    for name in URL_LOGGERS:
        logging.getLogger(name).setLevel(
            logging.NOTSET if numeric == TRACE else max(numeric, logging.WARNING)
        )
