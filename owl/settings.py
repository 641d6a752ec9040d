"""The settings of a rollout, each checked in one place: `RolloutSettings`, its rules, and its command-line flags.

Every way into the loop (the Python API, the CLI before it loads a model, a batch row, a saved session) builds a
`RolloutSettings`, so one value is accepted or refused the same way, with the same one-line message, everywhere.
Each field also carries its flag, metavar and help (`field(metadata=...)`), so the commands that take a setting
(`owl generate`, `branch`, `extend`, `eval shapes`) add its flag with `add_setting_flags` instead of by hand, and
every setting has one default, shown in --help: the field's own, `DEFAULT_SECONDS` for the duration, or None for
the five the model decides (fps, height, width, num_inference_steps, guidance_scale), resolved by the pipeline.
"""

from __future__ import annotations

import argparse
import math
import typing
from dataclasses import MISSING, dataclass, field, fields
from typing import Callable

from owl.errors import OwlError
from owl.memory import BOUND_RULE, valid_bound
from owl.memory import MEMORIES as MEMORY_CLASSES


MAX_SECONDS = 3600  # the longest video one rollout makes
MEMORIES = tuple(MEMORY_CLASSES)  # the names of owl/memory.py
DEFAULT_SECONDS = 8.0  # the duration when none is given: the API, `owl generate` and a batch row alike


def _flag(flag: str, metavar: str | None, help: str, default=MISSING, caller_default=None):
    """A RolloutSettings field with its command-line flag. `default`: the field's default; `caller_default`: for a
    field that stays required here (seconds, which precedes the model's five), the default of a caller that leaves
    it out. The help gets "(default X)" added unless the default is None (the help says what None means) or False."""
    return field(default=default, metadata={"flag": flag, "metavar": metavar, "help": help,
                                            "caller_default": caller_default})


@dataclass
class RolloutSettings:
    """The settings of one rollout. Every value is checked here, whoever builds it (the API, the CLI before it
    loads a model, a batch row, a saved session): one place, one message per mistake. The height and width are
    also checked against the model by `Renderer.check_size`. Keep the fields' order: it is the positional
    order of `RolloutSettings(...)`."""

    seconds: float = _flag("--seconds", "S", f"duration of the video in seconds, at most {MAX_SECONDS}",
                           caller_default=DEFAULT_SECONDS)
    fps: float = _flag("--fps", "FPS", "frames per second (default: the model's)")
    height: int = _flag("--height", "H", "frame height (default: the model's)")
    width: int = _flag("--width", "W", "frame width (default: the model's)")
    num_inference_steps: int = _flag("--steps", "N", "denoising steps per clip (default: the model's)")
    guidance_scale: float = _flag("--guidance", "X", "classifier-free guidance scale, 1 (none) to 100 (default: "
                                  "the model's)")
    memory: str = _flag("--memory", None, "full: the world state; last: the last clip + caption baseline", "full")
    seed: int = _flag("--seed", "N", "seed of the rollout", 0)
    do_sample: bool = _flag("--sample", None, "sample the predicted dynamics texts (default: greedy)", False)
    temperature: float = _flag("--temperature", "T", "temperature of --sample", 1.0)
    max_observations: int | None = _flag("--max-observations", "K", "bound the world model's history: keep the key "
                                         "frames of the last K clips, 0 for all (default: the clips that fit in a "
                                         "quarter of the LMM's context)", None)
    max_steps: int | None = _flag("--max-steps", "M", "bound the world model's history: keep states and dynamics "
                                  "of the last M steps, 0 for all (default: as --max-observations)", None)

    def __post_init__(self) -> None:
        for f in fields(self):
            check_setting(f.name, getattr(self, f.name))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# name -> (is the value accepted, what is accepted)
_RULES: dict[str, tuple[Callable[[object], bool], str]] = {
    "seconds": (lambda v: _number(v) and 0 < v <= MAX_SECONDS, f"a number > 0 and <= {MAX_SECONDS}"),
    "fps": (lambda v: _number(v) and 1 <= v <= 120, "a number from 1 to 120"),
    "height": (lambda v: _integer(v) and v > 0, "a positive integer"),
    "width": (lambda v: _integer(v) and v > 0, "a positive integer"),
    "num_inference_steps": (lambda v: _integer(v) and 1 <= v <= 1000, "an integer from 1 to 1000"),
    "guidance_scale": (lambda v: _number(v) and 1 <= v <= 100, "a finite number from 1 (no guidance) to 100"),
    "memory": (lambda v: v in MEMORIES, " or ".join(map(repr, MEMORIES))),
    "seed": (lambda v: _integer(v) and 0 <= v < 2 ** 63, "an integer from 0 to 2**63 - 1"),
    "do_sample": (lambda v: isinstance(v, bool), "true or false"),
    "temperature": (lambda v: _number(v) and 0 < v <= 100, "a finite number > 0 and <= 100"),
    "max_observations": (valid_bound, BOUND_RULE),
    "max_steps": (valid_bound, BOUND_RULE),
}


def check_setting(name: str, value) -> None:
    """Raise OwlError unless `value` is an accepted value of RolloutSettings field `name`."""
    accepted, what = _RULES[name]
    try:
        ok = bool(accepted(value))
    except TypeError:  # a value of a type the rule cannot compare (a list where a number belongs)
        ok = False
    if not ok:
        raise OwlError(f"{name} must be {what}, got {value!r}")


# --- the command line: flags made from the fields above ----------------------------------------------------------

_FIELDS = {f.name: f for f in fields(RolloutSettings)}
_TYPES = typing.get_type_hints(RolloutSettings)  # "int | None" -> int | None


def setting_default(name: str):
    """What a caller that leaves setting `name` out gets: the field's default, DEFAULT_SECONDS for seconds, or None
    for the five the model decides (the pipeline fills them from the model's config)."""
    f = _FIELDS[name]
    return f.metadata["caller_default"] if f.default is MISSING else f.default


def setting_flag(name: str) -> str:
    """The command-line flag of setting `name`: "--steps" for num_inference_steps."""
    return _FIELDS[name].metadata["flag"]


def _dest(name: str) -> str:
    return setting_flag(name)[2:].replace("-", "_")  # argparse's attribute: args.steps, args.max_observations


def add_setting_flags(parser, names, help: dict[str, str] | None = None, required=()) -> None:
    """Add the flags of the named settings to an argparse parser, in a "rollout settings" group.

    Each flag parses its text as the field's type (memory: one of MEMORIES; do_sample: a switch) and is None when
    left out, so a command can tell what was given; `check_setting_flags` checks the values and `setting_values`
    fills in the defaults. `help` replaces a setting's help where a command means something else by it (branch's
    --seconds is a new total, its default the session's); `required` names settings the command needs."""
    group = parser.add_argument_group("rollout settings")
    for name in names:
        meta = _FIELDS[name].metadata
        kind = (typing.get_args(_TYPES[name]) or (_TYPES[name],))[0]  # int | None -> int
        text = (help or {}).get(name)
        if text is None:
            default = setting_default(name)
            shown = f"{default:g}" if isinstance(default, float) else default
            text = meta["help"] if default is None or default is False else f"{meta['help']} (default {shown})"
        options = dict(dest=_dest(name), default=None, help=text, required=name in required)
        if kind is bool:
            group.add_argument(meta["flag"], action="store_true", **options)
            continue
        if name == "memory":
            options["choices"] = MEMORIES
        group.add_argument(meta["flag"], type=kind, metavar=meta["metavar"], **options)


def given_setting_flags(args: argparse.Namespace, names) -> list[str]:
    """The flags of the named settings that were given on the command line, e.g. ["--steps", "--memory"]."""
    return [setting_flag(n) for n in names if getattr(args, _dest(n), None) is not None]


def check_setting_flags(args: argparse.Namespace) -> None:
    """Check every setting given on the command line with `check_setting`, before a model loads (seconds with a 3B
    model): OwlError "--flag: <the API's message>". What depends on the model (a size multiple) is checked once it
    has loaded."""
    for name in _FIELDS:
        value = getattr(args, _dest(name), None)
        if value is not None:
            try:
                check_setting(name, value)
            except OwlError as exc:
                raise OwlError(f"{setting_flag(name)}: {exc}") from None


def setting_values(args: argparse.Namespace, names) -> dict:
    """{setting: value} of the named settings from parsed flags: the value given, else `setting_default` (None for
    the model's own)."""
    values = {n: getattr(args, _dest(n), None) for n in names}
    return {n: setting_default(n) if v is None else v for n, v in values.items()}
