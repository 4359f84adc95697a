"""Docker reference normalization (as github.com/distribution/reference does it) and transport prefixes."""

from __future__ import annotations

import pytest

from crio.core.errors import InvalidArgument
from crio.core.images.reference import (
    DockerReference,
    parse_docker_reference,
    parse_transport_reference,
    split_path_reference,
    validate_digest,
)
from crio.core.types import ImageReference

D256 = "sha256:" + "a" * 64
D512 = "sha512:" + "b" * 128


@pytest.mark.parametrize(
    ("text", "normalized", "familiar"),
    [
        ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
        ("index.docker.io/user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
        ("user/app", "docker.io/user/app:latest", "user/app:latest"),
        ("docker.io/library/a/b", "docker.io/library/a/b:latest", "library/a/b:latest"),
        ("registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"),
        ("localhost/app", "localhost/app:latest", "localhost/app:latest"),
        ("localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app:1"),
        (f"host:5000/a/b@{D256}", f"host:5000/a/b@{D256}", f"host:5000/a/b@{D256}"),
        (f"busybox:1.36@{D256}", f"docker.io/library/busybox:1.36@{D256}", f"busybox:1.36@{D256}"),
        (f"busybox@{D512}", f"docker.io/library/busybox@{D512}", f"busybox@{D512}"),
        ("Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
        (
            "127.0.0.1:5000/x_y.z--w:T_a.g-1",
            "127.0.0.1:5000/x_y.z--w:T_a.g-1",
            "127.0.0.1:5000/x_y.z--w:T_a.g-1",
        ),
        ("[::1]:5000/app:1", "[::1]:5000/app:1", "[::1]:5000/app:1"),
        ("a__b/c", "docker.io/a__b/c:latest", "a__b/c:latest"),
        (
            "gcr.io/k8s-staging-cri-tools/test-image-1:latest",
            "gcr.io/k8s-staging-cri-tools/test-image-1:latest",
            "gcr.io/k8s-staging-cri-tools/test-image-1:latest",
        ),
        ("x" * 30 + ":" + "t" * 128, f"docker.io/library/{'x' * 30}:{'t' * 128}", f"{'x' * 30}:{'t' * 128}"),
    ],
)
def test_normalize(text: str, normalized: str, familiar: str) -> None:
    ref = parse_docker_reference(text)
    assert str(ref) == normalized
    assert ref.familiar == familiar
    assert str(parse_docker_reference(normalized)) == normalized  # idempotent


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "empty image name"),
        ("Busybox", "must be lowercase"),
        ("docker.io/Library/busybox", "must be lowercase"),
        ("host:5000/App", "must be lowercase"),
        ("busybox:", "invalid tag"),
        ("busybox:-tag", "invalid tag"),
        ("busybox:" + "t" * 129, "invalid tag"),
        ("busybox:a/b", "invalid registry domain"),
        ("busybox@sha256:abc", "invalid digest format"),
        ("busybox@md5:" + "a" * 32, "unsupported digest algorithm"),
        ("busybox@sha256:" + "A" * 64, "lowercase hex"),
        ("busybox@sha256:" + "a" * 63 + "g", "invalid digest format"),
        ("busybox@sha256:" + "a" * 65, "need 64"),
        ("busybox@sha512:" + "a" * 64, "need 128"),
        ("a" * 64, "64-byte hexadecimal"),
        ("a//b", "invalid repository name"),
        ("a/b/", "invalid repository name"),
        ("-a/b", "invalid repository name"),
        ("a..b", "invalid repository name"),
        ("a-/b", "invalid repository name"),
        ("host_name.com/x", "invalid registry domain"),
        ("-host.com/x", "invalid registry domain"),
        ("host.com:port/x", "invalid registry domain"),
        (":tag", "empty repository name"),
        ("@" + D256, "empty repository name"),
        ("a b", "invalid repository name"),
        ("docker.io/" + "a/" * 130 + "b", "longer than 255"),
    ],
)
def test_reject(text: str, error: str) -> None:
    with pytest.raises(InvalidArgument, match=error) as info:
        parse_docker_reference(text)
    assert repr(text) in str(info.value)  # the error names the reference


def test_accessors() -> None:
    ref = parse_docker_reference(f"registry.k8s.io/e2e/busybox:1.29@{D256}")
    assert ref == DockerReference("registry.k8s.io", "e2e/busybox", "1.29", D256)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("registry.k8s.io", "e2e/busybox", "1.29", D256)
    assert ref.name == "registry.k8s.io/e2e/busybox"
    assert ref.familiar_name == "registry.k8s.io/e2e/busybox"
    assert ref.remote == D256  # the digest wins when pulling
    assert parse_docker_reference("busybox").remote == "latest"
    assert parse_docker_reference("busybox", default_tag=False).tag is None
    moved = ref.with_domain_path("127.0.0.1:5000", "busybox")
    assert str(moved) == f"127.0.0.1:5000/busybox:1.29@{D256}"


@pytest.mark.parametrize("digest", [D256, D512])
def test_validate_digest_ok(digest: str) -> None:
    assert validate_digest(digest) == digest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("busybox", ImageReference("docker", "docker.io/library/busybox:latest")),
        ("docker://busybox:1", ImageReference("docker", "docker.io/library/busybox:1")),
        ("docker://quay.io/a/b@" + D256, ImageReference("docker", "quay.io/a/b@" + D256)),
        ("oci:/srv/layout", ImageReference("oci", "/srv/layout")),
        ("oci:/srv/layout:v1.0", ImageReference("oci", "/srv/layout:v1.0")),
        ("oci:/srv/layout:example.com/app:1", ImageReference("oci", "/srv/layout:example.com/app:1")),
        ("oci-archive:/tmp/x.tar", ImageReference("oci-archive", "/tmp/x.tar")),
        ("oci-archive:/tmp/x.tar:latest", ImageReference("oci-archive", "/tmp/x.tar:latest")),
        ("docker-archive:/tmp/x.tar", ImageReference("docker-archive", "/tmp/x.tar")),
        (
            "docker-archive:/tmp/x.tar:app:1",
            ImageReference("docker-archive", "/tmp/x.tar:docker.io/library/app:1"),
        ),
        ("docker-archive:/tmp/x.tar:@1", ImageReference("docker-archive", "/tmp/x.tar:@1")),
        # A valid tag after a transport-like name is a docker image of that name.
        ("oci:1.0", ImageReference("docker", "docker.io/library/oci:1.0")),
        ("docker-archive:latest", ImageReference("docker", "docker.io/library/docker-archive:latest")),
    ],
)
def test_transport_references(text: str, expected: ImageReference) -> None:
    assert parse_transport_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("docker://Busybox", "must be lowercase"),
        ("oci:relative/dir", "needs an absolute path"),
        ("oci-archive:x.tar:tag", "needs an absolute path"),
        ("oci:/dir:bad name", "invalid image name"),
        ("docker-archive:/x.tar:App:1", "must be lowercase"),
        ("docker-archive:/x.tar:app@" + D256, "take no digest"),
        ("docker-archive:/x.tar:@x", "image index"),
        ("http://example.com/x", "invalid"),
    ],
)
def test_transport_reject(text: str, error: str) -> None:
    with pytest.raises(InvalidArgument, match=error):
        parse_transport_reference(text)


def test_split_path_reference() -> None:
    assert split_path_reference("/a/b:tag:x") == ("/a/b", "tag:x")
    assert split_path_reference("/a/b") == ("/a/b", "")
