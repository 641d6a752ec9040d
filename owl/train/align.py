"""Stage `align` (Owl-1 stage 1): the VDM is frozen; the state queries (and the projector, and LoRA on the LMM if
configured) learn to make the state read after a caption match text-condition features of that caption (MSE).

    owl train align --config configs/shapes/align.yaml

The LMM reads `[caption] S_0`, as at the first step of a rollout, and s_0 is compared with a target:
- `text_encoder`: the VDM's own text-encoder features (Wan: UMT5-XXL, 4096-d), the paper's target. The
  projected state (Q, text_dim) matches the first Q encoder tokens, zero past the caption's end, as Wan pads
  its text condition.
- `lmm_text`, for a VDM trained from scratch that has no text encoder: the LMM's own last-layer hidden states
  of the caption read alone, resampled to Q tokens. The LMM must stay frozen here (no lr_lmm, no LoRA), or the
  target would move with what is trained. In a random LMM these features are dominated by what all captions
  share: the states of captions one word apart come out nearly equal (`python -m owl.train.probe`).
- `words`, for a VDM trained from scratch (the shipped model): the state must name every word of its caption
  (`words_loss`), read through the LMM's own LM head, so no parameter is added. Captions one word apart then get
  states apart in that word, which the denoiser can key on. The LMM may train (lr_lmm, LoRA): the target is the
  caption's tokens, which nothing moves. Stages `generate` and `world` can keep it as an auxiliary loss
  (`words_weight`), so that their own losses do not wash the words out of the state again.
With `lmm_text` and `words` the projector is trained later, in stage 2.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from owl.data.collate import collate
from owl.errors import OwlError
from owl.train.common import AlignConfig, add_lora, check_data, load_pipeline, resolve_model, train
from owl.train.data import prepare_videos


class Captions(torch.utils.data.Dataset):
    def __init__(self, videos):
        self.captions = sorted({c for v in videos for c in v.captions if c})

    def __len__(self) -> int:
        return len(self.captions)

    def __getitem__(self, i: int) -> dict:
        return {"caption": self.captions[i]}


def read_states(world_model, captions: list[str]) -> torch.Tensor:
    """s_0 after `[caption] S_0` for each caption: (B, Q, D)."""
    sequences = [[world_model.embed_ids(world_model.text_ids(c)), world_model.query_segment()] for c in captions]
    hidden = world_model.run_batch(sequences)
    q = world_model.config.num_queries
    starts = [s[0].embeds.shape[0] for s in sequences]
    return torch.stack([hidden[b, i : i + q] for b, i in enumerate(starts)])


def words_loss(world_model, states: torch.Tensor, captions: list[str]) -> torch.Tensor:
    """How far states (B, Q, D) are from naming the words of their captions.

    Each query's hidden state, read through the LMM's LM head, is a distribution over the vocabulary; the mean of
    the Q distributions should hold each distinct token of the caption. The loss is the cross-entropy of that
    mixture against the caption's tokens, weighted alike: log k for a state that names its k tokens and nothing
    else, more for one that misses any of them.
    """
    head = world_model.vlm.get_output_embeddings()
    mixture = head(states).float().softmax(-1).mean(1)  # (B, V)
    target = torch.zeros_like(mixture)
    for b, caption in enumerate(captions):
        ids = sorted(set(world_model.text_ids(caption)))
        target[b, ids] = 1.0 / len(ids)
    return -(target * mixture.clamp(min=1e-8).log()).sum(-1).mean()


def load_text_encoder(path: str):
    """(encoder, tokenizer) of the paper's align target, frozen: from a diffusers Wan folder as published (its
    `text_encoder/`, UMT5, and the `tokenizer/` beside it) or from an encoder folder that holds its tokenizer.
    UMT5 loads as UMT5EncoderModel, which keeps its per-layer position biases (T5EncoderModel would drop them)."""
    from transformers import AutoTokenizer, T5EncoderModel, UMT5EncoderModel

    from owl.components import load_component, read_json

    root = Path(path)
    if not path or not root.is_dir():
        raise OwlError(f"align_target text_encoder needs text_encoder: a Wan folder or an encoder folder, got {path!r}")
    wan = (root / "model_index.json").is_file()
    encoder_dir, tokenizer_dir = (root / "text_encoder", root / "tokenizer") if wan else (root, root)
    classes = {"umt5": UMT5EncoderModel, "t5": T5EncoderModel}
    kind = read_json(encoder_dir / "config.json", "text encoder").get("model_type")
    if kind not in classes:
        raise OwlError(f"text encoder {str(encoder_dir)!r} is a {kind!r} model; supported: {', '.join(classes)}")
    encoder = load_component("the text encoder", encoder_dir,
                             lambda: classes[kind].from_pretrained(encoder_dir, use_safetensors=True))
    tokenizer = load_component("the text encoder's tokenizer", tokenizer_dir,
                               lambda: AutoTokenizer.from_pretrained(tokenizer_dir))
    return encoder.eval().requires_grad_(False), tokenizer


class AlignLoss(nn.Module):
    def __init__(self, pipe, cfg: AlignConfig):
        super().__init__()
        self.world_model, self.projector, self.cfg = pipe.world_model, pipe.renderer.projector, cfg
        if cfg.align_target == "text_encoder":
            self.encoder, self.encoder_tokenizer = load_text_encoder(cfg.text_encoder)
            text_dim = self.projector.proj[-1].out_features
            if self.encoder.config.d_model != text_dim:
                raise OwlError(f"text_encoder {cfg.text_encoder!r} makes {self.encoder.config.d_model}-d features but "
                               f"the renderer's condition is {text_dim}-d: give the encoder of this model's Wan")
        elif cfg.align_target not in ("lmm_text", "words"):
            raise OwlError(f"align_target must be lmm_text, words or text_encoder, got {cfg.align_target!r}")
        elif cfg.align_target == "lmm_text" and (cfg.lr_lmm > 0 or cfg.lora_rank > 0):
            raise OwlError("align_target lmm_text needs a frozen LMM: set lr_lmm=0 and lora_rank=0")

    @torch.no_grad()
    def target(self, captions: list[str]) -> torch.Tensor:
        wm, q = self.world_model, self.world_model.config.num_queries
        if self.cfg.align_target == "text_encoder":
            tokens = self.encoder_tokenizer(captions, padding="max_length", max_length=q, truncation=True, return_tensors="pt")
            features = self.encoder(**tokens.to(self.encoder.device)).last_hidden_state
            return features * tokens["attention_mask"][..., None]  # zero past the caption, as Wan pads
        out = []
        for caption in captions:
            ids = wm.text_ids(caption)
            hidden = wm.run(wm.embed_ids(ids).embeds[None], torch.arange(len(ids), device=wm.device).expand(3, 1, -1))
            out.append(F.interpolate(hidden.transpose(1, 2), size=q, mode="linear", align_corners=True).transpose(1, 2)[0])
        return torch.stack(out)

    def forward(self, batch: dict, generator: torch.Generator):
        states = read_states(self.world_model, batch["caption"])
        if self.cfg.align_target == "words":
            return words_loss(self.world_model, states, batch["caption"]), {}
        pred = self.projector(states) if self.cfg.align_target == "text_encoder" else states
        loss = F.mse_loss(pred.float(), self.target(batch["caption"]).float())
        return loss, {}


def main(cfg: AlignConfig, resume: bool = False, quiet: bool = False) -> Path:
    model, data = resolve_model(cfg.model), check_data(cfg.data)
    pipe = load_pipeline(model, cfg.seed)
    if cfg.lora_rank > 0:
        add_lora(pipe.world_model, cfg.lora_rank)
    loss = AlignLoss(pipe, cfg)
    videos = prepare_videos(data, pipe.renderer, latents=False, max_videos=cfg.max_videos, skip_invalid=cfg.skip_invalid)
    return train(cfg, "align", pipe, loss, Captions(videos), collate, resume, quiet)
