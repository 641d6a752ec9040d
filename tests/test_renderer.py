"""Renderer: clip shapes, context handling, seed determinism, projector sizes (tiny and real, on meta)."""

import json
from pathlib import Path

import pytest
import torch

from owl.config import PRESETS


def film(renderer, seed, context=None, new=None):
    cfg = renderer.config
    states = torch.randn(1, cfg.num_queries, cfg.state_dim, generator=torch.Generator().manual_seed(0))
    new = new or cfg.clip_latent_frames + (context is None)
    return renderer.film(states, context, new, cfg.height, cfg.width, 2, 2.0, generator=torch.Generator().manual_seed(seed))


def test_clip_shapes_with_and_without_context(tiny_pipe):
    r = tiny_pipe.renderer
    cfg = r.config
    latents, frames = film(r, 0)
    n = cfg.clip_latent_frames + 1
    assert latents.shape == (1, 4, n, cfg.height // 8, cfg.width // 8)
    assert frames.shape == (1, 3, 1 + 4 * (n - 1), cfg.height, cfg.width) == (1, 3, r.frames_per_clip(True), 64, 64)
    assert frames.min() >= -1 and frames.max() <= 1
    context = latents[:, :, -cfg.context_latent_frames:]
    latents2, frames2 = film(r, 1, context=context)
    assert latents2.shape[2] == cfg.context_latent_frames + cfg.clip_latent_frames
    torch.testing.assert_close(latents2[:, :, : cfg.context_latent_frames], context)  # the context stays clean
    assert frames2.shape[2] == r.frames_per_clip(False) == 4 * cfg.clip_latent_frames


def test_seed_determinism(tiny_pipe):
    r = tiny_pipe.renderer
    a, fa = film(r, 7)
    b, fb = film(r, 7)
    c, _ = film(r, 8)
    assert torch.equal(a, b) and torch.equal(fa, fb)
    assert not torch.allclose(a, c)


def test_context_tokens_get_timestep_zero(tiny_pipe, monkeypatch):
    r = tiny_pipe.renderer
    seen = []
    original = r.transformer.forward
    monkeypatch.setattr(r.transformer, "forward", lambda *a, **k: seen.append(k["timestep"]) or original(*a, **k))
    latents, _ = film(r, 0)
    film(r, 0, context=latents[:, :, -1:])
    per_token = seen[-1]
    tokens_per_frame = (r.config.height // 16) * (r.config.width // 16)
    assert per_token.ndim == 2 and (per_token[:, :tokens_per_frame] == 0).all() and (per_token[:, tokens_per_frame:] > 0).all()


def test_size_check_names_the_multiple(tiny_pipe):
    from owl import OwlError

    with pytest.raises(OwlError, match="multiple of 16"):
        tiny_pipe.renderer.check_size(72, 64)


def test_tiny_projector_dims(tiny_pipe):
    r, wm = tiny_pipe.renderer, tiny_pipe.world_model
    out = r.projector(torch.zeros(2, wm.config.num_queries, wm.hidden_size))
    assert out.shape == (2, wm.config.num_queries, r.transformer.config.text_dim)


REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "real-configs.json").read_text())


def test_real_preset_matches_the_published_configs():
    preset = PRESETS["qwen2.5-vl-3b+wan2.1-1.3b"]
    qwen, wan = REFERENCE["qwen2_5_vl_3b_instruct"], REFERENCE["wan2_1_t2v_1_3b_diffusers"]["transformer"]
    text = preset.vlm["text_config"]
    for key in ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers", "num_key_value_heads", "vocab_size"):
        assert text[key] == qwen[key], key
    assert text["rope_parameters"]["mrope_section"] == qwen["rope_scaling"]["mrope_section"]
    for key, value in qwen["vision_config"].items():
        assert preset.vlm["vision_config"][key] == value, key
    for key, value in wan.items():
        if not key.startswith("_"):
            assert preset.transformer[key] == (list(value) if isinstance(value, list) else value), key


def test_real_size_shapes_on_meta():
    """Qwen2.5-VL-3B + Wan2.1-1.3B built without weights: projector, state, KV cache and denoiser shapes fit."""
    from diffusers import WanTransformer3DModel
    from transformers import AutoConfig, AutoModelForImageTextToText

    from owl.renderer import StateProjector

    preset = PRESETS["qwen2.5-vl-3b+wan2.1-1.3b"]
    q, d = preset.world_model.num_queries, preset.vlm["text_config"]["hidden_size"]
    with torch.device("meta"):
        vlm = AutoModelForImageTextToText.from_config(AutoConfig.for_model(**preset.vlm))
        transformer = WanTransformer3DModel(**preset.transformer)
        projector = StateProjector(q, preset.renderer.state_dim, transformer.config.text_dim)
        from transformers import DynamicCache

        from owl.world_model import _cache_argument

        cache = DynamicCache(config=vlm.config.get_text_config())
        embeds = torch.empty(1, q, d)
        positions = torch.arange(q).expand(3, 1, q)
        lm = vlm.model.language_model
        states = lm(inputs_embeds=embeds, position_ids=positions, use_cache=True,
                    **{_cache_argument(type(lm)): cache}).last_hidden_state
        cond = projector(states)
        r = preset.renderer
        n = r.clip_latent_frames + r.context_latent_frames
        latents = torch.empty(1, 16, n, r.height // 8, r.width // 8)
        flow = transformer(latents, timestep=torch.empty(1), encoder_hidden_states=cond, return_dict=False)[0]
    assert states.shape == (1, 128, 2048)
    assert cond.shape == (1, 128, 4096)
    assert len(cache.layers) == 36
    assert cache.layers[0].keys.shape == (1, 2, 128, 128)  # (B, kv heads, tokens, head dim)
    assert flow.shape == latents.shape == (1, 16, 21, 60, 104)
    assert 1 + 4 * (n - 1) == 81  # Wan2.1's native 81-frame clip


def test_real_size_preset_builds_through_from_preset():
    """benchmarks/vs_wan.py builds the real sizes with random weights: on the meta device here (no memory), with
    the built-in tokenizer's special-token ids in the LMM's config."""
    from owl import OwlPipeline

    pipe = OwlPipeline.from_preset("qwen2.5-vl-3b+wan2.1-1.3b", device="meta")
    wm, r = pipe.world_model, pipe.renderer
    lmm = sum(p.numel() for p in wm.vlm.parameters())
    vdm = sum(p.numel() for p in r.transformer.parameters())
    assert 3.5e9 < lmm < 4.0e9 and 1.3e9 < vdm < 1.5e9  # Qwen2.5-VL-3B: 3.75B; Wan2.1-T2V-1.3B: 1.42B
    assert wm.state_queries.shape == (128, 2048) and r.vae.config.z_dim == 16
    assert (r.config.height, r.config.width) == (480, 832)
    for key, token in (("image_token_id", "<|image_pad|>"), ("vision_start_token_id", "<|vision_start|>")):
        assert getattr(wm.vlm.config, key) == wm.tokenizer.convert_tokens_to_ids(token)


def test_shapes_vae4_films_16_by_16_latents_with_as_many_tokens_as_shapes():
    """`shapes-vae4`: 4x-spatial latents of the same 64 x 64 frames, 4 x 4 patches, so the denoiser's sequence is
    no longer than `shapes`'s (16 tokens a frame)."""
    from owl import OwlPipeline

    tokens = {}
    for name, scale in (("shapes", 8), ("shapes-vae4", 4)):
        latents, frames = film(OwlPipeline.from_preset(name).renderer, 0)
        assert latents.shape[-2:] == (64 // scale, 64 // scale)
        assert frames.shape[-2:] == (64, 64)
        patch = PRESETS[name].transformer["patch_size"]
        tokens[name] = (latents.shape[-2] // patch[1]) * (latents.shape[-1] // patch[2])
    assert tokens == {"shapes": 16, "shapes-vae4": 16}


def test_null_state_projection_is_kept_until_a_weight_changes():
    import torch

    from owl.renderer import StateProjector

    projector = StateProjector(num_queries=3, state_dim=8, text_dim=16)
    with torch.no_grad():
        first = projector.null(2)
        assert first.shape == (2, 3, 16) and projector.null(1)[0].data_ptr() == first[0].data_ptr()  # kept
        projector.null_state.add_(1.0)  # a weight changed in place: projected again
        torch.testing.assert_close(projector.null(1)[0], projector.proj(projector.null_state))
    assert projector.null(1).requires_grad  # training: always projected afresh, with gradients
