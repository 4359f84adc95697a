#!/usr/bin/env bash
# Proves the README's test command on a brand-new Debian 12: builds a minimal Debian 12 root with mmdebstrap
# (variant minbase, from Debian's packages only), puts a clean clone of this repository (its HEAD) in it at
# /root/crio, and runs the README's two commands there as CI would (as root, CI=true, no stdin): first
# `hack/run.sh` (the daemon on its defaults must report RuntimeReady and NetworkReady, then exit 0 on
# SIGTERM), then `hack/test.sh`. An install step the scripts forgot fails here even when the host already
# has what it needs. It runs in
#   - a private mount namespace whose root is the new root (bound onto itself, then pivot_root), with
#     /proc, a /sys of its own, the host's cgroup hierarchies and /dev bound in, and /run a fresh tmpfs;
#   - a private PID namespace, so that nothing it starts (registry, daemons, containers) outlives it;
#   - a private network namespace, so that its registry on 127.0.0.1:5000, bridges, iptables rules and CNI
#     state never meet the host's (nor the host's crio, registry or tests). It reaches Debian's mirror,
#     PyPI and the Go module proxy through a veth pair that the host masquerades (one nat rule and two
#     forward rules, tagged and removed at the end).
# The kernel, netfilter and namespaces are the host's. The host's own trust anchors
# (/usr/local/share/ca-certificates) and its proxy and CA environment variables are carried in, as a fresh
# machine on this network would have them. Everything is removed at the end, unless --keep.
#
# Usage: hack/fresh-check.sh [--keep] [--ref REF]
#   --keep     keep the root (printed at the end) for a look; its namespaces are gone either way
#   --ref REF  the commit to check (default HEAD); uncommitted changes are never part of a clean clone
# Environment: FRESH_MIRROR [http://deb.debian.org/debian], FRESH_SECURITY_MIRROR
#   [http://deb.debian.org/debian-security], FRESH_LINK_NET [10.254.254] (the /30 of the veth pair: .1 host,
#   .2 root), FRESH_WORKDIR [/var/tmp] (where the root is built; needs ~6 GB).
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT
readonly SCRIPT=$REPO_ROOT/hack/fresh-check.sh
readonly SUITE=bookworm
readonly MIRROR=${FRESH_MIRROR:-http://deb.debian.org/debian}
readonly SECURITY_MIRROR=${FRESH_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
readonly LINK_NET=${FRESH_LINK_NET:-10.254.254}
readonly CLONE=/root/crio
# Variables of the host's network environment a fresh machine here would have too.
readonly PASS_ENV=(http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY SSL_CERT_FILE SSL_CERT_DIR
    REQUESTS_CA_BUNDLE CURL_CA_BUNDLE PIP_CERT PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_DEFAULT_TIMEOUT
    GOPROXY GONOSUMDB GONOSUMCHECK GOSUMDB GOPRIVATE NODE_EXTRA_CA_CERTS)

keep=0
WORK=
ROOT=
NS=
TAG=
RULES=()
rules_added=0
forward_before=

say() { echo "fresh-check: $*"; }
die() {
    echo "fresh-check: error: $*" >&2
    exit 1
}

# inside ROOT ENV...: PID 1 of the private PID namespace, in the private mount and network namespaces.
inside() {
    local root=$1 daemon ready daemon_rc rc
    shift
    mount --bind "$root" "$root"
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys" # this network namespace's view of the devices
    mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
    mount --rbind /dev "$root/dev"
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
    mkdir -p "$root/run/lock" "$root/.old-root"
    # pivot_root, not a plain chroot: the kernel refuses user namespaces to a chrooted process, and runc
    # expects its root to be its mount namespace's root, as on a machine.
    cd "$root"
    pivot_root . .old-root
    cd /
    umount -l /.old-root
    rmdir /.old-root
    # The README's first command: hack/run.sh sets the machine up and runs the daemon on its defaults; it
    # must answer on /var/run/crio/crio.sock with RuntimeReady and NetworkReady, and exit 0 on SIGTERM.
    echo "fresh-check: hack/run.sh (the daemon on its built-in defaults)"
    /usr/bin/env -i "$@" /bin/bash -c "cd $CLONE && exec hack/run.sh" </dev/null >/tmp/run.log 2>&1 &
    daemon=$!
    ready=0
    for _ in $(seq 1800); do # setup.sh installs packages first: up to 15 min
        if [[ -S /var/run/crio/crio.sock ]] &&
            "$CLONE/.venv/bin/ocic" info 2>/dev/null | "$CLONE/.venv/bin/python" -c '
import json, sys
conditions = {c["type"]: c.get("status") for c in json.load(sys.stdin)["status"]["conditions"]}
sys.exit(0 if conditions.get("RuntimeReady") and conditions.get("NetworkReady") else 1)'; then
            ready=1
            break
        fi
        kill -0 "$daemon" 2>/dev/null || break
        sleep 0.5
    done
    kill -TERM "$daemon" 2>/dev/null || true
    daemon_rc=0
    wait "$daemon" || daemon_rc=$?
    if ((!ready || daemon_rc != 0)); then
        tail -n 40 /tmp/run.log >&2
        echo "fresh-check: hack/run.sh: ready=$ready, exit code $daemon_rc after SIGTERM (want 1 and 0)" >&2
        exit 1
    fi
    echo "fresh-check: hack/run.sh: RuntimeReady and NetworkReady on /var/run/crio/crio.sock; exit 0 on SIGTERM"
    rc=0
    /usr/bin/env -i "$@" /bin/bash -c "cd $CLONE && exec hack/test.sh" </dev/null || rc=$?
    # The registry runs in a session of its own; stop it cleanly (the namespace's end would kill it anyway).
    /usr/bin/env -i "$@" /bin/bash -c "cd $CLONE && hack/registry.sh stop" >/dev/null 2>&1 || true
    exit "$rc"
}

# cleanup: the exit trap of outside: namespaces, host rules and sysctl back as they were, the root removed.
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Dropping the network namespace deletes the veth pair; the PID namespace is gone with its init.
    [[ -z $NS ]] || ip netns del "$NS" 2>/dev/null || true
    local rule words
    for rule in "${RULES[@]:0:rules_added}"; do
        read -ra words <<<"$rule"
        iptables -t "${words[0]}" -D "${words[@]:1}" -m comment --comment "$TAG" || true
    done
    [[ -z $forward_before ]] || sysctl -qw "net.ipv4.ip_forward=$forward_before" || true
    if [[ -z $WORK ]]; then
        :
    elif ((keep)); then
        say "kept the root: $ROOT"
    else
        # --one-file-system: never follow a mount into the host (there should be none outside the namespace).
        rm -rf --one-file-system "$WORK" 2>/dev/null || rm -rf --one-file-system "$WORK" || true
    fi
    exit "$rc"
}

# outside ARGS...: builds the root and the namespaces, runs inside, cleans up.
outside() {
    local ref=HEAD commit start t rc rule words name env_in
    while (($#)); do
        case $1 in
            --keep) keep=1 ;;
            --ref)
                ref=${2:?--ref needs a commit}
                shift
                ;;
            -h | --help)
                sed -n '2,24s/^# \{0,1\}//p' "$SCRIPT"
                exit 0
                ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
        shift
    done
    ((EUID == 0)) || die "run as root"
    [[ $(. /etc/os-release && echo "${ID:-}") == debian ]] || say "warning: written for a Debian host"

    # shellcheck source=hack/lib/apt.sh
    source "$REPO_ROOT/hack/lib/apt.sh"
    apt_install mmdebstrap git iproute2 iptables util-linux ca-certificates || die "cannot install the host tools"
    commit=$(git -C "$REPO_ROOT" rev-parse --verify "$ref^{commit}") || die "no commit $ref in $REPO_ROOT"

    start=$SECONDS
    WORK=$(mktemp -d "${FRESH_WORKDIR:-/var/tmp}/crio-fresh.XXXXXX")
    ROOT=$WORK/root
    NS=crio-fresh-$$
    HOST_IF=crfh$$
    ROOT_IF=crfr$$
    TAG="crio fresh-check $$"
    # The host's rules for the root's way out: "TABLE CHAIN-AND-MATCHES..." (added with -I, removed with -D).
    RULES=(
        "nat POSTROUTING -s $LINK_NET.2/32 ! -o $HOST_IF -j MASQUERADE"
        "filter FORWARD -i $HOST_IF -j ACCEPT"
        "filter FORWARD -o $HOST_IF -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"
    )
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM

    # 1. The root: Debian 12 minbase, plus the CA certificates package and the host's own trust anchors.
    say "mmdebstrap $SUITE (minbase) into $ROOT"
    t=$SECONDS
    mmdebstrap --quiet --mode=root --variant=minbase --include=ca-certificates "$SUITE" "$ROOT" \
        "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main" ||
        die "mmdebstrap failed"
    if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
        chroot "$ROOT" update-ca-certificates >/dev/null || die "update-ca-certificates failed in the root"
    fi
    cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
    grep -qs localhost "$ROOT/etc/hosts" || printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >>"$ROOT/etc/hosts"
    say "root built in $((SECONDS - t)) s ($(du -sh --one-file-system "$ROOT" | cut -f1))"

    # 2. A clean clone of the commit.
    git clone --quiet --no-hardlinks "$REPO_ROOT" "$ROOT$CLONE"
    git -C "$ROOT$CLONE" checkout --quiet --detach "$commit"
    say "clean clone of $(git -C "$ROOT$CLONE" log -1 --format='%h %s') at $CLONE"

    # 3. The network namespace and its way out.
    ip netns add "$NS"
    ip link add "$HOST_IF" type veth peer name "$ROOT_IF"
    ip link set "$ROOT_IF" netns "$NS"
    ip addr add "$LINK_NET.1/30" dev "$HOST_IF"
    ip link set "$HOST_IF" up
    ip -n "$NS" addr add "$LINK_NET.2/30" dev "$ROOT_IF"
    ip -n "$NS" link set "$ROOT_IF" up
    ip -n "$NS" link set lo up
    ip -n "$NS" route add default via "$LINK_NET.1"
    forward_before=$(sysctl -n net.ipv4.ip_forward)
    sysctl -qw net.ipv4.ip_forward=1
    for rule in "${RULES[@]}"; do
        read -ra words <<<"$rule"
        iptables -t "${words[0]}" -I "${words[@]:1:1}" 1 "${words[@]:2}" -m comment --comment "$TAG"
        rules_added=$((rules_added + 1))
    done

    # 4. hack/test.sh in the root.
    env_in=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 CI=true
        "TERM=${TERM:-dumb}")
    for name in "${PASS_ENV[@]}"; do
        [[ -n ${!name:-} ]] && env_in+=("$name=${!name}")
    done
    say "running hack/test.sh in the fresh root"
    t=$SECONDS
    rc=0
    nsenter --net="/run/netns/$NS" -- unshare --pid --fork --mount --propagation private -- \
        bash "$SCRIPT" --inside "$ROOT" "${env_in[@]}" || rc=$?
    say "hack/test.sh in the fresh root: exit $rc after $((SECONDS - t)) s (fresh-check total $((SECONDS - start)) s)"
    ((rc == 0)) || die "the README's test command failed on a fresh Debian 12 root"
    say "passed"
}

# All of the script is read before anything runs, so editing it during a run changes nothing.
if [[ ${1:-} == --inside ]]; then
    shift
    inside "$@"
else
    outside "$@"
fi; exit
