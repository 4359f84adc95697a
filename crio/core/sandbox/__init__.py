"""Pod sandboxes: validation, the files a pod gets, its infra container's spec, its lifecycle and state."""
