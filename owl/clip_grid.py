"""The clip grid: where each clip of a video starts and ends, from the renderer's config, in one place.

A Wan VAE compresses time 4x causally: n latent frames decode to 1 + 4(n - 1) frames. A clip adds `n =
clip_latent_frames` new latent frames after its context, so the opening clip (no context) is 1 + 4(n - 1) + 4 =
4n + 1 frames and every later clip 4n:

    frame   0        4n+1        8n+1        12n+1
            | clip 0  | clip 1    | clip 2    | ...        a video of T frames has clips up to the one holding T - 1

The loop films on this grid, a video to extend is cut on it, training reads its clips on it, and the evaluation
scores on it; `Renderer.grid` builds the one for a model.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClipGrid:
    clip_latent_frames: int  # n: new latent frames per clip
    context_latent_frames: int  # c: latent frames of the previous clip that a clip continues from
    temporal_scale: int = 4  # video frames per latent frame (the VAE's time compression)

    @property
    def first(self) -> int:
        """Frames of the opening clip: 4n + 1 (the causal VAE's first latent decodes to one frame)."""
        return self.temporal_scale * self.clip_latent_frames + 1

    @property
    def rest(self) -> int:
        """Frames every later clip adds: 4n."""
        return self.temporal_scale * self.clip_latent_frames

    def clip_frames(self, first: bool) -> int:
        return self.first if first else self.rest

    def clip_seconds(self, fps: float) -> float:
        """Seconds each clip after the first adds."""
        return self.rest / fps

    @staticmethod
    def total_frames(seconds: float, fps: float) -> int:
        """Frames of a video of `seconds` at `fps`."""
        return int(round(seconds * fps))

    def bounds(self, t: int) -> tuple[int, int]:
        """(first frame, end frame) of clip t on a grid that starts at frame 0."""
        if t == 0:
            return 0, self.first
        return self.first + (t - 1) * self.rest, self.first + t * self.rest

    def count_after(self, frames: int, first: bool) -> int:
        """Clips needed to make `frames` more frames: the first of them an opening clip when `first`."""
        if frames <= 0:
            return 0
        if first:
            return 1 + self.count_after(frames - self.first, False)
        return -(-frames // self.rest)

    def count(self, total: int) -> int:
        """Clips of a `total`-frame video (at least one)."""
        return max(1, self.count_after(total, True))

    def starts(self, total: int) -> list[int]:
        """The first frame of every clip of a `total`-frame video."""
        return [self.bounds(t)[0] for t in range(self.count(total))]

    def cut(self, num_frames: int) -> list[tuple[int, int]]:
        """(start, end) of each clip of an existing `num_frames`-frame video, the last one possibly short."""
        return [(a, min(b, num_frames)) for a, b in map(self.bounds, range(self.count(num_frames)))]

    def latent_frames(self, frames: int) -> int:
        """Latent frames of `frames` video frames, 1 + (frames - 1) / 4 (frames must be 1 + 4m)."""
        return 1 + (frames - 1) // self.temporal_scale

    def context_window(self, end: int) -> int:
        """The first frame of the window whose encoding ends in a clip's context latents, for a clip read from a
        video that ends at frame `end`: at most one latent clip (1 + 4n frames) back, and 1 + 4m frames long, as
        the causal VAE takes them."""
        start = max(0, end - (1 + self.temporal_scale * self.clip_latent_frames))
        return start + (end - start - 1) % self.temporal_scale
