"""The core's side of the security hooks: refuse what no plugin serves, then let the plugins check and adjust.

A request that asks for confinement (a seccomp or AppArmor profile, SELinux options) must get it or fail: when
no loaded plugin reports the feature (``crio_security_features``), the request is refused with
:class:`crio.core.errors.FailedPrecondition` naming the plugin and why it is not loaded, never run unconfined.
One lenient case: AppArmor's runtime default when the ``apparmor`` plugin was *skipped* (the host kernel has
no AppArmor), where the runtime's default is no profile at all, as with CRI-O on such hosts.

The hook contract (:class:`crio.core.types.SecurityRequest`) hands plugins the CRI security contexts as plain
dicts in ``MessageToDict`` form, as it did before the core had typed records, so that out-of-tree plugins
keep working: :func:`pod_request` and :func:`container_request` are the one place they are built from the
records.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from crio.core import security_profiles as profiles
from crio.core.crirecords import ContainerConfig, PodSandboxConfig
from crio.core.errors import FailedPrecondition
from crio.core.plugins import SKIPPED, PluginManager, PluginReport
from crio.core.types import SecurityRequest

log = logging.getLogger(__name__)

SECCOMP = "seccomp"
APPARMOR = "apparmor"
SELINUX = "selinux"


@dataclass(frozen=True)
class Need:
    """One kind of confinement a request needs: the feature, what was asked (for the error), and whether it
    may go unserved when the feature's plugin was skipped because the host lacks it."""

    feature: str
    what: str
    lenient_when_skipped: bool = False


def pod_request(config: PodSandboxConfig, pod_id: str = "") -> SecurityRequest:
    """What the security plugins see of a pod: its security context (privileged or not) and annotations."""
    context = config.security_context
    return SecurityRequest(
        kind="pod",
        name=config.metadata.name,
        security_context=context.to_dict(),
        annotations=dict(config.annotations),
        privileged=context.privileged,
        pod_id=pod_id,
    )


def container_request(
    config: ContainerConfig, pod_id: str, pod_config: PodSandboxConfig, pod_spec: Mapping[str, Any]
) -> SecurityRequest:
    """What the security plugins see of a container: its and its pod's security contexts, its annotations,
    and the OCI spec of the pod's infra container."""
    context = config.security_context
    return SecurityRequest(
        kind="container",
        name=config.metadata.name,
        security_context=context.to_dict(),
        annotations=dict(config.annotations),
        privileged=context.privileged,
        pod_id=pod_id,
        pod_security_context=pod_config.security_context.to_dict(),
        pod_spec=pod_spec,
    )


def needs(request: SecurityRequest) -> list[Need]:
    """The confinement ``request`` asks for. Privileged requests ignore seccomp and AppArmor profiles."""
    context = request.security_context
    result: list[Need] = []
    if not request.privileged:
        seccomp = profiles.seccomp_choice(context)
        if seccomp.confines:
            ref = f" {seccomp.ref}" if seccomp.ref else ""
            result.append(Need(SECCOMP, f"seccomp profile {seccomp.kind}{ref}"))
        apparmor = profiles.apparmor_choice(context)
        if apparmor.confines:
            ref = f" {apparmor.ref}" if apparmor.ref else ""
            lenient = apparmor.kind == profiles.RUNTIME_DEFAULT
            result.append(Need(APPARMOR, f"AppArmor profile {apparmor.kind}{ref}", lenient))
        options = profiles.selinux_options(context)
        if options:
            shown = ", ".join(f"{k}={v}" for k, v in options.items())
            result.append(Need(SELINUX, f"SELinux options ({shown})"))
    return result


def served(features: Mapping[str, Any]) -> set[str]:
    """The features the merged ``crio_security_features`` results say are enabled."""
    return {
        name
        for name, value in features.items()
        if isinstance(value, Mapping) and value.get("enabled") is True
    }


def _report(reports: Iterable[PluginReport], feature: str) -> PluginReport | None:
    return next((r for r in reports if r.name == feature), None)


def refuse_unserved(
    request: SecurityRequest, features: Mapping[str, Any], reports: Iterable[PluginReport]
) -> None:
    """Raise FailedPrecondition when ``request`` needs confinement that no loaded plugin serves."""
    available = served(features)
    reports = list(reports)
    for need in needs(request):
        if need.feature in available:
            continue
        report = _report(reports, need.feature)
        if need.lenient_when_skipped and report is not None and report.state == SKIPPED:
            log.info(
                "%s %s: %s requested, none applied: plugin %s skipped (%s)",
                request.kind,
                request.name,
                need.what,
                need.feature,
                report.reason,
            )
            continue
        why = (
            f"plugin {need.feature} is {report.state}: {report.reason}"
            if report is not None
            else f"no loaded plugin serves {need.feature}"
        )
        raise FailedPrecondition(
            f"{request.kind} {request.name} asks for the {need.what}, but {why}; "
            "refusing to run it unconfined"
        )


def merged_features(plugins: PluginManager) -> dict[str, Any]:
    """Every loaded plugin's ``crio_security_features``, merged."""
    merged: dict[str, Any] = {}
    for part in plugins.hook.crio_security_features():
        if part:
            merged.update(part)
    return merged


async def _await_all(results: Iterable[Any]) -> None:
    """Await the awaitables among hook results in order; on a failure, close the ones not awaited yet."""
    pending = list(results)
    try:
        for result in pending:
            if inspect.isawaitable(result):
                await result
    finally:
        for result in pending:
            if inspect.iscoroutine(result):
                result.close()  # a no-op for a finished coroutine


async def check(plugins: PluginManager, request: SecurityRequest) -> None:
    """Refuse unserved confinement, then run every plugin's validation (before anything is created)."""
    refuse_unserved(request, merged_features(plugins), plugins.reports)
    await _await_all(plugins.hook.crio_security_validate(request=request))


async def adjust(plugins: PluginManager, request: SecurityRequest, spec: dict[str, Any]) -> None:
    """Let every plugin adjust ``spec`` (seccomp filter, AppArmor profile, SELinux labels)."""
    await _await_all(plugins.hook.crio_security_adjust_spec(request=request, spec=spec))
