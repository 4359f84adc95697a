# shellcheck shell=bash
# Sourced by hack/setup.sh: `cni_default_network CONF_DIR SOURCE_DIR` puts crio's default network (the files
# of SOURCE_DIR, normally contrib/cni: the bridge crio0 on 10.85.0.0/16 with host-local and portmap, and the
# loopback plugin) into CONF_DIR unless the node has a network configuration of its own there, and prints
# one line saying what it did.
#
# Files that packages ship do not count as the node's own: podman's 87-podman-bridge.conflist is podman's
# default network (cni0 on 10.88.0.0/16) and sorts after crio's, so the outcome does not depend on which
# package came first. A copy of our own earlier default, which shared podman's 10.88.0.0/16, is replaced;
# an edited one is kept, as is every file of ours that is already there.

readonly CNI_PACKAGED_FILES=(87-podman-bridge.conflist)

# _cni_earlier_default FILE: true for the bridge conflist an earlier version of hack/setup.sh installed.
_cni_earlier_default() { grep -q '"bridge": "crio0"' "$1" && grep -q '"subnet": "10.88.0.0/16"' "$1"; }

cni_default_network() {
    local conf_dir=$1 source_dir=$2 file name target ours=() foreign=() copied=()
    for file in "$source_dir"/*.conf "$source_dir"/*.conflist; do
        [[ -f $file ]] && ours+=("${file##*/}")
    done
    for file in "$conf_dir"/*.conf "$conf_dir"/*.conflist "$conf_dir"/*.json; do
        [[ -f $file ]] || continue
        name=${file##*/}
        [[ " ${ours[*]} ${CNI_PACKAGED_FILES[*]} " == *" $name "* ]] || foreign+=("$name")
    done
    if ((${#foreign[@]} > 0)); then
        echo "CNI: $conf_dir has the node's own network configuration (${foreign[*]}); not adding crio's"
        return 0
    fi
    install -d -m 0755 "$conf_dir"
    for name in "${ours[@]}"; do
        target=$conf_dir/$name
        if [[ ! -e $target ]] || { [[ $name == *.conflist ]] && _cni_earlier_default "$target"; }; then
            install -m 0644 "$source_dir/$name" "$target"
            copied+=("$name")
        fi
    done
    if ((${#copied[@]} > 0)); then
        echo "CNI: installed crio's default network (${copied[*]}) into $conf_dir"
    else
        echo "CNI: crio's default network is in $conf_dir"
    fi
}
