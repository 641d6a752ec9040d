"""`owl train STAGE --config FILE [--set key=value ...] [--resume]`, also `accelerate launch -m owl.train STAGE ...`."""

from __future__ import annotations

import argparse
import importlib

from owl.train.common import STAGES, load_config


def run_stage(args) -> int:
    cfg = load_config(args.stage, args.config, args.set or [])
    stage = importlib.import_module(f"owl.train.{args.stage}")
    artifact = stage.main(cfg, resume=args.resume, quiet=args.quiet)
    print(f"trained {args.stage}: {artifact}")
    return 0


def add_stage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stage", choices=STAGES, help="vae | align | generate | world")
    parser.add_argument("--config", help="YAML settings of the stage (see owl/train/common.py)")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one setting; repeatable")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest readable checkpoint in output_dir (a damaged one is passed over)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_stage)


def add_train_commands(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a stage: vae, align, generate, world",
                                  description="Train one stage; its output_dir/model feeds the next stage.")
    add_stage_arguments(train)
