"""The hook specifications: the one contract between the crio core and its plugins.

A plugin is a module (or object) registered through an entry point in the group ``crio.plugins`` whose
functions are marked with :data:`hookimpl` and named after the specifications below. A plugin implements
only the hooks it really serves; the core never imports a plugin.

Conventions:

* Hooks marked *firstresult* stop at the first implementation that returns something other than
  ``None``. A plugin that does not serve the given handler, driver, transport or reference returns
  ``None`` so the next plugin is asked.
* Hooks that do I/O return an *awaitable*: the implementation decides synchronously whether it serves
  the call (``None`` if not) and then returns a coroutine that the core awaits on its event loop.
  Implementations never block the loop; blocking work goes to an executor.
* Errors are raised as :mod:`crio.core.errors` exceptions, whose class says the gRPC status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from crio.core.config import Config
    from crio.core.types import (
        ContainerBundle,
        ContainerRuntimeState,
        ExecResult,
        ImageReference,
        ImageSource,
        NetworkStatus,
        PodNetworkRequest,
        PodNetworkResult,
        PullOptions,
        RuntimeContainer,
        RuntimeFeatures,
        RuntimeHandler,
        SecurityRequest,
        StdioSession,
        StorageContext,
    )

PROJECT = "crio"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --------------------------------------------------------------------------------------------------
# Plugin lifecycle
# --------------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def crio_plugin_unavailable(config: Config) -> str | None:
    """Say why this plugin cannot work on this host, or ``None`` when it can.

    Called once per plugin, on that plugin alone, right after it is loaded and before any other hook.
    A returned reason (e.g. "AppArmor is not enabled in the kernel") makes the plugin *skipped*: it is
    unregistered and ``crio plugins`` shows the reason.
    """


@hookspec
def crio_configure(config: Config) -> None:
    """Receive the daemon's effective configuration once all plugins are loaded (and again on SIGHUP).

    Returns nothing. Raise :class:`crio.core.errors.InvalidArgument` to refuse the configuration; the daemon
    then stops with exit code 1 and the message.
    """


@hookspec
def crio_shutdown() -> Awaitable[None] | None:
    """Release what the plugin holds when the daemon stops gracefully. Returns ``None`` or an awaitable."""


# --------------------------------------------------------------------------------------------------
# Runtime handlers (OCI runtimes)
# --------------------------------------------------------------------------------------------------


@hookspec
def crio_runtime_types() -> Sequence[str]:
    """Return the ``runtime_type`` values this plugin drives (the runc plugin: ``["oci"]``).

    Results of all plugins are concatenated; the daemon refuses to start when a configured runtime handler
    has a type no loaded plugin drives.
    """


@hookspec(firstresult=True)
def crio_runtime_features(handler: RuntimeHandler) -> Awaitable[RuntimeFeatures] | None:
    """Report what ``handler`` supports (recursive read-only mounts, user namespaces, ...).

    firstresult. Returns ``None`` when this plugin does not drive ``handler.runtime_type``; otherwise an
    awaitable of :class:`crio.core.types.RuntimeFeatures`.
    """


@hookspec(firstresult=True)
def crio_runtime_create(
    handler: RuntimeHandler, container: ContainerBundle
) -> Awaitable[ContainerRuntimeState] | None:
    """Create ``container`` from its bundle (``config.json`` in ``container.bundle``) under its monitor.

    firstresult; ``None`` if this plugin does not drive ``handler.runtime_type``. The awaitable resolves
    to the created container's state (status "created" and its pid).
    """


@hookspec(firstresult=True)
def crio_runtime_start(handler: RuntimeHandler, container: ContainerBundle) -> Awaitable[None] | None:
    """Start a created container. firstresult; ``None`` if not this plugin's runtime type."""


@hookspec(firstresult=True)
def crio_runtime_kill(
    handler: RuntimeHandler, container: ContainerBundle, signal: int, all_processes: bool
) -> Awaitable[None] | None:
    """Send ``signal`` to the container's init process (or to all its processes when ``all_processes``).

    firstresult; ``None`` if not this plugin's runtime type.
    """


@hookspec(firstresult=True)
def crio_runtime_delete(
    handler: RuntimeHandler, container: ContainerBundle, force: bool
) -> Awaitable[None] | None:
    """Delete the runtime's state of a stopped (or, with ``force``, any) container.

    firstresult; ``None`` if not this plugin's runtime type. Deleting an unknown container succeeds.
    """


@hookspec(firstresult=True)
def crio_runtime_state(
    handler: RuntimeHandler, container: ContainerBundle
) -> Awaitable[ContainerRuntimeState] | None:
    """Query the runtime's view of a container. firstresult; ``None`` if not this plugin's runtime type."""


@hookspec(firstresult=True)
def crio_runtime_wait(
    handler: RuntimeHandler, container: ContainerBundle
) -> Awaitable[ContainerRuntimeState] | None:
    """Wait until ``container`` has exited, without polling; resolve to its stopped state.

    The state carries the exit code and finish time the monitor recorded; a container that has already
    exited resolves at once. Raises :class:`crio.core.errors.Unavailable` when the monitor died without
    recording the exit. Cancelling the awaitable only stops the wait. firstresult; ``None`` if not this
    plugin's runtime type.
    """


@hookspec(firstresult=True)
def crio_runtime_exec_sync(
    handler: RuntimeHandler,
    container: ContainerBundle,
    command: Sequence[str],
    timeout: float,
    output_limit: int,
) -> Awaitable[ExecResult] | None:
    """Run ``command`` in the container and wait for it, at most ``timeout`` seconds (0: no limit).

    Each of stdout and stderr is captured up to ``output_limit`` bytes. On timeout the exec'd process is
    killed and :class:`crio.core.errors.DeadlineExceeded` is raised. firstresult; ``None`` if not this
    plugin's runtime type.
    """


@hookspec(firstresult=True)
def crio_runtime_exec(
    handler: RuntimeHandler,
    container: ContainerBundle,
    command: Sequence[str],
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
) -> Awaitable[StdioSession] | None:
    """Start ``command`` in the running container with its standard streams relayed (CRI Exec).

    ``tty`` gives the command a terminal (one output, resizable); otherwise ``stdin``/``stdout``/``stderr``
    say which streams the client wants (the others are /dev/null). The awaitable resolves to a
    :class:`crio.core.types.StdioSession` once the command was started; its ``wait`` gives the exit code
    (a command the runtime could not start exits as the runtime did, with the runtime's message on the
    session's error output). ``close`` kills the command if it still runs. firstresult; ``None`` if not
    this plugin's runtime type.
    """


@hookspec(firstresult=True)
def crio_runtime_attach(
    handler: RuntimeHandler, container: ContainerBundle, stdin: bool, stdout: bool, stderr: bool
) -> Awaitable[StdioSession] | None:
    """Attach to the running container's own standard streams through its monitor (CRI Attach).

    The session's output is what the container prints from now on (``stdout``/``stderr`` select which is
    relayed); ``write`` feeds the container's stdin when it was created with stdin; ``close_stdin`` ends
    the attach's input (the monitor then closes the container's stdin if it was created ``stdin_once``);
    ``resize`` resizes the container's terminal. ``wait`` resolves to ``None``; the output ends when the
    container exits. firstresult; ``None`` if not this plugin's runtime type.
    """


@hookspec(firstresult=True)
def crio_runtime_reopen_log(handler: RuntimeHandler, container: ContainerBundle) -> Awaitable[None] | None:
    """Make the container's monitor reopen its CRI log file (after the kubelet rotated it).

    firstresult; ``None`` if not this plugin's runtime type.
    """


@hookspec(firstresult=True)
def crio_runtime_update(
    handler: RuntimeHandler, container: ContainerBundle, resources: Mapping[str, Any]
) -> Awaitable[None] | None:
    """Apply new OCI ``linux.resources`` to a running container. firstresult; ``None`` if not ours."""


@hookspec(firstresult=True)
def crio_runtime_list(handler: RuntimeHandler) -> Awaitable[Sequence[RuntimeContainer]] | None:
    """List every container in ``handler``'s runtime state directory (its ``runtime_root``), whoever made it.

    The state directory may be shared with other crio daemons and with podman: the list is not filtered,
    and the caller decides which containers are its own (the start-up sweep, :mod:`crio.core.sweep`, by
    their bundle directory and annotations). firstresult; ``None`` if not this plugin's runtime type;
    otherwise an awaitable of :class:`crio.core.types.RuntimeContainer` (an empty or missing state
    directory gives an empty list).
    """


# --------------------------------------------------------------------------------------------------
# Storage drivers (containers/storage graph drivers)
#
# The core owns the store's records, locks, mount counts and layer extraction; a driver owns its directory
# layout and mounts. Storage hooks are synchronous: the core calls them from worker threads, never from the
# event loop, so they may block.
# --------------------------------------------------------------------------------------------------


@hookspec
def crio_storage_driver_names() -> Sequence[str]:
    """Return the containers/storage driver names this plugin implements (e.g. ``["overlay"]``).

    Results of all plugins are concatenated, in plugin order; when the config leaves ``storage_driver``
    empty the core takes the first name whose plugin is loaded (overlay before vfs).
    """


@hookspec(firstresult=True)
def crio_storage_init(ctx: StorageContext) -> bool | None:
    """Prepare the driver's home (``<graphroot>/<driver>``) and run home; return True.

    firstresult; ``None`` if ``ctx.driver`` is not this plugin's. Raise
    :class:`crio.core.errors.InvalidArgument` for a bad driver option in ``ctx.options``.
    """


@hookspec(firstresult=True)
def crio_storage_diff_format(ctx: StorageContext) -> str | None:
    """Say how layer diffs are laid down in the directory returned by :func:`crio_storage_create_layer`.

    ``"overlay"``: whiteouts become 0:0 character devices and opaque directories get the overlay opaque
    xattr (the layer holds only its own changes); ``"apply"``: whiteouts are executed (the directory already
    holds a full copy of the parent). firstresult; ``None`` if not this plugin's driver.
    """


@hookspec(firstresult=True)
def crio_storage_create_layer(ctx: StorageContext, layer_id: str, parent_id: str | None) -> Path | None:
    """Create the driver's directories for a new layer on top of ``parent_id``.

    Returns the directory the layer's diff is extracted into (overlay: ``<id>/diff``; vfs: a copy of the
    parent's tree). A layer that exists already is an error. firstresult; ``None`` if not this driver.
    """


@hookspec(firstresult=True)
def crio_storage_mount(
    ctx: StorageContext, layer_id: str, mount_label: str, options: Sequence[str]
) -> Path | None:
    """Mount the layer with all its parents and return the mount point.

    Called by the core only when the layer's mount count goes from 0 to 1. firstresult; ``None`` if not ours.
    """


@hookspec(firstresult=True)
def crio_storage_mount_readonly(
    ctx: StorageContext, layer_id: str, target: Path, mount_label: str, options: Sequence[str]
) -> bool | None:
    """Mount the layer with its parents read-only on ``target`` (an existing empty directory); return True.

    An extra mount, independent of the layer's own (counted) mount: the core uses it for image volumes and
    unmounts it itself with ``umount2(2)``. overlay: an overlay of lower directories only; vfs: a read-only
    bind of the layer's directory. ``options`` are mount flags (``nodev``, ``nosuid``) and the id-map
    options of :func:`crio_storage_mount`. firstresult; ``None`` if not ours.
    """


@hookspec(firstresult=True)
def crio_storage_unmount(ctx: StorageContext, layer_id: str) -> bool | None:
    """Unmount a layer (its mount count reached 0); return True. firstresult; ``None`` if not ours."""


@hookspec(firstresult=True)
def crio_storage_remove_layer(ctx: StorageContext, layer_id: str) -> bool | None:
    """Delete a layer's directories (an absent layer is fine); return True. firstresult."""


@hookspec(firstresult=True)
def crio_storage_layer_size(ctx: StorageContext, layer_id: str) -> tuple[int, int] | None:
    """Return ``(bytes, inodes)`` used by the layer's own data. firstresult; ``None`` if not ours."""


@hookspec(firstresult=True)
def crio_storage_shutdown(ctx: StorageContext) -> bool | None:
    """Release the driver (unmount its home); called only when no layer is mounted. firstresult."""


# --------------------------------------------------------------------------------------------------
# Image transports
# --------------------------------------------------------------------------------------------------


@hookspec
def crio_image_transports() -> Sequence[str]:
    """Return the transport names this plugin serves (``docker``, ``oci``, ``oci-archive``, ...).

    Results of all plugins are concatenated.
    """


@hookspec(firstresult=True)
def crio_image_open(reference: ImageReference, options: PullOptions) -> Awaitable[ImageSource] | None:
    """Open an image source for ``reference`` (credentials and registries view in ``options``).

    The awaitable resolves to a :class:`crio.core.types.ImageSource`. firstresult; ``None`` if
    ``reference.transport`` is not this plugin's.
    """


# --------------------------------------------------------------------------------------------------
# Network managers
# --------------------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def crio_network_status() -> NetworkStatus | None:
    """Report whether pod networking is ready (the CRI NetworkReady condition).

    firstresult. Cheap and non-blocking: called on every Status RPC. ``None`` when this plugin manages
    no network.
    """


@hookspec(firstresult=True)
def crio_network_setup(request: PodNetworkRequest) -> Awaitable[PodNetworkResult] | None:
    """Attach a pod's network namespace (``request.netns_path``) to the pod network.

    firstresult; the awaitable resolves to the pod's addresses. A failure leaves nothing attached.
    """


@hookspec(firstresult=True)
def crio_network_teardown(request: PodNetworkRequest) -> Awaitable[None] | None:
    """Detach a pod from the network and release its addresses. Idempotent. firstresult."""


@hookspec(firstresult=True)
def crio_network_pod_status(request: PodNetworkRequest) -> Awaitable[PodNetworkResult] | None:
    """Return the addresses currently held by a pod. firstresult."""


@hookspec(firstresult=True)
def crio_network_check(request: PodNetworkRequest) -> Awaitable[None] | None:
    """Verify that a pod's attachment is still as it was set up (CNI CHECK). firstresult.

    The awaitable raises when the attachment is broken, :class:`crio.core.errors.NotFound` when the pod is
    not attached; it does nothing when the network does not support checks.
    """


@hookspec
def crio_network_gc(active_pod_ids: Sequence[str]) -> Awaitable[None] | None:
    """Release the attachments of pods that no longer exist (every pod not in ``active_pod_ids``).

    Called at daemon start with the IDs of the pods the daemon knows. Every network plugin is called and
    each returned awaitable is awaited; failures are logged by the plugin, not raised.
    """


# --------------------------------------------------------------------------------------------------
# Security (seccomp, AppArmor, SELinux, ...)
# --------------------------------------------------------------------------------------------------


@hookspec
def crio_security_validate(request: SecurityRequest) -> Awaitable[None] | None:
    """Check the security settings of a pod or container request before anything is created.

    Every security plugin is called. Raise :class:`crio.core.errors.InvalidArgument` (or ``NotFound`` for
    a missing profile) to refuse the request. A check that does I/O (reading a profile file) returns an
    awaitable, which the core awaits and which raises the same errors.
    """


@hookspec
def crio_security_adjust_spec(request: SecurityRequest, spec: dict[str, Any]) -> Awaitable[None] | None:
    """Adjust the generated OCI runtime spec ``spec`` in place (seccomp filter, AppArmor profile, labels).

    Every security plugin is called, in registration order; an implementation that does I/O returns an
    awaitable, and the core awaits those awaitables one after the other, in the same order.
    """


@hookspec
def crio_security_features() -> Mapping[str, Any]:
    """Report this plugin's security features (e.g. ``{"seccomp": {"enabled": True}}``) for Status info.

    Results of all plugins are merged. A top-level key (``seccomp``, ``apparmor``, ``selinux``) whose value
    has ``"enabled": True`` tells the core that a loaded plugin serves that kind of profile: a request asking
    for one that no plugin serves is refused, never run unconfined (see :mod:`crio.core.security`).
    """
