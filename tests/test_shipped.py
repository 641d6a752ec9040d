"""The shipped model (checkpoints/owl-shapes): it loads, is the CLI's default, films a 2 s clip, and decodes its
dynamics greedily with drafts."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from owl.cli import DEFAULT_MODEL, main

SHIPPED = Path(__file__).resolve().parent.parent / "checkpoints" / "owl-shapes"


def test_shipped_checkpoint_is_small_and_safetensors_only():
    files = [p for p in SHIPPED.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 30 * 2 ** 20
    weights = [p for p in files if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl")]
    assert weights and all(p.suffix == ".safetensors" for p in weights)


def test_shipped_model_films_a_2_s_clip():
    from owl import OwlPipeline
    from owl.data.shapes import render_video
    from owl.eval.segment import label_pixels

    pipe = OwlPipeline.from_pretrained(SHIPPED)
    cfg = pipe.renderer.config
    first = render_video(seed=7, index=0, seconds=4).frames[0]
    out = pipe("a red circle enters from the left.", image=first, seconds=2, progress=False)
    assert out.frames.shape == (2 * cfg.fps, cfg.height, cfg.width, 3)
    assert np.array_equal(out.frames[0], first)  # image-to-video opens on the image
    # trained weights film Shapes World colours: 99% of pixels near the palette here; random weights of the same
    # size film noise (6%)
    assert (label_pixels(out.frames[1:]) >= 0).mean() > 0.9


def test_cli_defaults_to_the_shipped_model(tmp_path, capsys):
    assert DEFAULT_MODEL.resolve() == SHIPPED.resolve()
    out = tmp_path / "default.mp4"
    assert main(["generate", "--prompt", "a red circle enters from the left.", "--seconds", "2", "--out", str(out),
                 "--quiet", "--no-session"]) == 0
    assert out.is_file()
    storyboard = json.loads(out.with_suffix(".storyboard.json").read_text())
    assert storyboard["seconds"] == pytest.approx(2)


def test_the_readmes_python_snippets_run_as_written(tmp_path):
    """Every ```python block of the README, run in order as a user would paste it, next to the shipped model
    (```py blocks need checkpoints a user brings: tests/test_components.py runs their calls on stand-ins)."""
    import re
    import subprocess
    import sys

    readme = (SHIPPED.parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 2
    (tmp_path / "checkpoints").symlink_to(SHIPPED.parent)
    for number, code in enumerate(blocks, 1):
        run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, f"README python block {number} failed:\n{run.stderr[-2000:]}"
    assert (tmp_path / "ball.mp4").is_file() and (tmp_path / "fork.mp4").is_file()
    assert (tmp_path / "longer.mp4").is_file() and (tmp_path / "my-model" / "model_index.json").is_file()


def test_drafted_greedy_dynamics_are_token_by_token_greedy(monkeypatch):
    """Greedy dynamics are decoded with drafts looked up in the texts seen so far (`WorldSession._greedy`): on
    Shapes World clips the shipped model writes the same texts and reads the same states as token-by-token
    greedy decoding, in fewer LMM forwards (some drafts are accepted, and some states are read out with the draft
    that closed their dynamics)."""
    from owl import OwlPipeline
    from owl.data.shapes import render_video
    from owl.world_model import WorldSession

    wm = OwlPipeline.from_pretrained(SHIPPED).world_model
    video = render_video(seed=11, index=3, seconds=24)
    n = len(video.frames) // 6
    forwards = []
    run = wm.run
    monkeypatch.setattr(wm, "run", lambda *args, **kwargs: forwards.append(1) or run(*args, **kwargs))

    def loop() -> tuple[list[str], list, int, int]:
        forwards.clear()
        session = wm.session()
        session.start(video.sentences[0])
        states, texts, read_ahead = [session.read_state()], [], 0
        for t in range(5):
            session.observe(video.frames[t * n : (t + 1) * n])
            texts.append(session.act())
            before = len(forwards)
            states.append(session.read_state())
            read_ahead += len(forwards) == before
        return texts, states, len(forwards), read_ahead

    drafted = loop()
    monkeypatch.setattr(WorldSession, "_draft", lambda self, ids, room: [])
    one_by_one = loop()
    assert drafted[0] == one_by_one[0] and all(text for text in drafted[0])
    for a, b in zip(drafted[1], one_by_one[1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert drafted[2] < one_by_one[2] and drafted[3] > 0 and one_by_one[3] == 0


def test_a_state_read_ahead_gives_way_to_an_eviction(monkeypatch):
    """A state read with the draft that closed its dynamics stands only if the memory keeps everything when the
    state is read: a memory that then evicts makes the session drop it and read the state over what it keeps, as
    a session without drafts does."""
    from owl import OwlPipeline
    from owl.data.shapes import render_video
    from owl.memory import FullHistory
    from owl.world_model import WorldSession

    class EvictsLate(FullHistory):
        """All the history while the dynamics are written, then only the last observation when a state is read."""
        reading = False

        def keep(self, blocks, step):
            return super().keep(blocks, step) if self.reading else blocks

    wm = OwlPipeline.from_pretrained(SHIPPED).world_model
    video = render_video(seed=11, index=3, seconds=24)
    n = len(video.frames) // 6

    def loop() -> tuple[list, int]:
        memory = EvictsLate(max_observations=1, max_steps=0)
        session = wm.session(memory=memory)
        session.start(video.sentences[0])
        states, dropped = [session.read_state()], 0
        for t in range(5):
            memory.reading = False
            session.observe(video.frames[t * n : (t + 1) * n])
            session.act()
            dropped += session.next_state is not None and t > 0  # from step 1 on there is an observation to evict
            memory.reading = True
            states.append(session.read_state())
        return states, dropped

    drafted = loop()
    monkeypatch.setattr(WorldSession, "_draft", lambda self, ids, room: [])
    one_by_one = loop()
    assert drafted[1] > 0 and one_by_one[1] == 0
    for a, b in zip(drafted[0], one_by_one[0]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
