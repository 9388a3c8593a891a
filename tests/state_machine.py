"""The one check of a state machine's table of moves (the switchover's, the pause deadline's)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Set
from typing import TypeVar

S = TypeVar("S", bound=Hashable)  # a state of the machine (its Phase, say)


def reachable(moves: Mapping[S, Set[S]], start: S) -> set[S]:
    """Every state ``moves`` lets a machine reach from ``start`` (``start`` included)."""
    reached, todo = {start}, [start]
    while todo:
        for following in set(moves[todo.pop()]) - reached:
            reached.add(following)
            todo.append(following)
    return reached


def check_moves(moves: Mapping[S, Set[S]], states: Iterable[S], *, start: S,
                ends: Set[S] = frozenset(), home: S | None = None) -> None:
    """The table names every state and only those, and no move leads out of it; the ends lead
    nowhere and every other state somewhere; every state is reached from ``start``; and from
    every state an end (or ``home``, for a machine that starts over) is reached: none traps."""
    states = set(states)
    assert set(moves) == states, f"the table names {set(moves) ^ states} wrongly"
    assert all(set(moves[s]) <= states for s in states), "a move leads out of the table"
    assert all(not moves[s] for s in ends), f"an end leads somewhere: {[s for s in ends if moves[s]]}"
    assert all(moves[s] for s in states - set(ends)), "a state that is not an end leads nowhere"
    reached = reachable(moves, start)
    assert reached == states, f"never reached: {states - reached}"
    goals = set(ends) | ({home} if home is not None else set())
    assert goals, "give the ends, or the state the machine starts over in"
    trapped = [s for s in states if not reachable(moves, s) & goals]
    assert not trapped, f"no way on from {trapped}"
