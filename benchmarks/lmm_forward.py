"""What one LMM forward of the world model costs, by the tokens it feeds and the history it attends over.

    python benchmarks/lmm_forward.py                 # the shipped model (checkpoints/owl-shapes)

A loop step's forwards feed 1-20 tokens (a chosen token and its draft, the state queries) or an observation with
its draft (132 + a few on the shipped model), each over the KV cache of everything before it. This times
`WorldModel.run` for such inputs over histories of several lengths (random embeddings at fresh positions, the
cache cut back after each call), and the attention alone (SDPA over the same shapes, all layers), as medians of
repeated calls in this one process. It shows which part of the world model's time grows with the video.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from steal import Steal


def median_ms(fn, calls: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(Path(__file__).resolve().parent.parent / "checkpoints" / "owl-shapes"))
    parser.add_argument("--histories", type=int, nargs="+", default=[0, 500, 1000, 2000, 3800])
    parser.add_argument("--fed", type=int, nargs="+", default=[1, 13, 140])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch
    from transformers import DynamicCache

    from owl import OwlPipeline

    torch.set_num_threads(args.threads)
    steal = Steal()
    wm = OwlPipeline.from_pretrained(args.model).world_model
    text = wm.vlm.config.get_text_config()
    heads, kv_heads = text.num_attention_heads, text.num_key_value_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    print(f"model: {args.model}; {text.num_hidden_layers} layers, width {text.hidden_size}, {heads} heads "
          f"({kv_heads} for keys and values) of {head_dim}; threads: {args.threads}")
    print(f"{'history':>7} {'fed':>4} {'forward ms':>10} {'attention ms':>12} {'attention share':>15}")
    torch.manual_seed(0)
    with torch.inference_mode():
        for history in args.histories:
            cache = DynamicCache(config=text)
            if history:
                wm.run(torch.randn(1, history, text.hidden_size), torch.arange(history).expand(3, 1, history), cache)
            for fed in args.fed:
                embeds = torch.randn(1, fed, text.hidden_size)
                positions = torch.arange(history, history + fed).expand(3, 1, fed)

                def forward():
                    wm.run(embeds, positions, cache)
                    cache.crop(-fed)

                q = torch.randn(1, heads, fed, head_dim)
                k, v = (torch.randn(1, heads, history + fed, head_dim) for _ in range(2))
                mask = torch.ones(fed, history + fed, dtype=torch.bool).tril(history)
                attend = lambda: [torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
                                  for _ in range(text.num_hidden_layers)]
                total, attention = median_ms(forward, args.calls), median_ms(attend, args.calls)
                print(f"{history:>7} {fed:>4} {total:>10.2f} {attention:>12.2f} {attention / total:>15.2f}")
    print(steal.line())


if __name__ == "__main__":
    main()
