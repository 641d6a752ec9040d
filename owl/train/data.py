"""Training data on the rollout's clip grid: dense captions + videos -> frames, cached VAE latents, clip captions.

A video of N frames at the model's fps holds T = (N - 1) // (4n) whole clips of the rollout (n new latent
frames per clip): clip 0 is frames [0, 4n] and latents [0, n]; clip t is frames [4nt + 1, 4n(t + 1)] and latents
[nt + 1, n(t + 1)], with latent nt (the previous clip's last) as its context. The video is encoded by the VAE
in one causal pass, exactly as the rollout's latents continue each other, and the latents are cached on disk
(`.owl-latents/<key>/<id>.safetensors` beside the captions; the key hashes the VAE weights, fps and size), the
usual practice of precomputing latents once per VAE.

A video exactly one frame short of a whole clip (24 s at 8 fps is 192 frames; six 4 s clips need 193) gets its
last frame repeated once.

Each clip carries the caption of the segment that covers it most and a `new_scene` flag (owl.data's rules).
Training windows need one context latent (`context_latent_frames == 1`, as Wan2.2-TI2V); each clip's window is
then n + 1 latent frames, with or without context, so windows of any clip stack into one batch.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from owl.clip_grid import ClipGrid
from owl.errors import OwlError, OwlWarning

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi")


@dataclass
class PreparedVideo:
    video_id: str
    frames: np.ndarray  # (N, H, W, 3) uint8 at the model's fps and size
    latents: torch.Tensor | None  # (C, 1 + nT, h, w) normalized, or None when a stage needs no latents
    captions: list[str]  # per clip
    new_scene: list[bool]  # per clip
    states: list[str] = field(default_factory=list)  # per clip: the caption named in full, where annotated

    def state(self, t: int) -> str:
        """What clip t's world state should name: its state sentence, else its caption."""
        return (self.states[t] if t < len(self.states) else "") or self.captions[t]

    @property
    def num_clips(self) -> int:
        return len(self.captions)


def clip_frames(video: PreparedVideo, t: int, grid: ClipGrid) -> np.ndarray:
    """Pixel frames of clip t (T, H, W, 3) on the model's clip grid."""
    start, end = grid.bounds(t)
    return video.frames[start:end]


def clip_window(video: PreparedVideo, t: int, n: int) -> torch.Tensor:
    """Latents of clip t's training window (C, n + 1, h, w): clip 0's own n + 1, or the context latent + n."""
    return video.latents[:, n * t : n * (t + 1) + 1]


def _vae_key(renderer, fps: float, height: int, width: int) -> str:
    h = hashlib.sha256(f"{fps}:{height}:{width}".encode())
    for name, tensor in sorted(renderer.vae.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


CLIP_TABLES = (".csv", ".jsonl")  # caption-clip tables (WebVid, Panda-70M, `owl data scan`): one clip per row


def is_clip_table(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in CLIP_TABLES


def _cached_latents(file: Path, frames: np.ndarray, renderer, length: int) -> torch.Tensor:
    """The VAE latents (C, length, h, w) of uint8 frames (T, H, W, 3), read from `file` or encoded and written there
    (atomically)."""
    from safetensors.torch import load_file, save_file

    from owl.renderer import from_uint8_thwc
    from owl.files import temporary_path

    if file.is_file():
        z = load_file(file)["latents"]
        if z.shape[1] == length:
            return z
    z = renderer.encode(from_uint8_thwc(frames)[None].to(renderer.device))[0].cpu()
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(file)
    save_file({"latents": z.contiguous()}, tmp)
    tmp.replace(file)
    return z


@torch.no_grad()
def prepare_clip_table(table: Path, renderer, *, latents: bool, max_videos: int = 0,
                       skip_invalid: bool = False) -> list[PreparedVideo]:
    """Stages 1-2 from caption-clip pairs (Owl-1 §3.3: WebVid, Panda-70M): each row of a CSV / JSONL table (see
    `owl.data.ClipDataset`) becomes one clip of the rollout's grid, its first 1 + 4n frames from the row's span
    start at the model's fps and size, with the row's caption and (cached) latents."""
    from owl.data.clips import ClipDataset
    from owl.video_io import cthw_to_thwc

    cfg = renderer.config
    n = cfg.clip_latent_frames
    rows = ClipDataset(table, num_frames=1 + 4 * n, fps=cfg.fps, size=(cfg.height, cfg.width), offset="start",
                       require_captions=True, skip_invalid=skip_invalid)
    cache = table.parent / ".owl-latents" / _vae_key(renderer, cfg.fps, cfg.height, cfg.width)
    prepared = []
    for index in range(len(rows) if not max_videos else min(max_videos, len(rows))):
        item, sample = rows.items[index], rows[index]
        frames = cthw_to_thwc(sample["frames"])
        z = None
        if latents:
            key = hashlib.sha256(f"{item['video']}:{item['start']}:{item['end']}".encode()).hexdigest()[:16]
            z = _cached_latents(cache / f"{key}.safetensors", frames, renderer, 1 + n)
        prepared.append(PreparedVideo(item["id"], frames, z, [sample["caption"]], [True]))
    return prepared


@torch.no_grad()
def prepare_videos(captions_path: Path, renderer, *, latents: bool, max_videos: int = 0,
                   skip_invalid: bool = False) -> list[PreparedVideo]:
    """Read every captioned video at the renderer's fps and size, with its clip captions and (cached) latents.
    A caption-clip table (.csv / .jsonl) gives one clip per row instead (`prepare_clip_table`)."""
    from owl.data.bad_entries import BadEntries
    from owl.data.caption_files import load_captions
    from owl.data.dense_captions import clip_captions, resolve_video, scene_starts
    from owl.video_io import read_video

    cfg = renderer.config
    if cfg.context_latent_frames != 1:
        raise OwlError(f"training needs context_latent_frames == 1, the model has {cfg.context_latent_frames}")
    if is_clip_table(captions_path):
        return prepare_clip_table(captions_path, renderer, latents=latents, max_videos=max_videos,
                                  skip_invalid=skip_invalid)
    n, grid = cfg.clip_latent_frames, renderer.grid
    clip_seconds = grid.clip_seconds(cfg.fps)
    bad = BadEntries(str(captions_path))
    videos = load_captions(captions_path, bad)
    root = captions_path if captions_path.is_dir() else captions_path.parent
    cache = root / ".owl-latents" / (_vae_key(renderer, cfg.fps, cfg.height, cfg.width) if latents else "none")
    found = []
    for video in videos:
        path = resolve_video(root, video.video_id, VIDEO_EXTENSIONS)
        if path is None:
            bad.add(video.video_id, f"video not found in {str(root)!r}")
        else:
            found.append((video, path))
    bad.raise_or_skip(skip_invalid, "videos")
    if max_videos:
        found = found[:max_videos]
    prepared, short = [], 0
    for video, path in found:
        frames, _ = read_video(path, cfg.fps, size=(cfg.height, cfg.width))
        if len(frames) % grid.rest == 0:  # a whole number of seconds is one frame short of the grid: repeat the last
            frames = np.concatenate([frames, frames[-1:]])
        num_clips = (len(frames) - 1) // grid.rest  # whole clips only
        if num_clips < 1:
            short += 1
            continue
        frames = frames[: grid.bounds(num_clips - 1)[1]]
        chosen = clip_captions([[s.start, s.end] for s in video.segments], num_clips, clip_seconds)
        texts, states, last = [], [], None
        for index in chosen:  # an uncaptioned clip keeps the last caption: its world has not changed
            last = video.segments[index] if index >= 0 else last
            texts.append(last.sentence if last else "")
            states.append(last.state if last else "")
        z = None
        if latents:  # cached; encoded again when absent or cached from other frames
            z = _cached_latents(cache / f"{video.video_id}.safetensors", frames, renderer, 1 + n * num_clips)
        prepared.append(PreparedVideo(video.video_id, frames, z, texts, scene_starts(video.segments, chosen), states))
    if short:
        warnings.warn(f"{short} video(s) shorter than one clip ({clip_seconds:g} s) were left out", OwlWarning)
    if not prepared:
        raise OwlError(f"no usable videos in {str(captions_path)!r}")
    return prepared
