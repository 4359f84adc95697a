"""What pod and container records share: the JSON state file in their ContainerDirectory, and views of
the CRI config they were created from."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, ClassVar, Self


class JsonState:
    """Mixin for a dataclass persisted as one JSON file named ``STATE_FILE``."""

    STATE_FILE: ClassVar[str]

    def to_json(self) -> bytes:
        """Serialize the dataclass for its state file."""
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, data: bytes) -> Self:
        """Load from the state file; unknown keys (from a newer crio) are ignored."""
        raw: dict[str, Any] = json.loads(data)
        fields = cls.__dataclass_fields__  # type: ignore[attr-defined]
        return cls(**{k: v for k, v in raw.items() if k in fields})

    @classmethod
    def state_path(cls, container_directory: Path) -> Path:
        """Where the state lives in a ContainerDirectory."""
        return container_directory / cls.STATE_FILE


class CriConfigViews:
    """Mixin for a record holding its CRI config (proto field names) as ``config``."""

    config: dict[str, Any]

    @property
    def metadata(self) -> dict[str, Any]:
        """The CRI metadata (name, attempt; for pods also uid and namespace)."""
        return dict(self.config.get("metadata", {}))

    @property
    def labels(self) -> dict[str, str]:
        """The labels of the request."""
        return dict(self.config.get("labels", {}))

    @property
    def annotations(self) -> dict[str, str]:
        """The annotations of the request."""
        return dict(self.config.get("annotations", {}))
