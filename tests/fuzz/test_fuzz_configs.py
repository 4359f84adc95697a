"""Fuzz the image configuration files: registries.conf (and what a pull asks of it: endpoints, short-name
resolution), containers-registries.d and containers-policy.json. Only InvalidArgument (and, when a
configuration is used, PermissionDenied/FailedPrecondition) may come out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomli_w
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st

from crio.core.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from crio.core.images import registries, shortnames
from crio.core.images.reference import parse_docker_reference
from crio.core.images.trust import policy, registries_d
from tests.fuzz import configs
from tests.fuzz.harness import attempt, counted, mutated_bytes, mutated_json, only

TESTDATA_CONF = (Path(__file__).parents[1] / "testdata" / "registries.conf").read_text()
NAMES = ["busybox", "fedora:39", "pause@sha256:" + "c" * 64, "registry.k8s.io/pause:3.9", "blocked.io/a/b"]
NAMES += ["quay.io/crio-test/redis", "a.example.org/x", "docker.io/library/alpine", "localhost/x:1"]


def _toml(doc: Any) -> str:
    try:
        return tomli_w.dumps(doc)
    except (TypeError, ValueError, AttributeError):  # not a TOML document (a list at the top, a None)
        assume(False)
        raise


def _text_mutations(text: str) -> st.SearchStrategy[str]:
    return mutated_bytes(text.encode()).map(lambda data: data.decode("utf-8", "replace"))


registries_text = st.one_of(
    mutated_json(configs.REGISTRIES_CONF).map(_toml),
    mutated_json(configs.REGISTRIES_CONF_V1).map(_toml),
    _text_mutations(tomli_w.dumps(configs.REGISTRIES_CONF)),
    st.builds(open, st.just("tests/testdata/registries.conf"))
    .map(lambda f: f.read())
    .flatmap(_text_mutations),
)


@given(text=registries_text, dropin=st.booleans(), name=st.sampled_from(NAMES))
@counted
def test_registries_conf(text: str, dropin: bool, name: str) -> None:
    """Parse a registries.conf, then ask it what a pull of ``name`` asks."""
    conf = attempt(lambda: registries.parse(text, "/etc/containers/registries.conf", dropin), InvalidArgument)
    if conf is None:
        return
    with only(InvalidArgument, PermissionDenied):
        for endpoint in conf.endpoints(parse_docker_reference(name)):
            str(endpoint.location_ref)
    with only(InvalidArgument, FailedPrecondition):
        shortnames.resolve_short_name(name, conf)
    with only(InvalidArgument):
        shortnames.local_candidates(name, conf)


def _yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True)


registries_d_text = st.one_of(
    mutated_json(configs.REGISTRIES_D).map(_yaml),
    _text_mutations(_yaml(configs.REGISTRIES_D)),
    st.text(alphabet="ab:-[]{}&*!|>'\"#%@ \n\t", max_size=40),
)


@given(text=registries_d_text, name=st.sampled_from(NAMES), index=st.integers(-1, 3))
@counted
def test_registries_d(text: str, name: str, index: int) -> None:
    """Parse a registries.d file, then find the lookaside of ``name`` and a signature URL under it."""
    with only(InvalidArgument):
        merged = registries_d.parse_registries_d({"/etc/containers/registries.d/x.yaml": text})
        ref = parse_docker_reference(name)
        found = merged.config_for(ref)
        for base in (found.lookaside, found.lookaside_staging):
            if base:
                url = registries_d.lookaside_url(base, ref, "sha256:" + "d" * 64, index)
                if url.startswith("file:"):
                    registries_d.lookaside_file(url)


policy_text = st.one_of(
    mutated_json(configs.POLICY, max_mutations=4).map(json.dumps),
    _text_mutations(json.dumps(configs.POLICY, indent=4)),
)


@given(text=policy_text, name=st.sampled_from(NAMES))
@counted
def test_policy(text: str, name: str) -> None:
    """Parse a policy.json, then look up the requirements for ``name``."""
    with only(InvalidArgument):
        parsed = policy.parse_policy(text, "/etc/containers/policy.json")
        ref = parse_docker_reference(name)
        parsed.lookup("docker", str(ref))
        parsed.signature_kinds("docker", str(ref))
        parsed.lookup("oci", "/var/lib/images/x:latest")
        parsed.all_requirements()
