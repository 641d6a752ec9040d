"""The step-by-step API (owl/world.py): a world grown a clip at a time by the one loop."""

import numpy as np
import pytest

from owl.errors import OwlError
from owl.video_io import read_video
from owl.world import World


def test_accepting_every_proposal_is_owl_generate(tiny_pipe, tmp_path):
    """Accepting each proposal films frame for frame what a rollout with predicted dynamics films, and the text
    proposed is the text the clip records."""
    world = World.open(tiny_pipe, tmp_path / "w.mp4", prompt="a red ball rolls left")
    proposals = []
    for _ in range(3):
        proposals.append(world.propose())
        world.step()
    frames = world.frames()
    whole = tiny_pipe("a red ball rolls left", seconds=len(frames) / tiny_pipe.renderer.config.fps, progress=False)
    assert np.array_equal(frames, whole.frames)
    assert [c.dynamics for c in world.clips[1:]] == proposals == [c.dynamics for c in whole.storyboard.clips[1:]]
    assert all(c.predicted for c in world.clips[1:]) and world.output.is_file() and world.folder.complete


def test_editing_a_proposal_is_giving_that_dynamics(tiny_pipe, tmp_path):
    world = World.open(tiny_pipe, tmp_path / "w.mp4", prompt="a red ball rolls left", seed=3)
    world.step()
    record = world.step("the ball stops.")
    assert record.dynamics == "the ball stops." and not record.predicted
    frames = world.frames()
    given = tiny_pipe("a red ball rolls left", seconds=len(frames) / tiny_pipe.renderer.config.fps, seed=3,
                      dynamics=[None, "the ball stops."], progress=False)
    assert np.array_equal(frames, given.frames)


def test_a_fork_is_a_branch_and_leaves_the_world(tiny_pipe, tmp_path):
    world = World.open(tiny_pipe, tmp_path / "w.mp4", prompt="a red ball rolls left")
    world.step()
    world.step()
    before = world.frames()
    fork = world.fork(1, tmp_path / "f.mp4", "a blue square enters.")
    assert [c.dynamics for c in fork.clips][1] == "a blue square enters." and len(fork.clips) == 2
    first = tiny_pipe.renderer.grid.first
    assert np.array_equal(fork.frames()[:first], before[:first])
    assert np.array_equal(world.frames(), before)  # the world it came from is untouched
    fork.step()
    assert len(fork.clips) == 3 and len(World.load(tiny_pipe, tmp_path / "f.session").clips) == 3
    fps = tiny_pipe.renderer.config.fps  # the fork is `owl branch` at that clip, frame for frame
    branched = tiny_pipe.branch(tmp_path / "w.session", 1, tmp_path / "b.mp4", dynamics=["a blue square enters."],
                                seconds=len(fork.frames()) / fps, progress=False)
    frames, _ = read_video(branched.path)
    assert len(frames) == len(fork.frames()) and [c.dynamics for c in branched.storyboard.clips] == \
        [c.dynamics for c in fork.clips]
    assert np.array_equal(World.load(tiny_pipe, tmp_path / "b.session").frames(), fork.frames())


def test_a_world_can_go_on_from_a_video(tiny_pipe, tmp_path):
    """World.extend: an mp4's clips are observed as `owl extend` observes them, then the world steps on."""
    fps, grid = tiny_pipe.renderer.config.fps, tiny_pipe.renderer.grid
    source = tiny_pipe("a red ball rolls left", seconds=(grid.first + grid.rest) / fps, output=tmp_path / "s.mp4",
                       progress=False)
    world = World.extend(tiny_pipe, tmp_path / "w.mp4", source.path, prompt="a red ball rolls left")
    sources = [c.source for c in world.clips]
    assert sources[-1] == "film" and set(sources[:-1]) == {"video"} and world.output.is_file()
    extended = tiny_pipe.extend(source.path, seconds=grid.rest / fps, output=tmp_path / "e.mp4",
                                prompt="a red ball rolls left", progress=False)
    assert np.array_equal(world.frames(), World.load(tiny_pipe, tmp_path / "e.session").frames())
    assert extended.num_frames == len(world.frames())
    world.step()
    assert len(world.clips) == len(sources) + 1


def test_bad_steps_are_refused(tiny_pipe, tmp_path):
    with pytest.raises(OwlError, match="give no seconds"):
        World.open(tiny_pipe, tmp_path / "w.mp4", prompt="a ball", seconds=8)
    world = World.open(tiny_pipe, tmp_path / "w.mp4", prompt="a ball")
    with pytest.raises(OwlError, match="dynamics must be a non-empty text"):
        world.step("  ")
    with pytest.raises(OwlError, match="at must be a clip index from 1 to 1"):
        world.fork(2, tmp_path / "f.mp4")
    with pytest.raises(OwlError, match="is not an Owl session"):
        World.load(tiny_pipe, tmp_path)


def test_a_step_stopped_mid_clip_keeps_the_world(tiny_pipe, tmp_path):
    """Interrupted during its clip (`pipe._interrupt`), a step returns None, the world keeps its clips, and the
    next step films that clip as an uninterrupted step would."""
    world = World.open(tiny_pipe, tmp_path / "w.mp4", prompt="a red ball rolls left")

    def stop(pipe, i, t, tensors):
        pipe._interrupt = True
        return {}

    assert world.step("the ball stops.", callback_on_step_end=stop) is None
    assert len(world.clips) == 1
    record = world.step("the ball stops.")
    assert record.index == 1 and record.dynamics == "the ball stops."
    whole = tiny_pipe("a red ball rolls left", seconds=len(world.frames()) / tiny_pipe.renderer.config.fps,
                      dynamics=["the ball stops."], progress=False)
    assert np.array_equal(world.frames(), whole.frames)
