"""What every fuzz target shares: the settings profiles, the examples counter, the error oracle and the
strategies that make JSON documents and mutate seeds.

The oracle is the issue's rule: a parser may fail only with its own error types, and a client-facing error
says what was wrong (never just a Python exception's class name).
"""

from __future__ import annotations

import copy
import functools
import itertools
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

P = ParamSpec("P")
R = TypeVar("R")

PROFILE_ENV = "HYPOTHESIS_PROFILE"
LONG_EXAMPLES_ENV = "FUZZ_EXAMPLES"
_QUIET_CHECKS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

# "ci": bounded and derandomized (the same examples every run: CI fails only when the code changes).
settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_QUIET_CHECKS,
)
# "long": random, many examples, failures kept in .hypothesis/ to be replayed by the next run.
settings.register_profile(
    "long",
    max_examples=int(os.environ.get(LONG_EXAMPLES_ENV, "20000")),
    deadline=None,
    suppress_health_check=_QUIET_CHECKS,
    print_blob=True,
)
settings.load_profile(os.environ.get(PROFILE_ENV, "ci"))

# Examples run per target ("module::test"), read by the conftest's summary.
EXAMPLES: Counter[str] = Counter()


def counted(test: Callable[P, R]) -> Callable[P, R]:
    """Count every call of a fuzz target's body (put it under ``@given``)."""
    name = f"{test.__module__.rsplit('.', 1)[-1]}::{test.__name__}"

    @functools.wraps(test)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        EXAMPLES[name] += 1
        return test(*args, **kwargs)

    return run


_CLASS_NAME = re.compile(r"^\w*(Error|Exception)\b|\b(KeyError|TypeError|AttributeError|IndexError)\b")


@contextmanager
def only(*errors: type[BaseException]) -> Iterator[None]:
    """Let ``errors`` (the module's own error types) through; anything else fails the example. The message
    of an allowed error must be non-empty and must not be a bare Python exception class name."""
    try:
        yield
    except errors as exc:
        message = str(exc)
        assert message.strip(), f"{type(exc).__name__} without a message"
        assert not _CLASS_NAME.search(message), (
            f"{type(exc).__name__} message names a Python error: {message}"
        )


def attempt(call: Callable[[], R], *errors: type[BaseException]) -> R | None:
    """``call()``, or None when it failed with one of ``errors`` (checked as :func:`only` does)."""
    with only(*errors):
        return call()
    return None


# ----------------------------------------------------------------------------------------------- JSON

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=20)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _slots(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path into ``doc`` (dict keys and list indexes), the root included."""
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _slots(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _slots(value, (*path, index))


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return doc


def _delete(doc: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return doc
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    del parent[path[-1]]
    return doc


@st.composite
def mutated_json(draw: st.DrawFn, seed: Any, max_mutations: int = 3) -> Any:
    """``seed`` (a JSON document) with up to ``max_mutations`` subtrees replaced, copied, retyped or
    deleted."""
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=max_mutations))):
        paths = list(_slots(doc))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "copy", "wrap", "stringify"]))
        if action == "replace":
            doc = _replace(doc, path, draw(json_values))
        elif action == "delete":
            doc = _delete(doc, path)
        elif action == "copy":
            source = draw(st.sampled_from(paths))
            try:
                value = functools.reduce(lambda node, step: node[step], source, doc)
            except (KeyError, IndexError, TypeError):
                continue
            doc = _replace(doc, path, copy.deepcopy(value))
        else:
            node = functools.reduce(lambda n, step: n[step], path, doc)
            doc = _replace(doc, path, [node] if action == "wrap" else str(node))
    return doc


# ---------------------------------------------------------------------------------------------- bytes


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes, max_mutations: int = 4) -> bytes:
    """``seed`` with a few bytes flipped, inserted or deleted, or cut short."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=max_mutations))):
        action = draw(st.sampled_from(["set", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(min_value=0, max_value=len(data)))
        if action == "set" and at < len(data):
            data[at] = draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[at : at + draw(st.integers(min_value=1, max_value=8))]
        elif action == "truncate":
            del data[at:]
        elif action == "splice":
            length = draw(st.integers(min_value=1, max_value=16))
            data[at:at] = data[:length]
    return bytes(data)


def split_points(data: bytes) -> st.SearchStrategy[list[bytes]]:
    """``data`` cut into chunks as a network would deliver it."""
    cuts = st.lists(st.integers(min_value=0, max_value=len(data)), max_size=6, unique=True)
    return cuts.map(lambda points: _chunks(data, sorted(points)))


def _chunks(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]
