"""containers-registries.d: parsing, merging, scope precedence, lookaside URL layout and error lines."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from crio.core.errors import InvalidArgument
from crio.core.images.reference import parse_docker_reference
from crio.core.images.trust.registries_d import (
    LookasideConfig,
    load_registries_d,
    lookaside_file,
    lookaside_url,
    parse_registries_d,
)
from crio.core.images.trust.signature import signature_from_blob
from tests import trustkit

HEX = "817a12c32a39bbe394944ba49de563e085f1d3c5266eb8e9723256bc4448680e"
DIGEST = f"sha256:{HEX}"

DEFAULT_YAML = """\
default-docker:
  lookaside: file:///var/lib/containers/sigstore-default
  lookaside-staging: file:///srv/staging
"""
SITE_YAML = """\
docker:
  registry.example.com:
    lookaside: https://sigs.example.com/registry
  registry.example.com/team:
    sigstore: https://sigs.example.com/team-old-name
    use-sigstore-attachments: true
  registry.example.com/team/app:1:
    lookaside: https://sigs.example.com/app-v1
  registry.example.com/team/app:
    use-sigstore-attachments: false
  "*.example.org":
    lookaside: http://sigs.example.org
"""


def write(directory: Path, files: dict[str, str]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return str(directory)


def config(directory: str, reference: str) -> LookasideConfig:
    return load_registries_d(directory).config_for(parse_docker_reference(reference))


def test_scope_precedence_and_per_setting_fallthrough(tmp_path: Path) -> None:
    directory = write(tmp_path / "d", {"00-default.yaml": DEFAULT_YAML, "50-site.yaml": SITE_YAML})
    assert config(directory, "registry.example.com/team/app:1") == LookasideConfig(
        "https://sigs.example.com/app-v1", False, "https://sigs.example.com/app-v1"
    )
    # app:2: the repository entry sets only use-sigstore-attachments; lookaside comes from the namespace,
    # under its old name "sigstore".
    assert config(directory, "registry.example.com/team/app:2") == LookasideConfig(
        "https://sigs.example.com/team-old-name", False, "https://sigs.example.com/team-old-name"
    )
    assert config(directory, "registry.example.com/team/other:1").use_sigstore_attachments is True
    assert (
        config(directory, "registry.example.com/elsewhere:1").lookaside == "https://sigs.example.com/registry"
    )
    assert config(directory, "a.b.example.org/x:1").lookaside == "http://sigs.example.org"
    assert config(directory, "quay.io/x:1") == LookasideConfig(
        "file:///var/lib/containers/sigstore-default", False, "file:///srv/staging"
    )
    assert config(directory, "registry.example.com:5000/team/app:1").lookaside == (
        "file:///var/lib/containers/sigstore-default"
    )


def test_empty_and_missing_configuration(tmp_path: Path) -> None:
    assert config(str(tmp_path / "absent"), "quay.io/x:1") == LookasideConfig(None, False, None)
    directory = write(tmp_path / "d", {"empty.yaml": "", "comment.yaml": "# nothing\n", "ignored.yml": "{"})
    assert config(directory, "quay.io/x:1") == LookasideConfig(None, False, None)


def test_lookaside_url_layout() -> None:
    busybox = parse_docker_reference("busybox:latest")
    assert lookaside_url("https://example.com/sigstore", busybox, DIGEST, 1) == (
        f"https://example.com/sigstore/library/busybox@sha256={HEX}/signature-1"
    )
    deep = parse_docker_reference(f"example.com/ns1/ns2/ns3/repo@{DIGEST}")
    assert lookaside_url("https://example.com/sigstore", deep, DIGEST, 2) == (
        f"https://example.com/sigstore/ns1/ns2/ns3/repo@sha256={HEX}/signature-2"
    )
    local = lookaside_url("file:///var/lib/containers/sigstore", busybox, DIGEST, 3)
    assert local == f"file:///var/lib/containers/sigstore/library/busybox@sha256={HEX}/signature-3"
    assert lookaside_file(local) == f"/var/lib/containers/sigstore/library/busybox@sha256={HEX}/signature-3"
    with pytest.raises(InvalidArgument, match="numbered from 1"):
        lookaside_url("https://example.com", busybox, DIGEST, 0)
    with pytest.raises(InvalidArgument, match="unsupported scheme"):
        lookaside_url("ftp://example.com", busybox, DIGEST, 1)
    with pytest.raises(InvalidArgument, match="manifest digest"):
        lookaside_url("https://example.com", busybox, "sha256:abc", 1)


def test_write_lookaside_signature_uses_the_layout(tmp_path: Path) -> None:
    ref = parse_docker_reference("127.0.0.1:5000/trust/app:1")
    path = trustkit.write_lookaside_signature(str(tmp_path / "sig store"), ref, DIGEST, 1, b"\xa3\x01data")
    assert path == str(tmp_path / "sig store" / f"trust/app@sha256={HEX}" / "signature-1")
    url = lookaside_url((tmp_path / "sig store").as_uri(), ref, DIGEST, 1)
    with open(lookaside_file(url), "rb") as handle:
        assert signature_from_blob(handle.read()).kind == "simple-signing"


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    directory = write(tmp_path / "d", {"bad.yaml": "docker:\n  quay.io:\n    lookaside: [unclosed\n"})
    with pytest.raises(InvalidArgument) as info:
        load_registries_d(directory)
    message = str(info.value)
    assert message.startswith(f"{directory}/bad.yaml:4:1: invalid YAML: "), message


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("docker:\n  quay.io:\n    lookaside: 7\n", "4:16", "docker.quay.io.lookaside: must be a URL string"),
        (
            "docker:\n  quay.io:\n    use-sigstore-attachments: 'yes'\n",
            "4:31",
            "docker.quay.io.use-sigstore-attachments: must be true or false",
        ),
        ("docker:\n  quay.io:\n    lookaside: ftp://x\n", "4:16", "unsupported scheme"),
        ("docker:\n  Quay.io/Bad:\n    lookaside: https://x\n", "3:3", "invalid scope 'Quay.io/Bad'"),
        ("docker: [1, 2]\n", "2:9", "docker: must be a mapping of scopes"),
        ("- a\n", "2:1", "top level: must be a mapping"),
    ],
)
def test_semantic_errors_name_file_and_line(tmp_path: Path, text: str, where: str, problem: str) -> None:
    directory = write(tmp_path / "d", {"x.yaml": "# registries.d test\n" + text})
    with pytest.raises(InvalidArgument) as info:
        load_registries_d(directory)
    message = str(info.value)
    assert message.startswith(f"{directory}/x.yaml:{where}: "), message
    assert problem in message, message


def test_scope_defined_twice_across_files(tmp_path: Path) -> None:
    first = "docker:\n  quay.io:\n    lookaside: https://a\n"
    second = "# second\ndocker:\n  quay.io:\n    lookaside: https://b\n"
    with pytest.raises(InvalidArgument) as info:
        parse_registries_d({"/d/a.yaml": first, "/d/b.yaml": second}, "/d")
    assert str(info.value) == "/d/b.yaml:3:3: docker.quay.io: scope 'quay.io' is also defined in /d/a.yaml"
    with pytest.raises(InvalidArgument, match=r"default-docker: also defined in /d/a\.yaml"):
        parse_registries_d({"/d/a.yaml": DEFAULT_YAML, "/d/b.yaml": DEFAULT_YAML}, "/d")


def test_load_is_cached_by_the_file_list_and_mtimes(tmp_path: Path) -> None:
    directory = write(tmp_path / "d", {"a.yaml": DEFAULT_YAML})
    first = load_registries_d(directory)
    assert load_registries_d(directory) is first
    write(tmp_path / "d", {"b.yaml": SITE_YAML})
    second = load_registries_d(directory)
    assert second is not first and "registry.example.com" in second.docker
    (tmp_path / "d" / "b.yaml").write_text("docker:\n  quay.io:\n    lookaside: https://q\n")
    os.utime(tmp_path / "d" / "b.yaml", ns=(1, 1))
    assert config(directory, "quay.io/x:1").lookaside == "https://q"
