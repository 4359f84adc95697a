"""Security-context pieces of container specs added for issue 7: runtime handler allowed annotations,
generated passwd/group entries, recursive read-only mounts per handler, user namespace requests, and the
runc plugin's feature report."""

from __future__ import annotations

from typing import Any

import pytest

from crio.core.api import api_pb2 as api
from crio.core.crirecords import PodSandboxConfig
from crio.core.errors import InvalidArgument
from crio.core.sandbox.validate import validate_userns
from crio.core.spec import annotations as ann
from crio.core.spec.container import container_spec, dropped_annotations
from crio.core.spec.user import group_with_gid, parse_passwd, passwd_with_user
from crio.plugins.runc.features import runtime_features, runtime_lists_rro
from tests.unit.test_spec_builders import container_config, pod_config, spec_input

UNIFIED = "io.kubernetes.cri-o.UnifiedCgroup"

# (allowed_annotations of the handler, annotation key, kept in the spec)
ALLOWED: list[tuple[list[str], str, bool]] = [
    ([], "org.systemd.property.ExecStopPost", False),  # CVE-2024-3154
    (["org.systemd.property.ExecStopPost"], "org.systemd.property.ExecStopPost", True),
    (["org.systemd.property."], "org.systemd.property.CPUQuota", True),
    (["org.systemd.property."], "run.oci.systemd.subgroup", False),
    ([UNIFIED], UNIFIED, True),
    ([UNIFIED], f"{UNIFIED}.ctr", True),  # the per-container form of an allowed key
    ([UNIFIED], f"{UNIFIED}X", False),  # CVE-2023-6476: a longer key is not the allowed one
    ([UNIFIED], "io.kubernetes.cri-o.Unified", False),
    ([UNIFIED.upper()], UNIFIED, True),
    (["run.oci.keep_original_groups"], "run.oci.keep_original_groups", True),
    (["run.oci.keep_original_groups"], "run.oci.systemd.force_cgroup_v1", False),
    (["  "], "bundle", False),
]


@pytest.mark.parametrize(("allowed", "key", "kept"), ALLOWED)
def test_allowed_annotations(allowed: list[str], key: str, kept: bool) -> None:
    assert ann.is_denied(key)
    config = container_config(annotations={key: "v", "plain": "1"})
    spec_in = spec_input(config=config, allowed_annotations=allowed)
    annotations = container_spec(spec_in)["annotations"]
    assert (key in annotations) is kept
    assert annotations["plain"] == "1"
    assert (key in dropped_annotations(spec_in)) is not kept


def test_crio_own_annotations_win_over_allowed_ones() -> None:
    spec_in = spec_input(
        config=container_config(annotations={"io.kubernetes.cri.sandbox-id": "forged"}),
        allowed_annotations=["io.kubernetes.cri."],
    )
    assert container_spec(spec_in)["annotations"]["io.kubernetes.cri.sandbox-id"] == "p1"


# ------------------------------------------------------------------------------------ passwd / group

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def test_passwd_entry_for_a_missing_user() -> None:
    text = passwd_with_user(PASSWD, 4321, 5678, "/data")
    assert text is not None and text.startswith(PASSWD)
    assert text.endswith("default:x:4321:5678:default user:/data:/sbin/nologin\n")
    assert [e.uid for e in parse_passwd(text)] == [0, 65534, 4321]


@pytest.mark.parametrize(
    ("passwd", "uid"),
    [(PASSWD, 0), (PASSWD, 65534), ("", 4321)],  # the user exists, or the image has no /etc/passwd
)
def test_no_passwd_entry_needed(passwd: str, uid: int) -> None:
    assert passwd_with_user(passwd, uid, uid, "/") is None


@pytest.mark.parametrize("home", ["/x\nevil:x:0:0::/:/bin/sh", "/x\r", "/a:b", "relative", "/x\0y"])
def test_a_bad_home_cannot_inject_passwd_lines(home: str) -> None:
    # CVE-2022-4318 / CVE-2026-15809: process_env refuses such a HOME first; this is the second wall.
    text = passwd_with_user(PASSWD, 4321, 4321, home)
    assert text is not None
    added = text[len(PASSWD) :]
    assert added == "default:x:4321:4321:default user:/:/sbin/nologin\n"
    assert len(parse_passwd(text)) == 3


def test_generated_names_avoid_taken_ones_and_missing_newlines() -> None:
    text = passwd_with_user("default:x:1:1::/:/bin/sh", 7, 7, "/")
    assert text == "default:x:1:1::/:/bin/sh\nuid7:x:7:7:uid7 user:/:/sbin/nologin\n"


def test_group_entry() -> None:
    assert group_with_gid(GROUP, 0) is None
    assert group_with_gid("", 5) is None
    assert group_with_gid(GROUP, 5678) == GROUP + "default:x:5678:\n"


# ------------------------------------------------------------------------------- rro per handler


def rro_mount(**extra: Any) -> api.Mount:
    return api.Mount(container_path="/ro", host_path="/srv", readonly=True, recursive_read_only=True, **extra)


def test_rro_needs_a_handler_that_supports_it() -> None:
    config = container_config(mounts=[rro_mount()])
    mount = next(m for m in container_spec(spec_input(config=config))["mounts"] if m["destination"] == "/ro")
    assert "rro" in mount["options"]
    with pytest.raises(InvalidArgument, match="does not support recursive read-only"):
        container_spec(spec_input(config=config, rro_supported=False))


@pytest.mark.parametrize(
    ("details", "kernel", "rro"),
    [
        ({"mountOptions": ["ro", "rro"]}, True, True),
        ({"mountOptions": ["ro", "rro"]}, False, False),
        ({"mountOptions": ["ro"]}, True, False),
        ({}, True, False),
        ({"mountOptions": "rro"}, True, False),
    ],
)
def test_runc_features(details: dict[str, Any], kernel: bool, rro: bool) -> None:
    features = runtime_features(details, mount_setattr=kernel)
    assert features.recursive_read_only_mounts is rro
    assert features.user_namespaces is False  # no "linux.namespaces" in these details
    assert runtime_lists_rro(details) is (details.get("mountOptions") == ["ro", "rro"])


# ----------------------------------------------------------------------------------- user namespaces


def userns(
    mode: api.NamespaceMode | None = None, uids: Any = None, gids: Any = None, **modes: api.NamespaceMode
) -> PodSandboxConfig:
    """A pod config with UsernsOptions (and namespace ``modes``, e.g. network=api.NODE)."""
    options = api.UserNamespace(uids=uids or [], gids=gids or [])
    if mode is not None:
        options.mode = mode
    namespaces = api.NamespaceOption(userns_options=options)
    for kind, kind_mode in modes.items():
        setattr(namespaces, kind, kind_mode)
    return PodSandboxConfig.from_message(
        api.PodSandboxConfig(
            linux=api.LinuxPodSandboxConfig(
                security_context=api.LinuxSandboxSecurityContext(namespace_options=namespaces)
            )
        )
    )


ONE = [api.IDMapping(container_id=0, host_id=1000, length=100000)]


def test_userns_modes() -> None:
    assert validate_userns(pod_config()) == "NODE"
    assert validate_userns(userns(api.NODE)) == "NODE"
    assert validate_userns(userns(api.POD, ONE, ONE)) == "POD"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (userns(api.CONTAINER), "mode CONTAINER is not supported"),
        (userns(api.TARGET), "mode TARGET is not supported"),
        (userns(api.POD, ONE * 2, ONE * 2), "exactly one uid mapping, got 2"),
        (userns(api.POD, ONE, []), "exactly one gid mapping, got 0"),
        (
            userns(api.POD, [api.IDMapping(container_id=1, host_id=1000, length=100000)], ONE),
            "must map container ID 0",
        ),
        (userns(api.POD, [api.IDMapping(host_id=1000)], ONE), "length 0"),
        (userns(api.POD, [api.IDMapping(host_id=(1 << 32) - 10, length=100)], ONE), "32-bit"),
        (userns(api.NODE, ONE, ONE), "NODE takes no ID mappings"),
    ],
)
def test_userns_errors(config: PodSandboxConfig, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        validate_userns(config)


# ------------------------------------------------------------------ sysctls (CVE-2022-0532, CVE-2022-0811)


@pytest.mark.parametrize(
    ("sysctls", "host_network", "host_ipc", "message"),
    [
        ({"net.ipv4.ip_forward": "1"}, True, False, "host network"),  # CVE-2022-0532 / GHSA-w2j5-3rcx-vx7x
        ({"kernel.shm_rmid_forced": "1"}, False, True, "host IPC"),
        ({"fs.mqueue.msg_max": "100"}, False, True, "host IPC"),
        # CVE-2022-0811 (cr8escape): a second sysctl smuggled in a value
        ({"kernel.shm_rmid_forced": "1+kernel.core_pattern=|/evil"}, False, False, "invalid value"),
        ({"kernel.shm_rmid_forced": "1 kernel.core_pattern=x"}, False, False, "invalid value"),
        ({"kernel.core_pattern": "core"}, False, False, "not namespaced"),
    ],
)
def test_sysctls_never_reach_host_namespaces(
    sysctls: dict[str, str], host_network: bool, host_ipc: bool, message: str
) -> None:
    from crio.core.sandbox.validate import validate_sysctls

    with pytest.raises(InvalidArgument, match=message):
        validate_sysctls(sysctls, host_network, host_ipc)


# -------------------------------------------------------------------------- user namespace plumbing


def test_userns_mappings_and_storage_options() -> None:
    from crio.core import userns

    uids, gids = userns.mappings_of(userns_config())
    assert uids == gids == [userns.IDMapping(0, 1000, 100000)]
    assert uids[0].line() == "0 1000 100000\n"
    assert uids[0].oci() == {"containerID": 0, "hostID": 1000, "size": 100000}
    assert userns.host_id(uids, 0) == 1000 and userns.host_id(uids, 99999) == 100999
    assert userns.host_id(uids, 100000) == -1
    assert userns.storage_options("/run/userns/p", uids, gids) == [
        "idmap_userns=/run/userns/p",
        "idmap_root=1000:1000",
    ]


def userns_config() -> PodSandboxConfig:
    return userns(api.POD, ONE, ONE)


def test_untraversable_ancestor(tmp_path: Any) -> None:
    from crio.core.userns import untraversable_ancestor

    closed = tmp_path / "closed"
    (closed / "graph").mkdir(parents=True)
    for directory in [tmp_path, *tmp_path.parents]:
        directory.chmod(directory.stat().st_mode | 0o001)
    closed.chmod(0o700)
    assert untraversable_ancestor(str(closed / "graph")) == str(closed)
    closed.chmod(0o711)
    assert untraversable_ancestor(str(closed / "graph")) is None


def test_overlay_idmap_options() -> None:
    from crio.plugins.storage_overlay.driver import IdMap, split_idmap_options

    assert split_idmap_options(["nodev", "ro"]) == (None, ["nodev", "ro"])
    idmap, rest = split_idmap_options(["idmap_userns=/run/userns/p", "idmap_root=1000:1001", "nodev"])
    assert idmap == IdMap("/run/userns/p", 1000, 1001) and rest == ["nodev"]
    with pytest.raises(InvalidArgument):
        split_idmap_options(["idmap_userns=/x", "idmap_root=root"])


def test_infra_and_container_specs_join_the_pod_user_namespace() -> None:
    from crio.core.spec.infra import InfraSpecInput, infra_spec

    mappings = [{"containerID": 0, "hostID": 1000, "size": 100000}]
    infra = infra_spec(
        InfraSpecInput(
            pod_id="p",
            rootfs="/r",
            args=["/pause"],
            env=[],
            hostname="h",
            cgroups_path="/crio/crio-p",
            netns_path="/run/netns/p",
            host_network=False,
            host_ipc=False,
            host_pid=False,
            shm_path="/shm",
            userns_path="/run/userns/p",
            uid_mappings=mappings,
            gid_mappings=mappings,
        )
    )
    assert {"type": "user", "path": "/run/userns/p"} in infra["linux"]["namespaces"]
    assert infra["linux"]["uidMappings"] == infra["linux"]["gidMappings"] == mappings
    spec = container_spec(
        spec_input(pod_userns_path="/run/userns/p", uid_mappings=mappings, gid_mappings=mappings)
    )
    assert {"type": "user", "path": "/run/userns/p"} in spec["linux"]["namespaces"]
    assert spec["linux"]["uidMappings"] == mappings
    plain = container_spec(spec_input())
    assert all(ns["type"] != "user" for ns in plain["linux"]["namespaces"])
    assert "uidMappings" not in plain["linux"]


@pytest.mark.parametrize(
    ("details", "joins"),
    [
        ({"linux": {"namespaces": ["mount", "user"]}}, True),
        ({"linux": {"namespaces": ["mount"]}}, False),
        ({"linux": []}, False),
        ({}, False),
    ],
)
def test_runc_user_namespace_feature(details: dict[str, Any], joins: bool) -> None:
    assert runtime_features(details, mount_setattr=True).user_namespaces is joins


@pytest.mark.parametrize("kind", ["network", "pid", "ipc"])
def test_userns_refuses_host_namespaces(kind: str) -> None:
    config = userns(api.POD, ONE, ONE, **{kind: api.NODE})
    with pytest.raises(InvalidArgument, match=f"host's {kind} namespace"):
        validate_userns(config)
