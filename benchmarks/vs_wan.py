"""Owl's clips against diffusers' own WanPipeline rendering the same clips, in one run.

    python benchmarks/vs_wan.py --preset tiny                    # anywhere: checks the script (CPU, toy size)
    python benchmarks/vs_wan.py                                  # on a GPU: real size (issue 6)
        = --preset qwen2.5-vl-3b+wan2.1-1.3b --dtype bfloat16 --seconds 24 (random weights, 480x832, 81-frame clips)

Owl films a rollout of --seconds (text-to-video, the LMM predicting the dynamics), streamed to a temporary mp4
as the CLI does. WanPipeline, built from the very same transformer, VAE and scheduler (no text encoder: it is
given prompt embeddings of the condition's shape), then renders as many clips of the same latent length (the
context latent plus the clip's new ones), size, number of steps and guidance scale. Printed, each measured here:
- per-clip time: Owl's clips 2..n (clip 1 also starts the world) against the mean of n - 1 WanPipeline calls
  after a warm-up call (half before Owl's rollout, half after), and the ratio;
- seconds of video per minute of wall time, for each;
- peak accelerator memory (max allocated) for Owl's rollout and for one WanPipeline clip (CUDA only);
- Owl's loop overhead: rollout time over the time inside its renderer (denoising and decoding).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

from steal import Steal

REAL = "qwen2.5-vl-3b+wan2.1-1.3b"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=REAL, help=f"a model size from owl.config.PRESETS (default {REAL})")
    parser.add_argument("--model", help="a saved Owl pipeline folder instead of --preset")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N; auto: the GPU if any, else cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=("float32", "bfloat16", "float16"))
    parser.add_argument("--seconds", type=float, default=24.0)
    parser.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--tokenizer", metavar="DIR", help="with --preset: the real LMM's folder (its tokenizer "
                        "and special-token ids); default: Owl's built-in tokenizer (the timings do not change)")
    parser.add_argument("--prompt", default="a red circle enters from the left.")
    args = parser.parse_args()

    import torch
    from diffusers import WanPipeline

    from owl import OwlPipeline
    from owl.errors import OwlError
    from owl.rollout import plan_clips

    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    cuda = torch.device(device).type == "cuda"
    dtype = None if args.dtype == "float32" or not cuda else getattr(torch, args.dtype)  # CPU: float32
    steal = Steal()
    began = time.perf_counter()
    try:
        if args.model:
            pipe = OwlPipeline.from_pretrained(args.model, device=device, torch_dtype=dtype)
        else:
            pipe = OwlPipeline.from_preset(args.preset, device=device, torch_dtype=dtype, tokenizer=args.tokenizer)
    except OwlError as exc:  # a missing model folder, an unknown preset: one line, no traceback
        parser.error(str(exc))
    built = time.perf_counter() - began
    r, cfg = pipe.renderer, pipe.renderer.config
    steps = args.steps or cfg.num_inference_steps
    fps = cfg.fps
    latent_frames = cfg.clip_latent_frames + cfg.context_latent_frames  # what Owl denoises and decodes per clip
    frames = 1 + r.temporal_scale * (latent_frames - 1)
    wan = WanPipeline(tokenizer=None, text_encoder=None, transformer=r.transformer, vae=r.vae,
                      scheduler=copy.deepcopy(r.scheduler))
    wan.set_progress_bar_config(disable=True)
    embeds = r.projector.null(1).to(r.transformer.dtype)  # the condition's shape; values do not change the cost

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def wan_clip() -> float:
        sync()
        start = time.perf_counter()
        wan(prompt_embeds=embeds, negative_prompt_embeds=embeds, height=cfg.height, width=cfg.width,
            num_frames=frames, num_inference_steps=steps, guidance_scale=cfg.guidance_scale, output_type="np")
        sync()
        return time.perf_counter() - start

    wan_clip()  # warm-up: kernels, allocator
    num_clips = plan_clips(r, args.seconds, fps)[0]
    # half of WanPipeline's clips before Owl's rollout and half after, so a machine that slows down or speeds up
    # during the run does not favour either side
    wan_clips = [wan_clip() for _ in range((num_clips - 1) // 2)]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    stamps = []
    with tempfile.TemporaryDirectory() as tmp:
        sync()
        start = time.perf_counter()
        out = pipe(args.prompt, seconds=args.seconds, fps=fps, num_inference_steps=steps, seed=0,
                   output=Path(tmp) / "owl.mp4", progress=False,
                   callback=lambda event: (sync(), stamps.append(time.perf_counter())))
    owl_peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    owl_clips = [b - a for a, b in zip([start] + stamps[:-1], stamps)]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    wan_clips += [wan_clip() for _ in range(max(1, len(owl_clips) - 1 - len(wan_clips)))]
    wan_peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None

    owl_clip, wan_clip_time = statistics.mean(owl_clips[1:] or owl_clips), statistics.mean(wan_clips)
    clip_seconds = r.temporal_scale * cfg.clip_latent_frames / fps  # new video per clip after the first
    render = out.timings["denoise"] + out.timings["decode"]
    name = args.model or args.preset
    where = torch.cuda.get_device_name(0) if cuda else f"CPU, {torch.get_num_threads()} threads"
    rows = [
        ("model", f"{name} ({args.dtype if cuda else 'float32'}), built in {built:.0f} s"),
        ("device", where),
        ("clip", f"{frames} frames at {cfg.height}x{cfg.width}, {latent_frames} latent frames, {steps} steps, "
                 f"guidance {cfg.guidance_scale:g}"),
        ("rollout", f"{out.seconds:g} s of video in {len(owl_clips)} clips"),
        ("per-clip time, Owl (clips 2..n)", f"{owl_clip:.3f} s"),
        ("per-clip time, WanPipeline (n - 1 calls)", f"{wan_clip_time:.3f} s"),
        ("Owl / WanPipeline per clip", f"{owl_clip / wan_clip_time:.3f}"),
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
    print(steal.line())


if __name__ == "__main__":
    main()
