"""Shapes World: procedural videos of flat-coloured shapes with dense captions and exact ground truth.

A small world that trains Owl's shipped model, feeds the tests, and measures consistency exactly. Each video
holds 1-3 objects, each a distinct shape (circle, square, triangle) in a distinct colour from `PALETTE`, on a
flat `BACKGROUND`. Time is cut into slots of `clip_seconds` (4 s, the Owl-1 clip length) and in every slot one
object does one thing, told by one plain caption:

    enter       "a red circle enters from the left."       (first mention names the colour)
    move        "the circle moves right."                  (left, right, up, down)
    stop        "the circle stops."                        (right after a move: it slows to a halt)
    recolour    "the circle turns blue."
    grow/shrink "the circle grows." / "the circle shrinks."
    exit        "the red circle leaves the frame to the top."
    re-enter    "the circle comes back from the right."    (half of them without the colour: only memory
                                                            of what left can tell what returns)
    wait        "the frame stays empty."                   (while the only object is away)

Each caption also has a state sentence: the caption with its object named in full ("the purple circle comes back
from the right."; "the red circle turns blue."), what a world state that remembers should know at that time.

An object that leaves stays away for at least 3 s (a whole slot or more) and comes back with the colour, shape
and size it left with. Since events sit on the clip grid, the caption of a clip says everything that happens
in it: the scripted dynamics of clip t are exactly sentence t.

Rendering is numpy only, without anti-aliasing: every object pixel is exactly its palette colour and every other
pixel is exactly BACKGROUND, so evaluation can segment frames by palette match (after video compression: by the
nearest palette colour). Everything is drawn from `np.random.default_rng([seed, index])`: the same seed gives
the same frames, captions and tracks, byte for byte, whatever the number of videos.

    video = render_video(seed=1, index=0, seconds=24, size=64, fps=8)   # in memory: frames, tracks, captions
    generate_shapes("data/shapes", videos=20, seconds=24, seed=1)        # files, as `owl data shapes` writes

Files under the output folder:
    <video_id>.mp4                 the video (H.264, via VideoWriter)
    captions.json                  ActivityNet Captions format: {id: {duration, timestamps, sentences}}, plus
                                   state_sentences (see owl.data.caption_files)
    tracks/<video_id>.json         per frame: [{id, colour, shape, box [x0, y0, x1, y1] (x1, y1 exclusive),
                                   pixels (visible pixel count)}], plus the event list
    scenarios/<video_id>.json/.png first frame, prompt (first caption), dynamics per clip, path of the tracks
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from owl.errors import OwlError

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 225, 40),
    "green": (40, 180, 70),
    "blue": (40, 90, 235),
    "purple": (160, 60, 210),
}
BACKGROUND: tuple[int, int, int] = (30, 30, 36)
SHAPES = ("circle", "square", "triangle")
SIZES = {"small": 0.08, "medium": 0.115, "large": 0.15}  # half-extent, as a fraction of the frame side
SIDES = ("left", "right", "top", "bottom")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}

MIN_AWAY_SECONDS = 3.0   # an object that leaves stays away at least this long
ENTER_FRACTION = 0.6     # enter / come back: reach the target in this part of the slot, then rest
EXIT_FRACTION = 0.75     # leave: be out of the frame after this part of the slot
STOP_SECONDS = 1.0       # stop: slow down to a halt over this long (or half the slot if shorter)


@dataclass
class ShapesVideo:
    """One rendered video, in memory."""

    video_id: str
    frames: np.ndarray              # (T, H, W, 3) uint8
    fps: float
    seconds: float
    clip_seconds: float
    timestamps: list[list[float]]   # per caption: [start, end] seconds
    sentences: list[str]
    state_sentences: list[str]      # per caption: the caption with its object named by colour and shape
    events: list[dict]              # per caption: {"kind", "object", ...}, the caption's structured form
    objects: list[dict]             # {"id", "shape", "colour" (first colour), "size"}
    tracks: list[list[dict]]        # per frame: [{"id", "colour", "shape", "box", "pixels"}]

    def captions_entry(self) -> dict:
        """This video's entry in an ActivityNet Captions file."""
        return {"duration": self.seconds, "timestamps": self.timestamps, "sentences": self.sentences,
                "state_sentences": self.state_sentences}


@dataclass
class _Object:
    id: int
    shape: str
    colour: str
    size: str
    x: float = 0.0
    y: float = 0.0
    half: float = 0.0
    visible: bool = False       # on stage (it may still be partly outside the frame)
    entered: bool = False       # has entered at least once
    velocity: tuple[float, float] = (0.0, 0.0)  # at the end of the last slot, px/s
    history: list = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------------
# Drawing


def _shape_mask(shape: str, cx: float, cy: float, half: float, height: int, width: int):
    """Pixels covered by a shape, without anti-aliasing: (mask (h, w) bool, (y0, x0)) over the clipped box."""
    x0, x1 = max(0, int(math.floor(cx - half))), min(width, int(math.ceil(cx + half)) + 1)
    y0, y1 = max(0, int(math.floor(cy - half))), min(height, int(math.ceil(cy + half)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None, (0, 0)
    ys = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5 - cy  # pixel centres, relative to the shape centre
    xs = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5 - cx
    if shape == "circle":
        mask = xs * xs + ys * ys <= half * half
    elif shape == "square":
        mask = (np.abs(xs) <= half) & (np.abs(ys) <= half)
    elif shape == "triangle":  # apex up: width grows from 0 at the top to 2 * half at the base
        mask = (ys >= -half) & (ys <= half) & (np.abs(xs) <= (ys + half) / 2)
    else:
        raise OwlError(f"unknown shape {shape!r}; accepted: {', '.join(SHAPES)}")
    if not mask.any():
        return None, (0, 0)
    return mask, (y0, x0)


def _draw(states: list[tuple], height: int, width: int) -> tuple[np.ndarray, list[dict]]:
    """One frame and its track entries; `states` is [(id, shape, colour, x, y, half)] in drawing order."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = BACKGROUND
    owner = np.full((height, width), -1, np.int16)
    entries = []
    for obj_id, shape, colour, x, y, half in states:
        mask, (y0, x0) = _shape_mask(shape, x, y, half, height, width)
        if mask is None:
            continue
        h, w = mask.shape
        rows, cols = np.nonzero(mask)
        box = [int(x0 + cols.min()), int(y0 + rows.min()), int(x0 + cols.max() + 1), int(y0 + rows.max() + 1)]
        frame[y0:y0 + h, x0:x0 + w][mask] = PALETTE[colour]
        owner[y0:y0 + h, x0:x0 + w][mask] = obj_id
        entries.append({"id": obj_id, "colour": colour, "shape": shape, "box": box})
    for entry in entries:  # later objects are drawn on top; count what stays visible
        entry["pixels"] = int((owner == entry["id"]).sum())
    return frame, entries


# ----------------------------------------------------------------------------------------------------------------
# The story


def _name(obj: _Object, colour: bool) -> str:
    return f"{obj.colour} {obj.shape}" if colour else obj.shape


def _in_full(caption: str, obj: _Object | None) -> str:
    """`caption` with its object named by colour and shape, the colour it has when the slot starts."""
    if obj is None or _name(obj, True) in caption:
        return caption
    return caption.replace(f"the {_name(obj, False)}", f"the {_name(obj, True)}", 1)


def _inside(half: float, x: float, y: float, size: int, margin: float = 1.0) -> bool:
    lo, hi = half + margin, size - half - margin
    return lo <= x <= hi and lo <= y <= hi


def _entry_path(obj: _Object, side: str, size: int, rng: np.random.Generator, others: list[_Object]):
    """Start just outside `side` and a target inside the frame, away from the other objects if possible."""
    margin = obj.half + 2.0
    for attempt in range(8):
        along = rng.uniform(margin, size - margin)
        depth = rng.uniform(0.25, 0.5) * size
        if side == "left":
            start, target = (-obj.half - 1.0, along), (depth, along)
        elif side == "right":
            start, target = (size + obj.half + 1.0, along), (size - depth, along)
        elif side == "top":
            start, target = (along, -obj.half - 1.0), (along, depth)
        else:
            start, target = (along, size + obj.half + 1.0), (along, size - depth)
        clear = all(math.hypot(target[0] - o.x, target[1] - o.y) > obj.half + o.half + 2 for o in others)
        if clear or attempt == 7:
            return start, target


def _exit_point(obj: _Object, side: str, size: int) -> tuple[float, float]:
    far = obj.half + 2.0
    return {
        "left": (-far, obj.y), "right": (size + far, obj.y), "top": (obj.x, -far), "bottom": (obj.x, size + far),
    }[side]


def _plan_slot(k, n_slots, objects, size, slot, rng, previous, returns):
    """Choose slot k's event: returns (event dict, caption)."""
    visible = [o for o in objects if o.visible]
    away = [o for o in objects if o.entered and not o.visible]
    fresh = [o for o in objects if not o.entered]

    def first_mention(obj: _Object) -> bool:  # the first caption about an object names its colour
        return not obj.history

    # A return was scheduled when the object left: it comes back now, as it left.
    for obj in away:
        if returns.get(obj.id) == k:
            side = SIDES[rng.integers(4)]
            with_colour = bool(rng.integers(2))
            caption = f"the {_name(obj, with_colour)} comes back from the {side}."
            return {"kind": "reenter", "object": obj.id, "side": side, "colour_named": with_colour}, caption

    candidates: list[tuple[float, dict, str]] = []
    # The first caption is the prompt: it must name all that is on screen, so slot 0 is about the one object
    # shown at the start, or (on an empty frame) the first one to enter.
    if fresh and not (k == 0 and visible):
        obj = fresh[0]
        side = SIDES[rng.integers(4)]
        article = "an" if obj.colour[0] in "aeiou" else "a"
        candidates.append((3.0 if not visible else 1.5, {"kind": "enter", "object": obj.id, "side": side},
                           f"{article} {obj.colour} {obj.shape} enters from the {side}."))
    away_slots = max(1, math.ceil(MIN_AWAY_SECONDS / slot))
    for obj in visible:
        prefix = (("an " if obj.colour[0] in "aeiou" else "a ") + _name(obj, True)) if first_mention(obj) else \
            f"the {obj.shape}"
        moved = previous is not None and previous["kind"] == "move" and previous["object"] == obj.id
        if moved:
            candidates.append((3.0, {"kind": "stop", "object": obj.id}, f"{prefix} stops."))
        # move: travel a quarter to two fifths of the frame, leaving room to slow down afterwards
        distance = rng.uniform(0.25, 0.4) * size
        speed = distance / slot
        brake = speed * min(STOP_SECONDS, slot / 2) / 2
        options = []
        for direction, (dx, dy) in DIRECTIONS.items():
            tx, ty = obj.x + dx * (distance + brake), obj.y + dy * (distance + brake)
            if _inside(obj.half, tx, ty, size):
                options.append(direction)
        if options:
            direction = options[rng.integers(len(options))]
            candidates.append((2.5, {"kind": "move", "object": obj.id, "direction": direction, "speed": speed},
                               f"{prefix} moves {direction}."))
        taken = {o.colour for o in objects}
        colours = [c for c in PALETTE if c not in taken]
        if colours:
            colour = colours[rng.integers(len(colours))]
            candidates.append((1.0, {"kind": "recolour", "object": obj.id, "colour": colour},
                               f"{prefix} turns {colour}."))
        names = list(SIZES)
        grade = names.index(obj.size)
        if grade + 1 < len(names):
            bigger = SIZES[names[grade + 1]] * size
            if _inside(bigger, obj.x, obj.y, size):
                candidates.append((1.0, {"kind": "grow", "object": obj.id, "size": names[grade + 1]},
                                   f"{prefix} grows."))
        if grade > 0:
            candidates.append((1.0, {"kind": "shrink", "object": obj.id, "size": names[grade - 1]},
                               f"{prefix} shrinks."))
        # leave only if it can be away long enough and still come back before the end
        if not away and not first_mention(obj) and k + 1 + away_slots < n_slots:
            side = SIDES[rng.integers(4)]
            candidates.append((3.0, {"kind": "exit", "object": obj.id, "side": side, "away_slots": away_slots},
                               f"the {_name(obj, True)} leaves the frame to the {side}."))
    if not candidates:
        caption = "the frame stays empty." if not visible else "nothing moves."
        return {"kind": "wait", "object": None}, caption
    weights = np.array([w for w, _, _ in candidates])
    pick = rng.choice(len(candidates), p=weights / weights.sum())
    _, event, caption = candidates[pick]
    if event["kind"] == "exit":
        extra = int(rng.integers(0, 2))
        returns[event["object"]] = min(n_slots - 1, k + 1 + event["away_slots"] + extra)
    return event, caption


def _state_at(obj: _Object, event: dict | None, tau: float, slot: float, size: int, start: dict):
    """(x, y, half, colour, on_stage) of `obj` at `tau` seconds into a slot whose event is `event`."""
    x, y, half, colour = start["x"], start["y"], start["half"], start["colour"]
    on_stage = start["visible"]
    if event is None or event.get("object") != obj.id:
        return x, y, half, colour, on_stage
    kind = event["kind"]
    if kind in ("enter", "reenter"):
        (sx, sy), (tx, ty) = event["path"]
        a = min(1.0, tau / (ENTER_FRACTION * slot))
        return sx + (tx - sx) * a, sy + (ty - sy) * a, half, colour, True
    if kind == "exit":
        ex, ey = event["target"]
        a = min(1.0, tau / (EXIT_FRACTION * slot))
        return x + (ex - x) * a, y + (ey - y) * a, half, colour, a < 1.0
    if kind == "move":
        dx, dy = DIRECTIONS[event["direction"]]
        return x + dx * event["speed"] * tau, y + dy * event["speed"] * tau, half, colour, True
    if kind == "stop":
        vx, vy = start["velocity"]
        d = min(STOP_SECONDS, slot / 2)
        s = min(tau, d)
        travelled = s - s * s / (2 * d)  # velocity falls linearly from v to 0 over d seconds
        return x + vx * travelled, y + vy * travelled, half, colour, True
    if kind == "recolour":
        return x, y, half, (event["colour"] if tau >= slot / 2 else colour), True
    if kind in ("grow", "shrink"):
        target = SIZES[event["size"]] * size
        a = min(1.0, tau / (slot / 2))
        return x, y, half + (target - half) * a, colour, True
    return x, y, half, colour, on_stage


def render_video(
    seed: int, index: int = 0, *, seconds: float = 24.0, size: int = 64, fps: float = 8.0,
    clip_seconds: float = 4.0, video_id: str | None = None,
) -> ShapesVideo:
    """Render video `index` of the Shapes World set drawn with `seed`, in memory."""
    if size < 16:
        raise OwlError(f"size must be at least 16 pixels, got {size}")
    if fps <= 0 or clip_seconds <= 0:
        raise OwlError(f"fps and clip_seconds must be positive, got fps={fps} clip_seconds={clip_seconds}")
    if seconds < clip_seconds:
        raise OwlError(f"seconds ({seconds:g}) must be at least clip_seconds ({clip_seconds:g})")
    rng = np.random.default_rng([int(seed), int(index)])
    video_id = video_id or f"shapes_{seed}_{index:05d}"

    count = int(rng.integers(1, 4))
    shapes = rng.permutation(len(SHAPES))[:count]
    colours = rng.permutation(len(PALETTE))[:count]
    names = list(PALETTE)
    objects = []
    for i in range(count):
        size_name = list(SIZES)[rng.integers(len(SIZES))]
        objects.append(_Object(i, SHAPES[shapes[i]], names[colours[i]], size_name, half=SIZES[size_name] * size))
    if rng.random() < 0.5:  # the first object is on screen from the first frame
        first = objects[0]
        first.x, first.y = rng.uniform(first.half + 2, size - first.half - 2, size=2)
        first.visible = first.entered = True
    catalogue = [{"id": o.id, "shape": o.shape, "colour": o.colour, "size": o.size} for o in objects]

    n_slots = int(math.ceil(seconds / clip_seconds - 1e-9))
    n_frames = int(round(seconds * fps))
    frames = np.empty((n_frames, size, size, 3), np.uint8)
    tracks: list[list[dict]] = []
    timestamps, sentences, state_sentences, events = [], [], [], []
    previous, returns = None, {}
    frame = 0
    for k in range(n_slots):
        t0, t1 = k * clip_seconds, min((k + 1) * clip_seconds, seconds)
        event, caption = _plan_slot(k, n_slots, objects, size, clip_seconds, rng, previous, returns)
        actor = objects[event["object"]] if event["object"] is not None else None
        state_sentences.append(_in_full(caption, actor))
        if event["kind"] in ("enter", "reenter"):
            others = [o for o in objects if o.visible and o is not actor]
            event["path"] = _entry_path(actor, event["side"], size, rng, others)
        elif event["kind"] == "exit":
            event["target"] = _exit_point(actor, event["side"], size)
        starts = {o.id: {"x": o.x, "y": o.y, "half": o.half, "colour": o.colour, "visible": o.visible,
                         "velocity": o.velocity} for o in objects}
        while frame < n_frames and frame / fps < t1 - 1e-9:
            tau = frame / fps - t0
            states = []
            for obj in objects:
                x, y, half, colour, on_stage = _state_at(obj, event, tau, clip_seconds, size, starts[obj.id])
                if on_stage:
                    states.append((obj.id, obj.shape, colour, x, y, half))
            frames[frame], entries = _draw(states, size, size)
            tracks.append(entries)
            frame += 1
        # the world at the end of the slot is where the next one starts
        for obj in objects:
            x, y, half, colour, on_stage = _state_at(obj, event, clip_seconds, clip_seconds, size, starts[obj.id])
            obj.x, obj.y, obj.half, obj.colour, obj.visible = x, y, half, colour, on_stage
            obj.velocity = (0.0, 0.0)
        if actor is not None:
            kind = event["kind"]
            if kind == "move":
                dx, dy = DIRECTIONS[event["direction"]]
                actor.velocity = (dx * event["speed"], dy * event["speed"])
            elif kind in ("grow", "shrink"):
                actor.size = event["size"]
            elif kind in ("enter", "reenter"):
                actor.entered = True
            actor.history.append(kind)
        public = {key: value for key, value in event.items() if key not in ("path", "target", "speed", "away_slots")}
        events.append(public)
        timestamps.append([round(t0, 3), round(t1, 3)])
        sentences.append(caption)
        previous = event
    return ShapesVideo(
        video_id=video_id, frames=frames, fps=float(fps), seconds=float(seconds), clip_seconds=float(clip_seconds),
        timestamps=timestamps, sentences=sentences, state_sentences=state_sentences, events=events, objects=catalogue, tracks=tracks,
    )


# ----------------------------------------------------------------------------------------------------------------
# Files


def _json_bytes(obj) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode()


def _png_bytes(frame_hwc: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame_hwc).save(buffer, format="PNG")
    return buffer.getvalue()


def generate_shapes(
    out: str | os.PathLike, *, videos: int, seconds: float = 24.0, seed: int = 0, size: int = 64,
    fps: float = 8.0, clip_seconds: float = 4.0,
) -> list[str]:
    """Write a Shapes World set under `out` (see the module docstring for the layout); returns the video ids."""
    from owl.data.dense_captions import clip_captions
    from owl.files import write_bytes_atomic
    from owl.video_io import write_video

    if videos < 1:
        raise OwlError(f"videos must be at least 1, got {videos}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OwlError(f"output must be a folder, got a file: {str(out)!r}")
    (out / "tracks").mkdir(parents=True, exist_ok=True)
    (out / "scenarios").mkdir(exist_ok=True)
    captions, ids = {}, []
    for index in range(videos):
        video = render_video(seed, index, seconds=seconds, size=size, fps=fps, clip_seconds=clip_seconds)
        vid = video.video_id
        write_video(out / f"{vid}.mp4", video.frames, fps)
        captions[vid] = video.captions_entry()
        write_bytes_atomic(out / "tracks" / f"{vid}.json", _json_bytes({
            "video_id": vid, "fps": video.fps, "size": [size, size], "seconds": video.seconds,
            "palette": PALETTE, "background": BACKGROUND, "objects": video.objects, "events": video.events,
            "timestamps": video.timestamps, "frames": video.tracks,
        }))
        n_clips = int(math.floor(seconds / clip_seconds + 1e-9))
        dynamics = [video.sentences[i] if i >= 0 else ""
                    for i in clip_captions(video.timestamps, n_clips, clip_seconds)]
        write_bytes_atomic(out / "scenarios" / f"{vid}.png", _png_bytes(video.frames[0]))
        write_bytes_atomic(out / "scenarios" / f"{vid}.json", _json_bytes({
            "video_id": vid, "prompt": video.sentences[0], "first_frame": f"{vid}.png",
            "clip_seconds": clip_seconds, "dynamics": dynamics, "tracks": f"../tracks/{vid}.json",
            "video": f"../{vid}.mp4", "fps": video.fps, "size": [size, size], "seconds": video.seconds,
        }))
        ids.append(vid)
    write_bytes_atomic(out / "captions.json", _json_bytes(captions))
    return ids
