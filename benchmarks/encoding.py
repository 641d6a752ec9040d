"""What x264's speed preset costs and gives on Owl's videos: encoding CPU, file size and PSNR, against "medium".

    python benchmarks/encoding.py                      # a 24 s rollout of the shipped model
    python benchmarks/encoding.py --seconds 96 --presets medium faster veryfast

The rollout is filmed once, into memory; then `owl.video_io.VideoWriter` encodes the same frames with each preset,
`--repeats` times. CPU is ffmpeg's own (user + system time of the finished child process); PSNR is over the
decoded file against the frames. Owl writes with `owl.video_io.X264_PRESET`. Every figure is a ratio within this
one run (these machines are noisy), beside the raw values.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
from pathlib import Path

import numpy as np

from steal import Steal


def encode(frames: np.ndarray, fps: float, preset: str, path: Path) -> tuple[float, int, float]:
    """Encode with one preset: (ffmpeg CPU seconds, file bytes, PSNR dB of the decoded file)."""
    from owl.video_io import VideoWriter, read_video

    def children() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    before = children()
    with VideoWriter(path, fps, preset=preset) as writer:
        writer.append(frames)
    cpu = children() - before
    decoded = np.asarray(read_video(path)[0])[: len(frames)].astype(np.float64)
    mse = ((decoded - frames) ** 2).mean()
    return cpu, path.stat().st_size, 10 * np.log10(255 ** 2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(Path(__file__).resolve().parent.parent / "checkpoints" / "owl-shapes"))
    parser.add_argument("--prompt", default="a red circle enters from the left.")
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--presets", nargs="+", default=["medium", "faster", "veryfast"])
    parser.add_argument("--repeats", type=int, default=3, help="encodings per preset; the CPU figure is their median")
    args = parser.parse_args()

    import torch

    from owl import OwlPipeline
    from owl.video_io import X264_PRESET

    torch.set_num_threads(2)
    steal = Steal()
    out = OwlPipeline.from_pretrained(args.model)(args.prompt, seconds=args.seconds, seed=0, progress=False)
    frames = np.asarray(out.frames)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            runs = [encode(frames, out.fps, preset, Path(tmp) / f"{preset}.mp4") for _ in range(args.repeats)]
            rows[preset] = (statistics.median(r[0] for r in runs), runs[0][1], runs[0][2])
    base = rows[args.presets[0]]
    print(f"{len(frames)} frames of {frames.shape[2]} x {frames.shape[1]}; Owl's preset: {X264_PRESET}; "
          f"CPU the median of {args.repeats} encodings; ratios against {args.presets[0]}")
    print(f"{'preset':<10} {'CPU s':>7} {'CPU ratio':>9} {'bytes':>9} {'size ratio':>10} {'PSNR dB':>8} {'dPSNR':>6}")
    for preset, (cpu, size, psnr) in rows.items():
        print(f"{preset:<10} {cpu:>7.3f} {cpu / base[0]:>9.3f} {size:>9d} {size / base[1]:>10.3f} {psnr:>8.2f} "
              f"{psnr - base[2]:>+6.2f}")
    print(steal.line())


if __name__ == "__main__":
    main()
