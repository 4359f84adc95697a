"""The image-transport plugin against real servers and files.

Real Debian ``docker-registry`` (distribution 2.8) instances on 127.0.0.1 — anonymous, htpasswd basic auth,
and bearer tokens from a token server written here — with images built by hand as OCI layouts and pushed
with skopeo; small Python HTTP servers for failure modes (500, hang, a connection closed mid-blob, an
over-size manifest, redirects); ``oci:`` directories, ``oci-archive:`` and ``docker-archive:`` files.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crio.core.errors import (
    CrioError,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    Unauthenticated,
    Unavailable,
)
from crio.core.images import manifest as mf
from crio.core.images.reference import parse_transport_reference
from crio.core.types import ImageReference, ImageSource, PullOptions, RegistryAuth
from crio.plugins import image_transports as plugin
from crio.plugins.image_transports import auth as authmod
from crio.plugins.image_transports import client as clientmod
from crio.plugins.image_transports.oci_layout import open_oci
from crio.plugins.image_transports.registry import open_registry
from tests.containers_tools import ContainersTools

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not all(shutil.which(tool) for tool in ("docker-registry", "skopeo", "openssl")),
        reason="needs Debian's docker-registry, skopeo and openssl (apt-get install docker-registry skopeo)",
    ),
]

USER, PASSWORD = "alice", "s3cret"
SERVICE, ISSUER = "crio-test-registry", "crio-test-issuer"
REFRESH_TOKEN = "refresh-" + uuid.uuid4().hex


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------------
# Images built by hand
# --------------------------------------------------------------------------------------------------


@dataclass
class Built:
    """One image: its manifest and every blob by digest."""

    manifest: bytes
    config: bytes
    blobs: dict[str, bytes] = field(default_factory=dict)

    @property
    def manifest_digest(self) -> str:
        return sha256(self.manifest)

    @property
    def config_digest(self) -> str:
        return sha256(self.config)


def layer_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bin/link")
        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, "tool", 1_700_000_000
        tar.addfile(link)
    return buffer.getvalue()


def build_image(arch: str, marker: str, layer_count: int = 2) -> Built:
    blobs: dict[str, bytes] = {}
    layers, diff_ids = [], []
    for i in range(layer_count):
        tar = layer_tar(
            {f"data/{arch}-{i}.txt": f"{marker} {arch} layer {i}\n".encode() * 50, "bin/tool": b"#!"}
        )
        blob = gzip.compress(tar, mtime=0)
        blobs[sha256(blob)] = blob
        diff_ids.append(sha256(tar))
        layers.append({"mediaType": mf.OCI_LAYER_GZIP, "digest": sha256(blob), "size": len(blob)})
    config = json.dumps(
        {
            "created": "2024-01-02T03:04:05Z",
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/bin/tool"], "Env": [f"MARKER={marker}"], "User": "1000"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()
    blobs[sha256(config)] = config
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mf.OCI_MANIFEST,
            "config": {"mediaType": mf.OCI_CONFIG, "digest": sha256(config), "size": len(config)},
            "layers": layers,
        }
    ).encode()
    return Built(manifest, config, blobs)


class Layout:
    """An OCI image layout directory written by hand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entries: list[dict[str, Any]] = []
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def blob(self, data: bytes) -> str:
        digest = sha256(data)
        (self.root / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
        return digest

    def add_image(self, image: Built, tag: str) -> None:
        for data in image.blobs.values():
            self.blob(data)
        self.blob(image.manifest)
        self._entry(mf.OCI_MANIFEST, image.manifest, tag)

    def add_index(self, images: dict[str, Built], tag: str) -> bytes:
        manifests = []
        for arch, image in images.items():
            for data in image.blobs.values():
                self.blob(data)
            self.blob(image.manifest)
            manifests.append(
                {
                    "mediaType": mf.OCI_MANIFEST,
                    "digest": image.manifest_digest,
                    "size": len(image.manifest),
                    "platform": {
                        "os": "linux",
                        "architecture": arch,
                        **({"variant": "v8"} if arch == "arm64" else {}),
                    },
                }
            )
        index = json.dumps({"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": manifests}).encode()
        self.blob(index)
        self._entry(mf.OCI_INDEX, index, tag)
        return index

    def _entry(self, media_type: str, data: bytes, tag: str) -> None:
        self.entries.append(
            {
                "mediaType": media_type,
                "digest": sha256(data),
                "size": len(data),
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        )
        index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": self.entries}
        (self.root / "index.json").write_text(json.dumps(index))


# --------------------------------------------------------------------------------------------------
# Registries, the token server and skopeo
# --------------------------------------------------------------------------------------------------


class TokenServer(http.server.ThreadingHTTPServer):
    """A docker-registry token server: RS256 JWTs with an x5c chain, signed by openssl."""

    def __init__(self, key: Path, cert_der: bytes) -> None:
        super().__init__(("127.0.0.1", 0), TokenHandler)
        self.key = key
        self.cert_der = cert_der
        self.requests = 0
        self.daemon_threads = True

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/token"

    def sign(self, access: list[dict[str, Any]], subject: str) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key)],
            input=signing_input.encode(),
            capture_output=True,
            check=True,
        ).stdout
        return f"{signing_input}.{b64(signature)}"


def _grant(scopes: list[str], allowed: bool) -> list[dict[str, Any]]:
    access = []
    for scope in scopes:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if allowed and kind == "repository":
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
    return access


class TokenHandler(http.server.BaseHTTPRequestHandler):
    server: TokenServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, scopes: list[str], allowed: bool, subject: str) -> None:
        self.server.requests += 1
        token = self.server.sign(_grant(scopes, allowed), subject)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        header = self.headers.get("Authorization", "")
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if header and header != expected:
            self.send_response(401)
            self.end_headers()
            return
        self._answer(query.get("scope", []), header == expected, USER if header else "")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        allowed = form.get("grant_type") == ["refresh_token"] and form.get("refresh_token") == [REFRESH_TOKEN]
        if not allowed:
            self.send_response(401)
            self.end_headers()
            return
        scopes = " ".join(form.get("scope", [])).split()
        self._answer(scopes, True, USER)


@dataclass
class Registry:
    """A docker-registry process on 127.0.0.1."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_registry(base: Path, name: str, auth_yaml: str = "") -> Registry:
    port = free_port()
    root = base / name
    (root / "storage").mkdir(parents=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        "health:\n  storagedriver:\n    enabled: false\n" + auth_yaml
    )
    log = root / "registry.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=out, stderr=out)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            break
        except urllib.error.HTTPError:
            break  # 401: it answers
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise RuntimeError(f"docker-registry did not answer on port {port}: {log.read_text()}")
    return Registry(name, port, process, log)


def bcrypt_hash(password: str) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))


@dataclass
class Env:
    """Everything the tests share: registries, the token server, layouts and a registries.conf."""

    base: Path
    anonymous: Registry
    basic: Registry
    bearer: Registry
    tokens: TokenServer
    layout: Path
    single: Built
    multi: dict[str, Built]
    conf: Path

    def options(self, **kwargs: Any) -> PullOptions:
        return PullOptions(registries_conf=str(self.conf), **kwargs)


def skopeo(base: Path, *args: str) -> None:
    """``skopeo copy --quiet args`` with a private configuration under ``base``."""
    ContainersTools(base / "skopeo-config").skopeo("copy", "--quiet", *args, timeout=120)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("transports")
    key, cert = base / "key.pem", base / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=crio-test-token",
        ],
        check=True,
        capture_output=True,
    )
    cert_der = subprocess.run(
        ["openssl", "x509", "-in", str(cert), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    tokens = TokenServer(key, cert_der)
    threading.Thread(target=tokens.serve_forever, daemon=True).start()
    (base / "htpasswd").write_text(f"{USER}:{bcrypt_hash(PASSWORD)}\n")
    registries: list[Registry] = []
    try:
        registries.append(start_registry(base, "anonymous"))
        registries.append(
            start_registry(
                base, "basic", f"auth:\n  htpasswd:\n    realm: crio-test\n    path: {base / 'htpasswd'}\n"
            )
        )
        registries.append(
            start_registry(
                base,
                "bearer",
                f"auth:\n  token:\n    realm: {tokens.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
                f"    rootcertbundle: {cert}\n",
            )
        )
        anonymous, basic, bearer = registries
        layout_dir = base / "layout"
        layout = Layout(layout_dir)
        single = build_image("amd64", "single")
        layout.add_image(single, "v1")
        multi = {arch: build_image(arch, "multi") for arch in ("amd64", "arm64")}
        layout.add_index(multi, "multi")
        creds = f"{USER}:{PASSWORD}"
        skopeo(base, "--dest-tls-verify=false", f"oci:{layout_dir}:v1", f"docker://{anonymous.host}/app:v1")
        skopeo(
            base,
            "--all",
            "--dest-tls-verify=false",
            f"oci:{layout_dir}:multi",
            f"docker://{anonymous.host}/multi:1",
        )
        skopeo(
            base,
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            f"oci:{layout_dir}:v1",
            f"docker://{basic.host}/private/app:v1",
        )
        skopeo(
            base,
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            f"oci:{layout_dir}:v1",
            f"docker://{bearer.host}/private/app:v1",
        )
        conf = base / "registries.conf"
        conf.write_text(
            "".join(f'[[registry]]\nlocation = "{r.host}"\ninsecure = true\n' for r in registries)
            + f'[[registry]]\nprefix = "registry.k8s.io"\nlocation = "{anonymous.host}"\ninsecure = true\n'
            + f'[[registry]]\nprefix = "gcr.io/k8s-staging-cri-tools"\nlocation = "{anonymous.host}/multi"\n'
            + "insecure = true\n"
        )
        yield Env(base, anonymous, basic, bearer, tokens, layout_dir, single, multi, conf)
    finally:
        tokens.shutdown()
        for registry in registries:
            registry.process.terminate()
            registry.process.wait(10)


# --------------------------------------------------------------------------------------------------
# Pulling through the plugin
# --------------------------------------------------------------------------------------------------


@dataclass
class Pulled:
    top_digest: str
    manifest_digest: str
    config_digest: str
    config: mf.ImageConfig
    blob_bytes: int
    description: str


async def _read_blob(source: ImageSource, descriptor: mf.Descriptor) -> bytes:
    chunks = [chunk async for chunk in source.get_blob(descriptor.digest, descriptor.size)]
    assert all(len(c) <= 1024 * 1024 for c in chunks)
    data = b"".join(chunks)
    assert (sha256(data), len(data)) == (descriptor.digest, descriptor.size), "blob digest or size mismatch"
    return data


async def _pull(reference: str, options: PullOptions, platform: mf.Platform | None) -> Pulled:
    ref = parse_transport_reference(reference)
    opened = plugin.crio_image_open(reference=ref, options=options)
    assert opened is not None
    source = await opened
    try:
        top, top_type = await source.get_manifest()
        parsed = mf.parse_manifest(top, top_type)
        raw = top
        if isinstance(parsed, mf.ManifestList):
            chosen = mf.select_platform(parsed, platform)
            raw, media_type = await source.get_manifest(chosen.digest)
            assert sha256(raw) == chosen.digest
            parsed = mf.parse_manifest(raw, media_type)
        assert isinstance(parsed, mf.ImageManifest)
        config_raw = await _read_blob(source, parsed.config)
        config = mf.parse_config(config_raw, len(parsed.layers))
        total = len(config_raw)
        for layer in parsed.layers:
            data = await _read_blob(source, layer.descriptor)
            tar = gzip.decompress(data) if layer.compression == mf.GZIP else data
            assert sha256(tar) in config.diff_ids
            total += len(data)
        return Pulled(sha256(top), sha256(raw), parsed.config.digest, config, total, source.description)
    finally:
        await source.close()


def pull(reference: str, options: PullOptions, platform: mf.Platform | None = None) -> Pulled:
    """Open ``reference`` through the plugin's hook, fetch the manifest(s), config and every layer, and
    verify every digest and size."""
    return asyncio.run(_pull(reference, options, platform or mf.Platform("linux", "amd64")))


def pull_error(reference: str, options: PullOptions, kind: type[CrioError]) -> str:
    with pytest.raises(kind) as info:
        pull(reference, options)
    return str(info.value)


def test_hooks() -> None:
    assert list(plugin.crio_image_transports()) == ["docker", "oci", "oci-archive", "docker-archive"]
    assert plugin.crio_image_open(reference=ImageReference("ftp", "x"), options=PullOptions()) is None


def test_anonymous_pull(env: Env) -> None:
    got = pull(f"docker://{env.anonymous.host}/app:v1", env.options())
    assert got.config_digest == env.single.config_digest
    assert got.manifest_digest == env.single.manifest_digest  # skopeo pushed the OCI manifest unchanged
    assert got.config.env == ("MARKER=single",)
    assert env.anonymous.host in got.description


def test_pull_by_digest_and_remapped_prefix(env: Env) -> None:
    by_digest = pull(f"registry.k8s.io/app@{env.single.manifest_digest}", env.options())
    assert by_digest.config_digest == env.single.config_digest
    assert f"{env.anonymous.host}/app" in by_digest.description


def test_manifest_list_platform_selection(env: Env) -> None:
    amd64 = pull(f"{env.anonymous.host}/multi:1", env.options())
    assert amd64.config_digest == env.multi["amd64"].config_digest
    assert amd64.config.architecture == "amd64"
    arm64 = pull("gcr.io/k8s-staging-cri-tools:1", env.options(), mf.Platform("linux", "arm64", "v8"))
    assert arm64.config_digest == env.multi["arm64"].config_digest
    assert arm64.top_digest == amd64.top_digest != arm64.manifest_digest


def test_not_found(env: Env) -> None:
    text = pull_error(f"{env.anonymous.host}/app:nope", env.options(), NotFound)
    assert f"{env.anonymous.host}/app:nope" in text and "404" in text
    text = pull_error(f"{env.anonymous.host}/nothing/here:v1", env.options(), NotFound)
    assert "nothing/here" in text


def test_blob_not_found(env: Env) -> None:
    async def fetch() -> None:
        source = await open_registry(ImageReference("docker", f"{env.anonymous.host}/app:v1"), env.options())
        try:
            async for _ in source.get_blob(sha256(b"absent"), 6):
                pass
        finally:
            await source.close()

    with pytest.raises(NotFound, match="404"):
        asyncio.run(fetch())


def test_secure_endpoint_refuses_plain_http(env: Env, tmp_path: Path) -> None:
    conf = tmp_path / "secure.conf"
    conf.write_text(f'[[registry]]\nlocation = "{env.anonymous.host}"\ninsecure = false\n')
    text = pull_error(f"{env.anonymous.host}/app:v1", PullOptions(registries_conf=str(conf)), Unavailable)
    assert env.anonymous.host in text


def test_unconfigured_loopback_registry_may_use_plain_http(env: Env) -> None:
    got = pull(f"{env.anonymous.host}/app:v1", PullOptions())
    assert got.config_digest == env.single.config_digest


@pytest.mark.parametrize(
    "auth",
    [
        RegistryAuth(username=USER, password=PASSWORD),
        RegistryAuth(auth=base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()),
    ],
)
def test_basic_auth_from_request(env: Env, auth: RegistryAuth) -> None:
    got = pull(f"{env.basic.host}/private/app:v1", env.options(auth=auth))
    assert got.config_digest == env.single.config_digest


@pytest.mark.parametrize("key", ["{host}/private/app", "{host}/private", "{host}", "http://{host}/v1/"])
def test_basic_auth_from_auth_file(env: Env, tmp_path: Path, key: str) -> None:
    auth_file = tmp_path / "auth.json"
    good = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    bad = base64.b64encode(f"{USER}:wrong".encode()).decode()
    auths = {key.format(host=env.basic.host): {"auth": good}}
    if key != "{host}":
        auths[f"{env.basic.host}/elsewhere"] = {"auth": bad}  # a longer key for another namespace
    auth_file.write_text(json.dumps({"auths": auths}))
    got = pull(f"{env.basic.host}/private/app:v1", env.options(auth_file=str(auth_file)))
    assert got.config_digest == env.single.config_digest


def test_request_auth_wins_over_auth_file(env: Env, tmp_path: Path) -> None:
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(json.dumps({"auths": {env.basic.host: {"auth": base64.b64encode(b"x:y").decode()}}}))
    options = env.options(auth=RegistryAuth(username=USER, password=PASSWORD), auth_file=str(auth_file))
    assert pull(f"{env.basic.host}/private/app:v1", options).config_digest == env.single.config_digest
    text = pull_error(f"{env.basic.host}/private/app:v1", env.options(auth_file=str(auth_file)), CrioError)
    assert "unauthorized" in text and env.basic.host in text


def test_basic_auth_refused(env: Env) -> None:
    bad = env.options(auth=RegistryAuth(username=USER, password="wrong"))
    text = pull_error(f"{env.basic.host}/private/app:v1", bad, Unauthenticated)
    assert "unauthorized" in text and env.basic.host in text
    text = pull_error(f"{env.basic.host}/private/app:v1", env.options(), Unauthenticated)
    assert "unauthorized" in text and env.basic.host in text


def test_bearer_token_flow_and_cache(env: Env) -> None:
    authmod.TOKENS.clear()
    options = env.options(auth=RegistryAuth(username=USER, password=PASSWORD))
    before = env.tokens.requests
    assert pull(f"{env.bearer.host}/private/app:v1", options).config_digest == env.single.config_digest
    after_first = env.tokens.requests
    assert after_first > before
    assert pull(f"{env.bearer.host}/private/app:v1", options).config_digest == env.single.config_digest
    assert env.tokens.requests == after_first  # the token for this scope was cached


def test_bearer_identity_token(env: Env, tmp_path: Path) -> None:
    authmod.TOKENS.clear()
    options = env.options(auth=RegistryAuth(identity_token=REFRESH_TOKEN))
    assert pull(f"{env.bearer.host}/private/app:v1", options).config_digest == env.single.config_digest
    authmod.TOKENS.clear()
    auth_file = tmp_path / "auth.json"
    auth_file.write_text(
        json.dumps({"auths": {env.bearer.host: {"auth": "", "identitytoken": REFRESH_TOKEN}}})
    )
    options = env.options(auth_file=str(auth_file))
    assert pull(f"{env.bearer.host}/private/app:v1", options).config_digest == env.single.config_digest


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (['Basic realm="x"'], [("basic", {"realm": "x"})]),
        (
            [
                'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'
            ],
            [
                (
                    "bearer",
                    {
                        "realm": "https://auth.example/token",
                        "service": "registry.example",
                        "scope": "repository:a/b:pull",
                    },
                )
            ],
        ),
        (
            ['Bearer realm="r", scope="repository:a:pull,push", Basic realm="b"'],
            [("bearer", {"realm": "r", "scope": "repository:a:pull,push"}), ("basic", {"realm": "b"})],
        ),
        (
            ['Basic realm="say \\"hi\\""', "Bearer Realm=r"],
            [("basic", {"realm": 'say "hi"'}), ("bearer", {"realm": "r"})],
        ),
        (["Negotiate"], [("negotiate", {})]),
        ([""], []),
    ],
)
def test_parse_challenges(headers: list[str], expected: list[tuple[str, dict[str, str]]]) -> None:
    assert [(c.scheme, c.params) for c in authmod.parse_challenges(headers)] == expected


def test_bearer_registry_token(env: Env) -> None:
    token = env.tokens.sign(_grant(["repository:private/app:pull"], True), USER)
    options = env.options(auth=RegistryAuth(registry_token=token))
    assert pull(f"{env.bearer.host}/private/app:v1", options).config_digest == env.single.config_digest
    wrong = env.options(auth=RegistryAuth(registry_token=token[:-8] + "AAAAAAAA"))
    assert "unauthorized" in pull_error(f"{env.bearer.host}/private/app:v1", wrong, Unauthenticated)


def test_bearer_anonymous_is_unauthorized(env: Env) -> None:
    authmod.TOKENS.clear()
    text = pull_error(f"{env.bearer.host}/private/app:v1", env.options(), Unauthenticated)
    assert "unauthorized" in text and env.bearer.host in text


# --------------------------------------------------------------------------------------------------
# Misbehaving servers
# --------------------------------------------------------------------------------------------------

Behaviour = Callable[[http.server.BaseHTTPRequestHandler], None]


class FakeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, behaviour: Behaviour) -> None:
        super().__init__(("127.0.0.1", 0), FakeHandler)
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.seen: list[tuple[str, dict[str, str]]] = []

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class FakeHandler(http.server.BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append((self.path, dict(self.headers.items())))
        self.server.behaviour(self)


def send(handler: http.server.BaseHTTPRequestHandler, status: int, body: bytes = b"", **headers: str) -> None:
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name.replace("_", "-"), value)
    if "Content_Length" not in headers:
        handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[Callable[[Behaviour], tuple[FakeServer, PullOptions]]]:
    servers: list[FakeServer] = []

    def make(behaviour: Behaviour) -> tuple[FakeServer, PullOptions]:
        server = FakeServer(behaviour)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        conf = tmp_path / f"fake-{len(servers)}.conf"
        conf.write_text(f'[[registry]]\nlocation = "{server.host}"\ninsecure = true\n')
        return server, PullOptions(registries_conf=str(conf))

    yield make
    for server in servers:
        server.stop.set()
        server.shutdown()
        server.server_close()


BLOB = os.urandom(2 * 1024 * 1024)
CONFIG = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha256(b"x")]}}).encode()
MANIFEST = json.dumps(
    {
        "schemaVersion": 2,
        "mediaType": mf.DOCKER_V2S2,
        "config": {"mediaType": mf.DOCKER_CONFIG, "digest": sha256(CONFIG), "size": len(CONFIG)},
        "layers": [{"mediaType": mf.DOCKER_LAYER_GZIP, "digest": sha256(BLOB), "size": len(BLOB)}],
    }
).encode()


def serve_image(handler: http.server.BaseHTTPRequestHandler, blob: Behaviour | None = None) -> None:
    """A minimal registry serving MANIFEST, CONFIG and BLOB (``blob`` overrides the layer answer)."""
    if handler.path == "/v2/":
        send(handler, 200, b"{}")
    elif "/manifests/" in handler.path:
        send(handler, 200, MANIFEST, Content_Type=mf.DOCKER_V2S2)
    elif handler.path.endswith(sha256(CONFIG)):
        send(handler, 200, CONFIG)
    elif handler.path.endswith(sha256(BLOB)) and blob is not None:
        blob(handler)
    elif handler.path.endswith(sha256(BLOB)):
        send(handler, 200, BLOB)
    else:
        send(handler, 404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')


async def fetch_blob(server: FakeServer, options: PullOptions, size: int = len(BLOB)) -> bytes:
    source = await open_registry(ImageReference("docker", f"{server.host}/x/y:1"), options)
    try:
        raw, media_type = await source.get_manifest()
        assert (raw, media_type) == (MANIFEST, mf.DOCKER_V2S2)
        return b"".join([chunk async for chunk in source.get_blob(sha256(BLOB), size)])
    finally:
        await source.close()


def test_fake_registry_serves(fake: Any) -> None:
    server, options = fake(serve_image)
    assert asyncio.run(fetch_blob(server, options)) == BLOB


def test_server_error_500(fake: Any) -> None:
    server, options = fake(lambda h: send(h, 500, b"boom"))
    text = pull_error(f"{server.host}/x/y:1", options, Unavailable)
    assert server.host in text and "500" in text


def test_server_error_on_manifest(fake: Any) -> None:
    def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
        send(h, 200, b"{}") if h.path == "/v2/" else send(h, 503, b"")

    server, options = fake(behaviour)
    text = pull_error(f"{server.host}/x/y:1", options, Unavailable)
    assert server.host in text and "503" in text


def test_hanging_registry_fails_in_bounded_time(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clientmod, "READ_TIMEOUT", 1.0)

    def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path == "/v2/":
            send(h, 200, b"{}")
        else:
            h.server.stop.wait(30)  # type: ignore[attr-defined]

    server, options = fake(behaviour)
    started = time.monotonic()
    text = pull_error(f"{server.host}/x/y:1", options, Unavailable)
    assert time.monotonic() - started < 10
    assert server.host in text and "no data for 1 s" in text


def test_hanging_blob_fails_in_bounded_time(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clientmod, "READ_TIMEOUT", 1.0)

    def stall(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(BLOB)))
        h.end_headers()
        h.wfile.write(BLOB[:1000])
        h.wfile.flush()
        h.server.stop.wait(30)  # type: ignore[attr-defined]

    server, options = fake(lambda h: serve_image(h, stall))
    started = time.monotonic()
    with pytest.raises(Unavailable, match="no data for 1 s"):
        asyncio.run(fetch_blob(server, options))
    assert time.monotonic() - started < 10


def test_deadline_bounds_a_pull(fake: Any) -> None:
    def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
        send(h, 200, b"{}") if h.path == "/v2/" else h.server.stop.wait(30)  # type: ignore[attr-defined]

    server, options = fake(behaviour)
    started = time.monotonic()
    opts = PullOptions(registries_conf=options.registries_conf, timeout=1.0)
    with pytest.raises(DeadlineExceeded, match="deadline exceeded"):
        pull(f"{server.host}/x/y:1", opts)
    assert time.monotonic() - started < 10


def test_connection_closed_mid_blob(fake: Any) -> None:
    def cut(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(BLOB)))
        h.end_headers()
        h.wfile.write(BLOB[: 300 * 1024])
        h.wfile.flush()
        h.connection.shutdown(socket.SHUT_RDWR)

    server, options = fake(lambda h: serve_image(h, cut))
    with pytest.raises(Unavailable, match=f"registry {server.host}: connection closed"):
        asyncio.run(fetch_blob(server, options))


def test_blob_larger_than_descriptor(fake: Any) -> None:
    server, options = fake(serve_image)
    with pytest.raises(InvalidArgument, match="larger than its descriptor"):
        asyncio.run(fetch_blob(server, options, size=len(BLOB) - 1))

    def no_length(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()  # HTTP/1.0, no Content-Length: the body ends when the connection closes
        h.wfile.write(BLOB)

    server, options = fake(lambda h: serve_image(h, no_length))
    with pytest.raises(InvalidArgument, match="larger than its descriptor"):
        asyncio.run(fetch_blob(server, options, size=len(BLOB) - 1))


@pytest.mark.parametrize("with_length", [True, False])
def test_manifest_too_large(fake: Any, with_length: bool) -> None:
    big = b'{"schemaVersion": 2, "padding": "' + b"x" * (5 * 1024 * 1024) + b'"}'

    def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.path == "/v2/":
            send(h, 200, b"{}")
            return
        h.send_response(200)
        h.send_header("Content-Type", mf.OCI_MANIFEST)
        if with_length:
            h.send_header("Content-Length", str(len(big)))
        h.end_headers()
        with contextlib.suppress(OSError):  # the client may stop reading early
            h.wfile.write(big)

    server, options = fake(behaviour)
    text = pull_error(f"{server.host}/x/y:1", options, InvalidArgument)
    assert "manifest too large" in text


def test_schema1_refused(fake: Any) -> None:
    schema1 = json.dumps({"schemaVersion": 1, "name": "x/y", "tag": "1", "fsLayers": []}).encode()

    def behaviour(h: http.server.BaseHTTPRequestHandler) -> None:
        send(h, 200, b"{}") if h.path == "/v2/" else send(h, 200, schema1, Content_Type=mf.DOCKER_V2S1_SIGNED)

    server, options = fake(behaviour)
    assert "schema 1 manifests are unsupported" in pull_error(
        f"{server.host}/x/y:1", options, InvalidArgument
    )


def test_redirect_to_another_host_drops_authorization(fake: Any) -> None:
    storage, _ = fake(lambda h: send(h, 200, BLOB))
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()

    def registry(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.headers.get("Authorization") != expected:
            send(h, 401, b"", WWW_Authenticate='Basic realm="fake"')
        elif h.path.endswith(sha256(BLOB)):
            send(h, 307, b"", Location=f"http://{storage.host}/storage/blob?sig=1")
        else:
            serve_image(h)

    server, options = fake(registry)
    options = PullOptions(registries_conf=options.registries_conf, auth=RegistryAuth(USER, PASSWORD))
    assert asyncio.run(fetch_blob(server, options)) == BLOB
    assert storage.seen and storage.seen[-1][0] == "/storage/blob?sig=1"
    assert all("Authorization" not in headers for _, headers in storage.seen)
    assert any(headers.get("Authorization") == expected for _, headers in server.seen)


def test_bearer_challenge_against_fake_registry(fake: Any) -> None:
    issued: list[dict[str, list[str]]] = []

    def token_server(h: http.server.BaseHTTPRequestHandler) -> None:
        issued.append(urllib.parse.parse_qs(urllib.parse.urlparse(h.path).query))
        send(h, 200, json.dumps({"access_token": "tok-123"}).encode(), Content_Type="application/json")

    tokens, _ = fake(token_server)

    def registry(h: http.server.BaseHTTPRequestHandler) -> None:
        if h.headers.get("Authorization") != "Bearer tok-123":
            challenge = (
                f'Bearer realm="http://{tokens.host}/token",service="fake",scope="repository:x/y:pull"'
            )
            send(h, 401, b"", WWW_Authenticate=challenge)
        else:
            serve_image(h)

    authmod.TOKENS.clear()
    server, options = fake(registry)
    assert asyncio.run(fetch_blob(server, options)) == BLOB
    assert issued == [{"service": ["fake"], "scope": ["repository:x/y:pull"]}]  # one token, then cached


# --------------------------------------------------------------------------------------------------
# Local transports
# --------------------------------------------------------------------------------------------------


def tar_directory(source: Path, target: Path, compress: bool = False) -> None:
    opener = gzip.open if compress else open
    with opener(target, "wb") as raw, tarfile.open(fileobj=raw, mode="w") as tar:
        for path in sorted(source.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(source)), recursive=False)


def test_local_transports_yield_the_same_image(env: Env, tmp_path: Path) -> None:
    oci = pull(f"oci:{env.layout}:v1", PullOptions())
    assert oci.config_digest == env.single.config_digest
    assert oci.manifest_digest == env.single.manifest_digest
    archive = tmp_path / "layout.tar"
    tar_directory(env.layout, archive)
    assert pull(f"oci-archive:{archive}:v1", PullOptions()).manifest_digest == env.single.manifest_digest
    compressed = tmp_path / "layout.tar.gz"
    tar_directory(env.layout, compressed, compress=True)
    assert pull(f"oci-archive:{compressed}:v1", PullOptions()).config_digest == env.single.config_digest
    docker_archive = tmp_path / "docker.tar"
    skopeo(tmp_path, f"oci:{env.layout}:v1", f"docker-archive:{docker_archive}:example.com/app:v1")
    for ref in ("", ":example.com/app:v1", ":@0"):
        got = pull(f"docker-archive:{docker_archive}{ref}", PullOptions())
        assert got.config_digest == env.single.config_digest
        assert got.config.diff_ids == oci.config.diff_ids
    registry = pull(f"{env.anonymous.host}/app:v1", env.options())
    assert registry.config_digest == oci.config_digest


def test_oci_layout_index_selection(env: Env) -> None:
    got = pull(f"oci:{env.layout}:multi", PullOptions(), mf.Platform("linux", "arm64", "v8"))
    assert got.config_digest == env.multi["arm64"].config_digest
    with pytest.raises(InvalidArgument, match=r"index\.json has 2 images"):
        pull(f"oci:{env.layout}", PullOptions())
    with pytest.raises(NotFound, match="no image named 'v9'"):
        pull(f"oci:{env.layout}:v9", PullOptions())
    with pytest.raises(NotFound, match="no such directory"):
        pull(f"oci:{env.layout}-absent:v1", PullOptions())


def test_local_transport_errors(env: Env, tmp_path: Path) -> None:
    docker_archive = tmp_path / "docker.tar"
    skopeo(tmp_path, f"oci:{env.layout}:v1", f"docker-archive:{docker_archive}:example.com/app:v1")
    with pytest.raises(NotFound, match="no image tagged"):
        pull(f"docker-archive:{docker_archive}:example.com/other:v1", PullOptions())
    with pytest.raises(NotFound, match="no image @3"):
        pull(f"docker-archive:{docker_archive}:@3", PullOptions())
    with pytest.raises(NotFound, match="no such file"):
        pull(f"docker-archive:{tmp_path}/absent.tar", PullOptions())
    garbage = tmp_path / "garbage.tar"
    garbage.write_bytes(b"not a tar" * 100)
    with pytest.raises(InvalidArgument, match="not a readable tar archive"):
        pull(f"oci-archive:{garbage}", PullOptions())
    not_layout = tmp_path / "empty"
    not_layout.mkdir()
    with pytest.raises(NotFound, match="oci-layout"):
        pull(f"oci:{not_layout}", PullOptions())


def test_oci_layout_blob_guard(env: Env) -> None:
    async def read_short() -> None:
        source = await open_oci(ImageReference("oci", f"{env.layout}:v1"), PullOptions())
        try:
            config = env.single.config_digest
            async for _ in source.get_blob(config, len(env.single.config) - 1):
                pass
        finally:
            await source.close()

    with pytest.raises(InvalidArgument, match="larger than its descriptor"):
        asyncio.run(read_short())
