"""24 s rollouts of the shipped model, one per way of driving the loop; each writes an mp4, its storyboard JSON
and a contact sheet (one frame per clip, its dynamics under it).

    python demos/rollouts.py                        # all four demos into demos/out/
    python demos/rollouts.py i2v timeline --model DIR --out-dir somewhere/

- t2v:       text-to-video from a prompt; the world model predicts every next dynamics d_t.
- i2v:       image-to-video from a Shapes World first frame (held-out seed) and its opening caption.
- timeline:  a user-scripted timeline of timed segments, with a gap the world model fills.
- predicted: image-to-video where only the prompt is given and the world model writes all dynamics.

A thin shell over the public API (OwlPipeline, Timeline, contact sheets): everything it does is in the library.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from owl import OwlPipeline
from owl.contact_sheet import save_contact_sheet
from owl.data.shapes import render_video
from owl.errors import OwlError
from owl.timeline import Timeline

ROOT = Path(__file__).resolve().parent.parent


def opening_frame():
    """The first frame and first caption of a held-out Shapes World video (a seed never used in training)."""
    video = render_video(seed=2024, index=9, seconds=24)  # a green triangle moving right
    return video.frames[0], video.sentences[0]


def demo_kwargs(name: str) -> dict:
    """The pipeline arguments of each demo."""
    if name == "t2v":
        return dict(prompt="a red circle enters from the left.")
    image, caption = opening_frame()
    if name == "i2v":
        return dict(prompt=caption, image=image, dynamics=[
            "the green triangle leaves the frame to the right.", "the frame stays empty.",
            "the triangle comes back from the right.", "the triangle stops.", "the triangle turns red."])
    if name == "timeline":
        return dict(prompt=caption, image=image, dynamics=Timeline.from_list([
            {"start": 4, "end": 12, "dynamics": "the green triangle leaves the frame to the right."},
            {"duration": 4, "dynamics": "the triangle comes back from the right."},
            {"start": 20, "end": 24, "dynamics": "the triangle grows."},  # 16-20 s: a gap, predicted
        ]))
    return dict(prompt=caption, image=image)  # predicted


DEMOS = ("t2v", "i2v", "timeline", "predicted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demos", nargs="*", metavar="DEMO",
                        help=f"which demos to run ({', '.join(DEMOS)}; default: all)")
    parser.add_argument("--model", default=str(ROOT / "checkpoints" / "owl-shapes"), help="a saved Owl pipeline")
    parser.add_argument("--out-dir", default=str(ROOT / "demos" / "out"))
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    unknown = [d for d in args.demos if d not in DEMOS]
    if unknown:  # checked here: argparse refuses an empty list when nargs="*" has choices
        parser.error(f"unknown demo(s) {', '.join(unknown)}; accepted: {', '.join(DEMOS)}")

    try:
        pipe = OwlPipeline.from_pretrained(args.model)
    except OwlError as exc:  # a user mistake (a missing or damaged model folder): one line, no traceback
        parser.error(str(exc))
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.demos or DEMOS:
        video = out_dir / f"{name}.mp4"
        began = time.perf_counter()
        out = pipe(**demo_kwargs(name), seconds=args.seconds, seed=args.seed, output=video, progress=False)
        out.storyboard.save(video.with_suffix(".storyboard.json"))
        sheet = save_contact_sheet(video, out.storyboard, video.with_suffix(".sheet.png"))
        print(f"{name}: {video} ({out.seconds:g} s in {time.perf_counter() - began:.1f} s), {sheet}")
        for clip in out.storyboard.clips:
            print(f"  {clip.index}  {clip.start:5.2f}-{clip.end:5.2f} s  {'predicted' if clip.predicted else 'given':9}  "
                  f"{clip.dynamics}")


if __name__ == "__main__":
    main()
