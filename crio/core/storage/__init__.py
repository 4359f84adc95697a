"""A containers/storage-compatible image and container store (records, locks, layers) shared with podman."""
