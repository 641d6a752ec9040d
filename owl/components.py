"""Build an Owl model around published checkpoints: a transformers vision-language folder as the world model's LMM
and a diffusers Wan folder as the renderer, as their authors publish them (`OwlPipeline.from_components`,
`owl init`).

    pipe = OwlPipeline.from_components(lmm="Qwen2.5-VL-3B-Instruct/", vdm="Wan2.1-T2V-1.3B-Diffusers/")
    pipe.save_pretrained("owl-3b")      # an ordinary Owl folder: owl train, owl generate and from_pretrained take it

Every dimension is read from the loaded configs (the LMM's width, the transformer's `text_dim`, the VAE's latent
channels and scale factors, the scheduler's shift); only Owl's new parts are made: Q state queries, and the
projector from the LMM's width to the transformer's condition with its null state (after Owl-1, arXiv 2412.09600,
§3: the state replaces the VDM's text condition). Token ids are checked against the tokenizer, and weights load
strictly from safetensors, with no remote code.

Director mode (`from_components(..., director=True)`, `owl init --director`; owl/director.py): nothing new is
made. The LMM, which must carry a chat template, writes the events; the Wan folder's text encoder (text_encoder/,
tokenizer/) encodes the prompt and event as the transformer's condition, and the empty negative prompt once, as
the unconditional input.

Families: the LMM is Qwen2-VL, Qwen2.5-VL or Qwen3-VL (`LMM_FAMILIES`); the renderer a text-to-video Wan folder of
diffusers (`WanPipeline`: Wan2.1 T2V, 16 latent channels and 8x spatial VAE; Wan2.2 TI2V-5B, 48 channels and
16x). Anything else is refused with one line naming what is supported. The renderer samples with diffusers'
flow-matching Euler scheduler at the shift the Wan folder's own scheduler states (Wan's UniPC `flow_shift`), so
training and sampling use one shift, recorded once in `RendererConfig.flow_shift`.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from owl.config import RendererConfig, WorldModelConfig
from owl.errors import OwlError

LMM_FAMILIES = {"qwen2_vl": "Qwen2-VL", "qwen2_5_vl": "Qwen2.5-VL", "qwen3_vl": "Qwen3-VL"}
VDM_PIPELINES = ("WanPipeline",)  # text-to-video Wan folders: Wan2.1 T2V, Wan2.2 TI2V-5B
# The Wan folders' native output (their model cards): Wan2.1 films 480 x 832 at 16 fps, Wan2.2 TI2V-5B (its 48-channel,
# 16x VAE) 704 x 1280 at 24 fps.
_NATIVE = {16: (480, 832, 16), 48: (704, 1280, 24)}


@dataclass(frozen=True)
class OwlChoices:
    """What Owl adds to the two backbones: the few choices `owl init` takes as flags. None: from the backbones."""

    num_queries: int = 128  # Q state queries (Owl-1 uses 128)
    key_frames: int = 2  # K key frames of each clip fed back to the LMM (Owl-1: 2)
    key_frame_size: int = 448  # side of the key frames in the vision tower; a multiple of its patch x merge
    clip_seconds: float = 5.0  # seconds of video each clip adds (Wan's own clips: 81 frames at 16 fps)
    fps: int | None = None  # default: the Wan folder's native frame rate
    height: int | None = None  # default: the Wan folder's native size
    width: int | None = None
    num_inference_steps: int = 30
    guidance_scale: float = 5.0

    def __post_init__(self) -> None:
        for name in ("num_queries", "key_frames", "key_frame_size", "num_inference_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OwlError(f"{name} must be a positive integer, got {value!r}")
        for name in ("fps", "height", "width"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise OwlError(f"{name} must be a positive integer (or None: the Wan folder's own), got {value!r}")
        if isinstance(self.clip_seconds, bool) or not isinstance(self.clip_seconds, (int, float)) \
                or not 0 < self.clip_seconds <= 60:
            raise OwlError(f"clip_seconds must be a number of seconds > 0 and <= 60, got {self.clip_seconds!r}")
        if isinstance(self.guidance_scale, bool) or not isinstance(self.guidance_scale, (int, float)) \
                or not 1 <= self.guidance_scale <= 100:
            raise OwlError(f"guidance_scale must be a number from 1 to 100, got {self.guidance_scale!r}")


def read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise OwlError(f"{what}: {str(path.parent)!r} has no {path.name}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OwlError(f"{what}: {str(path)!r} is not valid JSON") from exc
    if not isinstance(data, dict):
        raise OwlError(f"{what}: {str(path)!r} must hold a JSON object")
    return data


def _has_safetensors(folder: Path, stem: str) -> bool:
    """A single file or a sharded index, as transformers and diffusers write them."""
    return (folder / f"{stem}.safetensors").is_file() or (folder / f"{stem}.safetensors.index.json").is_file()


def load_component(what: str, path: Path, fn):
    """Run a library loader; its failure becomes one line naming the component and the first line of the reason."""
    try:
        return fn()
    except OwlError:
        raise
    except Exception as exc:  # the libraries raise many types; the user needs the component and the reason
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise OwlError(f"cannot load {what} from {str(path)!r}: {reason}") from exc


@contextlib.contextmanager
def quiet_transformers():
    """No loading bars or load reports from transformers while Owl checks the load itself."""
    from transformers.utils import logging

    enabled, verbosity = logging.is_progress_bar_enabled(), logging.get_verbosity()
    logging.disable_progress_bar()
    logging.set_verbosity_error()  # a weights mismatch becomes our own one-line error, not a log report
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if enabled:
            logging.enable_progress_bar()


def checked_transformers_load(cls, path: Path, **kwargs):
    """transformers' from_pretrained, but missing or unexpected weights are an error, not a warning."""
    model, info = cls.from_pretrained(path, use_safetensors=True, trust_remote_code=False, output_loading_info=True, **kwargs)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        first = {k: sorted(v)[:3] for k, v in bad.items()}
        raise OwlError(f"weights in {str(path)!r} do not match its config: {first}")
    return model


# --- the LMM ------------------------------------------------------------------------------------------------

def lmm_family(path: Path) -> str:
    """The model_type of a transformers VLM folder, refused unless it is a supported family."""
    config = read_json(path / "config.json", "LMM folder")
    kind = config.get("model_type")
    if kind not in LMM_FAMILIES:
        raise OwlError(f"LMM folder {str(path)!r} holds a {kind!r} model; supported: "
                       f"{', '.join(LMM_FAMILIES.values())} (model_type {', '.join(LMM_FAMILIES)})")
    return kind


def load_lmm(path: str | Path, torch_dtype: torch.dtype | None = None):
    """(vlm, tokenizer, image_processor) from a transformers VLM folder as published (Qwen/Qwen2.5-VL-3B-Instruct
    and kin): the weights strictly, from safetensors, no remote code."""
    from transformers import AutoModelForImageTextToText, AutoTokenizer, Qwen2VLImageProcessorPil

    path = Path(path)
    if not path.is_dir():
        raise OwlError(f"LMM folder not found: {str(path)!r}")
    lmm_family(path)
    if not _has_safetensors(path, "model"):
        raise OwlError(f"LMM folder {str(path)!r} has no safetensors weights (model.safetensors or "
                       "model.safetensors.index.json); Owl loads no other format")
    dtype = {"dtype": torch_dtype} if torch_dtype is not None else {}
    with quiet_transformers():
        vlm = load_component("the LMM", path,
                             lambda: checked_transformers_load(AutoModelForImageTextToText, path, **dtype))
    tokenizer = load_component("the LMM's tokenizer", path,
                               lambda: AutoTokenizer.from_pretrained(path, trust_remote_code=False))
    if not getattr(tokenizer, "chat_template", None):  # the processor's template, where the folder keeps it apart
        tokenizer.chat_template = folder_chat_template(path)
    # the PIL processor reads the folder's preprocessor_config.json (patch, merge and temporal patch sizes, mean, std)
    image_processor = load_component("the LMM's image processor", path,
                                     lambda: Qwen2VLImageProcessorPil.from_pretrained(path))
    return vlm, tokenizer, image_processor


def folder_chat_template(path: Path) -> str | None:
    """The chat template a transformers folder keeps beside its tokenizer (chat_template.jinja, or
    chat_template.json as processors write it), or None."""
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text()
    if (path / "chat_template.json").is_file():
        template = read_json(path / "chat_template.json", "LMM folder").get("chat_template")
        return template if isinstance(template, str) and template else None
    return None


def check_token_ids(vlm, tokenizer, config: WorldModelConfig, where: str) -> None:
    """The special tokens Owl lays out must be the ones the LMM was trained with: the ids its config names."""
    cfg = vlm.config
    for token, key in ((config.vision_start_token, "vision_start_token_id"),
                       (config.vision_end_token, "vision_end_token_id")):
        expected = getattr(cfg, key, None)
        found = tokenizer.convert_tokens_to_ids(token)
        if expected is not None and found != expected:
            raise OwlError(f"{where}: the tokenizer gives {token!r} id {found}, but the model's config says "
                           f"{key} {expected}: the tokenizer does not belong to this model")
    if tokenizer.convert_tokens_to_ids(config.dynamics_end_token) in (None, tokenizer.unk_token_id):
        raise OwlError(f"{where}: the tokenizer has no {config.dynamics_end_token!r}, which closes each dynamics text")


# --- the VDM ------------------------------------------------------------------------------------------------

def load_vdm(path: str | Path, torch_dtype: torch.dtype | None = None):
    """(transformer, vae, flow_shift) from a diffusers Wan folder as published (Wan-AI/Wan2.1-T2V-1.3B-Diffusers,
    Wan-AI/Wan2.2-TI2V-5B-Diffusers): the transformer and VAE strictly from safetensors; the VAE stays float32."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    path = Path(path)
    if not path.is_dir():
        raise OwlError(f"VDM folder not found: {str(path)!r}")
    index = read_json(path / "model_index.json", "VDM folder")
    if index.get("_class_name") not in VDM_PIPELINES:
        raise OwlError(f"VDM folder {str(path)!r} is a {index.get('_class_name')!r}; supported: diffusers' "
                       f"{', '.join(VDM_PIPELINES)} folders (Wan2.1 T2V, Wan2.2 TI2V-5B)")
    for part, stem in (("transformer", "diffusion_pytorch_model"), ("vae", "diffusion_pytorch_model")):
        if not _has_safetensors(path / part, stem):
            raise OwlError(f"VDM folder {str(path)!r} has no safetensors weights in {part}/ ({stem}.safetensors "
                           "or its index); Owl loads no other format")
    dtype = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
    transformer = load_component("the Wan transformer", path / "transformer", lambda: WanTransformer3DModel.from_pretrained(
        path / "transformer", use_safetensors=True, **dtype))
    if transformer.config.image_dim is not None or transformer.config.added_kv_proj_dim is not None:
        raise OwlError(f"VDM folder {str(path)!r} is an image-to-video Wan (its transformer takes CLIP image "
                       "features); supported: Wan2.1 T2V and Wan2.2 TI2V-5B")
    vae = load_component("the Wan VAE", path / "vae",
                         lambda: AutoencoderKLWan.from_pretrained(path / "vae", use_safetensors=True))
    scheduler = path / "scheduler"
    return transformer, vae, scheduler_shift(read_json(scheduler / "scheduler_config.json", "VDM folder's scheduler"),
                                             str(scheduler))


def load_text_encoder(path: str | Path, torch_dtype: torch.dtype | None = None):
    """(text_encoder, tokenizer) of a diffusers Wan folder: its UMT5 encoder (text_encoder/, strictly from
    safetensors) and tokenizer (tokenizer/), which director mode conditions the transformer with."""
    from transformers import AutoTokenizer, UMT5EncoderModel

    path = Path(path)
    if not (path / "text_encoder").is_dir() or not (path / "tokenizer").is_dir():
        raise OwlError(f"VDM folder {str(path)!r} has no text_encoder/ and tokenizer/: director mode conditions the "
                       "video model on its own text encoder (Wan's UMT5), as its WanPipeline folder holds it")
    if not _has_safetensors(path / "text_encoder", "model"):
        raise OwlError(f"VDM folder {str(path)!r} has no safetensors weights in text_encoder/ (model.safetensors or "
                       "its index); Owl loads no other format")
    dtype = {"dtype": torch_dtype} if torch_dtype is not None else {}
    with quiet_transformers():
        encoder = load_component("the Wan text encoder", path / "text_encoder", lambda: checked_transformers_load(
            UMT5EncoderModel, path / "text_encoder", **dtype))
    tokenizer = load_component("the Wan tokenizer", path / "tokenizer",
                               lambda: AutoTokenizer.from_pretrained(path / "tokenizer", trust_remote_code=False))
    return encoder.eval(), tokenizer


def scheduler_shift(config, where: str) -> float:
    """The timestep shift a Wan scheduler's config states (`scheduler_config.json`, or a loaded scheduler's
    `.config`): UniPC's `flow_shift`, or a flow-matching scheduler's `shift`. Owl samples with flow-matching Euler
    at this shift and trains with the same (RendererConfig.flow_shift)."""
    shift = config.get("flow_shift", config.get("shift"))
    if isinstance(shift, bool) or not isinstance(shift, (int, float)) or not shift > 0:
        raise OwlError(f"{where}: the scheduler's config states no positive flow_shift (or shift), got {shift!r}")
    return float(shift)


# --- assembling ---------------------------------------------------------------------------------------------

def assemble(vlm: nn.Module, tokenizer, image_processor, transformer, vae, flow_shift: float,
             choices: OwlChoices = OwlChoices(), seed: int = 0, text=None, instruction: str | None = None):
    """An OwlPipeline around loaded backbones; Owl's new parts (queries, projector) are drawn from `seed`.

    text: (text_encoder, text_tokenizer) of the Wan folder for director mode (owl/director.py): the VLM then
    writes the events (following `instruction`, or the default) and the Wan text encoder makes the condition;
    nothing new is learned."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from owl.config import DirectorConfig
    from owl.director import Director
    from owl.pipeline import OwlPipeline
    from owl.renderer import Renderer
    from owl.world_model import WorldModel

    where = "from_components"
    vision = vlm.config.vision_config
    step = vision.patch_size * vision.spatial_merge_size
    if choices.key_frame_size % step:
        raise OwlError(f"key_frame_size must be a multiple of {step} for this LMM (its patch {vision.patch_size} x "
                       f"merge {vision.spatial_merge_size}), got {choices.key_frame_size}")
    z = vae.config.z_dim
    if transformer.config.in_channels != z:
        raise OwlError(f"{where}: the transformer takes {transformer.config.in_channels} latent channels but the "
                       f"VAE makes {z}: the two come from different Wan models")
    native_height, native_width, native_fps = _NATIVE.get(z, _NATIVE[16])
    fps = choices.fps or native_fps
    temporal = int(vae.config.scale_factor_temporal)
    clip_latent_frames = max(1, round(choices.clip_seconds * fps / temporal))
    if text is None:
        world_config = WorldModelConfig(num_queries=choices.num_queries, key_frames=choices.key_frames,
                                        key_frame_size=choices.key_frame_size)
        check_token_ids(vlm, tokenizer, world_config, where)
        state_dim, length, condition = vlm.config.get_text_config().hidden_size, choices.num_queries, "state"
    else:
        text_encoder, text_tokenizer = text
        director_config = DirectorConfig(key_frames=choices.key_frames, key_frame_size=choices.key_frame_size,
                                         **({} if instruction is None else {"instruction": instruction}))
        state_dim, length, condition = text_encoder.config.d_model, director_config.max_text_tokens, "text"
        if transformer.config.text_dim != state_dim:
            raise OwlError(f"{where}: the transformer takes text features of size {transformer.config.text_dim} but "
                           f"the text encoder makes {state_dim}: the two come from different Wan models")
    renderer_config = RendererConfig(
        state_dim=state_dim, num_queries=length, fps=fps,
        height=choices.height or native_height, width=choices.width or native_width,
        clip_latent_frames=clip_latent_frames, context_latent_frames=1,
        num_inference_steps=choices.num_inference_steps, guidance_scale=float(choices.guidance_scale),
        flow_shift=flow_shift, condition=condition)
    torch.manual_seed(seed)
    if text is None:
        world_model = WorldModel(vlm, tokenizer, image_processor, world_config)
    else:
        world_model = Director(vlm, tokenizer, image_processor, text_encoder, text_tokenizer, director_config)
    scheduler = FlowMatchEulerDiscreteScheduler(shift=flow_shift)
    renderer = Renderer(transformer, vae, scheduler, renderer_config)
    renderer.check_size(renderer_config.height, renderer_config.width)
    device = next(vlm.parameters()).device
    if text is not None:
        text_encoder.to(device)
        # the unconditional input of guidance: the negative prompt, encoded once, as WanPipeline encodes it
        renderer.projector.null_state.data = world_model.encode_text(director_config.negative_prompt).float()
    if text is None:
        world_model.place_small_parts(device)
    renderer.projector.to(device)
    return OwlPipeline(world_model.eval(), renderer.eval())
