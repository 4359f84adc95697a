"""Storage driver plugin: containers/storage's ``vfs`` driver (every layer a full copy; works everywhere).

No hooks yet: the layer hooks arrive with the image-store issue.
"""
