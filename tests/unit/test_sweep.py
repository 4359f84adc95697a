"""The start-up sweep's ownership rules (crio.core.sweep.rules): what is this daemon's, from given records,
runtime states, paths and command lines; and the summary line of a sweep."""

from __future__ import annotations

import json

import pytest

from crio.core.sweep import rules
from crio.core.sweep.sweeper import Report
from crio.core.types import RuntimeContainer

RUN = "/var/run/containers/storage/overlay-containers"
OTHER_RUN = "/run/other-crio/overlay-containers"
EXITS = "/var/run/crio/exits"
CRIO_ID = "a" * 64  # a crio record, not loaded
LOADED_ID = "b" * 64  # a crio record of a loaded pod
PODMAN_ID = "c" * 64  # podman's record in the same store
GONE_ID = "d" * 64  # no record at all
JOURNAL_ID = "e" * 64  # a crio record whose journal entry is still pending
POD_ID = "f" * 64
CRIO_META = json.dumps({"pod-name": "p", "pod-id": POD_ID, "name": "k8s_c_p_ns_uid_0"})
PODMAN_META = json.dumps({"image-name": "busybox", "image-id": "1" * 64, "name": "jolly", "created-at": 1})
CRI = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": POD_ID}


def scope() -> rules.Scope:
    return rules.Scope.of(
        [RUN, "/run/containers/storage/overlay-containers"],
        EXITS,
        [(CRIO_ID, CRIO_META), (LOADED_ID, CRIO_META), (PODMAN_ID, PODMAN_META), (JOURNAL_ID, CRIO_META)],
        [LOADED_ID, JOURNAL_ID],
    )


def bundle(container_id: str, root: str = RUN) -> str:
    return f"{root}/{container_id}/userdata"


def runtime(
    container_id: str, where: str = "", annotations: dict[str, str] | None = None
) -> RuntimeContainer:
    return RuntimeContainer(
        id=container_id,
        status="running",
        pid=42,
        bundle=where or bundle(container_id),
        annotations=annotations if annotations is not None else CRI,
    )


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (CRIO_META, True),
        (json.dumps({"pod-id": ""}), True),  # the key marks crio's, whatever its value
        (PODMAN_META, False),
        ("", False),  # buildah leaves it empty
        ("not json", False),
        ("[1, 2]", False),
        ('"pod-id"', False),
    ],
)
def test_crio_metadata(metadata: str, expected: bool) -> None:
    assert rules.is_crio_metadata(metadata) is expected


def test_scope_sorts_records_by_maker_and_normalises_paths() -> None:
    found = rules.Scope.of(
        [RUN + "/", RUN], EXITS + "/", [(CRIO_ID, CRIO_META), (PODMAN_ID, "")], [LOADED_ID]
    )
    assert found.run_containers_dirs == (RUN,)
    assert found.exit_dir == EXITS
    assert found.crio_records == {CRIO_ID} and found.other_records == {PODMAN_ID}
    assert found.owned == {LOADED_ID}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (bundle(CRIO_ID), CRIO_ID),
        (bundle(CRIO_ID) + "/", CRIO_ID),
        (f"/run/containers/storage/overlay-containers/{CRIO_ID}/userdata", CRIO_ID),  # the alias
        (f"{RUN}/x/../{CRIO_ID}/userdata", CRIO_ID),
        (bundle(CRIO_ID, OTHER_RUN), None),  # another daemon's run root
        (f"{RUN}/{CRIO_ID}", None),  # not the userdata directory
        (f"{RUN}/{CRIO_ID}/userdata/more", None),
        (f"{RUN}/sub/{CRIO_ID}/userdata", None),  # deeper than the layout
        (f"{RUN}/not-an-id/userdata", None),
        (f"{RUN}/../{CRIO_ID}/userdata", None),  # climbs out
        (f"/tmp/bundle-{CRIO_ID}/userdata", None),
        ("", None),
    ],
)
def test_storage_id_of_a_bundle(path: str, expected: str | None) -> None:
    assert scope().storage_id_of(path) == expected


@pytest.mark.parametrize(
    ("container", "ours"),
    [
        (runtime(CRIO_ID), True),  # crio record
        (runtime(CRIO_ID, annotations={}), True),  # the record decides, annotations or not
        (runtime(LOADED_ID), True),  # ours, but owned (see the orphan test)
        (runtime(PODMAN_ID), False),  # podman's record wins over any annotation
        (runtime(PODMAN_ID, annotations={}), False),
        (runtime(GONE_ID), True),  # no record: crio's CRI annotation decides
        (runtime(GONE_ID, annotations={"io.kubernetes.cri-o.ContainerType": "container"}), False),
        (runtime(GONE_ID, annotations={}), False),
        (runtime(CRIO_ID, where=bundle(CRIO_ID, OTHER_RUN)), False),  # bundle outside our run root
        (runtime(CRIO_ID, where="/tmp/foreign/bundle"), False),
        (runtime("myctr", where=bundle(CRIO_ID)), False),  # the runtime ID must be the storage ID
        (runtime(GONE_ID, where=bundle(CRIO_ID)), False),
    ],
)
def test_runtime_container_ownership(container: RuntimeContainer, ours: bool) -> None:
    assert rules.runtime_container_is_ours(scope(), container) is ours


def test_orphan_runtime_containers_leave_owned_ones() -> None:
    listed = [runtime(i) for i in (CRIO_ID, LOADED_ID, PODMAN_ID, GONE_ID, JOURNAL_ID)]
    listed.append(runtime("f00", where="/tmp/foreign"))
    assert [c.id for c in rules.orphan_runtime_containers(scope(), listed)] == [CRIO_ID, GONE_ID]


def conmon(
    container_id: str, where: str = "", exit_dir: str = EXITS, program: str = "/usr/bin/conmon"
) -> list[str]:
    """crio's conmon command line (crio.plugins.runc.conmon.argv)."""
    where = where or bundle(container_id)
    return [
        program,
        "--api-version",
        "1",
        "-c",
        container_id,
        "-n",
        "k8s_c_p_ns_uid_0",
        "-u",
        container_id,
        "-r",
        "/usr/sbin/runc",
        "-b",
        where,
        "-p",
        f"{where}/pidfile",
        "-P",
        f"{where}/conmon-pidfile",
        "-l",
        "none",
        "--exit-dir",
        exit_dir,
        "--socket-dir-path",
        "/var/run/crio",
        "--persist-dir",
        where,
        "--log-level",
        "info",
        "--syslog",
        "--runtime-arg",
        "--root=/run/runc",
    ]


def podman_conmon(container_id: str) -> list[str]:
    """podman 4's conmon command line, long options with '=' included."""
    return [
        "/usr/bin/conmon",
        "--api-version",
        "1",
        "-c",
        container_id,
        "-u",
        container_id,
        "-r",
        "/usr/sbin/runc",
        "-b",
        bundle(container_id),
        "-p",
        f"/run/containers/storage/overlay-containers/{container_id}/userdata/pidfile",
        "-n",
        "jolly",
        "--exit-dir",
        "/run/libpod/exits",
        "--full-attach",
        "-s",
        "-l",
        "k8s-file:/var/lib/containers/storage/overlay-containers/x/userdata/ctr.log",
        "--log-level",
        "warning",
        "--runtime-arg",
        "--log-format=json",
        "--conmon-pidfile",
        "/run/containers/storage/overlay-containers/x/userdata/conmon.pid",
        "--exit-command",
        "/usr/bin/podman",
        "--exit-command-arg",
        "--root",
        "--exit-command-arg",
        "/var/lib/containers/storage",
    ]


def test_parse_crio_monitor() -> None:
    monitor = rules.parse_monitor(7, conmon(CRIO_ID), {"conmon"})
    assert monitor == rules.Monitor(7, CRIO_ID, bundle(CRIO_ID), EXITS)


def test_parse_podman_monitor() -> None:
    monitor = rules.parse_monitor(8, podman_conmon(PODMAN_ID), {"conmon"})
    assert monitor == rules.Monitor(8, PODMAN_ID, bundle(PODMAN_ID), "/run/libpod/exits")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["/usr/sbin/runc", "--root", "/run/runc", "-b", bundle(CRIO_ID), "-c", CRIO_ID],  # not a monitor
        ["/usr/bin/conmon", "--version"],
        ["/usr/bin/conmon", "-c", CRIO_ID],  # no bundle
        ["/usr/bin/conmon", "-b", bundle(CRIO_ID)],  # no container
        ["/usr/bin/sleep", "-c", CRIO_ID, "-b", bundle(CRIO_ID)],
    ],
)
def test_other_processes_are_no_monitors(argv: list[str]) -> None:
    assert rules.parse_monitor(9, argv, {"conmon"}) is None


def test_option_values_are_never_taken_for_options() -> None:
    # "-n -c": a name that looks like an option is the name; the real -c follows.
    argv = [
        "/usr/bin/conmon",
        "-n",
        "-c",
        "-c",
        CRIO_ID,
        "--bundle=" + bundle(CRIO_ID),
        "--exit-dir=" + EXITS,
    ]
    assert rules.parse_monitor(1, argv, {"conmon"}) == rules.Monitor(1, CRIO_ID, bundle(CRIO_ID), EXITS)


def test_a_renamed_monitor_binary_is_recognised_by_its_handler_name() -> None:
    argv = conmon(CRIO_ID, program="/opt/bin/my-conmon")
    assert rules.parse_monitor(3, argv, {"conmon"}) is None
    assert rules.parse_monitor(3, argv, {"conmon", "my-conmon"}) is not None


@pytest.mark.parametrize(
    ("argv", "ours"),
    [
        (conmon(CRIO_ID), True),
        (conmon(CRIO_ID, exit_dir="/elsewhere"), True),  # the crio record decides
        (conmon(GONE_ID), True),  # no record: our exit directory decides
        (conmon(GONE_ID, exit_dir="/run/libpod/exits"), False),
        (conmon(GONE_ID, exit_dir=""), False),
        (podman_conmon(PODMAN_ID), False),  # podman's record
        (conmon(PODMAN_ID), False),
        (conmon(CRIO_ID, where=bundle(CRIO_ID, OTHER_RUN)), False),  # another crio's run root
        (conmon(GONE_ID, where=bundle(CRIO_ID)), False),  # -c and the bundle disagree
    ],
)
def test_monitor_ownership(argv: list[str], ours: bool) -> None:
    monitor = rules.parse_monitor(5, argv, {"conmon"})
    assert monitor is not None
    assert rules.monitor_is_ours(scope(), monitor) is ours


def test_orphan_monitors_leave_owned_containers() -> None:
    found = [
        rules.parse_monitor(i, conmon(c), {"conmon"}) for i, c in enumerate([LOADED_ID, JOURNAL_ID, CRIO_ID])
    ]
    assert [m.container_id for m in rules.orphan_monitors(scope(), [m for m in found if m])] == [CRIO_ID]


def test_orphan_records_are_crio_records_nobody_owns() -> None:
    assert rules.orphan_records(scope()) == [CRIO_ID]


def test_proven_ids() -> None:
    containers = [runtime(GONE_ID), runtime(CRIO_ID, annotations={"io.kubernetes.cri.sandbox-id": "bogus"})]
    monitors = [rules.Monitor(3, "9" * 64, bundle("9" * 64), EXITS)]
    assert rules.proven_ids(scope(), containers, monitors) == {CRIO_ID, GONE_ID, POD_ID, "9" * 64}


def test_owned_ids_are_never_proven() -> None:
    loaded_pod = {"io.kubernetes.cri.container-type": "container", "io.kubernetes.cri.sandbox-id": LOADED_ID}
    assert rules.proven_ids(scope(), [runtime(GONE_ID, annotations=loaded_pod)], []) == {CRIO_ID, GONE_ID}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (f"crio-{POD_ID}", POD_ID),
        (POD_ID, None),
        (f"cni-{POD_ID}", None),
        ("crio-short", None),
        (f"crio-{POD_ID}.tmp", None),
        (f"netns-{POD_ID}", None),
    ],
)
def test_pinned_id(name: str, expected: str | None) -> None:
    assert rules.pinned_id(name) == expected


def test_only_proven_pinned_namespaces_are_orphans() -> None:
    names = [
        f"crio-{POD_ID}",
        f"crio-{GONE_ID}",
        f"crio-{LOADED_ID}",
        "cni-1234",
        f"crio-{CRIO_ID}",
        "crio-x",
    ]
    assert rules.orphan_pinned(names, {POD_ID, CRIO_ID}) == [f"crio-{CRIO_ID}", f"crio-{POD_ID}"]


HIERARCHIES = ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"]


def test_cgroup_dirs_from_the_runtime_and_the_bundle() -> None:
    reported = [f"/sys/fs/cgroup/memory/crio/crio-{CRIO_ID}", f"/sys/fs/cgroup/cpu/crio/crio-{CRIO_ID}"]
    found = rules.cgroup_dirs(CRIO_ID, reported, f"/crio/crio-{CRIO_ID}", HIERARCHIES)
    assert found == [
        f"/sys/fs/cgroup/cpu/crio/crio-{CRIO_ID}",
        f"/sys/fs/cgroup/memory/crio/crio-{CRIO_ID}",
        f"/sys/fs/cgroup/pids/crio/crio-{CRIO_ID}",
        f"/sys/fs/cgroup/unified/crio/crio-{CRIO_ID}",
    ]


@pytest.mark.parametrize(
    ("reported", "cgroups_path"),
    [
        ([], "/crio"),  # the parent, never the container's own
        ([], f"/crio/crio-{GONE_ID}"),  # another container's
        ([], f"system.slice:crio:crio-{CRIO_ID}"),  # systemd's form names no directory
        ([], f"/crio/crio-{CRIO_ID}/.."),
        (["/sys/fs/cgroup/memory/crio"], ""),
        ([f"relative/crio-{CRIO_ID}"], ""),
        ([f"/sys/fs/cgroup/memory/../crio-{CRIO_ID}"], ""),
    ],
)
def test_cgroup_dirs_never_name_another_directory(reported: list[str], cgroups_path: str) -> None:
    assert rules.cgroup_dirs(CRIO_ID, reported, cgroups_path, HIERARCHIES) == []


def test_summary_line() -> None:
    report = Report(seconds=0.0123)
    assert report.summary() == "start-up sweep (0.012s): nothing to remove"
    report.removed.update({"runtime container": 2, "pinned namespace": 1})
    report.failed = 1
    assert report.summary() == (
        "start-up sweep (0.012s): removed 2 runtime container(s), 1 pinned namespace(s); "
        "1 step(s) failed (see the warnings above)"
    )
