"""The ``crio`` command (alias ``ocid``): the daemon and its subcommands config, plugins, version."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import click

import crio
from crio.core import config as configmod
from crio.core import logs
from crio.core.errors import CrioError
from crio.core.plugins import PluginManager, format_reports
from crio.core.server import socket as crisocket
from crio.core.server.socket import SocketInUse

_FILE_FLAGS = ("config_file", "config_dir")


def _options(func: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--config", "config_file", metavar="FILE", help="Config file (default /etc/crio/crio.conf)."
        ),
        click.option(
            "--config-dir", metavar="DIR", help="Drop-in directory (default /etc/crio/crio.conf.d)."
        ),
        click.option("--listen", metavar="PATH", help="CRI unix socket path."),
        click.option("--root", metavar="DIR", help="containers/storage graph root."),
        click.option("--runroot", metavar="DIR", help="containers/storage run root."),
        click.option("--storage-driver", metavar="NAME", help="Storage driver (overlay, vfs)."),
        click.option(
            "--storage-opt", multiple=True, metavar="OPT", help="Storage driver option (repeatable)."
        ),
        click.option("--runtime", metavar="PATH", help="OCI runtime binary of the default runtime handler."),
        click.option(
            "--default-runtime", metavar="NAME", help="Runtime handler used for an empty handler name."
        ),
        click.option("--conmon", metavar="PATH", help="conmon binary."),
        click.option("--cgroup-manager", metavar="NAME", help="Cgroup manager (cgroupfs)."),
        click.option("--cni-config-dir", metavar="DIR", help="CNI configuration directory."),
        click.option(
            "--cni-plugin-dir", multiple=True, metavar="DIR", help="CNI plugin directory (repeatable)."
        ),
        click.option("--pause-image", metavar="IMAGE", help="Pod infrastructure image."),
        click.option("--signature-policy", metavar="FILE", help="containers-policy.json path."),
        click.option("--registries-conf", metavar="FILE", help="containers-registries.conf path."),
        click.option("--log-level", metavar="LEVEL", help="trace, debug, info, warn, error, fatal."),
        click.option("--debug", is_flag=True, default=None, help="Same as --log-level debug."),
        click.option("--streaming-address", metavar="ADDR", help="Streaming server address."),
        click.option("--metrics-port", type=int, metavar="PORT", help="Metrics port."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load(flags: dict[str, Any]) -> configmod.Config:
    overrides = {k: v for k, v in flags.items() if k not in _FILE_FLAGS}
    return configmod.load_with_flags(flags.get("config_file"), flags.get("config_dir"), overrides)


def _fail(message: str) -> None:
    click.echo(f"crio: {message}", err=True)
    sys.exit(1)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@_options
@click.version_option(crio.__version__, "--version", prog_name="crio")
@click.pass_context
def main(ctx: click.Context, /, **flags: Any) -> None:
    """crio: a Kubernetes CRI v1 runtime daemon. Without a subcommand, runs the daemon."""
    ctx.obj = flags
    if ctx.invoked_subcommand is not None:
        return
    try:
        config = _load(flags)
        configmod.check_paths(config)
    except configmod.ConfigError as exc:
        _fail(f"invalid configuration: {exc}")
    sys.exit(run_daemon(config, lambda: _load(flags)))


def run_daemon(config: configmod.Config, reload: Callable[[], configmod.Config]) -> int:
    """Load the plugins and run the daemon until it is told to stop; return the exit code."""
    from crio.core.daemon import Daemon

    logs.configure(config.log_level)
    try:
        crisocket.prepare(config.listen)  # refuse a live socket before touching anything else
    except SocketInUse as exc:
        _fail(str(exc))
    plugins = PluginManager()
    plugins.load_entry_points(config)
    try:
        plugins.hook.crio_configure(config=config)
    except CrioError as exc:
        _fail(f"a plugin refused the configuration: {exc}")
    served = {t for types in plugins.hook.crio_runtime_types() for t in types}
    for name, table in config.runtimes.items():
        if table["runtime_type"] not in served:
            dotted = f"crio.runtime.runtimes.{name}.runtime_type"
            _fail(
                f"invalid configuration: {config.source(dotted)}: {dotted}: no loaded plugin drives "
                f"runtime type {table['runtime_type']!r} (served: {', '.join(sorted(served)) or 'none'})"
            )
    try:
        return asyncio.run(Daemon(config, plugins, reload).run())
    except SocketInUse as exc:
        _fail(str(exc))
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        return 130
    return 1


@main.command("config")
@click.pass_obj
def config_command(flags: dict[str, Any]) -> None:
    """Print the effective configuration as TOML (loads back unchanged with --config)."""
    try:
        config = _load(flags)
    except configmod.ConfigError as exc:
        _fail(f"invalid configuration: {exc}")
    for notice in configmod.effective_notices(config):
        click.echo(f"crio: warning: {notice}", err=True)
    click.echo(config.to_toml(), nl=False)


@main.command("plugins")
@click.pass_obj
def plugins_command(flags: dict[str, Any]) -> None:
    """List every discovered plugin: loaded, skipped or disabled, and why."""
    try:
        config = _load(flags)
    except configmod.ConfigError as exc:
        _fail(f"invalid configuration: {exc}")
    logs.configure("error")
    plugins = PluginManager()
    plugins.load_entry_points(config)
    click.echo(format_reports(plugins.reports))


@main.command("version")
def version_command() -> None:
    """Print crio's version and the CRI API it implements."""
    from crio.core.api import CRI_API_VERSION

    click.echo(f"crio version {crio.__version__}\nCRI API: runtime.v1 (k8s.io/cri-api {CRI_API_VERSION})")
