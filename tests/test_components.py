"""An Owl model from published checkpoint layouts: stand-in Qwen-VL and Wan folders (tests/standins.py: the official
layouts and token ids, small widths, random weights) -> `owl init` -> one step of each training stage in bf16 and
fp32 -> `owl generate --model`; `OwlPipeline.from_components` from Python; what is not supported is refused."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from owl import OwlPipeline
from owl.cli import main
from owl.errors import OwlError
from standins import qwen2_5_vl_folder, qwen2_vl_folder, qwen3_vl_folder, wan2_1_folder, wan2_2_ti2v_folder

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "real"
SMALL = ["--num-queries", "8", "--key-frame-size", "56", "--clip-seconds", "1", "--fps", "8",
         "--height", "64", "--width", "64"]
SMALL_KW = dict(num_queries=8, key_frame_size=56, clip_seconds=1, fps=8, height=64, width=64, num_inference_steps=2)


def owl(*args) -> int:
    try:
        return main([str(a) for a in args])
    except SystemExit as exc:
        return exc.code


@pytest.fixture(scope="module")
def folders(standin_folders):
    return standin_folders


@pytest.fixture(scope="module")
def owl_models(folders, tmp_path_factory):
    """`owl init` of Qwen2.5-VL with each Wan, made once per module: {"wan2.1": folder, "wan2.2": folder}."""
    made = {}

    def init(vdm: str):
        if vdm not in made:
            out = tmp_path_factory.mktemp("owl") / f"owl-{vdm}"
            assert owl("init", "--lmm", folders["qwen2.5"], "--vdm", folders[vdm], "--out", out, *SMALL) == 0
            made[vdm] = out
        return made[vdm]
    return init


@pytest.fixture(scope="module")
def initialized(owl_models):
    return owl_models("wan2.1")


def test_init_reads_every_dimension_from_the_folders(initialized, folders, capsys):
    pipe = OwlPipeline.from_pretrained(initialized)
    wm, r = pipe.world_model, pipe.renderer
    lmm = json.loads((folders["qwen2.5"] / "config.json").read_text())
    assert wm.vlm.config.image_token_id == 151655 and wm.vision_start_id == 151652 and wm.vision_end_id == 151653
    assert wm.dynamics_end_id == 151645  # <|im_end|>, the real id
    assert r.config.state_dim == lmm.get("text_config", lmm)["hidden_size"] == wm.hidden_size
    transformer = json.loads((folders["wan2.1"] / "transformer" / "config.json").read_text())
    assert r.projector.proj[-1].out_features == transformer["text_dim"]
    assert r.vae.config.z_dim == 16 and r.spatial_scale == 8
    scheduler = json.loads((folders["wan2.1"] / "scheduler" / "scheduler_config.json").read_text())
    assert r.config.flow_shift == scheduler["flow_shift"] == pipe.renderer.scheduler.config.shift
    assert (r.config.fps, r.config.height, r.config.width, r.frames_per_clip(False)) == (8, 64, 64, 8)
    # the backbones' weights are the folders' own, untouched
    from safetensors.torch import load_file

    saved = load_file(folders["wan2.1"] / "transformer" / "diffusion_pytorch_model.safetensors")
    name = next(iter(saved))
    assert torch.equal(r.transformer.state_dict()[name].to(saved[name].dtype), saved[name])


STAGES = """
import sys
from owl.cli import main
model, data, out, precision = sys.argv[1:]
for stage in ("align", "generate", "world"):
    code = main(["train", stage, "--config", f"{CONFIGS}/{stage}.yaml", "--set", f"model={model}",
                 "--set", f"data={data}", "--set", f"output_dir={out}/{stage}", "--set", "steps=1",
                 "--set", "batch_size=1", "--set", f"mixed_precision={precision}", "--set", "warmup_steps=1",
                 "--set", "clips_per_sample=2" if stage == "world" else "save_every=1", "--quiet"])
    assert code == 0, stage
    model = f"{out}/{stage}/model"
"""


@pytest.mark.parametrize("vdm, precision", [("wan2.1", "bf16"), ("wan2.1", "no"), ("wan2.2", "bf16"), ("wan2.2", "no")])
def test_stages_train_and_generate(owl_models, tmp_path, capsys, vdm, precision):
    """configs/real/ at toy steps: LoRA rank 8 on the LMM, gradient checkpointing, and bf16 autocast or fp32. A
    process holds one accelerate precision, as `owl train` does: the stages run in a process of their own."""
    import subprocess
    import sys

    data = tmp_path / "data"
    assert owl("data", "shapes", "--out", data, "--videos", "2", "--seconds", "4", "--seed", "0", "--size", "64",
               "--fps", "8") == 0
    configs = CONFIGS / "ti2v-5b" if vdm == "wan2.2" else CONFIGS  # the 5B variant's stage files
    run = subprocess.run([sys.executable, "-c", STAGES.replace("{CONFIGS}", str(configs)), str(owl_models(vdm)),
                          str(data / "captions.json"), str(tmp_path), precision], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    capsys.readouterr()
    dtype = "bfloat16" if precision == "bf16" else "float32"
    video = tmp_path / f"{dtype}.mp4"
    assert owl("generate", "--model", tmp_path / "world" / "model", "--prompt", "a red ball rolls left",
               "--seconds", "2", "--steps", "2", "--dtype", dtype, "--out", video, "--quiet", "--no-session") == 0
    assert capsys.readouterr().out.startswith(f"wrote {video} (2.00 s, 16 frames at 8 fps)")


@pytest.mark.parametrize("lmm, vdm, key_frame_size", [
    (qwen2_vl_folder, wan2_2_ti2v_folder, 56), (qwen2_5_vl_folder, wan2_2_ti2v_folder, 56),
    (qwen3_vl_folder, wan2_1_folder, 64),  # Qwen3-VL: 16 px patches, so key frames are a multiple of 32
])
def test_from_components_in_python(tmp_path, lmm, vdm, key_frame_size):
    pipe = OwlPipeline.from_components(lmm(tmp_path / "lmm"), vdm(tmp_path / "vdm"),
                                       **{**SMALL_KW, "key_frame_size": key_frame_size})
    assert pipe.world_model.vision_start_id == 151652 and pipe.world_model.dynamics_end_id == 151645
    r = pipe.renderer
    if vdm is wan2_2_ti2v_folder:  # 48 latent channels, 16x spatial VAE
        assert r.vae.config.z_dim == 48 and r.spatial_scale == 16 and r.size_multiple == 32
    out = pipe("a red ball rolls left", seconds=2, progress=False)
    assert out.frames.shape == (16, 64, 64, 3)
    pipe.save_pretrained(tmp_path / "owl")
    again = OwlPipeline.from_pretrained(tmp_path / "owl", torch_dtype=torch.bfloat16)
    assert again("a red ball rolls left", seconds=2, progress=False).frames.shape == (16, 64, 64, 3)


def test_what_is_not_supported_is_refused_in_one_line(folders, tmp_path, capsys):
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama"}))
    i2v = tmp_path / "i2v"
    shutil.copytree(folders["wan2.1"], i2v)
    index = json.loads((i2v / "model_index.json").read_text())
    (i2v / "model_index.json").write_text(json.dumps({**index, "_class_name": "WanImageToVideoPipeline"}))
    pickled = tmp_path / "pickled"
    shutil.copytree(folders["qwen2.5"], pickled)
    for f in pickled.glob("model*.safetensors*"):
        f.rename(f.with_name("pytorch_model.bin"))
    cases = [(llama, folders["wan2.1"], "holds a 'llama' model; supported: Qwen2-VL, Qwen2.5-VL, Qwen3-VL"),
             (folders["qwen2.5"], i2v, "is a 'WanImageToVideoPipeline'; supported"),
             (pickled, folders["wan2.1"], "has no safetensors weights"),
             (folders["qwen2.5"], tmp_path / "none", "VDM folder not found")]
    for lmm, vdm, message in cases:
        out = tmp_path / "out"
        assert owl("init", "--lmm", lmm, "--vdm", vdm, "--out", out, *SMALL) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
        assert not out.exists() and not list(tmp_path.glob(".out*"))
    with pytest.raises(OwlError, match="key_frame_size must be a multiple of 28"):
        OwlPipeline.from_components(folders["qwen2.5"], folders["wan2.1"], **{**SMALL_KW, "key_frame_size": 50})
    # an Owl command given a checkpoint folder says how to make an Owl model of it
    assert owl("generate", "--model", folders["qwen2.5"], "--prompt", "x", "--out", tmp_path / "x.mp4") == 2
    assert "owl init --lmm" in capsys.readouterr().err


def test_the_papers_align_target_reads_wans_own_text_encoder(initialized, folders, tmp_path):
    """align_target text_encoder from the Wan folder as published: UMT5 from text_encoder/, its tokenizer from the
    sibling tokenizer/; the projected state learns to match the encoder's features (the loss falls)."""
    data = tmp_path / "data"
    assert owl("data", "shapes", "--out", data, "--videos", "2", "--seconds", "4", "--seed", "0", "--size", "64",
               "--fps", "8") == 0
    out = tmp_path / "align"
    assert owl("train", "align", "--config", CONFIGS / "align.yaml", "--set", f"model={initialized}",
               "--set", f"data={data / 'captions.json'}", "--set", f"output_dir={out}", "--set", "steps=6",
               "--set", "batch_size=2", "--set", "mixed_precision=no", "--set", "warmup_steps=1",
               "--set", "align_target=text_encoder", "--set", f"text_encoder={folders['wan2.1']}",
               "--set", "lr_projector=1e-2", "--set", "fixed_batch=true", "--quiet") == 0
    losses = [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert owl("train", "align", "--config", CONFIGS / "align.yaml", "--set", f"model={initialized}",
               "--set", f"data={data / 'captions.json'}", "--set", f"output_dir={tmp_path / 'bad'}",
               "--set", "align_target=text_encoder", "--set", f"text_encoder={folders['qwen2.5']}", "--quiet") == 2


def test_real_size_on_the_meta_device(tmp_path):
    """Qwen2.5-VL-3B + Wan2.1-T2V-1.3B at their published shapes (no weights: the meta device) assemble with the
    real token ids, and their parameter counts are the published models' (3.75B, 1.4B)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer, Qwen2VLImageProcessorPil

    from owl.components import OwlChoices, assemble
    from owl.config import PRESETS

    preset = PRESETS["qwen2.5-vl-3b+wan2.1-1.3b"]
    folder = qwen2_5_vl_folder(tmp_path / "qwen")  # the tokenizer and processor, with the real ids
    tokenizer, processor = AutoTokenizer.from_pretrained(folder), Qwen2VLImageProcessorPil.from_pretrained(folder)
    with torch.device("meta"):
        vlm = AutoModelForImageTextToText.from_config(AutoConfig.for_model(**preset.vlm))
        transformer = WanTransformer3DModel(**preset.transformer)
        vae = AutoencoderKLWan()
        pipe = assemble(vlm, tokenizer, processor, transformer, vae, 3.0, OwlChoices())
    wm, r = pipe.world_model, pipe.renderer
    assert (wm.vision_start_id, wm.vision_end_id, wm.dynamics_end_id) == (151652, 151653, 151645)
    assert wm.vlm.config.image_token_id == 151655
    count = lambda module: sum(p.numel() for p in module.parameters())
    assert 3.70e9 < count(wm.vlm) < 3.80e9  # Qwen2.5-VL-3B-Instruct: 3.75B
    assert 1.35e9 < count(r.transformer) < 1.45e9  # Wan2.1-T2V-1.3B
    assert wm.state_queries.shape == (128, 2048) and r.projector.proj[-1].out_features == 4096
    assert (r.config.height, r.config.width, r.config.fps, r.frames_per_clip(False)) == (480, 832, 16, 80)


def test_stages_1_and_2_read_a_caption_clip_table(initialized, tmp_path, capsys):
    """WebVid / Panda-70M style rows (video, caption, start, end) feed align and generate, one clip per row; the
    world stage, which needs several captioned clips per video, refuses a table in one line."""
    import csv

    data = tmp_path / "data"
    assert owl("data", "shapes", "--out", data, "--videos", "2", "--seconds", "8", "--seed", "0", "--size", "64",
               "--fps", "8") == 0
    table = data / "clips.csv"
    captions = json.loads((data / "captions.json").read_text())
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "caption", "start", "end"])
        for video_id, entry in captions.items():
            for (start, end), sentence in zip(entry["timestamps"], entry["sentences"]):
                writer.writerow([f"{video_id}.mp4", sentence, start, end])
    model = initialized
    for stage in ("align", "generate"):
        out = tmp_path / stage
        assert owl("train", stage, "--config", CONFIGS / f"{stage}.yaml", "--set", f"model={model}",
                   "--set", f"data={table}", "--set", f"output_dir={out}", "--set", "steps=1", "--set", "batch_size=2",
                   "--set", "mixed_precision=no", "--set", "warmup_steps=1", "--quiet") == 0, stage
        model = out / "model"
    assert list((data / ".owl-latents").rglob("*.safetensors"))  # generate cached each row's latents
    capsys.readouterr()
    assert owl("train", "world", "--config", CONFIGS / "world.yaml", "--set", f"model={model}",
               "--set", f"data={table}", "--set", f"output_dir={tmp_path / 'world'}", "--quiet") == 2
    assert "stage world needs dense captions" in capsys.readouterr().err


def test_a_real_size_preset_takes_the_real_tokenizer(tmp_path):
    """from_preset(tokenizer=FOLDER) builds the real shapes with random weights and the real special-token ids (the
    built-in tokenizer's ids otherwise; benchmarks/vs_wan.py --tokenizer passes the folder)."""
    folder = qwen2_5_vl_folder(tmp_path / "qwen")
    pipe = OwlPipeline.from_preset("qwen2.5-vl-3b+wan2.1-1.3b", device="meta", tokenizer=folder)
    config = pipe.world_model.vlm.config
    assert (config.image_token_id, config.video_token_id, config.vision_start_token_id) == (151655, 151656, 151652)
    assert pipe.world_model.dynamics_end_id == 151645
    with pytest.raises(OwlError, match="tokenizer folder not found"):
        OwlPipeline.from_preset("qwen2.5-vl-3b+wan2.1-1.3b", device="meta", tokenizer=tmp_path / "none")
