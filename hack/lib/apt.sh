# shellcheck shell=bash
# Sourced by the hack scripts that install Debian packages, so that they all do it one way:
#
#   apt_missing PKG...   prints (one per line) the packages of PKG... that are not installed
#   apt_install PKG...   installs the missing packages of PKG... (as root) and prints what it did
#
# apt_install runs `apt-get update` first when the package lists are older than APT_LISTS_MAX_AGE_MIN
# minutes (and again if the install fails), installs without recommends, and keeps every package's
# maintainer scripts from starting a service: the scripts only need the packages' files (a registry, nginx
# or redis started by dpkg would take the ports the tests use), so a policy-rc.d answering 101 is in place
# for the duration, and on a systemd machine the services of the packages it installed are disabled.
# Output is shown only when something fails. The caller's `set -e` applies; failures return non-zero.

APT_LISTS_MAX_AGE_MIN=${APT_LISTS_MAX_AGE_MIN:-60}
readonly APT_UPDATE_STAMP=/var/lib/apt/periodic/update-success-stamp
readonly APT_POLICY_RC=/usr/sbin/policy-rc.d
readonly APT_POLICY_MARK="# written by crio's hack/lib/apt.sh"

apt_missing() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || echo "$pkg"
    done
}

# _apt_lists_fresh: true when `apt-get update` ran less than APT_LISTS_MAX_AGE_MIN minutes ago (apt gives
# list files the server's timestamps, so our own stamp counts too).
_apt_lists_fresh() {
    [[ -n $(find "$APT_UPDATE_STAMP" /var/lib/apt/lists -maxdepth 1 \( -name "${APT_UPDATE_STAMP##*/}" \
        -o -name '*Packages*' -o -name '*Release' \) -mmin "-$APT_LISTS_MAX_AGE_MIN" -print -quit 2>/dev/null) ]]
}

_apt_update() {
    local log=$1
    echo "apt: apt-get update"
    # A third-party source that cannot be reached must not stop us; the install fails clearly if a
    # package we need is really unavailable.
    if apt-get update -qq >"$log" 2>&1; then
        mkdir -p "${APT_UPDATE_STAMP%/*}" && touch "$APT_UPDATE_STAMP"
    else
        grep -E '^(E|W):' "$log" >&2 || true
        echo "apt: warning: apt-get update reported errors (above); continuing" >&2
    fi
}

# _apt_disable_services PKG...: disable the systemd services the packages ship (systemd machines only).
_apt_disable_services() {
    [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null || return 0
    local pkg unit
    for pkg in "$@"; do
        while read -r unit; do
            systemctl disable --quiet --now "${unit##*/}" >/dev/null 2>&1 || true
        done < <(dpkg -L "$pkg" 2>/dev/null | grep -E '^/(usr/)?lib/systemd/system/[^/]+\.(service|socket)$' || true)
    done
}

apt_install() {
    local missing log rc=0 own_policy=0
    mapfile -t missing < <(apt_missing "$@")
    ((${#missing[@]} > 0)) || return 0
    if ((EUID != 0)); then
        echo "apt: error: Debian packages missing (${missing[*]}); run as root" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    if [[ ! -e $APT_POLICY_RC ]] || grep -qF "$APT_POLICY_MARK" "$APT_POLICY_RC" 2>/dev/null; then
        printf '#!/bin/sh\n%s: no service starts while it installs packages\nexit 101\n' "$APT_POLICY_MARK" \
            >"$APT_POLICY_RC"
        chmod 755 "$APT_POLICY_RC"
        own_policy=1
    fi
    _apt_lists_fresh || _apt_update "$log"
    echo "apt: apt-get install ${missing[*]}"
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
        _apt_update "$log"
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 || rc=$?
    fi
    ((own_policy)) && rm -f "$APT_POLICY_RC"
    if ((rc != 0)); then
        tail -n 40 "$log" >&2
        rm -f "$log"
        echo "apt: error: apt-get install ${missing[*]} failed" >&2
        return "$rc"
    fi
    rm -f "$log"
    _apt_disable_services "${missing[@]}"
}
