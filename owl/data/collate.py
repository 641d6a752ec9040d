"""Batching for Owl's datasets: tensors are stacked, strings and lists stay Python lists.

    DataLoader(dataset, batch_size=4, num_workers=2, collate_fn=collate)

A batch is a dict with the samples' keys: tensors of the same shape become one tensor with a leading batch axis
(`frames` (B, C, T, H, W) from ClipDataset, (B, T, C, F, H, W) from DenseCaptionDataset); numbers become a
tensor; strings and lists (captions, dynamics) become a list of B items. Plain dicts, lists and tensors are what
accelerate moves between devices and splits between processes, so a prepared DataLoader works unchanged.
Samples whose tensors differ in shape raise OwlError naming the key and the shapes.
"""

from __future__ import annotations

import numbers

import torch

from owl.errors import OwlError


def collate(samples: list[dict]) -> dict:
    """Stack a list of sample dicts into one batch dict (see the module docstring)."""
    if not samples:
        raise OwlError("cannot collate an empty batch")
    keys = samples[0].keys()
    for sample in samples[1:]:
        if sample.keys() != keys:
            raise OwlError(f"samples have different keys: {sorted(keys)} and {sorted(sample.keys())}")
    batch = {}
    for key in keys:
        values = [sample[key] for sample in samples]
        first = values[0]
        if isinstance(first, torch.Tensor):
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise OwlError(f"cannot batch {key!r}: samples have shapes {sorted(shapes)}; give the dataset a fixed "
                               f"size (and clips_per_sample) so that they match")
            batch[key] = torch.stack(values)
        elif isinstance(first, bool) or isinstance(first, numbers.Number) and not isinstance(first, str):
            batch[key] = torch.tensor(values)
        else:
            batch[key] = list(values)
    return batch
