"""Director mode (owl/director.py) on stand-ins of the published folders (tests/standins.py): `owl init --director`
-> a rollout whose events the instruct VLM writes -> sessions, given dynamics, branch, extend, batch, the evaluation
against a trained folder; what it cannot run on is refused in one line."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from owl import OwlPipeline
from owl.cli import main
from owl.config import DIRECTOR_INSTRUCTION
from owl.director import Director, one_sentence
from owl.errors import OwlError
from owl.session import SessionFolder, session_path
from standins import qwen3_vl_folder

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "real"
SMALL = ["--key-frame-size", "56", "--clip-seconds", "1", "--fps", "8", "--height", "64", "--width", "64"]
PROMPT = "a red ball rolls left"
SAMPLED = dict(do_sample=True, temperature=1.0, seed=3, num_inference_steps=2, progress=False)


def owl(*args) -> int:
    """`owl ARGS` in this process: its exit code."""
    try:
        return main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own refusals
        return exc.code


@pytest.fixture(scope="module")
def director_dir(standin_folders, tmp_path_factory):
    out = tmp_path_factory.mktemp("owl") / "owl-director"
    qwen, wan = standin_folders["qwen2.5"], standin_folders["wan2.1"]
    assert owl("init", "--director", "--lmm", qwen, "--vdm", wan, "--out", out, *SMALL) == 0
    return out


@pytest.fixture(scope="module")
def director(director_dir):
    return OwlPipeline.from_pretrained(director_dir)


def test_init_writes_a_director_folder(director_dir, director, standin_folders, capsys):
    index = json.loads((director_dir / "model_index.json").read_text())
    assert index["mode"] == "director" and "text_encoder" in index["components"]
    assert (director_dir / "text_encoder" / "model.safetensors").is_file()
    config = json.loads((director_dir / "world_model" / "config.json").read_text())
    assert config["instruction"] == DIRECTOR_INSTRUCTION and config["max_text_tokens"] == 512
    wm, r = director.world_model, director.renderer
    assert isinstance(wm, Director) and r.config.condition == "text"
    assert director.model_cpu_offload_seq == "vlm->text_encoder->transformer->vae"
    # the renderer's condition is the Wan folder's text encoding, its width the transformer's text_dim
    assert r.config.state_dim == wm.hidden_size == r.transformer.config.text_dim
    assert torch.equal(r.projector.null_state, wm.encode_text("").float())  # WanPipeline's empty negative prompt
    assert not [p for p in director_dir.rglob("*") if p.suffix in (".bin", ".pt", ".pkl")]


def test_a_director_rollout_writes_the_directors_events_and_resumes_frame_for_frame(director, tmp_path):
    """3 clips, sampled events. The storyboard's events are what the VLM decodes from the prompt, the events so far
    and the key frames the session saved; the state of each clip is the Wan text encoding of prompt + event; a
    session stopped after clip 1 resumes to the uninterrupted video."""
    reference = director(PROMPT, seconds=3, **SAMPLED)
    clips = reference.storyboard.clips
    assert len(clips) == 3 and [c.predicted for c in clips] == [False, True, True]
    assert reference.storyboard.director == DIRECTOR_INSTRUCTION

    states, out = [], tmp_path / "d.mp4"

    def stop_after_clip_1(event):
        states.append(event.state)
        if event.index == 1:
            director._interrupt = True

    stopped = director(PROMPT, seconds=3, output=out, session=session_path(out), callback=stop_after_clip_1, **SAMPLED)
    assert stopped.interrupted and len(stopped.storyboard.clips) == 2
    folder = SessionFolder.open(session_path(out))
    wm = director.world_model
    for t in (1,):  # the director's proposal, recomputed from what the session saved after clip t - 1
        saved = folder.load_clip(t - 1)
        generator = torch.Generator().manual_seed(0)
        generator.set_state(saved.rng)
        proposal = wm.propose(PROMPT, [], [saved.key_frames], True, 1.0, generator)
        assert proposal and proposal == clips[t].dynamics == one_sentence(proposal)
    for t, state in enumerate(states):
        text = PROMPT if t == 0 else f"{PROMPT} {clips[t].dynamics}"
        assert torch.equal(state, wm.encode_text(text))

    resumed = director.resume(session_path(out), progress=False)
    frames = np.concatenate(list(SessionFolder.open(session_path(out)).video_frames()))
    assert np.array_equal(frames, reference.frames)
    assert [c.dynamics for c in resumed.storyboard.clips] == [c.dynamics for c in clips]
    story = json.loads(resumed.storyboard.to_json())
    assert story["director"] == DIRECTOR_INSTRUCTION and story["clips"][2]["dynamics"] == clips[2].dynamics


def test_given_dynamics_replace_the_directors(director):
    out = director(PROMPT, seconds=3, dynamics=["the ball stops.", None], **SAMPLED)
    clips = out.storyboard.clips
    assert clips[1].dynamics == "the ball stops." and not clips[1].predicted
    assert clips[2].predicted and clips[2].dynamics != "the ball stops."


def test_the_instruction_lives_in_the_folder_and_can_be_changed(director_dir, tmp_path, capsys):
    changed = tmp_path / "changed"
    shutil.copytree(director_dir, changed)
    config_file = changed / "world_model" / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "instruction": "Say what the ball does next."}))
    pipe = OwlPipeline.from_pretrained(changed)
    chat = pipe.world_model.chat(PROMPT, ["the ball stops."], [np.zeros((2, 64, 64, 3), np.uint8)])
    assert chat[0] == {"role": "system", "content": [{"type": "text", "text": "Say what the ball does next."}]}
    content = chat[1]["content"]
    assert sum(c["type"] == "image" for c in content) == 2 and "1. the ball stops." in content[0]["text"]
    out = tmp_path / "c.mp4"
    assert owl("generate", "--model", changed, "--prompt", PROMPT, "--seconds", "2", "--steps", "1", "--out", out,
               "--quiet") == 0
    story = json.loads(out.with_suffix(".storyboard.json").read_text())
    assert story["director"] == "Say what the ball does next." and len(story["clips"]) == 2
    config_file.write_text(json.dumps({**config, "instruction": "  "}))
    assert owl("generate", "--model", changed, "--prompt", PROMPT, "--out", tmp_path / "e.mp4") == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("director config: instruction must be a non-empty text (the VLM's system message)")
    assert len(err.splitlines()) == 1 and not (tmp_path / "e.mp4").exists()


def test_every_command_takes_a_director_folder(director_dir, tmp_path, capsys):
    out = tmp_path / "m.mp4"
    assert owl("generate", "--model", director_dir, "--prompt", PROMPT, "--seconds", "2", "--steps", "1",
               "--out", out, "--quiet") == 0
    assert owl("branch", session_path(out), "--at", "1", "--dynamics", "the ball stops.", "--out", tmp_path / "b.mp4",
               "--quiet") == 0
    assert owl("extend", session_path(out), "--seconds", "1", "--out", tmp_path / "e.mp4", "--quiet") == 0
    jobs = tmp_path / "jobs.jsonl"
    (tmp_path / "batch").mkdir()
    jobs.write_text(json.dumps({"id": "one", "prompt": PROMPT, "seconds": 1}) + "\n")
    assert owl("generate", "--batch", jobs, "--model", director_dir, "--out-dir", tmp_path / "batch", "--steps", "1",
               "--quiet") == 0
    branch = json.loads((tmp_path / "b.storyboard.json").read_text())
    assert branch["clips"][1]["dynamics"] == "the ball stops." and branch["director"] == DIRECTOR_INSTRUCTION
    assert json.loads((tmp_path / "e.storyboard.json").read_text())["seconds"] == pytest.approx(3.0)
    assert (tmp_path / "batch" / "one.mp4").is_file()
    assert owl("train", "world", "--config", CONFIGS / "world.yaml", "--set", f"model={director_dir}",
               "--set", f"data={tmp_path}", "--set", f"output_dir={tmp_path / 't'}") == 2
    assert "is a director folder" in capsys.readouterr().err


def test_image_to_video_uses_wan2_2s_first_latent(standin_folders, tmp_path):
    """Wan2.2-TI2V-5B conditions on a clean first latent: the director's image-to-video puts the image there."""
    lmm = qwen3_vl_folder(tmp_path / "Qwen3-VL-2B-Instruct")
    vdm = standin_folders["wan2.2"]
    pipe = OwlPipeline.from_components(lmm, vdm, director=True, key_frame_size=64, clip_seconds=1, fps=8,
                                       height=64, width=64, num_inference_steps=1)
    image = np.zeros((64, 64, 3), np.uint8)
    image[:, :32] = 255
    out = pipe("", image=image, seconds=2, **{**SAMPLED, "num_inference_steps": 1})
    assert out.frames.shape == (16, 64, 64, 3) and np.array_equal(out.frames[0], image)
    assert out.storyboard.clips[1].predicted and out.storyboard.clips[0].dynamics == ""
    latents = pipe("", image=image, seconds=2, output_type="latent", **{**SAMPLED, "num_inference_steps": 1}).latents
    assert torch.equal(latents[0][:, :, :1], pipe.renderer.image_context(image))  # the clean first latent


def test_what_director_mode_cannot_run_on_is_refused_in_one_line(standin_folders, tmp_path, capsys):
    bare = tmp_path / "no-template"
    shutil.copytree(standin_folders["qwen2.5"], bare)
    (bare / "chat_template.json").unlink()
    config = json.loads((bare / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (bare / "tokenizer_config.json").write_text(json.dumps(config))
    no_encoder = tmp_path / "no-text-encoder"
    shutil.copytree(standin_folders["wan2.1"], no_encoder)
    shutil.rmtree(no_encoder / "text_encoder")
    cases = [
        (["--lmm", bare, "--vdm", standin_folders["wan2.1"]], "has no chat template"),
        (["--lmm", standin_folders["qwen2.5"], "--vdm", no_encoder], "has no text_encoder/ and tokenizer/"),
        (["--lmm", standin_folders["qwen2.5"], "--vdm", standin_folders["wan2.1"], "--num-queries", "8"],
         "num_queries (--num-queries) has no use in director mode (--director)"),
    ]
    for args, message in cases:
        assert owl("init", "--director", *args, "--out", tmp_path / "x", *SMALL) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
        assert not (tmp_path / "x").exists()
    assert owl("init", "--instruction", "hi", "--lmm", standin_folders["qwen2.5"], "--vdm", standin_folders["wan2.1"],
               "--out", tmp_path / "x") == 2
    assert "an instruction (--instruction) is for director mode: add director=True (--director)" in \
        capsys.readouterr().err
    with pytest.raises(OwlError, match="has no chat template"):
        OwlPipeline.from_components(bare, standin_folders["wan2.1"], director=True, key_frame_size=56)


def test_one_sentence():
    assert one_sentence("\n\n The ball stops.  Then it  rolls.\nMore") == "The ball stops."
    assert one_sentence(" the ball   turns around ") == "the ball turns around"
    assert one_sentence("\n \n") == ""


def test_eval_shapes_compares_a_director_with_a_trained_folder(director_dir, standin_folders, tmp_path, capsys):
    """The command and the table's shape: with stand-in weights the figures themselves mean nothing."""
    from owl.data.shapes import generate_shapes

    generate_shapes(tmp_path / "shapes", videos=1, seconds=8, seed=5, clip_seconds=4)
    trained = tmp_path / "owl-trained"
    assert owl("init", "--lmm", standin_folders["qwen2.5"], "--vdm", standin_folders["wan2.1"], "--out", trained,
               "--num-queries", "8", *SMALL) == 0
    capsys.readouterr()
    out = tmp_path / "compare.json"
    assert owl("eval", "shapes", "--scenarios", tmp_path / "shapes" / "scenarios", "--model", director_dir,
               "--model", trained, "--steps", "1", "--out", out) == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("model  "):].splitlines()
    assert table[0].split() == ["model", "re-entry", "following", "bg@8s", "obj@8s", "palette", "flicker", "dynamic",
                                "s/scenario"]
    assert [line.split()[0] for line in table[2:4]] == [str(director_dir), str(trained)]
    report = json.loads(out.read_text())
    assert [r["settings"]["model"] for r in report["models"]] == [str(director_dir), str(trained)]
    for r in report["models"]:  # the same scenario, driven by its own script in both
        assert [c["dynamics"] for c in r["scenarios"][0]["storyboard"]] == \
            [c["dynamics"] for c in report["models"][0]["scenarios"][0]["storyboard"]]
    assert owl("eval", "shapes", "--scenarios", tmp_path / "shapes" / "scenarios", "--model", director_dir,
               "--probe", "--probe-train", tmp_path / "shapes" / "scenarios") == 2
    assert "is a director folder" in capsys.readouterr().err


def test_the_app_films_with_the_directors_proposal_and_shows_its_instruction(director, tmp_path):
    from owl.app import Progress, Studio

    studio = Studio(director, tmp_path / "worlds")
    world = studio.start(PROMPT, None, None, {"seed": 2, "num_inference_steps": 1, "do_sample": True}, Progress())
    proposal = world.propose()  # what the app's edit box shows: the director's next event
    world = studio.film(world.path.name, proposal, proposal, Progress())  # accepted unchanged
    assert world.clips[1].predicted and world.clips[1].dynamics == proposal != ""
    page = studio.storyboard_html(world)
    assert '<p class="owl-director"><b>Director</b>' in page and "You direct a long video" in page


def test_cpu_offload_brings_the_vlm_then_the_text_encoder(director_dir, director):
    """Model CPU offload (the CPU standing in for the accelerator): each clip brings the VLM, the text encoder, the
    transformer and the VAE in turn, and the video is the one made without offload; so is group offload's."""
    plain = director(PROMPT, seconds=2, **SAMPLED)
    pipe = OwlPipeline.from_pretrained(director_dir)
    pipe.enable_model_cpu_offload("cpu")
    seen = []
    onload = pipe._offload.onload
    pipe._offload.onload = lambda name: (seen.append(name), onload(name))
    out = pipe(PROMPT, seconds=2, **SAMPLED)
    assert np.array_equal(out.frames, plain.frames)
    swaps = [name for i, name in enumerate(seen) if i == 0 or seen[i - 1] != name]
    assert swaps == ["text_encoder", "transformer", "vae", "vlm", "text_encoder", "transformer", "vae"]
    grouped = OwlPipeline.from_pretrained(director_dir)
    grouped.enable_group_offload("cpu", offload_type="leaf_level")  # diffusers' hooks on the VLM and text encoder too
    assert np.array_equal(grouped(PROMPT, seconds=2, **SAMPLED).frames, plain.frames)
