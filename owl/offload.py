"""Fitting a real-size Owl on one accelerator: model CPU offload and group offload, as diffusers does them.

Owl's loop cycles through three big components every clip, in `OwlPipeline.model_cpu_offload_seq` order:
the LMM (a vision pass over the key frames, the dynamics, the state read-out), the Wan transformer (every
denoising step), the Wan VAE (the decode). The small parts (state queries, projector, latent statistics) stay on
the accelerator, and inputs are made there.

- Model CPU offload (`OwlPipeline.enable_model_cpu_offload`): the weights live in CPU memory and one component
  at a time is moved to the accelerator just before it runs (the previous one goes back), as diffusers'
  `enable_model_cpu_offload`. Peak accelerator memory: about the largest component plus the LMM's KV cache.
  The hooks are accelerate's `ModelHook`s: the LMM is called through its parts (see owl/world_model.py), so each
  part brings the whole LMM; diffusers runs the VAE's hook before `encode` and `decode` as in its own pipelines.
- Group offload (`OwlPipeline.enable_group_offload`): diffusers' group offloading on each component, the Wan
  transformer and VAE block by block (or leaf by leaf), the LMM leaf by leaf (it is called through its parts),
  optionally overlapping the copies with compute on a CUDA stream: less memory than model offload (a few blocks
  on the accelerator at a time), slower without streams.
"""

from __future__ import annotations

import torch
from torch import nn


def _small_parts(pipe, device: torch.device) -> None:
    """The parts that stay on the accelerator: they are tiny and every step reads them."""
    pipe.world_model.place_small_parts(device)
    pipe.renderer.projector.to(device)
    for name in ("latents_mean", "latents_std"):
        setattr(pipe.renderer, name, getattr(pipe.renderer, name).to(device))


def components(pipe) -> dict[str, nn.Module]:
    """The big components by their names in `model_cpu_offload_seq`."""
    parts = {name: module for name, (module, _) in pipe.world_model.offload_parts().items()}
    return {**parts, "transformer": pipe.renderer.transformer, "vae": pipe.renderer.vae}


def entry_points(pipe, name: str) -> list[nn.Module]:
    """The modules through which a component is called: the world model's as it says (the LMM through its
    parts), the others whole."""
    parts = pipe.world_model.offload_parts()
    return parts[name][1] if name in parts else [components(pipe)[name]]


class ModelOffload:
    """Which component is on the accelerator: `onload(name)` moves it there before it runs and sends the previous
    one back to the CPU. `moves` counts the swaps."""

    def __init__(self, modules: dict[str, nn.Module], device: torch.device):
        self.modules, self.device, self.current, self.moves = modules, device, None, 0

    def onload(self, name: str) -> None:
        if name == self.current:
            return
        if self.current is not None:
            self.modules[self.current].to("cpu")
        self.modules[name].to(self.device)
        self.current, self.moves = name, self.moves + 1


def enable_model_cpu_offload(pipe, device: torch.device, order: list[str]) -> ModelOffload:
    from accelerate.hooks import ModelHook, add_hook_to_module

    class Onload(ModelHook):
        def __init__(self, name: str):
            super().__init__()
            self.name = name

        def pre_forward(self, module, *args, **kwargs):
            offload.onload(self.name)
            return args, kwargs

    pipe.to("cpu")
    _small_parts(pipe, device)
    offload = ModelOffload({name: components(pipe)[name] for name in order}, device)
    for name in order:
        for module in entry_points(pipe, name):
            add_hook_to_module(module, Onload(name), append=True)
    return offload


def enable_group_offload(pipe, onload_device: torch.device, offload_device: torch.device, offload_type: str,
                         num_blocks_per_group: int | None, use_stream: bool) -> None:
    from diffusers.hooks import apply_group_offloading

    _small_parts(pipe, onload_device)
    options = dict(onload_device=onload_device, offload_device=offload_device, offload_type=offload_type,
                   num_blocks_per_group=num_blocks_per_group if offload_type == "block_level" else None,
                   use_stream=use_stream)
    pipe.renderer.transformer.enable_group_offload(**options)
    pipe.renderer.vae.enable_group_offload(**options)
    # The LMM is called through its parts, not its forward, so it is offloaded leaf by leaf: each leaf (the word
    # embeddings, every linear layer, the LM head) brings itself in when called, whoever calls it.
    for module, _ in pipe.world_model.offload_parts().values():
        apply_group_offloading(module, **{**options, "offload_type": "leaf_level", "num_blocks_per_group": None})
