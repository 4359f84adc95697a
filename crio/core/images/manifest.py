"""Image manifests, manifest lists/indexes and image configs: parsing, validation, platform selection.

Docker schema 2 manifests and manifest lists, OCI manifests and indexes. Schema 1 is refused. Pure
functions on bytes; the digest of a manifest is the sha256 of its exact bytes.
"""

from __future__ import annotations

import hashlib
import json
import platform as platform_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crio.core.errors import InvalidArgument, NotFound
from crio.core.images.reference import validate_digest

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
MAX_CONFIG_SIZE = 4 * 1024 * 1024

DOCKER_V2S2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_V2S1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_V2S1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

IMAGE_MANIFEST_TYPES = (DOCKER_V2S2, OCI_MANIFEST)
LIST_TYPES = (DOCKER_LIST, OCI_INDEX)
SUPPORTED_TYPES = (OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_V2S2)
SCHEMA1_TYPES = (DOCKER_V2S1, DOCKER_V2S1_SIGNED)

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
CONFIG_TYPES = (DOCKER_CONFIG, OCI_CONFIG)

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_NONDIST_LAYER = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_NONDIST_LAYER_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_NONDIST_LAYER_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

GZIP = "gzip"
ZSTD = "zstd"
UNCOMPRESSED = "none"

# Layer media type → (compression, non-distributable).
LAYER_TYPES: Mapping[str, tuple[str, bool]] = {
    DOCKER_LAYER: (UNCOMPRESSED, False),
    DOCKER_LAYER_GZIP: (GZIP, False),
    DOCKER_FOREIGN_LAYER_GZIP: (GZIP, True),
    OCI_LAYER: (UNCOMPRESSED, False),
    OCI_LAYER_GZIP: (GZIP, False),
    OCI_LAYER_ZSTD: (ZSTD, False),
    OCI_NONDIST_LAYER: (UNCOMPRESSED, True),
    OCI_NONDIST_LAYER_GZIP: (GZIP, True),
    OCI_NONDIST_LAYER_ZSTD: (ZSTD, True),
}

# Annotation BuildKit puts on attestation manifests inside an index.
DOCKER_REFERENCE_TYPE = "vnd.docker.reference.type"


def manifest_digest(data: bytes) -> str:
    """The digest of a manifest: sha256 of its exact bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Platform:
    """An OCI platform: ``os``/``architecture`` with an optional ``variant``."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}" + (f"/{self.variant}" if self.variant else "")


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor: what a manifest says about a blob or a child manifest."""

    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    artifact_type: str = ""


@dataclass(frozen=True)
class Layer:
    """A layer descriptor and its compression: ``gzip``, ``zstd`` or ``none``."""

    descriptor: Descriptor
    compression: str

    @property
    def digest(self) -> str:
        """The blob digest (of the layer as stored, i.e. compressed)."""
        return self.descriptor.digest

    @property
    def size(self) -> int:
        """The blob size in bytes."""
        return self.descriptor.size

    @property
    def media_type(self) -> str:
        """The layer's media type."""
        return self.descriptor.media_type


@dataclass(frozen=True)
class ImageManifest:
    """A Docker schema 2 or OCI image manifest."""

    media_type: str
    digest: str
    config: Descriptor
    layers: tuple[Layer, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ManifestList:
    """A Docker manifest list or an OCI image index."""

    media_type: str
    digest: str
    manifests: tuple[Descriptor, ...]
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageConfig:
    """The parts of an image configuration the runtime uses; ``raw`` is the whole JSON object."""

    digest: str
    architecture: str
    os: str
    variant: str
    created: datetime | None
    user: str
    env: tuple[str, ...]
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    working_dir: str
    labels: Mapping[str, str]
    stop_signal: str
    exposed_ports: tuple[str, ...]
    volumes: tuple[str, ...]
    diff_ids: tuple[str, ...]
    raw: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------
# Media types
# --------------------------------------------------------------------------------------------------


def _load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidArgument(f"{what} is not valid JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise InvalidArgument(f"{what} is not a JSON object")
    return obj


def _base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def detect_media_type(data: bytes, content_type: str = "") -> str:
    """Decide a manifest's media type from its ``mediaType`` field, else the declared ``content_type``,
    else its fields (an OCI manifest or index may omit ``mediaType``).

    Raises :class:`InvalidArgument` for schema 1 ("schema 1 manifests are unsupported"), unknown types
    (naming the type), over-size or malformed manifests.
    """
    if len(data) > MAX_MANIFEST_SIZE:
        raise InvalidArgument(f"manifest too large: {len(data)} bytes (limit {MAX_MANIFEST_SIZE})")
    declared = _base_type(content_type)
    if declared in SCHEMA1_TYPES:
        raise InvalidArgument("schema 1 manifests are unsupported")
    obj = _load_json(data, "manifest")
    if obj.get("schemaVersion") == 1:
        raise InvalidArgument("schema 1 manifests are unsupported")
    field_type = obj.get("mediaType")
    if field_type is not None and not isinstance(field_type, str):
        raise InvalidArgument("manifest 'mediaType' is not a string")
    if field_type:
        if field_type in SCHEMA1_TYPES:
            raise InvalidArgument("schema 1 manifests are unsupported")
        if field_type not in SUPPORTED_TYPES:
            raise InvalidArgument(f"unsupported manifest media type {field_type!r}")
        return field_type
    if declared in (OCI_MANIFEST, OCI_INDEX):
        return declared
    if "manifests" in obj:
        return OCI_INDEX
    if "config" in obj and "layers" in obj:
        return OCI_MANIFEST
    if declared and declared not in ("application/json", "text/plain", "application/octet-stream"):
        raise InvalidArgument(f"unsupported manifest media type {declared!r}")
    raise InvalidArgument("unrecognised manifest: no mediaType and neither 'manifests' nor 'layers'")


# --------------------------------------------------------------------------------------------------
# Descriptors and manifests
# --------------------------------------------------------------------------------------------------


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{what} must be an object of strings")
    return dict(value)


def _str_list(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{what} must be a list of strings")
    return tuple(value)


def _platform(value: Any, what: str) -> Platform | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what}: platform must be an object")
    fields = {k: value.get(k, "") for k in ("os", "architecture", "variant", "os.version")}
    if not all(isinstance(v, str) for v in fields.values()):
        raise InvalidArgument(f"{what}: platform fields must be strings")
    return Platform(
        fields["os"],
        fields["architecture"],
        fields["variant"],
        fields["os.version"],
        _str_list(value.get("os.features"), f"{what}: os.features"),
    )


def parse_descriptor(value: Any, what: str) -> Descriptor:
    """Validate one descriptor object (mediaType, digest, size ≥ 0, urls, annotations, platform)."""
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be an object")
    media_type = value.get("mediaType", "")
    digest = value.get("digest")
    size = value.get("size")
    if not isinstance(media_type, str):
        raise InvalidArgument(f"{what}: mediaType must be a string")
    if not isinstance(digest, str):
        raise InvalidArgument(f"{what}: missing digest")
    validate_digest(digest, what)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{what}: size must be a non-negative integer")
    artifact_type = value.get("artifactType", "")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        urls=_str_list(value.get("urls"), f"{what}: urls"),
        annotations=_str_map(value.get("annotations"), f"{what}: annotations"),
        platform=_platform(value.get("platform"), what),
        artifact_type=artifact_type if isinstance(artifact_type, str) else "",
    )


def _layer(value: Any, index: int) -> Layer:
    what = f"layer #{index}"
    descriptor = parse_descriptor(value, what)
    kind = LAYER_TYPES.get(descriptor.media_type)
    if kind is None:
        raise InvalidArgument(
            f"{what} ({descriptor.digest}): unsupported layer media type {descriptor.media_type!r}"
        )
    compression, foreign = kind
    if foreign and descriptor.urls:
        raise InvalidArgument(
            f"{what} ({descriptor.digest}): non-distributable layers fetched from external URLs are "
            f"unsupported ({descriptor.media_type})"
        )
    return Layer(descriptor, compression)


def parse_manifest(data: bytes, content_type: str = "") -> ImageManifest | ManifestList:
    """Parse a manifest or a list/index (media type as :func:`detect_media_type` decides it)."""
    media_type = detect_media_type(data, content_type)
    obj = _load_json(data, "manifest")
    if obj.get("schemaVersion") != 2:
        raise InvalidArgument(f"{media_type}: schemaVersion must be 2, not {obj.get('schemaVersion')!r}")
    digest = manifest_digest(data)
    annotations = _str_map(obj.get("annotations"), "manifest annotations")
    if media_type in LIST_TYPES and ("layers" in obj or "config" in obj):
        raise InvalidArgument(f"{media_type}: an index must not have 'config' or 'layers'")
    if media_type in IMAGE_MANIFEST_TYPES and "manifests" in obj:
        raise InvalidArgument(f"{media_type}: an image manifest must not have 'manifests'")
    if media_type in LIST_TYPES:
        entries = obj.get("manifests")
        if not isinstance(entries, list):
            raise InvalidArgument(f"{media_type}: 'manifests' must be a list")
        manifests = tuple(parse_descriptor(m, f"manifest entry #{i}") for i, m in enumerate(entries))
        return ManifestList(media_type, digest, manifests, annotations)
    config = parse_descriptor(obj.get("config"), "config")
    layers_raw = obj.get("layers")
    if not isinstance(layers_raw, list):
        raise InvalidArgument(f"{media_type}: 'layers' must be a list")
    layers = tuple(_layer(layer, i) for i, layer in enumerate(layers_raw))
    if config.media_type not in CONFIG_TYPES:
        raise InvalidArgument(f"not a container image: unsupported config media type {config.media_type!r}")
    return ImageManifest(media_type, digest, config, layers, annotations)


# --------------------------------------------------------------------------------------------------
# Platforms
# --------------------------------------------------------------------------------------------------

# platform.machine() → (GOARCH, variant).
_MACHINES: Mapping[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv8l": ("arm", "v7"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "armv5l": ("arm", "v5"),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "ppc64": ("ppc64", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""),
    "loongarch64": ("loong64", ""),
}

# Acceptable image variants for a host variant, best first ("" means the entry names none).
_VARIANTS: Mapping[tuple[str, str], tuple[str, ...]] = {
    ("amd64", ""): ("", "v1"),
    ("arm64", "v8"): ("v8", ""),
    ("arm", "v7"): ("v7", "v6", "v5", ""),
    ("arm", "v6"): ("v6", "v5", ""),
    ("arm", "v5"): ("v5", ""),
}


def host_platform(machine: str | None = None) -> Platform:
    """The platform of this host (``linux/amd64`` on x86_64), from ``platform.machine()``."""
    machine = machine if machine is not None else platform_module.machine()
    arch, variant = _MACHINES.get(machine.lower(), (machine.lower(), ""))
    return Platform("linux", arch, variant)


def _is_attestation(entry: Descriptor) -> bool:
    plat = entry.platform
    if plat is not None and plat.os == "unknown" and plat.architecture == "unknown":
        return True
    return entry.annotations.get(DOCKER_REFERENCE_TYPE) == "attestation-manifest"


def select_platform(index: ManifestList, wanted: Platform | None = None) -> Descriptor:
    """Pick the image manifest of ``wanted`` (the host platform by default) from a list or index.

    Same os and architecture are required; an exact variant wins, then compatible variants in order
    of preference, then an entry without a variant; ties go to the first entry. Attestation manifests
    (``unknown/unknown``) and nested indexes are skipped. Raises :class:`NotFound` naming the platforms
    the index offers.
    """
    wanted = wanted or host_platform()
    variants = _VARIANTS.get((wanted.architecture, wanted.variant), (wanted.variant, ""))
    best: Descriptor | None = None
    best_rank = len(variants)
    offered: list[str] = []
    for entry in index.manifests:
        if entry.platform is None or _is_attestation(entry):
            continue
        if entry.media_type and entry.media_type not in IMAGE_MANIFEST_TYPES:
            continue
        offered.append(str(entry.platform))
        if (entry.platform.os, entry.platform.architecture) != (wanted.os, wanted.architecture):
            continue
        variant = entry.platform.variant
        rank = variants.index(variant) if variant in variants else len(variants)
        if rank < best_rank:
            best, best_rank = entry, rank
    if best is None:
        raise NotFound(
            f"no image for platform {wanted} in manifest list {index.digest} "
            f"(it has: {', '.join(offered) or 'none'})"
        )
    return best


# --------------------------------------------------------------------------------------------------
# Image configuration
# --------------------------------------------------------------------------------------------------


def _opt_list(value: Any, what: str) -> tuple[str, ...] | None:
    return None if value is None else _str_list(value, what)


def _str_field(obj: Mapping[str, Any], key: str, what: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"image config: {what} must be a string")
    return value


def _key_set(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InvalidArgument(f"image config: {what} must be an object")
    return tuple(sorted(value))


def _created(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidArgument("image config: created must be a string")
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"image config: created {value!r} is not an RFC 3339 time") from None


def parse_config(data: bytes, layer_count: int | None = None) -> ImageConfig:
    """Parse an OCI/Docker image configuration and check ``rootfs`` (``layers`` with one valid diff_id per
    layer when ``layer_count`` is given). Raises :class:`InvalidArgument`."""
    if len(data) > MAX_CONFIG_SIZE:
        raise InvalidArgument(f"image config too large: {len(data)} bytes (limit {MAX_CONFIG_SIZE})")
    obj = _load_json(data, "image config")
    inner = obj.get("config")
    inner = {} if inner is None else inner
    if not isinstance(inner, dict):
        raise InvalidArgument("image config: 'config' must be an object")
    rootfs = obj.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidArgument("image config: rootfs.type must be 'layers'")
    diff_ids = _str_list(rootfs.get("diff_ids"), "image config: rootfs.diff_ids")
    for i, diff_id in enumerate(diff_ids):
        validate_digest(diff_id, f"image config: rootfs.diff_ids[{i}]")
    if layer_count is not None and len(diff_ids) != layer_count:
        raise InvalidArgument(
            f"image config has {len(diff_ids)} diff_ids but the manifest has {layer_count} layers"
        )
    return ImageConfig(
        digest=manifest_digest(data),
        architecture=_str_field(obj, "architecture", "architecture"),
        os=_str_field(obj, "os", "os"),
        variant=_str_field(obj, "variant", "variant"),
        created=_created(obj.get("created")),
        user=_str_field(inner, "User", "config.User"),
        env=_str_list(inner.get("Env"), "image config: config.Env"),
        entrypoint=_opt_list(inner.get("Entrypoint"), "image config: config.Entrypoint"),
        cmd=_opt_list(inner.get("Cmd"), "image config: config.Cmd"),
        working_dir=_str_field(inner, "WorkingDir", "config.WorkingDir"),
        labels=_str_map(inner.get("Labels"), "image config: config.Labels"),
        stop_signal=_str_field(inner, "StopSignal", "config.StopSignal"),
        exposed_ports=_key_set(inner.get("ExposedPorts"), "config.ExposedPorts"),
        volumes=_key_set(inner.get("Volumes"), "config.Volumes"),
        diff_ids=diff_ids,
        raw=obj,
    )


def child_digests(index: ManifestList) -> Sequence[str]:
    """Digests of all the manifests an index or list names, in order."""
    return [m.digest for m in index.manifests]
