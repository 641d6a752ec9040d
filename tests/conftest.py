"""Shared fixtures: one tiny seeded pipeline per test session, and its saved folder."""

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_pipe():
    from owl import OwlPipeline

    return OwlPipeline.from_preset("tiny", seed=0)


@pytest.fixture(scope="session")
def tiny_dir(tiny_pipe, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-model")
    tiny_pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def standin_folders(tmp_path_factory):
    """Stand-ins of the published Qwen2.5-VL, Wan2.1 and Wan2.2 folders (tests/standins.py), made once."""
    from standins import qwen2_5_vl_folder, wan2_1_folder, wan2_2_ti2v_folder

    root = tmp_path_factory.mktemp("checkpoints")
    return {"qwen2.5": qwen2_5_vl_folder(root / "Qwen2.5-VL-3B-Instruct"),
            "wan2.1": wan2_1_folder(root / "Wan2.1-T2V-1.3B-Diffusers"),
            "wan2.2": wan2_2_ti2v_folder(root / "Wan2.2-TI2V-5B-Diffusers")}
