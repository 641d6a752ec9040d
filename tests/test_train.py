"""Stage-wise training on tiny models and tiny Shapes World data."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from owl import OwlError, OwlPipeline
from owl.train import align, generate, vae, world
from owl.train.common import load_config

STAGES = {"vae": vae, "align": align, "generate": generate, "world": world}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from owl.data.commands import main as data_main

    out = tmp_path_factory.mktemp("shapes")
    assert data_main(["data", "shapes", "--out", str(out), "--videos", "3", "--seconds", "8", "--seed", "0"]) == 0
    return out / "captions.json"


def run(stage, tmp_path, shapes, *settings, resume=False, name=None):
    out = tmp_path / (name or stage)
    cfg = load_config(stage, None, [f"data={shapes}", f"output_dir={out}", *settings])
    STAGES[stage].main(cfg, resume=resume, quiet=True)
    return out


def losses(out):
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


FALLS = {
    "vae": ["steps=40", "batch_size=1", "frames=5", "window_start_prob=0", "lr_vae_encoder=3e-3", "lr_vae_decoder=3e-3"],
    "align": ["steps=40", "batch_size=4", "lr_queries=1e-2"],
    "generate": ["steps=50", "batch_size=4", "lr_transformer=3e-3", "cond_dropout=0", "context_dropout=0"],
    "world": ["steps=40", "batch_size=1", "clips_per_sample=2", "cond_dropout=0", "lr_lmm=3e-3", "lr_transformer=3e-3"],
}


@pytest.mark.parametrize("stage", list(FALLS))
def test_loss_falls_on_a_fixed_batch(stage, tmp_path, shapes):
    out = run(stage, tmp_path, shapes, "fixed_batch=true", "warmup_steps=2", "save_every=1000", *FALLS[stage])
    values = losses(out)
    first, last = sum(values[:5]) / 5, sum(values[-5:]) / 5
    assert last < 0.7 * first, (stage, first, last)
    assert (out / "model" / "model_index.json").is_file()


def test_each_stage_loads_the_previous_one_and_the_pipeline_loads_the_last(tmp_path, shapes):
    previous = "preset:tiny"
    for stage in STAGES:
        extra = ["clips_per_sample=2"] if stage == "world" else []
        out = run(stage, tmp_path, shapes, f"model={previous}", "steps=2", "batch_size=1", "frames=5" if stage == "vae" else "seed=0", *extra)
        previous = str(out)
    pipe = OwlPipeline.from_pretrained(tmp_path / "world" / "model")
    result = pipe("a red circle enters from the left.", seconds=4, progress=False)
    assert result.frames.shape == (32, 64, 64, 3)
    # the VAE stage stored its latent statistics, and the renderer uses them
    stats = json.loads((tmp_path / "vae" / "model" / "vae" / "config.json").read_text())
    assert stats["latents_std"] != [1.0] * 4
    torch.testing.assert_close(pipe.renderer.latents_std.flatten(), torch.tensor(stats["latents_std"]))


def test_decoder_only_vae_fine_tuning_keeps_the_latent_space(tmp_path, shapes):
    """lr_vae_encoder=0: the decoder trains; the encoder, its latent stats and everything else stay bit for bit."""
    base = run("vae", tmp_path, shapes, "steps=3", "batch_size=1", "frames=5", name="base") / "model"
    tuned = run("vae", tmp_path, shapes, f"model={base}", "steps=3", "batch_size=1", "frames=5",
                "lr_vae_encoder=0", "lr_vae_decoder=3e-3", name="tuned") / "model"
    before, after = OwlPipeline.from_pretrained(base), OwlPipeline.from_pretrained(tuned)
    old, new = before.renderer.vae.state_dict(), after.renderer.vae.state_dict()
    changed = {name for name in old if not torch.equal(old[name], new[name])}
    assert changed and all(name.startswith(("decoder.", "post_quant_conv.")) for name in changed), sorted(changed)[:5]
    assert before.renderer.vae.config.latents_std == after.renderer.vae.config.latents_std
    for a, b in zip(before.renderer.transformer.parameters(), after.renderer.transformer.parameters()):
        assert torch.equal(a, b)


CONFIGS = Path(__file__).parents[1] / "configs"


@pytest.mark.parametrize("path", sorted([*CONFIGS.glob("shapes/*.yaml"), *CONFIGS.glob("tiny/*.yaml")]), ids=str)
def test_every_recipe_config_is_valid(path):
    """The recipes' stage configs load: no stale or misspelt key. A file is named after its stage, with a suffix
    after "_" for the stage run again (vae_long, world_state, generate_more, world_more), as runs/shapes.sh reads it."""
    cfg = load_config(path.stem.split("_")[0], str(path), [])
    assert cfg.steps > 0 and cfg.output_dir


def test_settings_that_train_nothing_are_refused_before_anything_is_written(tmp_path, shapes):
    with pytest.raises(OwlError, match="every learning rate is 0"):
        run("vae", tmp_path, shapes, "steps=2", "frames=5", "lr_vae_encoder=0", "lr_vae_decoder=0")
    assert not (tmp_path / "vae").exists()


def test_resume_matches_an_uninterrupted_run(tmp_path, shapes, monkeypatch):
    settings = ["steps=8", "batch_size=2", "save_every=3", "ema_decay=0.9"]
    full = run("generate", tmp_path, shapes, *settings, name="full")

    calls = {"n": 0}
    original = generate.Clips.__getitem__

    def interrupt_later(self, i):
        calls["n"] += 1
        if calls["n"] == 2 * 5 + 1:  # while loading step 6's batch
            raise KeyboardInterrupt
        return original(self, i)

    monkeypatch.setattr(generate.Clips, "__getitem__", interrupt_later)
    with pytest.raises(KeyboardInterrupt):
        run("generate", tmp_path, shapes, *settings, name="resumed")
    monkeypatch.setattr(generate.Clips, "__getitem__", original)
    resumed = tmp_path / "resumed"
    assert (resumed / "checkpoints" / "step-0000005" / "owl_state.json").is_file()
    assert not list((resumed / "checkpoints").glob(".tmp-*"))
    run("generate", tmp_path, shapes, *settings, name="resumed", resume=True)
    a, b = losses(full), losses(resumed)
    assert len(a) == len(b) == 8
    torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-5, rtol=1e-5)
    wa = json.loads((full / "done.json").read_text())["weights_sum"]
    wb = json.loads((resumed / "done.json").read_text())["weights_sum"]
    assert wa == pytest.approx(wb, rel=1e-6)


def test_lora_adapters_save_and_load_through_peft(tmp_path, shapes):
    from peft import PeftModel

    from safetensors import safe_open

    out = run("generate", tmp_path, shapes, "steps=3", "batch_size=2", "lora_rank=4", "lr_lora=1e-2")
    assert (out / "model" / "lora" / "adapter_config.json").is_file()
    with safe_open(out / "checkpoints" / "step-0000003" / "trainable.safetensors", "pt") as f:
        saved = list(f.keys())  # the resume state holds what trains: the adapters, not the LMM they adapt
    lm = [name for name in saved if ".language_model." in name]
    assert lm and all("lora_" in name for name in lm)
    trained = OwlPipeline.from_pretrained(out / "model").world_model
    base = OwlPipeline.from_preset("tiny", seed=0).world_model
    adapted = PeftModel.from_pretrained(base.vlm.model.language_model, out / "model" / "lora")
    base.vlm.model.language_model = adapted
    embeds = torch.randn(1, 5, trained.hidden_size)
    positions = torch.arange(5).expand(3, 1, 5)
    with torch.no_grad():
        torch.testing.assert_close(base.run(embeds, positions), trained.run(embeds, positions), atol=1e-5, rtol=1e-4)
        plain = OwlPipeline.from_preset("tiny", seed=0).world_model.run(embeds, positions)
    assert (plain - trained.run(embeds, positions)).abs().max() > 1e-4  # the adapter changed something


def test_lora_on_the_transformer_is_fused_into_the_release_folder(tmp_path, shapes):
    """transformer_lora_rank: only the adapters train (resume state holds them alone); the release folder holds
    the transformer with them fused in (it loads strictly as a plain Wan transformer) and the adapter beside it."""
    from safetensors import safe_open

    out = run("generate", tmp_path, shapes, "steps=3", "batch_size=2", "lr_transformer=0", "transformer_lora_rank=4",
              "lr_transformer_lora=5e-2", "lr_queries=0", "lr_projector=0", "ema_decay=0")
    with safe_open(out / "checkpoints" / "step-0000003" / "trainable.safetensors", "pt") as f:
        saved = list(f.keys())
    assert saved and all("renderer.transformer." in n and "lora_" in n for n in saved)
    assert (out / "model" / "transformer_lora").is_dir()
    trained = OwlPipeline.from_pretrained(out / "model").renderer.transformer
    base = OwlPipeline.from_preset("tiny", seed=0).renderer.transformer
    names = [n for n, _ in trained.named_parameters() if n.endswith("attn1.to_q.weight")]
    assert names and not any("lora_" in n for n, _ in trained.named_parameters())
    delta = (dict(trained.named_parameters())[names[0]] - dict(base.named_parameters())[names[0]]).abs().max()
    assert delta > 1e-5  # the trained adapter is in the weights
    frozen = "proj_out.weight"  # not adapted: untouched
    torch.testing.assert_close(dict(trained.named_parameters())[frozen], dict(base.named_parameters())[frozen])
    with pytest.raises(OwlError, match="not both"):
        run("generate", tmp_path, shapes, "steps=1", "transformer_lora_rank=4", "lr_transformer_lora=1e-3",
            name="both")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SLOW_RANK_1 = """
import os, time
if os.environ.get("RANK") == "1":  # rank 1 writes each tensor file a second late, as on a loaded machine
    import safetensors.torch
    _save = safetensors.torch.save_file
    def _slow_save(*args, **kwargs):
        time.sleep(1.0)
        return _save(*args, **kwargs)
    safetensors.torch.save_file = _slow_save
"""


def test_two_processes_hold_the_same_weights(tmp_path, shapes):
    """Two DDP processes (gloo on CPU) train, checkpoint and resume with the same weights on both."""
    out = tmp_path / "ddp"
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_RANK_1)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(filter(None, [str(slow), os.environ.get("PYTHONPATH")]))}

    def launch(steps, *extra):
        proc = subprocess.run(
            [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--main_process_port", str(free_port()),
             "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "owl.train", "generate",
             "--set", f"data={shapes}", "--set", f"output_dir={out}", "--set", f"steps={steps}", "--set", "batch_size=1", "--set", "save_every=2", "--quiet", *extra],
            capture_output=True, text=True, env=env, timeout=300)
        failed = [line for line in proc.stderr.splitlines() if line.startswith("[rank") and "Warning" not in line]
        assert proc.returncode == 0, "\n".join(failed[:40]) or proc.stderr[-2000:]  # the ranks' own tracebacks
        sums = [json.loads((out / f"weights_rank{r}.json").read_text())["sum"] for r in (0, 1)]
        assert sums[0] == sums[1]

    launch(3)
    assert (out / "model" / "model_index.json").is_file()
    last = out / "checkpoints" / "step-0000003"  # both ranks' states are in the checkpoint the rename published
    assert {"rng_0.safetensors", "rng_1.safetensors", "rng_0.json", "rng_1.json", "owl_state.json"} <= {p.name for p in last.iterdir()}
    assert not list((out / "checkpoints").glob(".tmp-*"))
    launch(4, "--resume")  # both ranks read step 3 (each its own RNG states) and take one more step
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


@pytest.mark.parametrize("settings, message", [
    (["nope=1"], "unknown setting for stage generate"),
    (["steps=abc"], "steps must be int"),
    (["data=/nonexistent/captions.json"], "data not found"),
    (["model=/nonexistent"], "model not found"),
])
def test_bad_settings_fail_before_training(tmp_path, shapes, settings, message):
    with pytest.raises(OwlError, match=message):
        cfg = load_config("generate", None, [f"data={shapes}", f"output_dir={tmp_path / 'x'}", *settings])
        generate.main(cfg, quiet=True)
    assert not (tmp_path / "x").exists()


def test_wrong_kind_of_previous_stage(tmp_path, shapes):
    (tmp_path / "notamodel").mkdir()
    cfg = load_config("world", None, [f"data={shapes}", f"model={tmp_path / 'notamodel'}", f"output_dir={tmp_path / 'x'}"])
    with pytest.raises(OwlError, match="not an Owl model folder"):
        world.main(cfg, quiet=True)


def test_config_file_with_unknown_key_or_wrong_type(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("steps: 10\nlearning_rate: 0.1\n")
    with pytest.raises(OwlError, match=r"unknown setting\(s\) \['learning_rate'\]"):
        load_config("align", str(bad), [])
    bad.write_text("steps: ten\n")
    with pytest.raises(OwlError, match="steps must be int"):
        load_config("align", str(bad), [])


def test_first_clips_are_trained_as_image_to_video():
    """Clip 0 keeps the video's first latent as clean context (the rollout films image-to-video that way), and
    a world sample from the video's start opens with the first frame, as WorldSession.start lays it out."""
    import numpy as np

    from owl.data.collate import collate
    from owl.train.data import PreparedVideo

    n, clips = 2, 3
    frames = np.random.default_rng(0).integers(0, 255, (4 * n * clips + 1, 16, 16, 3), dtype=np.uint8)
    video = PreparedVideo("v", frames, torch.zeros(4, 1 + n * clips, 2, 2), ["a", "b", "c"], [True, False, True],
                          ["the red a", "", "the blue c"])  # clip 1 has no state sentence: its caption stands
    gen = generate.Clips([video], n)
    assert [gen[i]["has_context"] for i in range(clips)] == [True, True, False]  # clip 2 opens a new scene
    from owl.clip_grid import ClipGrid

    seq = world.Sequences([video], ClipGrid(n, 1), 2, lambda clip: clip[-2:])
    first, later = seq[0], seq[1]
    assert first["has_context"].tolist() == [True, True] and np.array_equal(first["first_frame"], frames[0])
    assert later["has_context"].tolist() == [False, False] and later["first_frame"].size == 0
    assert first["states"] == ["the red a", "b"] and later["states"] == ["b", "the blue c"]
    batch = collate([first, later])
    assert isinstance(batch["first_frame"], list) and len(batch["first_frame"]) == 2


def test_tensorboard_log_when_installed(tmp_path, shapes):
    pytest.importorskip("torch.utils.tensorboard")  # optional: the JSONL log is always written
    out = run("align", tmp_path, shapes, "steps=3", "batch_size=2", "save_every=1000")
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(losses(out)) == 3


def test_condition_probe_is_repeatable_and_sees_the_condition(shapes, capsys):
    from owl.train import probe
    from owl.train.data import prepare_videos

    pipe = OwlPipeline.from_preset("tiny", seed=0)
    prepared = prepare_videos(shapes, pipe.renderer, latents=True)
    first, fraction = probe.condition_losses(pipe, prepared, clips=4, draws=2, shapes=True)
    assert (first, fraction) == probe.condition_losses(pipe, prepared, clips=4, draws=2, shapes=True)
    assert 0 < fraction < 1
    assert set(first) == {(c, name, region) for c in (0, 1) for name in probe.CONDITIONS
                          for region in ("all", "shapes", "background")}
    for c in (0, 1):  # the same noise under every condition: the losses differ only through the condition
        assert first[c, "true", "all"] != first[c, "null", "all"]
        # the whole is the mask-weighted mix of its two regions, so it lies between them
        low, high = sorted([first[c, "true", "shapes"], first[c, "true", "background"]])
        assert low < first[c, "true", "all"] < high
    assert probe.main(["--model", "checkpoints/does-not-exist", "--data", str(shapes)]) == 2
    assert probe.main(["--model", "preset:tiny", "--data", str(shapes.parent / "missing.json")]) == 2
    assert capsys.readouterr().err.count("owl: error:") == 2


def test_shape_mask_marks_the_latents_that_cover_a_shape():
    import numpy as np

    from owl.data.shapes import BACKGROUND, PALETTE
    from owl.train import probe

    pipe = OwlPipeline.from_preset("tiny", seed=0)  # 8x spatial, 4x temporal
    frames = np.empty((17, 64, 64, 3), np.uint8)
    frames[:] = BACKGROUND
    frames[9, 40:44, 8:12] = PALETTE["red"]  # a square in frame 9 only: latent 3 (frames 9-12), pixel (5, 1)
    mask = probe.shape_mask(pipe.renderer, frames, n=4, t=0)
    assert mask.shape == (1, 5, 8, 8) and mask.sum() == 1 and mask[0, 3, 5, 1] == 1


def test_caption_pairs_one_word_apart():
    from owl.train.probe import one_word_apart

    captions = ["the circle moves left.", "the circle moves right.", "a red square enters.", "the circle moves left."]
    assert one_word_apart(captions) == [("the circle moves left.", "the circle moves right.")]


def test_align_words_target_teaches_the_state_to_name_its_caption(tmp_path, shapes):
    """align_target=words: the loss is bounded below by log k (k distinct tokens), training approaches that
    bound, and the states of two captions one word apart end up further apart than before."""
    import math

    import torch.nn.functional as F

    from owl.train.align import read_states, words_loss

    pair = ["a green circle enters from the top.", "a green circle enters from the bottom."]  # words of the data

    def distance(pipe):
        with torch.no_grad():
            a, b = read_states(pipe.world_model, pair).flatten(1)
        return 1 - F.cosine_similarity(a, b, dim=0).item()

    pipe = OwlPipeline.from_preset("tiny", seed=0)
    before = distance(pipe)
    with torch.no_grad():
        states = read_states(pipe.world_model, pair)
        k = [len(set(pipe.world_model.text_ids(c))) for c in pair]
        assert words_loss(pipe.world_model, states, pair) >= sum(math.log(x) for x in k) / 2

    out = run("align", tmp_path, shapes, "align_target=words", "steps=60", "batch_size=8", "lr_queries=1e-2",
              "lr_lmm=3e-3", "warmup_steps=2", "save_every=1000")
    values = losses(out)
    assert values[-1] < 0.7 * values[0]
    tuned = OwlPipeline.from_pretrained(out / "model")
    assert distance(tuned) > 2 * before, (before, distance(tuned))


def test_words_weight_adds_the_words_loss_to_generate_and_world(tmp_path, shapes):
    words = {}
    for name, stage, extra in (("generate", "generate", []), ("caption", "world", ["clips_per_sample=2"]),
                               ("history", "world", ["clips_per_sample=2", "words_from=history"]),
                               ("state", "world", ["clips_per_sample=2", "words_from=state"])):
        out = run(stage, tmp_path, shapes, "words_weight=0.1", "steps=2", "batch_size=1", "log_every=1", *extra,
                  name=name)
        logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        assert all(entry["words"] > 0 and entry["loss"] > entry["diffusion"] for entry in logs), (stage, logs)
        words[name] = logs[0]["words"]
    # the same first step, but the second state must also name the first caption's words
    assert words["history"] != words["caption"]
    with pytest.raises(OwlError, match="words_from must be one of caption, state, history, got 'all'"):
        run("world", tmp_path, shapes, "words_weight=0.1", "words_from=all", "steps=1")


def test_words_from_state_names_what_the_caption_leaves_out(shapes):
    from owl.data.collate import collate
    from owl.train.data import prepare_videos

    pipe = OwlPipeline.from_preset("tiny", seed=0)
    videos = prepare_videos(shapes, pipe.renderer, latents=True)
    sequences = world.Sequences(videos, pipe.renderer.grid, 2, pipe.world_model.key_frames)
    samples = [sequences[i] for i in range(len(sequences))]
    sample = next(s for s in samples if s["states"] != s["captions"][:2])  # "the square turns red." in full
    assert any("the square" in c for c in sample["captions"]) and not any("the square" in s for s in sample["states"])
    words = {}
    for source in ("caption", "state"):
        cfg = load_config("world", None, [f"data={shapes}", "words_weight=1", f"words_from={source}", "clips_per_sample=2"])
        _, logs = world.WorldLoss(pipe, cfg)(collate([sample]), torch.Generator().manual_seed(0))
        words[source] = logs["words"]
    assert words["state"] != words["caption"]


def test_align_target_is_checked(tmp_path, shapes):
    with pytest.raises(OwlError, match="align_target must be lmm_text, words or text_encoder, got 'nope'"):
        run("align", tmp_path, shapes, "align_target=nope")
    with pytest.raises(OwlError, match="needs a frozen LMM"):
        run("align", tmp_path, shapes, "align_target=lmm_text", "lr_lmm=1e-3")
