"""Shapes World metrics, measured from the pixels of a video against its ground truth.

Pure functions of (T, H, W, 3) uint8 frames and a `ShapesTruth` (the segment captions, their times, the
structured events and per-frame tracks that owl/data/shapes.py writes); no model is involved, so the ground-truth
video itself is the sanity baseline (it scores 100% on re-entry and following). Frames are segmented against the
palette (owl/eval/segment.py). Windows: a segment [start, end) covers frames round(start * fps) to
round(end * fps); its start / end window is its first / last quarter second (2 frames at 8 fps); an object is
"in" a window when its colour is detected in at least half the window's frames, with its mean centroid, mean
area and majority shape (over the frames where it is whole in view, `Detection.clear`: not cut by the frame
edge, not within 2 px of another object that may hide part of it). Colours are unique among the objects of a
Shapes World video at any time, so within a window a colour names one object. S is the frame side.

Re-entry identity (`reentry`), per exit event of the ground truth followed by the same object's re-entry:
    departed = the object in the exit segment's start window that is absent from its end window (the one that
               left); if none left, the object there most like the ground-truth one.
    returned = the object in the re-entry segment's end window whose colour was absent from the window just
               before that segment (newly appeared when told to come back); None if nothing new appeared.
    correct  = departed and returned have the same colour and the same shape. Shapes come from frames where the
               object is whole in view: the window, else the nearest such frames in the clip before the exit and
               the exit segment (departed) or the re-entry segment and the clip after (returned); an object never
               whole there has shape None, and then only colours are compared. Among several candidates: those
               with the ground truth's shape and colour, then its shape, then its colour; ties to the one nearest
               the ground-truth position. `truth_accuracy` asks returned == the ground-truth identity it left
               with (what full memory should bring back).

Dynamics following (`following`), per segment, the caption parsed by owl/eval/captions.py. The actor is found in
the start window by its shape (and its colour when named, else the colour the captions gave it so far), then
followed by colour. Shapes are judged only for objects whole in view.
    move d    its centroid moves >= 0.1 S along d, more than across d (start window -> end window)
    stop      it moves <= 0.04 S from the start of the segment's second half to its end window
    enter, reenter   the named shape (and colour) is absent at the start (an object cut by the frame edge
              does not count: it is still coming in), newly present at the end, and its first sighting touches
              the named frame edge (within 0.03 S)
    exit      present at the start, absent at the end, its last sighting touches the named edge
    recolour c  at the end it has colour c and the same shape, within 0.1 S of where it was, its old colour gone
    grow / shrink   its area at the end / at the start >= 1.25 / <= 0.8
    empty     at most 10% of the segment's frames hold an object;  still: every object moves <= 0.04 S
A segment is not scored (`skipped`) when its text is outside the grammar, when the video ends before it does,
or when the ground truth itself hides its actor behind another object (fewer than MIN_AREA pixels in view) in a
window the check must see it in: no video could show that caption there.

Drift (`drift`): per clip k, the window of its last second vs the reference, the video's first second:
    background  mean over R, G, B of the 1-D Wasserstein distance (grey levels) between the background pixels'
                value distributions (background: not an object pixel nor 4-adjacent to one)
    object      mean over the colours present of the RGB distance between the colour's mean (interior pixels)
                in the window and in the first second it appears
    reported at the first clip's end (4 s) and the video's end (24 s); relative = (end - first) / max(first, 1).

Frame quality (`quality`):
    palette_fraction  pixels within the tolerance of BACKGROUND or a PALETTE colour, over all pixels
    flicker           mean |f_t - f_{t-1}| (grey levels) over pixels that are background in both frames
    dynamic_degree    mean speed (px/s) of object centroids, matched by colour between consecutive frames
    frame_difference  mean |f_t - f_{t-1}| over all pixels (grey levels)
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

from owl.data.shapes import DIRECTIONS
from owl.errors import OwlError
from owl.eval.captions import KINDS, Caption, parse_caption
from owl.eval.segment import COLOURS, MIN_AREA, TOLERANCE, Detection, Segmentation, check_frames, segment_video

MOVE_MIN = 0.1  # of the frame side: the least displacement that counts as a move
STILL_MAX = 0.04  # of the frame side: the most that counts as standing still
NEAR_MAX = 0.1  # of the frame side: a recoloured object stays where it was
EDGE_MAX = 0.03  # of the frame side: a box this close to an edge touches it
SIZE_RATIO = 1.25  # grow: area ratio at least this; shrink: at most its inverse
EMPTY_MAX = 0.1  # empty: at most this fraction of the segment's frames hold an object
DRIFT_FLOOR = 1.0  # grey levels: the least drift the relative drift divides by


@dataclass
class ShapesTruth:
    """The ground truth of one Shapes World video (see owl/data/shapes.py), as the metrics need it."""

    sentences: list[str]  # per segment: its caption, the scripted dynamics
    timestamps: list[list[float]]  # per segment: [start, end] seconds
    events: list[dict]  # per segment: {"kind", "object", ...}, the caption's structured form
    tracks: list[list[dict]]  # per frame: [{"id", "colour", "shape", "box", "pixels"}]
    fps: float
    clip_seconds: float = 4.0
    seconds: float | None = None  # default: the last segment's end

    def __post_init__(self):
        if not (len(self.sentences) == len(self.timestamps) == len(self.events)):
            raise OwlError(f"ground truth has {len(self.sentences)} sentences, {len(self.timestamps)} timestamps and "
                           f"{len(self.events)} events; they must be one per segment")
        if not self.fps > 0 or not self.clip_seconds > 0:
            raise OwlError(f"fps and clip_seconds must be positive, got {self.fps} and {self.clip_seconds}")
        if self.seconds is None:
            self.seconds = float(self.timestamps[-1][1]) if self.timestamps else len(self.tracks) / self.fps

    @classmethod
    def from_video(cls, video) -> "ShapesTruth":
        """From an in-memory `owl.data.shapes.ShapesVideo`."""
        return cls(list(video.sentences), [list(t) for t in video.timestamps], list(video.events), video.tracks,
                   video.fps, video.clip_seconds, video.seconds)


# ----------------------------------------------------------------------------------------------------------------
# Windows


@dataclass(frozen=True)
class Seen:
    """One colour's object over a window of frames."""

    colour: str
    shape: str  # majority over the window's clear detections (whole in view), else over all
    centroid: tuple[float, float]  # mean
    area: float  # mean
    inside: bool  # clear of the frame edges in every frame where it is seen
    clear: bool  # whole in view in at least one frame: `shape` can be trusted


def _window(detections: list[list[Detection]], f0: int, f1: int) -> dict[str, Seen]:
    """The objects of frames [f0, f1), by colour (see the module docstring)."""
    f0, f1 = max(0, f0), min(len(detections), f1)
    per_colour: dict[str, list[Detection]] = {}
    for f in range(f0, f1):
        seen_here = set()
        for d in detections[f]:  # largest first: one detection per colour and frame
            if d.colour not in seen_here:
                seen_here.add(d.colour)
                per_colour.setdefault(d.colour, []).append(d)
    need = max(1, math.ceil((f1 - f0) / 2))
    out = {}
    for colour, dets in per_colour.items():
        if len(dets) >= need:
            clear = [d for d in dets if d.clear]
            shape = Counter(d.shape for d in clear or dets).most_common(1)[0][0]
            out[colour] = Seen(colour, shape, (float(np.mean([d.centroid[0] for d in dets])),
                                               float(np.mean([d.centroid[1] for d in dets]))),
                               float(np.mean([d.area for d in dets])), not any(d.touches_border for d in dets),
                               bool(clear))
    return out


def _pick(candidates: dict[str, Seen], shape: str | None, colour: str | None,
          near: tuple[float, float] | None = None) -> Seen | None:
    """The candidate with the given shape and colour; else that shape; else that colour; else any. Ties go to
    the one nearest `near`, else the largest."""
    pool = list(candidates.values())
    for keep in (lambda s: s.shape == shape and s.colour == colour, lambda s: s.shape == shape,
                 lambda s: s.colour == colour, lambda s: True):
        hits = [s for s in pool if keep(s)]
        if hits:
            if near is not None:
                return min(hits, key=lambda s: math.dist(s.centroid, near))
            return max(hits, key=lambda s: s.area)
    return None


def _frames(seconds: float, fps: float) -> int:
    return int(round(seconds * fps))


def _window_frames(fps: float) -> int:
    return max(1, int(round(fps / 4)))


def _sighting(detections: list[list[Detection]], colour: str, frames) -> Detection | None:
    """The largest detection of `colour` in the first of `frames` that has one."""
    for f in frames:
        for d in detections[f]:
            if d.colour == colour:
                return d
    return None


def _clear_shape(detections: list[list[Detection]], colour: str, around: int, lo: int, hi: int,
                 count: int) -> str | None:
    """The majority shape of `colour` over the `count` frames nearest to frame `around` (within [lo, hi)) in which
    it is whole in view; None if it never is."""
    lo, hi = max(0, lo), min(len(detections), hi)
    shapes = []
    for f in sorted(range(lo, hi), key=lambda f: abs(f - around)):
        hit = next((d for d in detections[f] if d.colour == colour), None)
        if hit is not None and hit.clear:
            shapes.append(hit.shape)
            if len(shapes) == count:
                break
    return Counter(shapes).most_common(1)[0][0] if shapes else None


def _touches(d: Detection, side: str | None, height: int, width: int) -> bool:
    if side is None:
        return True
    edge = max(1.0, EDGE_MAX * min(height, width))
    x0, y0, x1, y1 = d.box
    return {"left": x0 <= edge, "right": x1 >= width - edge, "top": y0 <= edge, "bottom": y1 >= height - edge}[side]


# ----------------------------------------------------------------------------------------------------------------
# Re-entry identity


def _truth_object(truth: ShapesTruth, frame: int, obj: int) -> dict | None:
    if 0 <= frame < len(truth.tracks):
        for entry in truth.tracks[frame]:
            if entry["id"] == obj:
                return entry
    return None


def _centre(entry: dict | None) -> tuple[float, float] | None:
    if entry is None:
        return None
    x0, y0, x1, y1 = entry["box"]
    return (x0 + x1) / 2, (y0 + y1) / 2


def _same(a: dict, b: dict) -> bool:
    """Same colour, and same shape unless one of them was never seen whole (shape None)."""
    return a["colour"] == b["colour"] and (a["shape"] is None or b["shape"] is None or a["shape"] == b["shape"])


def reentry(detections: list[list[Detection]], truth: ShapesTruth) -> dict:
    """Re-entry identity over every exit followed by a return (see the module docstring)."""
    n = _window_frames(truth.fps)
    cases = []
    for k, event in enumerate(truth.events):
        if event.get("kind") != "exit":
            continue
        back = next((j for j in range(k + 1, len(truth.events)) if truth.events[j].get("kind") == "reenter"
                     and truth.events[j].get("object") == event.get("object")), None)
        if back is None:
            continue
        fa, fb = _frames(truth.timestamps[k][0], truth.fps), _frames(truth.timestamps[k][1], truth.fps)
        fc = _frames(truth.timestamps[back][0], truth.fps)
        fd = min(len(detections), _frames(truth.timestamps[back][1], truth.fps))
        caption = parse_caption(truth.sentences[k]) or Caption("exit")
        left_truth = _truth_object(truth, fa, event["object"])
        shape = left_truth["shape"] if left_truth else caption.shape
        colour = left_truth["colour"] if left_truth else caption.colour
        case = {"object": event["object"], "left_at": truth.timestamps[k][0], "back_at": truth.timestamps[back][0],
                "truth": {"colour": colour, "shape": shape}, "departed": None, "returned": None,
                "correct": False, "matches_truth": False}
        if len(detections) < _frames(truth.timestamps[back][1], truth.fps) - 1:  # one frame of slack, as below
            case.update(correct=None, matches_truth=None, note="the video ends before the return")
            cases.append(case)
            continue
        at_exit, gone = _window(detections, fa, fa + n), _window(detections, fb - n, fb)
        departed = _pick({c: s for c, s in at_exit.items() if c not in gone}, shape, colour, _centre(left_truth)) \
            or _pick(at_exit, shape, colour, _centre(left_truth))
        before, after = _window(detections, fc - n, fc), _window(detections, fd - n, fd)
        returned = _pick({c: s for c, s in after.items() if c not in before}, shape, colour,
                         _centre(_truth_object(truth, fd - 1, event["object"])))
        # An object partly hidden by another all through a window: its shape from the nearest frames where it is
        # whole (the segment before the exit, and the rest of it; the return segment)
        clip = _frames(truth.clip_seconds, truth.fps)
        if departed is not None:
            shape_seen = departed.shape if departed.clear else \
                _clear_shape(detections, departed.colour, fa, fa - clip, fb, n)
            case["departed"] = {"colour": departed.colour, "shape": shape_seen}
        if returned is not None:
            shape_seen = returned.shape if returned.clear else \
                _clear_shape(detections, returned.colour, fd - 1, fc, fd + clip, n)
            case["returned"] = {"colour": returned.colour, "shape": shape_seen}
        if departed is not None and returned is not None:
            case["correct"] = _same(case["departed"], case["returned"])
            case["matches_truth"] = _same(case["returned"], case["truth"])
        cases.append(case)
    scored = [c for c in cases if c["correct"] is not None]
    total, correct = len(scored), sum(c["correct"] for c in scored)
    return {"correct": correct, "total": total, "accuracy": correct / total if total else None,
            "truth_accuracy": sum(c["matches_truth"] for c in scored) / total if total else None,
            "skipped": len(cases) - total, "cases": cases}


# ----------------------------------------------------------------------------------------------------------------
# Dynamics following


def _check_segment(caption: Caption, detections: list[list[Detection]], f0: int, f1: int, n: int,
                   expected_colour: str | None, height: int, width: int) -> tuple[bool, str]:
    """Whether frames [f0, f1) show `caption`; with a short reason."""
    side = min(height, width)
    start, end = _window(detections, f0, f0 + n), _window(detections, f1 - n, f1)
    kind = caption.kind
    if kind == "empty":
        busy = sum(1 for f in range(f0, f1) if detections[f]) / (f1 - f0)
        return busy <= EMPTY_MAX, f"{busy:.0%} of frames hold an object"
    if kind == "still":
        moved = [math.dist(s.centroid, end[c].centroid) for c, s in start.items() if c in end]
        worst = max(moved, default=0.0)
        return worst <= STILL_MAX * side, f"largest displacement {worst:.1f} px"
    colour = caption.colour or expected_colour
    if kind in ("enter", "reenter"):
        start = {c: s for c, s in start.items() if s.inside}  # what is still coming in does not count yet
        if any(s.clear and s.shape == caption.shape and (caption.colour is None or s.colour == caption.colour)
               for s in start.values()):
            return False, f"a {caption.shape} is already there at the start"
        new = {c: s for c, s in end.items() if c not in start}
        actor = _pick(new, caption.shape, colour)
        wrong_shape = actor is not None and actor.clear and actor.shape != caption.shape
        if actor is None or wrong_shape or caption.colour not in (None, actor.colour):
            return False, "the named object does not appear"
        first = _sighting(detections, actor.colour, range(f0, f1))
        if not _touches(first, caption.side, height, width):
            return False, f"it does not come in from the {caption.side}"
        return True, f"a {actor.colour} {actor.shape} appears"
    actor = _pick(start, caption.shape, colour)
    if actor is None:
        return False, f"no {caption.shape} at the start"
    if kind == "stop":
        mid = (f0 + f1) // 2
        settled = _window(detections, mid, mid + n)
        a, b = settled.get(actor.colour), end.get(actor.colour)
        if a is None or b is None:
            return False, "the object is lost"
        moved = math.dist(a.centroid, b.centroid)
        return moved <= STILL_MAX * side, f"moves {moved:.1f} px in the second half"
    if kind == "exit":
        if actor.colour in end:
            return False, "it is still there at the end"
        last = _sighting(detections, actor.colour, range(f1 - 1, f0 - 1, -1))
        if not _touches(last, caption.side, height, width):
            return False, f"it does not leave to the {caption.side}"
        return True, "it leaves"
    if kind == "recolour":
        after = end.get(caption.new_colour)
        if actor.colour == caption.new_colour or after is None or actor.colour in end:
            return False, f"no {actor.colour} -> {caption.new_colour} change"
        moved = math.dist(actor.centroid, after.centroid)
        same_shape = after.shape == actor.shape or not (after.clear and actor.clear)
        return moved <= NEAR_MAX * side and same_shape, f"{actor.colour} -> {after.colour}"
    after = end.get(actor.colour)
    if after is None:
        return False, "the object is lost"
    if kind == "move":
        ux, uy = DIRECTIONS[caption.direction]
        vx, vy = after.centroid[0] - actor.centroid[0], after.centroid[1] - actor.centroid[1]
        along, across = vx * ux + vy * uy, abs(vx * uy - vy * ux)
        return along >= MOVE_MIN * side and along > across, f"moves {along:.1f} px {caption.direction}, " \
                                                            f"{across:.1f} px across"
    ratio = after.area / max(actor.area, 1e-9)
    ok = ratio >= SIZE_RATIO if kind == "grow" else ratio <= 1 / SIZE_RATIO
    return ok, f"area x{ratio:.2f}"


_SEEN_AT = {  # which windows must show the actor: "start" (first), "settled" (second half) and "end" (last)
    "move": ("start", "end"), "recolour": ("start", "end"), "grow": ("start", "end"), "shrink": ("start", "end"),
    "stop": ("start", "settled", "end"), "exit": ("start",), "enter": ("end",), "reenter": ("end",),
}


def _hidden_in_truth(truth: ShapesTruth, k: int, kind: str, f0: int, f1: int, n: int) -> bool:
    """Whether the ground truth itself hides segment k's actor (fewer than MIN_AREA pixels left in view) in a
    frame of a window the check must see it in: no video could show the caption there."""
    obj = truth.events[k].get("object")
    if obj is None or kind not in _SEEN_AT:
        return False
    mid = (f0 + f1) // 2
    spans = {"start": range(f0, f0 + n), "settled": range(mid, mid + n), "end": range(f1 - n, f1)}
    for name in _SEEN_AT[kind]:
        for f in spans[name]:
            entry = _truth_object(truth, f, obj)
            if f < len(truth.tracks) and (entry is None or entry.get("pixels", MIN_AREA) < MIN_AREA):
                return True
    return False


def following(detections: list[list[Detection]], truth: ShapesTruth, height: int, width: int) -> dict:
    """Dynamics following over every segment (see the module docstring)."""
    n = _window_frames(truth.fps)
    colours: dict[str, str] = {}  # shape -> its colour, as the captions tell it so far
    segments = []
    for k, (text, (t0, t1)) in enumerate(zip(truth.sentences, truth.timestamps)):
        caption = parse_caption(text)
        f0, f1 = _frames(t0, truth.fps), _frames(t1, truth.fps)
        row = {"index": k, "start": t0, "end": t1, "text": text, "kind": caption.kind if caption else None}
        if caption is None:
            row.update(correct=None, reason="outside the caption grammar" if text.strip() else "no caption")
        elif len(detections) < f1 - 1 or f1 - f0 < 2 * n:  # one frame of slack for a decoder's rounding
            row.update(correct=None, reason="the video ends before this segment does")
        elif _hidden_in_truth(truth, k, caption.kind, f0, f1, n):
            row.update(correct=None, reason="the actor is hidden behind another object in the ground truth")
        else:
            f1 = min(f1, len(detections))
            ok, reason = _check_segment(caption, detections, f0, f1, n, colours.get(caption.shape), height, width)
            row.update(correct=bool(ok), reason=reason)
        if caption is not None and caption.shape is not None:
            if caption.colour:
                colours[caption.shape] = caption.colour
            if caption.new_colour:
                colours[caption.shape] = caption.new_colour
        segments.append(row)
    scored = [s for s in segments if s["correct"] is not None]
    by_kind = {}
    for kind in KINDS:
        rows = [s for s in scored if s["kind"] == kind]
        if rows:
            by_kind[kind] = {"correct": sum(s["correct"] for s in rows), "total": len(rows)}
    correct = sum(s["correct"] for s in scored)
    return {"correct": correct, "total": len(scored), "accuracy": correct / len(scored) if scored else None,
            "skipped": len(segments) - len(scored), "by_kind": by_kind, "segments": segments}


# ----------------------------------------------------------------------------------------------------------------
# Drift and frame quality


def _background(seg: Segmentation) -> np.ndarray:
    """(T, H, W) bool: neither an object pixel nor 4-adjacent to one."""
    near = seg.objects.copy()
    near[:, 1:] |= seg.objects[:, :-1]
    near[:, :-1] |= seg.objects[:, 1:]
    near[:, :, 1:] |= seg.objects[:, :, :-1]
    near[:, :, :-1] |= seg.objects[:, :, 1:]
    return ~near


def _wasserstein(a_nc: np.ndarray, b_nc: np.ndarray) -> float | None:
    """Mean over channels of the 1-D Wasserstein-1 distance between two sets of uint8 values (N, 3), grey levels."""
    if not len(a_nc) or not len(b_nc):
        return None
    total = 0.0
    for c in range(3):
        cdf_a = np.cumsum(np.bincount(a_nc[:, c], minlength=256)) / len(a_nc)
        cdf_b = np.cumsum(np.bincount(b_nc[:, c], minlength=256)) / len(b_nc)
        total += float(np.abs(cdf_a - cdf_b).sum())
    return total / 3


def _colour_sums(frames_thwc: np.ndarray, seg: Segmentation) -> tuple[np.ndarray, np.ndarray]:
    """Per frame and colour, over the object's interior pixels: (RGB sums (T, C, 3), pixel counts (T, C))."""
    labels = np.where(seg.objects, seg.labels, 0)
    inner = labels > 0
    inner[:, 1:] &= labels[:, 1:] == labels[:, :-1]
    inner[:, :-1] &= labels[:, :-1] == labels[:, 1:]
    inner[:, :, 1:] &= labels[:, :, 1:] == labels[:, :, :-1]
    inner[:, :, :-1] &= labels[:, :, :-1] == labels[:, :, 1:]
    inner[:, [0, -1]] = False
    inner[:, :, [0, -1]] = False
    t, _, _ = labels.shape
    k = len(COLOURS)
    tt, yy, xx = np.nonzero(inner)
    index = tt * k + labels[tt, yy, xx].astype(np.int64) - 1
    counts = np.bincount(index, minlength=t * k).reshape(t, k)
    rgb = frames_thwc[tt, yy, xx].astype(np.float64)
    sums = np.stack([np.bincount(index, rgb[:, c], minlength=t * k) for c in range(3)], -1).reshape(t, k, 3)
    return sums, counts


def drift(frames_thwc: np.ndarray, seg: Segmentation, truth: ShapesTruth) -> dict:
    """The drift curve (see the module docstring)."""
    fps, total = truth.fps, len(frames_thwc)
    w = max(1, int(round(fps)))
    background = _background(seg)
    sums, counts = _colour_sums(frames_thwc, seg)
    reference_bg = frames_thwc[:w][background[:w]]
    reference_colour = {}
    for k in range(len(COLOURS)):  # each colour against the first second in which it appears
        present = np.nonzero(counts[:, k])[0]
        if len(present):
            first = present[:w]
            reference_colour[k] = sums[first, k].sum(0) / counts[first, k].sum()
    curve = []
    clips = max(1, math.ceil(truth.seconds / truth.clip_seconds - 1e-9))
    for clip in range(clips):
        t_end = min((clip + 1) * truth.clip_seconds, truth.seconds)
        f1 = _frames(t_end, fps)
        if f1 > total + 1:  # the video ends before this clip does (one frame of slack for a decoder's rounding)
            break
        f1 = min(f1, total)
        f0 = max(0, f1 - w)
        bg = _wasserstein(frames_thwc[f0:f1][background[f0:f1]], reference_bg)
        errors = []
        for k, ref in reference_colour.items():
            n = counts[f0:f1, k].sum()
            if n:
                errors.append(float(np.linalg.norm(sums[f0:f1, k].sum(0) / n - ref)))
        curve.append({"t": round(t_end, 3), "background": bg, "object": float(np.mean(errors)) if errors else None})

    def relative(key):
        a, b = curve[0][key] if curve else None, curve[-1][key] if curve else None
        return None if a is None or b is None else (b - a) / max(a, DRIFT_FLOOR)

    first, last = (curve[0], curve[-1]) if curve else ({}, {})
    return {"curve": curve, "first": first, "end": last,
            "relative": {"background": relative("background"), "object": relative("object")}}


def quality(frames_thwc: np.ndarray, seg: Segmentation, fps: float) -> dict:
    """Frame quality and motion (see the module docstring)."""
    palette_fraction = float((seg.labels >= 0).mean())
    if len(frames_thwc) < 2:
        return {"palette_fraction": palette_fraction, "flicker": None, "dynamic_degree": 0.0, "frame_difference": None}
    frames = frames_thwc.astype(np.int16)
    diff = np.abs(frames[1:] - frames[:-1]).mean(-1)  # (T - 1, H, W)
    background = _background(seg)
    both = background[1:] & background[:-1]
    flicker = float(diff[both].mean()) if both.any() else None
    speeds = []
    for before, after in zip(seg.detections[:-1], seg.detections[1:]):
        first = {}
        for d in before:
            first.setdefault(d.colour, d)
        seen = set()
        for d in after:
            if d.colour in first and d.colour not in seen:
                seen.add(d.colour)
                speeds.append(math.dist(first[d.colour].centroid, d.centroid) * fps)
    return {"palette_fraction": palette_fraction, "flicker": flicker,
            "dynamic_degree": float(np.mean(speeds)) if speeds else 0.0, "frame_difference": float(diff.mean())}


# ----------------------------------------------------------------------------------------------------------------
# All of them


def evaluate_video(frames_thwc: np.ndarray, truth: ShapesTruth, tolerance: float = TOLERANCE,
                   min_area: int = MIN_AREA) -> dict:
    """Every Shapes World metric of one video: {"reentry", "following", "drift", "quality", "frames"}."""
    frames_thwc = check_frames(frames_thwc)
    seg = segment_video(frames_thwc, tolerance, min_area)
    _, height, width, _ = frames_thwc.shape
    return {
        "frames": len(frames_thwc),
        "reentry": reentry(seg.detections, truth),
        "following": following(seg.detections, truth, height, width),
        "drift": drift(frames_thwc, seg, truth),
        "quality": quality(frames_thwc, seg, truth.fps),
    }
