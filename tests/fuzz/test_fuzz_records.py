"""Fuzz the CRI record converter (``Record.from_dict`` on any JSON) and what a request's records go through
next: the pod validators (metadata, hostname, sysctls, ports, user namespaces), the annotation filter and
the container spec builder. Only RecordError, then InvalidArgument, may come out."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crio.core import crirecords as cri
from crio.core.errors import InvalidArgument
from crio.core.sandbox import validate
from crio.core.spec import annotations as spec_annotations
from crio.core.spec.container import container_spec
from tests.fuzz import seeds
from tests.fuzz.harness import attempt, counted, json_values, mutated_bytes, mutated_json, only
from tests.unit.test_spec_builders import GROUP, PASSWD, pod_config, spec_input

TESTDATA = Path(__file__).parents[1] / "testdata"
POD: dict[str, Any] = json.loads((TESTDATA / "sandbox_config.json").read_text())
POD["linux"]["sysctls"] = {"net.ipv4.ip_forward": "1", "kernel.sem": "250 32000 32 128", "kernel/shmmax": "1"}
POD["linux"]["security_context"]["namespace_options"] = {
    "network": "POD",
    "userns_options": {"mode": "POD", "uids": [{"host_id": 100000, "length": 65536}], "gids": []},
}
CONTAINER: dict[str, Any] = json.loads((TESTDATA / "container_redis.json").read_text())
# MessageToDict form: bytes fields are base64.
CONTAINER["envs"] = [
    {"key": env["key"], "value": base64.b64encode(env["value"].encode()).decode()}
    for env in CONTAINER["envs"]
]


def _passwd(seed: str) -> st.SearchStrategy[str]:
    return mutated_bytes(seed.encode()).map(lambda data: data.decode("utf-8", "replace"))


@given(doc=mutated_json(POD, max_mutations=4) | json_values)
@counted
def test_pod_sandbox_config(doc: Any) -> None:
    """A PodSandboxConfig from JSON, then every pod validator."""
    config = attempt(lambda: cri.PodSandboxConfig.from_dict(doc), cri.RecordError)
    if config is None:
        return
    with only(InvalidArgument):
        validate.validate_metadata(config)
    with only(InvalidArgument):
        validate.validate_hostname(config)
    for host_network, host_ipc in ((False, False), (True, True)):
        with only(InvalidArgument):
            accepted = validate.validate_sysctls(config.sysctls, host_network, host_ipc)
            assert all(value.isascii() for value in accepted.values()), accepted
    with only(InvalidArgument):
        validate.validate_port_mappings(config.port_mappings)
    with only(InvalidArgument):
        validate.validate_userns(config)


@given(
    sysctls=st.dictionaries(
        st.sampled_from(["net.core.somaxconn", "kernel.sem", "kernel/msgmax", "fs.mqueue.x", "vm.swappiness"])
        | st.text(max_size=12),
        st.sampled_from(["1", "250 32000 32 128", "1\t2", " 1", "a=b", "٣ ٣", "²", "1..2"])
        | st.text(max_size=8),
        max_size=3,
    ),
    host_network=st.booleans(),
    host_ipc=st.booleans(),
)
@counted
def test_sysctls(sysctls: dict[str, str], host_network: bool, host_ipc: bool) -> None:
    """Pod sysctls: refused with InvalidArgument, or accepted as ASCII the kernel can parse."""
    with only(InvalidArgument):
        accepted = validate.validate_sysctls(sysctls, host_network, host_ipc)
        assert all(key.isascii() and value.isascii() for key, value in accepted.items()), accepted


@given(
    keys=st.dictionaries(
        st.sampled_from(["run.oci.hooks", "io.kubernetes.cri-o.Devices", "BUNDLE", "x.crio.io"])
        | st.text(max_size=30),
        st.text(max_size=5),
        max_size=5,
    ),
    allowed=st.lists(
        st.sampled_from(["io.kubernetes.cri-o.", "run.oci.hooks", "", " "]) | st.text(max_size=10)
    ),
)
@counted
def test_annotations(keys: dict[str, str], allowed: list[str]) -> None:
    """The annotation filter never fails and keeps no denied key that ``allowed`` does not let through."""
    kept, dropped = spec_annotations.split_annotations(keys, allowed)
    assert set(kept) | set(dropped) == set(keys)
    assert not any(
        spec_annotations.is_denied(k) and not spec_annotations.is_allowed(k, allowed) for k in kept
    )


@given(
    doc=mutated_json(CONTAINER, max_mutations=4),
    image=mutated_json(seeds.IMAGE_CONFIG),
    passwd=_passwd(PASSWD),
    group=_passwd(GROUP),
)
@counted
def test_container_config_and_spec(doc: Any, image: Any, passwd: str, group: str) -> None:
    """A ContainerConfig from JSON, then the OCI spec built from it with a mangled image config and
    /etc/passwd, /etc/group of the image."""
    config = attempt(lambda: cri.ContainerConfig.from_dict(doc), cri.RecordError)
    if config is None:
        return
    image_config = image if isinstance(image, dict) else {}
    with only(InvalidArgument):
        container_spec(
            spec_input(
                config=config, pod_config=pod_config(), image_config=image_config, passwd=passwd, group=group
            )
        )
