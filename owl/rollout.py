"""The closed loop of Owl-1: state -> clip -> observation -> dynamics -> next state, streamed to disk.

    s_0 = LMM([prompt, image?] S_0)
    for t = 0, 1, ...:
        o_t = Film(s_t, tail of o_{t-1})          renderer: a clip, the previous clip's last latents as context
        write o_t to the mp4                      at once: the whole video is never held in memory
        O_t = key frames of o_t                   back into the LMM
        d_t = LMM(... O_t) or the given text      dynamics: what happens next
        s_{t+1} = LMM(... O_t D_t S_{t+1})

Stitching: each clip's decoded frames exclude its context frames, so no frame is repeated; the opening clip
has one frame more (the causal VAE's first frame), and the last clip is cut to the exact duration asked for.
A `Storyboard` records per clip its index, start and end time, dynamics text, and whether it was predicted.

Continuing: after each clip the loop hands a `ClipStep` to `on_clip` (everything the next step needs: the clip's
key frames O_t, its last latents, the generator state), which is what `owl.session` saves; a `LoopStart` built
from a saved session (a world session replayed through S_t, plus that last step) makes the loop carry on exactly
where it stopped, so a resumed video is frame for frame the uninterrupted one. A `LoopStart` for a longer video
than the one saved first writes the rest of the saved last clip (it was cut to the old duration), as one longer
run would have.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from owl.errors import OwlError
from owl.renderer import Renderer, from_uint8_thwc, to_uint8_thwc
from owl.video_io import write_bytes_atomic
from owl.world_model import WorldModel, WorldSession


@dataclass
class ClipRecord:
    index: int
    start: float  # seconds
    end: float
    dynamics: str  # the text that drove this clip: the prompt for clip 0, d_{t-1} after
    predicted: bool  # True when the LMM wrote the dynamics, False when it was given
    source: str = "film"  # "film": made by the renderer; "video": read from an input video (extend)


@dataclass
class Storyboard:
    prompt: str
    fps: float
    seconds: float
    clips: list[ClipRecord] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    def save(self, path: str | Path) -> None:
        write_bytes_atomic(path, self.to_json().encode())


@dataclass
class ClipEvent:
    """What a progress callback receives after each finished clip."""

    index: int
    num_clips: int
    frames: np.ndarray  # (T, H, W, 3) uint8, the frames this clip added
    record: ClipRecord
    path: Path | None = None  # a playable mp4 of the video so far (when a world session is saved), else None
    state: torch.Tensor | None = None  # (Q, D): the world state s_t that filmed this clip

    @property
    def dynamics(self) -> str:
        return self.record.dynamics


@dataclass
class ClipStep:
    """What one finished clip leaves behind: all the loop needs to continue after it (saved by `owl.session`)."""

    record: ClipRecord
    frames: np.ndarray  # (T, H, W, 3) uint8, the clip as filmed (the opening image first in image-to-video), uncut
    video_frames: int  # how many of `frames` are in the video (the last clip is cut to the duration)
    key_frames: np.ndarray  # (K, H, W, 3) uint8, the observation O_t the next step feeds the LMM
    context: torch.Tensor  # (1, C, c, h, w) clean latents: the next clip's short-term context
    rng: torch.Tensor  # uint8, torch.Generator.get_state() after this clip


@dataclass
class LoopStart:
    """Where a loop carries on: a world session that has read S_t, and clips 0..t (the last one's step)."""

    session: WorldSession
    clips: list[ClipRecord]  # 0..t, as they are in the video so far
    last: ClipStep  # clip t
    written: int  # frames of the video so far


MAX_SECONDS = 3600  # the longest video one rollout makes
MEMORIES = ("full", "last")


@dataclass
class RolloutSettings:
    """The settings of one rollout. Every value is checked here, whoever builds it (the API, the CLI before it
    loads a model, a batch row, a saved session): one place, one message per mistake. The height and width are
    also checked against the model by `Renderer.check_size`."""

    seconds: float
    fps: float
    height: int
    width: int
    num_inference_steps: int
    guidance_scale: float
    memory: str = "full"
    seed: int = 0
    do_sample: bool = False  # dynamics generation: greedy (False) or sampled
    temperature: float = 1.0
    max_observations: int | None = None  # keep the visual tokens of the last K observations only (None: all)
    max_steps: int | None = None  # keep states and dynamics of the last M steps only (None: all)

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
    "max_observations": (lambda v: v is None or (_integer(v) and v >= 1), "a positive integer (or None: keep all)"),
    "max_steps": (lambda v: v is None or (_integer(v) and v >= 1), "a positive integer (or None: keep all)"),
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


def key_frames(clip_thwc: np.ndarray, k: int) -> np.ndarray:
    """The K frames of a clip that go back into the LMM as O_t, (K, H, W, 3): evenly spaced, ending on its last.

    The same choice as `WorldModel.observation_segments`, which keeps all K when handed exactly K frames: the
    loop observes these, so a saved session holds only them and a replay feeds the same pixels.
    """
    n = len(clip_thwc)
    return clip_thwc[[min(n - 1, round((i + 1) * n / k) - 1) for i in range(k)]]


def open_session(world_model: WorldModel, settings: RolloutSettings) -> WorldSession:
    """The world session of a rollout with these settings: the one place it is made, so a replay (owl.session)
    builds exactly the session the loop had."""
    return world_model.session(memory=settings.memory, max_observations=settings.max_observations,
                               max_steps=settings.max_steps)


def plan_clips(renderer: Renderer, seconds: float, fps: float) -> tuple[int, int]:
    """(number of clips, total frames) for a video of `seconds` at `fps`."""
    total = int(round(seconds * fps))
    first, rest = renderer.frames_per_clip(first=True), renderer.frames_per_clip(first=False)
    num_clips = 1 + max(0, -(-(total - first) // rest))
    return num_clips, total


def clip_starts(renderer: Renderer, total_frames: int, done: list[ClipRecord] = (), written: int = 0,
                fps: float = 1.0) -> list[int]:
    """Start frame of every clip of a `total_frames` video: the `done` clips, then new clips from frame `written`."""
    starts = [int(round(r.start * fps)) for r in done]
    step = renderer.frames_per_clip(first=not done)
    position = written if done else 0
    while position < total_frames:
        starts.append(position)
        position += step
        step = renderer.frames_per_clip(first=False)
    return starts


def rollout(world_model: WorldModel, renderer: Renderer, prompt: str, settings: RolloutSettings,
            write: Callable[[np.ndarray], None], image: np.ndarray | None = None,
            dynamics: list[str | None] | None = None, callback: Callable[[ClipEvent], None] | None = None,
            progress: bool = True, timings: dict | None = None, start: LoopStart | None = None,
            on_clip: Callable[[ClipStep], Path | None] | None = None) -> Storyboard:
    """Run the loop and hand each clip's frames (T, H, W, 3) uint8 to `write` as soon as it is finished.

    dynamics: d_0, d_1, ... for the clip transitions (d_{t-1} drives clip t); a missing or None entry is
    predicted by the LMM. image: (H, W, 3) uint8 at the output size, for image-to-video; the video's first frame.
    start: carry on from a saved session (see `owl.session`) instead of starting from the prompt; `write` then
    receives only the frames after `start.written`. on_clip: called with each finished clip's `ClipStep` before
    `callback`; what it returns (a playable video so far) becomes the event's `path`.
    """
    s = settings
    _, total_frames = plan_clips(renderer, s.seconds, s.fps)
    dynamics = list(dynamics or [])
    timings = {} if timings is None else timings
    device = renderer.projector.null_state.device
    generator = torch.Generator("cpu").manual_seed(s.seed)
    storyboard = Storyboard(prompt=prompt, fps=s.fps, seconds=total_frames / s.fps)

    started = time.perf_counter()
    if start is None:
        num_clips = len(clip_starts(renderer, total_frames))
        check_dynamics(dynamics, num_clips, s, renderer)
        session = open_session(world_model, s)
        session.start(prompt, image)
        context, observation, written, first = None, None, 0, 0
        if image is not None:  # image-to-video: the encoded image is the first clip's context
            context = renderer.encode(from_uint8_thwc(image[None])[None].to(device))
    else:
        session, last, written, first = start.session, start.last, start.written, len(start.clips)
        storyboard.clips = list(start.clips)
        context, observation = last.context.to(device), last.key_frames
        generator.set_state(last.rng)
        # A longer video than the saved one: the rest of the saved last clip (cut to the old duration) comes first.
        more = max(0, min(len(last.frames) - last.video_frames, total_frames - written))
        num_clips = len(clip_starts(renderer, total_frames, storyboard.clips, written + more, s.fps))
        check_dynamics(dynamics, num_clips, s, renderer)
        if more:
            write(last.frames[last.video_frames:last.video_frames + more])
            written += more
            storyboard.clips[-1] = record = replace(last.record, end=written / s.fps)
            if on_clip is not None:
                on_clip(replace(last, record=record, video_frames=last.video_frames + more))
    timings["world_model"] = timings.get("world_model", 0.0) + time.perf_counter() - started

    # leave=False: the bar goes when the video is done, and the caller's one line says what was made
    bar = tqdm(total=num_clips, initial=first, desc="clips", unit="clip", disable=not progress, leave=False)
    for t in range(first, num_clips):
        # 1. Observe o_{t-1}, then the dynamics d_{t-1} (given or predicted); then the state s_t.
        tick = time.perf_counter()
        if t == 0:
            text, predicted = prompt, False
        else:
            session.observe(observation)
            given = dynamics[t - 1] if t - 1 < len(dynamics) and dynamics[t - 1] else None
            text = session.act(given, do_sample=s.do_sample, temperature=s.temperature, generator=generator)
            predicted = given is None
        state = session.read_state()[None]  # (1, Q, D)
        timings["world_model"] += time.perf_counter() - tick
        bar.set_postfix_str(text[:40], refresh=False)

        # 2. Film o_t from s_t, with the previous clip's last latent frames as context.
        new = renderer.config.clip_latent_frames + (1 if context is None else 0)
        latents, frames = renderer.film(state, context, new, s.height, s.width, s.num_inference_steps,
                                        s.guidance_scale, generator=generator, timings=timings)
        clip = to_uint8_thwc(frames[0])
        context = latents[:, :, -renderer.config.context_latent_frames:]

        # 3. Stitch: the image itself opens an image-to-video; cut the last clip to the exact length.
        tick = time.perf_counter()
        full = clip if not (t == 0 and image is not None) else np.concatenate([image[None], clip])
        out = full[: total_frames - written]
        write(out)
        record = ClipRecord(t, written / s.fps, (written + len(out)) / s.fps, text, predicted)
        written += len(out)
        storyboard.clips.append(record)
        observation = key_frames(clip, world_model.config.key_frames)
        path = None
        if on_clip is not None:
            path = on_clip(ClipStep(record, full, len(out), observation, context.detach().cpu(), generator.get_state()))
        timings["write"] = timings.get("write", 0.0) + time.perf_counter() - tick
        if callback is not None:
            callback(ClipEvent(t, num_clips, out, record, path, state[0]))
        bar.update(1)
    bar.close()
    timings["total"] = time.perf_counter() - started
    return storyboard


def check_dynamics(dynamics: list, num_clips: int, s: RolloutSettings, renderer: Renderer) -> None:
    """A video of `num_clips` clips has num_clips - 1 transitions to drive."""
    if len(dynamics) > num_clips - 1:
        raise OwlError(f"{len(dynamics)} dynamics given but a {s.seconds:g} s video has only {num_clips - 1} clip "
                       f"transitions ({num_clips} clips of {renderer.frames_per_clip(False) / s.fps:g} s)")
