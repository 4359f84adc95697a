"""OCI runtime-spec generation: pure functions from CRI configs, image configs and pod state to dicts."""
