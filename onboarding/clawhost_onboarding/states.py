"""The conversation's states and the only transitions the code makes between them (the model never sets one)."""

from __future__ import annotations

from enum import StrEnum


class State(StrEnum):
    NEW = "NEW"
    GATHERING_USE_CASE = "GATHERING_USE_CASE"
    GATHERING_TELEGRAM = "GATHERING_TELEGRAM"
    GATHERING_PREFERENCES = "GATHERING_PREFERENCES"
    RECOMMENDING_TIER = "RECOMMENDING_TIER"
    AWAITING_PAYMENT = "AWAITING_PAYMENT"
    PROVISIONING = "PROVISIONING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"


# Forward only, one step at a time while gathering; FAILED only from the provisioning side (a failed payment or
# start), because a conversation itself never fails: a refused token or an unreachable model leaves it where it was.
TRANSITIONS: dict[State, frozenset[State]] = {
    State.NEW: frozenset({State.GATHERING_USE_CASE}),
    State.GATHERING_USE_CASE: frozenset({State.GATHERING_TELEGRAM}),
    State.GATHERING_TELEGRAM: frozenset({State.GATHERING_PREFERENCES}),
    State.GATHERING_PREFERENCES: frozenset({State.RECOMMENDING_TIER}),
    State.RECOMMENDING_TIER: frozenset({State.AWAITING_PAYMENT}),
    State.AWAITING_PAYMENT: frozenset({State.PROVISIONING, State.COMPLETE, State.FAILED}),
    State.PROVISIONING: frozenset({State.COMPLETE, State.FAILED}),
    State.COMPLETE: frozenset(),
    State.FAILED: frozenset({State.PROVISIONING, State.COMPLETE}),  # a failed start that recovers
}

# States in which the user still talks to the model.
CONVERSING = frozenset(
    {State.GATHERING_USE_CASE, State.GATHERING_TELEGRAM, State.GATHERING_PREFERENCES, State.RECOMMENDING_TIER}
)


class TransitionError(ValueError):
    pass


def advance(current: State, target: State) -> State:
    """`target` if the machine allows it from `current` (staying put is always allowed)."""
    if target == current or target in TRANSITIONS[current]:
        return target
    raise TransitionError(f"no transition from {current} to {target}")
