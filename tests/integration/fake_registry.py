"""A small registry (OCI distribution API subset) that serves deliberately broken images for bad-input tests.

Each repository under ``bad/`` misbehaves in one way; ``good/small`` is a correct image for comparison.
``redirect/small`` is correct too but redirects every blob to a "pre-signed object-store URL" whose query
carries :data:`PRESIGNED_SECRET`, as S3-backed registries do; ``redirect/gone`` redirects to such a URL on a
port where nothing listens.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
# The signature of the pre-signed blob URLs: it must never show up in crio's log.
PRESIGNED_SECRET = "crio-test-presigned-signature-5ec12e7"
PRESIGNED_QUERY = (
    f"X-Amz-Credential=crio-test-access-key&X-Amz-Expires=300&X-Amz-Signature={PRESIGNED_SECRET}"
)
OBJECTS = "/objects/"


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(entries: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


class Image:
    """One image: a manifest plus blobs; ``layer_blob`` may differ from what the manifest promises."""

    def __init__(
        self, layer_tar: bytes, marker: str, layer_blob: bytes | None = None, media_type: str = ""
    ) -> None:
        layer = gzip.compress(layer_tar, mtime=0)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"], "Labels": {"marker": marker}},
                "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]},
            }
        ).encode()
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": media_type or OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": digest(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": digest(layer), "size": len(layer)}],
            }
        ).encode()
        self.media_type = media_type or OCI_MANIFEST
        self.blobs = {digest(config): config, digest(layer): layer if layer_blob is None else layer_blob}
        self.layer_digest = digest(layer)


def build_images() -> dict[str, Image]:
    """The images the fake registry serves, by repository."""
    good = tar_bytes([("etc/marker", b"good\n")])
    truncated = Image(good, "truncated")
    truncated.blobs[truncated.layer_digest] = truncated.blobs[truncated.layer_digest][:20]
    garbage_blob = os.urandom(4096)
    garbage = Image(good, "garbage")
    garbage.blobs = {k: (garbage_blob if k == garbage.layer_digest else v) for k, v in garbage.blobs.items()}
    wrong = Image(good, "digest")
    promised = wrong.blobs[wrong.layer_digest]
    wrong.blobs[wrong.layer_digest] = bytes(b ^ 0xFF for b in promised)  # same size, other bytes
    return {
        "good/small": Image(good, "good"),
        "redirect/small": Image(good, "redirect"),
        "redirect/gone": Image(good, "gone"),
        "bad/digest": wrong,
        "bad/truncated": _rehash(truncated),
        "bad/garbage": _rehash(garbage),
        "bad/escape": Image(tar_bytes([("../../../escaped-by-crio-test", b"x")]), "escape"),
        "bad/mediatype": Image(good, "mediatype", media_type="application/vnd.example.unknown+json"),
    }


def _rehash(image: Image) -> Image:
    """Point the manifest at the layer bytes actually served (so only their content is wrong)."""
    manifest: dict[str, Any] = json.loads(image.manifest)
    layer = image.blobs[image.layer_digest]
    del image.blobs[image.layer_digest]
    image.layer_digest = digest(layer)
    image.blobs[image.layer_digest] = layer
    manifest["layers"][0].update(digest=image.layer_digest, size=len(layer))
    image.manifest = json.dumps(manifest).encode()
    return image


class FakeRegistry:
    """Serves :func:`build_images` plus failure modes: ``bad/error500``, ``bad/hang``, ``bad/midway``,
    ``bad/huge`` (a 5 MiB manifest), and blob redirects (``redirect/``)."""

    def __init__(self) -> None:
        self.images = build_images()
        self.hang = threading.Event()
        self.objects_served = 0  # blobs served at their pre-signed URL
        registry = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                registry.handle(self)

            def do_HEAD(self) -> None:
                registry.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRegistry:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hang.set()
        self.server.shutdown()
        self.server.server_close()

    def _send(self, handler: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str = "") -> None:
        handler.send_response(code)
        if content_type:
            handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.send_header("Docker-Content-Digest", digest(body))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        if path in ("/v2/", "/v2"):
            self._send(handler, 200, b"{}", "application/json")
            return
        if path.startswith("/v2/bad/error500/"):
            self._send(handler, 500, b'{"errors":[{"code":"UNKNOWN","message":"boom"}]}', "application/json")
            return
        if path.startswith("/v2/bad/hang/"):
            self.hang.wait(60)
            return
        if path.startswith("/v2/bad/huge/manifests/"):
            body = json.dumps(
                {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "pad": "x" * (5 << 20)}
            ).encode()
            self._send(handler, 200, body, OCI_MANIFEST)
            return
        if path.startswith(OBJECTS):
            self._object(handler, path)
            return
        repo, kind, ref = _split(path)
        if repo == "bad/midway" and kind == "manifests":
            repo = "good/small"
        image = self.images.get(repo) if repo != "bad/midway" else self.images["good/small"]
        if image is None or kind is None:
            self._send(handler, 404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}', "application/json")
            return
        if kind == "manifests":
            self._send(handler, 200, image.manifest, image.media_type)
            return
        blob = image.blobs.get(ref)
        if blob is None:
            self._send(handler, 404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json")
            return
        if repo.startswith("redirect/"):
            origin = "http://127.0.0.1:9" if repo == "redirect/gone" else ""  # port 9: nothing listens
            handler.send_response(307)
            handler.send_header("Location", f"{origin}{OBJECTS}{ref}?{PRESIGNED_QUERY}")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        if repo == "bad/midway" and ref == image.layer_digest:
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(blob)))
            handler.end_headers()
            handler.wfile.write(blob[: len(blob) // 2])
            handler.wfile.flush()
            time.sleep(0.1)
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        self._send(handler, 200, blob, "application/octet-stream")

    def _object(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        """A blob at its pre-signed URL: any image's blob, only with the signed query."""
        name, _, query = path.removeprefix(OBJECTS).partition("?")
        blob = next((i.blobs[name] for i in self.images.values() if name in i.blobs), None)
        if query != PRESIGNED_QUERY or blob is None:
            self._send(handler, 403, b"<Error><Code>AccessDenied</Code></Error>", "application/xml")
            return
        self.objects_served += 1
        self._send(handler, 200, blob, "application/octet-stream")


def _split(path: str) -> tuple[str, str | None, str]:
    rest = path.removeprefix("/v2/")
    for kind in ("manifests", "blobs"):
        marker = f"/{kind}/"
        if marker in rest:
            repo, _, ref = rest.partition(marker)
            return repo, kind, ref
    return rest, None, ""
