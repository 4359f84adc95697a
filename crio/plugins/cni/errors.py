"""Errors of CNI operations: a plugin's own error, a plugin that cannot run or does not answer in time."""

from __future__ import annotations

from crio.core.errors import CrioError


class CniError(CrioError):
    """A CNI operation failed; the message names the network, the plugin and the command.

    A plugin's failure is a failure of a host tool the runtime depends on: INTERNAL, with the plugin's own
    words, never UNKNOWN.
    """

    code = "INTERNAL"


class CniPluginError(CniError):
    """A plugin reported an error (``{"code", "msg", "details"}`` on stdout) or failed without one."""

    def __init__(
        self, message: str, plugin: str, cni_code: int = 0, msg: str = "", details: str = ""
    ) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.cni_code = cni_code
        self.msg = msg
        self.details = details


class CniTimeout(CniError):
    """A plugin did not finish within the time limit and was killed."""

    code = "DEADLINE_EXCEEDED"


class CniPluginNotFound(CniPluginError):
    """The plugin's binary is in none of the plugin directories (so it never ran): the node's network
    configuration names a plugin it does not have."""

    code = "FAILED_PRECONDITION"
