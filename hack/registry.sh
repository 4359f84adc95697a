#!/usr/bin/env bash
# Local test registry: Debian's docker-registry (distribution 2.8) on 127.0.0.1:5000, plain HTTP, no auth,
# filesystem storage under /var/lib/crio-test-registry (kept across restarts, so pushed images survive),
# deletes enabled. Runs without systemd: a background process with a pid file and a log file. The test
# images are built and pushed into it by hack/images/build.sh; tests/testdata/registries.conf maps the
# public names (registry.k8s.io, gcr.io/k8s-staging-cri-tools, quay.io/crio-test, ...) onto it.
#
# Usage: hack/registry.sh start|stop|restart|status
#   start    start it (no-op when already running); waits until GET /v2/ answers
#   stop     stop it (SIGTERM, then SIGKILL after 10 s); the stored images are kept
#   restart  stop, then start
#   status   print whether it runs; exit 0 when it answers, 3 when it is stopped
# Environment (defaults in brackets): REGISTRY_ADDR [127.0.0.1:5000],
#   REGISTRY_STORAGE [/var/lib/crio-test-registry], REGISTRY_STATE [/run/crio-test-registry] (config,
#   pid and log files).
set -euo pipefail

# shellcheck source=hack/lib/apt.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/apt.sh"

readonly REGISTRY_ADDR=${REGISTRY_ADDR:-127.0.0.1:5000}
readonly REGISTRY_STORAGE=${REGISTRY_STORAGE:-/var/lib/crio-test-registry}
readonly REGISTRY_STATE=${REGISTRY_STATE:-/run/crio-test-registry}
readonly CONFIG=$REGISTRY_STATE/config.yml
readonly PID_FILE=$REGISTRY_STATE/registry.pid
readonly LOG_FILE=$REGISTRY_STATE/registry.log
readonly START_TIMEOUT_S=30

log() { echo "registry: $*"; }
die() {
    echo "registry: error: $*" >&2
    exit 1
}

# answers: true when GET /v2/ returns 200 (distribution's API version check).
answers() { curl -sf -o /dev/null --max-time 2 "http://$REGISTRY_ADDR/v2/"; }

# running_pid: prints the pid from the pid file if that process is alive and is docker-registry.
running_pid() {
    local pid
    [[ -r $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q docker-registry || return 1
    echo "$pid"
}

ensure_installed() {
    command -v docker-registry >/dev/null && command -v curl >/dev/null && return 0
    # apt_install keeps the package from starting its own service (with the shipped htpasswd config) on :5000.
    apt_install docker-registry curl || die "cannot install docker-registry and curl"
}

write_config() {
    mkdir -p "$REGISTRY_STATE" "$REGISTRY_STORAGE"
    # No auth section at all: the shipped /etc/docker/registry/config.yml has an htpasswd one, which would
    # refuse anonymous pushes. The health check is off (it only adds log noise every 10 s).
    cat >"$CONFIG.tmp" <<EOF
# Written by hack/registry.sh; edit the script, not this file.
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
  fields:
    service: crio-test-registry
storage:
  filesystem:
    rootdirectory: $REGISTRY_STORAGE
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: $REGISTRY_ADDR
  secret: crio-test-registry-local-only
  headers:
    X-Content-Type-Options: [nosniff]
EOF
    mv "$CONFIG.tmp" "$CONFIG"
}

start() {
    local pid deadline
    if pid=$(running_pid) && answers; then
        log "already running (pid $pid) on http://$REGISTRY_ADDR"
        return 0
    fi
    if answers; then
        die "something else already answers on http://$REGISTRY_ADDR (not started by this script)"
    fi
    ensure_installed
    [[ -n ${pid:-} ]] && stop
    write_config
    # setsid: its own session, so it survives the calling shell and a Ctrl-C there.
    setsid docker-registry serve "$CONFIG" </dev/null >>"$LOG_FILE" 2>&1 &
    pid=$!
    echo "$pid" >"$PID_FILE"
    deadline=$((SECONDS + START_TIMEOUT_S))
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$LOG_FILE" >&2
            rm -f "$PID_FILE"
            die "docker-registry exited during start-up (log: $LOG_FILE)"
        fi
        ((SECONDS < deadline)) || die "no answer from http://$REGISTRY_ADDR/v2/ after ${START_TIMEOUT_S}s (log: $LOG_FILE)"
        sleep 0.2
    done
    log "started (pid $pid) on http://$REGISTRY_ADDR, storage $REGISTRY_STORAGE, log $LOG_FILE"
}

stop() {
    local pid i
    if ! pid=$(running_pid); then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid did not stop after 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$PID_FILE"
    log "stopped (pid $pid)"
}

status() {
    local pid
    if pid=$(running_pid); then
        if answers; then
            log "running (pid $pid) on http://$REGISTRY_ADDR, storage $REGISTRY_STORAGE"
            return 0
        fi
        log "process $pid exists but http://$REGISTRY_ADDR/v2/ does not answer (log: $LOG_FILE)"
        return 1
    fi
    if answers; then
        log "http://$REGISTRY_ADDR answers, but not from a registry started by this script"
        return 0
    fi
    log "stopped"
    return 3
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    restart)
        stop
        start
        ;;
    status) status ;;
    -h | --help) sed -n '2,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" ;;
    *)
        echo "usage: hack/registry.sh start|stop|restart|status (see --help)" >&2
        exit 2
        ;;
esac
