#!/usr/bin/env bash
# Test image fixture kit: builds every image that crio's tests and critest pull, from Debian packages only
# (no image is pulled from the internet), as OCI layouts under _output/images/<slug>/, and pushes them to
# the local registry of hack/registry.sh (127.0.0.1:5000, plain HTTP, no auth; started here if needed).
# tests/testdata/registries.conf maps the public names the tests use onto that registry; the table of
# images is hack/images/README.md, and hack/images/verify.sh checks what the registry serves.
#
# Idempotent: an image is rebuilt only when its key (a hash of this script, the versions of the Debian
# packages below, and the image's own arguments) changed, and pushed only when the registry does not
# already serve the same manifest digest. Layers are deterministic (sorted entries, fixed mtimes, numeric
# owners, seeded pseudo-random data), so a rebuild of unchanged inputs yields the same digests.
#
# Usage: hack/images/build.sh [--big] [--force] [--no-push] [--list]
#   --big      also build crio-test/big:latest (~1.07 GB uncompressed, ~0.8 GB on disk twice: layout and
#              registry); off by default, needed only by the RSS benchmark
#   --force    rebuild and re-push every image even if its key did not change
#   --no-push  build the OCI layouts only (no registry needed)
#   --list     print the registry names this script provides and exit
# Environment: REGISTRY_ADDR (default 127.0.0.1:5000).
set -euo pipefail
umask 022

# Debian packages this kit needs (one list; installed with apt-get when missing). busybox is the dynamic
# build on purpose: busybox-static prefers its built-in applets, so `sh -c ls` would never exec /bin/ls
# and critest's MaskedPaths spec could not see the mask (critest.md section 5.3).
PACKAGES=(
    docker-registry
    skopeo
    umoci
    busybox
    nginx-light
    redis-server
    redis-tools
    gcc
    libc6-dev
    jq
    curl
    zstd
    python3
    util-linux
)

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO_ROOT
# shellcheck source=hack/lib/apt.sh
source "$REPO_ROOT/hack/lib/apt.sh"
readonly SCRIPT=$REPO_ROOT/hack/images/build.sh
readonly OUT=$REPO_ROOT/_output/images
readonly WORK=$OUT/.work
readonly REGISTRY=${REGISTRY_ADDR:-127.0.0.1:5000}
# Every timestamp in every image (configs, history, tar mtimes): 2024-01-01T00:00:00Z.
readonly CREATED=2024-01-01T00:00:00Z
readonly MTIME=@1704067200
readonly PATH_ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
readonly MARKER_PATH=etc/crio-test-image
readonly MT_INDEX=application/vnd.oci.image.index.v1+json

with_big=0
force=0
push=1
list_only=0
for arg in "$@"; do
    case $arg in
        --big) with_big=1 ;;
        --force) force=1 ;;
        --no-push) push=0 ;;
        --list) list_only=1 ;;
        -h | --help)
            sed -n '2,22s/^# \{0,1\}//p' "$SCRIPT"
            exit 0
            ;;
        *)
            echo "images: unknown argument: $arg (see --help)" >&2
            exit 2
            ;;
    esac
done

log() { echo "images: $*"; }
die() {
    echo "images: error: $*" >&2
    exit 1
}
sha() { sha256sum | cut -d' ' -f1; }
QLOG=$(mktemp)
trap 'rm -f "$QLOG"' EXIT
# quiet CMD...: runs CMD with its output kept aside and shown only if it fails (umoci warns on stderr).
quiet() {
    if ! "$@" >"$QLOG" 2>&1; then
        tail -n 30 "$QLOG" >&2
        die "failed: $*"
    fi
}

# --- packages -------------------------------------------------------------------------------------------
install_packages() {
    apt_install "${PACKAGES[@]}" || die "cannot install the Debian packages this kit needs"
}

# --- generic helpers ------------------------------------------------------------------------------------

# make_tar DIR OUT: a deterministic, uncompressed layer tar of everything under DIR: entry names without
# "./", sorted, mtime fixed, numeric owners only, hard links kept as link entries, no atime/ctime records.
make_tar() {
    local dir=$1 out=$2 names
    mapfile -t names < <(cd "$dir" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort)
    tar -C "$dir" --sort=name --mtime="$MTIME" --numeric-owner --format=posix \
        --pax-option=delete=atime,delete=ctime -cf "$out" -- "${names[@]}"
}

# copy_libs ROOT SKIP_ROOT BINARY...: copies the shared libraries BINARY needs (ldd) into ROOT as regular
# files at the paths the loader searches, except those SKIP_ROOT (a lower layer) already has.
copy_libs() {
    local root=$1 skip=$2 bin lib
    shift 2
    for bin in "$@"; do
        while read -r lib; do
            [[ -e $root$lib || -e $skip$lib ]] && continue
            mkdir -p "$root${lib%/*}"
            cp -L "$lib" "$root$lib"
        done < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
    done
}

# stage SLUG: prints a fresh, empty staging directory for one layer of image SLUG.
stage() {
    local d=$WORK/stage/$1
    rm -rf "$d"
    mkdir -p "$d"
    echo "$d"
}

# --- OCI layout helpers (umoci) ---------------------------------------------------------------------------

# oci_new LAYOUT REF: an empty layout holding an empty linux/amd64 image tagged REF.
oci_new() {
    rm -rf "$1"
    quiet umoci init --layout "$1"
    quiet umoci new --image "$1:$2"
}

# oci_layer LAYOUT REF TAR WHAT: appends TAR (uncompressed; umoci gzips it) as a layer with a history entry.
oci_layer() {
    quiet umoci raw add-layer --image "$1:$2" --history.created "$CREATED" \
        --history.created_by "hack/images/build.sh: $4" "$3"
}

# oci_dir_layer LAYOUT REF DIR WHAT: appends the contents of DIR as a layer.
oci_dir_layer() {
    make_tar "$3" "$3.tar"
    oci_layer "$1" "$2" "$3.tar" "$4"
    rm -f "$3.tar"
}

# oci_config LAYOUT REF UMOCI_CONFIG_ARGS...: sets the image config (fixed created time), drops stale blobs.
oci_config() {
    local layout=$1 ref=$2
    shift 2
    quiet umoci config --image "$layout:$ref" --created "$CREATED" --no-history --author "crio hack/images" "$@"
    quiet umoci gc --layout "$layout"
}

# ref_digest LAYOUT REF: the digest index.json gives for REF.
ref_digest() {
    jq -r --arg r "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r) | .digest' \
        "$1/index.json"
}

# ref_media_type LAYOUT REF: the media type index.json gives for REF.
ref_media_type() {
    jq -r --arg r "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r) | .mediaType' \
        "$1/index.json"
}

# oci_set_ref LAYOUT REF MEDIA_TYPE DIGEST SIZE: points REF of index.json at a blob (replacing REF).
oci_set_ref() {
    local tmp=$1/index.json.tmp
    jq -c --arg r "$2" --arg mt "$3" --arg d "$4" --argjson s "$5" \
        '.manifests = ([.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] != $r)]
            + [{mediaType: $mt, digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": $r}}])' \
        "$1/index.json" >"$tmp"
    mv "$tmp" "$1/index.json"
}

# put_blob LAYOUT FILE: moves FILE into LAYOUT's blob store; prints "DIGEST SIZE".
put_blob() {
    local digest size
    digest=sha256:$(sha <"$2")
    size=$(stat -c %s "$2")
    mv "$2" "$1/blobs/sha256/${digest#sha256:}"
    echo "$digest $size"
}

# --- shared content -------------------------------------------------------------------------------------

# The busybox base layer: dynamic Debian busybox in /bin with a hard link per applet, its libraries, pgrep
# and ipcs shims, passwd/group with root, www-data and nobody, /tmp 1777. Built once per run, on demand.
BASE_ROOT=$WORK/base-rootfs
BASE_TAR=$WORK/base.tar
base_ready=0
ensure_base() {
    ((base_ready)) && return 0
    local r=$BASE_ROOT applet
    rm -rf "$r"
    mkdir -p "$r"/{bin,dev,etc,home,lib64,proc,root,sys,tmp,usr/bin,usr/sbin,usr/local/bin,var/run,var/www}
    chmod 1777 "$r/tmp"
    chmod 700 "$r/root"
    cp -L /bin/busybox "$r/bin/busybox"
    chmod 755 "$r/bin/busybox"
    while read -r applet; do
        [[ $applet == busybox ]] || ln "$r/bin/busybox" "$r/bin/$applet"
    done < <(busybox --list)
    copy_libs "$r" /nonexistent /bin/busybox

    # Debian's busybox has neither pgrep nor ipcs (critest runs `pgrep sleep` and `ipcs -m`).
    cat >"$r/bin/pgrep" <<'EOF'
#!/bin/sh
# pgrep shim of the crio test images (Debian's busybox has no pgrep). Prints the PIDs of the processes
# whose name (/proc/PID/comm) matches the extended regular expression PATTERN; -f matches the whole
# command line instead, -x requires a whole match. Exits 1 when nothing matched, like procps pgrep.
full=0 exact=0
while [ $# -gt 0 ]; do
    case $1 in
        -f) full=1 ;;
        -x) exact=1 ;;
        -fx | -xf) full=1 exact=1 ;;
        --) shift; break ;;
        -*) echo "pgrep: unsupported option $1 (shim: only -f and -x)" >&2; exit 2 ;;
        *) break ;;
    esac
    shift
done
[ $# -eq 1 ] || { echo "usage: pgrep [-f] [-x] PATTERN" >&2; exit 2; }
pat=$1
[ $exact = 1 ] && pat="^($pat)\$"
status=1
for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    if [ $full = 1 ]; then
        s=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) && s=${s% }
    else
        s=$(cat "$d/comm" 2>/dev/null)
    fi
    [ -n "$s" ] || continue
    if printf '%s\n' "$s" | grep -qE -- "$pat"; then
        echo "$pid"
        status=0
    fi
done
exit $status
EOF
    cat >"$r/bin/ipcs" <<'EOF'
#!/bin/sh
# ipcs shim of the crio test images (Debian's busybox has no ipcs). Lists the System V shared memory
# segments of this IPC namespace from /proc/sysvipc/shm in the layout of util-linux `ipcs -m`; only
# shared memory is supported (-m, or no option).
case ${1:--m} in
    -m | -a) ;;
    *) echo "ipcs: unsupported option $1 (shim: only -m)" >&2; exit 2 ;;
esac
echo
echo "------ Shared Memory Segments --------"
printf '%-10s %-10s %-10s %-10s %-10s %-10s %-12s\n' key shmid owner perms bytes nattch status
tail -n +2 /proc/sysvipc/shm | while read -r key shmid perms size cpid lpid nattch uid rest; do
    [ "$key" -lt 0 ] && key=$((key + 4294967296))
    printf '0x%08x %-10s %-10s %-10s %-10s %-10s\n' "$key" "$shmid" "$uid" "$perms" "$size" "$nattch"
done
echo
EOF
    chmod 755 "$r/bin/pgrep" "$r/bin/ipcs"

    cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
EOF
    cat >"$r/etc/group" <<'EOF'
root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
tty:x:5:
wheel:x:10:root
www-data:x:33:
users:x:100:
nobody:x:65534:
EOF
    printf 'root:*:19723:0:99999:7:::\nwww-data:*:19723:0:99999:7:::\nnobody:*:19723:0:99999:7:::\n' >"$r/etc/shadow"
    chmod 640 "$r/etc/shadow"
    make_tar "$r" "$BASE_TAR"
    base_ready=1
}

# static_bin NAME: compiles one of the small C programs below into $WORK/bin/NAME (static, stripped).
static_bin() {
    local name=$1 src
    mkdir -p "$WORK/bin"
    src=$WORK/bin/$name.c
    case $name in
        pause)
            cat >"$src" <<'EOF'
/* pause for the crio test images: sleeps until SIGINT or SIGTERM, reaps children. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void sigdown(int signo) {
    psignal(signo, "Shutting down, got signal");
    exit(0);
}

static void sigreap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "-v") == 0) {
        puts("pause (crio test image)");
        return 0;
    }
    if (getpid() != 1)
        fprintf(stderr, "Warning: pause should be the first process\n");
    struct sigaction down = {.sa_handler = sigdown};
    struct sigaction reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGINT, &down, NULL) < 0 || sigaction(SIGTERM, &down, NULL) < 0 ||
        sigaction(SIGCHLD, &reap, NULL) < 0)
        return 1;
    for (;;)
        pause();
}
EOF
            ;;
        nnp)
            cat >"$src" <<'EOF'
/* nnp for the crio test images (critest NoNewPrivs): installed setuid root, prints its effective uid. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}
EOF
            ;;
        *) die "static_bin: unknown program $name" ;;
    esac
    quiet gcc -static -Os -s -o "$WORK/bin/$name" "$src"
}

# gen_data_tar OUT SPEC...: writes a deterministic tar of pseudo-random data (Python, seeded MT19937).
# SPEC is big:DIR:COUNT:SIZE:SEED (COUNT files of SIZE bytes; each 1 MiB block is random, 16-symbol or
# 4-symbol text, so the whole compresses to about 70 %) or small:DIR:COUNT:0:SEED (COUNT files of
# 256..4096 bytes of 16-symbol text in sub-directories of 200, each with a symlink and a hard link).
gen_data_tar() {
    python3 - "${MTIME#@}" "$@" <<'PY'
import random
import sys
import tarfile

mtime, out, specs = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
T16 = bytes(97 + i % 16 for i in range(256))
T4 = bytes(b"ACGT"[i % 4] for i in range(256))
BLOCK = 1 << 20
seen_dirs = set()


def header(f, name, kind=tarfile.REGTYPE, size=0, mode=0o644, link=""):
    ti = tarfile.TarInfo(name)
    ti.type, ti.size, ti.mode, ti.mtime, ti.linkname = kind, size, mode, mtime, link
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    f.write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))


def dirs(f, path):
    parts = path.strip("/").split("/")
    for i in range(1, len(parts) + 1):
        d = "/".join(parts[:i])
        if d not in seen_dirs:
            seen_dirs.add(d)
            header(f, d + "/", tarfile.DIRTYPE, mode=0o755)


def data(f, size):
    header_pad = (-size) % 512
    while size:
        n = min(BLOCK, size)
        b = rng.randbytes(n)
        k = rng.random()
        if k >= 0.5:
            b = b.translate(T16 if k < 0.8 else T4)
        f.write(b)
        size -= n
    f.write(b"\0" * header_pad)


with open(out, "wb") as f:
    for spec in specs:
        kind, top, count, size, seed = spec.split(":")
        count, size = int(count), int(size)
        rng = random.Random(int(seed))
        dirs(f, top)
        if kind == "big":
            for i in range(count):
                name = f"{top}/blob-{i:04d}.bin"
                header(f, name, size=size)
                data(f, size)
        elif kind == "small":
            for i in range(count):
                sub = f"{top}/d{i // 200:03d}"
                if i % 200 == 0:
                    dirs(f, sub)
                name = f"{sub}/file-{i:05d}.txt"
                body = rng.randbytes(rng.randint(256, 4096)).translate(T16)
                header(f, name, size=len(body))
                f.write(body + b"\0" * ((-len(body)) % 512))
                if i % 200 == 0:
                    header(f, f"{sub}/first.hardlink", tarfile.LNKTYPE, link=name)
                    header(f, f"{sub}/first.symlink", tarfile.SYMTYPE, mode=0o777, link=name.rsplit("/", 1)[1])
        else:
            sys.exit(f"gen_data_tar: unknown spec kind {kind!r}")
    f.write(b"\0" * 1024)
    f.write(b"\0" * ((-f.tell()) % 10240))
PY
}

# --- image recipes: RECIPE LAYOUT REF MARKER [ARGS...] ------------------------------------------------------
# Every image gets a marker layer holding /etc/crio-test-image with its own names, so no two images share
# an ID (critest compares RepoTags exactly).

# marker_layer LAYOUT REF MARKER [DIR]: adds /etc/crio-test-image (into DIR if given, else a fresh stage)
# and appends DIR as a layer.
marker_layer() {
    local layout=$1 ref=$2 marker=$3 dir=${4:-}
    [[ -n $dir ]] || dir=$(stage "$(basename "$layout")-marker")
    mkdir -p "$dir/${MARKER_PATH%/*}"
    printf '%s\n' "$marker" >"$dir/$MARKER_PATH"
    oci_dir_layer "$layout" "$ref" "$dir" "marker and image files"
}

# busybox_image: the base layer, a marker layer, CMD sh; extra ARGS are umoci config flags (e.g. USER).
busybox_image() {
    local layout=$1 ref=$2 marker=$3
    shift 3
    ensure_base
    oci_new "$layout" "$ref"
    oci_layer "$layout" "$ref" "$BASE_TAR" "busybox base (Debian busybox, hard-linked applets)"
    marker_layer "$layout" "$ref" "$marker"
    oci_config "$layout" "$ref" --config.env "$PATH_ENV" --config.cmd sh "$@"
}

# predefined_group_image: busybox with default-user (uid 1000) in group-defined-in-image (gid 50000), USER 1000.
predefined_group_image() {
    local layout=$1 ref=$2 marker=$3 s
    ensure_base
    s=$(stage "$(basename "$layout")")
    mkdir -p "$s/etc" "$s/home/default-user"
    chown 1000:1000 "$s/home/default-user"
    cp "$BASE_ROOT/etc/passwd" "$BASE_ROOT/etc/group" "$s/etc/"
    echo 'default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh' >>"$s/etc/passwd"
    printf 'default-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n' >>"$s/etc/group"
    oci_new "$layout" "$ref"
    oci_layer "$layout" "$ref" "$BASE_TAR" "busybox base (Debian busybox, hard-linked applets)"
    marker_layer "$layout" "$ref" "$marker" "$s"
    oci_config "$layout" "$ref" --config.env "$PATH_ENV" --config.cmd sh --config.user 1000
}

# httpd_image: busybox httpd on :80 serving /usr/local/apache2/htdocs; its start-up line names "httpd"
# (critest's multi-container log check). The shell stays PID 1 and exits on SIGTERM.
httpd_image() {
    local layout=$1 ref=$2 marker=$3 s
    ensure_base
    s=$(stage "$(basename "$layout")")
    mkdir -p "$s/usr/local/apache2/htdocs" "$s/usr/local/bin"
    echo '<html><body><h1>It works!</h1></body></html>' >"$s/usr/local/apache2/htdocs/index.html"
    cat >"$s/usr/local/bin/httpd-foreground" <<'EOF'
#!/bin/sh
# Runs busybox httpd in the foreground on port 80 (crio test image for e2e-test-images/httpd).
echo "httpd: starting busybox httpd on port 80, document root /usr/local/apache2/htdocs"
trap 'echo "httpd: caught SIGTERM, shutting down"; kill "$pid" 2>/dev/null; exit 0' TERM
httpd -f -v -p 80 -h /usr/local/apache2/htdocs &
pid=$!
wait "$pid"
EOF
    chmod 755 "$s/usr/local/bin/httpd-foreground"
    oci_new "$layout" "$ref"
    oci_layer "$layout" "$ref" "$BASE_TAR" "busybox base (Debian busybox, hard-linked applets)"
    marker_layer "$layout" "$ref" "$marker" "$s"
    oci_config "$layout" "$ref" --config.env "$PATH_ENV" --config.cmd httpd-foreground \
        --config.exposedports 80/tcp
}

# nnp_image: busybox plus /usr/local/bin/nnp, static, setuid root (mode 4755), as the default CMD.
nnp_image() {
    local layout=$1 ref=$2 marker=$3 s
    ensure_base
    static_bin nnp
    s=$(stage "$(basename "$layout")")
    mkdir -p "$s/usr/local/bin"
    install -o 0 -g 0 -m 4755 "$WORK/bin/nnp" "$s/usr/local/bin/nnp"
    oci_new "$layout" "$ref"
    oci_layer "$layout" "$ref" "$BASE_TAR" "busybox base (Debian busybox, hard-linked applets)"
    marker_layer "$layout" "$ref" "$marker" "$s"
    oci_config "$layout" "$ref" --config.env "$PATH_ENV" --config.cmd /usr/local/bin/nnp
}

# pause_image: a static /pause only (like registry.k8s.io/pause), ENTRYPOINT /pause, USER 65535:65535.
pause_image() {
    local layout=$1 ref=$2 marker=$3 s
    static_bin pause
    s=$(stage "$(basename "$layout")")
    install -m 755 "$WORK/bin/pause" "$s/pause"
    oci_new "$layout" "$ref"
    marker_layer "$layout" "$ref" "$marker" "$s"
    oci_config "$layout" "$ref" --config.env "$PATH_ENV" --config.entrypoint /pause --config.user 65535:65535
}

# nginx_image PORT: Debian nginx-light and its libraries over the busybox base (sh, cat, grep, sleep);
# `daemon off;` so the master stays PID 1, pid file /var/run/nginx.pid, listening on PORT.
nginx_image() {
    local layout=$1 ref=$2 marker=$3 port=$4 s
    ensure_base
    s=$(stage "$(basename "$layout")")
    mkdir -p "$s/usr/sbin" "$s/etc/nginx/conf.d" "$s/usr/share/nginx/html" "$s/var/lib/nginx" \
        "$s/var/log/nginx" "$s/var/cache/nginx"
    cp /usr/sbin/nginx "$s/usr/sbin/nginx"
    copy_libs "$s" "$BASE_ROOT" /usr/sbin/nginx
    cp /etc/nginx/mime.types "$s/etc/nginx/mime.types"
    ln -s /dev/stdout "$s/var/log/nginx/access.log"
    ln -s /dev/stderr "$s/var/log/nginx/error.log"
    cat >"$s/etc/nginx/nginx.conf" <<'EOF'
# nginx configuration of the crio test images (Debian nginx-light).
user www-data;
worker_processes 1;
daemon off;
pid /var/run/nginx.pid;
error_log /var/log/nginx/error.log notice;

events {
    worker_connections 256;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
EOF
    cat >"$s/etc/nginx/conf.d/default.conf" <<EOF
server {
    listen $port default_server;
    server_name localhost;
    root /usr/share/nginx/html;
    index index.html;
    location / {
        try_files \$uri \$uri/ =404;
    }
}
EOF
    cat >"$s/usr/share/nginx/html/index.html" <<'EOF'
<!DOCTYPE html>
<html><head><title>Welcome to nginx!</title></head>
<body><h1>Welcome to nginx!</h1><p>crio test image (Debian nginx-light).</p></body></html>
EOF
    oci_new "$layout" "$ref"
    oci_layer "$layout" "$ref" "$BASE_TAR" "busybox base (Debian busybox, hard-linked applets)"
    marker_layer "$layout" "$ref" "$marker" "$s"
    oci_config "$layout" "$ref" --config.env "$PATH_ENV" --config.cmd nginx \
        --config.exposedports "$port/tcp" --config.stopsignal SIGQUIT
}

# redis_image: Debian redis-server and its libraries over the busybox base; listens on 0.0.0.0:6379.
redis_image() {
    local layout=$1 ref=$2 marker=$3 s real
    ensure_base
    s=$(stage "$(basename "$layout")")
    mkdir -p "$s/usr/bin" "$s/data"
    real=$(readlink -f /usr/bin/redis-server)
    cp "$real" "$s/usr/bin/${real##*/}"
    [[ ${real##*/} == redis-server ]] || ln -s "${real##*/}" "$s/usr/bin/redis-server"
    copy_libs "$s" "$BASE_ROOT" "$real"
    oci_new "$layout" "$ref"
    oci_layer "$layout" "$ref" "$BASE_TAR" "busybox base (Debian busybox, hard-linked applets)"
    marker_layer "$layout" "$ref" "$marker" "$s"
    oci_config "$layout" "$ref" --config.env "$PATH_ENV" --config.workingdir /data \
        --config.exposedports 6379/tcp \
        --config.cmd redis-server --config.cmd --protected-mode --config.cmd no \
        --config.cmd --bind --config.cmd 0.0.0.0
}

# data_image LAYER_SPEC...: the busybox base, one generated layer per LAYER_SPEC (one or more
# gen_data_tar specs joined with spaces), and the marker layer. For the pull and RSS benchmarks.
data_image() {
    local layout=$1 ref=$2 marker=$3 spec i=0 tar specs
    shift 3
    ensure_base
    oci_new "$layout" "$ref"
    oci_layer "$layout" "$ref" "$BASE_TAR" "busybox base (Debian busybox, hard-linked applets)"
    for spec in "$@"; do
        i=$((i + 1))
        tar=$WORK/$(basename "$layout")-$i.tar
        read -r -a specs <<<"$spec"
        gen_data_tar "$tar" "${specs[@]}"
        oci_layer "$layout" "$ref" "$tar" "generated data: $spec"
        rm -f "$tar"
    done
    marker_layer "$layout" "$ref" "$marker"
    oci_config "$layout" "$ref" --config.env "$PATH_ENV" --config.cmd sh
}

# index_image: an OCI image index (REF) over two busybox images: linux/amd64 (ref amd64) and one labelled
# linux/arm64/v8 (ref arm64; same amd64 binaries, another marker); for platform selection.
index_image() {
    local layout=$1 ref=$2 marker=$3 arch entries=() m cfg blob digest size
    ensure_base
    oci_new "$layout" amd64
    oci_layer "$layout" amd64 "$BASE_TAR" "busybox base (Debian busybox, hard-linked applets)"
    quiet umoci new --image "$layout:arm64"
    oci_layer "$layout" arm64 "$BASE_TAR" "busybox base (Debian busybox, hard-linked applets)"
    for arch in amd64 arm64; do
        marker_layer "$layout" "$arch" "$marker [platform linux/$arch]"
    done
    oci_config "$layout" amd64 --config.env "$PATH_ENV" --config.cmd sh
    oci_config "$layout" arm64 --config.env "$PATH_ENV" --config.cmd sh --architecture arm64
    for arch in amd64 arm64; do
        m=$(ref_digest "$layout" "$arch")
        cfg=$(jq -r .config.digest "$layout/blobs/sha256/${m#sha256:}")
        jq -e --arg a "$arch" '.architecture == $a and .os == "linux"' \
            "$layout/blobs/sha256/${cfg#sha256:}" >/dev/null || die "index_image: $arch config is wrong"
        entries+=("$(jq -c --arg a "$arch" \
            '{mediaType, digest, size, platform: ({architecture: $a, os: "linux"}
                + (if $a == "arm64" then {variant: "v8"} else {} end))}' \
            <<<"$(jq -c --arg r "$arch" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $r)' \
                "$layout/index.json")")")
    done
    blob=$layout/blobs/sha256/index.tmp
    printf '%s\n' "${entries[@]}" | jq -cs --arg mt "$MT_INDEX" \
        '{schemaVersion: 2, mediaType: $mt, manifests: .}' | tr -d '\n' >"$blob"
    read -r digest size < <(put_blob "$layout" "$blob")
    oci_set_ref "$layout" "$ref" "$MT_INDEX" "$digest" "$size"
}

# recompressed_image FORMAT SEED: the busybox base, a marker layer and a ~12 MiB generated layer, with every
# layer recompressed as FORMAT: zstd (media type ...tar+zstd) or none (plain ...tar). skopeo cannot push
# either form to a registry as is (it re-gzips plain layers and reuses gzip blobs), so this layout is
# pushed blob by blob with curl (marked by the file crio-push-raw).
recompressed_image() {
    local layout=$1 ref=$2 marker=$3 fmt=$4 seed=$5 src=$1.src m manifest d tmp mt layers='[]' digest size
    data_image "$src" "$ref" "$marker" "big:srv/$fmt:3:4194304:$seed"
    rm -rf "$layout"
    mkdir -p "$layout/blobs/sha256"
    cp "$src/oci-layout" "$layout/"
    echo '{"schemaVersion":2,"manifests":[]}' >"$layout/index.json"
    m=$(ref_digest "$src" "$ref")
    manifest=$src/blobs/sha256/${m#sha256:}
    d=$(jq -r .config.digest "$manifest")
    cp "$src/blobs/sha256/${d#sha256:}" "$layout/blobs/sha256/"
    for d in $(jq -r '.layers[].digest' "$manifest"); do
        tmp=$layout/blobs/sha256/layer.tmp
        case $fmt in
            zstd)
                gzip -dc "$src/blobs/sha256/${d#sha256:}" | zstd -q -3 -c >"$tmp"
                mt=application/vnd.oci.image.layer.v1.tar+zstd
                ;;
            none)
                gzip -dc "$src/blobs/sha256/${d#sha256:}" >"$tmp"
                mt=application/vnd.oci.image.layer.v1.tar
                ;;
            *) die "recompressed_image: unknown format $fmt" ;;
        esac
        read -r digest size < <(put_blob "$layout" "$tmp")
        layers=$(jq -c --arg mt "$mt" --arg d "$digest" --argjson s "$size" \
            '. + [{mediaType: $mt, digest: $d, size: $s}]' <<<"$layers")
    done
    tmp=$layout/blobs/sha256/manifest.tmp
    jq -c --argjson l "$layers" '.layers = $l' "$manifest" | tr -d '\n' >"$tmp"
    read -r digest size < <(put_blob "$layout" "$tmp")
    oci_set_ref "$layout" "$ref" application/vnd.oci.image.manifest.v1+json "$digest" "$size"
    touch "$layout/crio-push-raw"
    rm -rf "$src"
}

# schema2_image: a busybox image whose manifest is Docker schema 2 (application/vnd.docker.distribution.
# manifest.v2+json, config ...container.image.v1+json, layers ...rootfs.diff.tar.gzip) instead of OCI;
# pushed verbatim with curl like the recompressed images.
schema2_image() {
    local layout=$1 ref=$2 marker=$3 m tmp digest size
    busybox_image "$layout" "$ref" "$marker"
    m=$(ref_digest "$layout" "$ref")
    tmp=$layout/blobs/sha256/manifest.tmp
    jq -c '{schemaVersion: 2, mediaType: "application/vnd.docker.distribution.manifest.v2+json",
            config: (.config + {mediaType: "application/vnd.docker.container.image.v1+json"}),
            layers: [.layers[] | . + {mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip"}]}' \
        "$layout/blobs/sha256/${m#sha256:}" | tr -d '\n' >"$tmp"
    rm -f "$layout/blobs/sha256/${m#sha256:}"
    read -r digest size < <(put_blob "$layout" "$tmp")
    oci_set_ref "$layout" "$ref" application/vnd.docker.distribution.manifest.v2+json "$digest" "$size"
    touch "$layout/crio-push-raw"
}

# --- registry ---------------------------------------------------------------------------------------------

# registry_digest REPO:TAG: the manifest digest the registry serves for REPO:TAG, or nothing.
registry_digest() {
    local repo=${1%:*} tag=${1##*:}
    curl -sf -I --max-time 10 \
        -H "Accept: $MT_INDEX" \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REGISTRY/v2/$repo/manifests/$tag" 2>/dev/null |
        tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }' || true
}

# push_blob REPO FILE DIGEST: monolithic upload of one blob unless the repository already has it.
push_blob() {
    local repo=$1 file=$2 digest=$3 loc
    curl -sf -o /dev/null -I "http://$REGISTRY/v2/$repo/blobs/$digest" && return 0
    loc=$(curl -sf -o /dev/null -D - -X POST "http://$REGISTRY/v2/$repo/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    [[ -n $loc ]] || die "push_blob: no upload location for $repo"
    [[ $loc == /* ]] && loc=http://$REGISTRY$loc
    if [[ $loc == *\?* ]]; then loc+="&digest=$digest"; else loc+="?digest=$digest"; fi
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' -T "$file" "$loc" ||
        die "push_blob: upload of $digest to $repo failed"
}

# push_raw LAYOUT REF REPO:TAG: pushes one image manifest and its blobs verbatim (no recompression).
push_raw() {
    local layout=$1 ref=$2 name=$3 repo=${3%:*} tag=${3##*:} m manifest d mt
    m=$(ref_digest "$layout" "$ref")
    manifest=$layout/blobs/sha256/${m#sha256:}
    for d in $(jq -r '.config.digest, .layers[].digest' "$manifest"); do
        push_blob "$repo" "$layout/blobs/sha256/${d#sha256:}" "$d"
    done
    mt=$(ref_media_type "$layout" "$ref")
    curl -sf -o /dev/null -X PUT -H "Content-Type: $mt" --data-binary "@$manifest" \
        "http://$REGISTRY/v2/$repo/manifests/$tag" || die "push_raw: manifest PUT for $name failed"
}

# push_name LAYOUT REF REPO:TAG: makes the registry serve LAYOUT's REF as REPO:TAG (skipped when it
# already serves the same digest); prints the digest into the table.
push_name() {
    local layout=$1 ref=$2 name=$3 want have
    want=$(ref_digest "$layout" "$ref")
    [[ $want == sha256:* ]] || die "push_name: $layout has no ref $ref"
    if ((push)); then
        have=$(registry_digest "$name")
        if ((force)) || [[ $have != "$want" ]]; then
            if [[ -e $layout/crio-push-raw ]]; then
                push_raw "$layout" "$ref" "$name"
            elif [[ $(ref_media_type "$layout" "$ref") == "$MT_INDEX" ]]; then
                quiet skopeo copy --all --dest-tls-verify=false "oci:$layout:$ref" "docker://$REGISTRY/$name"
            else
                quiet skopeo copy --dest-tls-verify=false "oci:$layout:$ref" "docker://$REGISTRY/$name"
            fi
            have=$(registry_digest "$name")
            [[ $have == "$want" ]] || die "push of $name: registry serves '${have:-nothing}', expected $want"
            pushed=$((pushed + 1))
            log "  pushed $name"
        fi
    fi
    TABLE+=("$name"$'\t'"$want"$'\t'"${layout##*/}")
}

# image SLUG "NAME..." RECIPE [ARGS...]: builds layout _output/images/SLUG with RECIPE unless its key is
# unchanged, then pushes it under every registry NAME (repo:tag; the first tag is the layout's ref).
image() {
    local slug=$1 names=() recipe=$3 ref layout key name t0
    read -r -a names <<<"$2"
    shift 3
    ref=${names[0]##*:}
    layout=$OUT/$slug
    if ((list_only)); then
        printf '%s\n' "${names[@]}"
        return 0
    fi
    key=$({
        echo "$SCRIPT_KEY"
        printf '%s\n' "$slug" "${names[*]}" "$recipe" "$@"
    } | sha)
    if ((force)) || [[ ! -f $layout/crio-build.key || $(<"$layout/crio-build.key") != "$key" ]]; then
        t0=$SECONDS
        rm -rf "$layout.new"
        "$recipe" "$layout.new" "$ref" "crio test image $slug: ${names[*]}" "$@"
        echo "$key" >"$layout.new/crio-build.key"
        rm -rf "$layout"
        mv "$layout.new" "$layout"
        built=$((built + 1))
        log "built $slug ($((SECONDS - t0)) s)"
    fi
    for name in "${names[@]}"; do
        push_name "$layout" "$ref" "$name"
    done
}

# --- the images -------------------------------------------------------------------------------------------
all_images() {
    local s=k8s-staging-cri-tools e=e2e-test-images u
    # critest (critest.md section 2); names under registry.k8s.io, gcr.io/k8s-staging-cri-tools, public.ecr.aws
    image e2e-busybox "$e/busybox:1.29-2" busybox_image
    image e2e-nginx "$e/nginx:1.14-2" nginx_image 80
    image e2e-httpd "$e/httpd:2.4.39-4" httpd_image
    image e2e-nonewprivs "$e/nonewprivs:1.3" nnp_image
    image pause "pause:3.9" pause_image
    image test-image-tag-test "$s/test-image-tag:test" busybox_image
    image test-image-tag-all "$s/test-image-tag:all" busybox_image
    image test-image-latest "$s/test-image-latest:latest" busybox_image
    # Pushed for completeness: critest pulls test-image-digest by a hard-coded upstream digest, which no
    # rebuilt image can have (its spec is in critest's skip list).
    image test-image-digest "$s/test-image-digest:latest" busybox_image
    for u in 1 2 3; do
        image "test-image-$u" "$s/test-image-$u:latest" busybox_image
    done
    image test-image-tags "$s/test-image-tags:1 $s/test-image-tags:2 $s/test-image-tags:3" busybox_image
    image test-image-user-uid "$s/test-image-user-uid:latest" busybox_image --config.user 1002
    image test-image-user-username "$s/test-image-user-username:latest" busybox_image --config.user www-data
    image test-image-user-uid-group "$s/test-image-user-uid-group:latest" busybox_image --config.user 1003:1004
    image test-image-user-username-group "$s/test-image-user-username-group:latest" busybox_image \
        --config.user www-data:1004
    image test-image-predefined-group "$s/test-image-predefined-group:latest" predefined_group_image
    image hostnet-nginx-amd64 "$s/hostnet-nginx-amd64:latest" nginx_image 12003
    for u in 1.35.0-glibc 1-uclibc 1 1-glibc 1-musl; do
        image "docker-busybox-$u" "docker/library/busybox:$u" busybox_image
    done
    # crio's own tests (quay.io/crio-test/* in tests/testdata/registries.conf)
    image redis "crio-test/redis:latest" redis_image
    image multilayer "crio-test/multilayer:latest" data_image \
        "big:srv/multilayer/a:10:10485760:1001" \
        "big:srv/multilayer/b:6:16777216:1002" \
        "small:srv/multilayer/small:20000:0:1003"
    if ((with_big)); then
        image big "crio-test/big:latest" data_image \
            "big:srv/big/a:17:20971520:2001" \
            "big:srv/big/b:17:20971520:2002" \
            "big:srv/big/c:17:20971520:2003"
    fi
    image index "crio-test/index:latest" index_image
    image zstd "crio-test/zstd:latest" recompressed_image zstd 3001
    image uncompressed "crio-test/uncompressed:latest" recompressed_image none 3002
    image schema2 "crio-test/schema2:latest" schema2_image
}

# --- main -------------------------------------------------------------------------------------------------
if ((list_only)); then
    all_images
    exit 0
fi
start_time=$SECONDS
((EUID == 0)) || die "run as root (apt-get, and the nnp image needs a setuid-root file owned by root)"
install_packages
# shellcheck source=hack/lib/skopeo.sh
source "$REPO_ROOT/hack/lib/skopeo.sh"
mkdir -p "$OUT" "$WORK"
# One build at a time per work tree (a second caller waits).
exec 9>"$OUT/.lock"
flock 9
rm -rf "$OUT"/*.new "$OUT"/*.src "$WORK/stage"
if ((push)); then
    "$REPO_ROOT/hack/registry.sh" start
fi
SCRIPT_KEY=$({
    sha <"$SCRIPT"
    dpkg-query -W -f='${Package}=${Version}\n' "${PACKAGES[@]}"
    echo "$REGISTRY"
} | sha)
built=0
pushed=0
TABLE=()
all_images
rm -rf "$WORK/stage" "$BASE_ROOT" "$BASE_TAR"
{
    printf '# name (on %s)\tmanifest digest\tlayout (_output/images/)\n' "$REGISTRY"
    printf '%s\n' "${TABLE[@]}"
} >"$OUT/images.tsv"
log "done in $((SECONDS - start_time)) s: ${#TABLE[@]} names, $built image(s) built, $pushed push(es);" \
    "table in ${OUT#"$REPO_ROOT"/}/images.tsv, $(du -sh "$OUT" | cut -f1) in ${OUT#"$REPO_ROOT"/}"
