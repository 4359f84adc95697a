#!/usr/bin/env bash
# Idempotent machine set-up for a fresh Debian 12 machine (run as root): installs the Debian packages crio
# needs, creates the virtualenv .venv in the repository and installs crio into it (editable, with its
# extras). With --test it also installs the test extra and the out-of-tree test plugin, and builds crictl
# and critest (hack/build-cri-tools.sh). Safe to run again: each step that is already done is skipped.
#
# Usage: hack/setup.sh [--test] [--force]
#   --test   also install test dependencies and build the CRI tools
#   --force  reinstall the Python packages even if nothing changed since the last run
set -euo pipefail

# Debian packages. Later issues append here (one array, so the list is in one place).
DEBIAN_PACKAGES=(
    ca-certificates
    python3
    python3-venv
    runc
    conmon
    containernetworking-plugins
    iptables
    catatonit
    # /etc/containers/policy.json (accept anything) and registries.conf.d: the node's image trust defaults.
    golang-github-containers-common
    # gpgv verifies simple-signing signatures for signedBy policies.
    gpgv
)
# Only with --test: the local registry and fixture tools, and podman/skopeo for the interoperability tests.
TEST_DEBIAN_PACKAGES=(
    docker-registry
    skopeo
    podman
    umoci
    openssl
    curl
    iproute2
    util-linux
    # sysctl (hack/host-network-setup.sh) and pgrep (tests)
    procps
    busybox
    # The trust tests make GPG keys and simple-signing signatures.
    gnupg
)
readonly MIN_PYTHON=3.11
readonly EXTRAS=seccomp,apparmor,selinux
readonly TEST_PLUGIN=tests/plugins/crio-hello-plugin

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
# shellcheck source=hack/lib/apt.sh
source "$REPO_ROOT/hack/lib/apt.sh"
# shellcheck source=hack/lib/cni-default.sh
source "$REPO_ROOT/hack/lib/cni-default.sh"

with_test=0
force=0
for arg in "$@"; do
    case $arg in
        --test) with_test=1 ;;
        --force) force=1 ;;
        -h | --help)
            sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "setup: unknown argument: $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

step() { echo "setup: $*"; }
die() {
    echo "setup: error: $*" >&2
    exit 1
}
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
# quiet CMD...: run CMD with its output in a log that is shown only if it fails.
quiet() {
    if ! "$@" >"$LOG" 2>&1; then
        tail -n 40 "$LOG" >&2
        die "failed: $*"
    fi
}

if [[ -r /etc/os-release ]]; then
    # shellcheck disable=SC1091
    os_id=$(. /etc/os-release && echo "${ID:-}:${VERSION_ID:-}")
    [[ $os_id == debian:12 ]] || step "warning: written for Debian 12, this is ${os_id}"
fi

# --- 1. Debian packages ------------------------------------------------------------------------------
((with_test)) && DEBIAN_PACKAGES+=("${TEST_DEBIAN_PACKAGES[@]}")
mapfile -t missing < <(apt_missing "${DEBIAN_PACKAGES[@]}")
if ((${#missing[@]} == 0)); then
    step "Debian packages: all ${#DEBIAN_PACKAGES[@]} installed"
else
    apt_install "${missing[@]}" || die "cannot install the Debian packages ${missing[*]}"
fi

# --- 2. Python and the virtualenv --------------------------------------------------------------------
PYTHON=$(command -v python3 || true)
[[ -n $PYTHON ]] || die "python3 not found"
"$PYTHON" -c "import sys; sys.exit(sys.version_info < tuple(map(int, '$MIN_PYTHON'.split('.'))))" ||
    die "crio needs Python >= $MIN_PYTHON; $PYTHON is $("$PYTHON" -c 'import platform; print(platform.python_version())')"

venv_ok() {
    [[ -x .venv/bin/python ]] &&
        .venv/bin/python -c "import sys, pip; sys.exit(sys.version_info < tuple(map(int, '$MIN_PYTHON'.split('.'))))" 2>/dev/null
}
if venv_ok; then
    step "virtualenv .venv: present ($(.venv/bin/python -c 'import platform; print(platform.python_version())'))"
else
    step "virtualenv .venv: creating with $PYTHON"
    rm -rf .venv
    quiet "$PYTHON" -m venv .venv
fi

# --- 3. Python packages ------------------------------------------------------------------------------
extras=$EXTRAS
((with_test)) && extras+=,test
plugin_dir=
((with_test)) && [[ -d $TEST_PLUGIN ]] && plugin_dir=$TEST_PLUGIN
# Skip pip when nothing it depends on changed since the last successful run (editable installs pick up
# code changes by themselves; a changed pyproject.toml, e.g. a new entry point, needs a reinstall).
# A --test install is a superset of a plain one, so hack/run.sh after hack/test.sh reinstalls nothing.
stamp_file=.venv/.crio-setup-stamp
stamp_for() { # stamp_for EXTRAS PLUGIN_DIR
    {
        echo "extras=$1 plugin=$2"
        .venv/bin/python -c 'import sys; print(sys.version)'
        cat pyproject.toml
        [[ -z $2 ]] || cat "$2/pyproject.toml"
    } | sha256sum | cut -d' ' -f1
}
stamp=$(stamp_for "$extras" "$plugin_dir")
accepted=("$stamp")
if ((!with_test)) && [[ -d $TEST_PLUGIN ]]; then
    accepted+=("$(stamp_for "$EXTRAS,test" "$TEST_PLUGIN")")
fi
installed=
[[ -f $stamp_file ]] && installed=$(<"$stamp_file")
up_to_date=0
for s in "${accepted[@]}"; do [[ $installed == "$s" ]] && up_to_date=1; done
if ((!force && up_to_date)) && .venv/bin/crio --version >/dev/null 2>&1; then
    step "pip: crio[$extras] already installed, pyproject unchanged"
else
    rm -f "$stamp_file"
    step "pip: upgrading pip"
    quiet .venv/bin/python -m pip install --disable-pip-version-check -q --upgrade pip
    step "pip: installing crio[$extras] (editable)"
    quiet .venv/bin/pip install --disable-pip-version-check -q -e ".[$extras]"
    if [[ -n $plugin_dir ]]; then
        step "pip: installing the test plugin $plugin_dir (editable)"
        quiet .venv/bin/pip install --disable-pip-version-check -q -e "$plugin_dir"
    fi
    echo "$stamp" >"$stamp_file"
fi

# --- 4. Default pod network ---------------------------------------------------------------------------
# crio's default network (contrib/cni: crio0 on 10.85.0.0/16) into /etc/cni/net.d unless the node has one of
# its own there; podman's packaged default does not count (hack/lib/cni-default.sh).
if ((EUID == 0)); then
    step "$(cni_default_network /etc/cni/net.d "$REPO_ROOT/contrib/cni")"
fi

# --- 5. CRI tools (crictl, critest) ------------------------------------------------------------------
if ((with_test)); then
    step "CRI tools: hack/build-cri-tools.sh"
    bash "$REPO_ROOT/hack/build-cri-tools.sh"
fi
step "done"
