#!/usr/bin/env bash
# Checks what the local test registry (hack/registry.sh) serves against what hack/images/build.sh pushed
# (_output/images/images.tsv) and against the content rules of critest.md sections 2 and 5.3:
#   - every name critest and crio's tests need is pushed, `skopeo inspect` finds it with the recorded
#     digest, and the names in tests/testdata/registries.conf resolve to it through containers/image;
#   - image IDs (config digests) are all distinct, except test-image-tags:1/:2/:3 (one image, 3 tags);
#   - content, after a `skopeo copy` out of the registry and `umoci unpack` into a temp dir: hard-linked
#     busybox applets, pgrep/ipcs shims that work, passwd/group users, /tmp 1777, the exact busybox error
#     texts critest matches, nginx (daemon off, /var/run/nginx.pid, master process, HTTP 200 on 80 and
#     12003), httpd (HTTP 200, "httpd" in its log), the setuid nnp (mode 4755 root, "Effective uid: N"
#     with and without no_new_privs), pause, the user/group images, redis (PONG), the multi-layer,
#     index, zstd and uncompressed images. Servers run chrooted in throw-away net/pid/mount namespaces.
#
# Usage: hack/images/verify.sh [--big]     (--big: also check crio-test/big:latest)
# Needs root (chroot, unshare). Prints one line per check and ends with "N passed, M failed"; exits 1 if
# any check failed.
set -euo pipefail
shopt -s inherit_errexit

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO_ROOT
readonly REGISTRY=${REGISTRY_ADDR:-127.0.0.1:5000}
readonly TSV=$REPO_ROOT/_output/images/images.tsv
readonly REGISTRIES_CONF=$REPO_ROOT/tests/testdata/registries.conf
readonly MB=1000000

with_big=0
for arg in "$@"; do
    case $arg in
        --big) with_big=1 ;;
        -h | --help)
            sed -n '2,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
            exit 0
            ;;
        *)
            echo "verify: unknown argument: $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

# Names critest (critest.md section 2, as pushed: registry paths) and crio's tests need.
REQUIRED=(
    e2e-test-images/busybox:1.29-2 e2e-test-images/nginx:1.14-2 e2e-test-images/httpd:2.4.39-4
    e2e-test-images/nonewprivs:1.3 pause:3.9
    k8s-staging-cri-tools/test-image-tag:test k8s-staging-cri-tools/test-image-tag:all
    k8s-staging-cri-tools/test-image-latest:latest
    k8s-staging-cri-tools/test-image-1:latest k8s-staging-cri-tools/test-image-2:latest
    k8s-staging-cri-tools/test-image-3:latest
    k8s-staging-cri-tools/test-image-tags:1 k8s-staging-cri-tools/test-image-tags:2
    k8s-staging-cri-tools/test-image-tags:3
    k8s-staging-cri-tools/test-image-user-uid:latest k8s-staging-cri-tools/test-image-user-username:latest
    k8s-staging-cri-tools/test-image-user-uid-group:latest
    k8s-staging-cri-tools/test-image-user-username-group:latest
    k8s-staging-cri-tools/test-image-predefined-group:latest k8s-staging-cri-tools/hostnet-nginx-amd64:latest
    docker/library/busybox:1.35.0-glibc docker/library/busybox:1-uclibc docker/library/busybox:1
    docker/library/busybox:1-glibc docker/library/busybox:1-musl
    crio-test/redis:latest crio-test/multilayer:latest crio-test/index:latest crio-test/zstd:latest
    crio-test/uncompressed:latest crio-test/schema2:latest
)
((with_big)) && REQUIRED+=(crio-test/big:latest)
# Public names (as the tests write them) resolved through registries.conf, with their registry path.
MAPPED=(
    "registry.k8s.io/e2e-test-images/busybox:1.29-2 e2e-test-images/busybox:1.29-2"
    "registry.k8s.io/pause:3.9 pause:3.9"
    "k8s.gcr.io/pause:3.9 pause:3.9"
    "gcr.io/k8s-staging-cri-tools/test-image-tags:2 k8s-staging-cri-tools/test-image-tags:2"
    "public.ecr.aws/docker/library/busybox:1-musl docker/library/busybox:1-musl"
    "quay.io/crio-test/redis:latest crio-test/redis:latest"
    "127.0.0.1:5000/crio-test/zstd:latest crio-test/zstd:latest"
)

passed=0
failed=0
ok() {
    passed=$((passed + 1))
    echo "ok   $*"
}
fail() {
    failed=$((failed + 1))
    echo "FAIL $*"
}
# indent TEXT: shows the first 15 lines of a failed check's output, indented.
indent() {
    local line n=0
    [[ -n $1 ]] || return 0
    while IFS= read -r line && ((n++ < 15)); do
        echo "       $line"
    done <<<"$1"
}
# check DESCRIPTION CMD...: one check; CMD's output is shown when it fails.
check() {
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then
        ok "$what"
    else
        fail "$what"
        indent "$out"
    fi
}
# expect DESCRIPTION WANT CMD...: CMD's output (stdout and stderr) must contain WANT.
expect() {
    local what=$1 want=$2 out
    shift 2
    out=$("$@" 2>&1) || true
    if [[ $out == *"$want"* ]]; then
        ok "$what"
    else
        fail "$what: wanted '$want'"
        indent "$out"
    fi
}
die() {
    echo "verify: error: $*" >&2
    exit 1
}

((EUID == 0)) || die "run as root (chroot and unshare)"
for tool in skopeo umoci jq curl zstd unshare chroot setpriv ipcmk redis-cli busybox; do
    command -v "$tool" >/dev/null || die "$tool is missing; run hack/images/build.sh first (it installs it)"
done
# shellcheck source=hack/lib/skopeo.sh
source "$REPO_ROOT/hack/lib/skopeo.sh"
curl -sf -o /dev/null "http://$REGISTRY/v2/" || die "no registry on $REGISTRY; run hack/registry.sh start"
[[ -r $TSV ]] || die "$TSV is missing; run hack/images/build.sh"

TMP=$(mktemp -d /var/tmp/crio-images-verify.XXXXXX)
cleanup() {
    # Every mount of the checks lives in a private mount namespace; refuse to delete through a leaked one.
    if grep -qF " $TMP/" /proc/self/mountinfo; then
        echo "verify: mounts left under $TMP; not removing it" >&2
        return
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

declare -A DIGEST
while IFS=$'\t' read -r name digest _; do
    [[ $name == \#* || -z $name ]] && continue
    DIGEST[$name]=$digest
done <"$TSV"

# raw NAME-or-REPO@DIGEST: the raw manifest the registry serves.
raw() { skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/$1"; }
# blob REPO DIGEST: streams one blob out of the registry.
blob() { curl -sf "http://$REGISTRY/v2/$1/blobs/$2"; }
# image_manifest NAME: the image manifest of NAME (the linux/amd64 one when NAME is an index).
image_manifest() {
    local m
    m=$(raw "$1")
    if [[ $(jq -r '.mediaType // ""' <<<"$m") == *index* || $(jq -r '.mediaType // ""' <<<"$m") == *list* ]]; then
        m=$(raw "${1%:*}@$(jq -r '.manifests[] | select(.platform.architecture == "amd64") | .digest' <<<"$m")")
    fi
    echo "$m"
}
# unpack NAME: copies NAME out of the registry (skopeo verifies every blob digest) and unpacks it with
# umoci; prints the bundle directory (rootfs/ and config.json), config blob at bundle/image-config.json.
unpack() {
    local name=$1 dir m
    dir=$TMP/$(tr '/:' '__' <<<"$name")
    if [[ ! -d $dir/bundle ]]; then
        mkdir -p "$dir"
        skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/$name" "oci:$dir/layout:img" >&2
        umoci unpack --image "$dir/layout:img" "$dir/bundle" >/dev/null 2>&1
        m=$(jq -r '.manifests[0].digest' "$dir/layout/index.json")
        m=$(jq -r .config.digest "$dir/layout/blobs/sha256/${m#sha256:}")
        cp "$dir/layout/blobs/sha256/${m#sha256:}" "$dir/bundle/image-config.json"
    fi
    echo "$dir/bundle"
}
# cfg BUNDLE JQ: evaluates JQ (compact) on the image config.
cfg() { jq -c "$2" "$1/image-config.json"; }
# same_inode A B: A and B are one file (hard links).
same_inode() { [[ -e $1 && -e $2 && $(stat -c %d:%i "$1") == "$(stat -c %d:%i "$2")" ]]; }
# in_netns SCRIPT ARGS...: runs a host shell script in new net, pid and mount namespaces (lo up, /proc of
# the new pid namespace); every process in it dies with it. Mounts made by SCRIPT stay in the namespace.
in_netns() {
    local script=$1
    shift
    timeout 60 unshare --net --pid --mount --propagation private --fork --kill-child --mount-proc \
        sh -c "busybox ip link set lo up; $script" sh "$@"
}
# shellcheck disable=SC2016 # expanded by the shell in the namespaces
# The server-check script for in_netns: $1 rootfs, $2 port, $3 log file, rest: command to chroot into.
# Prints the HTTP status, then the pid file's command line (if any), then stops the server.
readonly HTTP_CHECK='
root=$1 port=$2 log=$3
shift 3
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
chroot "$root" "$@" >"$log" 2>&1 &
i=0
until curl -sf -o /dev/null "http://127.0.0.1:$port/" || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.1; done
echo "status=$(curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$port/")"
if [ -s "$root/var/run/nginx.pid" ]; then
    pid=$(cat "$root/var/run/nginx.pid")
    echo "pidfile=$pid cmdline=$(tr "\0" " " <"/proc/$pid/cmdline")"
fi
kill -TERM $! 2>/dev/null
wait $! 2>/dev/null
echo "exit=$?"
'

# --- 1. every name is served, with the recorded digest -----------------------------------------------
echo "== registry $REGISTRY: names and digests"
for name in "${REQUIRED[@]}"; do
    [[ -n ${DIGEST[$name]:-} ]] || fail "$name: not in $TSV (not built?)"
done
for name in "${!DIGEST[@]}"; do
    if ! got=$(skopeo inspect --tls-verify=false --no-tags --format '{{.Digest}}' "docker://$REGISTRY/$name" 2>&1); then
        fail "$name: skopeo inspect failed: $got"
    elif [[ $got != "${DIGEST[$name]}" ]]; then
        fail "$name: registry serves $got, build recorded ${DIGEST[$name]}"
    else
        ok "$name: served, $got"
    fi
done
echo "== registries.conf mappings (containers/image through skopeo)"
for pair in "${MAPPED[@]}"; do
    read -r public path <<<"$pair"
    expect "$public -> 127.0.0.1:5000/$path" "${DIGEST[$path]:-no digest recorded}" \
        skopeo --registries-conf "$REGISTRIES_CONF" inspect --no-tags --format '{{.Digest}}' "docker://$public"
done

# --- 2. image IDs ---------------------------------------------------------------------------------------
echo "== image IDs (config digests)"
declare -A OWNER
for name in $(printf '%s\n' "${!DIGEST[@]}" | sort); do
    id=$(image_manifest "$name" | jq -r .config.digest)
    if [[ -n ${OWNER[$id]:-} ]]; then
        case "${OWNER[$id]} $name" in
            k8s-staging-cri-tools/test-image-tags:?\ k8s-staging-cri-tools/test-image-tags:?)
                ok "$name shares its ID with ${OWNER[$id]} (one image, several tags: wanted)"
                ;;
            *) fail "$name has the same ID ($id) as ${OWNER[$id]}" ;;
        esac
    else
        OWNER[$id]=$name
    fi
done
ok "$(printf '%s\n' "${!OWNER[@]}" | wc -l) distinct image IDs for ${#DIGEST[@]} names"

# --- 3. busybox base rules (critest.md 5.3), on the default test image ------------------------------------
echo "== e2e-test-images/busybox:1.29-2 (the default test image)"
b=$(unpack e2e-test-images/busybox:1.29-2)
r=$b/rootfs
check "bin/ls is a hard link to bin/busybox" same_inode "$r/bin/ls" "$r/bin/busybox"
applets=$(chroot "$r" /bin/busybox --list)
nonlinked=0
for a in $applets; do
    [[ $a == busybox ]] || same_inode "$r/bin/$a" "$r/bin/busybox" || nonlinked=$((nonlinked + 1))
done
check "all $(wc -w <<<"$applets") applets in /bin are hard links to busybox ($nonlinked are not)" test "$nonlinked" -eq 0
check "bin/busybox is the dynamic build (needs libc)" sh -c "file -L '$r/bin/busybox' 2>/dev/null | grep -q dynamic || readelf -l '$r/bin/busybox' | grep -q INTERP"
for a in sh top sleep echo cat ls touch id hostname pidof pgrep ipcs netstat brctl ping mount mkdir grep dd seq sync; do
    [[ -x $r/bin/$a ]] || fail "applet or shim $a missing"
done
ok "applets and shims critest calls are present"
check "/etc/passwd: root 0, www-data 33, nobody 65534" grep -qE '^root:x:0:0:' "$r/etc/passwd"
check "/etc/passwd: www-data 33" grep -qE '^www-data:x:33:33:' "$r/etc/passwd"
check "/etc/passwd: nobody 65534" grep -qE '^nobody:x:65534:65534:' "$r/etc/passwd"
check "/etc/group: root, www-data, nobody" sh -c "grep -q '^root:x:0:' '$r/etc/group' && grep -q '^www-data:x:33:' '$r/etc/group' && grep -q '^nobody:x:65534:' '$r/etc/group'"
check "/tmp is mode 1777" test "$(stat -c %a "$r/tmp")" = 1777
check "/proc /sys /dev /var/run exist" test -d "$r/proc" -a -d "$r/sys" -a -d "$r/dev" -a -d "$r/var/run"
check "config: Cmd [sh], PATH set" test "$(cfg "$b" '[.config.Cmd, (.config.Env | map(select(startswith("PATH="))) | length)]')" = '[["sh"],1]'
# shellcheck disable=SC2016 # expanded in the image's shell
expect "echo -n hello prints exactly hello" "[hello]" chroot "$r" /bin/sh -c 'printf "[%s]" "$(echo -n hello)"'
expect "id -nu as root / as 65534" "root nobody" sh -c "echo \$(chroot '$r' id -nu) \$(chroot --userspec=65534:65534 '$r' id -nu)"
expect "MaskedPaths on /bin/ls: exact error text" "/bin/sh: ls: Permission denied" \
    unshare --mount --propagation private sh -c "mount --bind /dev/null '$r/bin/ls' && chroot '$r' /bin/sh -c ls"
expect "ReadonlyPaths /tmp: exact error text" "touch: /tmp/test: Read-only file system" \
    unshare --mount --propagation private sh -c "mount --bind '$r/tmp' '$r/tmp' && mount -o remount,bind,ro '$r/tmp' && chroot '$r' touch /tmp/test"
# shellcheck disable=SC2016 # expanded by the inner shell
expect "ping without CAP_NET_RAW: header on stdout, 'permission denied' on stderr" \
    "out=[PING 127.0.0.1 (127.0.0.1): 56 data bytes] err=[ping: permission denied (are you root?)]" \
    unshare --net --mount --propagation private sh -c '
        busybox ip link set lo up && mount --rbind /dev "$1/dev" || exit 1
        out=$(setpriv --bounding-set=-net_raw --inh-caps=-net_raw chroot "$1" ping -c 1 -W 1 127.0.0.1 2>"$2")
        echo "out=[$out] err=[$(cat "$2")]"' sh "$r" "$TMP/ping.err"
# shellcheck disable=SC2016 # expanded in the image's shell
expect "pgrep shim finds sleep and prints nothing for an absent name" "found [none]" \
    unshare --pid --mount --propagation private --fork --mount-proc="$r/proc" sh -c 'mount --rbind /dev "$1/dev" && exec chroot "$1" /bin/sh -c "$2"' sh "$r" \
    'sleep 30 & sleep 0.2; p=$(pgrep sleep); [ "$p" = "$!" ] && echo -n "found "; echo "[$(pgrep nosuchprocess || echo none)]"; kill $!'
expect "ipcs shim lists a segment made with ipcmk" "segment listed" \
    unshare --ipc --pid --mount --propagation private --fork --mount-proc="$r/proc" sh -c \
    "id=\$(ipcmk -M 4096 | sed 's/.*: //'); chroot '$r' ipcs -m | awk -v id=\"\$id\" '\$2 == id { print \"segment listed\" }'"

# --- 4. other images ---------------------------------------------------------------------------------------
echo "== e2e-test-images/nginx:1.14-2 and hostnet-nginx-amd64"
for spec in "e2e-test-images/nginx:1.14-2 80" "k8s-staging-cri-tools/hostnet-nginx-amd64:latest 12003"; do
    read -r name port <<<"$spec"
    b=$(unpack "$name")
    r=$b/rootfs
    check "$name: nginx.conf has 'daemon off;' and 'pid /var/run/nginx.pid;'" \
        sh -c "grep -q '^daemon off;' '$r/etc/nginx/nginx.conf' && grep -q '^pid /var/run/nginx.pid;' '$r/etc/nginx/nginx.conf'"
    check "$name: listens on $port" grep -q "listen $port " "$r/etc/nginx/conf.d/default.conf"
    check "$name: Cmd [nginx], no Entrypoint" test "$(cfg "$b" '[.config.Cmd, .config.Entrypoint]')" = '[["nginx"],null]'
    check "$name: sh cat grep sleep present" test -x "$r/bin/sh" -a -x "$r/bin/cat" -a -x "$r/bin/grep" -a -x "$r/bin/sleep"
    check "$name: nginx -t" chroot "$r" nginx -t
    out=$(in_netns "$HTTP_CHECK" "$r" "$port" "$TMP/nginx.log" nginx 2>&1 || true)
    expect "$name: HTTP 200 on :$port" "status=200" echo "$out"
    expect "$name: /var/run/nginx.pid names the master process" "cmdline=nginx: master process nginx" echo "$out"
done

echo "== e2e-test-images/httpd:2.4.39-4"
b=$(unpack e2e-test-images/httpd:2.4.39-4)
r=$b/rootfs
check "Cmd [httpd-foreground]" test "$(cfg "$b" .config.Cmd)" = '["httpd-foreground"]'
out=$(in_netns "$HTTP_CHECK" "$r" 80 "$TMP/httpd.log" /usr/local/bin/httpd-foreground 2>&1 || true)
expect "HTTP 200 on :80" "status=200" echo "$out"
expect "stops on SIGTERM with status 0" "exit=0" echo "$out"
expect "log contains httpd" "httpd" cat "$TMP/httpd.log"
expect "echo for exec" "httpd" chroot "$r" echo httpd

echo "== e2e-test-images/nonewprivs:1.3"
b=$(unpack e2e-test-images/nonewprivs:1.3)
r=$b/rootfs
check "/usr/local/bin/nnp is mode 4755 owned by root:root" test "$(stat -c '%a %u %g' "$r/usr/local/bin/nnp")" = "4755 0 0"
check "Cmd [/usr/local/bin/nnp]" test "$(cfg "$b" .config.Cmd)" = '["/usr/local/bin/nnp"]'
expect "uid 1000 without no_new_privs: Effective uid: 0" "Effective uid: 0" \
    chroot --userspec=1000:1000 "$r" /usr/local/bin/nnp
expect "uid 1000 with no_new_privs: Effective uid: 1000" "Effective uid: 1000" \
    setpriv --no-new-privs chroot --userspec=1000:1000 "$r" /usr/local/bin/nnp

echo "== pause:3.9"
b=$(unpack pause:3.9)
r=$b/rootfs
check "Entrypoint [/pause], User 65535:65535" test "$(cfg "$b" '[.config.Entrypoint, .config.User]')" = '[["/pause"],"65535:65535"]'
check "/pause is static" sh -c "! ldd '$r/pause' >/dev/null 2>&1"
expect "/pause runs until SIGTERM, then exits 0" "exit=0" timeout 20 sh -c \
    "chroot --userspec=65535:65535 '$r' /pause & p=\$!; sleep 0.5; kill -0 \$p && kill -TERM \$p; wait \$p; echo exit=\$?"

echo "== user and group images"
for spec in "test-image-user-uid 1002" "test-image-user-username www-data" "test-image-user-uid-group 1003:1004" \
    "test-image-user-username-group www-data:1004" "test-image-predefined-group 1000"; do
    read -r name user <<<"$spec"
    got=$(image_manifest "k8s-staging-cri-tools/$name:latest" | jq -r .config.digest)
    got=$(blob "k8s-staging-cri-tools/$name" "$got" | jq -r .config.User)
    check "$name: USER $user" test "$got" = "$user"
done
b=$(unpack k8s-staging-cri-tools/test-image-predefined-group:latest)
expect "predefined-group: default-user uid 1000 gid 1000, member of 50000" \
    "uid=1000(default-user) gid=1000(default-user) groups=1000(default-user),50000(group-defined-in-image)" \
    chroot "$b/rootfs" id default-user
b=$(unpack k8s-staging-cri-tools/test-image-tag:test)
check "test-image-tag:test: /bin/sh, /bin/ls, /etc/passwd (image volume specs)" \
    test -x "$b/rootfs/bin/sh" -a -x "$b/rootfs/bin/ls" -a -f "$b/rootfs/etc/passwd"

echo "== crio-test/redis:latest"
b=$(unpack crio-test/redis:latest)
r=$b/rootfs
check "Cmd redis-server --protected-mode no --bind 0.0.0.0" \
    test "$(cfg "$b" .config.Cmd)" = '["redis-server","--protected-mode","no","--bind","0.0.0.0"]'
# shellcheck disable=SC2016 # expanded by the inner shell
expect "redis-server answers PING on 6379" "PONG" in_netns '
    mount --rbind /dev "$1/dev"
    mount -t proc proc "$1/proc"
    chroot "$1" sh -c "cd /data && exec redis-server --protected-mode no --bind 0.0.0.0" >"$2" 2>&1 &
    i=0
    until redis-cli -p 6379 ping 2>/dev/null | grep -q PONG || [ $i -ge 100 ]; do i=$((i + 1)); sleep 0.1; done
    redis-cli -p 6379 ping; redis-cli -p 6379 shutdown nosave >/dev/null 2>&1; wait' "$r" "$TMP/redis.log"

# --- 5. images for crio's own image-service tests ----------------------------------------------------------
# layer_sizes NAME: "COUNT TOTAL_UNCOMPRESSED_BYTES" of NAME's layers (gzip), streamed from the registry.
layer_sizes() {
    local repo=${1%:*} d n=0 total=0 size
    for d in $(image_manifest "$1" | jq -r '.layers[].digest'); do
        size=$(blob "$repo" "$d" | gzip -dc | wc -c)
        n=$((n + 1))
        total=$((total + size))
    done
    echo "$n $total"
}
echo "== crio-test/multilayer:latest"
read -r n total < <(layer_sizes crio-test/multilayer:latest)
check "$n layers (3+), $((total / MB)) MB uncompressed (200+)" test "$n" -ge 3 -a "$total" -ge $((200 * MB))
m=$(image_manifest crio-test/multilayer:latest)
small=$(jq -r '.layers | sort_by(.size) | .[-3].digest' <<<"$m")
files=$(blob crio-test/multilayer "$small" | gzip -dc | tar -t | grep -c 'file-')
check "small-files layer has $files files (20000)" test "$files" -ge 20000
if ((with_big)); then
    echo "== crio-test/big:latest"
    read -r n total < <(layer_sizes crio-test/big:latest)
    check "$n layers, $((total / MB)) MB uncompressed (1000+)" test "$total" -ge $((1000 * MB))
fi

echo "== crio-test/index:latest"
idx=$(raw crio-test/index:latest)
check "is an OCI image index" test "$(jq -r .mediaType <<<"$idx")" = application/vnd.oci.image.index.v1+json
check "has linux/amd64 and linux/arm64 entries with distinct manifests" test \
    "$(jq -c '[.manifests[] | "\(.platform.os)/\(.platform.architecture)"] | sort' <<<"$idx") $(jq '[.manifests[].digest] | unique | length' <<<"$idx")" \
    = '["linux/amd64","linux/arm64"] 2'
expect "default platform selection gives amd64" amd64 \
    skopeo inspect --tls-verify=false --no-tags --format '{{.Architecture}}' "docker://$REGISTRY/crio-test/index:latest"
expect "--override-arch arm64 gives arm64" arm64 \
    skopeo --override-arch arm64 inspect --tls-verify=false --no-tags --format '{{.Architecture}}' \
    "docker://$REGISTRY/crio-test/index:latest"

echo "== crio-test/zstd:latest and crio-test/uncompressed:latest"
for spec in "zstd application/vnd.oci.image.layer.v1.tar+zstd" "uncompressed application/vnd.oci.image.layer.v1.tar"; do
    read -r name mt <<<"$spec"
    m=$(raw "crio-test/$name:latest")
    check "$name: every layer is $mt" test "$(jq -r --arg mt "$mt" '[.layers[].mediaType == $mt] | all' <<<"$m")" = true
    mapfile -t diffids < <(blob "crio-test/$name" "$(jq -r .config.digest <<<"$m")" | jq -r '.rootfs.diff_ids[]')
    i=0 bad=0
    for d in $(jq -r '.layers[].digest' <<<"$m"); do
        if [[ $name == zstd ]]; then
            got=sha256:$(blob "crio-test/$name" "$d" | zstd -dc | sha256sum | cut -d' ' -f1)
        else
            got=sha256:$(blob "crio-test/$name" "$d" | sha256sum | cut -d' ' -f1)
        fi
        [[ $got == "${diffids[$i]}" ]] || bad=$((bad + 1))
        i=$((i + 1))
    done
    check "$name: $i layers decode to their config diff_ids ($bad do not)" test "$bad" -eq 0 -a "$i" -ge 2
done

echo "== crio-test/schema2:latest"
m=$(raw crio-test/schema2:latest)
check "manifest is Docker schema 2 (config and layers with Docker media types)" test \
    "$(jq -c '[.mediaType, .config.mediaType, ([.layers[].mediaType] | unique)]' <<<"$m")" = \
    '["application/vnd.docker.distribution.manifest.v2+json","application/vnd.docker.container.image.v1+json",["application/vnd.docker.image.rootfs.diff.tar.gzip"]]'
b=$(unpack crio-test/schema2:latest)
check "unpacks to the busybox base" same_inode "$b/rootfs/bin/ls" "$b/rootfs/bin/busybox"

echo "$passed passed, $failed failed"
((failed == 0))
