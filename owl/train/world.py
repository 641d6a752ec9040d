"""Stage `world` (Owl-1 stage 3, world-model training): dense-caption sequences with teacher forcing over T steps.

    owl train world --config configs/shapes/world.yaml

A sample is T consecutive clips of a video. The LMM reads the whole interleaved sequence at once,

    [caption_0] S_0 O_0 D_0 S_1 O_1 D_1 ... S_{T-1}

with O_t the key frames of the real clip t and D_t the caption of clip t + 1 (what happens next), and is trained
with the next-token cross-entropy on every D_t; each clip t is denoised given its state s_t (flow-matching
loss), with the previous clip's last latent as context except at scene starts and at a sample's first clip. A
sample that starts at the video's first clip is image-to-video, as every held-out scenario is filmed: the
opening is `[caption_0, first frame]` and clip 0 keeps the first frame's latent as clean context. This is the
rollout's own sequence, so the cached session reproduces these states at generation time. With `words_weight`,
align's words loss asks each s_t to name the words of clip t's caption too; with `words_from: state` the words
of clip t's state sentence (the caption with its objects named in full, where the data has one: "the circle
comes back" -> "the purple circle comes back"), so the state must recall the colour of what left the frame; with
`words_from: history` every word read before it (the opening caption and D_0 .. D_{t-1}).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from owl.data.collate import collate
from owl.errors import OwlError
from owl.train.align import words_loss
from owl.train.common import (WorldConfig, add_lora, add_transformer_lora, check_data, load_pipeline,
                              resolve_model, train)
from owl.train.data import clip_frames, clip_window, is_clip_table, prepare_videos
from owl.train.generate import condition


WORDS_FROM = ("caption", "state", "history")


class Sequences(torch.utils.data.Dataset):
    """Windows of T consecutive clips, starting at every clip that leaves T clips."""

    def __init__(self, videos, grid, clips: int, key_frames):
        self.videos, self.grid, self.n, self.clips = videos, grid, grid.clip_latent_frames, clips
        self.key_frames = key_frames
        self.items = [(v, s) for v, video in enumerate(videos) for s in range(video.num_clips - clips + 1)]
        if not self.items:
            raise OwlError(f"no video holds clips_per_sample={clips} clips; lower it or use longer videos")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        v, s = self.items[i]
        video, ts = self.videos[v], range(s, s + self.clips)
        return {
            "latents": torch.stack([clip_window(video, t, self.n) for t in ts]),  # (T, C, n + 1, h, w)
            "key_frames": torch.from_numpy(np.stack([self.key_frames(clip_frames(video, t, self.grid)) for t in ts])),
            "captions": [video.captions[t] for t in ts] + [video.captions[min(s + self.clips, video.num_clips - 1)]],
            "states": [video.state(t) for t in ts],
            # a sample from the video's start opens image-to-video: its first frame is the first clip's context
            "has_context": torch.tensor([(t == 0) or (t > s and not video.new_scene[t]) for t in ts]),
            "first_frame": video.frames[0] if s == 0 else np.zeros(0, np.uint8),  # (H, W, 3), or empty; batched as a list
        }


class WorldLoss(nn.Module):
    def __init__(self, pipe, cfg: WorldConfig):
        super().__init__()
        self.world_model, self.renderer, self.cfg = pipe.world_model, pipe.renderer, cfg
        if cfg.words_from not in WORDS_FROM:
            raise OwlError(f"words_from must be one of {', '.join(WORDS_FROM)}, got {cfg.words_from!r}")

    def named_by(self, batch: dict, i: int, t: int) -> str:
        """What sample i's state s_t must name: clip t's caption, its state sentence, or every caption read before it."""
        if self.cfg.words_from == "state":
            return batch["states"][i][t]
        if self.cfg.words_from == "history":
            return " ".join(batch["captions"][i][: t + 1])
        return batch["captions"][i][t]

    def forward(self, batch: dict, generator: torch.Generator):
        wm, cfg = self.world_model, self.cfg
        latents = batch["latents"]  # (B, T, C, n + 1, h, w)
        b, t_steps = latents.shape[:2]
        key_frames = batch["key_frames"].numpy()[:, : t_steps - 1]  # (B, T - 1, K, H, W, 3): O_0 .. O_{T-2}
        k = key_frames.shape[2]
        # one vision pass for all key frames, then the opening frames of image-to-video samples after them
        openings = [f for f in batch["first_frame"] if f.size]
        frames = wm.frame_segments(np.concatenate([key_frames.reshape(-1, *key_frames.shape[3:])] +
                                                  [f[None] for f in openings]))
        opening = iter(frames[b * (t_steps - 1) * k:])

        # 1. Lay out each sample's sequence as the loop feeds it (`WorldModel.loop_segments`), remembering where
        # the states and the dynamics tokens sit. O_{T-1} is left out: nothing after it is trained.
        sequences, state_at, dynamics = [], [], []  # dynamics: (sample, first position, token ids)
        for i in range(b):
            captions = batch["captions"][i]
            observations = [frames[(i * (t_steps - 1) + t) * k : (i * (t_steps - 1) + t + 1) * k] for t in range(t_steps - 1)]
            image = [next(opening)] if batch["first_frame"][i].size else []
            texts = captions[1:t_steps]  # D_t is the caption of clip t + 1: what happens next
            segments, spans = wm.loop_segments(captions[0], image, observations, texts)
            state_at += [(i, span.start) for span in spans if span.kind == "state"]
            dynamics += [(i, span.start, wm.dynamics_ids(texts[span.step - 1])) for span in spans
                         if span.kind == "dynamics"]
            sequences.append(segments)
        hidden = wm.run_batch(sequences)  # (B, L, D)

        # 2. Next-token loss on every D_t: the hidden state before each token predicts it.
        head = wm.vlm.get_output_embeddings()
        logits = torch.cat([head(hidden[i, p - 1 : p - 1 + len(ids)]) for i, p, ids in dynamics])
        targets = torch.tensor([tok for _, _, ids in dynamics for tok in ids], device=logits.device)
        ce = F.cross_entropy(logits.float(), targets) if len(dynamics) else hidden.sum() * 0

        # 3. Denoising loss on every clip given its own state.
        q = wm.config.num_queries
        states = torch.stack([hidden[i, p : p + q] for i, p in state_at])  # (B * T, Q, D)
        cond = condition(self.renderer.projector, states, cfg.cond_dropout, generator)
        num_context = batch["has_context"].flatten().long()
        diffusion = self.renderer.flow_matching_loss(latents.flatten(0, 1).to(cond.device), cond, num_context, generator)
        loss = diffusion + cfg.dynamics_weight * ce
        logs = {"diffusion": float(diffusion.detach()), "dynamics": float(ce.detach())}
        if cfg.words_weight:
            said = [self.named_by(batch, i, t) for i in range(b) for t in range(t_steps)]
            words = words_loss(wm, states, said)
            loss = loss + cfg.words_weight * words
            logs["words"] = float(words.detach())
        return loss, logs


def main(cfg: WorldConfig, resume: bool = False, quiet: bool = False) -> Path:
    model, data = resolve_model(cfg.model), check_data(cfg.data)
    if is_clip_table(data):
        raise OwlError(f"stage world needs dense captions (ActivityNet Captions or Vript: several captioned clips per "
                       f"video), not a caption-clip table: {str(data)!r}")
    pipe = load_pipeline(model, cfg.seed)
    if cfg.lora_rank > 0:
        add_lora(pipe.world_model, cfg.lora_rank)
    if cfg.transformer_lora_rank > 0:
        add_transformer_lora(pipe.renderer, cfg.transformer_lora_rank)
    videos = prepare_videos(data, pipe.renderer, latents=True, max_videos=cfg.max_videos, skip_invalid=cfg.skip_invalid)
    dataset = Sequences(videos, pipe.renderer.grid, cfg.clips_per_sample, pipe.world_model.key_frames)
    return train(cfg, "world", pipe, WorldLoss(pipe, cfg), dataset, collate, resume, quiet)
