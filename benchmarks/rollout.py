"""Rollout cost as a video grows: per-clip time, peak memory, loop overhead, speed against real time.

    python benchmarks/rollout.py                       # the shipped model (checkpoints/owl-shapes)
    python benchmarks/rollout.py --preset tiny --seconds 96 --short 24
    python benchmarks/rollout.py --repeats 3            # three pairs of fresh processes, each figure their median

Every figure is a ratio of two measurements taken in this one run (these machines are noisy):
- per-clip cost: the time of the last clip of a long rollout over the time of clip 2 (index 1), and the mean
  of the last five clips over the mean of clips 2 to 6;
- peak memory: peak RSS of a long rollout over that of a short one, each in a fresh process; and, within the long
  rollout's one process, the live heap (glibc's mallinfo2: the bytes malloc has handed out and not taken back)
  after its last clip over that after clip 6. The live heap is what the history adds as the video grows; resident
  memory also holds the freed pages glibc keeps, which vary by tens of MB from clip to clip and run to run;
- loop overhead: total rollout time over the time spent inside the renderer (denoising and decoding);
- real time: seconds of video over seconds of wall time for the short rollout.
The video is streamed to a temporary mp4, as the CLI does.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from steal import Steal


def live_heap_mb() -> float:
    """The bytes malloc has handed out and not taken back, MB (glibc's mallinfo2; NaN without it)."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]

    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return float("nan")
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) / 2 ** 20


def one_rollout(args) -> dict:
    """Run one rollout in this process and report its timings, per-clip times and peak RSS."""
    import resource

    import torch

    from owl import OwlPipeline

    torch.set_num_threads(args.threads)
    pipe = OwlPipeline.from_preset(args.preset) if args.preset else OwlPipeline.from_pretrained(args.model)
    stamps, heap = [], []
    kwargs = {}
    if args.max_observations:
        kwargs["max_observations"] = args.max_observations
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = pipe(args.prompt, seconds=args.seconds, seed=0, output=Path(tmp) / "bench.mp4", progress=False,
                   callback=lambda event: stamps.append(time.perf_counter()) or heap.append(live_heap_mb()),
                   **kwargs)
        wall = time.perf_counter() - start
    clip_times = [b - a for a, b in zip([start] + stamps[:-1], stamps)]
    return {"seconds": out.seconds, "wall": wall, "timings": out.timings, "clip_times": clip_times,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "heap_mb": heap}


def child(args, seconds: float) -> dict:
    cmd = [sys.executable, __file__, "--child", "--seconds", str(seconds), "--threads", str(args.threads),
           "--prompt", args.prompt, "--max-observations", str(args.max_observations)]
    cmd += ["--preset", args.preset] if args.preset else ["--model", str(args.model)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(Path(__file__).resolve().parent.parent / "checkpoints" / "owl-shapes"))
    parser.add_argument("--preset", help="a random model of a named size instead of --model")
    parser.add_argument("--prompt", default="a red circle enters from the left.")
    parser.add_argument("--seconds", type=float, default=96.0, help="the long rollout")
    parser.add_argument("--short", type=float, default=24.0, help="the short rollout")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-observations", type=int, default=0,
                        help="bound the LMM history (0: the model's default bound)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="pairs of fresh processes (short, then long); each figure is then their median")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_rollout(args)))
        return

    steal = Steal()
    pairs = [(child(args, args.short), child(args, args.seconds)) for _ in range(args.repeats)]
    render = lambda r: r["timings"]["denoise"] + r["timings"]["decode"]
    overhead = lambda r: r["timings"]["total"] / render(r)
    clips = lambda r: r["clip_times"]

    def figure(value, fmt: str = "{:.3f}") -> str:
        """One figure per pair (short, long); with several pairs, their median first, then each."""
        values = [value(short, long) for short, long in pairs]
        shown = ", ".join(fmt.format(v) for v in values)
        return shown if len(values) == 1 else f"{fmt.format(statistics.median(values))} (median of {shown})"

    rows = [
        ("clips in the long rollout", f"{len(clips(pairs[0][1]))}"),
        ("last clip / clip 2 time", figure(lambda s, l: clips(l)[-1] / clips(l)[1])),
        ("mean(last 5 clips) / mean(clips 2-6)", figure(lambda s, l: sum(clips(l)[-5:]) / sum(clips(l)[1:6]))),
        (f"peak RSS {args.seconds:g} s / {args.short:g} s", figure(lambda s, l: l["peak_rss_mb"] / s["peak_rss_mb"])),
        (f"peak RSS {args.short:g} s, MB", figure(lambda s, l: s["peak_rss_mb"], "{:.0f}")),
        ("live heap after the last clip / after clip 6, long", figure(lambda s, l: l["heap_mb"][-1] / l["heap_mb"][5])),
        ("live heap after clip 6, MB", figure(lambda s, l: l["heap_mb"][5], "{:.0f}")),
        ("loop overhead: total / (denoise + decode), long", figure(lambda s, l: overhead(l))),
        ("loop overhead: total / (denoise + decode), short", figure(lambda s, l: overhead(s))),
        (f"video seconds / wall seconds, {args.short:g} s rollout", figure(lambda s, l: s["seconds"] / s["wall"],
                                                                           "{:.2f}")),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"model: {args.preset or args.model}; threads: {args.threads}; history bound: "
          f"{args.max_observations or 'the default'}; pairs of runs: {args.repeats}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(steal.line())


if __name__ == "__main__":
    main()
