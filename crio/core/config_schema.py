"""The configuration schema: every table and key crio understands, with types, defaults and flags.

Table and key names follow CRI-O's crio.conf so an operator's drop-ins carry over. Keys CRI-O knows but crio
does not implement yet are listed in :data:`KNOWN_UNSUPPORTED`: setting one is reported by name at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Value kinds a key may have.
STR = "string"
INT = "integer"
BOOL = "boolean"
STR_LIST = "list of strings"

# How a path-valued key is checked when the daemon starts.
PATH_DIR = "dir"  # a directory the daemon can create
PATH_FILE = "file"  # a file that must exist when set
PATH_EXEC = "exec"  # an executable, or a bare name found on PATH
PATH_ANY = "any"  # absolute, may not exist yet (watched or created on demand)

LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error", "fatal", "panic")

RUNTIMES_TABLE = "crio.runtime.runtimes"


@dataclass(frozen=True)
class Key:
    """One configuration key: its table, name, value kind, default and how it may be set."""

    table: str
    name: str
    kind: str
    default: Any
    doc: str
    path: str | None = None  # one of PATH_* for path-valued keys
    reloadable: bool = False  # applied on SIGHUP
    pending: str | None = None  # the issue that makes it take effect; setting it is reported
    choices: tuple[str, ...] = ()

    @property
    def dotted(self) -> str:
        """The key's full dotted name, e.g. ``crio.api.listen``."""
        return f"{self.table}.{self.name}"


def _k(table: str, name: str, kind: str, default: Any, doc: str, **kw: Any) -> Key:
    return Key(table, name, kind, default, doc, **kw)


KEYS: tuple[Key, ...] = (
    # [crio]
    _k("crio", "root", STR, "/var/lib/containers/storage", "containers/storage graph root.", path=PATH_DIR),
    _k("crio", "runroot", STR, "/run/containers/storage", "containers/storage run root.", path=PATH_DIR),
    _k("crio", "storage_driver", STR, "", "Storage driver name; empty picks the first available (overlay)."),
    _k("crio", "storage_option", STR_LIST, [], "Storage driver options, e.g. overlay.mountopt=nodev."),
    _k("crio", "log_dir", STR, "/var/log/crio/pods", "Default directory for container logs.", path=PATH_DIR),
    _k("crio", "version_file", STR, "/var/run/crio/version", "Runtime version file (tmpfs).", path=PATH_ANY),
    _k(
        "crio",
        "version_file_persist",
        STR,
        "/var/lib/crio/version",
        "Persistent version file (survives reboots).",
        path=PATH_ANY,
    ),
    _k(
        "crio",
        "clean_shutdown_file",
        STR,
        "/var/lib/crio/clean.shutdown",
        "Written when the daemon stops gracefully; its absence at start means an unclean stop.",
        path=PATH_ANY,
    ),
    # [crio.api]
    _k("crio.api", "listen", STR, "/var/run/crio/crio.sock", "The CRI gRPC unix socket.", path=PATH_ANY),
    _k(
        "crio.api",
        "stream_address",
        STR,
        "127.0.0.1",
        "Address of the streaming (exec/attach/port-forward) server.",
    ),
    _k("crio.api", "stream_port", STR, "0", "Port of the streaming server; 0 picks a free one."),
    _k(
        "crio.api",
        "stream_idle_timeout",
        STR,
        "",
        'Close streaming connections idle this long (Go duration, e.g. "30m"); empty: 4h; "0": never.',
    ),
    _k("crio.api", "grpc_max_send_msg_size", INT, 83886080, "Largest gRPC message the daemon sends."),
    _k("crio.api", "grpc_max_recv_msg_size", INT, 83886080, "Largest gRPC message the daemon accepts."),
    # [crio.runtime]
    _k("crio.runtime", "default_runtime", STR, "runc", "Runtime handler used for an empty RuntimeHandler."),
    _k(
        "crio.runtime",
        "conmon",
        STR,
        "",
        "Path of conmon; empty finds it on PATH.",
        path=PATH_EXEC,
    ),
    _k(
        "crio.runtime",
        "cgroup_manager",
        STR,
        "cgroupfs",
        "Cgroup manager; crio drives cgroups through the filesystem (v1 and v2).",
        choices=("cgroupfs",),
    ),
    _k(
        "crio.runtime",
        "log_level",
        STR,
        "info",
        "Daemon log level.",
        reloadable=True,
        choices=LOG_LEVELS,
    ),
    _k(
        "crio.runtime",
        "container_exits_dir",
        STR,
        "/var/run/crio/exits",
        "Where conmon writes exit files.",
        path=PATH_DIR,
    ),
    _k(
        "crio.runtime",
        "container_attach_socket_dir",
        STR,
        "/var/run/crio",
        "Where conmon creates attach sockets.",
        path=PATH_DIR,
    ),
    _k(
        "crio.runtime",
        "namespaces_dir",
        STR,
        "/var/run",
        "Where pinned namespaces live.",
        path=PATH_DIR,
    ),
    _k(
        "crio.runtime",
        "ctr_stop_timeout",
        INT,
        30,
        "Minimum stop timeout of a container, seconds.",
        pending="5",
    ),
    _k(
        "crio.runtime",
        "default_capabilities",
        STR_LIST,
        [
            "CHOWN",
            "DAC_OVERRIDE",
            "FSETID",
            "FOWNER",
            "SETGID",
            "SETUID",
            "SETPCAP",
            "NET_BIND_SERVICE",
            "KILL",
        ],
        "Capabilities a container gets by default.",
    ),
    _k("crio.runtime", "default_sysctls", STR_LIST, [], "Sysctls applied to every pod.", pending="4"),
    _k(
        "crio.runtime",
        "seccomp_profile",
        STR,
        "",
        "seccomp profile (containers seccomp.json) used as RuntimeDefault; empty is crio's built-in one.",
        path=PATH_FILE,
    ),
    _k(
        "crio.runtime",
        "seccomp_use_default_when_empty",
        BOOL,
        True,
        "A pod or container asking for no seccomp profile gets RuntimeDefault; false: unconfined (CRI).",
    ),
    _k(
        "crio.runtime",
        "apparmor_profile",
        STR,
        "crio-default",
        "AppArmor profile used as runtime/default; crio loads its own profile under the default name.",
    ),
    # [crio.image]
    _k(
        "crio.image",
        "default_transport",
        STR,
        "docker://",
        "Transport of image names without one.",
        pending="3",
    ),
    _k(
        "crio.image",
        "pause_image",
        STR,
        "registry.k8s.io/pause:3.10",
        "Image of the pod infrastructure container (built offline at first start).",
        reloadable=True,
    ),
    _k(
        "crio.image",
        "pause_command",
        STR,
        "",
        "Command of the infra container; empty runs the pause image's own entrypoint.",
        reloadable=True,
    ),
    _k(
        "crio.image",
        "global_auth_file",
        STR,
        "",
        "auth.json with registry credentials.",
        path=PATH_FILE,
        reloadable=True,
    ),
    _k(
        "crio.image",
        "signature_policy",
        STR,
        "",
        "containers-policy.json path; empty uses /etc/containers/policy.json.",
        path=PATH_FILE,
        reloadable=True,
    ),
    _k(
        "crio.image",
        "signature_policy_dir",
        STR,
        "/etc/crio/policies",
        "Per-namespace policies: a pull for a pod in namespace X uses <dir>/X.json when it exists.",
        path=PATH_ANY,
        reloadable=True,
    ),
    _k(
        "crio.image",
        "short_name_mode",
        STR,
        "",
        "Overrides registries.conf's short-name-mode (enforcing, permissive, disabled); empty keeps it.",
        choices=("", "enforcing", "permissive", "disabled"),
        reloadable=True,
    ),
    _k(
        "crio.image",
        "auto_reload_registries",
        BOOL,
        True,
        "Re-read registries.conf and its drop-ins at the next pull when one changed (CRI-O: false).",
        reloadable=True,
    ),
    _k(
        "crio.image",
        "registries_conf",
        STR,
        "/etc/containers/registries.conf",
        "containers-registries.conf v2 file (a crio extension of CRI-O's [crio.image] table).",
        path=PATH_ANY,
        reloadable=True,
    ),
    _k(
        "crio.image",
        "registries_conf_dir",
        STR,
        "/etc/containers/registries.conf.d",
        "Drop-ins for registries_conf, applied in lexical order (a crio extension).",
        path=PATH_ANY,
        reloadable=True,
    ),
    _k(
        "crio.image",
        "registries_d",
        STR,
        "/etc/containers/registries.d",
        "containers-registries.d(5) YAML files: where signatures are looked up (a crio extension).",
        path=PATH_ANY,
        reloadable=True,
    ),
    _k(
        "crio.image",
        "pinned_images",
        STR_LIST,
        [],
        "Images never garbage collected.",
        reloadable=True,
    ),
    # [crio.network]
    _k(
        "crio.network",
        "cni_default_network",
        STR,
        "",
        "CNI network name to use; empty takes the first conflist.",
    ),
    _k("crio.network", "network_dir", STR, "/etc/cni/net.d/", "CNI configuration directory.", path=PATH_ANY),
    _k(
        "crio.network",
        "plugin_dirs",
        STR_LIST,
        ["/opt/cni/bin/", "/usr/lib/cni/"],
        "Directories searched for CNI plugin binaries.",
        path=PATH_ANY,
    ),
    # [crio.metrics]
    _k("crio.metrics", "enable_metrics", BOOL, False, "Serve Prometheus metrics.", pending="metrics"),
    _k("crio.metrics", "metrics_host", STR, "127.0.0.1", "Metrics listen address.", pending="metrics"),
    _k("crio.metrics", "metrics_port", INT, 9090, "Metrics listen port.", pending="metrics"),
    # [crio.stats]
    _k(
        "crio.stats",
        "stats_collection_period",
        INT,
        0,
        "Seconds between stats sampling passes (CPU rates are taken between the last two); 0 = on demand, "
        "at most one pass a second, shared by every caller.",
    ),
    # [crio.plugins] (crio's own table)
    _k("crio.plugins", "enabled", STR_LIST, [], "Plugins to load; empty loads every discovered plugin."),
    _k("crio.plugins", "disabled", STR_LIST, [], "Plugins never to load, even when listed in enabled."),
)

# Keys of one [crio.runtime.runtimes.NAME] table.
RUNTIME_KEYS: tuple[Key, ...] = (
    _k(RUNTIMES_TABLE, "runtime_path", STR, "", "Runtime binary; empty finds NAME on PATH.", path=PATH_EXEC),
    _k(
        RUNTIMES_TABLE, "runtime_type", STR, "oci", "Runtime type; a loaded plugin must serve it (runc: oci)."
    ),
    _k(
        RUNTIMES_TABLE, "runtime_root", STR, "", "The runtime's --root state directory; empty is its default."
    ),
    _k(RUNTIMES_TABLE, "monitor_path", STR, "", "conmon for this runtime; empty uses crio.runtime.conmon."),
    _k(RUNTIMES_TABLE, "monitor_env", STR_LIST, [], "Environment of the monitor process."),
    _k(RUNTIMES_TABLE, "allowed_annotations", STR_LIST, [], "Runtime-interpreted annotations allowed."),
    _k(RUNTIMES_TABLE, "container_create_timeout", INT, 240, "Seconds a create may take."),
)

DEFAULT_RUNTIMES: dict[str, dict[str, Any]] = {
    "runc": {"runtime_path": "", "runtime_type": "oci", "runtime_root": "/run/runc"},
}

# Keys CRI-O's crio.conf knows that crio does not implement yet, per table.
KNOWN_UNSUPPORTED: dict[str, frozenset[str]] = {
    "crio": frozenset({"imagestore", "internal_wipe", "internal_repair"}),
    "crio.api": frozenset({"stream_enable_tls", "stream_tls_cert", "stream_tls_key", "stream_tls_ca"}),
    "crio.runtime": frozenset(
        {
            "default_ulimits",
            "no_pivot",
            "decryption_keys_path",
            "conmon_cgroup",
            "conmon_env",
            "default_env",
            "selinux",
            "privileged_seccomp_profile",
            "blockio_config_file",
            "blockio_reload",
            "irqbalance_config_file",
            "irqbalance_config_restore_file",
            "rdt_config_file",
            "separate_pull_cgroup",
            "add_inheritable_capabilities",
            "allowed_devices",
            "additional_devices",
            "cdi_spec_dirs",
            "device_ownership_from_security_context",
            "hooks_dir",
            "default_mounts_file",
            "pids_limit",
            "log_size_max",
            "log_to_journald",
            "bind_mount_prefix",
            "read_only",
            "log_filter",
            "uid_mappings",
            "gid_mappings",
            "minimum_mappable_uid",
            "minimum_mappable_gid",
            "drop_infra_ctr",
            "infra_ctr_cpuset",
            "shared_cpuset",
            "pinns_path",
            "enable_criu_support",
            "enable_pod_events",
            "absent_mount_sources_to_reject",
            "hostnetwork_disable_selinux",
            "disable_hostport_mapping",
            "timezone",
            "default_annotations",
        }
    ),
    RUNTIMES_TABLE: frozenset(
        {
            "runtime_config_path",
            "monitor_cgroup",
            "monitor_exec_cgroup",
            "platform_runtime_paths",
            "privileged_without_host_devices",
            "container_min_memory",
            "no_sync_log",
            "default_annotations",
            "stream_websockets",
            "seccomp_profile",
            "inherit_default_runtime",
            "exec_cpu_affinity",
        }
    ),
    "crio.runtime.workloads": frozenset(),  # every workload table is unsupported as a whole
    "crio.image": frozenset(
        {
            "namespaced_auth_dir",
            "pause_image_auth_file",  # the pause image is built offline, never pulled
            "insecure_registries",
            "image_volumes",
            "big_files_temporary_dir",
            "pull_progress_timeout",
            "oci_artifact_mount_support",
            "registries",
        }
    ),
    "crio.network": frozenset(),
    "crio.metrics": frozenset({"metrics_collectors", "metrics_socket", "metrics_cert", "metrics_key"}),
    "crio.tracing": frozenset({"enable_tracing", "tracing_endpoint", "tracing_sampling_rate_per_million"}),
    "crio.stats": frozenset({"collection_period", "included_pod_metrics"}),
    "crio.nri": frozenset(
        {
            "enable_nri",
            "nri_listen",
            "nri_plugin_dir",
            "nri_plugin_config_dir",
            "nri_plugin_registration_timeout",
            "nri_plugin_request_timeout",
            "nri_disable_connections",
        }
    ),
}

KEYS_BY_TABLE: dict[str, dict[str, Key]] = {}
for _key in KEYS:
    KEYS_BY_TABLE.setdefault(_key.table, {})[_key.name] = _key
RUNTIME_KEYS_BY_NAME: dict[str, Key] = {k.name: k for k in RUNTIME_KEYS}

TABLES: tuple[str, ...] = tuple(dict.fromkeys([*KEYS_BY_TABLE, *KNOWN_UNSUPPORTED]))
