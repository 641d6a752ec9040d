"""How Owl's commands talk to the terminal: Owl's lines only, one line per error, an exit status.

`run_command(func, args)` runs one command (`owl ...`, `python -m owl.train ...`): an `OwlError` becomes
`owl: error: ...` and exit 2, Ctrl-C exit 130, and while it runs `owl_lines_only` keeps the libraries' notices
off the terminal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings

from owl.errors import OwlError, OwlWarning

_LIBRARIES = ("transformers", "diffusers", "huggingface_hub", "accelerate", "peft", "torch")


def _show_owl_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"owl: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def owl_lines_only():
    """While an Owl command runs, the terminal shows Owl's lines: its own warnings (`OwlWarning`), one line each,
    and no deprecation notices, load reports or progress bars from the libraries underneath. Everything is put
    back afterwards, so a test that calls `main` in-process keeps its library warnings everywhere else."""
    env = {"TRANSFORMERS_VERBOSITY": "error", "DIFFUSERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
           "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}
    saved_env = {k: os.environ.get(k) for k in env}
    loggers = {name: logging.getLogger(name) for name in _LIBRARIES}
    saved_levels = {name: logger.level for name, logger in loggers.items()}
    os.environ.update(env)  # for libraries imported during the command: they read these when they first log
    for logger in loggers.values():  # for those imported already
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():  # restores the filters and showwarning on the way out
            warnings.simplefilter("ignore")
            warnings.simplefilter("default", OwlWarning)
            warnings.showwarning = _show_owl_warning
            yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(saved_levels[name])
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_command(func, args) -> int:
    """Run `func(args)` as a command: its exit status, with user mistakes as one line each."""
    try:
        with owl_lines_only():
            return int(func(args) or 0)
    except OwlError as exc:
        print(f"owl: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("owl: interrupted; nothing was left at the output path", file=sys.stderr)
        return 130


def command_group(subparsers, name: str, help: str, description: str, commands: list[str]):
    """`owl NAME COMMAND ...`: the group's parser and the subparsers its commands are added to (one is required)."""
    group = subparsers.add_parser(name, help=help, description=description)
    sub = group.add_subparsers(dest=f"{name}_command", metavar="{" + ",".join(commands) + "}")
    sub.required = True
    return group, sub
