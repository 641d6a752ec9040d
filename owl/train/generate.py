"""Stage `generate` (Owl-1 stage 2, generative pretraining): the state replaces the VDM's text condition; the
LMM side (queries, LoRA or full, per config) and the VDM transformer train jointly with the flow-matching loss.

    owl train generate --config configs/shapes/generate.yaml

A sample is one clip of the rollout grid and its caption: the LMM reads `[caption] S_0`, the projected s_0
conditions the transformer, and the clip's window of n + 1 latent frames is denoised. Clips after the first
keep the previous clip's last latent as clean context, except where it is dropped at random
(`context_dropout`) and at scene starts, so that first clips and scene openings are learned too. Clip 0 keeps
its own first latent (the video's first frame) as clean context: image-to-video, as the rollout films it from an
image; when that context is dropped, it is text-to-video. With
probability `cond_dropout` the projected null state replaces the condition, for classifier-free guidance. With
`words_weight`, align's words loss on the state is kept beside the denoising loss.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from owl.data.collate import collate
from owl.train.align import read_states, words_loss
from owl.train.common import (GenerateConfig, add_lora, add_transformer_lora, check_data, load_pipeline,
                              resolve_model, train)
from owl.train.data import clip_window, prepare_videos


class Clips(torch.utils.data.Dataset):
    def __init__(self, videos, n: int):
        self.videos, self.n = videos, n
        self.items = [(v, t) for v, video in enumerate(videos) for t in range(video.num_clips)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        v, t = self.items[i]
        video = self.videos[v]
        return {"latents": clip_window(video, t, self.n), "caption": video.captions[t],
                "has_context": t == 0 or not video.new_scene[t]}


def condition(projector, states: torch.Tensor, dropout: float, generator: torch.Generator) -> torch.Tensor:
    """Projected states (B, Q, text_dim), each replaced by the projected null state with probability `dropout`."""
    cond = projector(states)
    drop = (torch.rand(states.shape[0], generator=generator) < dropout).to(cond.device)
    return torch.where(drop[:, None, None], projector.null(states.shape[0]), cond)


class GenerateLoss(nn.Module):
    def __init__(self, pipe, cfg: GenerateConfig):
        super().__init__()
        self.world_model, self.renderer, self.cfg = pipe.world_model, pipe.renderer, cfg

    def forward(self, batch: dict, generator: torch.Generator):
        states = read_states(self.world_model, batch["caption"])
        cond = condition(self.renderer.projector, states, self.cfg.cond_dropout, generator)
        keep = torch.rand(len(batch["caption"]), generator=generator) >= self.cfg.context_dropout
        num_context = (torch.as_tensor(batch["has_context"]) & keep).long()
        latents = batch["latents"].to(cond.device)
        diffusion = self.renderer.flow_matching_loss(latents, cond, num_context, generator)
        if not self.cfg.words_weight:
            return diffusion, {}
        words = words_loss(self.world_model, states, batch["caption"])
        return diffusion + self.cfg.words_weight * words, {"diffusion": float(diffusion.detach()), "words": float(words.detach())}


def main(cfg: GenerateConfig, resume: bool = False, quiet: bool = False) -> Path:
    model, data = resolve_model(cfg.model), check_data(cfg.data)
    pipe = load_pipeline(model, cfg.seed)
    if cfg.lora_rank > 0:
        add_lora(pipe.world_model, cfg.lora_rank)
    if cfg.transformer_lora_rank > 0:
        add_transformer_lora(pipe.renderer, cfg.transformer_lora_rank)
    videos = prepare_videos(data, pipe.renderer, latents=True, max_videos=cfg.max_videos, skip_invalid=cfg.skip_invalid)
    dataset = Clips(videos, pipe.renderer.config.clip_latent_frames)
    return train(cfg, "generate", pipe, GenerateLoss(pipe, cfg), dataset, collate, resume, quiet)
