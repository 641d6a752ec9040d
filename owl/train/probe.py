"""Does the denoiser use its condition? The generate stage's flow-matching loss on training clips, with each clip's
own caption as the state, with another clip's caption (shuffled), and with the null state, under the same noise
and timesteps. A denoiser that follows its condition has a clearly lower loss with the true caption; one that
ignores it scores the three alike.

    python -m owl.train.probe --model checkpoints/owl-shapes --data outputs/shapes/data/captions.json

Clips are drawn as the generate stage draws them (`owl.train.generate.Clips`), each with and without its clean
context latent; everything is seeded, so a run is repeatable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from owl.data.collate import collate
from owl.errors import OwlError
from owl.train.align import read_states
from owl.train.common import load_pipeline, resolve_model
from owl.train.data import prepare_videos
from owl.train.generate import Clips

CONDITIONS = ("true", "shuffled", "null")


@torch.no_grad()
def condition_losses(pipe, data: Path, videos: int = 16, clips: int = 64, draws: int = 4,
                     seed: int = 0) -> dict[tuple[int, str], float]:
    """Mean flow-matching loss per (context latents, condition) over `clips` clips and `draws` noise draws."""
    prepared = prepare_videos(data, pipe.renderer, latents=True, max_videos=videos)
    dataset = Clips(prepared, pipe.renderer.config.clip_latent_frames)
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
    losses = {}
    for num_context in (0, 1):
        context = torch.full((len(captions),), num_context)
        for name in CONDITIONS:  # the same noise and timesteps for every condition
            draws_loss = [pipe.renderer.flow_matching_loss(latents, conds[name], context,
                                                           torch.Generator().manual_seed(seed + 1 + d)).item()
                          for d in range(draws)]
            losses[num_context, name] = sum(draws_loss) / draws
    return losses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a saved Owl pipeline or a stage's output_dir")
    parser.add_argument("--data", required=True, help="the captions file the model was trained on")
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--draws", type=int, default=4, help="noise draws per clip")
    args = parser.parse_args(argv)
    try:
        if not Path(args.data).exists():
            raise OwlError(f"data not found: {args.data!r} (a captions file in ActivityNet or Vript format)")
        if min(args.videos, args.clips, args.draws) < 1:
            raise OwlError("--videos, --clips and --draws must be at least 1")
        losses = condition_losses(load_pipeline(resolve_model(args.model), 0), Path(args.data), args.videos,
                                  args.clips, args.draws)
    except OwlError as exc:
        print(f"owl: error: {exc}", file=sys.stderr)
        return 2
    print("context  " + "  ".join(f"{name:>8}" for name in CONDITIONS) + "  true / null")
    for num_context in (0, 1):
        row = [losses[num_context, name] for name in CONDITIONS]
        print(f"{num_context:>7}  " + "  ".join(f"{v:8.4f}" for v in row) + f"  {row[0] / row[2]:11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
