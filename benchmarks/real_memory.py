"""What each training stage of configs/real/ holds in memory at real size, computed (no GPU needed).

    python benchmarks/real_memory.py            Qwen2.5-VL-3B + Wan2.1-T2V-1.3B, the stages of configs/real/

Builds the real-size model on the meta device (shapes only, no weights), applies each stage's settings as
training does (LoRA on the LMM, `param_groups` for what trains), and counts bytes: float32 master weights of the
whole model, gradients and AdamW's two moments for what trains, and the EMA of the transformer where the stage
keeps one. Activations are not counted: they depend on the batch, the clip length and gradient checkpointing,
and are measured on a GPU (benchmarks/vs_wan.py). Per process under DDP; FSDP / ZeRO-2 divide the optimizer (and
with FSDP the weights) by the number of processes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from owl.train.common import add_lora, load_config, param_groups

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "real"
GB = 1e9


def build_meta(preset_name: str):
    from owl.pipeline import OwlPipeline

    return OwlPipeline.from_preset(preset_name, device="meta")


def stage_memory(stage: str, preset_name: str) -> dict:
    cfg = load_config(stage, str(CONFIGS / f"{stage}.yaml"), [])
    pipe = build_meta(preset_name)
    if cfg.lora_rank > 0:
        add_lora(pipe.world_model, cfg.lora_rank)
    groups = param_groups(cfg, pipe)
    every = {id(p): p for m in (pipe.world_model, pipe.renderer) for p in m.parameters()}
    trained = sum(p.numel() for g in groups for p in g["params"])
    total = sum(p.numel() for p in every.values())
    ema = sum(p.numel() for p in pipe.renderer.transformer.parameters()) if cfg.ema_decay > 0 and cfg.lr_transformer > 0 else 0
    return {"stage": stage, "params": total, "trained": trained,
            "weights_gb": 4 * total / GB, "grads_gb": 4 * trained / GB, "adam_gb": 8 * trained / GB,
            "ema_gb": 4 * ema / GB, "total_gb": (4 * total + 12 * trained + 4 * ema) / GB,
            "groups": {g["name"]: sum(p.numel() for p in g["params"]) for g in groups}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="qwen2.5-vl-3b+wan2.1-1.3b")
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    print(f"{args.preset}, configs/real/: float32 master weights, AdamW, per process (DDP); activations excluded")
    print("| stage | parameters | trained | weights | grads | AdamW | EMA | total |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for stage in ("align", "generate", "world"):
        m = stage_memory(stage, args.preset)
        print(f"| {stage} | {m['params'] / 1e9:.2f}B | {m['trained'] / 1e6:.1f}M ({', '.join(m['groups'])}) | "
              f"{m['weights_gb']:.1f} GB | {m['grads_gb']:.1f} GB | {m['adam_gb']:.1f} GB | {m['ema_gb']:.1f} GB | "
              f"{m['total_gb']:.1f} GB |")


if __name__ == "__main__":
    main()
