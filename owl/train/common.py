"""What the four training stages share: settings, the model they start from, optimizer groups, checkpoints, logs.

Each stage (`vae.py`, `align.py`, `generate.py`, `world.py`) is a linear script that defines its loss as a small
`nn.Module` and calls `train(...)` below; there is no trainer class to subclass.

- Settings: `TrainConfig` (shared fields) and one subclass per stage; a YAML file plus `--set key=value` overrides,
  refused with a one-line error on an unknown key or a wrong type before anything is built or loaded.
- One learning rate per component, 0 meaning frozen (after nanoVLM): queries, lmm, lora, vision, projector,
  transformer, vae. Warmup then cosine decay; AdamW; gradient clipping; EMA of the VDM transformer (diffusers'
  EMAModel); mixed precision and gradient accumulation from accelerate.
- Determinism: batch b of step k is a pure function of (seed, k), and so is the noise of step k, so `--resume`
  replays exactly the steps an uninterrupted run would take.
- Artifacts: `output_dir/model/` is a `save_pretrained` folder (the release artifact, loaded by the next stage
  and by OwlPipeline); `output_dir/checkpoints/step-N/` is the resume state, safetensors and JSON only (see
  "checkpoints" below: nothing is unpickled on `--resume`). Both are written under a temporary name and renamed
  when complete, so a crash never leaves a folder that looks done; a checkpoint with a file missing or cut short
  is passed over, with a warning, for the one before. `output_dir/log.jsonl` holds one record per step; `--resume`
  drops the records after the resumed step, as those steps are replayed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import shutil
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from owl.errors import OwlError, OwlWarning

STAGES = ("vae", "align", "generate", "world")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "preset:tiny"  # where the stage starts: a save_pretrained folder, a stage's output_dir, or preset:NAME
    data: str = ""  # a dense-caption file (ActivityNet JSON or Vript) whose videos sit beside it
    output_dir: str = "outputs/stage"
    steps: int = 100
    batch_size: int = 4
    grad_accum: int = 1
    # one learning rate per component; 0 = frozen
    lr_queries: float = 0.0
    lr_lmm: float = 0.0  # full fine-tuning of the LMM's language model
    lr_lora: float = 0.0  # LoRA on the LMM's attention (peft), used when lora_rank > 0
    lora_rank: int = 0
    lr_transformer_lora: float = 0.0  # LoRA on the Wan transformer's attention, used when transformer_lora_rank > 0
    transformer_lora_rank: int = 0  # (stages generate and world; merged into the transformer in the release folder)
    lr_vision: float = 0.0
    lr_projector: float = 0.0
    lr_transformer: float = 0.0
    lr_vae_encoder: float = 0.0  # the VAE's encoder (and quant_conv): it defines the latent space
    lr_vae_decoder: float = 0.0  # the VAE's decoder (and post_quant_conv): alone, a trained denoiser keeps working
    weight_decay: float = 0.0
    warmup_steps: int = 10
    min_lr_ratio: float = 0.1  # cosine decays to this fraction of each learning rate
    grad_clip: float = 1.0
    ema_decay: float = 0.0  # EMA of the VDM transformer; 0 = off
    mixed_precision: str = "no"  # no | fp16 | bf16 (accelerate)
    gradient_checkpointing: bool = False
    seed: int = 0
    save_every: int = 50  # resume state every N steps (and on Ctrl-C)
    keep_checkpoints: int = 2
    log_every: int = 10
    fixed_batch: bool = False  # train on one batch again and again (a check that the loss can fall)
    max_minutes: float = 0.0  # stop (and save) after this much training wall time; 0 = no limit
    max_videos: int = 0  # use only the first N videos; 0 = all
    skip_invalid: bool = False  # skip bad caption entries (counted in a warning) instead of stopping


@dataclass(frozen=True)
class VAEConfig(TrainConfig):
    lr_vae_encoder: float = 1e-3
    lr_vae_decoder: float = 1e-3
    frames: int = 17  # frames per training window (1 + 4k)
    crop: int = 0  # train on square crops of this side (a multiple of 16); 0 = whole frames
    kl_weight: float = 1e-6
    window_start_prob: float = 0.5  # decode from a mid-sequence latent, as the rollout does after context
    fg_weight: float = 0.0  # extra loss weight on pixels unlike the clip's background (its median colour); 0 = off


@dataclass(frozen=True)
class AlignConfig(TrainConfig):
    lr_queries: float = 1e-3
    lr_projector: float = 1e-3
    align_target: str = "lmm_text"  # lmm_text | words (no text encoder: see align.py) | text_encoder
    text_encoder: str = ""  # a transformers T5/UMT5 encoder folder, for align_target=text_encoder


@dataclass(frozen=True)
class GenerateConfig(TrainConfig):
    lr_queries: float = 1e-3
    lr_projector: float = 1e-3
    lr_transformer: float = 1e-3
    cond_dropout: float = 0.1  # the null state replaces the condition, for classifier-free guidance
    context_dropout: float = 0.3  # windows without context frames, so first clips and scene starts are learned
    words_weight: float = 0.0  # weight of align's words loss on each state beside the denoising loss; 0 = off


@dataclass(frozen=True)
class WorldConfig(TrainConfig):
    lr_queries: float = 5e-4
    lr_projector: float = 5e-4
    lr_transformer: float = 5e-4
    lr_lmm: float = 5e-4
    clips_per_sample: int = 4  # T steps of teacher forcing
    dynamics_weight: float = 1.0  # weight of the next-token loss on d_t beside the denoising loss
    words_weight: float = 0.0  # weight of align's words loss on each state s_t; 0 = off
    words_from: str = "caption"  # what s_t names: caption (clip t's) | state (its caption named in full, where
    # the data has state_sentences, else the caption) | history (every caption read before s_t)
    cond_dropout: float = 0.1


STAGE_CONFIGS = {"vae": VAEConfig, "align": AlignConfig, "generate": GenerateConfig, "world": WorldConfig}


def parse_value(text: str, expected: type, key: str):
    """A `--set` value as the field's type."""
    try:
        if expected is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        return expected(text)
    except ValueError:
        raise OwlError(f"--set {key}={text}: {key} must be {expected.__name__}") from None


def load_config(stage: str, path: str | None, overrides: list[str]) -> TrainConfig:
    """Settings of `stage` from a YAML file plus `key=value` overrides; unknown keys and wrong types refused."""
    import yaml

    if stage not in STAGE_CONFIGS:
        raise OwlError(f"unknown stage {stage!r}; accepted: {', '.join(STAGES)}")
    cls = STAGE_CONFIGS[stage]
    data = {}
    if path:
        if not Path(path).is_file():
            raise OwlError(f"config file not found: {path!r}")
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except yaml.YAMLError as exc:
            raise OwlError(f"config {path!r} is not valid YAML: {str(exc).splitlines()[0]}") from exc
        if not isinstance(data, dict):
            raise OwlError(f"config {path!r} must be a mapping of settings")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    defaults = cls()
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep:
            raise OwlError(f"--set takes key=value, got {item!r}")
        if key not in fields:
            raise OwlError(f"--set {key}: unknown setting for stage {stage}; accepted: {', '.join(sorted(fields))}")
        data[key] = parse_value(value, type(getattr(defaults, key)), key)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise OwlError(f"{path}: unknown setting(s) {unknown} for stage {stage}; accepted: {', '.join(sorted(fields))}")
    for key, value in data.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            data[key] = value = float(value)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise OwlError(f"{path}: {key} must be {expected.__name__}, got {value!r}")
    cfg = cls(**data)
    if cfg.mixed_precision not in ("no", "fp16", "bf16"):
        raise OwlError(f"mixed_precision must be no, fp16 or bf16, got {cfg.mixed_precision!r}")
    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.grad_accum < 1:
        raise OwlError("steps, batch_size and grad_accum must be positive")
    return cfg


# --- the model a stage starts from ---------------------------------------------------------------------------

def resolve_model(spec: str) -> str | Path:
    """`preset:NAME`, a save_pretrained folder, or a stage output_dir holding `model/`; checked before training."""
    if spec.startswith("preset:"):
        from owl.config import get_preset

        get_preset(spec.split(":", 1)[1])
        return spec
    path = Path(spec)
    if (path / "model" / "model_index.json").is_file():
        path = path / "model"
    if (path / "model_index.json").is_file():
        from owl.loading import check_model_folder, folder_mode

        if folder_mode(check_model_folder(path)) == "director":
            raise OwlError(f"{spec!r} is a director folder: it runs as it is and has nothing to train; make a "
                           "trainable model with owl init --lmm DIR --vdm DIR --out DIR (without --director)")
        return path
    if not path.exists():
        raise OwlError(f"model not found: {spec!r} (a previous stage's output_dir, a saved Owl folder, or preset:NAME)")
    raise OwlError(f"{spec!r} is not an Owl model folder (no model_index.json); give a previous stage's output_dir")


def load_pipeline(spec: str | Path, seed: int):
    """The stage's starting model, on this process's device (latents are prepared there before training)."""
    from owl.pipeline import OwlPipeline

    device = f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    if isinstance(spec, str) and spec.startswith("preset:"):
        return OwlPipeline.from_preset(spec.split(":", 1)[1], seed=seed, device=device)
    # float32 master weights whatever the folder holds (a bf16 Qwen or Wan): mixed_precision=bf16|fp16 then runs
    # the forward passes in half precision through accelerate's autocast, and the optimizer updates float32
    return OwlPipeline.from_pretrained(spec, device=device, torch_dtype=torch.float32)


def check_data(data: str) -> Path:
    path = Path(data)
    if not data or not path.exists():
        raise OwlError(f"data not found: {data!r} (a dense-caption file in ActivityNet or Vript format, or for "
                       "align and generate a caption-clip table, .csv or .jsonl)")
    return path


# --- optimizer ------------------------------------------------------------------------------------------------

def add_lora(world_model, rank: int) -> None:
    """Wrap the LMM's language model with LoRA adapters on its attention projections (peft)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    world_model.vlm.model.language_model = get_peft_model(world_model.vlm.model.language_model, config)


def add_transformer_lora(renderer, rank: int) -> None:
    """LoRA adapters on the Wan transformer's attention projections (diffusers' peft integration)."""
    from peft import LoraConfig

    config = LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True,
                        target_modules=["to_q", "to_k", "to_v", "to_out.0"])
    renderer.transformer.add_adapter(config)


def param_groups(cfg: TrainConfig, pipe) -> list[dict]:
    """One AdamW group per component with a non-zero learning rate; everything else is frozen."""
    wm, r = pipe.world_model, pipe.renderer
    lm = wm.vlm.model.language_model
    lora = [p for n, p in lm.named_parameters() if "lora_" in n]
    base_lm = [p for n, p in lm.named_parameters() if "lora_" not in n]
    dit_lora = [p for n, p in r.transformer.named_parameters() if "lora_" in n]
    base_dit = [p for n, p in r.transformer.named_parameters() if "lora_" not in n]
    if dit_lora and cfg.lr_transformer > 0:  # the release folder fuses LoRA into weights that would also be training
        raise OwlError("train the transformer fully (lr_transformer) or through LoRA (transformer_lora_rank and "
                       "lr_transformer_lora), not both")
    components = {
        "queries": (cfg.lr_queries, [wm.state_queries]),
        "lmm": (cfg.lr_lmm, base_lm + list(wm.vlm.get_output_embeddings().parameters())),
        "lora": (cfg.lr_lora, lora),
        "vision": (cfg.lr_vision, list(wm.visual.parameters())),
        "projector": (cfg.lr_projector, list(r.projector.parameters())),
        "transformer": (cfg.lr_transformer, base_dit),
        "transformer_lora": (cfg.lr_transformer_lora, dit_lora),
        "vae_encoder": (cfg.lr_vae_encoder, [*r.vae.encoder.parameters(), *r.vae.quant_conv.parameters()]),
        "vae_decoder": (cfg.lr_vae_decoder, [*r.vae.post_quant_conv.parameters(), *r.vae.decoder.parameters()]),
    }
    for module in (wm, r):
        module.requires_grad_(False)
    groups, seen = [], set()
    for name, (lr, params) in components.items():
        params = [seen.add(id(p)) or p for p in params if id(p) not in seen]  # tied embeddings appear twice
        if lr > 0 and params:
            for p in params:
                p.requires_grad_(True)
            groups.append({"name": name, "params": params, "lr": lr, "weight_decay": cfg.weight_decay})
    if not groups:
        raise OwlError("every learning rate is 0: nothing to train (set lr_<component> > 0)")
    return groups


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return factor


# --- deterministic data order ---------------------------------------------------------------------------------

class StepBatches(torch.utils.data.Sampler):
    """Batch indices for steps start, start+1, ...: a seeded permutation per epoch, so step k's batch depends only
    on (seed, k). With `fixed` every step gets the first batch."""

    def __init__(self, num_items: int, batch_size: int, seed: int, start_step: int = 0, fixed: bool = False):
        if num_items < 1:
            raise OwlError("the training data holds no usable samples")
        self.num_items, self.batch_size, self.seed, self.start, self.fixed = num_items, batch_size, seed, start_step, fixed

    def batch(self, step: int) -> list[int]:
        per_epoch = max(1, self.num_items // self.batch_size)
        epoch, index = divmod(0 if self.fixed else step, per_epoch)
        order = torch.randperm(self.num_items, generator=torch.Generator().manual_seed(self.seed * 7919 + epoch))
        picks = order.repeat(-(-self.batch_size // self.num_items))  # fewer items than a batch: repeat
        return picks[index * self.batch_size : (index + 1) * self.batch_size].tolist()

    def __iter__(self):
        step = self.start
        while True:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        return 2**31 - 1


def step_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The noise of one step on one process: a pure function of (seed, step, rank)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + rank)


# --- checkpoints: resume state ----------------------------------------------------------------------------------
#
# A checkpoint folder holds safetensors and JSON only, and `--resume` reads it with safetensors.torch.load_file
# and json.loads: nothing in it is unpickled (accelerate's save_state writes pickles, and a crafted pickle placed
# in a checkpoint folder would run code on resume). checkpoints/step-N/:
#
#   trainable.safetensors   the weights that train (the optimizer's parameters), named as in the pipeline
#                           ("renderer.transformer.…"); frozen weights come back from cfg.model as at the start
#   optimizer.safetensors   AdamW's per-parameter state: "NAME:exp_avg", "NAME:exp_avg_sq", "NAME:step"
#   optimizer.json          the parameter groups in order: name, hyperparameters (lr, betas, …), parameter names
#   scheduler.json          LambdaLR's state without its lambdas (they are rebuilt from the settings)
#   ema.safetensors, .json  the EMA's shadow weights (named as the transformer's) and its step counts
#   scaler.json             the fp16 loss scaler, where accelerate uses one
#   rng_R.safetensors, .json  process R's torch CPU (and CUDA) generator states; its python and numpy states
#   owl_state.json          written last: format, step, process count and each file's size in bytes
#
# Under DDP every process holds the same weights and optimizer state, so process 0 writes them; each process
# writes its own RNG states. FSDP and DeepSpeed split weights or optimizer state across processes: Owl writes no
# resume state there, and refuses --resume.

RESUME_FORMAT = "owl-resume-1"
SHARDED = ("FSDP", "DEEPSPEED", "MEGATRON_LM")  # accelerate's distributed types that split weights or optimizer state


class UnusableCheckpoint(Exception):
    """A checkpoint folder that does not read whole: a file missing or cut short, or not in Owl's format."""


def param_names(pipe) -> dict[int, str]:
    """Each parameter's name in the pipeline (`world_model.…`, `renderer.…`) by id: the keys of resume state."""
    return {id(p): name for prefix, module in (("world_model", pipe.world_model), ("renderer", pipe.renderer))
            for name, p in module.named_parameters(prefix=prefix)}


def _cpu(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.detach().cpu().contiguous()


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value) + "\n")


def write_resume_state(folder: Path, accelerator, pipe, optimizer, scheduler, ema) -> None:
    """This process's files of the resume state: process 0 writes the weights, optimizer, scheduler, EMA and
    scaler; every process its RNG states. `optimizer` and `scheduler` are the torch objects, not prepare()'s
    wrappers."""
    import numpy as np
    from safetensors.torch import save_file

    if accelerator.is_main_process:
        names = param_names(pipe)
        trainable, moments, groups = {}, {}, []
        for group in optimizer.param_groups:
            for p in group["params"]:
                trainable[names[id(p)]] = _cpu(p)
                for key, value in optimizer.state.get(p, {}).items():  # empty before a parameter's first step
                    moments[f"{names[id(p)]}:{key}"] = _cpu(value)
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [names[id(p)] for p in group["params"]]})
        save_file(trainable, str(folder / "trainable.safetensors"))
        save_file(moments, str(folder / "optimizer.safetensors"))
        _write_json(folder / "optimizer.json", groups)
        _write_json(folder / "scheduler.json", {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"})
        if ema is not None:
            transformer = pipe.renderer.transformer.named_parameters(prefix="renderer.transformer")
            shadow = {name: _cpu(s) for (name, _), s in zip(transformer, ema.shadow_params)}
            save_file(shadow, str(folder / "ema.safetensors"))
            _write_json(folder / "ema.json", {k: v for k, v in ema.state_dict().items() if k != "shadow_params"})
        if accelerator.scaler is not None:
            _write_json(folder / "scaler.json", accelerator.scaler.state_dict())
    rank = accelerator.process_index
    generators = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        generators.update({f"cuda:{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(generators, str(folder / f"rng_{rank}.safetensors"))
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    _write_json(folder / f"rng_{rank}.json", {"python": [version, list(words), gauss],
                                             "numpy": [kind, keys.tolist(), pos, has_gauss, cached]})


def _replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; an older one at `final` is removed only after."""
    old = final.with_name(final.name + ".old")
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(accelerator, output_dir: Path, step: int, keep: int, pipe, optimizer, scheduler, ema) -> None:
    """Resume state under a temporary name, renamed when complete; owl_state.json is written last."""
    root = output_dir / "checkpoints"
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    write_resume_state(tmp, accelerator, pipe, optimizer, scheduler, ema)
    accelerator.wait_for_everyone()  # every rank has written its files (its RNG states) before the rename
    if accelerator.is_main_process:
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir())}
        manifest = {"format": RESUME_FORMAT, "step": step, "num_processes": accelerator.num_processes, "files": files}
        (tmp / "owl_state.json").write_text(json.dumps(manifest, indent=1) + "\n")
        _replace_dir(tmp, final)
        for old in sorted(root.glob("step-*[0-9]"), key=lambda p: int(p.name.split("-")[1]))[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def read_resume_state(folder: Path, rank: int) -> dict:
    """Everything `apply_resume_state` needs from `folder`, read with safetensors and json only, before anything
    is changed. Raises UnusableCheckpoint when a file is missing, cut short or malformed."""
    import numpy as np
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        manifest = json.loads((folder / "owl_state.json").read_text())
        if manifest.get("format") != RESUME_FORMAT:
            raise UnusableCheckpoint("written by an older Owl as accelerate's pickles, which are not loaded")
        files = manifest["files"]
        for name, size in files.items():  # every process checks every file, so all of them judge alike
            actual = (folder / name).stat().st_size
            if actual != size:
                raise UnusableCheckpoint(f"{name} is {actual} bytes, {size} were written")
        state = {"step": int(manifest["step"]),
                 "trainable": load_file(folder / "trainable.safetensors"),
                 "moments": load_file(folder / "optimizer.safetensors"),
                 "groups": json.loads((folder / "optimizer.json").read_text()),
                 "scheduler": json.loads((folder / "scheduler.json").read_text()),
                 "ema": None, "scaler": None, "rng": None}
        if "ema.json" in files:
            state["ema"] = load_file(folder / "ema.safetensors"), json.loads((folder / "ema.json").read_text())
        if "scaler.json" in files:
            state["scaler"] = json.loads((folder / "scaler.json").read_text())
        if f"rng_{rank}.json" in files:  # a process the checkpoint did not have keeps its seeded generators
            saved = json.loads((folder / f"rng_{rank}.json").read_text())
            version, words, gauss = saved["python"]
            kind, keys, *rest = saved["numpy"]
            state["rng"] = (load_file(folder / f"rng_{rank}.safetensors"), (version, tuple(words), gauss),
                            (kind, np.array(keys, dtype=np.uint32), *rest))
    except FileNotFoundError as exc:
        raise UnusableCheckpoint(f"{Path(exc.filename or '?').name} is missing") from None
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise UnusableCheckpoint(" ".join(f"{type(exc).__name__}: {exc}".split())[:200]) from None
    return state


def apply_resume_state(state: dict, folder: Path, accelerator, pipe, optimizer, scheduler, ema) -> None:
    """Load what `read_resume_state` read into the weights, optimizer, scheduler, EMA, scaler and generators.
    A checkpoint written under other settings (other components training, EMA on or off) is refused."""
    names = param_names(pipe)
    saved_groups = [(g["name"], g["params"]) for g in state["groups"]]
    groups = [(g["name"], [names[id(p)] for p in g["params"]]) for g in optimizer.param_groups]
    if saved_groups != groups or set(state["trainable"]) != {n for _, ns in groups for n in ns}:
        raise OwlError(f"--resume: {str(folder)!r} holds other trainable weights than these settings train (it "
                       f"trained {[n for n, _ in saved_groups]}, these {[n for n, _ in groups]}): keep the model, "
                       "lr_* and lora_rank as they were")
    if (ema is None) != (state["ema"] is None):
        raise OwlError(f"--resume: {str(folder)!r} was written {'without' if ema else 'with'} an EMA: keep ema_decay "
                       "and lr_transformer as they were")
    params = {names[id(p)]: p for g in optimizer.param_groups for p in g["params"]}
    with torch.no_grad():
        for name, p in params.items():
            if state["trainable"][name].shape != p.shape:
                raise OwlError(f"--resume: {name} is {tuple(state['trainable'][name].shape)} in {str(folder)!r}, "
                               f"{tuple(p.shape)} in the model: start from the same model as that run")
            p.copy_(state["trainable"][name])

    # The optimizer takes torch's own state_dict: parameters numbered 0, 1, ... through the groups in order.
    number = {name: i for i, name in enumerate(n for _, ns in groups for n in ns)}
    per_param: dict[int, dict] = {}
    for key, value in state["moments"].items():
        name, _, field = key.rpartition(":")
        per_param.setdefault(number[name], {})[field] = value
    current = optimizer.state_dict()
    for group, saved in zip(current["param_groups"], state["groups"]):
        for key, value in saved.items():
            if key != "params":
                group[key] = tuple(value) if isinstance(group.get(key), tuple) else value  # JSON made betas a list
    optimizer.load_state_dict({"state": per_param, "param_groups": current["param_groups"]})
    scheduler.load_state_dict({**scheduler.state_dict(), **state["scheduler"]})

    if ema is not None:
        shadow, counts = state["ema"]
        ema.load_state_dict(counts)  # the step counts; the shadow weights are copied in place, on their device
        transformer = pipe.renderer.transformer.named_parameters(prefix="renderer.transformer")
        with torch.no_grad():
            for (name, _), s in zip(transformer, ema.shadow_params):
                s.copy_(shadow[name])
    if accelerator.scaler is not None and state["scaler"] is not None:
        accelerator.scaler.load_state_dict(state["scaler"])
    if state["rng"] is not None:
        import numpy as np

        generators, python, numpy = state["rng"]
        torch.set_rng_state(generators["torch"])
        for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
            if f"cuda:{i}" in generators:
                torch.cuda.set_rng_state(generators[f"cuda:{i}"], i)
        random.setstate(python)
        np.random.set_state(numpy)


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """The `checkpoints/step-N` folders that hold their owl_state.json (written last), newest first."""
    ckpts = sorted((output_dir / "checkpoints").glob("step-*[0-9]"), key=lambda p: int(p.name.split("-")[1]))
    return [p for p in reversed(ckpts) if (p / "owl_state.json").is_file()]


def load_checkpoint(accelerator, output_dir: Path, pipe, optimizer, scheduler, ema) -> int:
    """Resume from the newest checkpoint that reads whole and return its step. A checkpoint with a file missing or
    cut short (a crash while it was copied, a full disk) is passed over for the one before, with one warning that
    names both; with none usable, an OwlError."""
    root = output_dir / "checkpoints"
    candidates = complete_checkpoints(output_dir)
    if not candidates:
        raise OwlError(f"--resume: no complete checkpoint under {str(root)!r}")
    skipped = []
    for ckpt in candidates:
        try:
            state, reason = read_resume_state(ckpt, accelerator.process_index), ""
        except UnusableCheckpoint as exc:
            state, reason = None, str(exc)
        if accelerator.num_processes > 1:  # every process must resume from the same checkpoint
            readable = accelerator.gather(torch.tensor([int(state is not None)], device=accelerator.device))
            if state is not None and not bool(readable.all()):
                state, reason = None, "unreadable on another process"
        if state is not None:
            break
        skipped.append(f"{ckpt.name} ({reason})")
    else:
        raise OwlError(f"--resume: no usable checkpoint under {str(root)!r}: {'; '.join(skipped)}")
    if skipped and accelerator.is_main_process:
        warnings.warn(f"--resume: passed over {'; '.join(skipped)}; resuming from {ckpt.name}", OwlWarning)
    apply_resume_state(state, ckpt, accelerator, pipe, optimizer, scheduler, ema)
    return state["step"]


def truncate_log(log_path: Path, step: int) -> None:
    """Keep the log's records of steps up to `step`: the steps after it are replayed and logged again. The file is
    replaced whole, so a crash here leaves the old log or the new one."""
    if not log_path.is_file():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            pass  # a line the crash cut short
    tmp = log_path.with_name(".tmp-" + log_path.name)
    tmp.write_text("".join(kept))
    os.replace(tmp, log_path)


# --- the release artifact ---------------------------------------------------------------------------------------

def save_artifact(pipe, output_dir: Path, ema=None, lora_dir: bool = True) -> Path:
    """The release artifact: `output_dir/model/`, a save_pretrained folder (EMA weights and merged LoRA in it).

    Written from the live pipeline, not from a copy (a copy would double the memory at real size). Training has
    ended when this runs, so LoRA is merged into the LMM in place; the EMA weights are swapped into the
    transformer for the save and the trained ones swapped back after it."""
    from peft import PeftModel

    final, tmp = output_dir / "model", output_dir / ".tmp-model"
    shutil.rmtree(tmp, ignore_errors=True)
    lm = pipe.world_model.vlm.model.language_model
    if isinstance(lm, PeftModel):
        if lora_dir:
            lm.save_pretrained(tmp / "lora")  # the adapter alone, loadable with peft
        pipe.world_model.vlm.model.language_model = lm.merge_and_unload()
    transformer = pipe.renderer.transformer
    if getattr(transformer, "peft_config", None):  # LoRA on the transformer: fused into its weights, then dropped
        if lora_dir:
            transformer.save_lora_adapter(str(tmp / "transformer_lora"))  # the adapter alone (diffusers)
        transformer.fuse_lora()
        transformer.unload_lora()
    params = list(pipe.renderer.transformer.parameters())
    if ema is not None:
        ema.store(params)
        ema.copy_to(params)
    from transformers.utils import logging

    logging.disable_progress_bar()  # no per-shard bars in the training log
    try:
        pipe.save_pretrained(tmp)
    finally:
        if ema is not None:
            ema.restore(params)
    _replace_dir(tmp, final)
    return final


# --- the loop ---------------------------------------------------------------------------------------------------

def _tensorboard(output_dir: Path, purge_step: int | None):
    """A TensorBoard writer under output_dir/tensorboard/ when tensorboard is installed; else None (the JSONL log
    holds the same figures). After a resume, `purge_step` hides the earlier run's events from that step on, as
    the replayed steps are logged again."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(output_dir / "tensorboard"), purge_step=purge_step)


def enable_activation_checkpointing(model) -> None:
    """Activation (gradient) checkpointing on a transformers model: transformers 5.24 renamed
    `gradient_checkpointing_enable` to `activation_checkpointing_enable` and warns on the old name; 5.23 has only
    the old one."""
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable()


def train(cfg: TrainConfig, stage: str, pipe, loss_module: nn.Module, dataset, collate: Callable, resume: bool,
          quiet: bool = False, before_save: Callable[[], None] | None = None) -> Path:
    """Run `cfg.steps` optimizer steps of `loss_module(batch, generator) -> (loss, {name: value})`.

    `before_save` runs once before the release artifact is written. Returns the artifact's folder. Ctrl-C saves
    the resume state first.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed
    from tqdm.auto import tqdm

    output_dir = Path(cfg.output_dir)
    # cpu=True without an accelerator makes accelerate join a torchrun/`accelerate launch --multi_gpu` process
    # group over gloo (its `--cpu` launcher starts one process unless mpirun is set up).
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(), mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    set_seed(cfg.seed)
    groups = param_groups(cfg, pipe)  # first: settings that train nothing are refused before anything is written
    sharded = accelerator.distributed_type.name in SHARDED
    if sharded and resume:
        raise OwlError(f"--resume is not supported under {accelerator.distributed_type.name}: Owl's resume state "
                       "holds whole weights and optimizer state (one process or DDP)")
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "config.json").write_text(json.dumps({"stage": stage, **dataclasses.asdict(cfg)}, indent=2) + "\n")

    if cfg.gradient_checkpointing:
        enable_activation_checkpointing(pipe.world_model.vlm)
        pipe.renderer.transformer.enable_gradient_checkpointing()
    adamw = torch.optim.AdamW(groups, betas=(0.9, 0.99))
    schedule = torch.optim.lr_scheduler.LambdaLR(adamw, lr_lambda(cfg))
    ema = None
    if cfg.ema_decay > 0 and cfg.lr_transformer > 0:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(pipe.renderer.transformer.parameters(), decay=cfg.ema_decay)
    loss_module.train()
    # prepare() wraps the optimizer and scheduler; resume state is read from and written to the torch objects
    # inside (`adamw`, `schedule`), which the wrappers step.
    model, optimizer, scheduler = accelerator.prepare(loss_module, adamw, schedule)

    def checkpoint(at_step: int) -> None:
        if not sharded:
            save_checkpoint(accelerator, output_dir, at_step, cfg.keep_checkpoints, pipe, adamw, schedule, ema)

    if sharded and accelerator.is_main_process:
        warnings.warn(f"no resume state is written under {accelerator.distributed_type.name} (Owl's holds whole "
                      "weights and optimizer state): an interrupted run starts again", OwlWarning)
    start = 0
    log_path = output_dir / "log.jsonl"
    if resume:
        start = load_checkpoint(accelerator, output_dir, pipe, adamw, schedule, ema)
        if accelerator.is_main_process:
            truncate_log(log_path, start)
    # Every process reads whole global batches and keeps its slice, so the data order never depends on the
    # number of processes, and step k's batch is the same after a resume.
    sampler = StepBatches(len(dataset), cfg.batch_size * cfg.grad_accum * accelerator.num_processes, cfg.seed,
                          start, cfg.fixed_batch)
    board = _tensorboard(output_dir, start + 1 if resume else None) if accelerator.is_main_process else None
    # a bar only at a terminal: a log file keeps the JSONL log's lines, not a bar redrawn thousands of times
    bar = tqdm(total=cfg.steps, initial=start, desc=f"train {stage}",
               disable=quiet or not accelerator.is_main_process or not sys.stderr.isatty())
    step = start
    began = time.perf_counter()
    try:
        while step < cfg.steps:
            if cfg.max_minutes and time.perf_counter() - began > 60 * cfg.max_minutes:
                if accelerator.is_main_process:
                    print(f"{stage}: stopping at step {step} of {cfg.steps}: max_minutes={cfg.max_minutes:g} reached")
                break
            tick = time.perf_counter()
            indices = sampler.batch(step)
            per_rank = len(indices) // accelerator.num_processes
            mine = indices[accelerator.process_index * per_rank : (accelerator.process_index + 1) * per_rank]
            totals: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                chunk = mine[micro * cfg.batch_size : (micro + 1) * cfg.batch_size]
                batch = collate([dataset[i] for i in chunk])
                generator = step_generator(cfg.seed, step * cfg.grad_accum + micro, accelerator.process_index)
                with accelerator.accumulate(model):
                    loss, parts = model(batch, generator)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.grad_clip > 0:
                        accelerator.clip_grad_norm_([p for g in groups for p in g["params"]], cfg.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                for k, v in {"loss": float(loss.detach()), **parts}.items():
                    totals[k] = totals.get(k, 0.0) + v / cfg.grad_accum
            if ema is not None:
                ema.step(pipe.renderer.transformer.parameters())
            step += 1
            record = {"step": step, **{k: round(v, 6) for k, v in totals.items()},
                      **{f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups},
                      "samples_per_s": round(len(indices) / (time.perf_counter() - tick), 3)}
            if accelerator.is_main_process:
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
                bar.set_postfix(loss=f"{totals['loss']:.4f}", sps=record["samples_per_s"])
                if board is not None:
                    for key, value in record.items():
                        if key != "step":
                            board.add_scalar(f"{stage}/{key}", value, step)
            bar.update(1)
            if step % cfg.save_every == 0 and step < cfg.steps:
                checkpoint(step)
    except KeyboardInterrupt:
        checkpoint(step)
        raise
    bar.close()
    if board is not None:
        board.close()
    checkpoint(step)
    artifact = output_dir / "model"
    if accelerator.is_main_process:
        if before_save is not None:
            before_save()
        weights = sum(float(p.detach().double().sum()) for g in groups for p in g["params"])  # before LoRA merges
        artifact = save_artifact(pipe, output_dir, ema)
        (output_dir / "done.json").write_text(json.dumps({"stage": stage, "steps": step, "weights_sum": weights}) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.num_processes > 1:  # each rank records what it holds, so a test can compare them
        weights = sum(float(p.detach().double().sum()) for g in groups for p in g["params"])
        (output_dir / f"weights_rank{accelerator.process_index}.json").write_text(json.dumps({"sum": weights}))
    return artifact
