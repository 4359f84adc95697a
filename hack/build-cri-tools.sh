#!/usr/bin/env bash
# Builds crictl and critest (kubernetes-sigs/cri-tools) at a pinned version from the Go module proxy into
# _output/bin/. crictl is built with `go install`; critest is a Go test binary, built with `go test -c`
# from the read-only module directory that `go mod download` leaves in the module cache.
# A binary that already exists and reports the pinned version is not rebuilt (use --force to rebuild).
#
# Usage: hack/build-cri-tools.sh [--force]
# Environment: CRI_TOOLS_VERSION (default v1.37.0), CRI_TOOLS_BIN_DIR (default <repo>/_output/bin).
# Go: `go` from PATH, else /usr/local/go/bin/go, else Debian's golang-go. If that Go is older than the one
# cri-tools' go.mod asks for, the matching toolchain is fetched from the module proxy as the module
# golang.org/toolchain (this works even with Debian 12's Go 1.19, which predates GOTOOLCHAIN).
set -euo pipefail

readonly CRI_TOOLS_MODULE=sigs.k8s.io/cri-tools
CRI_TOOLS_VERSION=${CRI_TOOLS_VERSION:-v1.37.0}
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN_DIR=${CRI_TOOLS_BIN_DIR:-$REPO_ROOT/_output/bin}
# Upstream's Makefile stamps the version without the leading "v" (crictl --version: "crictl version 1.37.0").
readonly STAMP=${CRI_TOOLS_VERSION#v}
readonly LDFLAGS="-X ${CRI_TOOLS_MODULE}/pkg/version.Version=${STAMP}"

force=0
for arg in "$@"; do
    case $arg in
        --force) force=1 ;;
        -h | --help)
            sed -n '2,11s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "build-cri-tools: unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

log() { echo "build-cri-tools: $*"; }
die() {
    echo "build-cri-tools: error: $*" >&2
    exit 1
}

# crictl prints "crictl version 1.37.0"; critest prints "critest version: 1.37.0" and then "PASS".
version_line() {
    local bin=$1 flag=$2
    [[ -x $bin ]] || return 1
    "$bin" "$flag" 2>/dev/null | grep -m1 -E ' version:? ' || true
}
has_version() {
    local line
    line=$(version_line "$@")
    [[ $line =~ [[:space:]]v?${STAMP//./\\.}$ ]]
}

if ((!force)) && has_version "$BIN_DIR/crictl" --version && has_version "$BIN_DIR/critest" -version; then
    log "crictl and critest $CRI_TOOLS_VERSION already in ${BIN_DIR#"$REPO_ROOT"/}, skipping build"
    exit 0
fi

# --- find a Go toolchain ---------------------------------------------------------------------------
GO=$(command -v go || true)
if [[ -z $GO && -x /usr/local/go/bin/go ]]; then
    GO=/usr/local/go/bin/go
fi
if [[ -z $GO ]]; then
    log "no Go found; installing Debian's golang-go"
    # shellcheck source=hack/lib/apt.sh
    source "$REPO_ROOT/hack/lib/apt.sh"
    apt_install golang-go ca-certificates || die "cannot install golang-go"
    GO=$(command -v go || true)
    [[ -n $GO ]] || die "golang-go installed but 'go' is still not on PATH"
fi
# We pick the toolchain ourselves (below), so never let go switch on its own.
export GOTOOLCHAIN=local
export CGO_ENABLED=0
# Run go outside of any module (the repo may grow a go.mod for code generation).
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

# quiet CMD...: run CMD with its output in a log that is shown only if it fails.
quiet() {
    if ! "$@" >"$WORK/cmd.log" 2>&1; then
        tail -n 50 "$WORK/cmd.log" >&2
        die "failed: $*"
    fi
}
go_version() { "$1" env GOVERSION 2>/dev/null || "$1" version | awk '{print $3}'; }
# version_ge A B: A >= B for dotted versions without the "go" prefix.
version_ge() { [[ $(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1) == "$2" ]]; }

start=$SECONDS
log "checking that $CRI_TOOLS_MODULE@$CRI_TOOLS_VERSION exists on the module proxy ($("$GO" env GOPROXY))"
versions=$("$GO" list -m -versions "$CRI_TOOLS_MODULE") || die "cannot list $CRI_TOOLS_MODULE versions (is the Go module proxy reachable?)"
[[ " $versions " == *" $CRI_TOOLS_VERSION "* ]] || die "$CRI_TOOLS_VERSION not found on the proxy; it has: ${versions#* }"

# `go list -m -json` / `go mod download -json` print Dir and GoMod; parse them without jq.
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$2" | head -n1; }
# Read cri-tools' go.mod first: a Go older than its `go` line refuses to even unpack the module.
json=$("$GO" list -m -json "$CRI_TOOLS_MODULE@$CRI_TOOLS_VERSION") || die "go list -m $CRI_TOOLS_MODULE@$CRI_TOOLS_VERSION failed"
GO_MOD=$(json_field GoMod "$json")
[[ -f $GO_MOD ]] || die "go list -m did not fetch go.mod: $json"
need=$(awk '$1 == "toolchain" {sub(/^go/, "", $2); print $2; exit}' "$GO_MOD")
[[ -n $need ]] || need=$(awk '$1 == "go" {print $2; exit}' "$GO_MOD")
# Release toolchains since Go 1.21 are named go1.N.P; go.mod may say just 1.N.
[[ $need =~ ^[0-9]+\.[0-9]+$ ]] && need=$need.0
have=$(go_version "$GO")
have=${have#go}
if ! version_ge "$have" "$need"; then
    goarch=$("$GO" env GOARCH)
    toolchain="golang.org/toolchain@v0.0.1-go${need}.linux-${goarch}"
    log "$GO is go$have but cri-tools needs go$need; fetching $toolchain from the module proxy"
    tjson=$("$GO" mod download -json "$toolchain") || die "go mod download $toolchain failed"
    tdir=$(json_field Dir "$tjson")
    [[ -d $tdir/bin ]] || die "toolchain module has no bin/: $tjson"
    # The module cache strips execute bits; go's own toolchain switch restores them the same way.
    chmod -R u+w "$tdir" && find "$tdir/bin" "$tdir/pkg/tool" -type f -exec chmod a+x {} + && chmod -R a-w "$tdir"
    GO=$tdir/bin/go
    have=$(go_version "$GO")
    have=${have#go}
fi
json=$("$GO" mod download -json "$CRI_TOOLS_MODULE@$CRI_TOOLS_VERSION") || die "go mod download $CRI_TOOLS_MODULE@$CRI_TOOLS_VERSION failed"
MOD_DIR=$(json_field Dir "$json")
[[ -d $MOD_DIR ]] || die "go mod download did not report the module directory: $json"
log "using $GO (go$have)"

mkdir -p "$BIN_DIR"
modflag=()
[[ -d $MOD_DIR/vendor ]] && modflag=(-mod=vendor)

t=$SECONDS
log "building crictl $CRI_TOOLS_VERSION (go install)"
GOBIN=$WORK/bin quiet "$GO" install -trimpath -ldflags "$LDFLAGS" "$CRI_TOOLS_MODULE/cmd/crictl@$CRI_TOOLS_VERSION"
mv -f "$WORK/bin/crictl" "$BIN_DIR/crictl"
log "crictl built in $((SECONDS - t)) s"

t=$SECONDS
log "building critest $CRI_TOOLS_VERSION (go test -c in $MOD_DIR)"
(cd "$MOD_DIR" && quiet "$GO" test -c "${modflag[@]}" -trimpath -ldflags "$LDFLAGS" -o "$WORK/critest" ./cmd/critest)
mv -f "$WORK/critest" "$BIN_DIR/critest"
log "critest built in $((SECONDS - t)) s"

has_version "$BIN_DIR/crictl" --version || die "built crictl does not report $STAMP: $("$BIN_DIR/crictl" --version 2>&1)"
has_version "$BIN_DIR/critest" -version || die "built critest does not report $STAMP: $("$BIN_DIR/critest" -version 2>&1)"
log "done in $((SECONDS - start)) s: $(version_line "$BIN_DIR/crictl" --version); $(version_line "$BIN_DIR/critest" -version)"
