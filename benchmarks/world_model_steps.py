"""Where the world model's time goes in a rollout: per clip, its vision tower, its LMM forwards, and the rest.

    python benchmarks/world_model_steps.py            # the shipped model, a 24 s rollout, with and without an mp4

Runs the same rollout three times in this process: streaming to a temporary mp4 (as the CLI does), the same with the
encoder at the loop's own priority (`owl.video_io.ENCODER_NICENESS` = 0; "mp4 nice 0"), and keeping the frames in
memory. It reports for each: the loop overhead (total / (denoise + decode)), the world model's share of the
renderer's time, and per clip the milliseconds of its vision tower (the key frames), of its LMM forwards (with their
count) and of what else it does (tokenizing, drafting, bookkeeping), and the rollout's wall seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from steal import Steal


def timed(owner, name: str, totals: dict, key: str) -> None:
    """Wrap `owner.name` so that each call adds its seconds to totals[key] and its count to totals[key + " n"]."""
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - start
            totals[key + " n"] = totals.get(key + " n", 0) + 1

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(Path(__file__).resolve().parent.parent / "checkpoints" / "owl-shapes"))
    parser.add_argument("--prompt", default="a red circle enters from the left.")
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="rollouts of each kind, alternating")
    args = parser.parse_args()

    import torch

    import owl.video_io
    from owl import OwlPipeline

    torch.set_num_threads(args.threads)
    steal = Steal()
    pipe = OwlPipeline.from_pretrained(args.model)
    wm = pipe.world_model
    totals: dict = {}
    timed(wm, "frame_segments", totals, "vision")  # the key frames through the vision tower (and their layout)
    timed(wm, "run", totals, "lmm")  # every LMM forward of the session
    pipe(args.prompt, seconds=4, seed=0, progress=False)  # warm up
    print(f"model: {args.model}; {args.seconds:g} s rollouts; threads: {args.threads}")
    print(f"{'output':<10} {'overhead':>8} {'world / render':>14} {'clips':>5} {'vision ms':>9} {'LMM ms':>7} "
          f"{'forwards':>8} {'other ms':>8}  (per clip) {'wall s':>6}")
    niceness = owl.video_io.ENCODER_NICENESS
    for repeat in range(args.repeats):
        for kind in ("mp4", "mp4 nice 0", "memory"):
            totals.clear()
            owl.video_io.ENCODER_NICENESS = 0 if kind == "mp4 nice 0" else niceness
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                out = pipe(args.prompt, seconds=args.seconds, seed=repeat, progress=False,
                           output=None if kind == "memory" else Path(tmp) / "bench.mp4")
                wall = time.perf_counter() - start
            t, clips = out.timings, len(out.storyboard.clips)
            render = t["denoise"] + t["decode"]
            other = t["world_model"] - totals.get("vision", 0) - totals.get("lmm", 0)
            vision, lmm = (1000 * totals.get(key, 0) / clips for key in ("vision", "lmm"))
            print(f"{kind:<10} {t['total'] / render:>8.3f} {t['world_model'] / render:>14.3f} "
                  f"{clips:>5} {vision:>9.1f} {lmm:>7.1f} {totals.get('lmm n', 0) / clips:>8.1f} "
                  f"{1000 * other / clips:>8.1f}  {'':>10} {wall:>6.2f}")
    owl.video_io.ENCODER_NICENESS = niceness
    print(steal.line())


if __name__ == "__main__":
    main()
