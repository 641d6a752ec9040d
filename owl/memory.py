"""World memory: what the world model's history keeps as the video grows.

A `WorldSession` (owl/world_model.py) feeds the interleaved history `[prompt, image?] S_0 O_0 D_0 S_1 ...` as
blocks, each of one kind ("context", "state", "observation", "dynamics") and tagged with its loop step. Its
memory decides, at two points, what the history holds:
- `restart(kind)`, before a block of that kind is fed: True starts the history afresh (empty KV cache, rotary
  positions from 0);
- `keep(blocks, step)`, after each observation and before each state is read: the blocks to keep. When any goes,
  the session recomputes its KV cache over those kept, so the states are exactly those of the kept history.

    FullHistory   (--memory full) the world state of Owl-1: the whole history, within two bounds (the visual
                  tokens of the last K observations; the states and dynamics of the last M steps). By default
                  both are the steps that fit in a quarter of the LMM's context window, so memory and cost per
                  clip are flat however long the video (Qwen2.5-VL's 128k positions at 480 x 832: about 25 clips).
    LastClip      (--memory last) the "last clip + caption" baseline Owl-1 improves on, with the same weights: the
                  history restarts at each observation, so s_t sees only the last clip and its dynamics.

A new memory is one class in this file with these two methods, named in MEMORIES; `--memory NAME`, the API's
`memory="NAME"`, sessions and the evaluation then take it. LastClip below is the whole of such a class.
"""

from __future__ import annotations

from typing import Protocol


class Memory(Protocol):
    def restart(self, kind: str) -> bool: ...

    def keep(self, blocks: list, step: int) -> list: ...


class FullHistory:
    """Everything, within bounds. A bound of None is the default (what fits in `budget` tokens), 0 keeps all."""

    def __init__(self, max_observations: int | None = None, max_steps: int | None = None, budget: int = 0,
                 step_overhead: int = 0):
        self.max_observations, self.max_steps = max_observations, max_steps
        self.budget, self.step_overhead = budget, step_overhead  # tokens; a step's tokens besides its observation

    def restart(self, kind: str) -> bool:
        return False

    def bounds(self, blocks: list) -> tuple[int, int]:
        """(K, M), 0 for unbounded. The default is read from the first observation's size: the steps whose
        observation, state queries and longest dynamics fit in the budget (at least one)."""
        k, m = self.max_observations, self.max_steps
        if None in (k, m):
            first = next((b for b in blocks if b.kind == "observation"), None)
            fits = max(1, self.budget // (first.length + self.step_overhead)) if first is not None else 0
            k, m = (fits if k is None else k), (fits if m is None else m)
        return k, m

    def keep(self, blocks: list, step: int) -> list:
        k, m = self.bounds(blocks)
        observations = [b for b in blocks if b.kind == "observation"]
        drop = set()
        if k:
            drop.update(id(b) for b in observations[: max(0, len(observations) - k)])
        if m:  # the opening context always stays
            drop.update(id(b) for b in blocks if b.kind != "context" and b.step < step - m + 1)
        return [b for b in blocks if id(b) not in drop]


class LastClip:
    """The last clip and its dynamics only: the history restarts at each observation."""

    def __init__(self, *bounds, **sizes):  # the bounds of FullHistory do not apply: one clip is held at a time
        pass

    def restart(self, kind: str) -> bool:
        return kind == "observation"

    def keep(self, blocks: list, step: int) -> list:
        return blocks


MEMORIES = {"full": FullHistory, "last": LastClip}


def valid_bound(value) -> bool:
    """A history bound: None (the model's default), 0 (keep all) or a positive integer."""
    return value is None or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


BOUND_RULE = "a whole number >= 0 (0 keeps all) or None (the default: what fits in a quarter of the LMM's context)"


def check_session_memory(memory, max_observations, max_steps) -> None:
    """A session's memory settings, checked the one way both world models' sessions check them: the bounds, and a
    memory given by name (a `Memory` object is taken as it is)."""
    from owl.errors import OwlError

    for name, bound in (("max_observations", max_observations), ("max_steps", max_steps)):
        if not valid_bound(bound):
            raise OwlError(f"{name} must be {BOUND_RULE}, got {bound!r}")
    if isinstance(memory, str) and memory not in MEMORIES:
        raise OwlError(f"memory must be {' or '.join(map(repr, MEMORIES))}, got {memory!r}")
