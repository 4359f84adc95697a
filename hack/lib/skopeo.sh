# shellcheck shell=bash
# Sourced by the hack scripts that run skopeo. After it, `skopeo ARGS...` runs Debian's skopeo with a
# private configuration under $REPO_ROOT/_output/containers-config (written here, idempotently): an
# accept-anything signature policy, a registries.conf without search registries or mirrors, an empty
# registries.d, a storage.conf of its own and no credentials. Nothing in the host's /etc/containers,
# ~/.config/containers or environment then changes what the scripts push and read. (skopeo 1.9 cannot be
# pointed away from the registries.conf.d drop-in directory; the scripts use fully qualified names only,
# which no drop-in alias changes.)

readonly SKOPEO_CONFIG_DIR=${REPO_ROOT:?REPO_ROOT must be set before sourcing hack/lib/skopeo.sh}/_output/containers-config

mkdir -p "$SKOPEO_CONFIG_DIR/registries.d" "$SKOPEO_CONFIG_DIR/home"
printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' >"$SKOPEO_CONFIG_DIR/policy.json"
printf 'unqualified-search-registries = []\n' >"$SKOPEO_CONFIG_DIR/registries.conf"
printf '{"auths": {}}\n' >"$SKOPEO_CONFIG_DIR/auth.json"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/graph"\nrunroot = "%s/run"\n' \
    "$SKOPEO_CONFIG_DIR" "$SKOPEO_CONFIG_DIR" >"$SKOPEO_CONFIG_DIR/storage.conf"

skopeo() {
    env -u CONTAINERS_CONF -u DOCKER_CONFIG -u XDG_CONFIG_HOME -u XDG_RUNTIME_DIR \
        CONTAINERS_REGISTRIES_CONF="$SKOPEO_CONFIG_DIR/registries.conf" \
        CONTAINERS_STORAGE_CONF="$SKOPEO_CONFIG_DIR/storage.conf" \
        REGISTRY_AUTH_FILE="$SKOPEO_CONFIG_DIR/auth.json" \
        HOME="$SKOPEO_CONFIG_DIR/home" \
        skopeo --policy "$SKOPEO_CONFIG_DIR/policy.json" --registries-conf "$SKOPEO_CONFIG_DIR/registries.conf" \
        --registries.d "$SKOPEO_CONFIG_DIR/registries.d" "$@"
}
