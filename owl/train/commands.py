"""`owl train STAGE --config FILE [--set key=value ...]`: registers the training subcommand."""

from __future__ import annotations


def add_train_commands(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a stage: vae, align, generate, world")
    train.set_defaults(func=lambda args: train.print_help() or 2)
