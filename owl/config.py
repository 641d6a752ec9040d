"""Settings as flat dataclasses, one per component, saved beside the weights as `config.json`; model presets.

- `WorldModelConfig`: what Owl adds to a vision-language model (state queries, key frames, dynamics text).
- `RendererConfig`: what Owl adds to a Wan video diffusion model (projector, clip layout, sampling defaults).
- `DirectorConfig`: director mode's world model, an unmodified instruct VLM (its instruction, what it is shown).
- `PRESETS`: named model sizes in one dict (after DiT): the backbone configs (a transformers VLM config, a
  diffusers Wan transformer and VAE config) plus Owl's two configs. `tiny` builds random seeded weights in
  seconds on CPU for tests and smoke runs; `shapes` is the size of the shipped model (checkpoints/owl-shapes),
  trained from scratch by runs/shapes.sh (`shapes-vae4`: the same with a 4x-spatial VAE);
  `qwen2.5-vl-3b+wan2.1-1.3b` holds the real checkpoints' shapes
  (see shared/reference/real-configs.json) and is built on the meta device to check shapes at real size.

Dataclasses are never mutated in place: `replace(cfg, field=value)` gives a new one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from owl.errors import OwlError


@dataclass(frozen=True)
class WorldModelConfig:
    num_queries: int = 128  # Q learned state queries; their last-layer hidden states are s_t (Q x D)
    key_frames: int = 2  # K frames of each clip that go back into the LMM as the observation O_t
    key_frame_size: int = 448  # key frames enter the vision tower at about this side squared in pixels, aspect kept
    # (the processor's smart_resize: sides multiples of patch * merge)
    max_dynamics_tokens: int = 32  # generation bound for d_t
    dynamics_end_token: str = "<|im_end|>"  # closes every dynamics text D_t
    vision_start_token: str = "<|vision_start|>"
    vision_end_token: str = "<|vision_end|>"


@dataclass(frozen=True)
class RendererConfig:
    state_dim: int = 2048  # D of the LMM hidden states (input of the projector)
    num_queries: int = 128  # Q, the length of the projected condition
    fps: int = 16  # frame rate the VDM was trained at; the default output fps
    height: int = 480
    width: int = 832
    clip_latent_frames: int = 5  # new latent frames per clip: 4 * n video frames (the first clip has 1 more)
    context_latent_frames: int = 1  # clean latent frames of the previous clip at the head of the next one
    num_inference_steps: int = 30
    guidance_scale: float = 5.0
    flow_shift: float = 3.0  # timestep shift of the flow-matching schedule (Wan uses 3.0 at 480p)
    # what conditions the transformer: "state" (s_t through the learned projector, Owl-1) or "text" (director mode:
    # the Wan model's own text encoding of the prompt and the current event, as it was trained; no new weights)
    condition: str = "state"


DIRECTOR_INSTRUCTION = (
    "You direct a long video, one short clip at a time. You are given the video's prompt, the events filmed so "
    "far, and the last frames of the latest clip. Write the next event: one short sentence in the present tense "
    "saying what happens next in the scene, consistent with what has been filmed. Write only that sentence."
)


@dataclass(frozen=True)
class DirectorConfig:
    """Director mode (owl/director.py): an instruct VLM writes each next event through its chat template, and the
    video model's own text encoder turns the prompt and that event into the renderer's condition."""

    instruction: str = DIRECTOR_INSTRUCTION  # the system message the VLM gets before every event it writes
    key_frames: int = 2  # K frames of the latest clip the VLM sees
    key_frame_size: int = 448  # key frames enter the vision tower at about this side squared in pixels, aspect kept
    max_dynamics_tokens: int = 32  # generation bound for an event
    max_text_tokens: int = 512  # the text condition's length (WanPipeline's max_sequence_length)
    negative_prompt: str = ""  # the unconditional text of guidance (WanPipeline's default), encoded once at init


@dataclass(frozen=True)
class ModelPreset:
    """Everything needed to build an Owl model from scratch (random weights)."""

    vlm: dict[str, Any]  # a transformers config dict (`model_type` picks the class)
    transformer: dict[str, Any]  # diffusers WanTransformer3DModel config
    vae: dict[str, Any]  # diffusers AutoencoderKLWan config
    world_model: WorldModelConfig = field(default_factory=WorldModelConfig)
    renderer: RendererConfig = field(default_factory=RendererConfig)
    tokenizer: str = "tiny"  # "tiny": built in-process with `tokenizers`; otherwise a hub id or folder


def to_dict(cfg) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls, data: dict[str, Any], source: str = "config"):
    """Build dataclass `cls` from `data`, refusing unknown keys and wrong types with a one-line error."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise OwlError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; accepted: {sorted(known)}")
    values = {}
    for name, value in data.items():
        expected = type(getattr(cls(), name)) if name not in ("vlm", "transformer", "vae") else dict
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise OwlError(f"{source}: {cls.__name__}.{name} must be {expected.__name__}, got {value!r}")
        values[name] = value
    return cls(**values)


def save_json(cfg, path: Path) -> None:
    from owl.files import write_bytes_atomic

    write_bytes_atomic(path, (json.dumps(to_dict(cfg), indent=2) + "\n").encode())


def load_json(cls, path: Path):
    if not path.is_file():
        raise OwlError(f"missing config file: {str(path)!r}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise OwlError(f"{str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    return from_dict(cls, data, source=str(path))


# --- presets -----------------------------------------------------------------------------------------------

TINY_VOCAB = 512  # the tiny tokenizer's vocabulary size (see owl.tokenizer)

_TINY = ModelPreset(
    vlm={
        "model_type": "qwen2_5_vl",
        "text_config": {
            "model_type": "qwen2_5_vl_text",
            "vocab_size": TINY_VOCAB,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "tie_word_embeddings": True,
        },
        "vision_config": {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "in_chans": 3,
            "out_hidden_size": 64,
            "patch_size": 4,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 16,
            "fullatt_block_indexes": [1],
        },
        "tie_word_embeddings": True,
    },
    transformer={
        "patch_size": [1, 2, 2],
        "num_attention_heads": 2,
        "attention_head_dim": 16,
        "in_channels": 4,
        "out_channels": 4,
        "text_dim": 32,
        "freq_dim": 32,
        "ffn_dim": 64,
        "num_layers": 2,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "eps": 1e-6,
        "rope_max_seq_len": 64,
    },
    vae={
        "base_dim": 8,
        "z_dim": 4,
        "dim_mult": [1, 2, 2, 2],
        "num_res_blocks": 1,
        "attn_scales": [],
        "temperal_downsample": [False, True, True],
        "latents_mean": [0.0] * 4,
        "latents_std": [1.0] * 4,
    },
    world_model=WorldModelConfig(num_queries=8, key_frames=2, key_frame_size=32, max_dynamics_tokens=12),
    renderer=RendererConfig(
        state_dim=64, num_queries=8, fps=8, height=64, width=64, clip_latent_frames=4,
        context_latent_frames=1, num_inference_steps=4, guidance_scale=2.0, flow_shift=1.0,
    ),
    tokenizer="tiny",
)


_SHAPES = ModelPreset(
    vlm={
        "model_type": "qwen2_5_vl",
        "text_config": {
            "model_type": "qwen2_5_vl_text",
            "vocab_size": TINY_VOCAB,
            "hidden_size": 128,
            "intermediate_size": 384,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 32768,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
            "tie_word_embeddings": True,
        },
        "vision_config": {
            "depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 2, "in_chans": 3,
            "out_hidden_size": 128, "patch_size": 4, "spatial_merge_size": 2, "temporal_patch_size": 2,
            "window_size": 16, "fullatt_block_indexes": [1],
        },
        "tie_word_embeddings": True,
    },
    transformer={
        "patch_size": [1, 2, 2], "num_attention_heads": 4, "attention_head_dim": 32, "in_channels": 8,
        "out_channels": 8, "text_dim": 128, "freq_dim": 64, "ffn_dim": 384, "num_layers": 4,
        "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "rope_max_seq_len": 64,
    },
    vae={
        "base_dim": 8, "z_dim": 8, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 1, "attn_scales": [],
        "temperal_downsample": [False, True, True], "latents_mean": [0.0] * 8, "latents_std": [1.0] * 8,
    },
    world_model=WorldModelConfig(num_queries=16, key_frames=2, key_frame_size=64, max_dynamics_tokens=16),
    renderer=RendererConfig(
        state_dim=128, num_queries=16, fps=8, height=64, width=64, clip_latent_frames=8,
        context_latent_frames=1, num_inference_steps=10, guidance_scale=3.0, flow_shift=2.0,
    ),
    tokenizer="tiny",
)


def _real_3b_1_3b() -> ModelPreset:
    """Qwen2.5-VL-3B-Instruct + Wan2.1-T2V-1.3B, shapes as their published configs state them."""
    return ModelPreset(
        vlm={
            "model_type": "qwen2_5_vl",
            "text_config": {
                "model_type": "qwen2_5_vl_text",
                "vocab_size": 151936,
                "hidden_size": 2048,
                "intermediate_size": 11008,
                "num_hidden_layers": 36,
                "num_attention_heads": 16,
                "num_key_value_heads": 2,
                "max_position_embeddings": 128000,
                "rms_norm_eps": 1e-6,
                "hidden_act": "silu",
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
                "tie_word_embeddings": True,
            },
            "vision_config": {
                "depth": 32, "hidden_act": "silu", "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "in_chans": 3,
                "out_hidden_size": 2048, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31], "tokens_per_second": 2,
            },
            "bos_token_id": 151643, "eos_token_id": 151645, "vision_start_token_id": 151652,
            "vision_end_token_id": 151653, "image_token_id": 151655, "video_token_id": 151656,
            "tie_word_embeddings": True,
        },
        transformer={
            "patch_size": [1, 2, 2], "num_attention_heads": 12, "attention_head_dim": 128, "in_channels": 16,
            "out_channels": 16, "text_dim": 4096, "freq_dim": 256, "ffn_dim": 8960, "num_layers": 30,
            "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": None,
            "added_kv_proj_dim": None, "rope_max_seq_len": 1024,
        },
        vae={},  # diffusers' defaults are Wan2.1's VAE
        world_model=WorldModelConfig(num_queries=128, key_frames=2, key_frame_size=448),
        renderer=RendererConfig(state_dim=2048, num_queries=128, fps=16, height=480, width=832,
                                clip_latent_frames=20, context_latent_frames=1),
        tokenizer="Qwen/Qwen2.5-VL-3B-Instruct",
    )


# `shapes` with a 4x-spatial VAE (16 x 16 latents of 64 x 64 frames, not Wan's 8x) and 4 x 4 patches (16 tokens a
# frame, as `shapes` has). The VAE keeps triangles triangles, which `shapes`'s 8 x 8 latents round into blobs; within
# the CPU recipe's minutes its denoiser trained less well (README: "What limits the model")
_SHAPES_VAE4 = dataclasses.replace(
    _SHAPES,
    transformer={**_SHAPES.transformer, "patch_size": [1, 4, 4]},
    vae={**_SHAPES.vae, "dim_mult": [1, 2, 4], "temperal_downsample": [True, True], "scale_factor_spatial": 4},
)

PRESETS: dict[str, ModelPreset] = {
    "tiny": _TINY, "shapes": _SHAPES, "shapes-vae4": _SHAPES_VAE4, "qwen2.5-vl-3b+wan2.1-1.3b": _real_3b_1_3b(),
}


def get_preset(name: str) -> ModelPreset:
    if name not in PRESETS:
        raise OwlError(f"unknown preset {name!r}; accepted: {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
