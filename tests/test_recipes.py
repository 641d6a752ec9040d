"""runs/shapes.sh refuses bad settings in one line, before it writes anything."""

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("env, message", [
    ({"STEPS": "1 2 3"}, "STEPS and MINUTES take eight numbers each"),
    ({"MINUTES": "1 1 1 1 1"}, "STEPS and MINUTES take eight numbers each"),
    ({"ROUNDS": "two"}, "ROUNDS must be a whole number, got two"),
    ({"VIDEOS": "0"}, "VIDEOS must be a positive whole number, got 0"),
    ({"LAST": "world_more2"}, "LAST must name a stage of this run"),  # one round by default: no world_more2
    ({"PROFILE": "tpu"}, "PROFILE must be cpu or gpu, got tpu"),
])
def test_shapes_recipe_refuses_bad_settings_before_writing(tmp_path, env, message):
    out = tmp_path / "out"
    run = subprocess.run(["bash", str(ROOT / "runs" / "shapes.sh")], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "OUT": str(out), **env}, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and message in run.stderr
    assert not out.exists()


def test_shapes_recipe_stage_names_follow_rounds(tmp_path):
    """With ROUNDS=2 the run has a second round of generate_more and world_more: the refusal of LAST lists them."""
    run = subprocess.run(["bash", str(ROOT / "runs" / "shapes.sh")], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path / "o"), "ROUNDS": "2", "LAST": "nope"})
    assert run.returncode == 2 and "generate_more2 world_more2" in run.stderr
