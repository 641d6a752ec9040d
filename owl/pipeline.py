"""OwlPipeline: the public entry point, after diffusers' pipelines.

    pipe = OwlPipeline.from_pretrained("checkpoints/owl-shapes")      # or OwlPipeline.from_preset("tiny")
    out = pipe("a red ball rolls left", seconds=24, output="ball.mp4")
    out.path, out.seconds, out.storyboard

A saved pipeline is one folder, each component in its own subfolder with a config and safetensors weights:

    model_index.json      which components, and Owl's version
    world_model/          config.json + model.safetensors (the state queries)
    vlm/                  the vision-language model (transformers save_pretrained)
    tokenizer/            tokenizer files (transformers)
    image_processor/      the vision tower's preprocessing (transformers)
    renderer/             config.json + model.safetensors (state projector, null state)
    transformer/, vae/    the Wan video diffusion model (diffusers save_pretrained)
    scheduler/            the flow-matching scheduler config (diffusers)

Nothing is ever unpickled, and no remote code is enabled.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from owl.config import ModelPreset, get_preset
from owl.errors import OwlError
from owl.renderer import Renderer
from owl.rollout import ClipEvent, RolloutSettings, Storyboard, rollout
from owl.video_io import VideoWriter, write_bytes_atomic
from owl.world_model import WorldModel

COMPONENTS = ("world_model", "vlm", "tokenizer", "image_processor", "renderer", "transformer", "vae", "scheduler")
MAX_SECONDS = 3600


@dataclass
class OwlPipelineOutput:
    path: Path | None  # the mp4, when `output` was given
    frames: np.ndarray | None  # (T, H, W, 3) uint8, only when no `output` was given
    num_frames: int
    fps: float
    seconds: float
    storyboard: Storyboard
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent: world_model, denoise, decode, write, total


def load_image(image, height: int, width: int) -> np.ndarray:
    """A path, PIL image or (H, W, 3) uint8 array -> (height, width, 3) uint8, resized and centre-cropped."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise OwlError(f"image not found: {str(path)!r}")
        try:
            with Image.open(path) as f:
                image = f.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise OwlError(f"cannot read image {str(path)!r}: not a readable image file") from exc
    elif isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise OwlError(f"image array must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        image = Image.fromarray(image)
    elif not isinstance(image, Image.Image):
        raise OwlError(f"image must be a path, a PIL image or a uint8 array, got {type(image).__name__}")
    image = image.convert("RGB")
    scale = max(height / image.height, width / image.width)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.BICUBIC)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    return np.array(resized.crop((left, top, left + width, top + height)), dtype=np.uint8)


class OwlPipeline:
    def __init__(self, world_model: WorldModel, renderer: Renderer):
        self.world_model = world_model
        self.renderer = renderer

    # --- building and loading -------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str | ModelPreset, seed: int = 0, device: str | torch.device = "cpu") -> "OwlPipeline":
        """A randomly initialized pipeline of a named size (see `owl.config.PRESETS`), seeded."""
        from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
        from transformers import AutoConfig, AutoModelForImageTextToText, Qwen2VLImageProcessorPil

        from owl.tokenizer import build_tiny_tokenizer

        preset = get_preset(name) if isinstance(name, str) else name
        if preset.tokenizer != "tiny":
            raise OwlError("only presets with the built-in tokenizer build from scratch; load real models with "
                           "from_pretrained")
        tokenizer = build_tiny_tokenizer()
        ids = {k: tokenizer.convert_tokens_to_ids(t) for k, t in (
            ("eos_token_id", "<|im_end|>"), ("pad_token_id", "<|endoftext|>"),
            ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
            ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|image_pad|>"))}
        text_config = {**preset.vlm["text_config"], "bos_token_id": None, "eos_token_id": ids["eos_token_id"],
                       "pad_token_id": ids["pad_token_id"]}
        vlm_config = AutoConfig.for_model(**{**preset.vlm, "text_config": text_config}, **ids, bos_token_id=None)
        vision = vlm_config.vision_config
        image_processor = Qwen2VLImageProcessorPil(
            patch_size=vision.patch_size, merge_size=vision.spatial_merge_size, temporal_patch_size=vision.temporal_patch_size)
        torch.manual_seed(seed)
        vlm = AutoModelForImageTextToText.from_config(vlm_config)
        world_model = WorldModel(vlm, tokenizer, image_processor, preset.world_model)
        transformer = WanTransformer3DModel(**preset.transformer)
        vae = AutoencoderKLWan(**preset.vae)
        scheduler = FlowMatchEulerDiscreteScheduler(shift=preset.renderer.flow_shift)
        renderer = Renderer(transformer, vae, scheduler, preset.renderer)
        return cls(world_model.eval(), renderer.eval()).to(device)

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        torch_dtype: torch.dtype | None = None) -> "OwlPipeline":
        """Load a folder written by `save_pretrained` (safetensors only, no remote code)."""
        from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel
        from transformers import AutoModelForImageTextToText, AutoTokenizer, Qwen2VLImageProcessorPil

        path = Path(path)
        if not path.is_dir():
            raise OwlError(f"model folder not found: {str(path)!r}")
        missing = [c for c in COMPONENTS if not (path / c).is_dir()]
        if missing:
            raise OwlError(f"model folder {str(path)!r} is missing component(s) {missing}; a saved Owl pipeline "
                           f"has {list(COMPONENTS)}")

        def load(name, fn):
            try:
                return fn(path / name)
            except OwlError:
                raise
            except Exception as exc:  # the libraries raise many types; the user needs the component and the reason
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise OwlError(f"cannot load component {name!r} from {str(path)!r}: {reason}") from exc

        dtype = {"torch_dtype": torch_dtype} if torch_dtype is not None else {}
        with _quiet_transformers():
            vlm = load("vlm", lambda p: _checked_transformers_load(AutoModelForImageTextToText, p, **dtype))
        tokenizer = load("tokenizer", lambda p: AutoTokenizer.from_pretrained(p, trust_remote_code=False))
        image_processor = load("image_processor", Qwen2VLImageProcessorPil.from_pretrained)
        world_model = load("world_model", lambda p: WorldModel.from_parts(vlm, tokenizer, image_processor, p))
        transformer = load("transformer", lambda p: WanTransformer3DModel.from_pretrained(p, use_safetensors=True, **dtype))
        vae = load("vae", lambda p: AutoencoderKLWan.from_pretrained(p, use_safetensors=True))
        scheduler = load("scheduler", FlowMatchEulerDiscreteScheduler.from_pretrained)
        renderer = load("renderer", lambda p: Renderer.from_parts(transformer, vae, scheduler, p))
        if renderer.config.state_dim != world_model.hidden_size:
            raise OwlError(f"model folder {str(path)!r}: renderer expects states of size {renderer.config.state_dim} "
                           f"but the world model's are {world_model.hidden_size}")
        return cls(world_model.eval(), renderer.eval()).to(device)

    def save_pretrained(self, path: str | Path) -> None:
        """Write every component under `path/` (see the module docstring)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        wm, r = self.world_model, self.renderer
        wm.vlm.save_pretrained(path / "vlm", safe_serialization=True)
        wm.tokenizer.save_pretrained(path / "tokenizer")
        wm.image_processor.save_pretrained(path / "image_processor")
        wm.save_pretrained(path / "world_model")
        r.transformer.save_pretrained(path / "transformer", safe_serialization=True)
        r.vae.save_pretrained(path / "vae", safe_serialization=True)
        r.scheduler.save_pretrained(path / "scheduler")
        r.save_pretrained(path / "renderer")
        from owl import __version__

        index = {"_class_name": "OwlPipeline", "_owl_version": __version__, "components": list(COMPONENTS)}
        write_bytes_atomic(path / "model_index.json", (json.dumps(index, indent=2) + "\n").encode())

    def to(self, device) -> "OwlPipeline":
        self.world_model.to(device)
        self.renderer.to(device)
        return self

    # --- generation -----------------------------------------------------------------------------------------

    def check_inputs(self, prompt: str, image, seconds: float, fps: float, height: int, width: int,
                     num_inference_steps: int, guidance_scale: float, memory: str, output) -> None:
        if not isinstance(prompt, str):
            raise OwlError(f"prompt must be a string, got {type(prompt).__name__}")
        if image is None and not prompt.strip():
            raise OwlError("prompt is empty; text-to-video needs a prompt (image-to-video may leave it empty)")
        if not isinstance(seconds, (int, float)) or not 0 < seconds <= MAX_SECONDS:
            raise OwlError(f"seconds must be > 0 and <= {MAX_SECONDS}, got {seconds}")
        if not isinstance(fps, (int, float)) or not 1 <= fps <= 120:
            raise OwlError(f"fps must be between 1 and 120, got {fps}")
        self.renderer.check_size(height, width)
        if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise OwlError(f"num_inference_steps must be a positive integer, got {num_inference_steps}")
        if not isinstance(guidance_scale, (int, float)) or guidance_scale < 1:
            raise OwlError(f"guidance_scale must be >= 1 (1 turns guidance off), got {guidance_scale}")
        if memory not in ("full", "last"):
            raise OwlError(f"memory must be 'full' or 'last', got {memory!r}")
        if output is not None:
            out = Path(output)
            if out.suffix.lower() != ".mp4":
                raise OwlError(f"output must be an .mp4 path, got {str(out)!r}")
            if not out.parent.is_dir():
                raise OwlError(f"output folder does not exist: {str(out.parent)!r}")

    @torch.no_grad()
    def __call__(self, prompt: str = "", image=None, seconds: float = 8.0, fps: float | None = None,
                 height: int | None = None, width: int | None = None, dynamics: list[str | None] | None = None,
                 seed: int = 0, num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 memory: str = "full", output: str | Path | None = None,
                 callback: Callable[[ClipEvent], None] | None = None, progress: bool = True,
                 do_sample: bool = False, temperature: float = 1.0) -> OwlPipelineOutput:
        """Generate a video of `seconds` from a prompt (and optionally a first image).

        dynamics: the texts d_0, d_1, ... that drive each next clip; None entries (or a short list) are filled
        by the world model's own predictions. memory: "full" (the world state) or "last" (last clip + caption).
        output: an .mp4 path, written atomically as clips finish; without it the frames are returned in memory.
        """
        cfg = self.renderer.config
        default = lambda value, fallback: fallback if value is None else value
        settings = RolloutSettings(
            seconds=seconds, fps=default(fps, cfg.fps), height=default(height, cfg.height),
            width=default(width, cfg.width), num_inference_steps=default(num_inference_steps, cfg.num_inference_steps),
            guidance_scale=default(guidance_scale, cfg.guidance_scale),
            memory=memory, seed=seed, do_sample=do_sample, temperature=temperature)
        self.check_inputs(prompt, image, settings.seconds, settings.fps, settings.height, settings.width,
                          settings.num_inference_steps, settings.guidance_scale, memory, output)
        if dynamics is not None and not all(d is None or isinstance(d, str) for d in dynamics):
            raise OwlError("dynamics must be a list of strings (None for a predicted step)")
        first = None if image is None else load_image(image, settings.height, settings.width)

        timings: dict[str, float] = {}
        run = lambda write: rollout(self.world_model, self.renderer, prompt, settings, write, image=first,
                                    dynamics=dynamics, callback=callback, progress=progress, timings=timings)
        if output is None:
            chunks: list[np.ndarray] = []
            storyboard = run(chunks.append)
            frames = np.concatenate(chunks)
            return OwlPipelineOutput(None, frames, len(frames), settings.fps, len(frames) / settings.fps, storyboard, timings)
        with VideoWriter(output, fps=settings.fps) as writer:
            storyboard = run(writer.append)
        n = writer.num_frames
        return OwlPipelineOutput(Path(output), None, n, settings.fps, n / settings.fps, storyboard, timings)


@contextlib.contextmanager
def _quiet_transformers():
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


def _checked_transformers_load(cls, path: Path, **kwargs):
    """transformers' from_pretrained, but missing or unexpected weights are an error, not a warning."""
    model, info = cls.from_pretrained(path, use_safetensors=True, trust_remote_code=False, output_loading_info=True, **kwargs)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        first = {k: sorted(v)[:3] for k, v in bad.items()}
        raise OwlError(f"weights in {str(path)!r} do not match its config: {first}")
    return model
