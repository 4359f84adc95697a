"""Fuzz the manifest, index and image-config parsers (crio.core.images.manifest): only InvalidArgument (and
NotFound from platform selection) may come out."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crio.core.errors import InvalidArgument, NotFound
from crio.core.images import manifest as m
from tests.fuzz import seeds
from tests.fuzz.harness import counted, json_values, mutated_bytes, mutated_json, only

CONTENT_TYPES = st.sampled_from(
    ["", *m.SUPPORTED_TYPES, *m.SCHEMA1_TYPES, "application/json; charset=x", "a/b"]
)
manifest_docs = st.one_of(*(mutated_json(seed) for seed in seeds.MANIFESTS))


def _dump(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def _parse_and_select(data: bytes, content_type: str) -> None:
    parsed = m.parse_manifest(data, content_type)
    if isinstance(parsed, m.ManifestList):
        for machine in ("x86_64", "armv7l", "aarch64", "s390x"):
            try:
                m.select_platform(parsed, m.host_platform(machine))
            except NotFound as exc:
                assert str(exc)
        m.child_digests(parsed)


@given(doc=manifest_docs, content_type=CONTENT_TYPES)
@counted
def test_mutated_manifests(doc: Any, content_type: str) -> None:
    """Seed manifests and indexes with subtrees replaced, retyped or removed."""
    with only(InvalidArgument):
        _parse_and_select(_dump(doc), content_type)


@given(
    data=st.one_of(*(mutated_bytes(seeds.encoded(seed)) for seed in seeds.MANIFESTS)),
    content_type=CONTENT_TYPES,
)
@counted
def test_manifest_bytes(data: bytes, content_type: str) -> None:
    """Seed manifests with bytes flipped, inserted, deleted or cut (broken JSON, bad UTF-8)."""
    with only(InvalidArgument):
        _parse_and_select(data, content_type)


@given(doc=json_values, content_type=CONTENT_TYPES)
@counted
def test_arbitrary_json_manifest(doc: Any, content_type: str) -> None:
    """Any JSON value at all."""
    with only(InvalidArgument):
        _parse_and_select(_dump(doc), content_type)


@given(
    data=st.one_of(
        mutated_json(seeds.IMAGE_CONFIG).map(_dump), mutated_bytes(seeds.encoded(seeds.IMAGE_CONFIG))
    ),
    layers=st.none() | st.integers(min_value=0, max_value=3),
)
@counted
def test_image_configs(data: bytes, layers: int | None) -> None:
    """Image configs: broken fields, broken bytes, diff_ids that do not match the layer count."""
    with only(InvalidArgument):
        m.parse_config(data, layers)
