"""The Shapes World scenario runner: generate each scenario with a model (or read its real video), measure it.

A scenario is what `owl data shapes` writes under scenarios/: `<id>.json` (prompt, dynamics per clip,
clip_seconds, fps, size, seconds, and the paths of the first frame, the tracks and the video) and `<id>.png` (the
video's first frame). For each one the runner

  1. generates image-to-video with OwlPipeline: the first frame, the prompt, the scenario's seconds, fps and
     size, and the scripted dynamics on the model's own clip grid: clip t > 0 is driven (as d_{t-1}) by the
     scenario text of the segment its start time falls in. Clip 0 is driven by the prompt, which is the first
     segment's text. With --ground-truth the scenario's own mp4 is read instead: the sanity baseline;
  2. measures the frames against the ground truth (tracks/<id>.json and the scenario's texts) with
     `owl.eval.metrics.evaluate_video`: re-entry identity, dynamics following, drift, frame quality;
  3. sums up: accuracies pooled over all re-entries / segments of all scenarios, drift and quality averaged
     over scenarios (and the drift curve averaged per time point).

    report = evaluate_shapes("data/shapes/scenarios", model="checkpoints/owl-shapes", memory="full")
    print(format_table(report)); report["aggregate"]["reentry"]["accuracy"]
    evaluate_shapes("data/shapes/scenarios", ground_truth=True)      # the real videos: ~100% / 100%
    evaluate_shapes("data/shapes/scenarios", model="checkpoints/owl-shapes", reconstruct_only=True)  # VAE ceiling
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from owl.errors import OwlError
from owl.eval.captions import KINDS
from owl.eval.metrics import DRIFT_FLOOR, ShapesTruth, evaluate_video

_FIELDS = {  # scenario JSON: key -> (accepted types, required)
    "video_id": (str, True), "prompt": (str, True), "first_frame": (str, True), "dynamics": (list, True),
    "clip_seconds": ((int, float), True), "fps": ((int, float), True), "size": (list, True),
    "seconds": ((int, float), True), "tracks": (str, True), "video": (str, False),
}


@dataclass
class Scenario:
    path: Path  # the scenario JSON
    video_id: str
    prompt: str
    first_frame: Path  # PNG, the video's first frame
    dynamics: list[str]  # per clip of clip_seconds: its caption (dynamics[0] is the prompt)
    clip_seconds: float
    fps: float
    size: tuple[int, int]  # (height, width)
    seconds: float
    tracks: Path  # ground truth: per-frame objects, events, timestamps
    video: Path | None  # the real video, for --ground-truth


def load_scenario(path: str | Path) -> Scenario:
    """Read and check one scenario JSON; relative paths in it are relative to its folder."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise OwlError(f"cannot read scenario {str(path)!r}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise OwlError(f"scenario {str(path)!r} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise OwlError(f"scenario {str(path)!r} must be a JSON object, got {type(data).__name__}")
    for key, (kind, required) in _FIELDS.items():
        if key not in data:
            if required:
                raise OwlError(f"scenario {str(path)!r} lacks {key!r}; a scenario has {sorted(_FIELDS)}")
            continue
        if not isinstance(data[key], kind) or isinstance(data[key], bool):
            raise OwlError(f"scenario {str(path)!r}: {key!r} has the wrong type ({type(data[key]).__name__})")
    for key in ("clip_seconds", "fps", "seconds"):
        if not data[key] > 0:
            raise OwlError(f"scenario {str(path)!r}: {key!r} must be positive, got {data[key]}")
    if not all(isinstance(d, str) for d in data["dynamics"]) or not data["dynamics"]:
        raise OwlError(f"scenario {str(path)!r}: 'dynamics' must be a non-empty list of texts")
    size = data["size"]
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise OwlError(f"scenario {str(path)!r}: 'size' must be [height, width] in pixels, got {size!r}")
    root = path.parent
    scenario = Scenario(
        path=path, video_id=data["video_id"], prompt=data["prompt"], first_frame=root / data["first_frame"],
        dynamics=list(data["dynamics"]), clip_seconds=float(data["clip_seconds"]), fps=float(data["fps"]),
        size=(size[0], size[1]), seconds=float(data["seconds"]), tracks=root / data["tracks"],
        video=root / data["video"] if "video" in data else None)
    for what, file in (("first frame", scenario.first_frame), ("tracks", scenario.tracks)):
        if not file.is_file():
            raise OwlError(f"scenario {str(path)!r}: its {what} {str(file)!r} does not exist")
    return scenario


def list_scenarios(folder: str | Path, limit: int | None = None) -> list[Scenario]:
    """The scenarios of a folder (every *.json, in name order), the first `limit` of them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise OwlError(f"scenario folder not found: {str(folder)!r}")
    if limit is not None and limit < 1:
        raise OwlError(f"limit must be at least 1, got {limit}")
    paths = sorted(folder.glob("*.json"))
    if not paths:
        raise OwlError(f"no scenarios (*.json) in {str(folder)!r}; `owl data shapes` writes them under scenarios/")
    return [load_scenario(p) for p in paths[:limit]]


def read_truth(scenario: Scenario) -> ShapesTruth:
    """The scenario's ground truth: its tracks file, with the scenario's texts as the segment captions."""
    try:
        data = json.loads(scenario.tracks.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OwlError(f"cannot read tracks {str(scenario.tracks)!r}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in ("events", "timestamps", "frames")):
        raise OwlError(f"tracks {str(scenario.tracks)!r} must hold the lists 'events', 'timestamps' and 'frames'")
    timestamps = data["timestamps"]
    where = f"tracks {str(scenario.tracks)!r}"
    if not all(isinstance(e, dict) for e in data["events"]) or len(data["events"]) != len(timestamps):
        raise OwlError(f"{where}: 'events' must hold one object per segment of 'timestamps'")
    if not all(isinstance(t, list) and len(t) == 2 and all(isinstance(x, (int, float)) for x in t) for t in timestamps):
        raise OwlError(f"{where}: 'timestamps' must be [start, end] pairs of seconds")
    keys = {"id", "colour", "shape", "box"}
    if not all(isinstance(f, list) and all(isinstance(e, dict) and keys <= set(e) for e in f) for f in data["frames"]):
        raise OwlError(f"{where}: 'frames' must hold, per frame, objects with id, colour, shape and box")
    if len(scenario.dynamics) > len(timestamps):
        raise OwlError(f"scenario {str(scenario.path)!r} has {len(scenario.dynamics)} dynamics but its tracks "
                       f"have {len(timestamps)} segments")
    # a last segment shorter than a clip has no scenario text: it is left unscored
    sentences = scenario.dynamics + [""] * (len(timestamps) - len(scenario.dynamics))
    return ShapesTruth(sentences, timestamps, data["events"], data["frames"], scenario.fps, scenario.clip_seconds,
                       scenario.seconds)


def scenario_dynamics(scenario: Scenario, clip_starts: list[float]) -> list[str]:
    """d_0, d_1, ... for clips 1, 2, ... starting at `clip_starts` (seconds): the text of the segment each
    clip starts in."""
    last = len(scenario.dynamics) - 1
    return [scenario.dynamics[min(last, int(math.floor(t / scenario.clip_seconds + 1e-9)))] for t in clip_starts]


def generate(pipe, scenario: Scenario, memory: str = "full", seed: int = 0, steps: int | None = None,
             max_observations: int | None = None, guidance_scale: float | None = None, states: list | None = None):
    """Film one scenario with an OwlPipeline: ((T, H, W, 3) uint8 frames, the storyboard). `states`, a list, receives
    each clip's world state s_t."""
    grid = pipe.renderer.grid
    starts = [start / scenario.fps for start in grid.starts(grid.total_frames(scenario.seconds, scenario.fps))[1:]]
    out = pipe(scenario.prompt, image=scenario.first_frame, seconds=scenario.seconds, fps=scenario.fps,
               height=scenario.size[0], width=scenario.size[1], dynamics=scenario_dynamics(scenario, starts),
               seed=seed, num_inference_steps=steps, guidance_scale=guidance_scale, memory=memory, progress=False,
               max_observations=max_observations,
               callback=None if states is None else lambda event: states.append(event.state))
    return out.frames, out.storyboard


def reconstruct(pipe, scenario: Scenario) -> np.ndarray:
    """The scenario's real video through the model's VAE, as the model would show it with a perfect denoiser, so
    its scores are the ceiling of any model built on that VAE: encoded in one causal pass (as the training latents
    are) and decoded clip by clip, each clip after its context latents (as the rollout decodes)."""
    import torch

    from owl.renderer import from_uint8_thwc, to_uint8_thwc

    frames = read_real(scenario)
    renderer = pipe.renderer
    n, c = renderer.config.clip_latent_frames, renderer.config.context_latent_frames
    pad = (1 - len(frames)) % renderer.temporal_scale  # the causal VAE takes 1 + 4k frames
    padded = np.concatenate([frames, np.repeat(frames[-1:], pad, axis=0)])
    with torch.no_grad():
        latents = renderer.encode(from_uint8_thwc(padded)[None].to(renderer.device))
        clips = [renderer.decode_clip(latents[:, :, : n + 1], 0)]  # the opening clip: no context
        for start in range(n + 1, latents.shape[2], n):  # (1, C, c + n, h, w) windows, context first
            clips.append(renderer.decode_clip(latents[:, :, start - c : start + n], c))
    return to_uint8_thwc(torch.cat(clips, dim=2)[0])[: len(frames)]


def read_real(scenario: Scenario) -> np.ndarray:
    """The scenario's own video, at its fps and size."""
    from owl.video_io import read_video

    if scenario.video is None:
        raise OwlError(f"scenario {str(scenario.path)!r} names no 'video'; --ground-truth needs it")
    if not scenario.video.is_file():
        raise OwlError(f"scenario {str(scenario.path)!r}: its video {str(scenario.video)!r} does not exist")
    frames, _ = read_video(scenario.video, fps=scenario.fps, size=scenario.size)
    return frames


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def aggregate(results: list[dict]) -> dict:
    """Pool per-scenario results: accuracies over all cases, drift and quality averaged over scenarios."""
    def pooled(key):
        correct = sum(r[key]["correct"] for r in results)
        total = sum(r[key]["total"] for r in results)
        return {"correct": correct, "total": total, "accuracy": correct / total if total else None}

    reentry = pooled("reentry")
    matches = sum(sum(bool(c["matches_truth"]) for c in r["reentry"]["cases"]) for r in results)
    reentry["truth_accuracy"] = matches / reentry["total"] if reentry["total"] else None
    following = pooled("following")
    by_kind = {}
    for kind in KINDS:
        rows = [r["following"]["by_kind"][kind] for r in results if kind in r["following"]["by_kind"]]
        if rows:
            correct, total = sum(x["correct"] for x in rows), sum(x["total"] for x in rows)
            by_kind[kind] = {"correct": correct, "total": total, "accuracy": correct / total}
    following["by_kind"] = by_kind
    times = sorted({p["t"] for r in results for p in r["drift"]["curve"]})
    curve = [{"t": t, **{key: _mean(p[key] for r in results for p in r["drift"]["curve"] if p["t"] == t)
                         for key in ("background", "object")}} for t in times]
    drift = {}
    for key in ("background", "object"):
        first, end = _mean(r["drift"]["first"].get(key) for r in results), _mean(r["drift"]["end"].get(key)
                                                                                  for r in results)
        drift[key] = {"first": first, "end": end,
                      "relative": None if first is None or end is None else (end - first) / max(first, DRIFT_FLOOR)}
    drift["first_t"] = _mean(r["drift"]["first"].get("t") for r in results)
    drift["end_t"] = _mean(r["drift"]["end"].get("t") for r in results)
    drift["curve"] = curve
    quality = {key: _mean(r["quality"][key] for r in results)
               for key in ("palette_fraction", "flicker", "dynamic_degree", "frame_difference")}
    out = {"scenarios": len(results), "reentry": reentry, "following": following, "drift": drift, "quality": quality}
    if results and all("probe" in r for r in results):
        from owl.eval.probe import pool_rollout_probes

        out["probe"] = pool_rollout_probes([r["probe"] for r in results])
    return out


def evaluate_shapes(scenarios: str | Path, model: str | Path | None = None, *, ground_truth: bool = False,
                    reconstruct_only: bool = False,
                    memory: str = "full", seed: int = 0, limit: int | None = None, steps: int | None = None,
                    device: str = "cpu", pipe=None, log: Callable[[str], None] | None = None,
                    max_observations: int | None = None, guidance_scale: float | None = None,
                    probe_train: str | Path | None = None) -> dict:
    """Evaluate a model (a saved folder, or a loaded `pipe`) on a scenario folder, or with `ground_truth` the
    scenarios' own videos, or with `reconstruct_only` the real videos through the model's VAE (its ceiling).
    With `probe_train` (training scenarios) the memory probe (owl.eval.probe), fitted there on this memory's states,
    also reads the states of each rollout: did the state know what the video had to bring back?
    Returns {"settings", "scenarios": [per scenario], "aggregate"}."""
    if reconstruct_only and ground_truth:
        raise OwlError("--reconstruct measures the real videos through a model's VAE; drop --ground-truth")
    if ground_truth and (model is not None or pipe is not None):
        raise OwlError("--ground-truth measures the scenarios' own videos; drop --model")
    if not ground_truth and model is None and pipe is None:
        raise OwlError("give --model DIR (a saved Owl pipeline), or --ground-truth to measure the real videos")
    if memory not in ("full", "last"):
        raise OwlError(f"memory must be 'full' or 'last', got {memory!r}")
    if steps is not None and steps < 1:
        raise OwlError(f"steps must be at least 1, got {steps}")
    if model is not None and not Path(model).is_dir():
        raise OwlError(f"model folder not found: {str(model)!r}")
    items = list_scenarios(scenarios, limit)
    truths = [read_truth(s) for s in items]  # check every ground truth before spending time on a model
    if probe_train is not None and (ground_truth or reconstruct_only):
        raise OwlError("the memory probe reads the states of a rollout; drop --ground-truth and --reconstruct")
    if not ground_truth and pipe is None:
        from owl.pipeline import OwlPipeline

        pipe = OwlPipeline.from_pretrained(model, device=device)
    probe = None
    if probe_train is not None:
        from owl.eval.probe import fit_on

        probe = fit_on(pipe, probe_train, memory, log)
    results = []
    for n, (scenario, truth) in enumerate(zip(items, truths), 1):
        began = time.perf_counter()
        storyboard, states = None, [] if probe is not None else None
        if ground_truth:
            frames = read_real(scenario)
        elif reconstruct_only:
            frames = reconstruct(pipe, scenario)
        else:
            frames, storyboard = generate(pipe, scenario, memory=memory, seed=seed, steps=steps,
                                          max_observations=max_observations, guidance_scale=guidance_scale,
                                          states=states)
        made = time.perf_counter() - began
        result = {"video_id": scenario.video_id, "scenario": str(scenario.path), **evaluate_video(frames, truth),
                  "seconds_to_make": round(made, 3)}
        if storyboard is not None:
            result["storyboard"] = [{"index": c.index, "start": c.start, "end": c.end, "dynamics": c.dynamics,
                                     "predicted": c.predicted} for c in storyboard.clips]
        if probe is not None:
            from owl.eval.probe import probe_rollout

            result["probe"] = probe_rollout(probe, pipe.renderer, scenario, truth, states,
                                            result["reentry"]["cases"])
        results.append(result)
        if log is not None:
            log(f"[{n}/{len(items)}] {scenario.video_id}: re-entry {_ratio(result['reentry'])}, following "
                f"{_ratio(result['following'])} ({made:.1f} s)")
    settings = {"scenarios": str(scenarios), "ground_truth": ground_truth, "reconstruct": reconstruct_only,
                "model": None if ground_truth else str(model) if model is not None else "(in memory)",
                "memory": None if ground_truth else memory, "seed": seed, "steps": steps, "limit": limit,
                "max_observations": max_observations, "guidance_scale": guidance_scale,
                "probe_train": None if probe_train is None else str(probe_train)}
    return {"settings": settings, "scenarios": results, "aggregate": aggregate(results)}


# ----------------------------------------------------------------------------------------------------------------
# The table


def _ratio(block: dict) -> str:
    return f"{block['correct']}/{block['total']}" if block["total"] else "-"


def _num(value, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_comparison(reports: list[dict]) -> str:
    """One row per model, on the same scenarios: the aggregate figures of `format_table`'s last row."""
    first = reports[0]["aggregate"]["drift"]
    head = ["model", "re-entry", "following", f"bg@{_num(first['end_t'], 0)}s", f"obj@{_num(first['end_t'], 0)}s",
            "palette", "flicker", "dynamic", "s/scenario"]
    rows = []
    for report in reports:
        agg, made = report["aggregate"], [r["seconds_to_make"] for r in report["scenarios"]]
        d, q = agg["drift"], agg["quality"]
        rows.append([report["settings"]["model"], f"{_pct(agg['reentry']['accuracy'])} ({_ratio(agg['reentry'])})",
                     f"{_pct(agg['following']['accuracy'])} ({_ratio(agg['following'])})",
                     _num(d["background"]["end"]), _num(d["object"]["end"]), _pct(q["palette_fraction"]),
                     _num(q["flicker"]), _num(q["dynamic_degree"]), _num(_mean(made), 1)])
    return _columns(head, rows)


def _columns(head: list[str], rows: list[list], total: list | None = None) -> str:
    """Rows under a header, the first column left-aligned and the rest right-aligned, a rule under the header and
    above the `total` row if there is one."""
    widths = [max(len(str(row[i])) for row in [head] + rows + ([total] if total else [])) for i in range(len(head))]
    line = lambda row: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in
                                 enumerate(zip(row, widths)))
    rule = line(["-" * w for w in widths])
    return "\n".join([line(head), rule] + [line(r) for r in rows] + ([rule, line(total)] if total else []))


def format_table(report: dict) -> str:
    """A plain-text table: one row per scenario and a last row for all of them."""
    agg = report["aggregate"]
    t0 = _num(agg["drift"]["first_t"], 0)
    t1 = _num(agg["drift"]["end_t"], 0)
    head = ["scenario", "re-entry", "following", f"bg@{t0}s", f"bg@{t1}s", f"obj@{t0}s", f"obj@{t1}s", "palette",
            "flicker", "dynamic"]
    rows = []
    for r in report["scenarios"]:
        d, q = r["drift"], r["quality"]
        rows.append([r["video_id"], _ratio(r["reentry"]), _ratio(r["following"]), _num(d["first"].get("background")),
                     _num(d["end"].get("background")), _num(d["first"].get("object")), _num(d["end"].get("object")),
                     _pct(q["palette_fraction"]), _num(q["flicker"]), _num(q["dynamic_degree"])])
    d, q = agg["drift"], agg["quality"]
    rows.append([f"all ({agg['scenarios']})", f"{_pct(agg['reentry']['accuracy'])} ({_ratio(agg['reentry'])})",
                 f"{_pct(agg['following']['accuracy'])} ({_ratio(agg['following'])})",
                 _num(d["background"]["first"]), _num(d["background"]["end"]), _num(d["object"]["first"]),
                 _num(d["object"]["end"]), _pct(q["palette_fraction"]), _num(q["flicker"]),
                 _num(q["dynamic_degree"])])
    out = [_columns(head, rows[:-1], total=rows[-1])]
    following = agg["following"]["by_kind"]
    if following:
        out.append("following by kind: " + ", ".join(f"{k} {v['correct']}/{v['total']}" for k, v in following.items()))
    rel = agg["drift"]
    if "probe" in agg:
        from owl.eval.probe import format_rollout_probe

        out.append(format_rollout_probe(agg["probe"]))
    out.append(f"drift relative ({t1} s vs {t0} s): background {_num(rel['background']['relative'])}, "
               f"object {_num(rel['object']['relative'])}; re-entry matching the ground truth: "
               f"{_pct(agg['reentry']['truth_accuracy'])}; flicker and drift in grey levels, dynamic in px/s")
    return "\n".join(out)
