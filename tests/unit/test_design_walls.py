"""The design's three walls, read from the imports of every module (docs: shared DESIGN.md, "Layout"):

1. the core never imports a plugin (it only calls hooks);
2. a plugin never imports another plugin, nor the gRPC layer (``crio.core.server``, ``grpc``);
3. core services never import the gRPC layer: only ``crio.core.server``, the generated ``crio.core.api``
   and the daemon's wiring (``crio.core.daemon``, ``crio.core.cli``) know the wire.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "crio"
WIRING = ("crio.core.server", "crio.core.api", "crio.core.daemon", "crio.core.cli")
GRPC_LAYER = ("crio.core.server", "grpc")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports (see :func:`imports_in`)."""
    return imports_in(path.read_text(), module_name(path), path.name == "__init__.py")


def imports_in(source: str, module: str, is_package: bool) -> set[str]:
    """Every module ``source`` (the module ``module``) imports, relative imports resolved, and for
    ``from X import y`` both ``X`` and ``X.y`` (y may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_tree_is_read() -> None:
    names = {module_name(p) for p in MODULES}
    assert {"crio.core.daemon", "crio.plugins.cni", "crio.plugins.runc.lifecycle"} <= names


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_walls(path: Path) -> None:
    module = module_name(path)
    imported = imports_of(path)
    if within(module, ("crio.core",)):
        assert not [n for n in imported if within(n, ("crio.plugins",))], "the core imports a plugin"
        if not within(module, WIRING):
            assert not [n for n in imported if within(n, GRPC_LAYER)], "a core service imports the gRPC layer"
    if module.startswith("crio.plugins."):
        own = ".".join(module.split(".")[:3])
        others = [
            n
            for n in imported
            if within(n, ("crio.plugins",)) and n != "crio.plugins" and not within(n, (own,))
        ]
        assert not others, f"{own} imports another plugin"
        assert not [n for n in imported if within(n, GRPC_LAYER)], f"{own} imports the gRPC layer"


def test_the_reader_sees_relative_and_from_imports() -> None:
    """The checker itself: relative imports resolve, and a sibling plugin imported either way is seen."""
    source = (
        "from . import cache\nfrom ..runc import lifecycle\nimport grpc\nfrom crio.plugins import seccomp\n"
    )
    imported = imports_in(source, "crio.plugins.cni.ops", is_package=False)
    assert {
        "crio.plugins.cni.cache",
        "crio.plugins.runc.lifecycle",
        "grpc",
        "crio.plugins.seccomp",
    } <= imported
    assert imports_in("from .model import X\n", "crio.core.sandbox", is_package=True) >= {
        "crio.core.sandbox.model"
    }
