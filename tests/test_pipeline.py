"""The closed loop through OwlPipeline: clip counts, streaming mp4, storyboard, save/load round trip."""

import json

import decord
import numpy as np
import pytest
import torch

from owl import OwlPipeline


@pytest.mark.parametrize("seconds", [2, 8, 24])
def test_loop_yields_expected_clips_and_frames(tiny_pipe, seconds):
    fps = tiny_pipe.renderer.config.fps
    events = []
    out = tiny_pipe("a red ball rolls left", seconds=seconds, progress=False, callback=events.append)
    per_clip = tiny_pipe.renderer.frames_per_clip(False) / fps  # 2 s clips in the tiny preset
    expected_clips = max(1, int(np.ceil((seconds * fps - 1) / (per_clip * fps))))
    assert len(out.storyboard.clips) == len(events) == expected_clips == tiny_pipe.renderer.grid.count(tiny_pipe.renderer.grid.total_frames(seconds, fps))
    assert out.frames.shape == (seconds * fps, 64, 64, 3) and out.num_frames == seconds * fps
    assert sum(len(e.frames) for e in events) == seconds * fps
    clips = out.storyboard.clips
    assert clips[0].start == 0 and clips[-1].end == pytest.approx(seconds)
    assert all(a.end == b.start for a, b in zip(clips, clips[1:]))  # stitched without gaps or repeats


def test_mp4_is_read_back_by_decord(tiny_pipe, tmp_path):
    path = tmp_path / "ball.mp4"
    out = tiny_pipe("a red ball rolls left", seconds=8, fps=8, output=path, progress=False)
    assert out.path == path and out.frames is None
    reader = decord.VideoReader(str(path))
    assert len(reader) == 64 and reader.get_avg_fps() == pytest.approx(8)
    assert not [p for p in tmp_path.iterdir() if p.name != "ball.mp4"]  # no temporary file left behind


def test_streamed_video_equals_in_memory_frames(tiny_pipe, tmp_path):
    """Writing to disk does not change what is generated (same seed, same frames up to H.264 loss)."""
    mem = tiny_pipe("a red ball rolls left", seconds=4, progress=False, seed=3).frames
    tiny_pipe("a red ball rolls left", seconds=4, progress=False, seed=3, output=tmp_path / "a.mp4")
    disk = decord.VideoReader(str(tmp_path / "a.mp4")).get_batch(list(range(32))).asnumpy()
    assert np.abs(disk.astype(int) - mem.astype(int)).mean() < 12


def test_scripted_dynamics_appear_in_the_storyboard(tiny_pipe):
    dynamics = ["the ball moves right.", None, "the ball stops."]
    out = tiny_pipe("a red ball rolls left", seconds=10, dynamics=dynamics, progress=False)
    clips = out.storyboard.clips
    assert [c.dynamics for c in clips[:2]] == ["a red ball rolls left", "the ball moves right."]
    assert [c.predicted for c in clips] == [False, False, True, False, True]
    assert clips[3].dynamics == "the ball stops."
    data = json.loads(out.storyboard.to_json())
    assert data["clips"][1]["dynamics"] == "the ball moves right." and data["seconds"] == 10


def test_too_many_dynamics_is_an_error(tiny_pipe):
    from owl import OwlError

    with pytest.raises(OwlError, match="dynamics given"):
        tiny_pipe("a ball", seconds=2, dynamics=["a", "b"], progress=False)


def test_memory_last_changes_the_video(tiny_pipe):
    a = tiny_pipe("a red ball rolls left", seconds=6, progress=False, memory="full").frames
    b = tiny_pipe("a red ball rolls left", seconds=6, progress=False, memory="last").frames
    n = tiny_pipe.renderer.frames_per_clip(True)
    assert np.array_equal(a[:n], b[:n])  # clip 0 comes from the same opening state
    assert not np.array_equal(a[n:], b[n:])


def test_image_to_video_starts_on_the_image(tiny_pipe, tmp_path):
    from PIL import Image

    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = (255, 0, 0)
    Image.fromarray(image).save(tmp_path / "first.png")
    out = tiny_pipe("", image=tmp_path / "first.png", seconds=4, progress=False)
    assert out.frames.shape[0] == 32
    assert np.array_equal(out.frames[0], image)


def test_save_and_load_give_identical_outputs(tiny_pipe, tiny_dir):
    loaded = OwlPipeline.from_pretrained(tiny_dir)
    kwargs = dict(prompt="a red ball rolls left", seconds=4, progress=False, seed=5)
    a, b = tiny_pipe(**kwargs), loaded(**kwargs)
    assert np.array_equal(a.frames, b.frames)
    assert [c.dynamics for c in a.storyboard.clips] == [c.dynamics for c in b.storyboard.clips]
    files = {p.name for p in tiny_dir.rglob("*") if p.is_file()}
    assert not {f for f in files if f.endswith((".bin", ".pt", ".pkl", ".pth"))}  # safetensors only


def test_history_bound_reaches_the_world_session(tiny_pipe, monkeypatch, tmp_path):
    """max_observations / max_steps bound the rollout's world session, are saved with its session, and a
    resumed bounded rollout replays the same bound."""
    import owl.rollout
    from owl.session import SessionFolder, session_path

    opened = []

    def spy(world_model, settings):
        opened.append(original(world_model, settings))
        return opened[-1]

    original = owl.rollout.open_session
    monkeypatch.setattr(owl.rollout, "open_session", spy)  # the one loop, whoever drives it, opens it there
    out = tmp_path / "bounded.mp4"
    bounded = tiny_pipe("a red ball rolls left", seconds=24, progress=False, max_observations=1, max_steps=2,
                        output=out, session=session_path(out))
    session = opened[-1]
    assert (session.memory.max_observations, session.memory.max_steps) == (1, 2)
    assert sum(b.kind == "observation" for b in session.blocks) == 1
    assert len({b.step for b in session.blocks if b.kind != "context"}) <= 2
    saved = SessionFolder.open(session_path(out)).settings
    assert (saved.max_observations, saved.max_steps) == (1, 2)
    assert len(bounded.storyboard.clips) == 12


@pytest.mark.parametrize("bound", [-1, 1.5, True, "2"])
def test_bad_history_bound_is_refused(tiny_pipe, bound):
    from owl.errors import OwlError

    with pytest.raises(OwlError, match="max_observations must be a whole number >= 0"):
        tiny_pipe("a red ball", seconds=2, progress=False, max_observations=bound)


def test_bfloat16_and_vae_tiling_settings(tiny_pipe, tmp_path, capsys):
    """The GPU settings run on any device: bf16 weights film a clip; VAE tiling and slicing leave it unchanged."""
    import torch

    from owl.cli import main

    half = OwlPipeline.from_preset("tiny", seed=0, torch_dtype=torch.bfloat16)
    assert half.renderer.transformer.dtype == torch.bfloat16 and half.world_model.vlm.dtype == torch.bfloat16
    plain = half("a red ball rolls left", seconds=4, progress=False).frames
    assert plain.shape == (32, 64, 64, 3)
    half.enable_vae_tiling()
    half.enable_vae_slicing()
    assert np.array_equal(half("a red ball rolls left", seconds=4, progress=False).frames, plain)
    out = tmp_path / "half.mp4"
    assert main(["generate", "--preset", "tiny", "--prompt", "a ball", "--seconds", "2", "--dtype", "bfloat16",
                 "--vae-tiling", "--out", str(out), "--quiet", "--no-session"]) == 0
    assert out.is_file()


def test_model_cpu_offload_swaps_components_and_keeps_the_video(tiny_pipe, capsys):
    """Model CPU offload (for GPUs) run with the CPU as the accelerator: every clip brings the LMM, the
    transformer and the VAE in turn, each part of the LMM it is called through brings the LMM, and the video is
    the same as without offload."""
    import owl.loading
    from owl.cli import main

    plain = tiny_pipe("a red ball rolls left", seconds=4, progress=False, do_sample=False)
    pipe = OwlPipeline.from_preset("tiny", seed=0)
    pipe.enable_model_cpu_offload("cpu")
    seen = []
    onload = pipe._offload.onload
    pipe._offload.onload = lambda name: (seen.append(name), onload(name))
    out = pipe("a red ball rolls left", seconds=4, progress=False, do_sample=False)  # 2 clips, dynamics predicted
    assert np.array_equal(out.frames, plain.frames) and out.storyboard.clips[1].predicted
    swaps = [name for i, name in enumerate(seen) if i == 0 or seen[i - 1] != name]
    assert swaps[:4] == ["vlm", "transformer", "vae", "vlm"] == pipe.model_cpu_offload_seq.split("->") + ["vlm"] and swaps.count("transformer") == 2
    assert pipe._offload.moves == len(swaps)
    assert list(pipe.components) == list(owl.loading.COMPONENTS)
    assert main(["generate", "--preset", "tiny", "--prompt", "a ball", "--device", "cpu", "--cpu-offload",
                 "--out", "unused.mp4"]) == 2
    assert "--cpu-offload" in capsys.readouterr().err


def test_contact_sheet_shows_one_captioned_frame_per_clip(tiny_pipe, tmp_path):
    from PIL import Image

    from owl.contact_sheet import save_contact_sheet

    video = tmp_path / "sheet.mp4"
    out = tiny_pipe("a red ball rolls left", seconds=8, output=video, progress=False, dynamics=["the ball stops."])
    path = save_contact_sheet(video, out.storyboard, tmp_path / "sheet.png", columns=2, scale=2)
    sheet = np.asarray(Image.open(path).convert("RGB"))
    clips = len(out.storyboard.clips)  # 4 clips of 2 s: a 2 x 2 grid of 128 px frames with captions under them
    assert clips == 4 and sheet.shape[1] == 2 * (128 + 12) and sheet.shape[0] > 2 * (128 + 12)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically


def test_diffusers_step_callback_sees_and_replaces_latents(tiny_pipe):
    """callback_on_step_end is called after every denoising step of every clip with the new frames' latents, as
    in diffusers' pipelines, and what it returns is denoised on."""
    plain = tiny_pipe("a red ball rolls left", seconds=4, progress=False)
    seen = []

    def record(pipe, i, t, kwargs):
        seen.append((i, tuple(kwargs["latents"].shape)))
        return {}

    same = tiny_pipe("a red ball rolls left", seconds=4, progress=False, callback_on_step_end=record)
    steps = tiny_pipe.renderer.config.num_inference_steps
    assert [i for i, _ in seen] == list(range(steps)) * 2 and np.array_equal(same.frames, plain.frames)
    zeroed = tiny_pipe("a red ball rolls left", seconds=4, progress=False,
                       callback_on_step_end=lambda pipe, i, t, kw: {"latents": kw["latents"] * 0})
    assert not np.array_equal(zeroed.frames, plain.frames)


def test_interrupt_keeps_the_finished_clips_and_a_resumable_session(tiny_pipe, tmp_path):
    from owl.session import SessionFolder, session_path

    def stop_in_clip_2(pipe, i, t, kwargs):
        stop_in_clip_2.calls += 1
        if stop_in_clip_2.calls > tiny_pipe.renderer.config.num_inference_steps * 2:
            pipe._interrupt = True
        return {}

    stop_in_clip_2.calls = 0
    out = tmp_path / "stopped.mp4"
    result = tiny_pipe("a red ball rolls left", seconds=8, output=out, session=session_path(out), progress=False,
                       callback_on_step_end=stop_in_clip_2)
    assert result.interrupted and tiny_pipe.interrupt and len(result.storyboard.clips) == 2
    assert result.num_frames == tiny_pipe.renderer.grid.bounds(1)[1] and out.is_file()
    folder = SessionFolder.open(session_path(out))
    assert not folder.complete and len(folder.records) == 2
    whole = tiny_pipe("a red ball rolls left", seconds=8, progress=False)
    resumed = tiny_pipe.resume(session_path(out), progress=False)
    assert not resumed.interrupted and resumed.num_frames == whole.num_frames
    from owl.video_io import read_video

    assert np.array_equal(read_video(out)[0], read_video(tmp_path / "stopped.mp4")[0])


@pytest.mark.parametrize("output_type", ["pt", "pil", "latent"])
def test_output_types(tiny_pipe, output_type):
    plain = tiny_pipe("a red ball rolls left", seconds=4, progress=False)
    out = tiny_pipe("a red ball rolls left", seconds=4, progress=False, output_type=output_type)
    if output_type == "pt":
        assert out.frames.shape == (plain.num_frames, 3, 64, 64) and out.frames.dtype == torch.float32
        assert np.array_equal((out.frames * 255).round().byte().permute(0, 2, 3, 1).numpy(), plain.frames)
    elif output_type == "pil":
        assert len(out.frames) == plain.num_frames and np.array_equal(np.asarray(out.frames[3]), plain.frames[3])
    else:
        r = tiny_pipe.renderer
        assert out.frames is None and len(out.latents) == 2
        assert out.latents[0].shape[2] == r.config.clip_latent_frames + 1  # the opening clip: no context
        decoded = r.decode_clip(out.latents[1], r.config.context_latent_frames)
        from owl.renderer import to_uint8_thwc

        rest = plain.frames[r.grid.bounds(1)[0]:]  # the last clip is cut to the duration
        assert np.array_equal(to_uint8_thwc(decoded[0])[: len(rest)], rest)


def test_bad_output_type_and_step_inputs_are_refused(tiny_pipe):
    from owl.errors import OwlError

    with pytest.raises(OwlError, match="output_type must be one of np, pt, pil, latent, got 'mp4'"):
        tiny_pipe("a red ball", seconds=2, progress=False, output_type="mp4")
    with pytest.raises(OwlError, match="callback_on_step_end_tensor_inputs must be among"):
        tiny_pipe("a red ball", seconds=2, progress=False, callback_on_step_end=lambda *a: {},
                  callback_on_step_end_tensor_inputs=["prompt_embeds"])


def test_group_offload_and_cache_hook_run_the_loop(tiny_pipe):
    """diffusers' group offloading (here with the CPU as the accelerator) leaves the video as it was; a cache hook
    (FirstBlockCache) starts afresh with each clip, so the same rollout twice gives the same video."""
    from diffusers.hooks import FirstBlockCacheConfig

    plain = tiny_pipe("a red ball rolls left", seconds=4, progress=False)
    pipe = OwlPipeline.from_preset("tiny", seed=0)
    pipe.enable_group_offload("cpu", offload_type="leaf_level")
    assert np.array_equal(pipe("a red ball rolls left", seconds=4, progress=False).frames, plain.frames)
    cached = OwlPipeline.from_preset("tiny", seed=0)
    cached.enable_cache(FirstBlockCacheConfig(threshold=0.5))
    first = cached("a red ball rolls left", seconds=4, progress=False)
    again = cached("a red ball rolls left", seconds=4, progress=False)
    assert np.array_equal(first.frames, again.frames) and first.frames.shape == plain.frames.shape
    cached.disable_cache()
    assert np.array_equal(cached("a red ball rolls left", seconds=4, progress=False).frames, plain.frames)


def test_a_clip_source_is_one_class(tiny_pipe):
    """rollout() takes its clips from any object with prefix, given, check and clip: here every clip is a grey
    still the renderer never films, and the loop still observes, acts and stitches them on the grid."""
    from owl.clip_sources import Clip
    from owl.rollout import rollout
    from owl.settings import RolloutSettings

    r = tiny_pipe.renderer

    class Stills:
        def prefix(self, total):
            return 0, 0

        def given(self, t, planned):
            return planned

        def check(self, t, text):
            pass

        def clip(self, t, state, context, generator, timings):
            frames = np.full((r.grid.clip_frames(t == 0), 64, 64, 3), 16 * t, np.uint8)
            return Clip(frames, frames[-2:], torch.zeros(1, r.vae.config.z_dim, 1, 8, 8), source="video")

    settings = RolloutSettings(seconds=6, fps=8, height=64, width=64, num_inference_steps=2, guidance_scale=1.0)
    chunks = []
    board = rollout(tiny_pipe.world_model, r, "a grey room", settings, chunks.append, source=Stills(),
                    dynamics=["the light dims.", None], progress=False)
    video = np.concatenate(chunks)
    assert len(video) == 48 and [c.start * 8 for c in board.clips] == r.grid.starts(48)
    assert [int(video[int(c.start * 8)].max()) for c in board.clips] == [0, 16, 32]
    assert board.clips[1].dynamics == "the light dims." and board.clips[2].predicted
