"""Images: references, registries configuration, manifests, pulling and the image service."""
