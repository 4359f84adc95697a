"""crio's built-in plugins; each registers through an entry point in the group ``crio.plugins``."""
