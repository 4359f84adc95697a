"""Image trust on a real daemon: containers-policy.json with real GPG and sigstore signatures, per-namespace
policies, the check at CreateContainer, registries.conf mirrors / blocked / short names / drop-ins,
credentials, and malformed configuration.

Two private Debian docker-registry instances on 127.0.0.1 hold copies of fixture images (skopeo copies them
from the fixture registry); GPG keys and simple-signing signatures are made with Debian's gpg, sigstore
signatures with the ``cryptography`` package and pushed to the registry as ``sha256-<hex>.sig`` tags.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import http.server
import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from crio.core.api import api_pb2 as pb
from crio.core.images.reference import parse_docker_reference
from tests import trustkit
from tests.containers_tools import ContainersTools

from .conftest import CrioFactory, CrioProcess, bridge_conflist
from .test_containers import new_pod
from .test_image_transports import PASSWORD, USER, Registry, bcrypt_hash, start_registry

FIXTURE = "k8s-staging-cri-tools/test-image-{n}:latest"
MANIFEST_ACCEPT = (
    "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json"
)
ACCEPT_ANYTHING = {"default": [{"type": "insecureAcceptAnything"}]}
REJECT = {"default": [{"type": "reject"}]}


def skopeo_copy(
    base: Path, source: str, dest: str, *extra: str, policy: dict[str, Any] | None = None
) -> None:
    tools = ContainersTools(base / "skopeo-config", policy or ACCEPT_ANYTHING)
    tools.skopeo(
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        *extra,
        source,
        dest,
        timeout=180,
    )


def manifest_digest(host: str, repo: str, tag: str) -> str:
    request = urllib.request.Request(
        f"http://{host}/v2/{repo}/manifests/{tag}", headers={"Accept": MANIFEST_ACCEPT}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return "sha256:" + hashlib.sha256(response.read()).hexdigest()


@dataclass
class Env:
    """Registries, keys and digests the tests share."""

    base: Path
    primary: Registry
    mirror: Registry
    private: Registry  # htpasswd basic auth
    gpg: trustkit.GpgKey
    other_gpg: trustkit.GpgKey
    digests: dict[str, str]

    def ref(self, repo: str) -> str:
        return f"{self.primary.host}/{repo}"


def key_file(base: Path, key: trustkit.GpgKey) -> Path:
    """Where the armored public key of ``key`` is kept for keyPath."""
    return base / f"{key.fingerprint}.asc"


def sign(key: trustkit.GpgKey, reference: str, digest: str) -> bytes:
    """A simple-signing signature of ``reference`` at ``digest`` by ``key``."""
    return trustkit.gpg_sign_simple(key.home, key.fingerprint, reference, digest)


def put(store: Path, image: str, digest: str, data: bytes) -> None:
    """Store ``data`` as signature 1 of ``image`` at ``digest`` in the lookaside directory ``store``."""
    trustkit.write_lookaside_signature(str(store), parse_docker_reference(image), digest, 1, data)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, local_registry: str) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("trust")
    (base / "htpasswd").write_text(f"{USER}:{bcrypt_hash(PASSWORD)}\n")
    registries = [
        start_registry(base, "primary"),
        start_registry(base, "mirror"),
        start_registry(
            base, "private", f"auth:\n  htpasswd:\n    realm: crio-test\n    path: {base / 'htpasswd'}\n"
        ),
    ]
    primary, mirror, private = registries
    try:
        copies = {
            "signed/app:1": 1,
            "unsigned/app:1": 1,
            "sigstore/app:1": 1,
            "other/app:1": 2,
            "big/app:1": 2,
            "garbage/app:1": 3,
            "mirrored/app:1": 1,
            "blocked/app:1": 1,
            "app:1": 1,
        }
        for repo, n in copies.items():
            skopeo_copy(
                base, f"docker://{local_registry}/{FIXTURE.format(n=n)}", f"docker://{primary.host}/{repo}"
            )
        for repo in ("onlymirror/app:1", "app:1"):
            skopeo_copy(
                base, f"docker://{local_registry}/{FIXTURE.format(n=3)}", f"docker://{mirror.host}/{repo}"
            )
        skopeo_copy(
            base,
            f"docker://{local_registry}/{FIXTURE.format(n=3)}",
            f"docker://{private.host}/secret/app:1",
            f"--dest-creds={USER}:{PASSWORD}",
        )
        digests = {repo: manifest_digest(primary.host, *repo.split(":")) for repo in copies}
        gpg = trustkit.create_gpg_key(str(base / "gpg-good"), "crio trust test <good@crio.test>")
        other = trustkit.create_gpg_key(str(base / "gpg-other"), "crio other key <other@crio.test>")
        for key in (gpg, other):
            key_file(base, key).write_bytes(key.public_armored)
        yield Env(base, primary, mirror, private, gpg, other, digests)
    finally:
        for home in (base / "gpg-good", base / "gpg-other"):
            trustkit.stop_gpg_agent(str(home))
        for registry in registries:
            registry.process.kill()
            registry.process.wait()


@pytest.fixture
def daemon(crio_factory: CrioFactory) -> CrioProcess:
    """A daemon (not started) with the test network; tests write policy/registries files, then start it."""
    d = crio_factory()
    (d.cni_dir / "10-crio-test.conflist").write_text(json.dumps(bridge_conflist()))
    return d


def pull(daemon: CrioProcess, image: str, namespace: str = "", auth: pb.AuthConfig | None = None) -> str:
    request = pb.PullImageRequest(image=pb.ImageSpec(image=image))
    if namespace:
        request.sandbox_config.metadata.name = "p"
        request.sandbox_config.metadata.namespace = namespace
        request.sandbox_config.metadata.uid = "u"
    if auth is not None:
        request.auth.CopyFrom(auth)
    return str(daemon.images().PullImage(request, timeout=120).image_ref)


def pull_error(daemon: CrioProcess, image: str, code: grpc.StatusCode, namespace: str = "") -> str:
    with pytest.raises(grpc.RpcError) as info:
        pull(daemon, image, namespace)
    error: Any = info.value
    assert error.code() == code, error.details()
    return str(error.details())


def no_image(daemon: CrioProcess, image: str) -> None:
    """Nothing of a refused pull is in the store."""
    listed = daemon.images().ListImages(pb.ListImagesRequest(), timeout=30).images
    assert not any(image in i.repo_tags for i in listed)


def write_policy(path: Path, default: list[dict[str, Any]], docker: dict[str, Any] | None = None) -> None:
    policy: dict[str, Any] = {"default": default}
    if docker is not None:
        policy["transports"] = {"docker": docker}
    path.write_text(json.dumps(policy, indent=2))


def lookaside(daemon: CrioProcess, env: Env, scope: str) -> Path:
    """Point ``scope``'s lookaside at a directory under the daemon's base; return that directory."""
    store = daemon.base / "sigstore"
    store.mkdir(exist_ok=True)
    (daemon.registries_d / "test.yaml").write_text(f"docker:\n  {scope}:\n    lookaside: file://{store}\n")
    return store


# ---------------------------------------------------------------------------------------------- signedBy


def signed_by(env: Env, key: trustkit.GpgKey, identity: dict[str, Any] | None = None) -> dict[str, Any]:
    requirement: dict[str, Any] = {
        "type": "signedBy",
        "keyType": "GPGKeys",
        "keyPath": str(key_file(env.base, key)),
    }
    if identity is not None:
        requirement["signedIdentity"] = identity
    return requirement


def test_signed_by_accepts_a_good_signature_and_refuses_the_rest(daemon: CrioProcess, env: Env) -> None:
    write_policy(
        daemon.policy,
        [{"type": "reject"}],
        {env.primary.host: [signed_by(env, env.gpg)]},
    )
    store = lookaside(daemon, env, env.primary.host)
    signed, other = env.ref("signed/app:1"), env.ref("other/app:1")
    good = sign(env.gpg, signed, env.digests["signed/app:1"])
    put(store, signed, env.digests["signed/app:1"], good)
    # other/app: signed by a key the policy does not trust.
    wrong_key = sign(env.other_gpg, other, env.digests["other/app:1"])
    put(store, other, env.digests["other/app:1"], wrong_key)
    daemon.start()

    image_id = pull(daemon, signed)
    status = daemon.images().ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=signed)), timeout=30)
    assert status.image.id == image_id and signed in status.image.repo_tags
    # The signature is kept in the store as containers/image keeps it: skopeo, with a policy demanding it,
    # reads it from crio's store and verifies it (the copy itself drops it: layers get recompressed).
    storage_ref = f"containers-storage:[overlay@{daemon.base / 'root'}+{daemon.base / 'runroot'}]{signed}"
    demanding = {"default": [signed_by(env, env.gpg)]}
    skopeo_copy(
        daemon.base, storage_ref, f"dir:{daemon.base / 'copied'}", "--remove-signatures", policy=demanding
    )

    text = pull_error(daemon, env.ref("unsigned/app:1"), grpc.StatusCode.PERMISSION_DENIED)
    assert "signedBy" in text and env.ref("unsigned/app:1") in text, text
    no_image(daemon, env.ref("unsigned/app:1"))

    text = pull_error(daemon, other, grpc.StatusCode.PERMISSION_DENIED)
    assert env.other_gpg.fingerprint[-16:].upper() in text.upper() or "not trusted" in text, text
    no_image(daemon, other)

    # A registry the policy does not name falls to the default: reject.
    text = pull_error(daemon, "registry.k8s.io/pause:3.9", grpc.StatusCode.PERMISSION_DENIED)
    assert "reject" in text, text


def test_signed_by_with_an_http_lookaside(daemon: CrioProcess, env: Env) -> None:
    write_policy(daemon.policy, [{"type": "reject"}], {env.primary.host: [signed_by(env, env.gpg)]})
    store = daemon.base / "web-sigstore"
    signed = env.ref("signed/app:1")
    put(store, signed, env.digests["signed/app:1"], sign(env.gpg, signed, env.digests["signed/app:1"]))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(store))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (daemon.registries_d / "web.yaml").write_text(
            f"docker:\n  {env.primary.host}:\n    lookaside: http://127.0.0.1:{server.server_address[1]}/\n"
        )
        daemon.start()
        assert pull(daemon, signed)
        pull_error(daemon, env.ref("unsigned/app:1"), grpc.StatusCode.PERMISSION_DENIED)
    finally:
        server.shutdown()


def test_signature_for_another_image_is_refused(daemon: CrioProcess, env: Env) -> None:
    write_policy(daemon.policy, [{"type": "reject"}], {env.primary.host: [signed_by(env, env.gpg)]})
    store = lookaside(daemon, env, env.primary.host)
    signed, other = env.ref("signed/app:1"), env.ref("other/app:1")
    # Right key and right manifest digest, but the signature names another image (identity).
    stolen = sign(env.gpg, other, env.digests["signed/app:1"])
    put(store, signed, env.digests["signed/app:1"], stolen)
    # Right key and identity, but over another manifest (digest).
    wrong_digest = sign(env.gpg, other, env.digests["signed/app:1"])
    put(store, other, env.digests["other/app:1"], wrong_digest)
    daemon.start()
    text = pull_error(daemon, signed, grpc.StatusCode.PERMISSION_DENIED)
    assert "identity" in text.lower() or other in text, text
    text = pull_error(daemon, other, grpc.StatusCode.PERMISSION_DENIED)
    assert f"signs manifest {env.digests['signed/app:1']}" in text, text


def test_signed_identity_remap_and_exact_repository(daemon: CrioProcess, env: Env) -> None:
    signed = env.ref("signed/app:1")
    remap = {"type": "remapIdentity", "prefix": env.primary.host, "signedPrefix": "quay.io/upstream"}
    write_policy(
        daemon.policy, [{"type": "reject"}], {env.primary.host + "/signed": [signed_by(env, env.gpg, remap)]}
    )
    store = lookaside(daemon, env, env.primary.host)
    upstream = "quay.io/upstream/signed/app:1"
    sig = sign(env.gpg, upstream, env.digests["signed/app:1"])
    put(store, signed, env.digests["signed/app:1"], sig)
    daemon.start()
    pull(daemon, signed)


# ---------------------------------------------------------------------------------------- sigstoreSigned


def test_sigstore_signed_from_registry_attachments(daemon: CrioProcess, env: Env) -> None:
    private_key, public_pem = trustkit.make_sigstore_key()
    _, other_pem = trustkit.make_sigstore_key()
    key_file = daemon.base / "cosign.pub"
    key_file.write_bytes(public_pem)
    other_file = daemon.base / "other.pub"
    other_file.write_bytes(other_pem)
    repo = "sigstore/app:1"
    payload, signature = trustkit.sigstore_sign(private_key, env.ref(repo), env.digests[repo])
    trustkit.push_sigstore_attachment(
        f"http://{env.primary.host}", "sigstore/app", env.digests[repo], payload, signature
    )
    sigstore = {"type": "sigstoreSigned", "keyPath": str(key_file)}
    write_policy(
        daemon.policy,
        [{"type": "reject"}],
        {
            env.primary.host + "/sigstore": [sigstore],
            env.primary.host + "/unsigned": [sigstore],
            env.primary.host + "/other": [{"type": "sigstoreSigned", "keyPath": str(other_file)}],
        },
    )
    daemon.start()
    pull(daemon, env.ref(repo))
    text = pull_error(daemon, env.ref("unsigned/app:1"), grpc.StatusCode.PERMISSION_DENIED)
    assert "sigstoreSigned" in text, text
    # other/app has no attachment at all; the key is different anyway: refused.
    pull_error(daemon, env.ref("other/app:1"), grpc.StatusCode.PERMISSION_DENIED)


def test_sigstore_wrong_key_refused(daemon: CrioProcess, env: Env) -> None:
    private_key, _ = trustkit.make_sigstore_key()
    _, other_pem = trustkit.make_sigstore_key()
    key_file = daemon.base / "other.pub"
    key_file.write_bytes(other_pem)
    repo = "sigstore/app:1"
    payload, signature = trustkit.sigstore_sign(private_key, env.ref(repo), env.digests[repo])
    # Pushed under a different repo name's digest tag is impossible (same digest); push to big/app instead.
    trustkit.push_sigstore_attachment(
        f"http://{env.primary.host}", "big/app", env.digests["big/app:1"], payload, signature
    )
    write_policy(daemon.policy, [{"type": "sigstoreSigned", "keyPath": str(key_file)}])
    daemon.start()
    pull_error(daemon, env.ref("big/app:1"), grpc.StatusCode.PERMISSION_DENIED)


# ------------------------------------------------------------------------------ bad signatures and keys


def test_oversized_and_malformed_signatures_and_bad_keys_refuse_the_pull(
    daemon: CrioProcess, env: Env
) -> None:
    bad_key = daemon.base / "bad.gpg"
    bad_key.write_text(
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nnot a key\n-----END PGP PUBLIC KEY BLOCK-----\n"
    )
    write_policy(
        daemon.policy,
        [{"type": "reject"}],
        {
            env.primary.host + "/big": [signed_by(env, env.gpg)],
            env.primary.host + "/garbage": [signed_by(env, env.gpg)],
            env.primary.host + "/signed": [
                {"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(bad_key)}
            ],
        },
    )
    store = lookaside(daemon, env, env.primary.host)
    big = env.ref("big/app:1")
    put(store, big, env.digests["big/app:1"], os.urandom(4 * 2**20 + 1))
    garbage = env.ref("garbage/app:1")
    put(store, garbage, env.digests["garbage/app:1"], b"\x8c\x0dnot pgp")
    signed = env.ref("signed/app:1")
    good = sign(env.gpg, signed, env.digests["signed/app:1"])
    put(store, signed, env.digests["signed/app:1"], good)
    daemon.start()
    text = pull_error(daemon, big, grpc.StatusCode.INVALID_ARGUMENT)
    assert "too large" in text, text
    text = pull_error(daemon, garbage, grpc.StatusCode.PERMISSION_DENIED)
    assert "signature 1" in text, text
    with pytest.raises(grpc.RpcError) as info:
        pull(daemon, signed)
    error: Any = info.value
    assert error.code() in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
    assert str(bad_key) in error.details(), error.details()
    for image in (big, garbage, signed):
        no_image(daemon, image)


# ----------------------------------------------------------------------------------------- policy scopes


def test_reject_policy_refuses(daemon: CrioProcess, env: Env) -> None:
    write_policy(daemon.policy, [{"type": "reject"}])
    daemon.start()
    text = pull_error(daemon, env.ref("unsigned/app:1"), grpc.StatusCode.PERMISSION_DENIED)
    assert "reject" in text and str(daemon.policy) in text, text
    no_image(daemon, env.ref("unsigned/app:1"))


def test_namespace_policy_overrides_the_default(daemon: CrioProcess, env: Env) -> None:
    write_policy(daemon.policy, [{"type": "reject"}])
    daemon.policy_dir.mkdir()
    write_policy(daemon.policy_dir / "trusted-ns.json", [{"type": "insecureAcceptAnything"}])
    daemon.start()
    image = env.ref("unsigned/app:1")
    pull_error(daemon, image, grpc.StatusCode.PERMISSION_DENIED)
    pull_error(daemon, image, grpc.StatusCode.PERMISSION_DENIED, namespace="other-ns")
    assert pull(daemon, image, namespace="trusted-ns")
    text = pull_error(daemon, image, grpc.StatusCode.INVALID_ARGUMENT, namespace="../etc")
    assert "namespace" in text


def create(daemon: CrioProcess, pod: tuple[str, pb.PodSandboxConfig], name: str, image: str) -> str:
    request = pb.CreateContainerRequest(
        pod_sandbox_id=pod[0],
        config=pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=image), command=["true"]
        ),
        sandbox_config=pod[1],
    )
    return str(daemon.runtime().CreateContainer(request, timeout=60).container_id)


def create_error(daemon: CrioProcess, pod: tuple[str, pb.PodSandboxConfig], name: str, image: str) -> str:
    with pytest.raises(grpc.RpcError) as info:
        create(daemon, pod, name, image)
    error: Any = info.value
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    listed = daemon.runtime().ListContainers(pb.ListContainersRequest(), timeout=30).containers
    assert name not in [c.metadata.name for c in listed]
    return str(error.details())


def test_create_container_rechecks_the_policy(daemon: CrioProcess, env: Env) -> None:
    write_policy(daemon.policy, [{"type": "insecureAcceptAnything"}])
    daemon.start()
    image = env.ref("unsigned/app:1")
    pull(daemon, image)
    pod = new_pod(daemon)
    write_policy(daemon.policy, [{"type": "reject"}])  # the policy changes after the pull
    assert "reject" in create_error(daemon, pod, "refused", image)
    write_policy(daemon.policy, [{"type": "insecureAcceptAnything"}])
    assert create(daemon, pod, "accepted", image)
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


def test_create_container_verifies_the_signatures_kept_at_pull(daemon: CrioProcess, env: Env) -> None:
    """GPG and sigstore signatures are stored with the image and verified again at CreateContainer."""
    private_key, public_pem = trustkit.make_sigstore_key()
    (daemon.base / "cosign.pub").write_bytes(public_pem)
    sigstore = {"type": "sigstoreSigned", "keyPath": str(daemon.base / "cosign.pub")}
    signed, attached = env.ref("signed/app:1"), env.ref("sigstore/app:1")
    payload, signature = trustkit.sigstore_sign(private_key, attached, env.digests["sigstore/app:1"])
    trustkit.push_sigstore_attachment(
        f"http://{env.primary.host}", "sigstore/app", env.digests["sigstore/app:1"], payload, signature
    )
    scopes = {
        f"{env.primary.host}/signed": [signed_by(env, env.gpg)],
        f"{env.primary.host}/sigstore": [sigstore],
    }
    write_policy(daemon.policy, [{"type": "reject"}], scopes)
    store = lookaside(daemon, env, env.primary.host)
    put(store, signed, env.digests["signed/app:1"], sign(env.gpg, signed, env.digests["signed/app:1"]))
    daemon.start()
    pull(daemon, signed)
    pull(daemon, attached)
    # The registry and the lookaside forget the signatures: the store still has them.
    for path in store.rglob("signature-1"):
        path.unlink()
    pod = new_pod(daemon)
    assert create(daemon, pod, "gpg", signed)
    assert create(daemon, pod, "sigstore", attached)
    # Other keys now: the stored signatures no longer satisfy the policy.
    _, other_pem = trustkit.make_sigstore_key()
    (daemon.base / "cosign.pub").write_bytes(other_pem)
    scopes[f"{env.primary.host}/signed"] = [signed_by(env, env.other_gpg)]
    write_policy(daemon.policy, [{"type": "reject"}], scopes)
    assert "signedBy" in create_error(daemon, pod, "gpg-2", signed)
    assert "sigstoreSigned" in create_error(daemon, pod, "sigstore-2", attached)
    daemon.runtime().RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod[0]), timeout=60)


# ------------------------------------------------------------------------------------------ registries.conf


def test_mirror_used_and_location_fallback_when_the_mirror_is_down(daemon: CrioProcess, env: Env) -> None:
    daemon.registries_conf.write_text(
        f'[[registry]]\nprefix = "mirrored.test"\nlocation = "{env.primary.host}"\ninsecure = true\n'
        '[[registry.mirror]]\nlocation = "127.0.0.1:9"\ninsecure = true\n'
        f'[[registry.mirror]]\nlocation = "{env.mirror.host}"\ninsecure = true\n'
        f'[[registry]]\nprefix = "down.test"\nlocation = "{env.primary.host}"\ninsecure = true\n'
        '[[registry.mirror]]\nlocation = "127.0.0.1:9"\ninsecure = true\n'
    )
    daemon.start()
    # Only the mirror has onlymirror/app: the first (dead) mirror is skipped, the second serves it.
    image_id = pull(daemon, "mirrored.test/onlymirror/app:1")
    status = daemon.images().ImageStatus(
        pb.ImageStatusRequest(image=pb.ImageSpec(image=image_id)), timeout=30
    )
    assert list(status.image.repo_tags) == ["mirrored.test/onlymirror/app:1"]
    # The mirror is down: the location serves it.
    assert pull(daemon, "down.test/mirrored/app:1")


def test_pull_from_mirror_digest_only(daemon: CrioProcess, env: Env) -> None:
    daemon.registries_conf.write_text(
        f'[[registry]]\nprefix = "digest.test"\nlocation = "{env.primary.host}"\ninsecure = true\n'
        f'[[registry.mirror]]\nlocation = "{env.mirror.host}"\ninsecure = true\n'
        'pull-from-mirror = "digest-only"\n'
    )
    daemon.start()
    # By tag the mirror is not asked (the location does not have it): not found.
    pull_error(daemon, "digest.test/onlymirror/app:1", grpc.StatusCode.NOT_FOUND)
    digest = manifest_digest(env.mirror.host, "onlymirror/app", "1")
    assert pull(daemon, f"digest.test/onlymirror/app@{digest}")


def test_blocked_registry_is_refused(daemon: CrioProcess, env: Env) -> None:
    daemon.registries_conf.write_text(
        f'[[registry]]\nprefix = "{env.primary.host}/blocked"\n'
        f'location = "{env.primary.host}/blocked"\nblocked = true\n'
    )
    daemon.start()
    text = pull_error(daemon, env.ref("blocked/app:1"), grpc.StatusCode.PERMISSION_DENIED)
    assert "blocked" in text and str(daemon.registries_conf) in text, text
    no_image(daemon, env.ref("blocked/app:1"))
    assert pull(daemon, env.ref("unsigned/app:1"))


def test_short_names_enforcing(daemon: CrioProcess, env: Env) -> None:
    daemon.registries_conf.write_text('short-name-mode = "enforcing"\n')
    daemon.start()
    # 0 candidates: no alias, no search registries.
    text = pull_error(daemon, "app:1", grpc.StatusCode.FAILED_PRECONDITION)
    assert "unqualified-search-registries" in text, text
    # 1 candidate, added by a drop-in while the daemon runs (no restart).
    dropin = daemon.registries_conf_dir / "10-search.conf"
    dropin.write_text(f'unqualified-search-registries = ["{env.primary.host}"]\n')
    image_id = pull(daemon, "app:1")
    status = daemon.images().ImageStatus(
        pb.ImageStatusRequest(image=pb.ImageSpec(image=image_id)), timeout=30
    )
    assert list(status.image.repo_tags) == [f"{env.primary.host}/app:1"]
    # The short name finds the pulled image locally.
    status = daemon.images().ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="app:1")), timeout=30)
    assert status.image.id == image_id
    # 2 candidates: ambiguous, both listed.
    dropin.write_text(f'unqualified-search-registries = ["{env.primary.host}", "{env.mirror.host}"]\n')
    text = pull_error(daemon, "app:1", grpc.StatusCode.FAILED_PRECONDITION)
    assert f"{env.primary.host}/app:1" in text and f"{env.mirror.host}/app:1" in text, text
    # An alias resolves the ambiguity.
    (daemon.registries_conf_dir / "20-alias.conf").write_text(f'[aliases]\n"app" = "{env.mirror.host}/app"\n')
    other_id = pull(daemon, "app:1")
    assert other_id != image_id
    status = daemon.images().ImageStatus(
        pb.ImageStatusRequest(image=pb.ImageSpec(image=other_id)), timeout=30
    )
    assert list(status.image.repo_tags) == [f"{env.mirror.host}/app:1"]


# -------------------------------------------------------------------------------------------- credentials


def test_credentials_from_request_and_auth_file_are_never_logged_or_stored(
    crio_factory: CrioFactory, env: Env
) -> None:
    daemon = crio_factory(["--log-level", "debug"])
    image = f"{env.private.host}/secret/app:1"
    daemon.registries_conf.write_text(f'[[registry]]\nlocation = "{env.private.host}"\ninsecure = true\n')
    daemon.start()
    with pytest.raises(grpc.RpcError) as info:
        pull(daemon, image)
    error: Any = info.value
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error.details()
    image_id = pull(daemon, image, auth=pb.AuthConfig(username=USER, password=PASSWORD))
    daemon.images().RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=image_id)), timeout=60)
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert pull(daemon, image, auth=pb.AuthConfig(auth=encoded)) == image_id
    daemon.images().RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=image_id)), timeout=60)
    daemon.stop()
    # The global auth file, with a per-repository key.
    auth_file = daemon.base / "auth.json"
    auth_file.write_text(json.dumps({"auths": {f"{env.private.host}/secret": {"auth": encoded}}}))
    (daemon.config_dir / "10-auth.conf").write_text(f'[crio.image]\nglobal_auth_file = "{auth_file}"\n')
    daemon.start()
    assert pull(daemon, image) == image_id
    daemon.stop()
    secrets = (PASSWORD.encode(), encoded.encode())
    log = daemon.log().encode()
    assert not any(s in log for s in secrets)
    for directory, _dirs, files in os.walk(daemon.base / "root"):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 2**20:
                continue
            with open(path, "rb") as handle:
                data = handle.read()
            assert not any(s in data for s in secrets), path


# ----------------------------------------------------------------------------------- malformed config


def test_malformed_policy_or_registries_conf_stops_start_up(crio_factory: CrioFactory) -> None:
    daemon = crio_factory()
    daemon.policy.write_text('{\n  "default": [\n    {"type": "signedBY"}\n  ]\n}\n')
    with pytest.raises(RuntimeError) as info:
        daemon.start()
    assert f"{daemon.policy}:3" in str(info.value), str(info.value)[-2000:]
    daemon.policy.write_text(json.dumps(ACCEPT_ANYTHING))
    daemon.registries_conf.write_text('[[registry]]\nprefix = "example.com"\nlocation = "a b"\n')
    with pytest.raises(RuntimeError) as info:
        daemon.start()
    assert f"{daemon.registries_conf}:3" in str(info.value), str(info.value)[-2000:]


def test_reload_keeps_the_old_configuration_when_the_new_one_is_broken(daemon: CrioProcess, env: Env) -> None:
    daemon.registries_conf.write_text(
        f'[[registry]]\nprefix = "reload.test"\nlocation = "{env.primary.host}"\ninsecure = true\n'
    )
    daemon.start()
    dropin = daemon.registries_conf_dir / "50-broken.conf"
    dropin.write_text("[[registry]\nprefix = \n")
    daemon.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while str(dropin) not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"{dropin}:1" in daemon.log()
    assert pull(daemon, "reload.test/unsigned/app:1")
    # A policy broken after start: the policy in force stays, and the log says why.
    daemon.policy.write_text('{"default": [{"type": "insecureAcceptAnything"},]}')
    daemon.signal(signal.SIGHUP)
    assert pull(daemon, env.ref("other/app:1"))
    deadline = time.monotonic() + 10
    while f"{daemon.policy}:1" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"{daemon.policy}:1" in daemon.log()
