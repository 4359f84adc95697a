#!/usr/bin/env bash
# Regenerate the Python gRPC stubs of the Kubernetes CRI v1 API (proto package runtime.v1)
# into crio/core/api/: api_pb2.py, api_pb2.pyi, api_pb2_grpc.py and VERSION.
#
# The .proto itself is not kept in this repository: it is taken from the pinned
# k8s.io/cri-api Go module (pkg/apis/runtime/v1/api.proto), fetched into the Go module
# cache with `go mod download` (checked against the Go checksum database as usual).
#
# Requirements: go, and a Python with grpcio-tools installed. The Python used is $PYTHON,
# else the repo's .venv/bin/python if present, else python3, e.g.:
#   python3 -m venv .venv && .venv/bin/pip install grpcio-tools
#
# How to bump the CRI API version:
#   1. List the released versions:  go list -m -versions k8s.io/cri-api
#   2. Set CRI_API_VERSION below to the new tag (a release, not an -alpha/-beta/-rc).
#   3. Set CRI_API_VERSION in crio/core/api/__init__.py to the same tag.
#   4. Run:  hack/regen-api.sh
#   5. Update PINNED_VERSION, the literal RPC lists and field numbers in
#      tests/unit/test_api_descriptors.py
#      from the new proto (see the path printed by this script), run the tests, and check
#      the protobuf/grpcio floors in pyproject.toml against the versions this script prints
#      (generated code needs protobuf >= its gencode version and grpcio >= the
#      grpcio-tools version that generated it).
set -euo pipefail

CRI_API_MODULE="k8s.io/cri-api"
CRI_API_VERSION="v0.37.2"
PROTO_SUBPATH="pkg/apis/runtime/v1/api.proto"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${repo_root}/crio/core/api"

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x "${repo_root}/.venv/bin/python" ]]; then
        PYTHON="${repo_root}/.venv/bin/python"
    else
        PYTHON="python3"
    fi
fi

if ! "${PYTHON}" -c 'import grpc_tools.protoc' 2>/dev/null; then
    echo "error: ${PYTHON} has no grpcio-tools; install it (e.g. .venv/bin/pip install grpcio-tools)" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT

# Fetch the pinned module into the Go module cache. Run outside any Go module/workspace
# so that a go.mod or go.work around the caller cannot interfere.
(
    cd "${work}"
    GO111MODULE=on GOWORK=off GOFLAGS=-mod=mod \
        go mod download -json "${CRI_API_MODULE}@${CRI_API_VERSION}"
) >"${work}/download.json"

module_dir="$("${PYTHON}" - "${work}/download.json" <<'EOF'
import json
import sys

with open(sys.argv[1]) as f:
    info = json.load(f)
if info.get("Error"):
    sys.exit("go mod download: " + info["Error"])
print(info["Dir"])
EOF
)"

proto="${module_dir}/${PROTO_SUBPATH}"
if [[ ! -f "${proto}" ]]; then
    echo "error: ${proto} not found in ${CRI_API_MODULE}@${CRI_API_VERSION}" >&2
    exit 1
fi
echo "proto: ${proto}" >&2

# The CRI proto is self-contained (upstream dropped its gogoproto import and options).
# Imports of the protobuf well-known types (google/protobuf/*.proto) resolve through
# grpc_tools' bundled include dir; anything else (e.g. gogoproto) must be handled here
# before a bump, so fail loudly instead of generating broken stubs.
if grep -E '^[[:space:]]*import[[:space:]]' "${proto}" | grep -vqE '"google/protobuf/[^"]+\.proto"'; then
    echo "error: ${proto} imports files other than google/protobuf/*:" >&2
    grep -E '^[[:space:]]*import[[:space:]]' "${proto}" >&2
    exit 1
fi

# Copy it to a private dir named exactly api.proto, so the generated module is api_pb2
# and the descriptor's file name is "api.proto" (as in upstream's Go code).
mkdir -p "${work}/proto" "${work}/out"
cp "${proto}" "${work}/proto/api.proto"
chmod u+w "${work}/proto/api.proto"
proto_sha256="$(sha256sum "${work}/proto/api.proto" | cut -d' ' -f1)"

grpc_tools_include="$("${PYTHON}" -c 'import importlib.resources as r; print(r.files("grpc_tools") / "_proto")')"

(
    cd "${work}/proto"
    "${PYTHON}" -m grpc_tools.protoc \
        -I . \
        -I "${grpc_tools_include}" \
        --python_out="${work}/out" \
        --pyi_out="${work}/out" \
        --grpc_python_out="${work}/out" \
        api.proto
)

# grpc_python_out emits a top-level `import api_pb2 as api__pb2`; make it package-relative.
sed -i -E 's/^import api_pb2 as /from . import api_pb2 as /' "${work}/out/api_pb2_grpc.py"
if grep -qE '^import api_pb2\b' "${work}/out/api_pb2_grpc.py" \
    || ! grep -qE '^from \. import api_pb2 as ' "${work}/out/api_pb2_grpc.py"; then
    echo "error: could not rewrite the api_pb2 import in api_pb2_grpc.py" >&2
    exit 1
fi

read -r grpc_tools_version protobuf_version < <("${PYTHON}" -c '
import importlib.metadata as m
print(m.version("grpcio-tools"), m.version("protobuf"))
')

cat >"${work}/out/VERSION" <<EOF
${CRI_API_MODULE} ${CRI_API_VERSION}
sha256 ${proto_sha256}  ${PROTO_SUBPATH}
grpcio-tools ${grpc_tools_version}
EOF

for f in api_pb2.py api_pb2.pyi api_pb2_grpc.py VERSION; do
    install -m 0644 "${work}/out/${f}" "${out_dir}/${f}"
done

# Smoke test: the package imports with the installed runtimes.
(cd "${repo_root}" && "${PYTHON}" -c 'from crio.core.api import api_pb2, api_pb2_grpc')

gencode="$(sed -nE 's/^# Protobuf Python Version: (.*)$/\1/p' "${out_dir}/api_pb2.py")"
echo "generated ${CRI_API_MODULE} ${CRI_API_VERSION} (api.proto sha256 ${proto_sha256})" >&2
echo "  with grpcio-tools ${grpc_tools_version}, protobuf runtime ${protobuf_version}" >&2
grpc_generated="$(sed -nE "s/^GRPC_GENERATED_VERSION = '(.*)'$/\\1/p" "${out_dir}/api_pb2_grpc.py")"
echo "  generated code needs protobuf>=${gencode:-?} and grpcio>=${grpc_generated:-?}" >&2
