"""Timelines: scripted dynamics as time segments, mapped onto the clip transitions of a rollout.

Owl-1's loop lets the user give the dynamics D_t and the world model predict the rest (DESIGN §1, "scripted
dynamics"). A script is a YAML or JSON file (YAML is a superset of JSON) holding one of:

    [texts] or {dynamics: [texts]}          d_0, d_1, ...: one text per clip transition, in order
    [segments] or {segments: [segments]}    a timeline, in seconds of the output video:

    - {start: 0, end: 4, dynamics: the ball rolls left}
    - {duration: 4, dynamics: the ball stops}            # no start: begins where the previous segment ended
    - {start: 12, end: 16, dynamics: a square enters}    # 8-12 s is a gap: the world model predicts it

Mapping: clip t > 0 is driven by d_{t-1}, the text of the segment covering the clip's start time ([start, end));
a clip that starts in a gap gets predicted dynamics (None). Clip 0 is driven by the prompt, so it takes no
segment. Errors are one line (`OwlError`): unknown keys, negative or reversed times, overlapping segments, and a
segment that no clip starts in (it would otherwise be dropped without a word).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from owl.errors import OwlError
from owl.files import read_text

SEGMENT_KEYS = ("start", "end", "duration", "dynamics")
SCRIPT_KEYS = ("dynamics", "segments")
_EPS = 1e-9  # clip start times are frame counts over fps: forgive float noise at segment edges


@dataclass(frozen=True)
class Segment:
    start: float  # seconds
    end: float  # seconds, exclusive
    dynamics: str

    def covers(self, time: float) -> bool:
        return self.start - _EPS <= time < self.end - _EPS


@dataclass(frozen=True)
class Timeline:
    """Segments in time order, without overlaps; gaps between them are predicted."""

    segments: tuple[Segment, ...]

    @classmethod
    def from_list(cls, items: list, source: str = "timeline") -> "Timeline":
        """Validate a list of segment mappings (see the module docstring)."""
        if not isinstance(items, list) or not items:
            raise OwlError(f"{source}: a timeline must be a non-empty list of segments")
        segments: list[Segment] = []
        for n, item in enumerate(items, 1):
            where = f"{source}: segment {n}"
            if not isinstance(item, dict):
                raise OwlError(f"{where} must be a mapping like {{start: 0, end: 4, dynamics: ...}}, got {item!r}")
            unknown = sorted(set(map(str, item)) - set(SEGMENT_KEYS))
            if unknown:
                raise OwlError(f"{where} has unknown key(s) {unknown}; accepted: {list(SEGMENT_KEYS)}")
            text = item.get("dynamics")
            if not isinstance(text, str) or not text.strip():
                raise OwlError(f"{where} needs a non-empty dynamics text")
            start = _seconds(item["start"], f"{where} start") if "start" in item else (segments[-1].end if segments else 0.0)
            if ("end" in item) == ("duration" in item):
                raise OwlError(f"{where} needs exactly one of end or duration")
            if "end" in item:
                end = _seconds(item["end"], f"{where} end")
                if end <= start:
                    raise OwlError(f"{where} ends at {end:g} s, not after its start at {start:g} s")
            else:
                duration = _seconds(item["duration"], f"{where} duration")
                if duration <= 0:
                    raise OwlError(f"{where} duration must be > 0, got {duration:g}")
                end = start + duration
            if segments and start < segments[-1].end - _EPS:
                prev = segments[-1]
                raise OwlError(f"{where} ({start:g}-{end:g} s) overlaps segment {n - 1} ({prev.start:g}-{prev.end:g} s); "
                               "segments must be in time order without overlaps")
            segments.append(Segment(start, end, text.strip()))
        return cls(tuple(segments))

    def dynamics_for(self, clip_starts: list[float]) -> list[str | None]:
        """d_0 .. d_{n-2} for clips starting at `clip_starts` (seconds, clip 0 first): entry t - 1 is the text of
        the segment covering clip t's start, None in a gap. Every segment must cover at least one clip t > 0."""
        starts = clip_starts[1:]
        dynamics: list[str | None] = [None] * len(starts)
        for n, seg in enumerate(self.segments, 1):
            hits = [i for i, time in enumerate(starts) if seg.covers(time)]
            if not hits:
                shown = ", ".join(f"{s:g}" for s in starts[:6]) + (", ..." if len(starts) > 6 else "")
                where = "no clip after the first starts in it" if starts else "the video has a single clip"
                raise OwlError(f"timeline segment {n} ({seg.start:g}-{seg.end:g} s) drives no clip: {where} "
                               f"(clips 1.. start at [{shown}] s; clip 0 is driven by the prompt)")
            for i in hits:
                dynamics[i] = seg.dynamics
        return dynamics


def _seconds(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise OwlError(f"{what} must be a finite number of seconds, got {value!r}")
    if value < 0:
        raise OwlError(f"{what} must not be negative, got {value:g}")
    return float(value)


def parse_script(data, source: str = "script") -> list[str] | Timeline:
    """A loaded script (see the module docstring) -> a list of dynamics texts or a `Timeline`."""
    if isinstance(data, dict):
        unknown = sorted(set(map(str, data)) - set(SCRIPT_KEYS))
        if unknown:
            raise OwlError(f"{source} has unknown key(s) {unknown}; accepted: {list(SCRIPT_KEYS)}")
        if len(data) != 1:
            raise OwlError(f"{source} must hold one of {list(SCRIPT_KEYS)}, not both")
        if "segments" in data:
            return Timeline.from_list(data["segments"], source)
        data = data["dynamics"]
    elif isinstance(data, list) and data and all(isinstance(d, dict) for d in data):
        return Timeline.from_list(data, source)
    if not isinstance(data, list) or not data or not all(isinstance(d, str) and d.strip() for d in data):
        raise OwlError(f"{source} must hold a non-empty list of dynamics texts (or {{dynamics: [...]}}) "
                       "or of segments ({start, end, dynamics} / {duration, dynamics})")
    return [d.strip() for d in data]


def read_script(path: str | Path) -> list[str] | Timeline:
    """Read a JSON or YAML script file: a list of dynamics texts or a `Timeline`."""
    import yaml

    try:
        data = yaml.safe_load(read_text(Path(path), f"script not found: {str(path)!r}"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise OwlError(f"script {str(path)!r} is neither valid JSON nor YAML: {str(exc).splitlines()[0]}") from exc
    return parse_script(data, f"script {str(path)!r}")
