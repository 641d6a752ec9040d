"""The vision tower's patch embedding at real size: transformers' Conv3d against Owl's `PatchProjection`.

    python benchmarks/patch_embed.py

Qwen2.5-VL and Qwen3-VL embed each 2 x 14 x 14 (Qwen3-VL: 2 x 16 x 16) RGB patch with a Conv3d whose kernel is
its stride, so every output sees one patch once: a matrix product. Owl runs it as one (`owl.world_model.
PatchProjection`, the same parameters). This times both on the two key frames of a real-size observation
(480 x 832 frames at the processor's geometry, as the world model reads a clip), in float32 and bfloat16, on
the CPU and on CUDA when there is one; each figure is the median of several calls, and the ratio is of the
two in this one run. It also reports the largest difference between the two outputs.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from steal import Steal

MODELS = {  # name: (patch size, embedding width), from the published vision configs
    "Qwen2.5-VL": (14, 1280),
    "Qwen3-VL": (16, 1152),
}


def timed(fn, device: torch.device, calls: int) -> float:
    """Median milliseconds of `calls` calls of fn() after two warm-up calls."""
    times = []
    for i in range(calls + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main() -> None:
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    from owl.world_model import PatchProjection

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steal = Steal()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"{'model':<11} {'device':<6} {'dtype':<9} {'patches':>7} {'Conv3d ms':>10} {'matmul ms':>10} "
          f"{'ratio':>6} {'max diff':>9}")
    for name, (patch, width) in MODELS.items():
        height, wide = smart_resize(480, 832, factor=patch * 2, min_pixels=(patch * 2) ** 2, max_pixels=480 * 832)
        n = 2 * (height // patch) * (wide // patch)  # two key frames
        for device in devices:
            for dtype in (torch.float32, torch.bfloat16):
                torch.manual_seed(0)
                conv = torch.nn.Conv3d(3, width, (2, patch, patch), stride=(2, patch, patch),
                                       bias=name == "Qwen3-VL").to(device, dtype)
                matmul = copy.deepcopy(conv)
                assert PatchProjection.adopt(matmul)
                x = torch.randn(n, 3, 2, patch, patch, device=device, dtype=dtype)
                with torch.inference_mode():
                    diff = (conv(x).float() - matmul(x).float()).abs().max().item()
                    slow = timed(lambda: conv(x), device, args.calls)
                    fast = timed(lambda: matmul(x), device, args.calls)
                print(f"{name:<11} {device.type:<6} {str(dtype)[6:]:<9} {n:>7} {slow:>10.2f} {fast:>10.2f} "
                      f"{slow / fast:>6.1f} {diff:>9.2e}")
    print(steal.line())


if __name__ == "__main__":
    main()
