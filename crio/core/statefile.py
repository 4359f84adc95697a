"""The JSON state file that pod and container records share, in their ContainerDirectory."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any, ClassVar, Self, get_type_hints

from crio.core.crirecords import Record


class JsonState:
    """Mixin for a dataclass persisted as one JSON file named ``STATE_FILE``.

    A field holding a CRI record (:mod:`crio.core.crirecords`) is stored in the record's dict form.
    """

    STATE_FILE: ClassVar[str]

    def to_json(self) -> bytes:
        """Serialize the dataclass for its state file."""
        data = {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)  # type: ignore[arg-type]
        }
        return json.dumps(data, sort_keys=True, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Self:
        """Load from the state file; unknown keys (from a newer crio) are ignored. ValueError (a
        :class:`crio.core.crirecords.RecordError` for a CRI record) or TypeError for malformed data."""
        raw: dict[str, Any] = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError(f"{cls.STATE_FILE} does not hold an object")
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name not in raw:
                continue
            value, hint = raw[f.name], hints[f.name]
            if isinstance(hint, type) and issubclass(hint, Record):
                value = hint.from_dict(value or {}, f.name)
            values[f.name] = value
        return cls(**values)

    @classmethod
    def state_path(cls, container_directory: Path) -> Path:
        """Where the state lives in a ContainerDirectory."""
        return container_directory / cls.STATE_FILE


def _plain(value: Any) -> Any:
    """A field's value as JSON data: a CRI record in its dict form, anything else as it is."""
    return value.to_dict() if isinstance(value, Record) else value
