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
from owl.renderer import Renderer, from_uint8_thwc, to_uint8_thwc
from owl.video_io import write_bytes_atomic
from owl.world_model import WorldModel


@dataclass
class ClipRecord:
    index: int
    start: float  # seconds
    end: float
    dynamics: str  # the text that drove this clip: the prompt for clip 0, d_{t-1} after
    predicted: bool  # True when the LMM wrote the dynamics, False when it was given


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


@dataclass
class RolloutSettings:
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


def plan_clips(renderer: Renderer, seconds: float, fps: float) -> tuple[int, int]:
    """(number of clips, total frames) for a video of `seconds` at `fps`."""
    total = int(round(seconds * fps))
    first, rest = renderer.frames_per_clip(first=True), renderer.frames_per_clip(first=False)
    num_clips = 1 + max(0, -(-(total - first) // rest))
    return num_clips, total


def rollout(world_model: WorldModel, renderer: Renderer, prompt: str, settings: RolloutSettings,
            write: Callable[[np.ndarray], None], image: np.ndarray | None = None,
            dynamics: list[str | None] | None = None, callback: Callable[[ClipEvent], None] | None = None,
            progress: bool = True, timings: dict | None = None) -> Storyboard:
    """Run the loop and hand each clip's frames (T, H, W, 3) uint8 to `write` as soon as it is finished.

    dynamics: d_0, d_1, ... for the clip transitions; a missing or None entry is predicted by the LMM.
    image: (H, W, 3) uint8 at the output size, for image-to-video; it is the video's first frame.
    """
    s = settings
    num_clips, total_frames = plan_clips(renderer, s.seconds, s.fps)
    dynamics = list(dynamics or [])
    if len(dynamics) > num_clips - 1:
        raise OwlError(f"{len(dynamics)} dynamics given but a {s.seconds:g} s video has only {num_clips - 1} clip "
                       f"transitions ({num_clips} clips of {renderer.frames_per_clip(False) / s.fps:g} s)")
    timings = {} if timings is None else timings
    device = renderer.projector.null_state.device
    generator = torch.Generator("cpu").manual_seed(s.seed)
    storyboard = Storyboard(prompt=prompt, fps=s.fps, seconds=total_frames / s.fps)

    session = world_model.session(memory=s.memory)
    started = time.perf_counter()
    session.start(prompt, image)
    context = None
    if image is not None:  # image-to-video: the encoded image is the first clip's context
        context = renderer.encode(from_uint8_thwc(image[None])[None].to(device))
    timings["world_model"] = time.perf_counter() - started

    written = 0
    text, predicted = prompt, False
    bar = tqdm(total=num_clips, desc="clips", unit="clip", disable=not progress)
    for t in range(num_clips):
        # 1. The state s_t: the LMM reads the state queries after everything so far.
        tick = time.perf_counter()
        state = session.read_state()[None]  # (1, Q, D)
        timings["world_model"] += time.perf_counter() - tick

        # 2. Film o_t from s_t, with the previous clip's last latent frames as context.
        new = renderer.config.clip_latent_frames + (1 if context is None else 0)
        latents, frames = renderer.film(state, context, new, s.height, s.width, s.num_inference_steps,
                                        s.guidance_scale, generator=generator, timings=timings)
        clip = to_uint8_thwc(frames[0])
        context = latents[:, :, -renderer.config.context_latent_frames:]

        # 3. Stitch: the image itself opens an image-to-video; cut the last clip to the exact length.
        tick = time.perf_counter()
        out = clip if not (t == 0 and image is not None) else np.concatenate([image[None], clip])
        out = out[: total_frames - written]
        write(out)
        record = ClipRecord(t, written / s.fps, (written + len(out)) / s.fps, text, predicted)
        written += len(out)
        storyboard.clips.append(record)
        timings["write"] = timings.get("write", 0.0) + time.perf_counter() - tick
        if callback is not None:
            callback(ClipEvent(t, num_clips, out, record))
        bar.update(1)
        if t == num_clips - 1:
            break

        # 4. Observe o_t, then the dynamics d_t (given or predicted) that drive the next state.
        tick = time.perf_counter()
        session.observe(clip)
        given = dynamics[t] if t < len(dynamics) and dynamics[t] else None
        text = session.act(given, do_sample=s.do_sample, temperature=s.temperature, generator=generator)
        predicted = given is None
        timings["world_model"] += time.perf_counter() - tick
    bar.close()
    timings["total"] = time.perf_counter() - started
    return storyboard
