"""The generic converter behind every CRI record: protobuf message → record, record ⇄ dict.

A record class is a frozen dataclass named like the CRI v1 message it mirrors (``runtime.v1.<ClassName>``),
whose fields are a subset of the message's fields, with the same names. How each field converts is read
once per class from two sources, and both must agree (a mismatch is a ``TypeError`` at the first use):

- the message's descriptor in :mod:`crio.core.api.api_pb2`, for the wire type (int32 or int64, enum,
  bytes, map, nested message);
- the field's type hint, for the Python shape:

  ========================  =========================================================================
  ``str``/``bool``/``int``  a scalar; an enum is ``str`` (its value name, see below)
  ``bytes``                 a bytes field
  ``X`` (a record)          a nested message where "absent" and "empty" mean the same (an empty X)
  ``X | None``              a nested message whose presence matters (None: absent)
  ``int | None``            a ``runtime.v1.Int64Value`` wrapper, flattened (None: absent)
  ``tuple[T, ...]``         a repeated field
  ``Mapping[str, str]``     a map field
  ========================  =========================================================================

Enum values are their names ("POD", "PROPAGATION_PRIVATE"); a number the generated code does not know
(proto3 enums are open) becomes its decimal string, so that the core can refuse it by name.

The dict form is what ``json_format.MessageToDict(message, preserving_proto_field_name=True)`` writes, the
form crio persisted before records existed: default values omitted, enums as names, 64-bit integers as
strings, bytes in base64, ``Int64Value`` as ``{"value": "1000"}`` (``{}`` for 0). :meth:`Record.to_dict`
writes exactly that; :meth:`Record.from_dict` reads it (and ints where strings are written, raw bytes,
enum numbers), ignores unknown keys and treats ``None`` as absent, and raises :class:`RecordError` naming the
field for a value of the wrong type or out of range.
"""

from __future__ import annotations

import base64
import binascii
import types
from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, Self, Union, get_args, get_origin, get_type_hints

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message

from crio.core.api import api_pb2

PACKAGE = "runtime.v1"
INT64_WRAPPER = f"{PACKAGE}.Int64Value"

# Field kinds.
STRING, BOOL, INT, BYTES, ENUM, MESSAGE, WRAPPED, MAP = (
    "string",
    "bool",
    "int",
    "bytes",
    "enum",
    "message",
    "wrapped",
    "map",
)
_INT32 = (-(1 << 31), (1 << 31) - 1)
_UINT32 = (0, (1 << 32) - 1)
_INT64 = (-(1 << 63), (1 << 63) - 1)
_UINT64 = (0, (1 << 64) - 1)
_INT_RANGES = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
}
# 64-bit integers are strings in the JSON form (JavaScript numbers cannot hold them).
_AS_STRING = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_SFIXED64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_FIXED64,
}
_SCALARS: dict[int, tuple[str, type]] = {
    FieldDescriptor.TYPE_STRING: (STRING, str),
    FieldDescriptor.TYPE_BOOL: (BOOL, bool),
    FieldDescriptor.TYPE_BYTES: (BYTES, bytes),
    FieldDescriptor.TYPE_ENUM: (ENUM, str),
    **{number: (INT, int) for number in _INT_RANGES},
}


class RecordError(ValueError):
    """A dict that does not have the form of the record it should become; the message names the field."""


@dataclass(frozen=True)
class _Field:
    """How one record field converts."""

    name: str
    kind: str
    repeated: bool = False
    optional: bool = False  # a message or wrapper whose absence is None
    record: type[Record] | None = None  # MESSAGE
    enum: EnumDescriptor | None = None  # ENUM
    int_range: tuple[int, int] = (0, 0)  # INT and WRAPPED
    int_as_string: bool = False  # INT and WRAPPED: written as a string


_PLANS: dict[type, tuple[_Field, ...]] = {}


class Record:
    """Base of every CRI record (a frozen dataclass named after its ``runtime.v1`` message)."""

    __slots__ = ()

    @classmethod
    def descriptor(cls) -> Descriptor:
        """The protobuf descriptor of the message this record mirrors."""
        found: Descriptor | None = api_pb2.DESCRIPTOR.message_types_by_name.get(cls.__name__)
        if found is None:
            raise TypeError(f"{cls.__name__} is not a {PACKAGE} message")
        return found

    @classmethod
    def from_message(cls, message: Message) -> Self:
        """The record of a protobuf message of the same type (TypeError for another type)."""
        expected = f"{PACKAGE}.{cls.__name__}"
        if message.DESCRIPTOR.full_name != expected:
            got = message.DESCRIPTOR.full_name
            raise TypeError(f"{cls.__name__}.from_message needs a {expected}, got a {got}")
        values: dict[str, Any] = {}
        for spec in _plan(cls):
            raw = getattr(message, spec.name)
            if spec.kind == MAP:
                values[spec.name] = dict(raw)
            elif spec.repeated:
                values[spec.name] = tuple(_scalar_from_message(spec, item) for item in raw)
            elif spec.kind in (MESSAGE, WRAPPED) and not message.HasField(spec.name):
                continue  # the default: None, or an empty record
            else:
                values[spec.name] = _scalar_from_message(spec, raw)
        return cls(**values)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> Self:
        """The record of a dict in ``MessageToDict`` form (see the module's doc). ``where`` names the dict in
        errors (e.g. "config.linux"); RecordError for a value of the wrong type or range."""
        if not isinstance(data, Mapping):
            raise RecordError(f"{where or cls.__name__}: {_shown(data)} is not a {cls.__name__} mapping")
        values: dict[str, Any] = {}
        for spec in _plan(cls):
            raw = data.get(spec.name)
            if raw is None:
                continue
            path = f"{where}.{spec.name}" if where else spec.name
            if spec.kind == MAP:
                values[spec.name] = _map_from_dict(raw, path)
            elif spec.repeated:
                if not isinstance(raw, list | tuple):
                    raise RecordError(f"{path}: {_shown(raw)} is not a list")
                values[spec.name] = tuple(
                    _scalar_from_dict(spec, item, f"{path}[{index}]") for index, item in enumerate(raw)
                )
            else:
                values[spec.name] = _scalar_from_dict(spec, raw, path)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The record in ``MessageToDict`` form (default values omitted; see the module's doc)."""
        result: dict[str, Any] = {}
        for spec in _plan(type(self)):
            value = getattr(self, spec.name)
            if spec.kind == MAP:
                if value:
                    result[spec.name] = {str(k): str(v) for k, v in value.items()}
            elif spec.repeated:
                if value:
                    result[spec.name] = [_scalar_to_dict(spec, item) for item in value]
            elif spec.optional:
                if value is not None:
                    result[spec.name] = _scalar_to_dict(spec, value)
            elif not _is_default(spec, value):
                result[spec.name] = _scalar_to_dict(spec, value)
        return result


def _plan(cls: type[Record]) -> tuple[_Field, ...]:
    """How each field of ``cls`` converts, worked out once (TypeError where the record and its message
    disagree)."""
    cached = _PLANS.get(cls)
    if cached is None:
        hints = get_type_hints(cls)
        cached = _PLANS[cls] = tuple(
            _field_plan(cls, f, hints[f.name])
            for f in fields(cls)  # type: ignore[arg-type]
        )
    return cached


def _field_plan(cls: type[Record], field: Field[Any], hint: Any) -> _Field:
    name = field.name
    where = f"{cls.__name__}.{name}"
    descriptor = cls.descriptor().fields_by_name.get(name)
    if descriptor is None:
        raise TypeError(f"{where} is not a field of {cls.descriptor().full_name}")
    if field.default is MISSING and field.default_factory is MISSING:
        raise TypeError(f"{where} has no default (every proto field has one)")
    repeated = bool(descriptor.is_repeated)
    message = descriptor.message_type
    if message is not None and message.GetOptions().map_entry:
        if get_origin(hint) is not Mapping or get_args(hint) != (str, str):
            raise TypeError(f"{where}: a map field must be Mapping[str, str], not {hint}")
        return _Field(name, MAP)
    inner, optional = _unwrap(hint, repeated, where)
    if message is not None and message.full_name == INT64_WRAPPER and inner is int:
        if not optional:
            raise TypeError(f"{where}: an Int64Value wrapper must be int | None")
        return _Field(name, WRAPPED, optional=True, int_range=_INT64, int_as_string=True)
    if message is not None:
        if not (isinstance(inner, type) and issubclass(inner, Record)) or inner.__name__ != message.name:
            raise TypeError(f"{where}: the field holds a {message.full_name}, the hint says {hint}")
        return _Field(name, MESSAGE, repeated, optional, record=inner)
    kind, python_type = _SCALARS.get(descriptor.type, ("", type(None)))
    if not kind or inner is not python_type or optional:
        raise TypeError(f"{where}: proto type {descriptor.type} does not fit the hint {hint}")
    return _Field(
        name,
        kind,
        repeated,
        enum=descriptor.enum_type if kind == ENUM else None,
        int_range=_INT_RANGES.get(descriptor.type, (0, 0)),
        int_as_string=descriptor.type in _AS_STRING,
    )


def _unwrap(hint: Any, repeated: bool, where: str) -> tuple[Any, bool]:
    """(element type, optional) of a field's hint: ``tuple[T, ...]`` for repeated, ``T | None``, ``T``."""
    origin, args = get_origin(hint), get_args(hint)
    if repeated:
        if origin is not tuple or len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"{where}: a repeated field must be tuple[T, ...], not {hint}")
        return args[0], False
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"{where}: unsupported union {hint}")
        return rest[0], True
    return hint, False


# ------------------------------------------------------------------------------------------ scalars


def _scalar_from_message(spec: _Field, raw: Any) -> Any:
    if spec.kind == ENUM:
        return _enum_name(spec, int(raw))
    if spec.kind == MESSAGE:
        assert spec.record is not None
        return spec.record.from_message(raw)
    if spec.kind == WRAPPED:
        return int(raw.value)
    if spec.kind == BYTES:
        return bytes(raw)
    return raw


def _enum_name(spec: _Field, number: int) -> str:
    assert spec.enum is not None
    value = spec.enum.values_by_number.get(number)
    return value.name if value is not None else str(number)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _int_from_dict(spec: _Field, raw: Any, path: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise RecordError(f"{path}: {_shown(raw)} is not an integer")
    try:
        value = int(raw)
    except ValueError:
        raise RecordError(f"{path}: {_shown(raw)} is not an integer") from None
    low, high = spec.int_range
    if not low <= value <= high:
        raise RecordError(f"{path}: {value} is out of range [{low}, {high}]")
    return value


def _scalar_from_dict(spec: _Field, raw: Any, path: str) -> Any:
    if spec.kind == STRING:
        if not isinstance(raw, str):
            raise RecordError(f"{path}: {_shown(raw)} is not a string")
        return raw
    if spec.kind == BOOL:
        if not isinstance(raw, bool):
            raise RecordError(f"{path}: {_shown(raw)} is not a boolean")
        return raw
    if spec.kind == INT:
        return _int_from_dict(spec, raw, path)
    if spec.kind == BYTES:
        return _bytes_from_dict(raw, path)
    if spec.kind == ENUM:
        if isinstance(raw, str):
            return raw
        if isinstance(raw, int) and not isinstance(raw, bool):
            return _enum_name(spec, raw)
        raise RecordError(f"{path}: {_shown(raw)} is not an enum name or number")
    if spec.kind == WRAPPED:
        if not isinstance(raw, Mapping):
            raise RecordError(f"{path}: {_shown(raw)} is not an Int64Value mapping")
        return _int_from_dict(spec, raw.get("value", 0), f"{path}.value")
    assert spec.record is not None
    return spec.record.from_dict(raw, path)


def _bytes_from_dict(raw: Any, path: str) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if not isinstance(raw, str):
        raise RecordError(f"{path}: {_shown(raw)} is not base64 text")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise RecordError(f"{path}: {_shown(raw)} is not base64") from None


def _map_from_dict(raw: Any, path: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise RecordError(f"{path}: {_shown(raw)} is not a mapping")
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise RecordError(f"{path}: entry {_shown(key)}: {_shown(value)} is not string to string")
    return dict(raw)


def _is_default(spec: _Field, value: Any) -> bool:
    if spec.kind == ENUM:
        assert spec.enum is not None
        return bool(value == spec.enum.values_by_number[0].name)
    if spec.kind == MESSAGE:
        return not value.to_dict()
    return not value


def _scalar_to_dict(spec: _Field, value: Any) -> Any:
    if spec.kind == INT:
        return str(value) if spec.int_as_string else value
    if spec.kind == BYTES:
        return base64.b64encode(value).decode("ascii")
    if spec.kind == ENUM:
        return _enum_to_dict(spec, value)
    if spec.kind == WRAPPED:
        return {"value": str(value)} if value else {}
    if spec.kind == MESSAGE:
        return value.to_dict()
    return value


def _enum_to_dict(spec: _Field, value: str) -> str | int:
    """An enum's name as written (``MessageToDict`` writes an unknown number as a number)."""
    assert spec.enum is not None
    if value in spec.enum.values_by_name:
        return value
    text = value.removeprefix("-")
    return int(value) if text.isdigit() else value
