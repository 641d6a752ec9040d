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

Clip sources (`owl.clip_sources`): this is the only code that drives the loop; where each clip comes from is the
source's business. A new video films every clip; resuming replays a saved session's clips through the same loop
(the world model reads them as it read them the first time, so the states, and the video that follows, are frame
for frame those of an uninterrupted run); branching replays up to the fork; extending replays a session or reads a
video, then films. After each new clip the loop hands a `ClipStep` to `on_clip` (the clip's frames, key frames
O_t, last latents and the generator state: all the next step needs), which is what `owl.session` saves.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from owl.errors import OwlError
from owl.files import write_bytes_atomic
from owl.clip_sources import ClipSource, Film
from owl.renderer import Interrupted, Renderer
from owl.settings import RolloutSettings
from owl.world_model import WorldModel, WorldSession


@dataclass
class ClipRecord:
    index: int
    start: float  # seconds
    end: float
    dynamics: str  # the text that drove this clip: the prompt for clip 0, d_{t-1} after
    predicted: bool  # True when the LMM wrote the dynamics, False when it was given
    source: str = "film"  # "film": made by the renderer; "video": read from an input video (extend)

    @property
    def origin(self) -> str:
        """Where the clip's dynamics came from, in words: "prompt" (clip 0), "predicted", "given", or "from the
        video" (a clip read from an input video)."""
        if self.source == "video":
            return "from the video"
        return "prompt" if self.index == 0 else ("predicted" if self.predicted else "given")


@dataclass
class Storyboard:
    prompt: str
    fps: float
    seconds: float
    clips: list[ClipRecord] = field(default_factory=list)
    director: str | None = None  # director mode (owl/director.py): the instruction its VLM wrote the events after

    def to_json(self) -> str:
        data = asdict(self)
        if self.director is None:
            del data["director"]
        return json.dumps(data, indent=2) + "\n"

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
    latents: torch.Tensor | None = None  # (1, C, c + n, h, w): a filmed clip's latents, context first

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


def open_session(world_model: WorldModel, settings: RolloutSettings) -> WorldSession:
    """The world session of a rollout with these settings: the one place it is made."""
    return world_model.session(memory=settings.memory, max_observations=settings.max_observations,
                               max_steps=settings.max_steps)


def rollout(world_model: WorldModel, renderer: Renderer, prompt: str, settings: RolloutSettings,
            write: Callable[[np.ndarray], None], image: np.ndarray | None = None,
            dynamics: list[str | None] | None = None, callback: Callable[[ClipEvent], None] | None = None,
            progress: bool = True, timings: dict | None = None, source: ClipSource | None = None,
            on_clip: Callable[[ClipStep], Path | None] | None = None,
            should_stop: Callable[[], bool] | None = None) -> Storyboard:
    """Run the loop and hand each clip's frames (T, H, W, 3) uint8 to `write` as soon as it is finished.

    dynamics: d_0, d_1, ... for the clip transitions (d_{t-1} drives clip t); a missing or None entry is
    predicted by the LMM. image: (H, W, 3) uint8 at the output size, for image-to-video; the video's first frame.
    source: where the clips come from (see `owl.clip_sources`); by default the renderer films them all. A
    `Replay` source carries a saved session on (its clips are written again, not saved again). on_clip: called
    with each new clip's `ClipStep` before `callback`; what it returns (a playable video so far) becomes the
    event's `path`. should_stop: asked before each clip; True ends the rollout there, as does `Interrupted`
    raised while a clip is filmed (that clip is dropped): the storyboard then holds the clips finished.
    """
    s = settings
    grid = renderer.grid
    total_frames = grid.total_frames(s.seconds, s.fps)
    dynamics = list(dynamics or [])
    timings = {} if timings is None else timings
    source = source or Film(renderer, s, world_model.config.key_frames, image)
    known, known_frames = source.prefix(total_frames)
    num_clips = known + grid.count_after(total_frames - known_frames, first=known == 0)
    check_dynamics(dynamics, num_clips, s, renderer)
    generator = torch.Generator("cpu").manual_seed(s.seed)
    storyboard = Storyboard(prompt=prompt, fps=s.fps, seconds=total_frames / s.fps, director=world_model.instruction)

    started = time.perf_counter()
    session = open_session(world_model, s)
    session.start(prompt, image)
    context, observation, written = None, None, 0
    timings["world_model"] = timings.get("world_model", 0.0) + time.perf_counter() - started

    # leave=False: the bar goes when the video is done, and the caller's one line says what was made
    bar = tqdm(total=num_clips, desc="clips", unit="clip", disable=not progress, leave=False)
    for t in range(num_clips):
        if should_stop is not None and should_stop():
            break
        # 1. Observe o_{t-1}, then the dynamics d_{t-1} (given or predicted); then the state s_t.
        tick = time.perf_counter()
        if t == 0:
            text, predicted = prompt, False
        else:
            session.observe(observation)
            planned = dynamics[t - 1] if t - 1 < len(dynamics) and dynamics[t - 1] else None
            given = source.given(t, planned)
            text = session.act(given, do_sample=s.do_sample, temperature=s.temperature, generator=generator)
            predicted = given is None
            source.check(t, text)
        state = session.read_state()[None]  # (1, Q, D)
        timings["world_model"] += time.perf_counter() - tick
        bar.set_postfix_str(text[:40], refresh=False)

        # 2. Clip o_t: filmed from s_t after the previous clip's context (or replayed, or read from a video).
        try:
            clip = source.clip(t, state, context, generator, timings)
        except Interrupted:
            break
        if clip.rng is not None:
            generator.set_state(clip.rng)
        context, observation = clip.context, clip.key_frames

        # 3. Stitch: cut the last clip to the exact length; save it and report it unless it is a replayed clip
        # the saved video already holds whole.
        tick = time.perf_counter()
        out = clip.frames[: total_frames - written]
        write(out)
        record = ClipRecord(t, written / s.fps, (written + len(out)) / s.fps, text, predicted, clip.source)
        written += len(out)
        storyboard.clips.append(record)
        if clip.kept != len(out):
            path = None
            if on_clip is not None:
                path = on_clip(ClipStep(record, clip.frames, len(out), observation, context.detach().cpu(),
                                        generator.get_state()))
            if callback is not None:
                callback(ClipEvent(t, num_clips, out[clip.kept or 0:], record, path, state[0], clip.latents))
        timings["write"] = timings.get("write", 0.0) + time.perf_counter() - tick
        bar.update(1)
    bar.close()
    storyboard.seconds = written / s.fps  # all of it, unless interrupted
    timings["total"] = time.perf_counter() - started
    return storyboard


def check_dynamics(dynamics: list, num_clips: int, s: RolloutSettings, renderer: Renderer) -> None:
    """A video of `num_clips` clips has num_clips - 1 transitions to drive."""
    if len(dynamics) > num_clips - 1:
        raise OwlError(f"{len(dynamics)} dynamics given but a {s.seconds:g} s video has only {num_clips - 1} clip "
                       f"transitions ({num_clips} clips of {renderer.grid.clip_seconds(s.fps):g} s)")
