"""The memory probe: does the world state s_t know what is off screen and will come back?

Re-entry identity is measured from the pixels, so a miss there mixes two failures: the state forgot what left,
or the renderer could not draw what the state knows. The probe reads the state itself. A case is a step t whose
state s_t is read while an object that was seen before is out of the frame (absent from the last frame of clip
t - 1, the newest frame the world model has observed) and comes back later (in clip t or after): the object that
returns first, with the colour it left with. A linear probe (multinomial logistic regression on the flattened
(Q, D) state, one head for the colour and one for the shape, L2 chosen by grouped cross-validation) is fitted on
the cases of training scenarios and scored on held-out ones.

States are read on the scenarios' real videos, in loop order (`WorldSession`: the prompt and first frame, then per
clip observe(O_{t-1}), act(d_{t-1}), read_state()), with the scenario's scripted dynamics on the model's clip
grid, as `owl eval shapes` films them. So the probe measures what the state keeps given perfect observations, free
of what the renderer draws. Each memory ("full", "last") gets its own probe, fitted on its own states; "chance" is
the most frequent training answer.

    report = probe_memory(pipe, "heldout/scenarios", "data/scenarios")
    print(format_probe(report)); report["memories"]["full"]["identity"]["accuracy"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from owl.errors import OwlError
from owl.eval.captions import parse_caption
from owl.eval.metrics import ShapesTruth
from owl.eval.shapes import Scenario, list_scenarios, read_real, read_truth, scenario_dynamics

ATTRIBUTES = ("colour", "shape")
MEMORIES = ("full", "last")
L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # per sample: the mean cross-entropy + l2 * |W|^2


@dataclass(frozen=True)
class ProbeCase:
    """One state to probe: s_t of `video_id`, and the object off screen that comes back first."""

    video_id: str
    clip: int  # t: s_t films clip t
    segment: int  # the ground-truth segment clip t starts in
    colour: str  # the colour it left with
    shape: str
    kind: str  # the ground-truth event of clip t ("reenter", "wait", ...)
    named: bool  # d_{t-1}, the text read just before s_t, names the colour

    def label(self, attribute: str) -> str:
        return self.colour if attribute == "colour" else self.shape if attribute == "shape" else \
            f"{self.colour} {self.shape}"


def clip_grid(renderer, scenario: Scenario) -> list[int]:
    """The first frame of each clip of the scenario's video on the renderer's grid (image-to-video: clip 0 holds the
    first frame and the clip filmed after it)."""
    grid = renderer.grid
    return grid.starts(grid.total_frames(scenario.seconds, scenario.fps))


def away_cases(scenario: Scenario, truth: ShapesTruth, starts: list[int]) -> list[ProbeCase]:
    """The probe cases of one scenario (its ground truth `truth`): per clip t >= 1, the seen object that is out of
    the frame at frame starts[t] - 1 and returns first afterwards (none: no case)."""
    frames = truth.tracks
    seen_at = [{o["id"]: o for o in frame if o.get("pixels", 1) > 0} for frame in frames]
    dynamics = scenario_dynamics(scenario, [s / scenario.fps for s in starts[1:]])
    cases = []
    for t in range(1, len(starts)):
        f = starts[t]
        if f > len(frames):
            break
        best = None
        for obj in {o for frame in seen_at[:f] for o in frame}:
            if obj in seen_at[f - 1]:
                continue
            back = next((g for g in range(f, len(frames)) if obj in seen_at[g]), None)
            if back is not None and (best is None or back < best[0]):
                best = (back, obj)
        if best is None:
            continue
        obj = best[1]
        last_seen = next(seen_at[g][obj] for g in range(f - 1, -1, -1) if obj in seen_at[g])
        segment = min(int(f / scenario.fps / scenario.clip_seconds + 1e-9), len(truth.events) - 1)
        caption = parse_caption(dynamics[t - 1])
        cases.append(ProbeCase(scenario.video_id, t, segment, last_seen["colour"], last_seen["shape"],
                               truth.events[segment].get("kind", "?"),
                               caption is not None and caption.colour is not None))
    return cases


@torch.no_grad()
def video_states(world_model, renderer, scenario: Scenario, frames: np.ndarray, memory: str) -> list[torch.Tensor]:
    """s_0, s_1, ... read in loop order while the world model watches `frames` (T, H, W, 3) uint8 (the scenario's
    video, whose first frame is the given image) on the loop's clip grid, with the scenario's scripted dynamics:
    each (Q * D,) float32 on the CPU. The loop itself reads them, its clips taken from the video
    (`owl.clip_sources.FromVideo`), so on a rollout's own frames these are the states the rollout read."""
    from owl.clip_sources import FromVideo
    from owl.rollout import rollout
    from owl.settings import RolloutSettings

    starts = clip_grid(renderer, scenario)
    dynamics = scenario_dynamics(scenario, [s / scenario.fps for s in starts[1:]])
    cfg = renderer.config
    settings = RolloutSettings(seconds=len(frames) / scenario.fps, fps=scenario.fps, height=frames.shape[1],
                               width=frames.shape[2], num_inference_steps=cfg.num_inference_steps,
                               guidance_scale=cfg.guidance_scale, memory=memory)
    states = []
    source = FromVideo(frames, renderer, world_model.config.key_frames, image_first=True, contexts=False)
    rollout(world_model, renderer, scenario.prompt, settings, lambda clip: None, image=frames[0], dynamics=dynamics,
            progress=False, source=source, callback=lambda event: states.append(event.state.float().flatten().cpu()))
    return states


class LinearProbe:
    """Standardised features -> one multinomial logistic regression per attribute."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, heads: dict[str, tuple[list[str], torch.Tensor, float]]):
        self.mean, self.std, self.heads = mean, std, heads  # heads: attribute -> (classes, (F + 1, C) weights, l2)

    def predict(self, features: torch.Tensor) -> dict[str, list[str]]:
        x = _with_bias((features - self.mean) / self.std)
        return {a: [classes[i] for i in (x @ w).argmax(1).tolist()] for a, (classes, w, _) in self.heads.items()}


def _with_bias(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones(len(x), 1)], dim=1)


def _fit_head(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float) -> torch.Tensor:
    """(F + 1, C) weights minimising the mean cross-entropy + l2 * |W|^2 (the bias unpenalised), by L-BFGS."""
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([w], lr=1.0, max_iter=200, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ w, y) + l2 * w[:-1].pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return w.detach()


def fit_probe(features: torch.Tensor, cases: list[ProbeCase], folds: int = 5, seed: int = 0) -> LinearProbe:
    """Fit one head per attribute on (N, F) features of `cases`; each head's L2 is the one of `L2_GRID` with the best
    accuracy in `folds`-fold cross-validation grouped by video (ties: the stronger L2)."""
    if len(cases) < 2:
        raise OwlError(f"the probe needs at least 2 training cases (objects off screen that come back), got "
                       f"{len(cases)}; give more training scenarios")
    mean, std = features.mean(0), features.std(0).clamp(min=1e-6)
    x = _with_bias((features - mean) / std)
    videos = sorted({c.video_id for c in cases})
    order = torch.randperm(len(videos), generator=torch.Generator().manual_seed(seed)).tolist()
    fold_of_video = {videos[i]: n % folds for n, i in enumerate(order)}
    fold = torch.tensor([fold_of_video[c.video_id] for c in cases])
    heads = {}
    for attribute in ATTRIBUTES:
        labels = [c.label(attribute) for c in cases]
        classes = sorted(set(labels))
        y = torch.tensor([classes.index(v) for v in labels])
        scores = {}
        for l2 in L2_GRID:
            correct = 0
            for k in range(min(folds, len(videos))):
                train, test = fold != k, fold == k
                if train.any() and test.any():
                    w = _fit_head(x[train], y[train], len(classes), l2)
                    correct += int(((x[test] @ w).argmax(1) == y[test]).sum())
            scores[l2] = correct
        best = max(L2_GRID, key=lambda l2: (scores[l2], l2))
        heads[attribute] = (classes, _fit_head(x, y, len(classes), best), best)
    return LinearProbe(mean, std, heads)


def _score(cases: list[ProbeCase], predicted: dict[str, list[str]]) -> dict:
    """Accuracy per attribute and for both ("identity"), and identity per kind of event and by whether the text
    before the state named the colour."""
    def block(keep) -> dict:
        picked = [i for i, c in enumerate(cases) if keep(c)]
        out = {}
        for attribute in ATTRIBUTES + ("identity",):
            hits = [all(predicted[a][i] == cases[i].label(a) for a in ATTRIBUTES) if attribute == "identity"
                    else predicted[attribute][i] == cases[i].label(attribute) for i in picked]
            out[attribute] = {"correct": sum(hits), "total": len(hits),
                              "accuracy": sum(hits) / len(hits) if hits else None}
        return out

    result = block(lambda c: True)
    result["by_kind"] = {kind: block(lambda c, kind=kind: c.kind == kind)["identity"]
                         for kind in sorted({c.kind for c in cases})}
    result["colour_named"] = block(lambda c: c.named)["identity"]
    result["colour_unnamed"] = block(lambda c: not c.named)["identity"]
    return result


def _collect(pipe, scenarios: list[Scenario], memories, log) -> tuple[dict[str, torch.Tensor], list[ProbeCase]]:
    """The probe cases of `scenarios` and, per memory, the (N, Q * D) states at them: each video is read once."""
    features, cases = {m: [] for m in memories}, []
    for scenario in scenarios:
        found = away_cases(scenario, read_truth(scenario), clip_grid(pipe.renderer, scenario))
        if not found:
            continue
        frames = read_real(scenario)
        for memory in memories:  # one state per clip of the grid the cases were found on
            states = video_states(pipe.world_model, pipe.renderer, scenario, frames, memory)
            features[memory] += [states[c.clip] for c in found]
        cases += found
        if log is not None:
            log(f"probe: {scenario.video_id}, {len(found)} case(s)")
    dim = pipe.world_model.config.num_queries * pipe.world_model.hidden_size
    return {m: torch.stack(f) if f else torch.zeros(0, dim) for m, f in features.items()}, cases


def fit_on(pipe, train_scenarios, memory: str, log: Callable[[str], None] | None = None) -> LinearProbe:
    """The probe of one memory, fitted on the states read on the real videos of `train_scenarios`."""
    features, cases = _collect(pipe, list_scenarios(train_scenarios), (memory,), log)
    return fit_probe(features[memory], cases)


def probe_rollout(probe: LinearProbe, renderer, scenario: Scenario, truth: ShapesTruth, states: list[torch.Tensor],
                  reentries: list[dict]) -> dict:
    """The probe on the states a rollout read (`states`, one per clip), scored on the scenario's cases; and, per
    scored re-entry (`owl.eval.metrics.reentry` cases), whether the state at the return knew the object and whether
    the video brought it back."""
    cases = [c for c in away_cases(scenario, truth, clip_grid(renderer, scenario)) if c.clip < len(states)]
    predicted = probe.predict(torch.stack([states[c.clip].float().flatten().cpu() for c in cases])) if cases else {}
    knew = [all(predicted[a][i] == c.label(a) for a in ATTRIBUTES) for i, c in enumerate(cases)]
    returns = []
    for reentry in reentries:
        if reentry["correct"] is None:
            continue
        segment = round(reentry["back_at"] / scenario.clip_seconds)
        at = next((i for i, c in enumerate(cases) if c.segment == segment and c.kind == "reenter"
                   and (c.colour, c.shape) == (reentry["truth"]["colour"], reentry["truth"]["shape"])), None)
        if at is not None:
            returns.append({"state_knew": knew[at], "video_showed": bool(reentry["correct"])})
    return {"correct": sum(knew), "total": len(knew), "returns": returns,
            "cases": [{"clip": c.clip, "kind": c.kind, "truth": c.label("identity"),
                       "predicted": " ".join(predicted[a][i] for a in ATTRIBUTES), "correct": knew[i]}
                      for i, c in enumerate(cases)]}


def pool_rollout_probes(probes: list[dict]) -> dict:
    """Pool `probe_rollout` over scenarios: the probe's accuracy, and the returns as a 2 x 2 table."""
    correct, total = sum(p["correct"] for p in probes), sum(p["total"] for p in probes)
    returns = [r for p in probes for r in p["returns"]]
    table = {f"{'knew' if knew else 'forgot'}, {'shown' if shown else 'missed'}":
             sum(r["state_knew"] == knew and r["video_showed"] == shown for r in returns)
             for knew in (True, False) for shown in (True, False)}
    return {"correct": correct, "total": total, "accuracy": correct / total if total else None, "returns": table}


def format_rollout_probe(pooled: dict) -> str:
    accuracy = "-" if pooled["accuracy"] is None else f"{100 * pooled['accuracy']:.1f}%"
    return (f"memory probe on the rollout's states: {accuracy} ({pooled['correct']}/{pooled['total']}) know the "
            f"object off screen; returns: " + ", ".join(f"state {k} {v}" for k, v in pooled["returns"].items()))


def probe_memory(pipe, scenarios, train_scenarios, *, limit: int | None = None, train_limit: int | None = None,
                 memories=MEMORIES, log: Callable[[str], None] | None = None) -> dict:
    """Fit the probe on `train_scenarios` and score it on `scenarios` (folders written by `owl data shapes`), for
    each memory. Returns {"settings", "memories": {memory: scores}, "chance": scores, "cases": [...]}."""
    for memory in memories:
        if memory not in MEMORIES:
            raise OwlError(f"memory must be one of {', '.join(MEMORIES)}, got {memory!r}")
    held_out, training = list_scenarios(scenarios, limit), list_scenarios(train_scenarios, train_limit)
    if {s.video_id for s in held_out} & {s.video_id for s in training}:
        raise OwlError("the probe's training and held-out scenarios share videos; give scenarios of another seed")
    test_x, test_cases = _collect(pipe, held_out, memories, log)
    if not test_cases:
        raise OwlError(f"no held-out case in {str(scenarios)!r}: no object leaves the frame and comes back")
    train_x, train_cases = _collect(pipe, training, memories, log)
    report = {"settings": {"scenarios": str(scenarios), "train_scenarios": str(train_scenarios), "limit": limit,
                           "train_limit": train_limit}, "memories": {}}
    for memory in memories:
        probe = fit_probe(train_x[memory], train_cases)
        scores = _score(test_cases, probe.predict(test_x[memory]))
        scores["l2"] = {a: probe.heads[a][2] for a in ATTRIBUTES}
        scores["train_cases"] = len(train_cases)
        report["memories"][memory] = scores
    # chance: the most frequent training answer, per attribute
    common = {a: max(sorted({c.label(a) for c in train_cases}),
                     key=lambda v, a=a: sum(c.label(a) == v for c in train_cases)) for a in ATTRIBUTES}
    report["chance"] = _score(test_cases, {a: [common[a]] * len(test_cases) for a in ATTRIBUTES})
    report["cases"] = [asdict(c) for c in test_cases]
    return report


def _cell(block: dict) -> str:
    if not block["total"]:
        return "-"
    return f"{100 * block['accuracy']:.1f}% ({block['correct']}/{block['total']})"


def format_probe(report: dict) -> str:
    """The probe's table: one row per memory and one for chance."""
    rows = [(f"{m} memory", s) for m, s in report["memories"].items()] + [("chance (most frequent)", report["chance"])]
    kinds = sorted({k for _, s in rows for k in s["by_kind"]})
    head = ["", "identity", "colour", "shape", "colour named", "colour unnamed"] + kinds
    table = [head] + [[name, _cell(s["identity"]), _cell(s["colour"]), _cell(s["shape"]), _cell(s["colour_named"]),
                       _cell(s["colour_unnamed"])] + [_cell(s["by_kind"].get(k, {"total": 0})) for k in kinds]
                      for name, s in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in table]
    first = next(iter(report["memories"].values()))
    scenarios = len({c["video_id"] for c in report["cases"]})
    lines.insert(0, f"memory probe: does s_t know the object that is off screen and comes back? "
                    f"{first['identity']['total']} held-out cases in {scenarios} scenarios; linear probe fitted on "
                    f"{first['train_cases']} training cases; columns after 'shape': identity by case")
    return "\n".join(lines)
