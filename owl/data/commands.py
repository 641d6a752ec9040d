"""`owl data ...`: the data commands of the CLI, thin shells over owl.data.

    owl data shapes --out DIR --videos N --seconds S --seed K [--size 64] [--fps 8] [--clip-seconds 4]
    owl data scan PATH --out FILE.jsonl [--fps 8] [--size 128] [--min-seconds 1] [--skip-invalid]
                  [--window 2] [--sigmas 3] [--floor 0.25] [--colour-floor 0.1] [--structure-floor 0.15]
                  [--gradual-seconds 1] [--gradual-floor 0.5] [--chunk 256]     (one flag per ScanSettings field)

`add_data_commands(subparsers)` adds the `data` command to the main parser (owl/cli.py); each leaf sets
`func(args) -> int`, the exit code. Errors are raised as OwlError for the main CLI to print. For use without the
main CLI: `python -m owl.data.commands data shapes --out /tmp/sw --videos 2 --seconds 8 --seed 1`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from owl.console import command_group
from owl.errors import OwlError


def _shapes(args: argparse.Namespace) -> int:
    from owl.data.shapes import generate_shapes

    began = time.perf_counter()
    ids = generate_shapes(args.out, videos=args.videos, seconds=args.seconds, seed=args.seed, size=args.size,
                          fps=args.fps, clip_seconds=args.clip_seconds)
    print(f"wrote {len(ids)} Shapes World videos to {args.out} in {time.perf_counter() - began:.1f} s")
    return 0


def _scan(args: argparse.Namespace) -> int:
    from owl.data.scan import ScanSettings, scan_videos

    settings = ScanSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(ScanSettings)})
    began = time.perf_counter()
    rows = scan_videos(args.path, args.out, settings, skip_invalid=args.skip_invalid)
    videos = len({row["video"] for row in rows})
    print(f"wrote {len(rows)} clips of {videos} videos to {args.out} in {time.perf_counter() - began:.1f} s")
    return 0


def _positive(kind, zero_ok: bool = False):
    kind = {"int": int, "float": float}.get(kind, kind)  # dataclass field types are strings here
    what = f"{'non-negative' if zero_ok else 'positive'} {kind.__name__}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}") from None
        if value < 0 or (value == 0 and not zero_ok):
            raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}")
        return value
    return parse


def add_data_commands(subparsers) -> argparse.ArgumentParser:
    """Add `data shapes` and `data scan` to an argparse subparsers object; returns the `data` parser."""
    from owl.data.scan import ScanSettings

    data, commands = command_group(subparsers, "data", "make and prepare training data",
                                   "Make and prepare training data.", ["shapes", "scan"])

    shapes = commands.add_parser("shapes", help="generate a Shapes World set (videos, captions, tracks, scenarios)",
                                 description="Generate Shapes World: procedural videos of coloured shapes with dense "
                                             "captions (ActivityNet format), ground-truth tracks and scenarios.")
    shapes.add_argument("--out", required=True, help="output folder (created if missing)")
    shapes.add_argument("--videos", type=_positive(int), required=True, help="number of videos")
    shapes.add_argument("--seconds", type=_positive(float), required=True, help="length of each video, seconds")
    shapes.add_argument("--seed", type=int, required=True, help="random seed: same seed, same set")
    shapes.add_argument("--size", type=_positive(int), default=64, help="frame side in pixels (default 64)")
    shapes.add_argument("--fps", type=_positive(float), default=8.0, help="frame rate (default 8)")
    shapes.add_argument("--clip-seconds", type=_positive(float), default=4.0,
                        help="clip grid of events and scenario dynamics, seconds (default 4)")
    shapes.set_defaults(func=_shapes)

    scan = commands.add_parser("scan", help="find scene cuts and score clips (after Koala-36M)",
                               description="Cut videos into shots (colour-histogram + structural change with an "
                                           "adaptive threshold) and score each shot (motion, sharpness, "
                                           "brightness); writes JSONL rows readable by ClipDataset.")
    scan.add_argument("path", help="a video file or a folder of videos")
    scan.add_argument("--out", required=True, help="output .jsonl file (written atomically)")
    for setting in dataclasses.fields(ScanSettings):  # one flag per setting, so the two never drift apart
        parse = _positive(setting.type, setting.metadata["zero_ok"])
        scan.add_argument(f"--{setting.name.replace('_', '-')}", type=parse,
                          default=setting.default,
                          help=f"{setting.metadata['help']} (default {setting.default:g})")
    scan.add_argument("--skip-invalid", action="store_true",
                      help="skip unreadable videos with a warning instead of stopping")
    scan.set_defaults(func=_scan)
    return data


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point, the same as the main CLI's handling: OwlError -> `owl: error: ...`, exit 2."""
    parser = argparse.ArgumentParser(prog="owl")
    add_data_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except OwlError as exc:
        print(f"owl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
