"""Owl's clips against diffusers' own WanPipeline rendering the same clips, in one run.

    python benchmarks/vs_wan.py --preset tiny                    # anywhere: checks the script (CPU, toy size)
    python benchmarks/vs_wan.py                                  # on a GPU: real size (issue 6)
        = --preset qwen2.5-vl-3b+wan2.1-1.3b --dtype bfloat16 --seconds 24 (random weights, 480x832, 81-frame clips)
    python benchmarks/vs_wan.py --standin wan2.1 --threads 1 --seconds 3 --steps 10 --repeats 3   # CPU (issue 21)

--standin wan2.1 | wan2.2 builds real-layout stand-ins in a temporary folder: tests/standins.py's Qwen2.5-VL-3B
and Wan2.1-T2V-1.3B or Wan2.2-TI2V-5B folders (the published layouts) at the real widths of every part (the LMM,
its vision tower, the Wan transformer and VAE, the 4096-wide condition), with --layers layers in each of the three
transformers (the real ones have 36, 32 and 30: one count for all keeps their proportions), assembled by
`owl init` into an Owl folder at --size x --size with clips of --clip-seconds and key frames of --key-frame-size
(by default the frame size, as at real size). Weights are random.

Owl films a rollout of --seconds (text-to-video, the LMM predicting the dynamics), streamed to a temporary mp4
as the CLI does. WanPipeline, built from the very same transformer, VAE and scheduler (no text encoder: it is
given prompt embeddings of the condition's shape; a Wan2.2 VAE gets Wan2.2's per-token timesteps,
`expand_timesteps`, as its model_index.json states), then renders clips of the same latent length (the context
latent plus the clip's new ones), size, number of steps and guidance scale. Each of --repeats repetitions runs
half of its WanPipeline clips, then Owl's rollout, then the other half, so a machine that slows down or speeds up
does not favour either side. Printed, each measured here:
- per-clip time: Owl's clips 2..n (clip 1 also starts the world) against WanPipeline's clips of the same
  repetition (after one warm-up call), the ratio per repetition and its median;
- where each side's clip time goes (seconds per clip, summed over forward calls): the Wan transformer, the VAE
  decode, Owl's state projector, and the world model's vision tower, LMM layers and LM head; the rest is the
  loop itself (scheduler, noise, frames to uint8 and H.264, the callback). On a GPU the timing hooks synchronize
  at every timed call, on both sides;
- seconds of video per minute of wall time, for each;
- peak accelerator memory (max allocated) for Owl's rollouts and for WanPipeline's clips (CUDA only);
- Owl's loop overhead: rollout time over the time inside its renderer (denoising and decoding).
"""

from __future__ import annotations

import argparse
import collections
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from steal import Steal

REAL = "qwen2.5-vl-3b+wan2.1-1.3b"
ROOT = Path(__file__).resolve().parent.parent

# The published widths (config.json of Qwen/Qwen2.5-VL-3B-Instruct and Wan-AI/Wan2.1-T2V-1.3B-Diffusers, as
# shared/reference/real-configs.json records them; Wan-AI/Wan2.2-TI2V-5B-Diffusers's transformer/ and vae/ configs).
# Depths come from --layers. The Wan transformer's text_dim is the real UMT5's 4096; the stand-in folder's own UMT5
# stays small (neither Owl nor this benchmark runs it).
STANDIN_LMM = dict(hidden_size=2048, intermediate_size=11008, num_attention_heads=16, num_key_value_heads=2,
                   rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})
STANDIN_VISION = dict(hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048)
STANDIN_VDM = {
    "wan2.1": ("wan2_1_folder", "Wan2.1-T2V-1.3B-Diffusers",
               dict(num_attention_heads=12, attention_head_dim=128, ffn_dim=8960, freq_dim=256, text_dim=4096),
               dict(base_dim=96)),
    "wan2.2": ("wan2_2_ti2v_folder", "Wan2.2-TI2V-5B-Diffusers",
               dict(num_attention_heads=24, attention_head_dim=128, ffn_dim=14336, freq_dim=256, text_dim=4096),
               dict(base_dim=160, decoder_base_dim=256)),
}


def build_standin(kind: str, layers: int, size: int, clip_seconds: float, folder: Path,
                  key_frame_size: int) -> Path:
    """Write the stand-in LMM and Wan folders under `folder` and assemble them with `owl init`; the Owl folder.
    A folder already built with the same settings is reused."""
    out = folder / f"owl-{kind}-{layers}l-{size}px-{clip_seconds:g}s-{key_frame_size}kf"
    if (out / "model_index.json").is_file():
        return out
    sys.path.insert(0, str(ROOT))  # tests/ is not an installed package
    from transformers.utils import logging

    from owl.cli import main as owl_main
    from tests import standins

    logging.disable_progress_bar()
    lmm = standins.qwen2_5_vl_folder(
        folder / "Qwen2.5-VL-3B-Instruct", num_hidden_layers=layers, torch_dtype="float32", **STANDIN_LMM,
        vision_config={**STANDIN_VISION, "depth": layers, "fullatt_block_indexes": [layers - 1]})
    make, name, transformer, vae = STANDIN_VDM[kind]
    vdm = getattr(standins, make)(folder / name, transformer={**transformer, "num_layers": layers}, vae=vae)
    code = owl_main(["init", "--lmm", str(lmm), "--vdm", str(vdm), "--out", str(out), "--height", str(size),
                     "--width", str(size), "--clip-seconds", f"{clip_seconds:g}", "--dtype", "float32",
                     "--key-frame-size", str(key_frame_size)])
    if code:
        sys.exit(f"owl init failed ({code})")
    return out


class Stopwatch:
    """Seconds spent inside chosen modules (forward calls) and methods, summed per name."""

    def __init__(self, sync):
        self.sync = sync
        self.totals: dict[str, float] = collections.defaultdict(float)

    def module(self, name: str, module) -> None:
        starts = []

        def before(_module, _args):
            self.sync()
            starts.append(time.perf_counter())

        def after(_module, _args, _output):
            self.sync()
            self.totals[name] += time.perf_counter() - starts.pop()

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    def method(self, name: str, owner, attr: str) -> None:
        original = getattr(owner, attr)

        def timed(*args, **kwargs):
            self.sync()
            start = time.perf_counter()
            out = original(*args, **kwargs)
            self.sync()
            self.totals[name] += time.perf_counter() - start
            return out

        setattr(owner, attr, timed)  # an instance attribute: the class's method is untouched

    def snapshot(self) -> dict[str, float]:
        return dict(self.totals)


PARTS = ("transformer", "VAE decode", "state projector", "world model: vision tower", "world model: LMM layers",
         "world model: LM head")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=REAL, help=f"a model size from owl.config.PRESETS (default {REAL})")
    parser.add_argument("--model", help="a saved Owl pipeline folder instead of --preset")
    parser.add_argument("--standin", choices=tuple(STANDIN_VDM), help="real-layout stand-ins at real widths "
                        "(Qwen2.5-VL-3B + Wan2.1-T2V-1.3B or Wan2.2-TI2V-5B), --layers deep, instead of --preset")
    parser.add_argument("--layers", type=int, default=1, help="with --standin: layers of the LMM, of its vision "
                        "tower and of the Wan transformer (default 1)")
    parser.add_argument("--size", type=int, default=64, help="with --standin: frame height and width (default 64)")
    parser.add_argument("--key-frame-size", type=int, default=0,
                        help="with --standin: side of the key frames in the vision tower (default: the largest "
                             "multiple of 28 up to --size, as the real 448 is to 480 x 832 frames; `owl init`'s own "
                             "default of 448 would read 64 x 64 frames blown up 7x)")
    parser.add_argument("--clip-seconds", type=float, default=1.0,
                        help="with --standin: seconds each clip adds, at the Wan model's frame rate (default 1)")
    parser.add_argument("--standin-dir", metavar="DIR", help="with --standin: build (or reuse) the folders here "
                        "instead of a temporary folder")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N; auto: the GPU if any, else cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repetitions (Wan, Owl, Wan); the "
                        "printed ratio is their median (default 1)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--tokenizer", metavar="DIR", help="with --preset: the real LMM's folder (its tokenizer "
                        "and special-token ids); default: Owl's built-in tokenizer (the timings do not change)")
    parser.add_argument("--prompt", default="a red circle enters from the left.")
    parser.add_argument("--given-dynamics", metavar="TEXT", help="give every clip transition this text, so the LMM "
                        "reads (observations, dynamics, state) but writes nothing: a random-weights LMM never "
                        "emits its end token and writes max_dynamics_tokens every clip, a trained one a few")
    args = parser.parse_args()
    if args.threads:  # before torch starts its thread pools
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    if args.repeats < 1 or args.layers < 1:
        parser.error("--repeats and --layers must be at least 1")

    import torch
    from diffusers import WanPipeline

    from owl import OwlPipeline
    from owl.errors import OwlError

    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    cuda = torch.device(device).type == "cuda"
    dtype = torch.float32 if args.dtype == "float32" or not cuda else getattr(torch, args.dtype)  # CPU: float32
    steal = Steal()
    began = time.perf_counter()
    scratch = None
    try:
        if args.standin:
            if args.standin_dir:
                folder = Path(args.standin_dir)
                folder.mkdir(parents=True, exist_ok=True)
            else:
                scratch = tempfile.TemporaryDirectory(prefix="owl-standin-")
                folder = Path(scratch.name)
            key_frame_size = args.key_frame_size or max(28, args.size // 28 * 28)
            args.model = str(build_standin(args.standin, args.layers, args.size, args.clip_seconds, folder,
                                           key_frame_size))
        if args.model:
            pipe = OwlPipeline.from_pretrained(args.model, device=device, torch_dtype=dtype)
        else:
            pipe = OwlPipeline.from_preset(args.preset, device=device, torch_dtype=dtype, tokenizer=args.tokenizer)
    except OwlError as exc:  # a missing model folder, an unknown preset: one line, no traceback
        parser.error(str(exc))
    built = time.perf_counter() - began
    r, cfg, wm = pipe.renderer, pipe.renderer.config, pipe.world_model
    steps = args.steps or cfg.num_inference_steps
    fps = cfg.fps
    latent_frames = cfg.clip_latent_frames + cfg.context_latent_frames  # what Owl denoises and decodes per clip
    frames = 1 + r.temporal_scale * (latent_frames - 1)
    expand = r.vae.config.z_dim == 48  # Wan2.2 TI2V (48-channel VAE): its pipeline embeds a timestep per token
    wan = WanPipeline(tokenizer=None, text_encoder=None, transformer=r.transformer, vae=r.vae,
                      scheduler=copy.deepcopy(r.scheduler), expand_timesteps=expand)
    wan.set_progress_bar_config(disable=True)
    embeds = r.projector.null(1).to(r.transformer.dtype)  # the condition's shape; values do not change the cost

    def sync():
        if cuda:
            torch.cuda.synchronize()

    watch = Stopwatch(sync)
    watch.module("transformer", r.transformer)
    watch.method("VAE decode", r.vae, "decode")
    watch.module("state projector", r.projector.proj)
    watch.module("world model: vision tower", wm.visual)
    watch.module("world model: LMM layers", wm.language_model)
    watch.module("world model: LM head", wm.vlm.get_output_embeddings())

    def wan_clip(parts: list | None = None) -> float:
        sync()
        before = watch.snapshot()
        start = time.perf_counter()
        wan(prompt_embeds=embeds, negative_prompt_embeds=embeds, height=cfg.height, width=cfg.width,
            num_frames=frames, num_inference_steps=steps, guidance_scale=cfg.guidance_scale, output_type="np")
        sync()
        took = time.perf_counter() - start
        if parts is not None:
            after = watch.snapshot()
            parts.append({k: after.get(k, 0.0) - before.get(k, 0.0) for k in PARTS} | {"clip": took})
        return took

    wan_clip()  # warm-up: kernels, allocator
    num_clips = r.grid.count(r.grid.total_frames(args.seconds, fps))
    reps, owl_parts, wan_parts, outs = [], [], [], []
    owl_peak = wan_peak = 0.0
    for _ in range(args.repeats):
        # half of WanPipeline's clips before Owl's rollout and half after, so a machine that slows down or speeds
        # up during the run does not favour either side
        wans = [wan_clip(wan_parts) for _ in range((num_clips - 1) // 2)]
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        stamps, snaps = [], []

        def on_clip(event):
            sync()
            stamps.append(time.perf_counter())
            snaps.append(watch.snapshot())

        with tempfile.TemporaryDirectory() as tmp:
            sync()
            snaps.append(watch.snapshot())
            start = time.perf_counter()
            dynamics = [args.given_dynamics] * (num_clips - 1) if args.given_dynamics else None
            out = pipe(args.prompt, seconds=args.seconds, fps=fps, num_inference_steps=steps, seed=0,
                       output=Path(tmp) / "owl.mp4", progress=False, callback=on_clip,
                       dynamics=dynamics)
        outs.append(out)
        if cuda:
            owl_peak = max(owl_peak, torch.cuda.max_memory_allocated() / 2**30)
            torch.cuda.reset_peak_memory_stats()
        owls = [b - a for a, b in zip([start] + stamps[:-1], stamps)]
        for i in range(1, len(owls)):  # clips 2..n
            owl_parts.append({k: snaps[i + 1].get(k, 0.0) - snaps[i].get(k, 0.0) for k in PARTS} | {"clip": owls[i]})
        wans += [wan_clip(wan_parts) for _ in range(max(1, len(owls) - 1 - len(wans)))]
        if cuda:
            wan_peak = max(wan_peak, torch.cuda.max_memory_allocated() / 2**30)
        owl_clip = statistics.mean(owls[1:] or owls)
        reps.append((owl_clip, statistics.mean(wans), len(owls), len(wans)))

    ratios = [o / w for o, w, _, _ in reps]
    owl_clip, wan_clip_time = statistics.median(o for o, *_ in reps), statistics.median(w for _, w, *_ in reps)
    clip_seconds = r.temporal_scale * cfg.clip_latent_frames / fps  # new video per clip after the first
    out = outs[-1]
    render = out.timings["denoise"] + out.timings["decode"]
    name = (f"stand-in {args.standin}, {args.layers} layer(s), real widths" if args.standin
            else args.model or args.preset)
    where = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    count = lambda module: sum(p.numel() for p in module.parameters()) / 1e6
    rows = [
        ("model", f"{name} ({args.dtype if cuda else 'float32'}), built in {built:.0f} s"),
        ("parameters", f"LMM {count(wm.vlm):.0f}M, Wan transformer {count(r.transformer):.0f}M, VAE "
                       f"{count(r.vae):.0f}M, projector {count(r.projector):.1f}M"),
        ("device", where),
        ("clip", f"{frames} frames at {cfg.height}x{cfg.width}, {latent_frames} latent frames, {steps} steps, "
                 f"guidance {cfg.guidance_scale:g}"),
        ("rollout", f"{out.seconds:g} s of video in {reps[0][2]} clips, {args.repeats} repetition(s), "
                    f"{reps[0][3]} WanPipeline clips each"),
        ("per-clip time, Owl (clips 2..n)", ", ".join(f"{o:.3f}" for o, *_ in reps) + " s"),
        ("per-clip time, WanPipeline", ", ".join(f"{w:.3f}" for _, w, *_ in reps) + " s"),
        ("Owl / WanPipeline per clip", ", ".join(f"{x:.3f}" for x in ratios)),
        (f"  median of {len(ratios)}", f"{statistics.median(ratios):.3f}"),
        ("video seconds per minute, Owl", f"{60 * out.seconds / out.timings['total']:.1f}"),
        ("video seconds per minute, WanPipeline", f"{60 * clip_seconds / wan_clip_time:.1f}"),
        ("Owl loop overhead: total / (denoise + decode)", f"{out.timings['total'] / render:.3f}"),
    ]
    if cuda:
        rows += [("peak GPU memory, Owl rollout", f"{owl_peak:.2f} GiB"),
                 ("peak GPU memory, WanPipeline clips", f"{wan_peak:.2f} GiB")]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")

    # where the time goes, seconds per clip (mean over Owl's clips 2..n and over WanPipeline's clips)
    mean = lambda parts, key: statistics.mean(p[key] for p in parts)
    owl_total, wan_total = mean(owl_parts, "clip"), mean(wan_parts, "clip")
    table = [(part, mean(owl_parts, part), mean(wan_parts, part)) for part in PARTS]
    table.append(("rest (loop, scheduler, frames out, H.264)", owl_total - sum(o for _, o, _ in table),
                  wan_total - sum(w for _, _, w in table)))
    table.append(("clip", owl_total, wan_total))
    print("\nper clip, seconds (mean)                    Owl   WanPipeline   Owl - Wan")
    for part, o, w in table:
        print(f"  {part:<42} {o:7.3f}  {w:10.3f}  {o - w:+9.3f}")
    world = sum(mean(owl_parts, p) for p in PARTS if p.startswith("world model"))
    print(f"Owl without the world model / WanPipeline: {(owl_total - world) / wan_total:.3f} (the world model is "
          f"{world / owl_total:.1%} of Owl's clip)")
    print(steal.line())
    if scratch is not None:
        scratch.cleanup()


if __name__ == "__main__":
    main()
