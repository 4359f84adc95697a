"""The start-up sweep: remove the crio objects on the host that no record or journal entry owns.

:mod:`crio.core.sweep.rules` says what is this daemon's (pure functions, the ownership rules in its
docstring), :mod:`crio.core.sweep.host` reads and removes host objects, :mod:`crio.core.sweep.sweeper` runs
one sweep at daemon start.
"""
