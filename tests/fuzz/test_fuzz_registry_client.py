"""Fuzz what the registry client parses from a request or a registry before a pull: the CRI auth config's
``auth``, containers-auth.json files, WWW-Authenticate challenges and distribution-API error bodies. Only
InvalidArgument may come out (challenges and error bodies never fail: unknown parts are ignored)."""

from __future__ import annotations

import base64
import json
import os
import tempfile
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from crio.core.errors import InvalidArgument
from crio.core.images.reference import parse_docker_reference
from crio.core.types import RegistryAuth
from crio.plugins.image_transports import auth, client
from tests.fuzz.harness import counted, json_values, mutated_bytes, mutated_json, only

_AUTH_FILE: dict[str, Any] = {
    "auths": {
        "quay.io/crio-test": {"auth": base64.b64encode(b"robot:s3cret").decode()},
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"user:pw").decode(), "identitytoken": "t"},
        "127.0.0.1:5000": {"auth": "not base64"},
    }
}
_CHALLENGES = [
    'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull"',
    'Basic realm="Registry Realm", Bearer realm="http://127.0.0.1:5001/token",error="insufficient_scope"',
    'Bearer realm="x\\"y",service=tok',
]


@given(value=st.text(max_size=30) | st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()))
@counted
def test_request_auth(value: str) -> None:
    """The CRI AuthConfig's ``auth`` (base64 of user:password) from a pull request."""
    with only(InvalidArgument):
        auth.from_registry_auth(RegistryAuth(auth=value))


@given(
    text=mutated_json(_AUTH_FILE).map(json.dumps).map(str.encode)
    | mutated_bytes(json.dumps(_AUTH_FILE).encode())
    | json_values.map(json.dumps).map(str.encode),
    name=st.sampled_from(["quay.io/crio-test/redis", "busybox", "127.0.0.1:5000/x/y:1"]),
)
@counted
def test_auth_file(text: bytes, name: str) -> None:
    """A containers-auth.json file: the credentials for ``name``, or InvalidArgument naming the file."""
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "auth.json")
        with open(path, "wb") as handle:
            handle.write(text)
        with only(InvalidArgument):
            auth.lookup_auth_file(path, parse_docker_reference(name))


@given(
    values=st.lists(
        st.sampled_from([c.encode() for c in _CHALLENGES])
        .flatmap(mutated_bytes)
        .map(lambda raw: raw.decode("latin-1"))
        | st.text(max_size=40),
        max_size=3,
    )
)
@counted
def test_challenges(values: list[str]) -> None:
    """WWW-Authenticate values: schemes lowercase, parameters as text; nothing raises."""
    for challenge in auth.parse_challenges(values):
        assert challenge.scheme == challenge.scheme.lower()


@given(
    body=mutated_bytes(b'{"errors":[{"code":"DENIED","message":"requested access is denied"}]}')
    | st.binary(max_size=30)
)
@counted
def test_error_body(body: bytes) -> None:
    """A registry's error body: its error codes, or none."""
    assert all(isinstance(code, str) for code in client.error_codes(body))
