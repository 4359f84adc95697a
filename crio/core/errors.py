"""Errors raised by core services and plugins.

The core never imports the gRPC layer: services raise these exceptions and the server's single
interceptor maps each class to its gRPC status code.
"""

from __future__ import annotations


class CrioError(Exception):
    """Base class of every error crio reports to a client.

    ``code`` names the gRPC status the interceptor answers with (``grpc.StatusCode`` member name). A
    subclass that names none is an unexpected failure: INTERNAL, never UNKNOWN.
    """

    code = "INTERNAL"


class InvalidArgument(CrioError):
    """The request is malformed or names something that can never work."""

    code = "INVALID_ARGUMENT"


class NotFound(CrioError):
    """The request names an object that does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(CrioError):
    """The request would create an object whose name is taken."""

    code = "ALREADY_EXISTS"


class FailedPrecondition(CrioError):
    """The object is in a state that does not allow the operation."""

    code = "FAILED_PRECONDITION"


class DeadlineExceeded(CrioError):
    """The operation did not finish within its time limit."""

    code = "DEADLINE_EXCEEDED"


class Unimplemented(CrioError):
    """The operation is not implemented (yet) by crio or by any loaded plugin."""

    code = "UNIMPLEMENTED"


class Unavailable(CrioError):
    """A dependency (runtime, network, storage) cannot serve the request right now."""

    code = "UNAVAILABLE"


class Unauthenticated(CrioError):
    """A registry refused the credentials, or wants some and none were given."""

    code = "UNAUTHENTICATED"


class PermissionDenied(CrioError):
    """Policy forbids the operation: a blocked registry, an image the signature policy rejects."""

    code = "PERMISSION_DENIED"


class Internal(CrioError):
    """A bug or an unexpected failure of a host tool."""

    code = "INTERNAL"
