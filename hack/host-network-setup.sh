#!/usr/bin/env bash
# Host networking set-up for pod hostPorts (the CNI portmap plugin), as critest and crio's tests need it
# (run as root; idempotent: safe to run any number of times):
#   - the bridge and br_netfilter kernel features (bridged pod traffic goes through iptables);
#   - net.ipv4.ip_forward=1, net.ipv4.conf.all.route_localnet=1 (DNAT of 127.0.0.1:hostPort to a pod),
#     net.bridge.bridge-nf-call-iptables=1;
#   - one nat rule masquerading connections from 127.0.0.0/8 that leave for a pod (else the pod's reply
#     to 127.0.0.1 never comes back).
#
# Usage: hack/host-network-setup.sh
set -euo pipefail

say() { echo "host-network-setup: $*"; }
die() {
    echo "host-network-setup: error: $*" >&2
    exit 1
}

[[ $(id -u) -eq 0 ]] || die "must run as root"

# Kernel features: load the modules when they are modules; built-in features need nothing.
feature_present() {
    case $1 in
        bridge) [[ -d /sys/module/bridge || -e /proc/sys/net/bridge ]] ;;
        br_netfilter) [[ -e /proc/sys/net/bridge/bridge-nf-call-iptables ]] ;;
    esac
}
for module in bridge br_netfilter; do
    if ! feature_present "$module"; then
        if command -v modprobe >/dev/null; then
            modprobe "$module" || die "cannot load kernel module $module"
        fi
    fi
done
feature_present bridge || die "the bridge kernel feature is not available (no /sys/module/bridge)"
feature_present br_netfilter || die "br_netfilter is not available (no /proc/sys/net/bridge/bridge-nf-call-iptables)"

for setting in net.ipv4.ip_forward=1 net.ipv4.conf.all.route_localnet=1 net.bridge.bridge-nf-call-iptables=1; do
    key=${setting%%=*}
    want=${setting#*=}
    if [[ $(sysctl -n "$key") != "$want" ]]; then
        sysctl -qw "$setting"
        say "set $setting"
    fi
done

command -v iptables >/dev/null || die "iptables is not installed (Debian package iptables)"
rule=(POSTROUTING -s 127.0.0.0/8 ! -d 127.0.0.0/8 -j MASQUERADE)
if ! iptables -t nat -C "${rule[@]}" 2>/dev/null; then
    iptables -t nat -I "${rule[@]}"
    say "added nat rule: ${rule[*]}"
fi
say "ready"
