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
    busybox
    # The trust tests make GPG keys and simple-signing signatures.
    gnupg
)
readonly MIN_PYTHON=3.11
readonly EXTRAS=seccomp,apparmor,selinux
readonly TEST_PLUGIN=tests/plugins/crio-hello-plugin
# apt lists younger than this are fresh enough to install from without `apt-get update`.
readonly APT_LISTS_MAX_AGE_MIN=60
readonly APT_UPDATE_STAMP=/var/lib/apt/periodic/update-success-stamp

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

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
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    step "Debian packages: all ${#DEBIAN_PACKAGES[@]} installed"
else
    ((EUID == 0)) || die "Debian packages missing (${missing[*]}); run as root"
    export DEBIAN_FRONTEND=noninteractive
    # apt gives list files the server's timestamps, so also keep our own stamp of the last update.
    if [[ -n $(find "$APT_UPDATE_STAMP" /var/lib/apt/lists -maxdepth 1 \( -name "${APT_UPDATE_STAMP##*/}" \
        -o -name '*Packages*' -o -name '*Release' \) -mmin "-$APT_LISTS_MAX_AGE_MIN" -print -quit 2>/dev/null) ]]; then
        step "apt-get update: skipped (package lists younger than $APT_LISTS_MAX_AGE_MIN min)"
    else
        step "apt-get update"
        # A third-party source that cannot be reached must not stop the set-up; the install below
        # fails clearly if a package we need is really unavailable.
        if apt-get update -qq >"$LOG" 2>&1; then
            mkdir -p "${APT_UPDATE_STAMP%/*}" && touch "$APT_UPDATE_STAMP"
        else
            grep -E '^(E|W):' "$LOG" >&2 || true
            step "warning: apt-get update reported errors (above); continuing"
        fi
    fi
    step "apt-get install ${missing[*]}"
    quiet apt-get install -y -qq --no-install-recommends "${missing[@]}"
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
# A bridge + host-local + portmap network (and loopback) for Debian's CNI plugins, unless one exists.
CNI_CONF_DIR=/etc/cni/net.d
if compgen -G "$CNI_CONF_DIR/*.conf*" >/dev/null || compgen -G "$CNI_CONF_DIR/*.json" >/dev/null; then
    step "CNI: $CNI_CONF_DIR already has a network configuration"
elif ((EUID == 0)); then
    install -d -m 0755 "$CNI_CONF_DIR"
    install -m 0644 contrib/cni/10-crio-bridge.conflist contrib/cni/99-loopback.conf "$CNI_CONF_DIR/"
    step "CNI: installed the default bridge network into $CNI_CONF_DIR"
fi

# --- 5. CRI tools (crictl, critest) ------------------------------------------------------------------
if ((with_test)); then
    step "CRI tools: hack/build-cri-tools.sh"
    bash "$REPO_ROOT/hack/build-cri-tools.sh"
fi
step "done"
