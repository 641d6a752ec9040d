"""A world steered clip by clip: the step-by-step API over the one loop.

    world = World.open(pipe, "ball.mp4", prompt="a red ball rolls left")    # films clip 0
    world.propose()                     # what the world model would have happen next: "the ball stops."
    world.step()                        # film the next clip from that proposal (accept)
    world.step("a blue square enters")  # or from other dynamics (edit, replace)
    other = world.fork(1, "other.mp4", "the ball bounces")   # keep clips 0..0, film clip 1 otherwise

Every call is an ordinary rollout of the world's session (owl/rollout.py, owl/session.py): the saved clips are
replayed (`owl.clip_sources.Replay`, the world model reading them as it did the first time), then the new clip is
filmed. So a world is saved after every clip exactly as `owl generate` saves its sessions, resumes after a crash
(`World.load`), and accepting every proposal makes frame for frame the video `owl generate` makes with predicted
dynamics. A step replays the clips before it (their key frames through the world model, no filming): cheap next to
filming a clip, and it grows with the world's length.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from owl.errors import OwlError
from owl.files import output_lock
from owl.renderer import Interrupted
from owl.rollout import Storyboard, rollout
from owl.session import SessionFolder, session_path
from owl.settings import MAX_SECONDS


class _Proposal:
    """The clip source after a replay that films nothing: it lets the world model predict the next dynamics,
    keeps the text, and stops the loop before the clip."""

    text: str | None = None

    def prefix(self, total: int) -> tuple[int, int]:
        return 0, 0

    def given(self, t: int, planned: str | None) -> str | None:
        return None

    def check(self, t: int, text: str) -> None:
        self.text = text

    def clip(self, t, state, context, generator, timings):
        raise Interrupted


class World:
    """One world session, grown a clip at a time (see the module docstring)."""

    def __init__(self, pipe, session: str | Path):
        self.pipe = pipe
        self.path = Path(session)
        SessionFolder.open(self.path)  # checked now: a one-line error for a folder that is not a session

    @classmethod
    def open(cls, pipe, output: str | Path, prompt: str = "", image=None, callback=None, progress: bool = False,
             callback_on_step_end=None, **settings) -> "World":
        """A new world at `output` (its session beside it): clip 0 filmed from the prompt and, optionally, the first
        image. settings: the rollout settings of `OwlPipeline.__call__` (fps, height, width, seed, memory, ...).
        callback (after each clip) and callback_on_step_end (after each denoising step) as in `OwlPipeline`; so
        for every method that films."""
        if "seconds" in settings:
            raise OwlError("a world grows a clip at a time: give no seconds")
        fps = settings.get("fps") or pipe.renderer.config.fps
        pipe(prompt, image=image, seconds=pipe.renderer.grid.first / fps, output=output,
             session=session_path(output), callback=callback, progress=progress,
             callback_on_step_end=callback_on_step_end, **settings)
        return cls(pipe, session_path(output))

    @classmethod
    def extend(cls, pipe, output: str | Path, video: str | Path, prompt: str = "", callback=None,
               progress: bool = False, callback_on_step_end=None, **settings) -> "World":
        """A new world at `output` that goes on from a video (any mp4, or a finished session folder): its clips
        are observed as `owl extend` observes them, then one clip is filmed. settings: as `OwlPipeline.extend`."""
        if "seconds" in settings:
            raise OwlError("a world grows a clip at a time: give no seconds")
        fps = settings.get("fps") or pipe.renderer.config.fps
        pipe.extend(video, seconds=pipe.renderer.grid.rest / fps, output=output, prompt=prompt, callback=callback,
                    progress=progress, callback_on_step_end=callback_on_step_end, **settings)
        return cls(pipe, session_path(output))

    @classmethod
    def load(cls, pipe, session: str | Path) -> "World":
        """A world saved before (a session folder), to go on steering it."""
        return cls(pipe, session)

    @property
    def folder(self) -> SessionFolder:
        return SessionFolder.open(self.path)

    @property
    def output(self) -> Path:
        return self.folder.output

    @property
    def clips(self):
        """The storyboard so far: per clip its record (index, start, end, dynamics, predicted, source)."""
        return self.folder.records

    @property
    def storyboard(self) -> Storyboard:
        """The storyboard so far, as `owl generate` writes it beside its video."""
        folder = self.folder
        return Storyboard(folder.prompt, folder.settings.fps, folder.written / folder.settings.fps,
                          list(folder.records), director=self.pipe.world_model.instruction)

    def frames(self) -> np.ndarray:
        """The video so far, (T, H, W, 3) uint8, as the session holds it."""
        return np.concatenate(list(self.folder.video_frames()))

    def _more(self, folder: SessionFolder, clips: int = 1) -> float:
        """The duration of the world with `clips` more clips."""
        s = folder.settings
        seconds = (folder.written + clips * self.pipe.renderer.grid.rest) / s.fps
        if seconds > MAX_SECONDS:
            more = "one more clip" if clips == 1 else f"{clips} more clips"
            raise OwlError(f"the world is {folder.written / s.fps:g} s long; {more} would pass the "
                           f"{MAX_SECONDS} s a rollout may make")
        return seconds

    def clip_starts(self, clips: int) -> list[float]:
        """The start times (seconds) of clips 0..clips-1 of this world, on its model's clip grid: what a timeline
        (`owl.timeline.Timeline.dynamics_for`) maps its segments onto."""
        return [self.pipe.renderer.grid.bounds(t)[0] / self.folder.settings.fps for t in range(clips)]

    def propose(self) -> str:
        """What the world model would have happen next (d_t, the dynamics of the next clip), from the whole
        history; nothing is filmed or saved. `step()` with no dynamics films exactly this."""
        folder, pipe = self.folder, self.pipe
        s = folder.settings
        settings = replace(s, seconds=self._more(folder))
        proposal = _Proposal()
        with output_lock(folder.output):
            rollout(pipe.world_model, pipe.renderer, folder.prompt, settings, lambda frames: None,
                    image=folder.image(), dynamics=folder.dynamics, progress=False,
                    source=folder.replay(proposal))
        return proposal.text

    def step(self, dynamics: str | None = None, callback=None, progress: bool = False,
             callback_on_step_end=None):
        """Film the next clip, driven by `dynamics` (None: the world model's proposal), and save it; returns its
        record (None if the rollout was interrupted before the clip was finished). The output video then holds the
        world so far."""
        filmed = self.play(1, [dynamics], callback, progress, callback_on_step_end)
        return filmed[0] if filmed else None

    def play(self, clips: int, dynamics: list[str | None] | None = None, callback=None, progress: bool = False,
             callback_on_step_end=None):
        """Film `clips` more clips in one rollout, clip t+1 driven by dynamics[t] (None or missing: the world
        model's proposal), each saved as it finishes; returns their records. If the rollout is interrupted
        (`pipe.interrupt`), the clips finished are kept and the world steps on from them."""
        if isinstance(clips, bool) or not isinstance(clips, int) or clips < 1:
            raise OwlError(f"clips must be a whole number >= 1, got {clips!r}")
        dynamics = list(dynamics or [])
        if len(dynamics) > clips:
            raise OwlError(f"{len(dynamics)} dynamics for {clips} clip(s): give at most one per clip")
        for d in dynamics:
            if d is not None and (not isinstance(d, str) or not d.strip()):
                raise OwlError("dynamics must be a non-empty text, or None for the world model's proposal")
        folder = self.folder
        done = len(folder.records)
        if done == 0:
            raise OwlError(f"session {str(self.path)!r} has no clip yet; resume it first")
        plan = (folder.dynamics + [None] * done)[: done - 1] + [d.strip() if d else None for d in dynamics]
        folder.grow(self._more(folder, clips), plan)
        self.pipe.resume(self.path, callback=callback, progress=progress, callback_on_step_end=callback_on_step_end)
        return self.clips[done:]

    def fork(self, at: int, output: str | Path, dynamics: str | None = None, seed: int | None = None,
             callback=None, progress: bool = False, callback_on_step_end=None) -> "World":
        """A new world at `output` that keeps clips 0..at-1 of this one and films clip `at` from `dynamics` (None:
        the world model's proposal): `owl branch` at one clip. This world is left as it is."""
        folder = self.folder
        if isinstance(at, bool) or not isinstance(at, int) or not 1 <= at <= len(folder.records):
            raise OwlError(f"at must be a clip index from 1 to {len(folder.records)}, got {at!r}")
        written = sum(c["video_frames"] for c in folder.meta["clips"][:at])
        seconds = (written + self.pipe.renderer.grid.rest) / folder.settings.fps
        self.pipe.branch(self.path, at, output, dynamics=[dynamics], seconds=seconds, seed=seed, callback=callback,
                         progress=progress, callback_on_step_end=callback_on_step_end)
        return World(self.pipe, session_path(output))
