"""WorldModel and its KV-cached session on the tiny preset."""

import numpy as np
import pytest
import torch


def clip(seed: int, frames: int = 16, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


def run_steps(session, steps: int, dynamics):
    """Drive a session through the loop without a renderer; returns the states s_0..s_steps."""
    session.start("a red ball rolls left", clip(99, frames=1)[0])
    states = [session.read_state()]
    texts = []
    for t in range(steps):
        session.observe(clip(t))
        texts.append(session.act(dynamics[t]))
        states.append(session.read_state())
    return states, texts


def test_state_shape_and_generation(tiny_pipe):
    wm = tiny_pipe.world_model
    session = wm.session()
    session.start("a red ball rolls left")
    state = session.read_state()
    assert state.shape == (wm.config.num_queries, wm.hidden_size)
    assert torch.isfinite(state).all()
    session.observe(clip(0))
    before = session.num_tokens
    text = session.act(None)
    assert isinstance(text, str)
    # generation is bounded: at most max_dynamics_tokens, plus the closing end token
    assert 1 <= session.num_tokens - before <= wm.config.max_dynamics_tokens + 1
    given = session.act("the ball stops.")
    assert given == "the ball stops."


def test_sampled_dynamics_are_seeded(tiny_pipe):
    wm = tiny_pipe.world_model
    texts = []
    for _ in range(2):
        s = wm.session()
        s.start("a red ball rolls left")
        s.read_state()
        s.observe(clip(0))
        texts.append(s.act(None, do_sample=True, temperature=1.5, generator=torch.Generator().manual_seed(3)))
    assert texts[0] == texts[1] and texts[0] != ""


def test_kv_cache_matches_recomputing_the_history(tiny_pipe):
    wm = tiny_pipe.world_model
    dynamics = ["the ball moves right.", None, "the ball stops."]
    cached, texts_c = run_steps(wm.session(use_cache=True), 3, dynamics)
    full, texts_f = run_steps(wm.session(use_cache=False), 3, dynamics)
    assert texts_c == texts_f
    for a, b in zip(cached, full):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_memory_last_changes_the_state(tiny_pipe):
    wm = tiny_pipe.world_model
    dynamics = ["the ball moves right.", "the ball stops."]
    full, _ = run_steps(wm.session(memory="full"), 2, dynamics)
    last, _ = run_steps(wm.session(memory="last"), 2, dynamics)
    torch.testing.assert_close(full[0], last[0])  # the same opening context
    assert (full[2] - last[2]).abs().max() > 1e-3
    # "last" sees only O_{t-1} D_{t-1} S_t: the same as a fresh history of just those
    fresh = wm.session()
    fresh.observe(clip(1))
    fresh.act("the ball stops.")
    torch.testing.assert_close(fresh.read_state(), last[2], atol=1e-5, rtol=1e-5)


def test_observation_is_k_key_frames(tiny_pipe):
    wm = tiny_pipe.world_model
    segments = wm.observation_segments(clip(0))
    assert len(segments) == wm.config.key_frames
    side = wm.config.key_frame_size // (wm.visual.patch_size * wm.visual.spatial_merge_size)
    for s in segments:
        assert s.embeds.shape == (side * side + 2, wm.hidden_size)  # start + image tokens + end
        assert s.positions.shape == (3, side * side + 2)


def test_bad_memory_is_refused(tiny_pipe):
    from owl import OwlError

    with pytest.raises(OwlError, match="memory must be"):
        tiny_pipe.world_model.session(memory="half")


def test_pixel_patches_match_the_image_processor(tiny_pipe):
    """The batched torch preprocessing lays out exactly what the model's own (PIL) image processor does."""
    wm = tiny_pipe.world_model
    size = wm.config.key_frame_size
    frames = clip(5, frames=3, size=size)
    ours, grid = wm.pixel_patches(frames)
    theirs = wm.image_processor(images=list(frames), return_tensors="pt",
                                size={"shortest_edge": size * size, "longest_edge": size * size})
    torch.testing.assert_close(grid, theirs["image_grid_thw"])
    torch.testing.assert_close(ours, theirs["pixel_values"].float(), atol=1e-5, rtol=1e-5)


def test_non_square_frames_keep_their_aspect_ratio(tiny_pipe):
    """A wide frame stays wide in the vision tower (the processor's own smart_resize geometry), not squashed."""
    wm = tiny_pipe.world_model
    step = wm.image_processor.patch_size * wm.image_processor.merge_size  # 8 in the tiny preset
    frames = np.random.default_rng(3).integers(0, 256, (2, 24, 40, 3), dtype=np.uint8)  # already on the grid
    ours, grid = wm.pixel_patches(frames)
    theirs = wm.image_processor(images=list(frames), return_tensors="pt",
                                size={"shortest_edge": step * step, "longest_edge": wm.config.key_frame_size ** 2})
    assert grid.tolist() == [[1, 6, 10]] * 2
    torch.testing.assert_close(grid, theirs["image_grid_thw"])
    torch.testing.assert_close(ours, theirs["pixel_values"].float(), atol=1e-5, rtol=1e-5)
    wide = np.random.default_rng(4).integers(0, 256, (1, 60, 104, 3), dtype=np.uint8)  # 480 x 832 in miniature
    _, grid = wm.pixel_patches(wide)
    _, gh, gw = grid[0].tolist()
    assert gh * gw * wm.image_processor.patch_size ** 2 <= wm.config.key_frame_size ** 2
    assert abs(gw / gh - 104 / 60) < 0.35 and gw > gh
    assert len(wm.frame_segments(wide)[0].embeds) == gh * gw // 4 + 2  # merged tokens between start and end


@pytest.mark.parametrize("bounds", [{"max_observations": 1}, {"max_observations": 2, "max_steps": 2}])
def test_bounded_cache_matches_recomputing_the_window(tiny_pipe, bounds):
    wm = tiny_pipe.world_model
    dynamics = ["the ball moves right.", None, "the ball stops.", "the ball moves up."]
    cached, texts_c = run_steps(wm.session(**bounds), 4, dynamics)
    full, texts_f = run_steps(wm.session(use_cache=False, **bounds), 4, dynamics)
    unbounded, _ = run_steps(wm.session(), 4, dynamics)
    assert texts_c == texts_f
    for a, b in zip(cached, full):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    assert (cached[-1] - unbounded[-1]).abs().max() > 1e-4  # the bound does change what the state sees


def history_sizes(session, steps: int = 12, check=lambda session: None) -> list[int]:
    """Tokens the history holds past the opening context after each of `steps` loop steps (given dynamics)."""
    session.start("a red ball rolls left")
    sizes = []
    for t in range(steps):
        session.read_state()
        session.observe(clip(t))
        session.act("the ball moves right.")
        sizes.append(session.num_tokens - session.blocks[0].length)
        check(session)
    return sizes


def test_bounded_history_stays_within_its_bound(tiny_pipe):
    def within(session):
        assert sum(b.kind == "observation" for b in session.blocks) <= 2
        assert len({b.step for b in session.blocks if b.kind != "context"}) <= 3
        # the cache holds the kept history but for what waits for S_{t+1}: this step's dynamics, and its
        # observation unless an eviction recomputed the cache after it
        now = {b.kind: b.length for b in session.blocks if b.step == session.step}
        waiting = session.num_tokens - session.run_tokens
        assert session.cache.get_seq_length() == session.run_tokens
        assert waiting in (now["dynamics"], now["dynamics"] + now["observation"])

    sizes = history_sizes(tiny_pipe.world_model.session(max_observations=2, max_steps=3), check=within)
    assert max(sizes[4:]) == min(sizes[4:])  # flat once the window is full


def test_world_stage_trains_on_the_states_the_loop_reads(tiny_pipe, monkeypatch):
    """The world stage's teacher-forced sequence (`WorldModel.loop_segments`, run as one batch) gives each s_t
    the same numbers as the loop's cached `WorldSession` fed the same prompt, image, observations and dynamics:
    what is trained is what generation reads."""
    from owl.clip_grid import ClipGrid
    from owl.data.collate import collate
    from owl.train import world
    from owl.train.data import PreparedVideo
    from owl.train.common import WorldConfig

    wm, renderer = tiny_pipe.world_model, tiny_pipe.renderer
    n, clips = renderer.config.clip_latent_frames, 3
    grid = ClipGrid(n, 1, renderer.temporal_scale)
    frames = np.random.default_rng(5).integers(0, 256, (grid.bounds(clips - 1)[1], 64, 64, 3), dtype=np.uint8)
    latents = torch.randn(renderer.vae.config.z_dim, 1 + n * clips, 8, 8)
    captions = ["a red ball rolls left.", "the ball stops.", "a blue square enters."]
    video = PreparedVideo("v", frames, latents, captions, [True, False, False], captions)
    sample = world.Sequences([video], grid, clips, wm.key_frames)[0]  # from the video's start: image-to-video

    trained = []
    monkeypatch.setattr(world, "condition", lambda projector, states, *args: trained.append(states) or
                        projector(states))
    loss = world.WorldLoss(tiny_pipe, WorldConfig(data="unused", clips_per_sample=clips))
    with torch.no_grad():
        loss(collate([sample]), torch.Generator().manual_seed(0))

    session = wm.session()
    session.start(captions[0], frames[0])
    read = [session.read_state()]
    for t in range(1, clips):
        session.observe(sample["key_frames"][t - 1].numpy())
        session.act(captions[t])
        read.append(session.read_state())
    assert trained[0].shape == (clips, wm.config.num_queries, wm.hidden_size)
    torch.testing.assert_close(trained[0], torch.stack(read), rtol=1e-4, atol=1e-4)


def test_default_memory_is_flat_within_a_quarter_of_the_context(tiny_pipe, monkeypatch):
    """By default the history keeps the steps that fit in a quarter of the LMM's context window, so a long
    rollout's history stops growing; 0 keeps everything."""
    wm = tiny_pipe.world_model
    monkeypatch.setattr(wm.vlm.config.get_text_config(), "max_position_embeddings", 1024)
    sizes = {bound: history_sizes(wm.session(max_observations=bound, max_steps=bound)) for bound in (None, 0)}
    assert max(sizes[None]) <= 1024 // 4 and sizes[None][-1] == sizes[None][-4]  # flat, within the budget
    assert sizes[0] == sorted(sizes[0]) and sizes[0][-1] > 1024 // 4  # keep all: it grows past it


def test_a_memory_is_one_class(tiny_pipe):
    """A memory is any object with restart(kind) and keep(blocks, step): the last-clip baseline as an object gives
    the states of memory="last", and a new rule (the opening and the last two steps) bounds the history."""
    from owl.memory import LastClip

    wm = tiny_pipe.world_model
    dynamics = ["the ball moves right.", "the ball stops.", "the ball moves up."]
    named, _ = run_steps(wm.session(memory="last"), 3, dynamics)
    as_object, _ = run_steps(wm.session(memory=LastClip()), 3, dynamics)
    for a, b in zip(named, as_object):
        torch.testing.assert_close(a, b)

    class LastTwoSteps:
        def restart(self, kind):
            return False

        def keep(self, blocks, step):
            return [b for b in blocks if b.kind == "context" or b.step >= step - 1]

    session = wm.session(memory=LastTwoSteps())
    run_steps(session, 6, dynamics * 2)
    assert {b.step for b in session.blocks if b.kind != "context"} == {5, 6}


def test_the_session_runs_the_lmm_only_for_a_readout(tiny_pipe, monkeypatch):
    """What a step feeds before its next readout goes through the LMM in one forward: with given dynamics a step is
    one forward (O_t, D_t and S_{t+1}); with predicted dynamics the first draft goes with O_t (and S_{t+1} with a
    draft that closes the text), and a closing token the LMM chose goes with S_{t+1}."""
    wm = tiny_pipe.world_model
    lengths = []
    run = wm.run
    monkeypatch.setattr(wm, "run", lambda embeds, *args, **kwargs: lengths.append(embeds.shape[1])
                        or run(embeds, *args, **kwargs))
    session = wm.session()
    session.start("a red ball rolls left")
    session.read_state()
    assert lengths == [len(wm.text_ids("a red ball rolls left")) + wm.config.num_queries]
    observation = sum(len(s.embeds) for s in wm.observation_segments(clip(0)))
    lengths.clear()
    session.observe(clip(0))
    session.act("the ball stops.")
    session.read_state()
    assert lengths == [observation + len(wm.dynamics_ids("the ball stops.")) + wm.config.num_queries]
    lengths.clear()
    session.observe(clip(1))
    drafted = session._draft([], wm.config.max_dynamics_tokens + 1)  # what the first forward checks: D_0 again
    assert drafted == wm.dynamics_ids("the ball stops.")
    session.act(None)
    session.read_state()
    # the draft closes the text, so S_{t+1} goes with it; this random LMM rejects it and closes later by itself
    assert lengths[0] == observation + len(drafted) + wm.config.num_queries
    assert lengths[-1] == 1 + wm.config.num_queries


@pytest.mark.parametrize("bias", [False, True])  # Qwen2.5-VL's patch embedding has none, Qwen3-VL's has one
def test_the_patch_embedding_runs_as_a_matrix_product(tiny_pipe, bias):
    from owl.world_model import PatchProjection

    proj = tiny_pipe.world_model.visual.patch_embed.proj
    assert type(proj) is PatchProjection and proj.weight.dim() == 5  # the checkpoint's shape and names stay
    torch.manual_seed(0)
    conv = torch.nn.Conv3d(3, 8, kernel_size=(2, 4, 4), stride=(2, 4, 4), bias=bias)
    patches = torch.randn(10, 3, 2, 4, 4, requires_grad=True)
    expected = conv(patches)
    (grad_expected,) = torch.autograd.grad(expected.square().sum(), conv.weight)
    assert PatchProjection.adopt(conv) and type(conv) is PatchProjection
    got = conv(patches)
    (grad_got,) = torch.autograd.grad(got.square().sum(), conv.weight)
    assert got.shape == expected.shape == (10, 8, 1, 1, 1)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(grad_got, grad_expected)
    wider = torch.randn(1, 3, 4, 8, 8)  # more than one patch: the convolution itself
    torch.testing.assert_close(conv(wider), torch.nn.functional.conv3d(wider, conv.weight, conv.bias, stride=(2, 4, 4)))
    for other in (torch.nn.Conv3d(3, 8, kernel_size=3, stride=1), torch.nn.Conv3d(3, 8, kernel_size=2, stride=2,
                                                                                padding=1)):
        assert not PatchProjection.adopt(other) and type(other) is torch.nn.Conv3d
