"""URLs as logs and error messages may show them: without what can grant access.

A registry may redirect a blob to a pre-signed object-store URL whose query carries the signature
(``X-Amz-Signature``, ``sig``, ``token``…), and a URL may carry ``user:password@``. Anything that ends up in
the daemon's log or in an error sent to the client names a URL through :func:`loggable_url`.
"""

from __future__ import annotations

import urllib.parse

REDACTED = "REDACTED"


def loggable_url(url: object) -> str:
    """``url`` (a string or any object whose ``str`` is a URL) with its userinfo, query and fragment
    replaced by ``REDACTED``; scheme, host, port and path are kept. Text that does not parse as a URL is
    reduced to what precedes its first ``?`` or ``#``."""
    text = str(url)
    try:
        parts = urllib.parse.urlsplit(text)
        port = parts.port
    except ValueError:
        return text.split("?", 1)[0].split("#", 1)[0]
    if not parts.scheme or not parts.netloc:
        return text.split("?", 1)[0].split("#", 1)[0]
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{REDACTED}@" if "@" in parts.netloc else "") + host + (f":{port}" if port is not None else "")
    query = REDACTED if parts.query else ""
    fragment = REDACTED if parts.fragment else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
