"""The one place where RPCs are logged and core errors become gRPC status codes."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from crio.core.errors import CrioError

log = logging.getLogger("crio.rpc")

# Request fields that identify the object an RPC acts on, in the order they are logged.
_ID_FIELDS = ("pod_sandbox_id", "container_id", "image", "metadata", "filter")


def object_ids(request: Any) -> str:
    """Return ``key=value`` pairs naming the objects a request refers to (pod, container, image, name)."""
    parts = []
    for name in _ID_FIELDS:
        if name not in getattr(request, "DESCRIPTOR", None).fields_by_name:  # type: ignore[union-attr]
            continue
        value = getattr(request, name)
        if name == "image":
            value = value.image
        elif name == "metadata":
            value = value.name
        elif name == "filter":
            value = getattr(value, "id", "") if request.HasField("filter") else ""
        if value:
            parts.append(f"{name}={value}")
    for name in ("config",):
        field = request.DESCRIPTOR.fields_by_name.get(name)
        if field is not None and request.HasField(name) and hasattr(getattr(request, name), "metadata"):
            parts.append(f"name={getattr(request, name).metadata.name}")
    return " ".join(parts)


def status_code(error: CrioError) -> grpc.StatusCode:
    """Map a core error to its gRPC status code (INTERNAL when its code names none)."""
    code = getattr(grpc.StatusCode, error.code, None)
    return (
        code
        if isinstance(code, grpc.StatusCode) and code != grpc.StatusCode.UNKNOWN
        else grpc.StatusCode.INTERNAL
    )


def _log_call(method: str, request: Any, started: float, code: grpc.StatusCode, message: str = "") -> None:
    duration_ms = (time.monotonic() - started) * 1000
    ids = object_ids(request)
    line = f"rpc method={method}{' ' + ids if ids else ''} code={code.name} duration_ms={duration_ms:.2f}"
    if code == grpc.StatusCode.OK:
        log.debug(line)
    elif code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
        log.debug("%s error=%r", line, message)
    else:
        log.error("%s error=%r", line, message)


async def _abort(context: aio.ServicerContext[Any, Any], method: str, exc: Exception) -> Any:
    if isinstance(exc, CrioError):
        await context.abort(status_code(exc), str(exc))
    log.exception("rpc method=%s crashed", method)
    await context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error: {type(exc).__name__}: {exc}")


def wrap_unary(
    method: str, behavior: Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]
) -> Callable[[Any, aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    """Wrap a unary handler: log one line per call and map exceptions to status codes."""

    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        started = time.monotonic()
        try:
            response = await behavior(request, context)
        except aio.AbortError:
            _log_call(
                method, request, started, context.code() or grpc.StatusCode.UNKNOWN, context.details() or ""
            )
            raise
        except Exception as exc:
            code = status_code(exc) if isinstance(exc, CrioError) else grpc.StatusCode.INTERNAL
            _log_call(method, request, started, code, str(exc))
            return await _abort(context, method, exc)
        _log_call(method, request, started, grpc.StatusCode.OK)
        return response

    return handler


def wrap_stream(
    method: str, behavior: Callable[[Any, aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
) -> Callable[[Any, aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
    """Wrap a server-streaming handler the same way as :func:`wrap_unary`."""

    async def handler(request: Any, context: aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        started = time.monotonic()
        try:
            async for item in behavior(request, context):
                yield item
        except aio.AbortError:
            _log_call(
                method, request, started, context.code() or grpc.StatusCode.UNKNOWN, context.details() or ""
            )
            raise
        except Exception as exc:
            code = status_code(exc) if isinstance(exc, CrioError) else grpc.StatusCode.INTERNAL
            _log_call(method, request, started, code, str(exc))
            await _abort(context, method, exc)
            return
        _log_call(method, request, started, grpc.StatusCode.OK)

    return handler
