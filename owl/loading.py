"""Loading Owl models: the folder layout, checks before any weight loads, and the parts each constructor builds.

`OwlPipeline.from_pretrained`, `from_preset` and `save_pretrained` (owl/pipeline.py) are thin over this. A saved
pipeline is one folder, each component in its own subfolder with a config and safetensors weights (COMPONENTS);
nothing is ever unpickled, and no remote code is enabled. Inputs are checked here too: the device, the image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from owl.config import ModelPreset, get_preset
from owl.errors import OwlError
from owl.renderer import Renderer
from owl.world_model import WorldModel

COMPONENTS = ("world_model", "vlm", "tokenizer", "image_processor", "renderer", "transformer", "vae", "scheduler")
# director mode (owl/director.py; model_index.json "mode": "director") also keeps the Wan folder's text encoder
DIRECTOR_COMPONENTS = COMPONENTS[:4] + ("text_encoder", "text_tokenizer") + COMPONENTS[4:]
MODES = {"trained": COMPONENTS, "director": DIRECTOR_COMPONENTS}


def open_image(path: str | Path):
    """A readable image file -> PIL image (RGB), checked before anything heavy runs: it exists, decodes, and is
    within PIL's decompression-bomb limit (`PIL.Image.MAX_IMAGE_PIXELS`), which is an error here, not a warning."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise OwlError(f"image not found: {str(path)!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as f:
                return f.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise OwlError(f"image {str(path)!r} is too large: more than {Image.MAX_IMAGE_PIXELS} pixels "
                       "(PIL's decompression-bomb limit); resize it first") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise OwlError(f"cannot read image {str(path)!r}: not a readable image file") from exc


def load_image(image, height: int, width: int) -> np.ndarray:
    """A path, PIL image or (H, W, 3) uint8 array -> (height, width, 3) uint8, resized and centre-cropped."""
    from PIL import Image

    if isinstance(image, (str, Path)):
        image = open_image(image)
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or 0 in image.shape:
            raise OwlError(f"image array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        raise OwlError(f"image must be a path, a PIL image or a uint8 array, got {type(image).__name__}")
    image = image.convert("RGB")
    scale = max(height / image.height, width / image.width)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.BICUBIC)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return np.array(resized.crop((left, top, left + width, top + height)), dtype=np.uint8)


def resolve_device(device: str | torch.device) -> torch.device:
    """A device this machine has. "auto": this process's GPU (LOCAL_RANK under accelerate / torchrun) when CUDA
    is there, else the CPU. A device torch does not know, or one this machine lacks, is a one-line error."""
    import os

    if isinstance(device, str) and device == "auto":
        return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}" if torch.cuda.is_available() else "cpu")
    accepted = "auto, cpu, cuda, cuda:N or mps"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise OwlError(f"unknown device {device!r}; accepted: {accepted}") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OwlError(f"device {str(device)!r}: this machine has no CUDA GPU that torch can use; use cpu or auto")
        if dev.index is not None and dev.index >= count:
            raise OwlError(f"device {str(device)!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise OwlError(f"device {str(device)!r}: MPS is not available on this machine; use cpu or auto")
    elif dev.type not in ("cpu", "meta"):  # meta: shapes without weights, for checks at real size
        raise OwlError(f"unsupported device {str(device)!r}; accepted: {accepted}")
    return dev


def check_model_folder(path: str | Path) -> Path:
    """A folder written by `OwlPipeline.save_pretrained`, checked before any weights load: its model_index.json
    reads as an Owl pipeline's and every component it lists is there."""
    path = Path(path)
    if not path.is_dir():
        raise OwlError(f"model folder not found: {str(path)!r}")
    index_file = path / "model_index.json"
    try:
        index = json.loads(index_file.read_text())
    except FileNotFoundError:
        hint = ("; it is a transformers model folder: make an Owl model with owl init --lmm DIR --vdm WAN_DIR --out OWL_DIR"
                if (path / "config.json").is_file() else "")
        raise OwlError(f"{str(path)!r} is not an Owl model folder: it has no model_index.json{hint}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OwlError(f"{str(index_file)!r} is not valid JSON; an Owl model folder's index names "
                       f"_class_name OwlPipeline and its components") from exc
    if not isinstance(index, dict) or index.get("_class_name") != "OwlPipeline":
        found = index.get("_class_name") if isinstance(index, dict) else type(index).__name__
        hint = ("; make an Owl model from it with owl init --lmm QWEN_DIR --vdm WAN_DIR --out OWL_DIR"
                if isinstance(found, str) and found.startswith("Wan") else "")
        raise OwlError(f"{str(index_file)!r} describes {found!r}, not an Owl pipeline (_class_name OwlPipeline){hint}")
    mode = index.get("mode", "trained")
    if mode not in MODES:
        raise OwlError(f"{str(index_file)!r} names mode {mode!r}; accepted: {', '.join(MODES)}")
    components = list(MODES[mode])
    if index.get("components", components) != components:
        raise OwlError(f"{str(index_file)!r} lists components {index.get('components')!r}; an Owl pipeline "
                       f"({mode}) has {components}")
    missing = [c for c in components if not (path / c).is_dir()]
    if missing:
        raise OwlError(f"model folder {str(path)!r} is missing component(s) {missing}; a saved Owl pipeline "
                       f"({mode}) has {components}")
    return path


def folder_mode(path: Path) -> str:
    """"trained" or "director": what a checked model folder holds (`check_model_folder`)."""
    return json.loads((path / "model_index.json").read_text()).get("mode", "trained")


def preset_parts(name: str | ModelPreset, seed: int, device: torch.device, torch_dtype: torch.dtype | None,
                 tokenizer: str | Path | None) -> tuple[WorldModel, Renderer]:
    """The world model and renderer of a named size, randomly initialized from `seed` on `device` (see
    `OwlPipeline.from_preset`)."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer, Qwen2VLImageProcessorPil

    from owl.components import load_component
    from owl.tokenizer import build_tiny_tokenizer

    preset = get_preset(name) if isinstance(name, str) else name
    if tokenizer is None:
        tokenizer = build_tiny_tokenizer()
    else:
        folder = Path(tokenizer)
        if not folder.is_dir():
            raise OwlError(f"tokenizer folder not found: {str(folder)!r} (the folder of {preset.tokenizer!r})")
        tokenizer = load_component("the tokenizer", folder,
                                   lambda: AutoTokenizer.from_pretrained(folder, trust_remote_code=False))
    ids = {k: tokenizer.convert_tokens_to_ids(t) for k, t in (
        ("eos_token_id", "<|im_end|>"), ("pad_token_id", "<|endoftext|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"))}
    if ids["video_token_id"] in (None, tokenizer.unk_token_id):  # the built-in tokenizer has no video token
        ids["video_token_id"] = ids["image_token_id"]
    text_config = {**preset.vlm["text_config"], "bos_token_id": None, "eos_token_id": ids["eos_token_id"],
                   "pad_token_id": ids["pad_token_id"]}
    vlm_config = AutoConfig.for_model(**{**preset.vlm, "text_config": text_config, **ids, "bos_token_id": None})
    vision = vlm_config.vision_config
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=vision.patch_size, merge_size=vision.spatial_merge_size, temporal_patch_size=vision.temporal_patch_size)
    torch.manual_seed(seed)
    with torch.device(device):
        vlm = AutoModelForImageTextToText.from_config(vlm_config)
        world_model = WorldModel(vlm, tokenizer, image_processor, preset.world_model)
        transformer = WanTransformer3DModel(**preset.transformer)
        vae = AutoencoderKLWan(**preset.vae)
        scheduler = FlowMatchEulerDiscreteScheduler(shift=preset.renderer.flow_shift)
        renderer = Renderer(transformer, vae, scheduler, preset.renderer)
    if torch_dtype is not None:
        vlm.to(torch_dtype)
        transformer.to(torch_dtype)
    return world_model.eval(), renderer.eval()


def pretrained_parts(path: Path, torch_dtype: torch.dtype | None) -> tuple[WorldModel, Renderer]:
    """The world model and renderer of a folder `save_pretrained` wrote, checked by `check_model_folder` (see
    `OwlPipeline.from_pretrained`)."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
    from transformers import AutoModelForImageTextToText, AutoTokenizer, Qwen2VLImageProcessorPil

    from owl.components import checked_transformers_load, load_component, quiet_transformers

    def load(name, fn):
        return load_component(f"component {name!r}", path, lambda: fn(path / name))

    dtype = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}  # diffusers' name
    with quiet_transformers():  # transformers 5 calls it `dtype`
        vlm = load("vlm", lambda p: checked_transformers_load(AutoModelForImageTextToText, p,
                                                               **{"dtype": torch_dtype} if torch_dtype else {}))
    tokenizer = load("tokenizer", lambda p: AutoTokenizer.from_pretrained(p, trust_remote_code=False))
    image_processor = load("image_processor", Qwen2VLImageProcessorPil.from_pretrained)
    if folder_mode(path) == "director":
        from transformers import UMT5EncoderModel

        from owl.director import Director

        with quiet_transformers():
            encoder = load("text_encoder", lambda p: checked_transformers_load(UMT5EncoderModel, p))
        text_tokenizer = load("text_tokenizer", lambda p: AutoTokenizer.from_pretrained(p, trust_remote_code=False))
        world_model = load("world_model", lambda p: Director.from_parts(vlm, tokenizer, image_processor, encoder,
                                                                         text_tokenizer, p))
    else:
        world_model = load("world_model", lambda p: WorldModel.from_parts(vlm, tokenizer, image_processor, p))
    transformer = load("transformer", lambda p: WanTransformer3DModel.from_pretrained(p, use_safetensors=True, **dtype))
    vae = load("vae", lambda p: AutoencoderKLWan.from_pretrained(p, use_safetensors=True))
    scheduler = load("scheduler", FlowMatchEulerDiscreteScheduler.from_pretrained)
    renderer = load("renderer", lambda p: Renderer.from_parts(transformer, vae, scheduler, p))
    if scheduler.config.shift != renderer.config.flow_shift:  # sampling and training use one shift
        raise OwlError(f"model folder {str(path)!r}: the scheduler's shift {scheduler.config.shift:g} differs from "
                       f"the renderer's flow_shift {renderer.config.flow_shift:g}, which its training used")
    if renderer.config.state_dim != world_model.hidden_size:
        raise OwlError(f"model folder {str(path)!r}: renderer expects states of size {renderer.config.state_dim} "
                       f"but the world model's are {world_model.hidden_size}")
    return world_model.eval(), renderer.eval()
