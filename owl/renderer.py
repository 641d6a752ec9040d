"""Renderer: films the latent state s_t into a clip with a diffusers Wan video diffusion model (VDM).

o_t = Film(s_t, o_{t-1}), after Owl-1 §3 with Wan's parts:
- `StateProjector` maps s_t, (Q, D_lmm), to the transformer's `encoder_hidden_states`, (Q, text_dim), in place
  of the text encoder's features; a learned null state, projected the same way, is the unconditional input for
  classifier-free guidance. In director mode (`RendererConfig.condition` "text", owl/director.py) the state is
  already the Wan text encoder's features, and `TextCondition` passes it on, with the encoded negative prompt as
  the unconditional input, as WanPipeline conditions.
- Short-term context: clean latent frames of the previous clip sit at the head of the new clip's latent
  sequence, with timestep 0 on their tokens, as Wan2.2-TI2V does with its first frame. Context is handed over as
  latents, never through a decode/encode round trip (that round trip is where peers' colour drift comes from).
  For image-to-video the context is the encoded image; the first clip of text-to-video has none.
- The denoising loop is written out below with diffusers' flow-matching Euler scheduler; the transformer is only
  a forward pass.

Shapes: latents are (B, C, F, h, w) (`bcfhw`, F latent frames); frames are (B, 3, T, H, W) in [-1, 1]. The Wan
VAE compresses 4x in time (a clip of n latent frames decodes to 1 + 4(n - 1) frames) and 8x in space; the
transformer patches 2x2, so H and W must be multiples of 16.
"""

from __future__ import annotations

import contextlib
import copy
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from owl.clip_grid import ClipGrid
from owl.config import RendererConfig, load_json
from owl.errors import OwlError
from owl.weights import load_part_weights, save_part


class Interrupted(Exception):
    """Raised by a step callback to stop filming at once (`OwlPipeline.interrupt`); the clip is dropped."""


class StateProjector(nn.Module):
    """s_t (B, Q, D_lmm) -> encoder_hidden_states (B, Q, text_dim), plus the learned null state for CFG."""

    def __init__(self, num_queries: int, state_dim: int, text_dim: int):
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(state_dim, text_dim), nn.GELU(approximate="tanh"), nn.Linear(text_dim, text_dim))
        self.null_state = nn.Parameter(torch.zeros(num_queries, state_dim))

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        # the LMM may run in bf16/fp16 while Owl's own parts stay float32: the states take the projector's dtype
        return self.proj(states.to(self.null_state.dtype))

    def null(self, batch: int) -> torch.Tensor:
        """The projected null state (B, Q, text_dim). Outside training it is projected once and kept until a
        weight changes (in place or by a move): every clip needs it."""
        if torch.is_grad_enabled():
            return self.proj(self.null_state).expand(batch, -1, -1)
        key = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if getattr(self, "_null", (None,))[0] != key:
            self._null = (key, self.proj(self.null_state))
        return self._null[1].expand(batch, -1, -1)


class TextCondition(nn.Module):
    """Director mode's condition: the state is the video model's own text encoding (B, L, text_dim), given to the
    transformer as it is; `null_state` (L, text_dim) is the encoded negative prompt, stored with the model (it is
    encoded once, by the text encoder, when the folder is made). Nothing here is learned."""

    def __init__(self, length: int, text_dim: int):
        super().__init__()
        self.null_state = nn.Parameter(torch.zeros(length, text_dim), requires_grad=False)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return states.to(self.null_state.dtype)

    def null(self, batch: int) -> torch.Tensor:
        return self.null_state.expand(batch, -1, -1)


CONDITIONS = ("state", "text")  # RendererConfig.condition: StateProjector, TextCondition


class Renderer(nn.Module):
    """Wan transformer + Wan VAE + flow-matching scheduler + state projector."""

    def __init__(self, transformer, vae, scheduler, config: RendererConfig, projector: StateProjector | None = None):
        super().__init__()
        self.transformer = transformer
        self.vae = vae
        self.scheduler = scheduler
        self.config = config
        if config.condition not in CONDITIONS:
            raise OwlError(f"renderer config: condition must be {' or '.join(map(repr, CONDITIONS))}, got "
                           f"{config.condition!r}")
        if projector is None:
            projector = (TextCondition(config.num_queries, transformer.config.text_dim) if config.condition == "text"
                         else StateProjector(config.num_queries, config.state_dim, transformer.config.text_dim))
        self.projector = projector
        self.current_timestep: torch.Tensor | None = None  # the denoising step under way, while one is
        self.temporal_scale = int(vae.config.scale_factor_temporal)
        self.spatial_scale = int(vae.config.scale_factor_spatial)
        z = vae.config.z_dim
        self.register_buffer("latents_mean", torch.zeros(1, z, 1, 1, 1), persistent=False)
        self.register_buffer("latents_std", torch.ones(1, z, 1, 1, 1), persistent=False)
        self.refresh_latent_stats()

    def refresh_latent_stats(self) -> None:
        """Read the latent normalization (per-channel mean and std) from the VAE's config."""
        z = self.vae.config.z_dim
        self.latents_mean.copy_(torch.tensor(self.vae.config.latents_mean[:z]).view(1, z, 1, 1, 1))
        self.latents_std.copy_(torch.tensor(self.vae.config.latents_std[:z]).view(1, z, 1, 1, 1))

    @property
    def size_multiple(self) -> int:
        return self.spatial_scale * self.transformer.config.patch_size[1]

    @property
    def max_size(self) -> int:
        """The largest height or width the transformer can place: its rotary embedding holds `rope_max_seq_len`
        positions per axis, one per patch."""
        return self.size_multiple * int(getattr(self.transformer.config, "rope_max_seq_len", 1024))

    def check_size(self, height: int, width: int) -> None:
        m, most = self.size_multiple, self.max_size
        for name, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or not m <= value <= most or value % m:
                raise OwlError(f"{name} must be a multiple of {m} from {m} to {most} for this model (the VAE's "
                               f"{self.spatial_scale}x times the transformer's patch {m // self.spatial_scale}, at most "
                               f"{most // m} patches), got {value!r}")

    @property
    def grid(self) -> ClipGrid:
        """Where this model's clips fall in a video (see `owl.clip_grid`)."""
        return ClipGrid(self.config.clip_latent_frames, self.config.context_latent_frames, self.temporal_scale)

    def frames_per_clip(self, first: bool) -> int:
        """Video frames each clip adds: 4n (n new latent frames), and one more for the opening clip."""
        return self.grid.clip_frames(first)

    @property
    def device(self) -> torch.device:
        """Where inputs are made: the projector's device (it stays on the accelerator under CPU offload)."""
        return self.projector.null_state.device

    # --- context: how a clip continues the one before it ----------------------------------------------------

    def context_of(self, latents: torch.Tensor) -> torch.Tensor:
        """The next clip's context from a clip's latents (B, C, F, h, w): its last c latent frames."""
        return latents[:, :, -self.config.context_latent_frames:]

    @torch.no_grad()
    def image_context(self, image_hwc: np.ndarray) -> torch.Tensor:
        """The opening clip's context in image-to-video: the image (H, W, 3) uint8 encoded, (1, C, 1, h, w)."""
        return self.encode(from_uint8_thwc(image_hwc[None])[None].to(self.device))

    @torch.no_grad()
    def video_context(self, frames_thwc: np.ndarray, end: int) -> torch.Tensor:
        """The context a clip read from a video (frames (T, H, W, 3) uint8) hands to the next clip when it ends at
        frame `end`: its tail frames encoded, the last c latent frames, (1, C, c, h, w). The only place Owl goes
        from pixels back to latents mid-video (extending a video)."""
        start = self.grid.context_window(end)
        return self.context_of(self.encode(from_uint8_thwc(frames_thwc[start:end])[None].to(self.device)))

    # --- VAE ------------------------------------------------------------------------------------------------

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (B, 3, T, H, W) in [-1, 1] -> normalized latents (B, C, 1 + (T - 1) // 4, h, w) (the mode)."""
        latents = self.vae.encode(frames.to(self.vae.dtype)).latent_dist.mode()
        return (latents - self.latents_mean) / self.latents_std

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized latents (B, C, F, h, w) -> frames (B, 3, 1 + 4(F - 1), H, W) in [-1, 1]."""
        latents = latents * self.latents_std + self.latents_mean
        return self.vae.decode(latents.to(self.vae.dtype)).sample.clamp(-1, 1)

    def decode_clip(self, latents: torch.Tensor, num_context: int) -> torch.Tensor:
        """A clip's latents (B, C, c + n, h, w), its c context latents first -> the frames of its new part only:
        (B, 3, 4n, H, W), or (B, 3, 1 + 4(n - 1), H, W) without context. The context's frames are the previous
        clip's, so stitched clips repeat no frame."""
        frames = self.decode(latents)
        return frames[:, :, 1 + self.temporal_scale * (num_context - 1):] if num_context else frames

    # --- the denoiser and guidance --------------------------------------------------------------------------

    def predict_flow(self, latents: torch.Tensor, t: torch.Tensor, cond: torch.Tensor, num_context: int) -> torch.Tensor:
        """The transformer's flow prediction for latents (B, C, F, h, w) at time t; context tokens get t = 0."""
        b, _, f, h, w = latents.shape
        _, ph, pw = self.transformer.config.patch_size
        if num_context:
            tokens_per_frame = (h // ph) * (w // pw)
            timestep = torch.full((b, f, tokens_per_frame), float(t), device=latents.device)
            timestep[:, :num_context] = 0
            timestep = timestep.flatten(1)  # (B, F * tokens_per_frame), Wan2.2-TI2V's per-token timesteps
        else:
            timestep = torch.full((b,), float(t), device=latents.device)
        dtype = self.transformer.dtype
        return self.transformer(latents.to(dtype), timestep=timestep, encoder_hidden_states=cond.to(dtype),
                                return_dict=False)[0].float()

    def guided_flow(self, latents, t, cond, uncond, num_context, guidance_scale: float) -> torch.Tensor:
        """Classifier-free guidance: uncond + g * (cond - uncond), both halves in one batch, the unconditional half
        first as in diffusers' pipelines (cache hooks such as FasterCache rely on that order)."""
        if guidance_scale == 1.0:
            return self.predict_flow(latents, t, cond, num_context)
        both = self.predict_flow(latents.repeat(2, 1, 1, 1, 1), t, torch.cat([uncond, cond]), num_context)
        flow_uncond, flow_cond = both.chunk(2)
        return flow_uncond + guidance_scale * (flow_cond - flow_uncond)

    # --- training -------------------------------------------------------------------------------------------

    def flow_matching_loss(self, latents: torch.Tensor, cond: torch.Tensor, num_context: torch.Tensor,
                           generator: torch.Generator) -> torch.Tensor:
        """Rectified-flow loss on clean latents (B, C, F, h, w) given cond (B, Q, text_dim).

        num_context (B,): how many leading latent frames of each sample are clean context (timestep 0, no loss).
        x_s = (1 - s) x_0 + s e with s ~ U(0, 1) shifted as the sampler's schedule is; the target is e - x_0.
        """
        error, scored = self.flow_matching_error(latents, cond, num_context, generator)
        return (error * scored).sum() / scored.sum().clamp(min=1)

    def flow_matching_error(self, latents: torch.Tensor, cond: torch.Tensor, num_context: torch.Tensor,
                            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss before its mean: the squared error per latent (B, C, F, h, w) and which latents it scores
        (1.0 off the context, 0.0 on it), for a loss over a region of the latents."""
        b, _, f, h, w = latents.shape
        device = latents.device
        u = torch.rand(b, generator=generator).to(device)
        shift = self.config.flow_shift
        sigma = (shift * u / (1 + (shift - 1) * u)).view(b, 1, 1, 1, 1)
        noise = torch.randn(latents.shape, generator=generator).to(device)
        is_context = (torch.arange(f, device=device)[None] < num_context.to(device)[:, None]).view(b, 1, f, 1, 1)
        noisy = torch.where(is_context, latents, (1 - sigma) * latents + sigma * noise)
        _, ph, pw = self.transformer.config.patch_size
        per_frame = torch.where(is_context.view(b, f), 0.0, sigma.view(b, 1) * 1000)  # scheduler timesteps are s * 1000
        timestep = per_frame[:, :, None].expand(b, f, (h // ph) * (w // pw)).flatten(1)
        dtype = self.transformer.dtype
        flow = self.transformer(noisy.to(dtype), timestep=timestep, encoder_hidden_states=cond.to(dtype),
                                return_dict=False)[0].float()
        return (flow - (noise - latents)) ** 2, (~is_context).float().expand_as(latents)

    # --- filming a clip -------------------------------------------------------------------------------------

    @torch.no_grad()
    def film(self, states: torch.Tensor, context: torch.Tensor | None, num_new_frames: int, height: int, width: int,
             num_inference_steps: int, guidance_scale: float, generator: torch.Generator | None = None,
             timings: dict | None = None, on_step=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Film one clip from states (B, Q, D).

        context: clean normalized latents (B, C, c, h, w) or None. on_step(i, t, latents) -> latents: called after
        each denoising step with the new frames' latents (B, C, n, h, w), and what it returns goes on (diffusers'
        `callback_on_step_end`); it may raise `Interrupted`. Returns (latents, frames): the whole latent
        sequence (B, C, c + n, h, w), context first, and the decoded frames of the new part only,
        (B, 3, T, H, W) in [-1, 1] (T = 4n, or 1 + 4(n - 1) when there is no context).
        """
        device = self.device
        b = states.shape[0]
        c = 0 if context is None else context.shape[2]
        h, w = height // self.spatial_scale, width // self.spatial_scale
        started = time.perf_counter()

        # 1. Condition: the projected state, and the projected null state for guidance.
        cond = self.projector(states.to(device, self.projector.null_state.dtype))
        uncond = self.projector.null(b)

        # 2. Timesteps of the flow-matching schedule (a copy: the scheduler keeps a step index).
        scheduler = copy.deepcopy(self.scheduler)
        scheduler.set_timesteps(num_inference_steps, device=device)

        # 3. Start the new frames from seeded noise (drawn on the CPU, so a seed gives the same clip anywhere).
        z = self.vae.config.z_dim
        noise = torch.randn((b, z, num_new_frames, h, w), generator=generator, dtype=torch.float32)
        latents = noise.to(device)

        # 4. Denoise: the context stays clean at the head of the sequence, only the new frames move. A cache hook
        # of diffusers' (FirstBlockCache and the like, `transformer.enable_cache`) starts afresh with each clip and
        # is told where the loop is, as diffusers' Wan pipelines tell it (both halves of guidance run as one batch).
        cached = getattr(self.transformer, "is_cache_enabled", False)
        if cached:
            self.transformer._reset_stateful_cache()
        for i, t in enumerate(scheduler.timesteps):
            model_input = latents if context is None else torch.cat([context.to(latents), latents], dim=2)
            self.current_timestep = t  # what diffusers' pipelines expose to cache hooks (PAB, FasterCache)
            with self._cache_step(cached, i, scheduler):
                flow = self.guided_flow(model_input, t, cond, uncond, c, guidance_scale)[:, :, c:]
            latents = scheduler.step(flow, t, latents, return_dict=False)[0]
            if on_step is not None:
                latents = on_step(i, t, latents)
        self.current_timestep = None
        denoised = time.perf_counter()

        # 5. Decode the whole sequence (the causal VAE needs the context to continue smoothly), keep the new part.
        full = latents if context is None else torch.cat([context.to(latents), latents], dim=2)
        frames = self.decode_clip(full, c)
        if timings is not None:
            timings["denoise"] = timings.get("denoise", 0.0) + denoised - started
            timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - denoised
        return full, frames

    def _cache_step(self, cached: bool, index: int, scheduler):
        if not cached:
            return contextlib.nullcontext()
        return self.transformer.cache_context("cond", step_index=index, sigma=float(scheduler.sigmas[index]),
                                              num_inference_steps=len(scheduler.timesteps))

    # --- save / load ----------------------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path) -> None:
        """`path/` gets config.json + model.safetensors (the projector and null state); the transformer, VAE and
        scheduler go in sibling folders written by diffusers."""
        save_part(path, self.config, self.projector.state_dict())

    @classmethod
    def from_parts(cls, transformer, vae, scheduler, path: str | Path) -> "Renderer":
        renderer = cls(transformer, vae, scheduler, load_json(RendererConfig, Path(path) / "config.json"))
        load_part_weights(path, dict(renderer.projector.named_parameters()))
        return renderer


def to_uint8_thwc(frames: torch.Tensor) -> np.ndarray:
    """Frames (3, T, H, W) in [-1, 1] -> uint8 (T, H, W, 3)."""
    return ((frames.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()


def from_uint8_thwc(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> frames (3, T, H, W) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float() / 127.5 - 1
