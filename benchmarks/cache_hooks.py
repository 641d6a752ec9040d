"""diffusers' cache hooks on Owl's transformer: what each one saves per clip, and what it costs the Shapes World scores.

    owl data shapes --out /tmp/val --videos 12 --seconds 24 --seed 2024     # the validation scenarios
    python benchmarks/cache_hooks.py --scenarios /tmp/val/scenarios         # the shipped model, one CPU thread
    python benchmarks/cache_hooks.py --only none,fbc-0.2 --repeats 3        # speed only (no --scenarios)

Owl's renderer (owl/renderer.py, `Renderer.film`) resets the transformer's cache hooks at each clip and wraps each
denoising step in `transformer.cache_context("cond", step_index=..., sigma=..., num_inference_steps=...)` when a
hook is enabled (`pipe.renderer.transformer.enable_cache(config)`, from diffusers.hooks). Both halves of
classifier-free guidance run as one batch, so a hook sees one transformer call per step.

Every cache hook of diffusers 0.42.1 that applies to WanTransformer3DModel runs at one or two settings that skip
real work at Owl's 10 steps (SETTINGS); the hooks that do not apply are printed with the reason. For each setting:
1. speed: an 8 s text-to-video rollout, --repeats times, every setting in each repetition (the order reversed
   every other one); the rollout's denoise seconds per clip and its total seconds, each as a ratio to no cache in
   the same repetition, median over repetitions. Also measured: the share of the transformer blocks' work still
   done (rows through each block's self-attention, cross-attention and feed-forward, counted by forward hooks,
   against no cache) and the PSNR of the rollout's frames against the frames made without a cache;
2. quality (with --scenarios): `owl.eval.shapes.evaluate_shapes` on the scenarios with this pipeline, the
   headline figures of its aggregate against no cache on the same scenarios.

PAB and FasterCache skip by timestep, which the renderer does not hand to the hooks: the benchmark reads it from
the transformer's own `timestep` input (its largest per-token value; context tokens carry 0). FasterCache
approximates the first half of the guidance batch from the second. diffusers' pipelines put the unconditional half
first; Owl's batch is (conditional, null state), so here FasterCache approximates the conditional half. MagCache
needs the model's per-step magnitude ratios: one rollout with `calibrate=True` measures them first (mean over
its clips).
"""

from __future__ import annotations

import argparse
import ast
import collections
import contextlib
import io
import json
import os
import statistics
import time
from pathlib import Path

from steal import Steal

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "a red circle enters from the left."

# name -> (hook, settings). Chosen to skip real work at Owl's 10 steps (flow shift 2: timesteps 1000, 947, 900, 824,
# 750, 667, 571, 462, 333, 182): on the shipped model FirstBlockCache 0.1 and MagCache 0.06 (diffusers' example
# value) skipped no step. FasterCache's and PAB's timestep windows are diffusers' defaults. TaylorSeer runs in lite
# mode: its default identifiers ('^blocks.*attn', matched whole) match no module of WanTransformer3DModel, whose
# attentions are blocks.N.attn1 and blocks.N.attn2.
SETTINGS = {
    "none": ("none", {}),
    "fbc-0.2": ("FirstBlockCache", {"threshold": 0.2}),
    "fbc-0.4": ("FirstBlockCache", {"threshold": 0.4}),
    "pab": ("PyramidAttentionBroadcast", {"spatial_attention_block_skip_range": 2,
                                          "cross_attention_block_skip_range": 2}),
    "fastercache": ("FasterCache", {"spatial_attention_block_skip_range": 2}),
    "magcache-0.1": ("MagCache", {"threshold": 0.1}),
    "magcache-0.2": ("MagCache", {"threshold": 0.2}),
    "taylorseer-lite": ("TaylorSeerCache", {"cache_interval": 2, "disable_cache_before_step": 3,
                                            "use_lite_mode": True}),
    "seacache-0.25": ("SeaCache", {"threshold": 0.25}),
    "seacache-0.5": ("SeaCache", {"threshold": 0.5}),
}
NOT_APPLICABLE = {
    "TextKVCache": "hooks NucleusMoE-Image transformer blocks only; WanTransformer3DModel has none, so it changes "
                   "nothing",
}


def make_config(hook: str, values: dict, timestep, mag_ratios, steps: int):
    """The diffusers config of one setting. timestep: a callable giving the current timestep (PAB, FasterCache)."""
    import torch
    from diffusers.hooks import (FasterCacheConfig, FirstBlockCacheConfig, MagCacheConfig,
                                 PyramidAttentionBroadcastConfig, SeaCacheConfig, TaylorSeerCacheConfig)

    if hook == "FirstBlockCache":
        return FirstBlockCacheConfig(**values)
    if hook == "PyramidAttentionBroadcast":
        return PyramidAttentionBroadcastConfig(current_timestep_callback=timestep, **values)
    if hook == "FasterCache":
        return FasterCacheConfig(current_timestep_callback=timestep, tensor_format="BCFHW",
                                 attention_weight_callback=lambda _: 0.5, **values)  # 0.5: diffusers' default
    if hook == "MagCache":
        return MagCacheConfig(mag_ratios=mag_ratios, num_inference_steps=steps, **values)
    if hook == "TaylorSeerCache":
        return TaylorSeerCacheConfig(taylor_factors_dtype=torch.float32, **values)
    if hook == "SeaCache":
        return SeaCacheConfig(**values)
    raise ValueError(f"unknown hook {hook!r}")


def timestep_reader(transformer):
    """A callable giving the timestep of the transformer's latest call, read from its `timestep` input."""
    now = {"t": 1000.0}

    def before(_module, _args, kwargs):
        t = kwargs.get("timestep")
        if t is not None:
            now["t"] = float(t.max())

    transformer.register_forward_pre_hook(before, with_kwargs=True)
    return lambda: now["t"]


class BlockWork:
    """Rows (batch entries) through each block's self-attention, cross-attention and feed-forward, summed: the work
    a cache hook leaves to do. The attention projections run only when the attention itself runs."""

    def __init__(self, transformer):
        self.rows = collections.Counter()
        for block in transformer.blocks:
            for part, module in (("self-attn", block.attn1.to_q), ("cross-attn", block.attn2.to_q),
                                 ("ffn", block.ffn)):
                module.register_forward_pre_hook(self._counter(part))

    def _counter(self, part):
        def count(_module, args):
            self.rows[part] += args[0].shape[0]
        return count

    def take(self) -> collections.Counter:
        rows, self.rows = self.rows, collections.Counter()
        return rows


def calibrate_magcache(pipe, steps: int) -> list[float]:
    """MagCache's per-step magnitude ratios for this model: one 8 s rollout with calibrate=True, mean over clips."""
    from diffusers.hooks import MagCacheConfig

    transformer = pipe.renderer.transformer
    transformer.enable_cache(MagCacheConfig(calibrate=True, num_inference_steps=steps))
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):  # diffusers prints the ratios after each clip's last step
            pipe(PROMPT, seconds=8, seed=0, progress=False)
    finally:
        transformer.disable_cache()
    lists = [ast.literal_eval(line) for line in printed.getvalue().splitlines() if line.startswith("[") and
             line.rstrip().endswith("]") and not line.startswith("[MagCache]")]
    if not lists:
        raise RuntimeError("MagCache calibration printed no ratios")
    return [statistics.mean(values) for values in zip(*lists)]


def psnr(a, b) -> float:
    import numpy as np

    n = min(len(a), len(b))
    mse = float(np.mean((a[:n].astype(np.float64) - b[:n].astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def headline(aggregate: dict) -> dict:
    """The figures of an evaluate_shapes aggregate that this benchmark prints."""
    d, q, r, f = aggregate["drift"], aggregate["quality"], aggregate["reentry"], aggregate["following"]
    return {"reentry": r["accuracy"], "reentry_n": f"{r['correct']}/{r['total']}", "reentry_truth": r["truth_accuracy"],
            "following": f["accuracy"], "following_n": f"{f['correct']}/{f['total']}",
            "bg_first": d["background"]["first"], "bg_end": d["background"]["end"], "obj_first": d["object"]["first"],
            "obj_end": d["object"]["end"], "palette": q["palette_fraction"], "flicker": q["flicker"],
            "dynamic": q["dynamic_degree"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "owl-shapes"))
    parser.add_argument("--scenarios", help="a scenario folder (owl data shapes ... /scenarios) to evaluate each "
                        "setting on; without it, speed only")
    parser.add_argument("--only", help=f"comma-separated settings (default all): {', '.join(SETTINGS)}")
    parser.add_argument("--repeats", type=int, default=5, help="speed repetitions (default 5)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure (and the full eval aggregates)")
    args = parser.parse_args()
    names = list(SETTINGS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"--only: unknown {unknown}; the settings are {', '.join(SETTINGS)}")
    if "none" not in names:
        names.insert(0, "none")
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch starts its thread pools

    import diffusers
    import torch

    from owl import OwlPipeline
    from owl.eval.shapes import evaluate_shapes

    torch.set_num_threads(args.threads)
    steal = Steal()
    pipe = OwlPipeline.from_pretrained(args.model)
    transformer = pipe.renderer.transformer
    steps = pipe.renderer.config.num_inference_steps
    timestep = timestep_reader(transformer)
    work = BlockWork(transformer)
    print(f"model {args.model}: {pipe.renderer.config.height}x{pipe.renderer.config.width}, {steps} steps, "
          f"guidance {pipe.renderer.config.guidance_scale:g}, {len(transformer.blocks)} transformer blocks; "
          f"diffusers {diffusers.__version__}, torch {torch.__version__}, CPU, {torch.get_num_threads()} thread(s)")
    for hook, reason in NOT_APPLICABLE.items():
        print(f"skipped {hook}: {reason}")

    mag_ratios = None
    if any(SETTINGS[n][0] == "MagCache" for n in names):
        mag_ratios = calibrate_magcache(pipe, steps)
        print("MagCache ratios (calibrated here): " + ", ".join(f"{x:.3f}" for x in mag_ratios))

    @contextlib.contextmanager
    def enabled(name: str):
        hook, values = SETTINGS[name]
        if hook != "none":
            transformer.enable_cache(make_config(hook, values, timestep, mag_ratios, steps))
        try:
            yield
        finally:
            if hook != "none":
                transformer.disable_cache()

    def rollout(name: str):
        with enabled(name):
            start = time.perf_counter()
            out = pipe(PROMPT, seconds=8, seed=0, progress=False)
            total = time.perf_counter() - start
        clips = len(out.storyboard.clips)
        return out.timings["denoise"] / clips, total, out.frames

    # 1. speed, interleaved
    rollout("none")  # warm-up
    work.take()
    speed = {n: {"denoise": [], "total": []} for n in names}
    rows, frames = {}, {}
    for rep in range(args.repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            denoise, total, video = rollout(name)
            speed[name]["denoise"].append(denoise)
            speed[name]["total"].append(total)
            counted = work.take()
            if rep == 0:
                rows[name], frames[name] = counted, video
    ratio = lambda n, key: statistics.median(x / y for x, y in zip(speed[n][key], speed["none"][key]))
    full = sum(rows["none"].values())
    print(f"\nspeed: an 8 s rollout ({PROMPT!r}, seed 0), {args.repeats} interleaved repetitions; medians")
    print(f"{'setting':<18} {'denoise/clip':>12} {'ratio':>6} {'rollout':>8} {'ratio':>6} {'block work':>10} "
          f"{'self/cross/ffn':>15} {'PSNR vs none':>12}")
    figures = {}
    for n in names:
        done = rows[n]
        parts = "/".join(f"{done[p] / max(rows['none'][p], 1):.0%}" for p in ("self-attn", "cross-attn", "ffn"))
        p = psnr(frames[n], frames["none"])
        figures[n] = {"hook": SETTINGS[n][0], "values": SETTINGS[n][1],
                      "denoise_per_clip": statistics.median(speed[n]["denoise"]), "denoise_ratio": ratio(n, "denoise"),
                      "rollout": statistics.median(speed[n]["total"]), "rollout_ratio": ratio(n, "total"),
                      "block_work": sum(done.values()) / full, "psnr_vs_none": p, "speed_runs": speed[n]}
        f = figures[n]
        print(f"{n:<18} {f['denoise_per_clip']:>10.3f} s {f['denoise_ratio']:>6.3f} {f['rollout']:>6.2f} s "
              f"{f['rollout_ratio']:>6.3f} {f['block_work']:>10.0%} {parts:>15} {p:>12.1f}")

    # 2. quality on the scenarios
    if args.scenarios:
        print(f"\nShapes World scores on {args.scenarios} (evaluate_shapes, memory full, seed 0, the model's steps)")
        head = (f"{'setting':<18} {'re-entry':>14} {'following':>15} {'bg drift':>13} {'obj drift':>13} "
                f"{'palette':>7} {'flicker':>7} {'dynamic':>7} {'eval':>6}")
        print(head)
        for n in names:
            with enabled(n):
                start = time.perf_counter()
                report = evaluate_shapes(args.scenarios, pipe=pipe, seed=0)
                took = time.perf_counter() - start
            work.take()
            h = headline(report["aggregate"])
            figures[n]["shapes"] = h | {"seconds": took, "aggregate": report["aggregate"]}
            pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"
            num = lambda x: "-" if x is None else f"{x:.2f}"
            print(f"{n:<18} {pct(h['reentry']):>6} ({h['reentry_n']:>5}) {pct(h['following']):>6} "
                  f"({h['following_n']:>6}) {num(h['bg_first']):>5} -> {num(h['bg_end']):<5} "
                  f"{num(h['obj_first']):>5} -> {num(h['obj_end']):<5} {pct(h['palette']):>7} "
                  f"{num(h['flicker']):>7} {num(h['dynamic']):>7} {took:>5.0f}s")
        print("drift: mean grey-level error at the first and last time points (background, object); flicker in grey "
              "levels; dynamic in px/s; palette: share of pixels in the Shapes palette")
    print(steal.line())
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": figures, "mag_ratios": mag_ratios}, indent=1, default=str))


if __name__ == "__main__":
    main()
