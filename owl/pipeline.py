"""OwlPipeline: the public entry point, after diffusers' pipelines.

    pipe = OwlPipeline.from_pretrained("checkpoints/owl-shapes")      # or OwlPipeline.from_preset("tiny")
    out = pipe("a red ball rolls left", seconds=24, output="ball.mp4")
    out.path, out.seconds, out.storyboard

A saved pipeline is one folder, each component in its own subfolder with a config and safetensors weights (read
and checked by owl/loading.py):

    model_index.json      which components, and Owl's version
    world_model/          config.json + model.safetensors (the state queries)
    vlm/                  the vision-language model (transformers save_pretrained)
    tokenizer/            tokenizer files (transformers)
    image_processor/      the vision tower's preprocessing (transformers)
    renderer/             config.json + model.safetensors (state projector, null state)
    transformer/, vae/    the Wan video diffusion model (diffusers save_pretrained)
    scheduler/            the flow-matching scheduler config (diffusers)
    text_encoder/, text_tokenizer/   director mode only (model_index "mode": "director"; owl/director.py): the Wan
                          folder's UMT5 and its tokenizer; world_model/ then holds the director's config, no weights

Nothing is ever unpickled, and no remote code is enabled.

World sessions (see `owl.session`): with `session=` a rollout is saved after every clip, and a playable
`out.partial.mp4` of the video so far is published beside `out.mp4` until it is complete; `resume` continues an
interrupted session (the result is frame for frame the uninterrupted video), `branch` forks a session at a clip
with other dynamics, `extend` continues a finished session or any mp4.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from owl.clip_sources import ClipSource, Film, FromVideo
from owl.config import ModelPreset
from owl.director import Director
from owl.errors import OwlError
from owl.files import check_output, output_lock, remove_stale_temporaries, write_bytes_atomic
from owl.loading import check_model_folder, load_image, preset_parts, pretrained_parts, resolve_device
from owl.renderer import Interrupted, Renderer
from owl.rollout import ClipEvent, Storyboard, check_dynamics, rollout
from owl.session import PartialVideo, SessionFolder, partial_path, session_path
from owl.settings import DEFAULT_SECONDS, RolloutSettings, check_setting
from owl.timeline import Timeline
from owl.video_io import VideoWriter, read_video
from owl.world_model import WorldModel

OUTPUT_TYPES = ("np", "pt", "pil", "latent")


@dataclass
class OwlPipelineOutput:
    path: Path | None  # the mp4, when `output` was given
    frames: np.ndarray | None  # the video when no `output` was given, as `output_type` says ("np": (T, H, W, 3) uint8)
    num_frames: int
    fps: float
    seconds: float
    storyboard: Storyboard
    timings: dict[str, float] = field(default_factory=dict)  # seconds spent: world_model, denoise, decode, write, total
    latents: list[torch.Tensor] | None = None  # output_type "latent": each filmed clip's latents (1, C, c + n, h, w)
    interrupted: bool = False  # the rollout was stopped (`pipe.interrupt`) before its end


class OwlPipeline:
    model_cpu_offload_seq = "vlm->transformer->vae"  # the order the loop calls them in, every clip
    _callback_tensor_inputs = ["latents"]  # what `callback_on_step_end` may read and replace

    def __init__(self, world_model: WorldModel, renderer: Renderer):
        self.world_model = world_model
        self.renderer = renderer
        # a director's loop calls its VLM, then its text encoder, then the VDM (owl/director.py)
        self.model_cpu_offload_seq = "->".join([*world_model.offload_parts(), "transformer", "vae"])
        self._interrupt = False  # set by a callback to stop the rollout (see `__call__`)
        self._on_step = None  # the renderer's per-step hook while a call with callback_on_step_end runs
        self.source: dict | None = None  # where the weights came from ({"preset": ...} or {"path": ...}), for sessions

    # --- building and loading -------------------------------------------------------------------------------

    @classmethod
    def from_preset(cls, name: str | ModelPreset, seed: int = 0, device: str | torch.device = "cpu",
                    torch_dtype: torch.dtype | None = None, tokenizer: str | Path | None = None) -> "OwlPipeline":
        """A randomly initialized pipeline of a named size (see `owl.config.PRESETS`), seeded. torch_dtype: the
        LMM and the VDM transformer in bf16/fp16 (the VAE, queries and projector stay float32).

        tokenizer: a folder holding the tokenizer and image processor the preset names (`ModelPreset.tokenizer`,
        e.g. a Qwen2.5-VL-3B-Instruct folder): the LMM then carries the real special-token ids. Without it a preset
        whose `tokenizer` is "tiny" uses Owl's built-in tokenizer; a real-size preset does too (a random-weights
        build for speed and memory figures, benchmarks/vs_wan.py), with the built-in ids, which are not the real
        ones. Real weights load with `from_components` or `from_pretrained`. Weights are made on `device`."""
        device = resolve_device(device)
        world_model, renderer = preset_parts(name, seed, device, torch_dtype, tokenizer)
        pipe = cls(world_model.eval(), renderer.eval()).to(device)
        pipe.source = {"preset": name, "seed": seed} if isinstance(name, str) else None
        return pipe

    @classmethod
    def from_components(cls, lmm: str | Path | nn.Module, vdm, tokenizer=None, image_processor=None,
                        device: str | torch.device = "cpu", torch_dtype: torch.dtype | None = None, seed: int = 0,
                        director: bool = False, instruction: str | None = None, **choices) -> "OwlPipeline":
        """An Owl model around published checkpoints (see `owl.components`): `lmm` a transformers Qwen-VL folder
        (or a loaded model, with its `tokenizer` and `image_processor`), `vdm` a diffusers Wan folder (or a loaded
        WanPipeline). Every dimension comes from their configs; the state queries and projector are new, drawn
        from `seed`. choices: `owl.components.OwlChoices` (num_queries, key_frames, key_frame_size, clip_seconds,
        fps, height, width, num_inference_steps, guidance_scale). `save_pretrained` then writes an Owl folder.

        director: director mode (owl/director.py), ready to use with no training: the instruct VLM writes each next
        event (after `instruction`, default `owl.config.DIRECTOR_INSTRUCTION`) and the Wan folder's own text
        encoder conditions the transformer; the LMM needs a chat template, the Wan folder its text_encoder/."""
        from owl.components import OwlChoices, assemble, load_lmm, load_text_encoder, load_vdm, scheduler_shift

        if director and "num_queries" in choices:
            raise OwlError("num_queries (--num-queries) has no use in director mode (--director): its state is the "
                           "Wan text encoder's features")
        if instruction is not None and not director:
            raise OwlError("an instruction (--instruction) is for director mode: add director=True (--director)")
        if instruction is not None and (not isinstance(instruction, str) or not instruction.strip()):
            raise OwlError(f"instruction must be a non-empty text, got {instruction!r}")
        try:
            options = OwlChoices(**choices)
        except TypeError as exc:
            raise OwlError(f"from_components: {exc}; accepted: {', '.join(OwlChoices.__dataclass_fields__)}") from None
        device = resolve_device(device)
        if isinstance(lmm, (str, Path)):
            vlm, tokenizer, image_processor = load_lmm(lmm, torch_dtype)
        elif tokenizer is None or image_processor is None:
            raise OwlError("from_components: a loaded LMM needs its tokenizer= and image_processor= too")
        else:
            vlm = lmm
        if director:
            from owl.director import check_chat_template

            check_chat_template(tokenizer, f"LMM {str(lmm)!r}" if isinstance(lmm, (str, Path)) else "the LMM")
        text = None
        if isinstance(vdm, (str, Path)):
            transformer, vae, shift = load_vdm(vdm, torch_dtype)
            if director:
                text = load_text_encoder(vdm)
        else:  # a loaded diffusers WanPipeline
            transformer, vae = vdm.transformer, vdm.vae
            shift = scheduler_shift(vdm.scheduler.config, "from_components(vdm=...)")
            if director:
                if getattr(vdm, "text_encoder", None) is None or getattr(vdm, "tokenizer", None) is None:
                    raise OwlError("from_components: director mode needs the WanPipeline's text_encoder and tokenizer")
                text = (vdm.text_encoder, vdm.tokenizer)
        pipe = assemble(vlm, tokenizer, image_processor, transformer, vae, shift, options, seed, text,
                        instruction).to(device)
        pipe.source = None  # not reproducible from a name: save it, and sessions record the folder
        return pipe

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        torch_dtype: torch.dtype | None = None) -> "OwlPipeline":
        """Load a folder written by `save_pretrained` (safetensors only, no remote code)."""
        path = check_model_folder(path)
        device = resolve_device(device)
        world_model, renderer = pretrained_parts(path, torch_dtype)
        pipe = cls(world_model.eval(), renderer.eval()).to(device)
        pipe.source = {"path": str(path.resolve())}
        return pipe

    def save_pretrained(self, path: str | Path) -> None:
        """Write every component under `path/` (see the module docstring)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        wm, r = self.world_model, self.renderer
        for name, part in wm.parts().items():  # the LMM, its tokenizer and processor; a director's text encoder
            part.save_pretrained(path / name)
        wm.save_pretrained(path / "world_model")
        r.transformer.save_pretrained(path / "transformer", safe_serialization=True)
        r.vae.save_pretrained(path / "vae", safe_serialization=True)
        r.scheduler.save_pretrained(path / "scheduler")
        r.save_pretrained(path / "renderer")
        from owl import __version__

        index = {"_class_name": "OwlPipeline", "_owl_version": __version__, "components": list(self.components)}
        if isinstance(wm, Director):
            index["mode"] = "director"
        write_bytes_atomic(path / "model_index.json", (json.dumps(index, indent=2) + "\n").encode())

    def to(self, device) -> "OwlPipeline":
        self.world_model.to(device)
        self.renderer.to(device)
        return self

    # --- speed and memory settings (for GPUs; each is off by default) ----------------------------------------

    def enable_vae_tiling(self) -> None:
        """Decode and encode large frames tile by tile (diffusers' Wan VAE tiling): less memory at 480p and up."""
        self.renderer.vae.enable_tiling()

    def enable_vae_slicing(self) -> None:
        """Decode a batch of clips one sample at a time (diffusers' Wan VAE slicing)."""
        self.renderer.vae.enable_slicing()

    def enable_model_cpu_offload(self, device: str | torch.device = "cuda") -> None:
        """Keep the weights in CPU memory and move one big component at a time to `device` as the loop reaches
        it, in `model_cpu_offload_seq` order: the LMM, the VDM transformer, the VAE (as diffusers'
        `enable_model_cpu_offload`; see owl/offload.py). Peak accelerator memory is then about the largest
        component plus the LMM's KV cache, at the price of a host-to-device copy per component per clip."""
        from owl.offload import enable_model_cpu_offload

        self._offload = enable_model_cpu_offload(self, torch.device(device), self.model_cpu_offload_seq.split("->"))

    def enable_group_offload(self, onload_device: str | torch.device = "cuda",
                             offload_device: str | torch.device = "cpu", offload_type: str = "block_level",
                             num_blocks_per_group: int | None = 1, use_stream: bool = False) -> None:
        """diffusers' group offloading on every component (see owl/offload.py): a few blocks on the accelerator at
        a time. offload_type "block_level" (the Wan transformer and VAE block by block, `num_blocks_per_group`
        at a time) or "leaf_level"; the LMM always leaf by leaf. use_stream: overlap copies and compute (CUDA)."""
        from owl.offload import enable_group_offload

        if offload_type not in ("block_level", "leaf_level"):
            raise OwlError(f"offload_type must be 'block_level' or 'leaf_level', got {offload_type!r}")
        enable_group_offload(self, torch.device(onload_device), torch.device(offload_device), offload_type,
                             num_blocks_per_group, use_stream)

    def enable_cache(self, config) -> None:
        """One of diffusers' cache hooks on the Wan transformer (`diffusers.hooks.FirstBlockCacheConfig`,
        `FasterCacheConfig`, `PyramidAttentionBroadcastConfig`, ...): denoising steps reuse what changed little.
        The renderer starts the cache afresh with every clip. What each costs in the Shapes World scores and
        saves in time is measured by benchmarks/cache_hooks.py."""
        self.renderer.transformer.enable_cache(config)

    def disable_cache(self) -> None:
        self.renderer.transformer.disable_cache()

    def compile(self, **kwargs) -> None:
        """torch.compile the two heavy forward passes: the VDM transformer and the LMM's language model.

        The first clips then pay the compile time; worth it for long rollouts on a GPU. kwargs go to torch.compile.
        """
        self.renderer.transformer.compile(**kwargs)
        self.world_model.language_model.compile(**kwargs)

    # --- generation -----------------------------------------------------------------------------------------

    def check_inputs(self, prompt: str, image, settings: RolloutSettings, output, output_type: str = "np",
                     callback_on_step_end_tensor_inputs=("latents",)) -> None:
        """What a new rollout needs beyond valid settings (RolloutSettings checks those): a prompt, a size this
        model can film, an output path that can be written, an output type and step-callback inputs it has."""
        if output_type not in OUTPUT_TYPES:
            raise OwlError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        self._check_step_inputs(callback_on_step_end_tensor_inputs)
        if not isinstance(prompt, str):
            raise OwlError(f"prompt must be a string, got {type(prompt).__name__}")
        if image is None and not prompt.strip():
            raise OwlError("prompt is empty; text-to-video needs a prompt (image-to-video may leave it empty)")
        self.renderer.check_size(settings.height, settings.width)
        if output is not None:
            check_output(output)

    @torch.no_grad()
    def __call__(self, prompt: str = "", image=None, seconds: float = DEFAULT_SECONDS, fps: float | None = None,
                 height: int | None = None, width: int | None = None,
                 dynamics: list[str | None] | Timeline | None = None, seed: int = 0,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 memory: str = "full", output: str | Path | None = None,
                 callback: Callable[[ClipEvent], None] | None = None, progress: bool = True,
                 do_sample: bool = False, temperature: float = 1.0,
                 session: str | Path | None = None, max_observations: int | None = None,
                 max_steps: int | None = None, output_type: str = "np",
                 callback_on_step_end: Callable | None = None,
                 callback_on_step_end_tensor_inputs: list[str] = ("latents",)) -> OwlPipelineOutput:
        """Generate a video of `seconds` from a prompt (and optionally a first image).

        dynamics: the texts d_0, d_1, ... that drive each next clip, or a `Timeline` of timed segments; None
        entries, gaps and a short list are filled by the world model's own predictions. memory: "full" (the world
        state) or "last" (last clip + caption; see owl/memory.py). output: an .mp4 path, written atomically as
        clips finish; without it the video is returned in memory, as `output_type` says: "np" (uint8 (T, H, W, 3)),
        "pt" (float (T, 3, H, W) in [0, 1]), "pil" (a list of images) or "latent" (each filmed clip's latents,
        (1, C, c + n, h, w), context first, in `latents`; the loop still decodes them: the world model observes
        pixels). session: a folder (`owl.session.session_path(output)` is the usual one) where the rollout is
        saved after every clip, for `resume`, `branch` and `extend`; it also publishes a playable
        `out.partial.mp4` while the video grows (removed when `output` is complete), passed to `callback` as
        `event.path`. max_observations / max_steps: bound the world model's history (the visual tokens of the
        last K observations; the states and dynamics of the last M steps); None is the model's default (the steps
        that fit in a quarter of its context, so the cost per clip stays flat however long the video), 0 keeps all.

        callback_on_step_end(pipe, i, t, callback_kwargs) -> dict: after each denoising step of each clip, as in
        diffusers; callback_kwargs holds the `callback_on_step_end_tensor_inputs` ("latents": the new frames'
        latents), and a "latents" it returns replaces them. Setting `pipe.interrupt` (`pipe._interrupt = True`)
        there or in `callback` ends the rollout: the clip being filmed is dropped and the result holds the clips
        finished (`interrupted` is True; a session stays resumable).
        """
        settings = self._settings(seconds, fps, height, width, num_inference_steps, guidance_scale, memory, seed,
                                  do_sample, temperature, max_observations, max_steps)
        self.check_inputs(prompt, image, settings, output, output_type, callback_on_step_end_tensor_inputs)
        total = self.renderer.grid.total_frames(settings.seconds, settings.fps)
        plan = self._plan_dynamics(dynamics, settings, done=0, written=0, total=total)
        if session is not None and output is None:
            raise OwlError("a session needs an output video: give output=... (or drop session)")
        first = None if image is None else load_image(image, settings.height, settings.width)

        self._interrupt = False
        with self._stepping(callback_on_step_end, callback_on_step_end_tensor_inputs):
            if output is None:
                return self._in_memory(prompt, settings, first, plan, callback, progress, output_type)
            with output_lock(output):
                if session is None:
                    timings: dict[str, float] = {}
                    with VideoWriter(output, fps=settings.fps) as writer:
                        storyboard = self._rollout(prompt, settings, writer.append, first, plan, callback, progress,
                                                   timings)
                    return self._output(Path(output), None, writer.num_frames, settings, storyboard, timings)
                _check_session_beside(session, output)
                folder = SessionFolder.create(session, prompt=prompt, image=first, settings=settings, dynamics=plan,
                                              output=output, model=self.source)
                return self._run_session(folder, self._film(settings, first), callback, progress)

    @property
    def components(self) -> dict:
        """Every component by its folder name (`owl.loading.COMPONENTS`, or `DIRECTOR_COMPONENTS`), as diffusers'
        `pipe.components`."""
        wm, r = self.world_model, self.renderer
        return {"world_model": wm, **wm.parts(), "renderer": r, "transformer": r.transformer, "vae": r.vae,
                "scheduler": r.scheduler}

    @property
    def current_timestep(self):
        """The denoising step under way (None between steps), as diffusers' pipelines expose it: cache hooks
        such as PyramidAttentionBroadcast take `current_timestep_callback=lambda: pipe.current_timestep`."""
        return self.renderer.current_timestep

    @property
    def interrupt(self) -> bool:
        """True once a callback has asked the rollout to stop (`pipe._interrupt = True`), as in diffusers."""
        return self._interrupt

    def _check_step_inputs(self, names) -> None:
        unknown = [name for name in names if name not in self._callback_tensor_inputs]
        if unknown:
            raise OwlError(f"callback_on_step_end_tensor_inputs must be among {self._callback_tensor_inputs}, "
                           f"got {unknown}")

    @contextlib.contextmanager
    def _stepping(self, callback, names=("latents",)):
        """While one call runs: diffusers' `callback_on_step_end` as the renderer's per-step hook (`_film` passes
        it on), raising `Interrupted` when the callback asks the rollout to stop."""
        self._check_step_inputs(names)

        def on_step(i, t, latents):
            available = {"latents": latents}
            returned = callback(self, i, t, {name: available[name] for name in names}) or {}
            if self._interrupt:
                raise Interrupted
            return returned.get("latents", latents)

        self._on_step = None if callback is None else on_step
        try:
            yield
        finally:
            self._on_step = None

    def _rollout(self, prompt, settings, write, image, plan, callback, progress, timings, source=None,
                 on_clip=None) -> Storyboard:
        return rollout(self.world_model, self.renderer, prompt, settings, write, image=image, dynamics=plan,
                       callback=callback, progress=progress, timings=timings,
                       source=source or self._film(settings, image), on_clip=on_clip,
                       should_stop=lambda: self._interrupt)

    def _in_memory(self, prompt, settings, image, plan, callback, progress, output_type) -> OwlPipelineOutput:
        """A rollout kept in memory, returned as `output_type` says."""
        chunks: list[np.ndarray] = []
        latents: list[torch.Tensor] = []
        if output_type == "latent":
            user = callback

            def callback(event: ClipEvent) -> None:
                latents.append(event.latents)
                if user is not None:
                    user(event)
        timings: dict[str, float] = {}
        storyboard = self._rollout(prompt, settings, chunks.append, image, plan, callback, progress, timings)
        frames = np.concatenate(chunks) if chunks else np.zeros((0, settings.height, settings.width, 3), np.uint8)
        n = len(frames)
        if output_type == "latent":
            return self._output(None, None, n, settings, storyboard, timings, latents=latents)
        if output_type == "pt":
            frames = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
        elif output_type == "pil":
            from PIL import Image

            frames = [Image.fromarray(frame) for frame in frames]
        return self._output(None, frames, n, settings, storyboard, timings)

    def _output(self, path, frames, n: int, settings, storyboard, timings, latents=None) -> OwlPipelineOutput:
        return OwlPipelineOutput(path, frames, n, settings.fps, n / settings.fps, storyboard, timings, latents,
                                 self._interrupt)

    # --- world sessions -------------------------------------------------------------------------------------

    @torch.no_grad()
    def resume(self, session: str | Path, callback: Callable[[ClipEvent], None] | None = None,
               progress: bool = True, callback_on_step_end: Callable | None = None,
               callback_on_step_end_tensor_inputs: list[str] = ("latents",)) -> OwlPipelineOutput:
        """Continue an interrupted session: replay its world session, then film the clips it lacks.

        The finished video (the session's own output) is frame for frame what the uninterrupted run would have
        made: same states, same context latents, same generator state. callback_on_step_end: as in `__call__`
        (so for `branch` and `extend`).
        """
        folder = SessionFolder.open(session)
        folder.check_resumable()
        s = folder.settings
        self.renderer.check_size(s.height, s.width)
        with output_lock(check_output(folder.output)), \
                self._stepping(callback_on_step_end, callback_on_step_end_tensor_inputs):
            remove_stale_temporaries(folder.output.parent, stem=folder.output.stem)
            source = self._film(s, folder.image())
            if folder.records:
                source = folder.replay(source)
            return self._run_session(folder, source, callback, progress)

    @torch.no_grad()
    def branch(self, session: str | Path, at: int, output: str | Path, dynamics: list[str | None] | None = None,
               seconds: float | None = None, seed: int | None = None,
               callback: Callable[[ClipEvent], None] | None = None, progress: bool = True,
               callback_on_step_end: Callable | None = None,
               callback_on_step_end_tensor_inputs: list[str] = ("latents",)) -> OwlPipelineOutput:
        """Fork a session at clip `at`: clips 0..at-1 are kept, clips at.. are filmed again driven by `dynamics`
        (d_{at-1}, d_at, ...; None or missing entries are predicted). The original session and video are only
        read. seconds: the new total duration (default: the session's); seed: reseed the generator at the fork
        (default: carry the session's generator on, so the same dynamics give the same clips)."""
        src = SessionFolder.open(session)
        done = len(src.records)
        if isinstance(at, bool) or not isinstance(at, int) or not 1 <= at <= done:
            raise OwlError(f"at must be a clip index from 1 to {done} (the session's finished clips are 0..{done - 1}; "
                           f"clip 0 is made from the prompt alone), got {at!r}")
        settings = src.settings
        if seconds is not None:
            settings = replace(settings, seconds=seconds)
        if seed is not None:
            settings = replace(settings, seed=seed)
        output = check_output(output)
        target = session_path(output)
        if target.resolve() == src.path.resolve() or output.resolve() == src.output.resolve():
            raise OwlError(f"out {str(output)!r} would overwrite the session it branches from; choose another out")
        total = self.renderer.grid.total_frames(settings.seconds, settings.fps)
        kept = src.replay(None, upto=at - 1)
        written = kept.prefix(total)[1]  # the kept clips' frames, the last one's cut frames back in if it is longer
        prefix = (src.dynamics + [None] * at)[: at - 1]
        plan = self._plan_dynamics(dynamics, settings, done=at, written=written, total=total, prefix=prefix)
        if total <= written:
            raise OwlError(f"a {settings.seconds:g} s video ends within clip {at - 1}: nothing to branch at clip {at}; "
                           "give more seconds")
        with output_lock(output), self._stepping(callback_on_step_end, callback_on_step_end_tensor_inputs):
            folder = SessionFolder.create(target, prompt=src.prompt, image=src.image(), settings=settings,
                                          dynamics=plan, output=output, model=src.model or self.source,
                                          parent={"session": str(src.path.resolve()), "at": at}, status="preparing")
            folder.copy_clips(src, at)
            if seed is not None:
                folder.save_clip(replace(kept.last, rng=torch.Generator("cpu").manual_seed(seed).get_state()))
            folder.mark_running()  # complete clips only from here: a kill leaves a session that resumes
            return self._run_session(folder, folder.replay(self._film(settings, folder.image()), upto=at - 1),
                                     callback, progress)

    @torch.no_grad()
    def extend(self, source: str | Path, seconds: float, output: str | Path,
               dynamics: list[str | None] | None = None, prompt: str = "", seed: int = 0, fps: float | None = None,
               height: int | None = None, width: int | None = None, num_inference_steps: int | None = None,
               guidance_scale: float | None = None, memory: str = "full",
               callback: Callable[[ClipEvent], None] | None = None, progress: bool = True,
               callback_on_step_end: Callable | None = None,
               callback_on_step_end_tensor_inputs: list[str] = ("latents",)) -> OwlPipelineOutput:
        """Continue a finished session (a folder) or any video file by `seconds` more, into a new `output`.

        dynamics: d for the new clip transitions, in order. A session continues with its own settings, as one
        longer run would. A video is read at the model's fps and size (decord), cut on the clip grid and observed
        as O_0..O_k with predicted dynamics between its clips; its tail frames, encoded, are the next clip's
        context. `prompt`, `seed` and the size options apply to a video source only. The output holds the source
        followed by the new clips; a session is saved beside it.
        """
        check_setting("seconds", seconds)
        output = check_output(output)
        source = Path(source)
        check_extend_output(source, output)
        with output_lock(output), self._stepping(callback_on_step_end, callback_on_step_end_tensor_inputs):
            if source.is_dir():
                return self._extend_session(SessionFolder.open(source), seconds, output, dynamics, callback, progress)
            return self._extend_video(source, seconds, output, dynamics, prompt, seed, fps, height, width,
                                      num_inference_steps, guidance_scale, memory, callback, progress)

    def _extend_session(self, src: SessionFolder, seconds: float, output: Path, dynamics, callback,
                        progress) -> OwlPipelineOutput:
        if not src.complete:
            raise OwlError(f"session {str(src.path)!r} is not finished; resume it first "
                           f"(owl generate --resume {src.path})")
        if output.resolve() == src.output.resolve():  # (the session folder itself: check_extend_output)
            raise OwlError(f"out {str(output)!r} would overwrite the session it extends; choose another out")
        done, s = len(src.records), src.settings
        settings = replace(s, seconds=src.written / s.fps + seconds)
        total = self.renderer.grid.total_frames(settings.seconds, settings.fps)
        written = src.replay(None).prefix(total)[1]  # the saved last clip's cut frames come back first
        prefix = (src.dynamics + [None] * done)[: done - 1]
        plan = self._plan_dynamics(dynamics, settings, done=done, written=written, total=total, prefix=prefix)
        folder = SessionFolder.create(session_path(output), prompt=src.prompt, image=src.image(), settings=settings,
                                      dynamics=plan, output=output, model=src.model or self.source,
                                      parent={"session": str(src.path.resolve()), "extends": True},
                                      status="preparing")
        folder.copy_clips(src, done)
        folder.mark_running()  # complete clips only from here: a kill leaves a session that resumes
        return self._run_session(folder, folder.replay(self._film(settings, folder.image())), callback, progress)

    def _extend_video(self, source: Path, seconds: float, output: Path, dynamics, prompt, seed, fps, height, width,
                      num_inference_steps, guidance_scale, memory, callback, progress) -> OwlPipelineOutput:
        if not isinstance(prompt, str):
            raise OwlError(f"prompt must be a string, got {type(prompt).__name__}")
        settings = self._settings(seconds, fps, height, width, num_inference_steps, guidance_scale, memory, seed,
                                  False, 1.0)
        self.renderer.check_size(settings.height, settings.width)
        frames, _ = read_video(source, fps=settings.fps, size=(settings.height, settings.width))
        settings = replace(settings, seconds=len(frames) / settings.fps + seconds)
        total = self.renderer.grid.total_frames(settings.seconds, settings.fps)
        done = self.renderer.grid.count(len(frames))
        plan = self._plan_dynamics(dynamics, settings, done=done, written=len(frames), total=total,
                                   prefix=[None] * (done - 1))
        folder = SessionFolder.create(session_path(output), prompt=prompt, image=None, settings=settings,
                                      dynamics=plan, output=output, model=self.source,
                                      parent={"video": str(source.resolve())}, status="preparing")
        source = FromVideo(frames, self.renderer, self.world_model.config.key_frames, then=self._film(settings))
        return self._run_session(folder, source, callback, progress)

    def _film(self, settings: RolloutSettings, image: np.ndarray | None = None) -> Film:
        """The clip source that films with this pipeline's renderer."""
        return Film(self.renderer, settings, self.world_model.config.key_frames, image, on_step=self._on_step)

    def _run_session(self, folder: SessionFolder, source: ClipSource, callback, progress) -> OwlPipelineOutput:
        """Run the loop of a session from its first clip: stream the video to its output (replayed clips are
        written again, not saved again), save every new clip, publish the partial video; mark the session
        complete and drop the partial once the output is in place. A session still "preparing" (filled from a
        video) becomes resumable once the source's own clips are all saved."""
        s, output = folder.settings, folder.output
        self._interrupt = False
        preview = PartialVideo(folder, partial_path(output))
        known = source.prefix(self.renderer.grid.total_frames(s.seconds, s.fps))[0]

        def on_clip(step) -> Path | None:
            folder.save_clip(step)
            if folder.preparing and step.record.index + 1 >= known:
                folder.mark_running()
            return preview.publish()

        timings: dict[str, float] = {}
        with VideoWriter(output, fps=s.fps) as writer:
            storyboard = self._rollout(folder.prompt, s, writer.append, folder.image(), folder.dynamics, callback,
                                       progress, timings, source=source, on_clip=on_clip)
        if not self._interrupt:  # an interrupted session stays resumable
            folder.mark_complete()
        preview.remove()
        return self._output(output, None, writer.num_frames, s, storyboard, timings)

    # --- inputs ---------------------------------------------------------------------------------------------

    def _settings(self, seconds, fps, height, width, num_inference_steps, guidance_scale, memory, seed, do_sample,
                  temperature, max_observations=None, max_steps=None) -> RolloutSettings:
        """The rollout's settings, None meaning the model's own default; RolloutSettings checks every value."""
        cfg = self.renderer.config
        default = lambda value, fallback: fallback if value is None else value
        return RolloutSettings(
            seconds=seconds, fps=default(fps, cfg.fps), height=default(height, cfg.height),
            width=default(width, cfg.width), num_inference_steps=default(num_inference_steps, cfg.num_inference_steps),
            guidance_scale=default(guidance_scale, cfg.guidance_scale), memory=memory, seed=seed,
            do_sample=do_sample, temperature=temperature, max_observations=max_observations, max_steps=max_steps)

    def _plan_dynamics(self, dynamics, settings: RolloutSettings, done: int, written: int, total: int,
                       prefix: list[str | None] = ()) -> list[str | None]:
        """The absolute dynamics plan d_0, d_1, ...: `prefix` for the transitions already made, then `dynamics`
        (a list, or a Timeline mapped onto the clips' start times)."""
        grid = self.renderer.grid
        num_clips = done + grid.count_after(total - written, first=done == 0)
        if dynamics is None:
            new: list[str | None] = []
        elif isinstance(dynamics, Timeline):
            if done:
                raise OwlError("a timeline applies to a new rollout; give a list of dynamics to branch or extend")
            new = dynamics.dynamics_for([start / settings.fps for start in grid.starts(total)])
        elif isinstance(dynamics, (list, tuple)) and all(d is None or isinstance(d, str) for d in dynamics):
            new = [d.strip() if isinstance(d, str) and d.strip() else None for d in dynamics]
        else:
            raise OwlError("dynamics must be a list of strings (None for a predicted step) or a Timeline")
        plan = list(prefix) + new
        check_dynamics(plan, num_clips, settings, self.renderer)
        return plan


def check_extend_output(source: str | Path, output: str | Path) -> None:
    """`extend` writes `output` and the session beside it; neither may be the source it reads."""
    source, output = Path(source), Path(output)
    if source.exists() and source.resolve() in (output.resolve(), session_path(output).resolve()):
        raise OwlError(f"out {str(output)!r} would overwrite the source it extends; choose another out")


def _check_session_beside(session, output) -> None:
    """A session names its output by file name: it must sit in the same folder."""
    if Path(session).resolve().parent != Path(output).resolve().parent:
        raise OwlError(f"session {str(session)!r} must be in the same folder as output {str(output)!r}")
