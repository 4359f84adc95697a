"""Manifest, index and image-config parsing; platform selection."""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import UTC, datetime
from typing import Any

import pytest

from crio.core.errors import InvalidArgument, NotFound
from crio.core.images import manifest as m


def digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def desc(media_type: str, seed: str = "x", size: int = 10, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest(seed), "size": size, **extra}


def image(
    media_type: str | None = m.OCI_MANIFEST,
    layers: list[dict[str, Any]] | None = None,
    config_type: str = m.OCI_CONFIG,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"schemaVersion": 2}
    if media_type is not None:
        body["mediaType"] = media_type
    body["config"] = desc(config_type, "config")
    body["layers"] = layers if layers is not None else [desc(m.OCI_LAYER_GZIP, "l1", 100)]
    body.update(extra)
    return body


def entry(
    os_: str, arch: str, variant: str = "", seed: str = "", media_type: str = m.OCI_MANIFEST, **extra: Any
) -> dict[str, Any]:
    platform: dict[str, Any] = {"os": os_, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return desc(media_type, seed or f"{os_}/{arch}/{variant}", 500, platform=platform, **extra)


def index(entries: list[dict[str, Any]], media_type: str | None = m.OCI_INDEX) -> dict[str, Any]:
    body: dict[str, Any] = {"schemaVersion": 2, "manifests": entries}
    if media_type is not None:
        body["mediaType"] = media_type
    return body


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# ------------------------------------------------------------------------------------------ media types


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (image(m.OCI_MANIFEST), "", m.OCI_MANIFEST),
        (image(m.DOCKER_V2S2, config_type=m.DOCKER_CONFIG), m.DOCKER_V2S2, m.DOCKER_V2S2),
        (index([], m.DOCKER_LIST), "", m.DOCKER_LIST),
        (index([], m.OCI_INDEX), "application/json", m.OCI_INDEX),
        (image(None), "", m.OCI_MANIFEST),  # OCI JSON without mediaType: by its fields
        (image(None), "application/octet-stream", m.OCI_MANIFEST),
        (index([], None), "", m.OCI_INDEX),
        (index([], None), m.OCI_INDEX + "; charset=utf-8", m.OCI_INDEX),
        (image(None), m.OCI_MANIFEST, m.OCI_MANIFEST),
        (image(m.OCI_MANIFEST), "text/plain", m.OCI_MANIFEST),
    ],
)
def test_detect_media_type(body: dict[str, Any], content_type: str, expected: str) -> None:
    assert m.detect_media_type(raw(body), content_type) == expected


@pytest.mark.parametrize(
    ("data", "content_type", "error"),
    [
        (raw({"schemaVersion": 1, "name": "x", "fsLayers": []}), "", "schema 1 manifests are unsupported"),
        (raw({"schemaVersion": 1}), m.DOCKER_V2S1_SIGNED, "schema 1 manifests are unsupported"),
        (b"garbage", m.DOCKER_V2S1, "schema 1 manifests are unsupported"),
        (raw({"schemaVersion": 2, "mediaType": m.DOCKER_V2S1}), "", "schema 1 manifests are unsupported"),
        (
            raw({"schemaVersion": 2, "mediaType": "application/vnd.example+json"}),
            "",
            "unsupported manifest media type 'application/vnd.example\\+json'",
        ),
        (raw({"schemaVersion": 2}), "application/vnd.foo.bar", "unsupported manifest media type"),
        (raw({"schemaVersion": 2}), "", "unrecognised manifest"),
        (raw({"schemaVersion": 2, "mediaType": 3}), "", "not a string"),
        (b"{not json", "", "not valid JSON"),
        (b"[]", "", "not a JSON object"),
        (b"\xff\xfe", "", "not valid JSON"),
        (b" " * (m.MAX_MANIFEST_SIZE + 1), "", "manifest too large"),
    ],
)
def test_detect_media_type_errors(data: bytes, content_type: str, error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        m.detect_media_type(data, content_type)


# ------------------------------------------------------------------------------------------ manifests


@pytest.mark.parametrize(
    ("layer_type", "compression"),
    [
        (m.OCI_LAYER, "none"),
        (m.OCI_LAYER_GZIP, "gzip"),
        (m.OCI_LAYER_ZSTD, "zstd"),
        (m.DOCKER_LAYER_GZIP, "gzip"),
        (m.DOCKER_LAYER, "none"),
        (m.OCI_NONDIST_LAYER_GZIP, "gzip"),  # non-distributable without URLs: fetched from the registry
        (m.DOCKER_FOREIGN_LAYER_GZIP, "gzip"),
    ],
)
def test_layer_compression(layer_type: str, compression: str) -> None:
    data = raw(image(layers=[desc(layer_type, "l", 5)]))
    parsed = m.parse_manifest(data)
    assert isinstance(parsed, m.ImageManifest)
    assert parsed.layers[0].compression == compression
    assert parsed.layers[0].media_type == layer_type
    assert (parsed.layers[0].digest, parsed.layers[0].size) == (digest("l"), 5)


def test_parse_docker_manifest() -> None:
    body = image(
        m.DOCKER_V2S2,
        layers=[desc(m.DOCKER_LAYER_GZIP, "a", 1), desc(m.DOCKER_LAYER_GZIP, "b", 2)],
        config_type=m.DOCKER_CONFIG,
    )
    data = json.dumps(body, indent=3).encode()
    parsed = m.parse_manifest(data, m.DOCKER_V2S2)
    assert isinstance(parsed, m.ImageManifest)
    assert parsed.media_type == m.DOCKER_V2S2
    assert parsed.digest == "sha256:" + hashlib.sha256(data).hexdigest()  # exact bytes, not re-serialized
    assert parsed.config == m.Descriptor(m.DOCKER_CONFIG, digest("config"), 10)
    assert [layer.digest for layer in parsed.layers] == [digest("a"), digest("b")]


def test_parse_oci_manifest_details() -> None:
    body = image(
        layers=[desc(m.OCI_LAYER, "a", 1, urls=["https://x"], annotations={"k": "v"})],
        annotations={"org.opencontainers.image.created": "now"},
    )
    parsed = m.parse_manifest(raw(body))
    assert isinstance(parsed, m.ImageManifest)
    assert parsed.annotations == {"org.opencontainers.image.created": "now"}
    assert parsed.layers[0].descriptor.urls == ("https://x",)
    assert parsed.layers[0].descriptor.annotations == {"k": "v"}


def test_parse_index() -> None:
    body = index([entry("linux", "amd64"), entry("linux", "arm", "v7", annotations={"a": "b"})])
    parsed = m.parse_manifest(raw(body))
    assert isinstance(parsed, m.ManifestList)
    assert parsed.manifests[1].platform == m.Platform("linux", "arm", "v7")
    assert parsed.manifests[1].annotations == {"a": "b"}
    assert m.child_digests(parsed) == [digest("linux/amd64/"), digest("linux/arm/v7")]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (image(layers=[desc("application/vnd.foo.layer", "a")]), "unsupported layer media type"),
        (image(layers=[desc(m.OCI_LAYER_GZIP + "+encrypted", "a")]), "unsupported layer media type"),
        (image(layers=[desc(m.DOCKER_FOREIGN_LAYER_GZIP, "a", urls=["https://mcr/x"])]), "non-distributable"),
        (image(layers=[desc(m.OCI_NONDIST_LAYER, "a", urls=["https://x"])]), "non-distributable"),
        (image(config_type="application/vnd.oci.empty.v1+json"), "not a container image"),
        (image(config_type="application/vnd.cncf.helm.config.v1+json"), "unsupported config media type"),
        (image(layers=[{"mediaType": m.OCI_LAYER, "size": 1}]), "missing digest"),
        (image(layers=[{"mediaType": m.OCI_LAYER, "digest": "sha256:12", "size": 1}]), "invalid digest"),
        (image(layers=[{"mediaType": m.OCI_LAYER, "digest": digest("a"), "size": -1}]), "non-negative"),
        (image(layers=[{"mediaType": m.OCI_LAYER, "digest": digest("a"), "size": True}]), "non-negative"),
        (image(layers=[{"mediaType": m.OCI_LAYER, "digest": digest("a"), "size": "1"}]), "non-negative"),
        (image(layers=[{"mediaType": 1, "digest": digest("a"), "size": 1}]), "mediaType must be a string"),
        (image(layers=[desc(m.OCI_LAYER, "a", urls="https://x")]), "urls must be a list"),
        (image(layers=[desc(m.OCI_LAYER, "a", annotations={"k": 1})]), "annotations must be an object"),
        ({**image(), "layers": "x"}, "'layers' must be a list"),
        ({**image(), "layers": ["x"]}, "layer #0 must be an object"),
        ({**image(), "config": None}, "config must be an object"),
        ({**image(), "schemaVersion": 3}, "schemaVersion must be 2"),
        ({**image(), "manifests": []}, "must not have 'manifests'"),
        ({**index([]), "layers": []}, "must not have 'config' or 'layers'"),
        (index("x"), "'manifests' must be a list"),  # type: ignore[arg-type]
        (
            index([{"mediaType": m.OCI_MANIFEST, "digest": digest("a"), "size": 1, "platform": "linux"}]),
            "platform must be an object",
        ),
        (
            index(
                [
                    {
                        "mediaType": m.OCI_MANIFEST,
                        "digest": digest("a"),
                        "size": 1,
                        "platform": {"os": "linux", "architecture": 5},
                    }
                ]
            ),
            "platform fields must be strings",
        ),
    ],
)
def test_parse_manifest_errors(body: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        m.parse_manifest(raw(body))


def test_manifest_digest_is_of_exact_bytes() -> None:
    a = raw(image())
    b = json.dumps(image(), indent=2).encode()
    assert m.manifest_digest(a) != m.manifest_digest(b)
    assert m.manifest_digest(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# ------------------------------------------------------------------------------------------ platforms


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("x86_64", m.Platform("linux", "amd64")),
        ("AMD64", m.Platform("linux", "amd64")),
        ("aarch64", m.Platform("linux", "arm64", "v8")),
        ("armv7l", m.Platform("linux", "arm", "v7")),
        ("armv6l", m.Platform("linux", "arm", "v6")),
        ("i686", m.Platform("linux", "386")),
        ("ppc64le", m.Platform("linux", "ppc64le")),
        ("s390x", m.Platform("linux", "s390x")),
        ("riscv64", m.Platform("linux", "riscv64")),
        ("weird9000", m.Platform("linux", "weird9000")),
    ],
)
def test_host_platform(machine: str, expected: m.Platform) -> None:
    assert m.host_platform(machine) == expected


AMD64 = m.Platform("linux", "amd64")
ARM64 = m.Platform("linux", "arm64", "v8")
ARMV7 = m.Platform("linux", "arm", "v7")
ARMV6 = m.Platform("linux", "arm", "v6")

ATTESTATION = entry(
    "unknown", "unknown", seed="att", annotations={"vnd.docker.reference.type": "attestation-manifest"}
)


@pytest.mark.parametrize(
    ("entries", "wanted", "chosen_seed"),
    [
        ([entry("linux", "arm64", "v8"), entry("linux", "amd64")], AMD64, "linux/amd64/"),
        ([ATTESTATION, entry("linux", "amd64")], AMD64, "linux/amd64/"),
        ([entry("linux", "amd64", seed="first"), entry("linux", "amd64", seed="second")], AMD64, "first"),
        ([entry("windows", "amd64"), entry("linux", "amd64")], AMD64, "linux/amd64/"),
        ([entry("linux", "amd64", "v3"), entry("linux", "amd64")], AMD64, "linux/amd64/"),
        ([entry("linux", "amd64", "v1")], AMD64, "linux/amd64/v1"),
        ([entry("linux", "arm64"), entry("linux", "arm64", "v8")], ARM64, "linux/arm64/v8"),
        ([entry("linux", "arm64")], ARM64, "linux/arm64/"),
        ([entry("linux", "arm", "v6"), entry("linux", "arm", "v7")], ARMV7, "linux/arm/v7"),
        ([entry("linux", "arm", "v5"), entry("linux", "arm", "v6")], ARMV7, "linux/arm/v6"),
        ([entry("linux", "arm"), entry("linux", "arm", "v5")], ARMV7, "linux/arm/v5"),
        ([entry("linux", "arm", "v7"), entry("linux", "arm", "v6")], ARMV6, "linux/arm/v6"),
        (
            [entry("linux", "amd64", seed="nested", media_type=m.OCI_INDEX), entry("linux", "amd64")],
            AMD64,
            "linux/amd64/",
        ),
        ([entry("linux", "amd64", media_type=m.DOCKER_V2S2)], AMD64, "linux/amd64/"),
    ],
)
def test_select_platform(entries: list[dict[str, Any]], wanted: m.Platform, chosen_seed: str) -> None:
    parsed = m.parse_manifest(raw(index(entries)))
    assert isinstance(parsed, m.ManifestList)
    assert m.select_platform(parsed, wanted).digest == digest(chosen_seed)


def test_select_platform_defaults_to_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    parsed = m.parse_manifest(raw(index([entry("linux", "amd64"), entry("linux", "arm64", "v8")])))
    assert isinstance(parsed, m.ManifestList)
    assert m.select_platform(parsed).digest == digest("linux/arm64/v8")


@pytest.mark.parametrize(
    "entries",
    [
        [],
        [ATTESTATION],
        [entry("linux", "arm64", "v8"), entry("windows", "amd64")],
        [entry("linux", "amd64", "v3")],
        [desc(m.OCI_MANIFEST, "noplatform")],
    ],
)
def test_select_platform_none(entries: list[dict[str, Any]]) -> None:
    parsed = m.parse_manifest(raw(index(entries)))
    assert isinstance(parsed, m.ManifestList)
    with pytest.raises(NotFound, match="no image for platform linux/amd64"):
        m.select_platform(parsed, AMD64)


# ------------------------------------------------------------------------------------------ configs

FULL_CONFIG: dict[str, Any] = {
    "created": "2024-05-06T07:08:09.123456789Z",
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "User": "1000:1000",
        "Env": ["PATH=/usr/bin", "A=b"],
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo hi"],
        "WorkingDir": "/work",
        "Labels": {"l": "v"},
        "StopSignal": "SIGQUIT",
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Volumes": {"/data": {}},
    },
    "rootfs": {"type": "layers", "diff_ids": [digest("d1"), digest("d2")]},
    "history": [{"created_by": "x"}],
}


def test_parse_config_full() -> None:
    data = raw(FULL_CONFIG)
    config = m.parse_config(data, 2)
    assert config.digest == m.manifest_digest(data)
    assert config.created == datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert (config.architecture, config.os, config.variant) == ("amd64", "linux", "")
    assert config.user == "1000:1000"
    assert config.env == ("PATH=/usr/bin", "A=b")
    assert config.entrypoint == ("/bin/sh", "-c")
    assert config.cmd == ("echo hi",)
    assert config.working_dir == "/work"
    assert config.labels == {"l": "v"}
    assert config.stop_signal == "SIGQUIT"
    assert config.exposed_ports == ("53/udp", "80/tcp")
    assert config.volumes == ("/data",)
    assert config.diff_ids == (digest("d1"), digest("d2"))
    assert config.raw["history"] == [{"created_by": "x"}]


def test_parse_config_minimal_and_nulls() -> None:
    body = {
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Env": None, "Entrypoint": None, "Cmd": None, "Labels": None, "User": None},
    }
    config = m.parse_config(raw(body), 0)
    assert config.created is None
    assert (config.user, config.env, config.entrypoint, config.cmd, config.labels) == ("", (), None, None, {})
    assert m.parse_config(raw({"rootfs": {"type": "layers"}})).diff_ids == ()


@pytest.mark.parametrize(
    ("body", "layers", "error"),
    [
        (FULL_CONFIG, 3, "2 diff_ids but the manifest has 3 layers"),
        (FULL_CONFIG, 1, "2 diff_ids but the manifest has 1 layers"),
        ({**FULL_CONFIG, "rootfs": {"type": "foo", "diff_ids": []}}, None, "rootfs.type must be 'layers'"),
        ({**FULL_CONFIG, "rootfs": None}, None, "rootfs.type must be 'layers'"),
        ({**FULL_CONFIG, "rootfs": {"type": "layers", "diff_ids": ["sha256:zz"]}}, None, "diff_ids\\[0\\]"),
        ({**FULL_CONFIG, "rootfs": {"type": "layers", "diff_ids": "x"}}, None, "diff_ids must be a list"),
        ({**FULL_CONFIG, "created": "yesterday"}, None, "not an RFC 3339 time"),
        ({**FULL_CONFIG, "created": 5}, None, "created must be a string"),
        ({**FULL_CONFIG, "config": []}, None, "'config' must be an object"),
        ({**FULL_CONFIG, "config": {"Env": "A=b"}}, None, "config.Env must be a list"),
        ({**FULL_CONFIG, "config": {"Cmd": [1]}}, None, "config.Cmd must be a list of strings"),
        ({**FULL_CONFIG, "config": {"User": 0}}, None, "config.User must be a string"),
        ({**FULL_CONFIG, "config": {"Labels": {"a": 1}}}, None, "config.Labels must be an object"),
        ({**FULL_CONFIG, "config": {"ExposedPorts": ["80"]}}, None, "ExposedPorts must be an object"),
        ({**FULL_CONFIG, "architecture": 1}, None, "architecture must be a string"),
    ],
)
def test_parse_config_errors(body: dict[str, Any], layers: int | None, error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        m.parse_config(raw(body), layers)


def test_parse_config_too_large() -> None:
    with pytest.raises(InvalidArgument, match="too large"):
        m.parse_config(b" " * (m.MAX_CONFIG_SIZE + 1))
