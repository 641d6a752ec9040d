"""Does the denoiser use its condition? Two measurements on a model's training data.

    python -m owl.train.probe --model checkpoints/owl-shapes --data outputs/shapes/data/captions.json [--shapes]

1. The generate stage's flow-matching loss on training clips with each clip's own caption as the state, with
   another clip's caption (shuffled) and with the null state, under the same noise and timesteps, each clip with
   and without its clean context latent. A denoiser that follows its condition has a clearly lower loss with the
   true caption; one that ignores it scores the three alike. `--shapes` (Shapes World data) also splits the loss
   into the latents that hold a shape and the rest, found by palette segmentation of the clip's frames.
2. How far apart the conditions of different captions are: the mean cosine similarity of the projected states of
   caption pairs one word apart ("... moves left." / "... moves right.") and of random caption pairs. A state that
   carries the words that tell such captions apart has a similarity well below 1 for the first.

Clips are drawn as the generate stage draws them (`owl.train.generate.Clips`); everything is seeded, so a run is
repeatable.
"""

from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
import torch
import torch.nn.functional as F

from owl.data.collate import collate
from owl.errors import OwlError
from owl.train.align import read_states
from owl.train.common import check_data, load_pipeline, resolve_model
from owl.train.data import prepare_videos
from owl.train.generate import Clips

CONDITIONS = ("true", "shuffled", "null")


def shape_mask(renderer, frames: np.ndarray, n: int, t: int) -> torch.Tensor:
    """(1, n + 1, h, w): 1 where a latent of clip t's window covers a pixel that is not the background."""
    from owl.eval.segment import label_pixels

    ts, ss = renderer.temporal_scale, renderer.spatial_scale
    first = max(ts * (n * t - 1) + 1, 0)  # the window's first latent, n * t, covers frames from here
    fg = torch.from_numpy(label_pixels(frames[first : ts * n * (t + 1) + 1]) != 0).float()  # shapes, off-palette
    latents = []
    for j in range(n * t, n * (t + 1) + 1):  # latent 0 is frame 0; latent j >= 1 covers frames ts*(j-1)+1 .. ts*j
        covered = fg[:1] if j == 0 else fg[ts * (j - 1) + 1 - first : ts * j + 1 - first]
        latents.append(F.max_pool2d(covered.amax(0)[None, None], ss)[0, 0])
    return torch.stack(latents)[None]


@torch.no_grad()
def condition_losses(pipe, prepared: list, clips: int = 64, draws: int = 4, shapes: bool = False,
                     seed: int = 0) -> tuple[dict[tuple[int, str, str], float], float | None]:
    """Mean flow-matching loss per (context latents, condition, region) over `clips` clips of `prepared` videos
    (`prepare_videos` with latents) and `draws` noise draws; region is "all", and with `shapes` also "shapes" and
    "background". Also the fraction of the latents that hold a shape (None without `shapes`)."""
    n = pipe.renderer.config.clip_latent_frames
    dataset = Clips(prepared, n)
    generator = torch.Generator().manual_seed(seed)
    picked = torch.randperm(len(dataset), generator=generator)[:clips].tolist()
    batch = collate([dataset[i] for i in picked])
    captions = batch["caption"]
    shuffled = [captions[i] for i in torch.randperm(len(captions), generator=generator).tolist()]
    projector = pipe.renderer.projector
    conds = {"true": projector(read_states(pipe.world_model, captions)),
             "shuffled": projector(read_states(pipe.world_model, shuffled)),
             "null": projector.null(len(captions))}
    latents = batch["latents"].to(conds["null"].device)
    regions, fraction = {"all": None}, None
    if shapes:
        mask = torch.stack([shape_mask(pipe.renderer, prepared[dataset.items[i][0]].frames, n, dataset.items[i][1])
                            for i in picked])
        regions.update(shapes=mask, background=1 - mask)
        fraction = mask.mean().item()
    losses = dict.fromkeys(itertools.product((0, 1), CONDITIONS, regions), 0.0)
    for num_context, name, d in itertools.product((0, 1), CONDITIONS, range(draws)):
        context = torch.full((len(captions),), num_context)
        error, scored = pipe.renderer.flow_matching_error(latents, conds[name], context,  # the same noise for all
                                                          torch.Generator().manual_seed(seed + 1 + d))
        for region, weight in regions.items():
            weighted = scored if weight is None else scored * weight.to(scored.device)
            losses[num_context, name, region] += ((error * weighted).sum() / weighted.sum().clamp(min=1)).item() / draws
    return losses, fraction


def one_word_apart(captions: list[str]) -> list[tuple[str, str]]:
    """Pairs of distinct captions with the same number of words that differ in exactly one of them."""
    words = {c: c.split() for c in sorted(set(captions))}
    return [(a, b) for a, b in itertools.combinations(words, 2)
            if len(words[a]) == len(words[b]) and sum(x != y for x, y in zip(words[a], words[b])) == 1]


@torch.no_grad()
def caption_similarity(pipe, captions: list[str], max_pairs: int = 256, seed: int = 0) -> dict[str, float]:
    """Mean cosine similarity of projected states: caption pairs one word apart, and random caption pairs."""
    generator = torch.Generator().manual_seed(seed)
    distinct = sorted(set(captions))
    close = one_word_apart(distinct)
    pairs = {"one word apart": close,
             "random": [tuple(distinct[i] for i in torch.randperm(len(distinct), generator=generator)[:2].tolist())
                        for _ in range(max_pairs)] if len(distinct) > 1 else []}
    result = {}
    for name, chosen in pairs.items():
        chosen = [chosen[i] for i in torch.randperm(len(chosen), generator=generator)[:max_pairs].tolist()]
        if not chosen:
            continue
        left, right = zip(*chosen)
        a = pipe.renderer.projector(read_states(pipe.world_model, list(left))).flatten(1)
        b = pipe.renderer.projector(read_states(pipe.world_model, list(right))).flatten(1)
        result[name] = F.cosine_similarity(a, b, dim=1).mean().item()
        result[f"{name} pairs"] = len(chosen)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved Owl pipeline or a stage's output_dir")
    parser.add_argument("--data", required=True, help="the captions file the model was trained on")
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--draws", type=int, default=4, help="noise draws per clip")
    parser.add_argument("--shapes", action="store_true", help="Shapes World data: split the loss by region")
    args = parser.parse_args(argv)
    try:
        data = check_data(args.data)
        if min(args.videos, args.clips, args.draws) < 1:
            raise OwlError("--videos, --clips and --draws must be at least 1")
        pipe = load_pipeline(resolve_model(args.model), 0)
        prepared = prepare_videos(data, pipe.renderer, latents=True, max_videos=args.videos)
        losses, fraction = condition_losses(pipe, prepared, args.clips, args.draws, args.shapes)
        similarity = caption_similarity(pipe, [c for video in prepared for c in video.captions])
    except OwlError as exc:
        print(f"owl: error: {exc}", file=sys.stderr)
        return 2
    print("flow-matching loss by condition (same noise)" +
          (f"; {fraction:.1%} of the latents hold a shape" if fraction is not None else ""))
    print("context  region      " + "  ".join(f"{name:>8}" for name in CONDITIONS) + "  true / null")
    for num_context, region in itertools.product((0, 1), ("all", "shapes", "background")):
        if (num_context, "true", region) in losses:
            row = [losses[num_context, name, region] for name in CONDITIONS]
            print(f"{num_context:>7}  {region:10s}  " + "  ".join(f"{v:8.4f}" for v in row) + f"  {row[0] / row[2]:11.3f}")
    print("cosine similarity of the projected states of two captions")
    for name in ("one word apart", "random"):
        if name in similarity:
            print(f"  {name:16s} {similarity[name]:.3f} (mean of {similarity[f'{name} pairs']} pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
