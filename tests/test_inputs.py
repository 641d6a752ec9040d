"""Inputs a new user gets wrong: each is one `owl: error:` line, exit 2, nothing left behind; checked before a
model loads where it can be. Also: Owl's commands print Owl's lines only, and two runs never share an output."""

import json
import struct
import subprocess
import sys
import zlib

import pytest

from owl.cli import main
from owl.errors import OwlError
from owl.files import output_lock


def owl(*args) -> int:
    """`owl ARGS` in-process: its exit code (argparse's own mistakes exit through SystemExit)."""
    try:
        return main(list(args))
    except SystemExit as exc:
        return exc.code


def one_error_line(capsys, pattern):
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("owl: error:"), err
    assert pattern in err[0], err[0]
    assert not captured.out.strip(), captured.out


def leftovers(folder, keep=()):
    """Whatever a failed command left in `folder` besides the inputs the test put there."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def png_header(path, width, height):
    """A PNG that declares width x height pixels (and holds one row of data): PIL checks the size on open."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture
def broken_model(tmp_path):
    """A folder that passes the index check but whose weights cannot load: a command that reports a settings or
    output mistake with it has checked that before loading."""
    folder = tmp_path / "model"
    from owl.loading import COMPONENTS

    for name in COMPONENTS:
        (folder / name).mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "OwlPipeline", "components": list(COMPONENTS)}))
    return folder


@pytest.mark.parametrize("args, message", [
    (["--device", "gpu7"], "unknown device 'gpu7'; accepted: auto, cpu, cuda, cuda:N or mps"),
    (["--device", "cuda:99"], "device 'cuda:99': this machine has"),
    (["--guidance", "nan"], "--guidance: guidance_scale must be a finite number from 1"),
    (["--guidance", "inf"], "--guidance: guidance_scale must be a finite number from 1"),
    (["--seconds", "nan"], "--seconds: seconds must be a number > 0 and <= 3600"),
    (["--fps", "inf"], "--fps: fps must be a number from 1 to 120"),
    (["--height", "4096"], "height must be a multiple of 16 from 16 to 1024 for this model"),
    (["--width", "1040"], "width must be a multiple of 16 from 16 to 1024 for this model"),
    (["--memory", "half"], "argument --memory: invalid choice: 'half'"),
    (["--seconds", "abc"], "argument --seconds: invalid float value: 'abc'"),
])
def test_bad_settings_get_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "out.mp4"
    code = owl(*["generate", "--prompt", "a ball", "--preset", "tiny", "--quiet", "--out", str(out), *args])
    assert code == 2
    one_error_line(capsys, message)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (["--guidance", "nan"], "guidance_scale must be a finite number"),
    (["--steps", "0"], "num_inference_steps must be an integer from 1 to 1000"),
    (["--out", "{tmp}"], "output must be an .mp4 path"),
    (["--out", "{tmp}/missing/out.mp4"], "output folder does not exist"),
    (["--image", "{tmp}/none.png"], "image not found"),
])
def test_settings_and_paths_are_checked_before_the_model_loads(tmp_path, capsys, broken_model, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert owl(*["generate", "--prompt", "a ball", "--model", str(broken_model), "--quiet",
                 "--out", str(tmp_path / "out.mp4"), *args]) == 2
    one_error_line(capsys, message)  # not "cannot load component ...": the model was never loaded


def test_out_naming_a_folder_or_an_unwritable_place(tmp_path, capsys):
    folder = tmp_path / "video.mp4"
    folder.mkdir()
    assert owl(*["generate", "--prompt", "a ball", "--preset", "tiny", "--quiet", "--out", str(folder)]) == 2
    one_error_line(capsys, "is a folder; give a file path ending in .mp4")
    assert leftovers(tmp_path) == ["video.mp4"] and leftovers(folder) == []
    # /proc refuses new files even to root (these tests run as root in CI, where permission bits do not bind)
    assert owl(*["generate", "--prompt", "a ball", "--preset", "tiny", "--quiet", "--out", "/proc/owl.mp4"]) == 2
    one_error_line(capsys, "cannot write to the output folder '/proc'")


def test_an_image_over_the_decompression_bomb_limit(tmp_path, capsys):
    from PIL import Image

    side = int((2 * Image.MAX_IMAGE_PIXELS) ** 0.5) + 2  # past twice the limit: PIL raises, below it only warns
    bomb = png_header(tmp_path / "bomb.png", side, side)
    assert owl(*["generate", "--prompt", "a ball", "--preset", "tiny", "--quiet", "--image", str(bomb),
                 "--out", str(tmp_path / "out.mp4")]) == 2
    one_error_line(capsys, "is too large: more than")
    warned = png_header(tmp_path / "big.png", side // 2 + 1, side)  # between the limit and twice it
    assert owl(*["generate", "--prompt", "a ball", "--preset", "tiny", "--quiet", "--image", str(warned),
                 "--out", str(tmp_path / "out.mp4")]) == 2
    one_error_line(capsys, "is too large: more than")
    assert leftovers(tmp_path) == ["big.png", "bomb.png"]


def test_a_timeline_that_ends_at_infinity(tmp_path, capsys):
    script = tmp_path / "timeline.yaml"
    script.write_text("- {start: 0, end: .inf, dynamics: the ball rolls on}\n")
    assert owl(*["generate", "--prompt", "a ball", "--preset", "tiny", "--quiet", "--script", str(script),
                 "--out", str(tmp_path / "out.mp4")]) == 2
    one_error_line(capsys, "end must be a finite number of seconds, got inf")
    assert leftovers(tmp_path) == ["timeline.yaml"]


@pytest.mark.parametrize("index, message", [
    ("garbage{", "model_index.json' is not valid JSON"),
    ('["OwlPipeline"]', "describes 'list', not an Owl pipeline"),
    ('{"_class_name": "WanPipeline"}', "describes 'WanPipeline', not an Owl pipeline"),
    ('{"_class_name": "OwlPipeline", "components": ["vlm"]}', "lists components ['vlm']"),
])
def test_a_model_folder_whose_index_is_not_an_owl_pipelines(tmp_path, capsys, broken_model, index, message):
    (broken_model / "model_index.json").write_text(index)
    assert owl(*["generate", "--prompt", "a ball", "--model", str(broken_model), "--quiet",
                 "--out", str(tmp_path / "out.mp4")]) == 2
    one_error_line(capsys, message)
    from owl import OwlPipeline

    with pytest.raises(OwlError, match=message.replace("[", r"\[").replace("]", r"\]")):
        OwlPipeline.from_pretrained(broken_model)


def test_extend_never_overwrites_its_source(tmp_path, capsys, tiny_pipe):
    src = tmp_path / "src.mp4"
    tiny_pipe("a ball", seconds=2, output=src, progress=False)
    before = src.read_bytes()
    assert owl(*["extend", str(src), "--seconds", "2", "--out", str(src), "--preset", "tiny", "--quiet"]) == 2
    one_error_line(capsys, "would overwrite the source it extends")
    with pytest.raises(OwlError, match="would overwrite the source it extends"):
        tiny_pipe.extend(src, seconds=2, output=src, progress=False)
    assert src.read_bytes() == before and leftovers(tmp_path) == ["src.mp4"]


def test_a_second_run_on_the_same_output_is_refused(tmp_path, capsys, tiny_pipe):
    out = tmp_path / "out.mp4"
    with output_lock(out):  # as a first run holds it while it films
        assert owl(*["generate", "--prompt", "a ball", "--preset", "tiny", "--quiet", "--seconds", "2",
                     "--out", str(out)]) == 2
        one_error_line(capsys, f"another Owl process is writing {str(out)!r}")
        with pytest.raises(OwlError, match="another Owl process is writing"):
            tiny_pipe("a ball", seconds=2, output=out, progress=False)
        assert not out.exists()
    result = tiny_pipe("a ball", seconds=2, output=out, progress=False)  # released: the next run goes ahead
    assert result.path == out and out.is_file() and leftovers(tmp_path) == ["out.mp4"]


def test_the_api_checks_its_settings_in_the_same_place(tiny_pipe, tmp_path):
    for kwargs, message in [(dict(guidance_scale=float("nan")), "guidance_scale must be a finite number"),
                            (dict(seconds=float("inf")), "seconds must be a number > 0"),
                            (dict(height=4096), "height must be a multiple of 16 from 16 to 1024"),
                            (dict(seed=-1), "seed must be an integer from 0")]:
        with pytest.raises(OwlError, match=message):
            tiny_pipe("a ball", progress=False, output=tmp_path / "out.mp4", **kwargs)
    with pytest.raises(OwlError, match="unknown device 'gpu7'"):
        type(tiny_pipe).from_preset("tiny", device="gpu7")
    assert leftovers(tmp_path) == []


def test_generate_prints_one_line_and_no_library_warning(tmp_path):
    """The README's first command, as a user runs it (no --quiet): Owl's one line, nothing from the libraries,
    on whichever transformers / diffusers versions are installed."""
    out = tmp_path / "x.mp4"
    run = subprocess.run([sys.executable, "-m", "owl.cli", "generate", "--preset", "tiny", "--prompt", "a ball",
                          "--seconds", "4", "--out", str(out)], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path)
    lines = (run.stdout + run.stderr).strip().splitlines()
    assert run.returncode == 0 and lines == [f"wrote {out} (4.00 s, 32 frames at 8 fps); storyboard "
                                             f"{out.with_suffix('.storyboard.json')}"], lines


def test_library_warnings_still_reach_python_outside_owls_commands():
    """Owl's commands keep library noise off the terminal only while they run; nothing is silenced for callers."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert owl(*["generate", "--device", "gpu7", "--prompt", "x"]) == 2
        warnings.warn("a library's notice", FutureWarning)
    assert [str(w.message) for w in caught] == ["a library's notice"]
