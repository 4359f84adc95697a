"""Configuration: built-in defaults, then crio.conf, then the drop-in directory, then command-line flags.

Loading is pure (it reads files, never changes the host). :func:`check_paths` is the separate start-up step
that verifies (and creates) the paths a running daemon needs. Every problem is reported as a
:class:`ConfigError` whose message names the file (or flag), the key and what is wrong.
"""

from __future__ import annotations

import copy
import os
import shutil
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from crio.core import config_schema as schema
from crio.core.config_schema import Key
from crio.core.types import RuntimeHandler

DEFAULT_CONFIG_FILE = "/etc/crio/crio.conf"
DEFAULT_CONFIG_DIR = "/etc/crio/crio.conf.d"


class ConfigError(Exception):
    """A configuration problem; the message names the source, the key and the problem."""


@dataclass(frozen=True)
class Override:
    """A value set on the command line: ``dotted`` key, the value, and the flag that set it."""

    dotted: str
    value: Any
    flag: str


@dataclass
class Config:
    """The effective configuration.

    ``values`` maps each table (``crio.api`` ...) to its complete key → value dict; ``runtimes`` maps each
    runtime handler name to its complete table; ``sources`` says which file or flag last set a key.
    ``notices`` lists keys that were set but are not implemented (yet) and so have no effect.
    """

    values: dict[str, dict[str, Any]]
    runtimes: dict[str, dict[str, Any]]
    sources: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def get(self, dotted: str) -> Any:
        """Return the value of a key by its dotted name, e.g. ``crio.api.listen``."""
        table, _, name = dotted.rpartition(".")
        try:
            return self.values[table][name]
        except KeyError:
            raise KeyError(f"unknown configuration key {dotted}") from None

    def source(self, dotted: str) -> str:
        """Return the file or flag that set ``dotted`` ("default" when nothing did)."""
        return self.sources.get(dotted, "default")

    @property
    def listen(self) -> str:
        """Path of the CRI unix socket."""
        return str(self.get("crio.api.listen"))

    @property
    def log_level(self) -> str:
        """The daemon's log level name."""
        return str(self.get("crio.runtime.log_level"))

    @property
    def default_runtime(self) -> str:
        """The runtime handler used when a request names none."""
        return str(self.get("crio.runtime.default_runtime"))

    def runtime_handlers(self) -> dict[str, RuntimeHandler]:
        """Return every configured runtime handler by name, with its runtime binary resolved."""
        handlers = {}
        conmon = str(self.get("crio.runtime.conmon")) or "conmon"
        for name, table in self.runtimes.items():
            handlers[name] = RuntimeHandler(
                name=name,
                runtime_path=resolve_executable(table["runtime_path"] or name)
                or table["runtime_path"]
                or name,
                runtime_type=table["runtime_type"],
                runtime_root=table["runtime_root"],
                monitor_path=_resolved(table["monitor_path"] or conmon),
                monitor_env=tuple(table["monitor_env"]),
                allowed_annotations=tuple(table["allowed_annotations"]),
                container_create_timeout=int(table["container_create_timeout"]),
            )
        return handlers

    def to_dict(self) -> dict[str, Any]:
        """Return the configuration as the nested tables of a crio.conf file."""
        root: dict[str, Any] = {}
        for table in schema.KEYS_BY_TABLE:
            node = root
            for part in table.split("."):
                node = node.setdefault(part, {})
            node.update(copy.deepcopy(self.values[table]))
        root["crio"]["runtime"]["runtimes"] = copy.deepcopy(self.runtimes)
        return root

    def to_toml(self) -> str:
        """Render the effective configuration as TOML that loads back to the same configuration."""
        header = "# crio effective configuration (crio config). Loads back unchanged with --config.\n\n"
        return header + tomli_w.dumps(self.to_dict(), multiline_strings=False)

    def reloadable_changes(self, new: Config) -> tuple[dict[str, Any], list[str]]:
        """Compare with ``new``: return (reloadable keys that changed → new value, other changed keys)."""
        changed: dict[str, Any] = {}
        restart: list[str] = []
        for key in schema.KEYS:
            old_value, new_value = self.get(key.dotted), new.get(key.dotted)
            if old_value == new_value:
                continue
            if key.reloadable:
                changed[key.dotted] = new_value
            else:
                restart.append(key.dotted)
        if self.runtimes != new.runtimes:
            restart.append(schema.RUNTIMES_TABLE)
        return changed, restart


def defaults() -> Config:
    """Return the built-in default configuration."""
    values: dict[str, dict[str, Any]] = {table: {} for table in schema.KEYS_BY_TABLE}
    for key in schema.KEYS:
        values[key.table][key.name] = copy.deepcopy(key.default)
    runtimes = {name: _runtime_table(overrides) for name, overrides in schema.DEFAULT_RUNTIMES.items()}
    return Config(values=values, runtimes=runtimes)


def _runtime_table(overrides: Mapping[str, Any]) -> dict[str, Any]:
    table = {key.name: copy.deepcopy(key.default) for key in schema.RUNTIME_KEYS}
    table.update(copy.deepcopy(dict(overrides)))
    return table


def load(
    config_file: str | None = None,
    config_dir: str | None = None,
    overrides: Sequence[Override] = (),
) -> Config:
    """Build the effective configuration.

    ``config_file`` (default /etc/crio/crio.conf) and ``config_dir`` (default /etc/crio/crio.conf.d, files
    ``*.conf`` in lexical order) may be absent when left at their defaults; named explicitly they must exist.
    ``overrides`` come from command-line flags and win over the files. Raises :class:`ConfigError`.
    """
    config = defaults()
    main_file = config_file or DEFAULT_CONFIG_FILE
    if os.path.exists(main_file):
        _merge_file(config, main_file)
    elif config_file:
        raise ConfigError(f"{config_file}: config file does not exist")
    drop_in_dir = config_dir or DEFAULT_CONFIG_DIR
    if os.path.isdir(drop_in_dir):
        for name in sorted(os.listdir(drop_in_dir)):
            path = os.path.join(drop_in_dir, name)
            if name.endswith(".conf") and os.path.isfile(path):
                _merge_file(config, path)
    elif config_dir:
        raise ConfigError(f"{config_dir}: config directory does not exist")
    for override in overrides:
        _apply_override(config, override)
    if config.default_runtime not in config.runtimes:
        raise ConfigError(
            f"{config.source('crio.runtime.default_runtime')}: crio.runtime.default_runtime: "
            f"no [crio.runtime.runtimes.{config.default_runtime}] table"
        )
    return config


def _merge_file(config: Config, path: str) -> None:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    config.files.append(path)
    for name, value in data.items():
        if name != "crio" or not isinstance(value, dict):
            raise ConfigError(f"{path}: unknown top-level key or table {name!r} (only [crio] tables exist)")
    _merge_table(config, path, "crio", data.get("crio", {}))


def _merge_table(config: Config, path: str, table: str, data: Mapping[str, Any]) -> None:
    known = schema.KEYS_BY_TABLE.get(table, {})
    unsupported = schema.KNOWN_UNSUPPORTED.get(table, frozenset())
    for name, value in data.items():
        dotted = f"{table}.{name}"
        if name in known:
            _set(config, known[name], value, path)
        elif name in unsupported:
            config.notices.append(
                f"{path}: {dotted} is a CRI-O key crio does not support yet; it has no effect"
            )
        elif isinstance(value, dict) and dotted == schema.RUNTIMES_TABLE:
            for runtime, runtime_data in value.items():
                _merge_runtime(config, path, runtime, runtime_data)
        elif isinstance(value, dict) and dotted == "crio.runtime.workloads":
            config.notices.append(f"{path}: [{dotted}] tables are not supported yet; they have no effect")
        elif isinstance(value, dict) and dotted in schema.TABLES:
            _merge_table(config, path, dotted, value)
        elif isinstance(value, dict):
            raise ConfigError(f"{path}: unknown table [{dotted}]")
        else:
            raise ConfigError(f"{path}: unknown key {dotted}")


def _merge_runtime(config: Config, path: str, runtime: str, data: Any) -> None:
    prefix = f"{schema.RUNTIMES_TABLE}.{runtime}"
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {prefix}: expected a table, got {_kind_of(data)}")
    if not runtime or not all(c.isalnum() or c in "-_." for c in runtime):
        raise ConfigError(f"{path}: {prefix}: invalid runtime handler name {runtime!r}")
    table = config.runtimes.setdefault(runtime, _runtime_table({}))
    for name, value in data.items():
        dotted = f"{prefix}.{name}"
        key = schema.RUNTIME_KEYS_BY_NAME.get(name)
        if key is not None:
            table[name] = _checked(key, value, path, dotted)
            config.sources[dotted] = path
        elif name in schema.KNOWN_UNSUPPORTED[schema.RUNTIMES_TABLE]:
            config.notices.append(
                f"{path}: {dotted} is a CRI-O key crio does not support yet; it has no effect"
            )
        else:
            raise ConfigError(f"{path}: unknown key {dotted}")


def _set(config: Config, key: Key, value: Any, origin: str) -> None:
    config.values[key.table][key.name] = _checked(key, value, origin, key.dotted)
    config.sources[key.dotted] = origin
    if key.pending and value != key.default:
        config.notices.append(
            f"{origin}: {key.dotted} is accepted but takes effect only once its feature lands "
            f"({_pending_text(key.pending)})"
        )


def _pending_text(pending: str) -> str:
    return f"issue {pending}" if pending.isdigit() else pending


def _apply_override(config: Config, override: Override) -> None:
    if override.dotted.startswith(schema.RUNTIMES_TABLE + "."):
        runtime, _, name = override.dotted[len(schema.RUNTIMES_TABLE) + 1 :].rpartition(".")
        table = config.runtimes.setdefault(runtime, _runtime_table({}))
        key = schema.RUNTIME_KEYS_BY_NAME[name]
        table[name] = _checked(key, override.value, override.flag, override.dotted)
        config.sources[override.dotted] = override.flag
        return
    table_name, _, name = override.dotted.rpartition(".")
    _set(config, schema.KEYS_BY_TABLE[table_name][name], override.value, override.flag)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {value!r}"
    if isinstance(value, int):
        return f"integer {value!r}"
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    return type(value).__name__


def _checked(key: Key, value: Any, origin: str, dotted: str) -> Any:
    """Validate ``value`` for ``key`` and return it; raise ConfigError naming origin and key otherwise."""
    ok = {
        schema.STR: isinstance(value, str),
        schema.INT: isinstance(value, int) and not isinstance(value, bool),
        schema.BOOL: isinstance(value, bool),
        schema.STR_LIST: isinstance(value, list) and all(isinstance(v, str) for v in value),
    }[key.kind]
    if not ok:
        raise ConfigError(f"{origin}: {dotted}: expected a {key.kind}, got {_kind_of(value)}")
    if key.choices and value not in key.choices:
        raise ConfigError(f"{origin}: {dotted}: {value!r} is not one of {', '.join(key.choices)}")
    if key.kind == schema.INT and value < 0:
        raise ConfigError(f"{origin}: {dotted}: must not be negative, got {value}")
    if key.path is not None:
        for item in value if isinstance(value, list) else [value]:
            _check_path_syntax(key, item, origin, dotted)
    return copy.deepcopy(value)


def _check_path_syntax(key: Key, value: str, origin: str, dotted: str) -> None:
    if not value:
        return
    if "\0" in value:
        raise ConfigError(f"{origin}: {dotted}: path contains a NUL byte")
    bare_name = key.path == schema.PATH_EXEC and "/" not in value
    if not bare_name and not os.path.isabs(value):
        raise ConfigError(f"{origin}: {dotted}: {value!r} is not an absolute path")


def _resolved(name_or_path: str) -> str:
    """The executable's absolute path when it can be found, else the name as given (checked at start)."""
    return resolve_executable(name_or_path) or name_or_path


def resolve_executable(name_or_path: str) -> str | None:
    """Return the absolute path of an executable given as a path or a bare name on PATH, or None."""
    if "/" in name_or_path:
        path = Path(name_or_path)
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(name_or_path)


def check_paths(config: Config) -> None:
    """Verify every path the daemon needs, creating missing directories. Raises :class:`ConfigError`.

    Directories are created (mode 0700 for new parents); executables must exist and be executable; files
    named by a non-empty key must exist.
    """
    for key in schema.KEYS:
        if key.path is None:
            continue
        value = config.get(key.dotted)
        origin = config.source(key.dotted)
        for item in value if isinstance(value, list) else [value]:
            _check_path(key.path, item, origin, key.dotted, default_name="conmon")
    for name, table in config.runtimes.items():
        dotted = f"{schema.RUNTIMES_TABLE}.{name}.runtime_path"
        _check_path(schema.PATH_EXEC, table["runtime_path"], config.source(dotted), dotted, default_name=name)
        if table["monitor_path"]:
            dotted = f"{schema.RUNTIMES_TABLE}.{name}.monitor_path"
            _check_path(schema.PATH_EXEC, table["monitor_path"], config.source(dotted), dotted, "conmon")


def _check_path(kind: str, value: str, origin: str, dotted: str, default_name: str) -> None:
    if kind == schema.PATH_EXEC:
        target = value or default_name
        if resolve_executable(target) is None:
            where = "is not an executable file" if "/" in target else "was not found on PATH"
            hint = "" if value else " (the key is empty, so crio looked for it by name)"
            raise ConfigError(f"{origin}: {dotted}: {target!r} {where}{hint}")
        return
    if not value:
        return
    if kind == schema.PATH_DIR:
        try:
            os.makedirs(value, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"{origin}: {dotted}: cannot create directory {value!r}: {exc.strerror}"
            ) from None
        if not os.path.isdir(value):
            raise ConfigError(f"{origin}: {dotted}: {value!r} is not a directory")
    elif kind == schema.PATH_FILE and not os.path.isfile(value):
        raise ConfigError(f"{origin}: {dotted}: file {value!r} does not exist")


def overrides_from_flags(flags: Mapping[str, Any], default_runtime_hint: str | None = None) -> list[Override]:
    """Translate parsed command-line flags (flag name → value, ``None`` when unset) into overrides.

    ``--runtime PATH`` sets the runtime_path of the default runtime handler (``default_runtime_hint``, or
    "runc" when unknown); ``load`` re-targets it once the files have said which handler is the default.
    """
    result: list[Override] = []
    for flag, dotted in FLAG_KEYS.items():
        value = flags.get(flag)
        if value is None or value == () or value == []:
            continue
        if isinstance(value, tuple):
            value = list(value)
        result.append(Override(dotted, value, "--" + flag.replace("_", "-")))
    if flags.get("debug"):
        result.append(Override("crio.runtime.log_level", "debug", "--debug"))
    runtime = flags.get("runtime")
    if runtime:
        name = default_runtime_hint or "runc"
        result.append(Override(f"{schema.RUNTIMES_TABLE}.{name}.runtime_path", runtime, "--runtime"))
    return result


# Command-line flags that map one-to-one onto configuration keys.
FLAG_KEYS: dict[str, str] = {
    "listen": "crio.api.listen",
    "root": "crio.root",
    "runroot": "crio.runroot",
    "storage_driver": "crio.storage_driver",
    "storage_opt": "crio.storage_option",
    "conmon": "crio.runtime.conmon",
    "cgroup_manager": "crio.runtime.cgroup_manager",
    "cni_config_dir": "crio.network.network_dir",
    "cni_plugin_dir": "crio.network.plugin_dirs",
    "pause_image": "crio.image.pause_image",
    "signature_policy": "crio.image.signature_policy",
    "registries_conf": "crio.image.registries_conf",
    "log_level": "crio.runtime.log_level",
    "streaming_address": "crio.api.stream_address",
    "metrics_port": "crio.metrics.metrics_port",
    "default_runtime": "crio.runtime.default_runtime",
}


def load_with_flags(config_file: str | None, config_dir: str | None, flags: Mapping[str, Any]) -> Config:
    """Load files, then apply command-line ``flags``; ``--runtime`` targets the effective default runtime."""
    without_runtime = {k: v for k, v in flags.items() if k != "runtime"}
    config = load(config_file, config_dir, overrides_from_flags(without_runtime))
    if flags.get("runtime"):
        override = overrides_from_flags({"runtime": flags["runtime"]}, config.default_runtime)
        for item in override:
            _apply_override(config, item)
    return config


def effective_notices(config: Config) -> Iterable[str]:
    """Return the notices about keys that were set but have no effect, each once."""
    return list(dict.fromkeys(config.notices))
