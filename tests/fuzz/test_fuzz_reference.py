"""Fuzz image references, short names and stored names (crio.core.images.reference, shortnames, names):
only InvalidArgument, and a normalized reference parses to itself."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crio.core.errors import InvalidArgument
from crio.core.images import names, reference, shortnames
from crio.core.types import ImageReference
from tests.fuzz.harness import counted, only

# Mostly the characters references are made of, so the grammar's corners get reached.
_REF_CHARS = st.sampled_from([*"abcxyz0189AZ._-/:@[]+", "sha256:", "sha512:", "a" * 32, "localhost", "²"])
reference_text = st.one_of(
    st.lists(_REF_CHARS, max_size=24).map("".join),
    st.text(max_size=40),
    st.sampled_from(["docker://", "oci:", "oci-archive:", "docker-archive:"]).flatmap(
        lambda prefix: st.lists(_REF_CHARS, max_size=16).map(lambda parts: prefix + "".join(parts))
    ),
)


@given(text=reference_text, default_tag=st.booleans())
@counted
def test_docker_reference(text: str, default_tag: bool) -> None:
    """A reference that parses prints as a reference that parses to the same thing."""
    with only(InvalidArgument):
        parsed = reference.parse_docker_reference(text, default_tag)
        again = reference.parse_docker_reference(str(parsed), default_tag)
        assert again == parsed, (text, str(parsed), str(again))
        assert parsed.familiar and parsed.remote and parsed.name


def _transport_text(ref: ImageReference) -> str:
    """A parsed transport reference written back as a user would (docker names with docker://)."""
    return f"docker://{ref.name}" if ref.transport == reference.DOCKER else f"{ref.transport}:{ref.name}"


@given(text=reference_text)
@counted
def test_transport_reference(text: str) -> None:
    """Transport-prefixed references (normalized ones parse to themselves), name prefixes (registries.conf)
    and digests."""
    with only(InvalidArgument):
        parsed = reference.parse_transport_reference(text)
        again = reference.parse_transport_reference(_transport_text(parsed))
        assert again == parsed, (text, parsed, again)
    with only(InvalidArgument):
        reference.parse_name_prefix(text)
    with only(InvalidArgument):
        reference.validate_digest(text)


@given(text=reference_text)
@counted
def test_short_names(text: str) -> None:
    """Short-name checks of registries.conf aliases."""
    shortnames.is_short_name(text)
    with only(InvalidArgument):
        shortnames.check_alias_name(text)
    with only(InvalidArgument):
        shortnames.parse_alias_value(text)


@given(stored=st.lists(reference_text, max_size=4), digests=st.lists(reference_text, max_size=3))
@counted
def test_stored_names(stored: list[str], digests: list[str]) -> None:
    """Turning stored names into RepoTags/RepoDigests never fails."""
    names.repo_tags(stored)
    names.repo_digests(stored, digests)
    for name in stored:
        names.split_name(name)
        names.looks_like_id(name)
