#!/usr/bin/env bash
# The test command (README and CI): sets the machine up (hack/setup.sh --test), then runs ruff, mypy, the
# unit tests, the bounded fuzz suite (hack/fuzz.sh --ci), the integration tests and the crash harness
# (bench/crash.py, 10 kills), starts the daemon on a private socket and state directories with a bridge CNI
# network (contrib/cni), checks `crictl version` and `crictl info`, runs critest minus the ledger
# (hack/critest.sh), and finally stops the daemon with SIGTERM, which must exit 0 within 5 s and remove its
# socket. On a failure it prints the last 100 lines of the daemon log (kept as _output/crio-test.log). Prints
# "hack/test.sh: all checks passed" at the end, or exits non-zero.
#
# Usage: hack/test.sh
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"

readonly CNI_PLUGIN_DIR=/usr/lib/cni
readonly SOCKET_WAIT_S=20
readonly STOP_WAIT_S=5
VENV=$REPO_ROOT/.venv/bin
CRICTL=$REPO_ROOT/_output/bin/crictl
DAEMON_LOG_COPY=$REPO_ROOT/_output/crio-test.log

TMP=
daemon_pid=
daemon_log=

step() { printf '\n==> %s\n' "$*"; }
fail() {
    echo "hack/test.sh: FAILED: $*" >&2
    exit 1
}

# True while the daemon process exists and has not exited (an exited child stays a zombie until waited for).
daemon_running() {
    [[ -n $daemon_pid && -r /proc/$daemon_pid/stat ]] || return 1
    local stat state
    stat=$(<"/proc/$daemon_pid/stat") || return 1
    state=${stat##*) }
    [[ ${state%% *} != Z ]]
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if daemon_running; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq $((STOP_WAIT_S * 10))); do daemon_running || break; sleep 0.1; done
        if daemon_running; then kill -KILL "$daemon_pid" 2>/dev/null || true; fi
        wait "$daemon_pid" 2>/dev/null || true
    fi
    if [[ -n $daemon_log && -f $daemon_log ]]; then
        mkdir -p "$(dirname "$DAEMON_LOG_COPY")"
        cp -f "$daemon_log" "$DAEMON_LOG_COPY"
        if ((rc != 0)); then
            echo "---- last 100 lines of the daemon log ($DAEMON_LOG_COPY) ----" >&2
            tail -n 100 "$daemon_log" >&2
            echo "---- end of the daemon log ----" >&2
        fi
    fi
    # The daemon's namespace directories are mount points of their own (as `ip netns` makes them): they
    # outlive the daemon by design, so release them here. --one-file-system: never follow a mount the
    # daemon may have left behind into the host.
    if [[ -n $TMP ]]; then
        umount -l "$TMP/ns/netns" "$TMP/ns/userns" 2>/dev/null || true
        rm -rf --one-file-system "$TMP" || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# run_pytest DIR [REQUIRED]: pytest exit code 5 means "no tests collected": a failure when DIR has test
# files (or when REQUIRED=1), a loud warning otherwise; it never passes silently.
run_pytest() {
    local dir=$1 required=${2:-0} rc=0
    "$VENV/pytest" -q "$dir" || rc=$?
    if ((rc == 5)); then
        if ((required)) || [[ -n $(find "$dir" \( -name 'test_*.py' -o -name '*_test.py' \) -print -quit) ]]; then
            fail "pytest collected no tests in $dir"
        fi
        echo "hack/test.sh: WARNING: $dir has no tests yet" >&2
        return 0
    fi
    ((rc == 0)) || fail "pytest $dir (exit code $rc)"
}

step "set-up: hack/setup.sh --test"
bash "$REPO_ROOT/hack/setup.sh" --test

step "lint: ruff check ."
"$VENV/ruff" check . || fail "ruff"

step "types: mypy crio tests"
"$VENV/mypy" crio tests || fail "mypy"

step "fixtures: local registry on 127.0.0.1:5000 and the test images (hack/images/build.sh)"
bash "$REPO_ROOT/hack/registry.sh" start || fail "registry"
bash "$REPO_ROOT/hack/images/build.sh" || fail "test images"
bash "$REPO_ROOT/hack/host-network-setup.sh" || fail "host network set-up (hostPorts, bridge netfilter)"

step "unit tests: pytest -q tests/unit"
run_pytest tests/unit 1

step "fuzz: the parsers, bounded and derandomized (hack/fuzz.sh --ci)"
bash "$REPO_ROOT/hack/fuzz.sh" --ci || fail "fuzz (hack/fuzz.sh --ci)"

step "integration tests: pytest -q tests/integration"
run_pytest tests/integration

step "crash harness: 10 SIGKILLs in a 3-client lifecycle loop, nothing lost or leaked (bench/crash.py)"
"$VENV/python" -m bench.crash --kills 10 || fail "crash harness"

step "daemon: start on a private socket"
TMP=$(mktemp -d /tmp/crio-test.XXXXXX)
# Pod user namespaces: the runtime reaches the id-mapped root filesystem under $TMP/root as the pod's root,
# which is "others" to this 0700 directory; let others traverse it (not list it).
chmod o+x "$TMP"
socket=$TMP/crio.sock
daemon_log=$TMP/crio.log
mkdir -p "$TMP/cni" "$TMP/crio.conf.d"
cp contrib/cni/10-crio-bridge.conflist contrib/cni/99-loopback.conf "$TMP/cni/"
# Keep every path the daemon writes under $TMP; the empty drop-in dir hides the host's /etc/crio/crio.conf.d.
cat >"$TMP/crio.conf" <<EOF
[crio]
log_dir = "$TMP/logs"
version_file = "$TMP/run/version"
version_file_persist = "$TMP/lib/version"
clean_shutdown_file = "$TMP/lib/clean.shutdown"

[crio.image]
registries_conf = "$REPO_ROOT/tests/testdata/registries.conf"

[crio.runtime]
container_exits_dir = "$TMP/exits"
container_attach_socket_dir = "$TMP/attach"
namespaces_dir = "$TMP/ns"
# critest's "nil profile, which is unconfined" spec wants the CRI's meaning (CRI-O's CI sets this too).
seccomp_use_default_when_empty = false
EOF
daemon_cmd=(
    "$VENV/crio" --config "$TMP/crio.conf" --config-dir "$TMP/crio.conf.d"
    --listen "$socket" --root "$TMP/root" --runroot "$TMP/runroot" --log-level debug
    --cni-config-dir "$TMP/cni" --cni-plugin-dir "$CNI_PLUGIN_DIR"
)
echo "${daemon_cmd[*]}"
"${daemon_cmd[@]}" </dev/null >"$daemon_log" 2>&1 &
daemon_pid=$!
for _ in $(seq $((SOCKET_WAIT_S * 10))); do
    [[ -S $socket ]] && break
    daemon_running || fail "the daemon exited before creating $socket"
    sleep 0.1
done
[[ -S $socket ]] || fail "no socket $socket after ${SOCKET_WAIT_S} s"
echo "daemon pid $daemon_pid listening on $socket"

crictl() { "$CRICTL" --runtime-endpoint "unix://$socket" --image-endpoint "unix://$socket" "$@"; }

step "crictl version"
out=$(crictl version) || fail "crictl version"
echo "$out"
grep -Eq '^RuntimeName:[[:space:]]+crio$' <<<"$out" || fail "crictl version: RuntimeName is not crio"
grep -Eq '^RuntimeApiVersion:[[:space:]]+v1$' <<<"$out" || fail "crictl version: RuntimeApiVersion is not v1"

step "crictl info"
out=$(crictl info) || fail "crictl info"
head -n 40 <<<"$out"
"$VENV/python" - "$out" <<'EOF' || fail "crictl info: RuntimeReady is not true"
import json
import sys

conditions = {c.get("type"): c for c in json.loads(sys.argv[1]).get("status", {}).get("conditions", [])}
for name in ("RuntimeReady", "NetworkReady"):
    c = conditions.get(name, {})
    print(f"{name}: {c.get('status')} {c.get('reason', '')} {c.get('message', '')}".rstrip())
sys.exit(0 if conditions.get("RuntimeReady", {}).get("status") is True else 1)
EOF

step "crictl: pull, images, inspecti, imagefsinfo, rmi"
image=registry.k8s.io/e2e-test-images/busybox:1.29-2
crictl pull "$image" || fail "crictl pull $image"
crictl images | grep -Eq '^registry.k8s.io/e2e-test-images/busybox[[:space:]]+1.29-2[[:space:]]' ||
    fail "crictl images does not list $image"
crictl inspecti "$image" | grep -q '"repoTags"' || fail "crictl inspecti $image"
crictl imagefsinfo | grep -q '"usedBytes"' || fail "crictl imagefsinfo"
crictl rmi "$image" || fail "crictl rmi $image"
crictl images -q "$image" | grep -q . && fail "crictl rmi left $image behind"

step "critest: hack/critest.sh"
bash "$REPO_ROOT/hack/critest.sh" "$socket" || fail "critest"

step "critest: the streaming specs again, over WebSocket (-websocket-exec/-attach/-portforward)"
bash "$REPO_ROOT/hack/critest.sh" "$socket" -- -ginkgo.focus='Streaming' \
    -websocket-exec -websocket-attach -websocket-portforward || fail "critest (streaming over WebSocket)"

step "daemon: SIGTERM"
daemon_running || fail "the daemon is no longer running before SIGTERM"
kill -TERM "$daemon_pid"
start_ns=$(date +%s%N)
for _ in $(seq $((STOP_WAIT_S * 10))); do daemon_running || break; sleep 0.1; done
daemon_running && fail "the daemon did not exit within ${STOP_WAIT_S} s of SIGTERM"
daemon_rc=0
wait "$daemon_pid" || daemon_rc=$?
daemon_pid=
echo "daemon exited with status $daemon_rc after $((($(date +%s%N) - start_ns) / 1000000)) ms"
((daemon_rc == 0)) || fail "the daemon exited with status $daemon_rc on SIGTERM"
[[ ! -e $socket ]] || fail "the daemon left its socket $socket behind"

echo
echo "hack/test.sh: all checks passed"
