"""`owl generate`: the happy path, and every bad input gets one line, exit 2, and nothing at --out."""

import json
import shutil
import subprocess
import sys

import pytest
from safetensors.torch import load_file, save_file

from owl.cli import main


def generate(tmp_path, *args):
    return main(["generate", "--out", str(tmp_path / "out.mp4"), "--quiet", *args])


def only_one_error_line(capsys, pattern):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("owl: error:"), err
    assert pattern in err[0], err[0]


def nothing_written(tmp_path):
    return not any(p.suffix in (".mp4", ".json") for p in tmp_path.iterdir())


def test_generate_writes_video_and_storyboard(tmp_path, capsys):
    assert generate(tmp_path, "--preset", "tiny", "--prompt", "a red ball rolls left", "--seconds", "6",
                    "--dynamics", "the ball moves right.; ") == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"wrote {tmp_path / 'out.mp4'} (6.00 s, 48 frames at 8 fps)")
    board = json.loads((tmp_path / "out.storyboard.json").read_text())
    assert [c["predicted"] for c in board["clips"]] == [False, False, True]
    assert board["clips"][1]["dynamics"] == "the ball moves right."


def test_script_file(tmp_path):
    script = tmp_path / "script.yaml"
    script.write_text("dynamics:\n  - the ball moves up.\n  - the ball stops.\n")
    assert generate(tmp_path, "--preset", "tiny", "--prompt", "a ball", "--seconds", "6", "--script", str(script)) == 0
    board = json.loads((tmp_path / "out.storyboard.json").read_text())
    assert [c["dynamics"] for c in board["clips"]] == ["a ball", "the ball moves up.", "the ball stops."]


@pytest.mark.parametrize("args, message", [
    (["--prompt", "x", "--image", "/nonexistent.png"], "image not found"),
    (["--prompt", "x", "--seconds", "0"], "seconds must be a number > 0 and <= 3600"),
    (["--prompt", "x", "--seconds", "4000"], "seconds must be a number > 0 and <= 3600"),
    (["--prompt", "x", "--height", "72"], "height must be a multiple of 16 from 16 to 1024"),
    (["--prompt", "x", "--width", "8"], "width must be a multiple of 16 from 16 to 1024"),
    (["--prompt", "   "], "prompt is empty"),
    (["--prompt", "x", "--steps", "0"], "num_inference_steps must be an integer from 1 to 1000"),
    (["--prompt", "x", "--preset", "huge"], "unknown preset 'huge'; accepted:"),
    (["--prompt", "x", "--max-observations", "-1"], "max_observations must be a whole number >= 0"),
])
def test_bad_input(tmp_path, capsys, args, message):
    if "--preset" not in args:
        args = [*args, "--preset", "tiny"]
    assert generate(tmp_path, *args) == 2
    only_one_error_line(capsys, message)
    assert nothing_written(tmp_path)


def test_unreadable_image(tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image at all")
    assert generate(tmp_path, "--preset", "tiny", "--prompt", "x", "--image", str(bad)) == 2
    only_one_error_line(capsys, "cannot read image")
    assert nothing_written(tmp_path)


@pytest.mark.parametrize("content, message", [
    ("dynamics: [1, 2]", "must hold a non-empty list"),
    ("{not: [valid", "neither valid JSON nor YAML"),
    ("steps: [a]", "unknown key(s) ['steps']"),
    ("[]", "must hold a non-empty list"),
])
def test_invalid_script(tmp_path, capsys, content, message):
    script = tmp_path / "s.yaml"
    script.write_text(content)
    assert generate(tmp_path, "--preset", "tiny", "--prompt", "x", "--script", str(script)) == 2
    only_one_error_line(capsys, message)
    assert nothing_written(tmp_path)


def test_model_missing_a_component(tmp_path, capsys, tiny_dir):
    broken = tmp_path / "model"
    shutil.copytree(tiny_dir, broken)
    shutil.rmtree(broken / "vae")
    assert generate(tmp_path, "--model", str(broken), "--prompt", "x") == 2
    only_one_error_line(capsys, "missing component(s) ['vae']")


@pytest.mark.parametrize("component, weights", [("renderer", "model.safetensors"), ("vlm", "model.safetensors"),
                                                ("transformer", "diffusion_pytorch_model.safetensors")])
def test_model_config_not_matching_weights(tmp_path, capsys, tiny_dir, component, weights):
    broken = tmp_path / "model"
    shutil.copytree(tiny_dir, broken)
    path = broken / component / weights
    tensors = load_file(path)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name][..., :1].contiguous()  # a shape the config does not describe
    save_file(tensors, path)
    assert generate(tmp_path, "--model", str(broken), "--prompt", "x") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("owl: error:") and component in err[0], err
    assert nothing_written(tmp_path)


def test_interrupt_leaves_nothing_at_out(tmp_path, tiny_pipe):
    def stop(event):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_pipe("a ball", seconds=6, output=tmp_path / "out.mp4", callback=stop, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_console_script_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "owl.cli", "generate", "--preset", "tiny", "--prompt", "",
                           "--out", str(tmp_path / "o.mp4")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "owl: error: prompt is empty; text-to-video needs a prompt (image-to-video may leave it empty)"


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "generate" in capsys.readouterr().out
