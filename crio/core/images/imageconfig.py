"""Start-up validation and SIGHUP reload of the image configuration files: registries.conf with its
drop-ins, containers-registries.d, and the signature policies.

A malformed file stops start-up with its name, line and problem. On reload a malformed file keeps the
configuration that was in force and the problem is logged; a pull never sees a half-read configuration.
"""

from __future__ import annotations

import logging

from crio.core.config import Config
from crio.core.errors import InvalidArgument
from crio.core.images import registries
from crio.core.images.imagetrust import ImageTrust
from crio.core.images.trust.registries_d import load_registries_d

log = logging.getLogger(__name__)

SUPPORTED_CREDENTIAL_HELPERS = ("containers-auth.json",)


def _registries(config: Config) -> tuple[str, str]:
    return (
        str(config.get("crio.image.registries_conf")),
        str(config.get("crio.image.registries_conf_dir")),
    )


def validate(config: Config, trust: ImageTrust) -> list[str]:
    """Check every image configuration file; raise :class:`InvalidArgument` naming the file, line and
    problem of the first malformed one; return warnings for the log."""
    conf = registries.validate(*_registries(config))
    warnings = _helper_warnings(conf)
    load_registries_d(str(config.get("crio.image.registries_d")))
    warnings += trust.validate()
    return warnings


def reload(config: Config, trust: ImageTrust) -> None:
    """Re-read the files (SIGHUP); a malformed one is logged and the previous configuration stays."""
    try:
        conf = registries.reload(*_registries(config), force=True)
        for warning in _helper_warnings(conf):
            log.warning("%s", warning)
        log.info("reloaded registries configuration from %s", ", ".join(conf.files) or "(no files)")
    except InvalidArgument as exc:
        log.error("registries configuration reload failed, keeping the previous one: %s", exc)
    try:
        load_registries_d(str(config.get("crio.image.registries_d")))
    except InvalidArgument as exc:
        log.error("registries.d reload failed: %s", exc)
    try:
        for warning in trust.validate():
            log.warning("%s", warning)
    except InvalidArgument as exc:
        log.error("signature policy reload failed, keeping the previous one: %s", exc)


def _helper_warnings(conf: registries.RegistriesConf) -> list[str]:
    unsupported = [h for h in conf.credential_helpers if h not in SUPPORTED_CREDENTIAL_HELPERS]
    if not unsupported:
        return []
    return [
        f"{conf.sources}: credential-helpers {', '.join(unsupported)} are not supported; "
        "only containers-auth.json files are consulted"
    ]
