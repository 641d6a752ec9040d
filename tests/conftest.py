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
