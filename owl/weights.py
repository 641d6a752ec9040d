"""Owl's own parts on disk: a folder with config.json and model.safetensors (the state queries; the projector).

The LMM, the Wan transformer and VAE are saved beside them by their own libraries (see `owl.pipeline`). Weights
are safetensors only, read strictly: a missing, unexpected or mis-shaped tensor is one `OwlError` line.
"""

from __future__ import annotations

from pathlib import Path

import torch

from owl.config import save_json
from owl.errors import OwlError


def save_part(path: str | Path, config, tensors: dict[str, torch.Tensor]) -> None:
    """`path/config.json` (the dataclass `config`) and `path/model.safetensors` (`tensors`)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_json(config, path / "config.json")
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, path / "model.safetensors")


def load_part_weights(path: str | Path, params: dict[str, torch.Tensor]) -> None:
    """Copy `path/model.safetensors` into `params` (name -> parameter), strictly."""
    path = Path(path)
    _load_strict(params, _load_safetensors(path / "model.safetensors"), path)


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise OwlError(f"missing weights file: {str(path)!r}")
    try:
        return load_file(path)
    except (SafetensorError, OSError) as exc:
        raise OwlError(f"cannot read weights {str(path)!r}: {exc}") from exc


def _load_strict(params: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], path: Path) -> None:
    """Copy `weights` into `params`, refusing missing, unexpected or mis-shaped tensors with one line."""
    missing = sorted(set(params) - set(weights))
    unexpected = sorted(set(weights) - set(params))
    if missing or unexpected:
        raise OwlError(f"weights in {str(path)!r} do not match the config: missing {missing}, unexpected {unexpected}")
    for name, param in params.items():
        if tuple(weights[name].shape) != tuple(param.shape):
            raise OwlError(
                f"weights in {str(path)!r} do not match the config: {name} has shape {tuple(weights[name].shape)}, "
                f"config needs {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(weights[name])
