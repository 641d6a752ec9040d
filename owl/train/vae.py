"""Stage `vae`: train the Wan VAE from scratch (only for small from-scratch models such as the shipped one).

    owl train vae --config configs/shapes/vae.yaml

Loss: L1 + MSE reconstruction plus a small KL term. In sparse scenes (Shapes World: a few small shapes on a flat
background) a plain pixel loss is met by drawing the background alone, so with `fg_weight` > 0 the pixels that
differ from the clip's background colour (its per-channel median) weigh 1 + fg_weight.

With probability `window_start_prob` the decoder starts from
a mid-sequence latent j > 0 and must produce frames 4j onwards: the rollout decodes each clip after a context
latent taken from the middle of the previous clip's sequence, and this teaches the decoder that case. At the
end, the per-channel mean and std of the latents over the data are stored in the VAE's config
(`latents_mean`, `latents_std`), which the renderer uses to normalize.

`lr_vae_encoder: 0` fine-tunes the decoder alone (as Stability AI's sd-vae-ft-mse did for Stable Diffusion): the
latent space and its stats stay as they were, so a whole trained model can take a sharper decoder without
retraining its denoiser. `owl train vae --set model=checkpoints/owl-shapes --set lr_vae_encoder=0` does that.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from owl.data.collate import collate
from owl.errors import OwlError
from owl.renderer import from_uint8_thwc
from owl.train.common import VAEConfig, check_data, load_pipeline, resolve_model, train
from owl.train.data import prepare_videos


class Windows(torch.utils.data.Dataset):
    """Every `frames`-frame window of every video, starting every half window; with `crop`, a square crop of
    that side at a position fixed per window (the VAE is convolutional: crops train it at a fraction of the cost)."""

    def __init__(self, videos, frames: int, crop: int = 0):
        self.videos, self.frames, self.crop = videos, frames, crop
        self.items = [(v, s) for v, video in enumerate(videos)
                      for s in range(0, len(video.frames) - frames + 1, max(1, frames // 2))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        v, s = self.items[i]
        clip = self.videos[v].frames[s : s + self.frames]
        if self.crop:
            h, w = clip.shape[1:3]
            rng = np.random.default_rng(i)
            y, x = rng.integers(0, h - self.crop + 1), rng.integers(0, w - self.crop + 1)
            clip = clip[:, y : y + self.crop, x : x + self.crop]
        return {"frames": from_uint8_thwc(clip)}


class VAELoss(nn.Module):
    def __init__(self, vae, cfg: VAEConfig):
        super().__init__()
        self.vae, self.cfg = vae, cfg
        self.train_encoder = cfg.lr_vae_encoder > 0  # frozen: no graph through it and no KL term

    def forward(self, batch: dict, generator: torch.Generator):
        frames = batch["frames"].to(self.vae.device)  # (B, 3, F, H, W) in [-1, 1]
        with torch.set_grad_enabled(self.train_encoder):
            posterior = self.vae.encode(frames).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator).to(frames)
        j = 0
        if torch.rand(1, generator=generator).item() < self.cfg.window_start_prob and z.shape[2] > 2:
            j = int(torch.randint(1, z.shape[2] - 1, (1,), generator=generator))
        recon = self.vae.decode(z[:, :, j:]).sample
        target = frames[:, :, 4 * j:] if j else frames
        weight = foreground_weight(target, self.cfg.fg_weight)  # (B, 1, F, H, W)
        error = (recon - target).abs() + (recon - target) ** 2
        rec = (error * weight).sum() / (weight.sum() * error.shape[1])
        kl = posterior.kl().mean() / z[0].numel()
        loss = rec + self.cfg.kl_weight * kl if self.train_encoder else rec
        return loss, {"recon": float(rec.detach()), "kl": float(kl.detach())}


def foreground_weight(frames: torch.Tensor, fg_weight: float) -> torch.Tensor:
    """(B, 1, F, H, W): 1 on the background (the per-clip median colour), 1 + fg_weight elsewhere."""
    if not fg_weight:
        return torch.ones_like(frames[:, :1])
    background = frames.flatten(2).median(dim=2).values[:, :, None, None, None]  # (B, 3, 1, 1, 1)
    foreground = (frames - background).abs().amax(dim=1, keepdim=True) > 0.1  # 0.1 of [-1, 1]: ~13 grey levels
    return 1 + fg_weight * foreground.float()


@torch.no_grad()
def store_latent_stats(vae, videos, frames: int) -> None:
    """Per-channel mean and std of the latents (means of the posterior) over up to 64 windows of the data."""
    windows = Windows(videos, frames)
    picks = torch.linspace(0, len(windows) - 1, min(64, len(windows))).long().tolist()
    z = torch.cat([vae.encode(windows[i]["frames"][None].to(vae.device)).latent_dist.mean for i in picks])  # (N, C, f, h, w)
    flat = z.transpose(0, 1).flatten(1)
    vae.register_to_config(latents_mean=flat.mean(1).tolist(), latents_std=flat.std(1).clamp(min=1e-4).tolist())


def main(cfg: VAEConfig, resume: bool = False, quiet: bool = False) -> Path:
    model, data = resolve_model(cfg.model), check_data(cfg.data)
    pipe = load_pipeline(model, cfg.seed)
    videos = prepare_videos(data, pipe.renderer, latents=False, max_videos=cfg.max_videos, skip_invalid=cfg.skip_invalid)
    if cfg.crop and (cfg.crop % pipe.renderer.size_multiple or cfg.crop > min(pipe.renderer.config.height, pipe.renderer.config.width)):
        raise OwlError(f"crop must be a multiple of {pipe.renderer.size_multiple} no larger than the frames, got {cfg.crop}")
    dataset = Windows(videos, cfg.frames, cfg.crop)
    vae = pipe.renderer.vae
    loss = VAELoss(vae, cfg)

    def finish():  # the stats go into the VAE config before the artifact is written
        store_latent_stats(vae, videos, cfg.frames)
        pipe.renderer.refresh_latent_stats()

    # a frozen encoder keeps the latent space, and its stats: the model's denoiser was trained on them
    return train(cfg, "vae", pipe, loss, dataset, collate, resume, quiet,
                 before_save=finish if loss.train_encoder else None)
