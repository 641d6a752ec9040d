"""Where the loop's clips come from: filmed by the renderer, replayed from a saved session, or cut from a video.

`owl.rollout.rollout` is the one loop; at each step it reads the state s_t and asks its clip source for clip t:

    Film(renderer, ...)             the renderer films s_t after the previous clip's context latents (a new video)
    Replay(folder, upto, then)      clips 0..upto as a saved session holds them, then `then` (resume, branch, extend)
    FromVideo(frames, ..., then)    an existing video cut on the clip grid, then `then` (extend any mp4)

A source answers four questions, so a new one (a camera, another model's clips) is one class in one file:
- `prefix(total)`: how many leading clips it supplies itself and how many frames of a `total`-frame video they
  fill (after them the loop counts filmed clips on the grid);
- `given(t, planned)`: the dynamics text d_{t-1} fed before s_t (None: the world model predicts it);
- `check(t, text)`: refuse a step that does not reproduce (a replay made by another model);
- `clip(t, state, context, generator, timings)`: the `Clip` itself.
The loop observes each clip's key frames, stitches its frames into the video and saves it; the source never
touches the world model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from owl.errors import OwlError
from owl.renderer import Renderer, to_uint8_thwc


@dataclass
class Clip:
    """One clip as the loop receives it."""

    frames: np.ndarray  # (T, H, W, 3) uint8 as it opens at its start (image-to-video: the image first), uncut
    key_frames: np.ndarray  # (K, H, W, 3) uint8: the observation O_t the next step feeds the world model
    context: torch.Tensor | None  # (1, C, c, h, w) clean latents: the next clip's short-term context
    source: str = "film"  # "film" or "video", recorded in the storyboard
    rng: torch.Tensor | None = None  # a replayed clip: the generator state to carry on from
    kept: int | None = None  # a replayed clip: how many of its frames the saved video holds (None: a new clip)
    latents: torch.Tensor | None = None  # a filmed clip: its latents (1, C, c + n, h, w), context first


class ClipSource(Protocol):
    """What the loop asks of a clip source (see the module docstring)."""

    def prefix(self, total: int) -> tuple[int, int]: ...

    def given(self, t: int, planned: str | None) -> str | None: ...

    def check(self, t: int, text: str) -> None: ...

    def clip(self, t: int, state: torch.Tensor, context: torch.Tensor | None, generator: torch.Generator,
             timings: dict) -> Clip: ...


def key_frames(clip_thwc: np.ndarray, k: int) -> np.ndarray:
    """The K frames of a clip that go back into the LMM as O_t, (K, H, W, 3): evenly spaced, ending on its last.

    The same choice as `WorldModel.key_frames`: a saved session holds only these, so a replay feeds the same pixels.
    """
    n = len(clip_thwc)
    return clip_thwc[[min(n - 1, round((i + 1) * n / k) - 1) for i in range(k)]]


class Film:
    """The renderer films clip t from s_t, after the previous clip's last latents (image-to-video: after the
    encoded image, which opens the video)."""

    def __init__(self, renderer: Renderer, settings, num_key_frames: int, image: np.ndarray | None = None,
                 on_step=None):
        self.renderer, self.settings, self.k, self.image, self.on_step = renderer, settings, num_key_frames, image, on_step

    def prefix(self, total: int) -> tuple[int, int]:
        return 0, 0

    def given(self, t: int, planned: str | None) -> str | None:
        return planned

    def check(self, t: int, text: str) -> None:
        pass

    def clip(self, t: int, state: torch.Tensor, context: torch.Tensor | None, generator: torch.Generator,
             timings: dict) -> Clip:
        r, s = self.renderer, self.settings
        opening = t == 0 and self.image is not None
        if opening:
            context = r.image_context(self.image)
        new = r.config.clip_latent_frames + (1 if context is None else 0)  # the opening clip's first latent
        latents, frames = r.film(state, context, new, s.height, s.width, s.num_inference_steps, s.guidance_scale,
                                 generator=generator, timings=timings, on_step=self.on_step)
        clip = to_uint8_thwc(frames[0])
        full = np.concatenate([self.image[None], clip]) if opening else clip
        return Clip(full, key_frames(clip, self.k), r.context_of(latents), latents=latents)


class Replay:
    """Clips 0..upto of a saved session (`owl.session.SessionFolder`), each file read once and checked, then the
    clips of `then`. Given dynamics are fed as recorded; predicted ones must come out as recorded (the generator
    carries the state saved with the clip before), or the session was made by another model."""

    def __init__(self, folder, upto: int, then, describe_model: str = "unknown"):
        records = folder.records
        if not 0 <= upto < len(records):
            raise OwlError(f"session {str(folder.path)!r} has clips 0..{len(records) - 1}, not clip {upto}")
        self.folder, self.upto, self.then, self.model = folder, upto, then, describe_model
        self.records = records[: upto + 1]
        self.last = folder.load_clip(upto)  # its length sets how far a longer video's first frames reach

    def prefix(self, total: int) -> tuple[int, int]:
        before = sum(c["video_frames"] for c in self.folder.meta["clips"][: self.upto])
        return self.upto + 1, before + min(len(self.last.frames), max(0, total - before))

    def given(self, t: int, planned: str | None) -> str | None:
        if t > self.upto:
            return self.then.given(t, planned)
        record = self.records[t]
        return None if record.predicted else record.dynamics

    def check(self, t: int, text: str) -> None:
        if t > self.upto:
            return self.then.check(t, text)
        if text != self.records[t].dynamics:
            raise OwlError(f"session {str(self.folder.path)!r} does not replay with this model: clip {t}'s dynamics "
                           f"came out {text!r}, the session recorded {self.records[t].dynamics!r}; use the session's "
                           f"own model ({self.model})")

    def clip(self, t: int, state, context, generator, timings) -> Clip:
        if t > self.upto:
            return self.then.clip(t, state, context, generator, timings)
        step = self.last if t == self.upto else self.folder.load_clip(t)
        return Clip(step.frames, step.key_frames, step.context, step.record.source, step.rng, step.video_frames)


class FromVideo:
    """An existing video (frames (T, H, W, 3) uint8) cut on the clip grid, each clip observed as the loop observes
    a filmed one, with the world model predicting the dynamics between them (video extension, Owl-1 §3); each
    clip's context is its tail frames encoded by the renderer. With `image_first` the video's first frame is the
    opening image of an image-to-video rollout (not observed with clip 0, as a filmed opening clip is not). With
    `contexts=False` no context is encoded (a clip's `context` is None): for a rollout that only watches the video,
    with nothing filmed after it and nothing saved (the memory probe)."""

    def __init__(self, frames: np.ndarray, renderer: Renderer, num_key_frames: int, then=None,
                 image_first: bool = False, contexts: bool = True):
        self.frames, self.renderer, self.k, self.then, self.image_first = frames, renderer, num_key_frames, then, image_first
        self.contexts = contexts
        self.bounds = renderer.grid.cut(len(frames))

    def prefix(self, total: int) -> tuple[int, int]:
        return len(self.bounds), len(self.frames)

    def given(self, t: int, planned: str | None) -> str | None:
        if t >= len(self.bounds):
            return self.then.given(t, planned)
        return planned

    def check(self, t: int, text: str) -> None:
        if t >= len(self.bounds):
            self.then.check(t, text)

    def clip(self, t: int, state, context, generator, timings) -> Clip:
        if t >= len(self.bounds):
            if self.then is None:
                raise OwlError(f"the video holds {len(self.bounds)} clips and nothing films after it")
            return self.then.clip(t, state, context, generator, timings)
        a, b = self.bounds[t]
        observed = self.frames[max(a, 1 if self.image_first else 0) : b]
        context = None
        if self.contexts:
            with torch.no_grad():
                context = self.renderer.video_context(self.frames, b).cpu()
        return Clip(self.frames[a:b], key_frames(observed, self.k), context, "video")
