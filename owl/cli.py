"""The `owl` command: a thin shell over the public API.

    owl generate --prompt "a red ball rolls left" --seconds 24 --out ball.mp4
    owl data shapes --out DIR ...        (owl.data)

User mistakes print one line, `owl: error: ...`, and exit 2, with no traceback; Ctrl-C exits 130 and leaves
nothing half-written at the output path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from owl.errors import OwlError

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "checkpoints" / "owl-shapes"


def read_script(path: str) -> list[str]:
    """Dynamics from a JSON or YAML file: a list of texts, or {"dynamics": [texts]}."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise OwlError(f"script not found: {path!r}")
    try:
        data = yaml.safe_load(p.read_text())  # YAML is a superset of JSON
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise OwlError(f"script {path!r} is neither valid JSON nor YAML: {str(exc).splitlines()[0]}") from exc
    if isinstance(data, dict):
        unknown = sorted(set(data) - {"dynamics"})
        if unknown:
            raise OwlError(f"script {path!r} has unknown key(s) {unknown}; accepted: ['dynamics']")
        data = data.get("dynamics")
    if not isinstance(data, list) or not data or not all(isinstance(d, str) and d.strip() for d in data):
        raise OwlError(f"script {path!r} must hold a non-empty list of dynamics texts (or {{dynamics: [...]}})")
    return [d.strip() for d in data]


def load_pipeline(model: str | None, preset: str | None):
    from owl.pipeline import OwlPipeline

    if model and preset:
        raise OwlError("give either --model or --preset, not both")
    if preset:
        return OwlPipeline.from_preset(preset)
    if model is None and not DEFAULT_MODEL.is_dir():
        raise OwlError(f"no model given and the shipped model is not at {str(DEFAULT_MODEL)!r}; "
                       "pass --model DIR or --preset tiny")
    return OwlPipeline.from_pretrained(model or DEFAULT_MODEL)


def cmd_generate(args) -> int:
    if args.dynamics is not None and args.script is not None:
        raise OwlError("give either --dynamics or --script, not both")
    dynamics = None
    if args.dynamics is not None:
        dynamics = [d.strip() or None for d in args.dynamics.split(";")]
    elif args.script is not None:
        dynamics = read_script(args.script)
    out = Path(args.out)
    pipe = load_pipeline(args.model, args.preset)
    result = pipe(
        prompt=args.prompt, image=args.image, seconds=args.seconds, fps=args.fps, height=args.height,
        width=args.width, dynamics=dynamics, seed=args.seed, num_inference_steps=args.steps,
        guidance_scale=args.guidance, memory=args.memory, output=out, progress=not args.quiet)
    storyboard_path = out.with_suffix(".storyboard.json")
    result.storyboard.save(storyboard_path)
    print(f"wrote {out} ({result.seconds:.2f} s, {result.num_frames} frames at {result.fps:g} fps); "
          f"storyboard {storyboard_path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="owl", description="Long, consistent videos with an omni world model.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gen = sub.add_parser("generate", help="generate a long video from a prompt (and optionally a first image)",
                         description="Generate a video: the world model keeps the state, the renderer films clips.")
    gen.add_argument("--prompt", default="", help="what the video shows at the start")
    gen.add_argument("--image", help="first frame for image-to-video (PNG, JPEG, ...)")
    gen.add_argument("--seconds", type=float, default=24.0, help="duration (default 24, at most 3600)")
    gen.add_argument("--fps", type=float, help="frames per second (default: the model's)")
    gen.add_argument("--height", type=int, help="frame height (default: the model's)")
    gen.add_argument("--width", type=int, help="frame width (default: the model's)")
    gen.add_argument("--dynamics", help='scripted dynamics d_0; d_1; ... separated by ";" (empty = predicted)')
    gen.add_argument("--script", help="JSON or YAML file with a list of dynamics texts")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--steps", type=int, help="denoising steps per clip (default: the model's)")
    gen.add_argument("--guidance", type=float, help="classifier-free guidance scale (default: the model's)")
    gen.add_argument("--memory", default="full", help="full: the world state; last: last clip + caption baseline")
    gen.add_argument("--model", help="a saved Owl pipeline folder (default: checkpoints/owl-shapes)")
    gen.add_argument("--preset", help="build a random model of a named size instead (tiny)")
    gen.add_argument("--out", default="owl.mp4", help="output mp4; a .storyboard.json is written beside it")
    gen.add_argument("--quiet", action="store_true", help="no progress bars")
    gen.set_defaults(func=cmd_generate)

    from owl.data.commands import add_data_commands
    from owl.train.commands import add_train_commands

    add_data_commands(sub)
    add_train_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except OwlError as exc:
        print(f"owl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("owl: interrupted; nothing was left at the output path", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
