"""Containers of pods: model, lifecycle, spec building."""
