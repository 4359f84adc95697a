"""The state machines of pods and containers: which transitions exist, which states are on disk, which
are visible to CRI clients.

Every object starts in :data:`NEW` (no record yet) and ends in :data:`REMOVED` (no record any more). Two
in-between states frame the operations that touch the host over many steps and are journaled
(:mod:`crio.core.journal`): :data:`CREATING` (RunPodSandbox / CreateContainer in progress: the name is
reserved, the object is not listed) and :data:`REMOVING` (RemovePodSandbox / RemoveContainer in progress:
still listed, no new work accepted). Neither is ever written to the record file: after a crash the journal
says what was in progress, and the restart undoes (creating) or finishes (removing) it.

Pod (CRI ``PodSandboxState``: ``ready`` is SANDBOX_READY, every other state SANDBOX_NOTREADY). A run ends
ready, or is undone (removed); StopPodSandbox, or the death of the infra container, makes a pod notready;
RemovePodSandbox stops it first::

    from \\ to  creating   ready      notready   removing   removed
    (new)      x
    creating              x                                x
    ready                            x
    notready                                    x
    removing                                               x

Container (CRI ``ContainerState``: created, running, exited; removing shows as exited). StartContainer makes
a created container running; its exit (watched, or on StopContainer, also of a created one) makes it exited;
RemoveContainer may come in any of the three::

    from \\ to  creating   created    running    exited     removing   removed
    (new)      x
    creating              x                                           x
    created                          x          x          x
    running                                     x          x
    exited                                                 x
    removing                                                          x

A removal of a running container kills it as part of the purge: no exit is recorded for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from crio.core.errors import FailedPrecondition

NEW = ""
CREATING = "creating"
REMOVING = "removing"
REMOVED = "removed"

# Pod states.
READY = "ready"
NOTREADY = "notready"

# Container states.
CREATED = "created"
RUNNING = "running"
EXITED = "exited"


class IllegalTransition(FailedPrecondition):
    """An operation asked for a transition its object's state machine does not have."""


@dataclass(frozen=True)
class StateMachine:
    """One kind's states and transitions.

    ``transitions`` maps a state to the states it may go to; ``durable`` states are written to the record
    file (the in-between ones never are); ``hidden`` states are not visible to clients (the object is not
    listed and lookups do not find it).
    """

    kind: str
    noun: str  # how messages name an object of this kind ("pod sandbox", "container")
    transitions: Mapping[str, frozenset[str]]
    durable: frozenset[str]
    hidden: frozenset[str] = field(default=frozenset({CREATING}))

    @property
    def states(self) -> list[str]:
        """Every state, :data:`NEW` first and states without a way out (:data:`REMOVED`) last."""
        order = list(self.transitions)
        for targets in self.transitions.values():
            order.extend(sorted(t for t in targets if t not in order))
        return order

    def allows(self, old: str, new: str) -> bool:
        """Whether ``old`` → ``new`` is a transition of this machine (staying in a state always is)."""
        return old == new or new in self.transitions.get(old, frozenset())

    def check(self, object_id: str, old: str, new: str) -> None:
        """Raise :class:`IllegalTransition` naming the object unless ``old`` → ``new`` is allowed."""
        if not self.allows(old, new):
            raise IllegalTransition(
                f"{self.noun} {object_id} is {old or 'not created'}, it cannot become {new}"
            )

    def is_durable(self, state: str) -> bool:
        """Whether the state is written to the record file."""
        return state in self.durable

    def terminal(self) -> frozenset[str]:
        """States without a way out (only :data:`REMOVED`, in a well-formed machine)."""
        return frozenset(s for s in self.states if not self.transitions.get(s))

    def reachable(self) -> frozenset[str]:
        """States reachable from :data:`NEW`."""
        seen = {NEW}
        todo = [NEW]
        while todo:
            for target in self.transitions.get(todo.pop(), frozenset()):
                if target not in seen:
                    seen.add(target)
                    todo.append(target)
        return frozenset(seen)


def render(machine: StateMachine) -> list[str]:
    """The transition table as text rows: one row per state with a way out, an ``x`` per allowed target."""
    targets = [s for s in machine.states if s != NEW]
    width = max(len(s) for s in [*targets, "from \\ to", "(new)"]) + 2
    header = "from \\ to".ljust(width) + "".join(t.ljust(width) for t in targets)
    rows = [header.rstrip()]
    for source, allowed in machine.transitions.items():
        cells = "".join(("x" if t in allowed else "").ljust(width) for t in targets)
        rows.append(((source or "(new)").ljust(width) + cells).rstrip())
    return rows


def _table(rows: Iterable[tuple[str, Iterable[str]]]) -> dict[str, frozenset[str]]:
    return {source: frozenset(targets) for source, targets in rows}


POD = StateMachine(
    kind="pod",
    noun="pod sandbox",
    transitions=_table(
        [
            (NEW, [CREATING]),
            (CREATING, [READY, REMOVED]),
            (READY, [NOTREADY]),
            (NOTREADY, [REMOVING]),
            (REMOVING, [REMOVED]),
        ]
    ),
    durable=frozenset({READY, NOTREADY}),
)

CONTAINER = StateMachine(
    kind="container",
    noun="container",
    transitions=_table(
        [
            (NEW, [CREATING]),
            (CREATING, [CREATED, REMOVED]),
            (CREATED, [RUNNING, EXITED, REMOVING]),
            (RUNNING, [EXITED, REMOVING]),
            (EXITED, [REMOVING]),
            (REMOVING, [REMOVED]),
        ]
    ),
    durable=frozenset({CREATED, RUNNING, EXITED}),
)
