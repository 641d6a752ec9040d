"""`owl eval ...`: the evaluation commands of the CLI, thin shells over owl.eval.

    owl eval shapes --model DIR --scenarios DIR [--memory full|last] [--out FILE.json] [--seed N] [--limit N]
                    [--steps N] [--max-observations K] [--device auto]
    owl eval shapes --ground-truth --scenarios DIR [--out FILE.json] [--limit N]     the real videos: a baseline
    owl eval shapes --reconstruct --model DIR --scenarios DIR [...]       the real videos through the model's VAE
    owl eval shapes --probe --model DIR --scenarios DIR --probe-train DIR [--out FILE.json] [--limit N]
                                           the memory probe: what the world state knows of objects off screen

`add_eval_commands(subparsers)` adds the `eval` command to the main parser (owl/cli.py); each leaf sets
`func(args) -> int`, the exit code. Errors are raised as OwlError for the main CLI to print as one line.
The table goes to stdout, one progress line per scenario to stderr, the full report (per scenario and
aggregate) to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from owl.console import command_group
from owl.errors import OwlError
from owl.settings import add_setting_flags, check_setting_flags, given_setting_flags, setting_values

# the rollout settings `eval shapes` films with (owl.settings makes their flags, help and defaults)
EVAL_SETTINGS = ("memory", "seed", "num_inference_steps", "guidance_scale", "max_observations")


def _shapes(args: argparse.Namespace) -> int:
    from owl.eval.shapes import evaluate_shapes, format_comparison, format_table

    filming = given_setting_flags(args, EVAL_SETTINGS)
    if args.probe:
        return _probe(args, filming)
    if args.probe_train is not None and (args.ground_truth or args.reconstruct):
        raise OwlError("--probe-train probes the states of the model's rollouts; drop --ground-truth and --reconstruct")
    if args.ground_truth and (args.model or filming):  # with --reconstruct too: evaluate_shapes refuses the pair
        dropped = (["--model"] if args.model else []) + filming
        raise OwlError(f"--ground-truth measures the scenarios' own videos; drop {' '.join(dropped)}")
    if args.reconstruct and filming:
        raise OwlError(f"--reconstruct films nothing (it measures the real videos through the model's VAE); "
                       f"drop {' '.join(filming)}")
    if not args.ground_truth and args.model is None:
        raise OwlError("give --model DIR (a saved Owl pipeline), or --ground-truth to measure the real videos")
    from owl.cli import pick_device
    from owl.loading import check_model_folder

    check_setting_flags(args)  # the rollout settings, the device and the model folders: before anything loads
    device = pick_device(args.device)
    models = args.model or [None]
    for model in args.model or []:
        check_model_folder(model)
    if len(models) > 1 and args.probe_train is not None:
        raise OwlError("--probe-train reads one model's states; give one --model")
    out = Path(args.out) if args.out else None
    _check_out(out)
    if args.probe_train is not None:  # before the model loads
        _check_scenarios(args.probe_train)
    settings = setting_values(args, EVAL_SETTINGS)  # the flags given, else the API's defaults
    reports = []
    for model in models:  # one after the other, on the same scenarios with the same settings
        report = evaluate_shapes(args.scenarios, model, ground_truth=args.ground_truth,
                                 reconstruct_only=args.reconstruct, memory=settings["memory"], seed=settings["seed"],
                                 limit=args.limit, steps=settings["num_inference_steps"],
                                 guidance_scale=settings["guidance_scale"], device=device,
                                 max_observations=settings["max_observations"],
                                 log=lambda line: print(line, file=sys.stderr, flush=True),
                                 probe_train=args.probe_train)
        if len(models) > 1:
            print(f"model {model}:")
        print(format_table(report))
        reports.append(report)
    if len(reports) > 1:
        print(format_comparison(reports))
    _write_report(out, reports[0] if len(reports) == 1 else {"models": reports})
    return 0


def _probe(args: argparse.Namespace, filming: list[str]) -> int:
    """`owl eval shapes --probe`: fit the memory probe on --probe-train, score it on --scenarios, both memories."""
    from owl.cli import pick_device
    from owl.eval.probe import format_probe, probe_memory
    from owl.loading import check_model_folder, folder_mode
    from owl.pipeline import OwlPipeline

    other = [flag for flag, value in (("--ground-truth", args.ground_truth), ("--reconstruct", args.reconstruct))
             if value]
    if other or filming:
        raise OwlError(f"--probe reads the world state on the real videos, with both memories, and films nothing; "
                       f"drop {' '.join(other + filming)}")
    if args.model is None or args.probe_train is None:
        raise OwlError("--probe needs --model DIR (a saved Owl pipeline) and --probe-train DIR (the scenarios/ of "
                       "the model's training data, to fit the probe on)")
    if len(args.model) > 1:
        raise OwlError(f"--probe reads one model's states; give one --model, got {len(args.model)}")
    model = args.model[0]
    device = pick_device(args.device)
    check_model_folder(model)
    if folder_mode(Path(model)) == "director":
        raise OwlError(f"--probe reads a trained world state; {model!r} is a director folder, whose state is the "
                       "Wan text encoding of the events it writes")
    out = Path(args.out) if args.out else None
    _check_out(out)
    for folder in (args.scenarios, args.probe_train):  # before the model loads
        _check_scenarios(folder)
    pipe = OwlPipeline.from_pretrained(model, device=device)
    report = probe_memory(pipe, args.scenarios, args.probe_train, limit=args.limit,
                          log=lambda line: print(line, file=sys.stderr, flush=True))
    report["settings"]["model"] = str(model)
    print(format_probe(report))
    _write_report(out, report)
    return 0


def _check_scenarios(folder: str) -> None:
    """Every scenario of a folder and its ground truth read and checked (one-line OwlError), as before a model loads."""
    from owl.eval.shapes import list_scenarios, read_truth

    for scenario in list_scenarios(folder):
        read_truth(scenario)


def _check_out(out: Path | None) -> None:
    if out is not None and out.is_dir():
        raise OwlError(f"--out must be a JSON file path, got a folder: {str(out)!r}")
    if out is not None and not out.parent.is_dir():
        raise OwlError(f"the folder of --out does not exist: {str(out.parent)!r}")


def _write_report(out: Path | None, report: dict) -> None:
    from owl.files import write_bytes_atomic

    if out is not None:
        write_bytes_atomic(out, (json.dumps(report, indent=1) + "\n").encode())
        print(f"wrote {out}")


def _positive_int(text: str) -> int:  # --limit (the rollout settings are checked by owl.settings)
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_eval_commands(subparsers) -> argparse.ArgumentParser:
    """Add `eval shapes` to an argparse subparsers object; returns the `eval` parser."""
    evaluate, commands = command_group(subparsers, "eval", "measure a model on Shapes World scenarios",
                                       "Measure consistency, dynamics following, drift and frame quality.", ["shapes"])
    shapes = commands.add_parser(
        "shapes", help="generate Shapes World scenarios with a model and measure them from the pixels",
        description="Generate each scenario (first frame, prompt, scripted dynamics) with a saved Owl pipeline and "
                    "measure re-entry identity, dynamics following, drift and frame quality against the ground "
                    "truth; or, with --ground-truth, measure the scenarios' own videos.")
    shapes.add_argument("--scenarios", required=True, help="a scenarios/ folder written by `owl data shapes`")
    shapes.add_argument("--model", action="append", metavar="DIR",
                        help="a saved Owl pipeline folder; give it more than once to compare models (a director "
                             "folder and a trained one, say) on the same scenarios")
    shapes.add_argument("--ground-truth", action="store_true",
                        help="measure the scenarios' real videos instead of generating (a sanity baseline)")
    shapes.add_argument("--reconstruct", action="store_true",
                        help="measure the real videos encoded and decoded by the model's VAE: the ceiling of any "
                             "model built on it")
    shapes.add_argument("--probe", action="store_true",
                        help="the memory probe: fit a linear probe on the world state s_t of --probe-train's real "
                             "videos to name the object that is off screen and comes back; score it on --scenarios, "
                             "with full and with last memory (films nothing)")
    shapes.add_argument("--probe-train", metavar="DIR",
                        help="the scenarios/ folder of the model's training data, to fit the memory probe on; with a "
                             "model's rollouts (no --probe), the probe also reads the states of each rollout")
    shapes.add_argument("--out", help="write the report (per scenario and aggregate) to this JSON file")
    shapes.add_argument("--limit", type=_positive_int, help="evaluate only the first N scenarios (in name order)")
    shapes.add_argument("--device", default="auto", help="cpu, cuda, cuda:N; auto: the GPU if any, else cpu")
    add_setting_flags(shapes, EVAL_SETTINGS)  # --seed: the same for every scenario
    shapes.set_defaults(func=_shapes)
    return evaluate


if __name__ == "__main__":  # python -m owl.eval.commands eval shapes ... (without the main CLI)
    parser = argparse.ArgumentParser(prog="owl")
    add_eval_commands(parser.add_subparsers(dest="command", required=True))
    parsed = parser.parse_args()
    try:
        sys.exit(parsed.func(parsed))
    except OwlError as exc:
        print(f"owl: error: {exc}", file=sys.stderr)
        sys.exit(2)
