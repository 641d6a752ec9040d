"""World sessions read back with checks: hand-edited settings, frames of another size, flipped bytes.

Each test edits a copy of one small saved session (4 s, image-to-video: the first image and clips 0 and 1) and
expects one OwlError line that names the session, the file or key, and what was expected; from the library and
from the CLI (`owl: error: ...`, exit 2, before any model loads where the settings are at fault).
"""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save

from owl import OwlError
from owl import cli
from owl.session import SessionFolder, session_path

PROMPT = "a red ball rolls left"


@pytest.fixture(scope="module")
def saved(tiny_pipe, tmp_path_factory):
    """A finished 4 s image-to-video session (64 x 64); tests edit copies of it, never it."""
    out = tmp_path_factory.mktemp("saved") / "a.mp4"
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:48, 16:48] = (230, 40, 40)
    tiny_pipe(PROMPT, seconds=4, image=image, output=out, session=session_path(out), progress=False)
    return session_path(out)


@pytest.fixture
def session(saved, tmp_path):
    """A copy of the saved session (its output video is not copied: nothing here reads it)."""
    return shutil.copytree(saved, tmp_path / "a.session")


def read_meta(session):
    return json.loads((session / "session.json").read_text())


def write_meta(session, meta):
    (session / "session.json").write_text(json.dumps(meta, indent=2))  # a float NaN is written as the literal NaN


def rewrite_file(session, name, key, array):
    """Replace one tensor of a session file and record the new file's checksum, as if Owl had written it."""
    path = session / name
    tensors = {**load_file(path), key: torch.from_numpy(array)}
    path.write_bytes(save(tensors))
    meta = read_meta(session)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if name == "start.safetensors":
        meta["image_sha256"] = digest
    else:
        meta["clips"][int(path.stem)]["sha256"] = digest
    write_meta(session, meta)


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # in the tensor data, past the header: the file still parses
    path.write_bytes(bytes(data))


def one_error(excinfo):
    message = str(excinfo.value)
    assert "\n" not in message, message
    return message


def test_checksums_are_recorded(session):
    meta = read_meta(session)
    assert meta["format"] == 3
    assert meta["image_sha256"] == hashlib.sha256((session / "start.safetensors").read_bytes()).hexdigest()
    files = sorted((session / "clips").iterdir())
    assert [c["sha256"] for c in meta["clips"]] == [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]


# --- settings -----------------------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("seconds", "abc", "seconds must be a number"),
    ("height", 64.5, "height must be a positive integer"),
    ("guidance_scale", "NaN", "guidance_scale must be a finite number"),
    ("guidance_scale", float("nan"), "guidance_scale must be a finite number"),  # the JSON literal NaN
    ("fps", float("inf"), "fps must be a number"),  # the JSON literal Infinity
    ("width", [64], "width must be a positive integer"),
    ("fps", None, "fps must be a number"),
    ("do_sample", "yes", "do_sample must be true or false"),
    ("colour", "red", "unknown key 'colour' (accepted: "),
]


@pytest.mark.parametrize("key, value, message", BAD_SETTINGS)
def test_a_bad_setting_is_refused_when_the_session_opens(session, key, value, message):
    meta = read_meta(session)
    meta["settings"][key] = value
    write_meta(session, meta)
    with pytest.raises(OwlError) as excinfo:
        SessionFolder.open(session)
    text = one_error(excinfo)
    assert f"session {str(session)!r} has bad settings in session.json" in text and message in text, text


def test_a_missing_setting_is_refused(session):
    meta = read_meta(session)
    del meta["settings"]["seed"]
    write_meta(session, meta)
    with pytest.raises(OwlError, match="'seed' is missing"):
        SessionFolder.open(session)


def test_a_bad_clip_entry_is_refused_when_the_session_opens(session):
    meta = read_meta(session)
    meta["clips"][1]["video_frames"] = "15"
    write_meta(session, meta)
    with pytest.raises(OwlError, match="clip entry 1 has video_frames = \"15\"; it must be a whole number >= 0"):
        SessionFolder.open(session)


@pytest.mark.parametrize("command", [
    ["generate", "--resume", "{session}", "--preset", "tiny", "--quiet"],
    ["branch", "{session}", "--at", "1", "--out", "{tmp}/b.mp4", "--preset", "tiny", "--quiet"],
    ["extend", "{session}", "--seconds", "1", "--out", "{tmp}/e.mp4", "--preset", "tiny", "--quiet"],
])
def test_the_cli_refuses_a_bad_setting_before_loading_a_model(session, tmp_path, capsys, monkeypatch, command):
    meta = read_meta(session)
    meta["settings"]["seconds"] = "abc"
    write_meta(session, meta)

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded for a session with bad settings")

    monkeypatch.setattr(cli, "load_pipeline", no_model)
    code = cli.main([a.format(session=session, tmp=tmp_path) for a in command])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("owl: error:"), err
    assert str(session) in err[0] and "seconds must be a number" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.session"]  # nothing written


# --- frames of another size ---------------------------------------------------------------------------------

def test_frames_of_another_size_than_the_settings_are_refused(session):
    meta = read_meta(session)
    meta["settings"]["height"] = meta["settings"]["width"] = 32  # valid settings, but not the files' size
    write_meta(session, meta)
    folder = SessionFolder.open(session)
    with pytest.raises(OwlError) as excinfo:
        folder.load_clip(1)
    text = one_error(excinfo)
    assert f"clip 1 of session {str(session)!r} (clips/000001.safetensors): frames of shape (16, 64, 64, 3) uint8, " \
           "expected (T, 32, 32, 3) uint8" in text, text
    with pytest.raises(OwlError, match=r"\(start.safetensors\): image of shape \(64, 64, 3\) uint8, expected "
                                       r"\(32, 32, 3\) uint8"):
        folder.image()


CLIP = "clips/000001.safetensors"


@pytest.mark.parametrize("name, key, array, found", [
    (CLIP, "frames", np.zeros((16, 32, 64, 3), np.uint8), "frames of shape (16, 32, 64, 3) uint8"),
    (CLIP, "key_frames", np.zeros((2, 64, 64, 4), np.uint8), "key frames of shape (2, 64, 64, 4) uint8"),
    (CLIP, "frames", np.zeros((16, 64, 64, 3), np.float32), "frames of shape (16, 64, 64, 3) float32"),
    (CLIP, "frames", np.zeros((0, 64, 64, 3), np.uint8), "frames of shape (0, 64, 64, 3) uint8"),
    ("start.safetensors", "image", np.zeros((64, 48, 3), np.uint8), "image of shape (64, 48, 3) uint8"),
])
def test_a_file_of_another_size_is_refused_at_load(session, name, key, array, found):
    rewrite_file(session, name, key, array)  # its checksum recorded: only the shape is wrong
    folder = SessionFolder.open(session)
    with pytest.raises(OwlError) as excinfo:
        folder.image() if name == "start.safetensors" else folder.load_clip(1)
    text = one_error(excinfo)
    assert f"({name}): {found}" in text and "expected (" in text and "64, 64, 3) uint8" in text, text


def test_a_clip_with_fewer_frames_than_its_record_is_refused(session):
    rewrite_file(session, CLIP, "frames", np.zeros((10, 64, 64, 3), np.uint8))
    with pytest.raises(OwlError, match=r"\(clips/000001.safetensors\): 10 frames, but session.json puts 15"):
        SessionFolder.open(session).load_clip(1)


# --- flipped bytes ------------------------------------------------------------------------------------------

def test_a_flipped_byte_in_a_clip_is_refused(session):
    flip_byte(session / "clips" / "000001.safetensors")
    folder = SessionFolder.open(session)  # opening reads no tensors
    folder.load_clip(0)
    with pytest.raises(OwlError) as excinfo:
        folder.load_clip(1)
    assert one_error(excinfo) == (f"clip 1 of session {str(session)!r} (clips/000001.safetensors) is damaged: "
                                  f"checksum mismatch; keep clips 0..0 with: owl branch {session} --at 1 "
                                  "(or generate the video again)")
    with pytest.raises(OwlError, match="checksum mismatch"):
        list(folder.video_frames())


@pytest.mark.parametrize("name, read", [
    ("clips/000000.safetensors", lambda folder: folder.load_clip(0)),
    ("start.safetensors", lambda folder: folder.image()),
])
def test_a_flipped_byte_in_clip_0_or_the_image_means_generating_again(session, name, read):
    flip_byte(session / name)
    with pytest.raises(OwlError, match=rf"\({name}\) is damaged: checksum mismatch; generate the video again$"):
        read(SessionFolder.open(session))


def test_the_cli_refuses_a_damaged_clip(session, tmp_path, capsys):
    flip_byte(session / "clips" / "000001.safetensors")
    code = cli.main(["extend", str(session), "--seconds", "1", "--out", str(tmp_path / "e.mp4"), "--preset", "tiny",
                     "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("owl: error: clip 1 of session"), err
    assert "checksum mismatch" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.session"]  # nothing written


def test_a_branch_before_the_damaged_clip_works_and_copies_only_verified_clips(tiny_pipe, session, tmp_path):
    flip_byte(session / "clips" / "000001.safetensors")
    result = tiny_pipe.branch(session, at=1, output=tmp_path / "b.mp4", progress=False)
    assert result.num_frames == 32
    fork = read_meta(session_path(tmp_path / "b.mp4"))
    assert fork["clips"][0]["sha256"] == read_meta(session)["clips"][0]["sha256"]
    with pytest.raises(OwlError, match=rf"clip 1 of session {str(session)!r} .* checksum mismatch"):
        tiny_pipe.branch(session, at=2, seconds=6, output=tmp_path / "c.mp4", progress=False)


def test_a_session_without_checksums_opens_unverified(session):
    """Format 1 sessions recorded no checksums: their files are read as they are."""
    meta = read_meta(session)
    meta["format"] = 1
    del meta["image_sha256"]
    for clip in meta["clips"]:
        del clip["sha256"]
    write_meta(session, meta)
    folder = SessionFolder.open(session)
    assert folder.image().shape == (64, 64, 3) and folder.load_clip(1).frames.shape == (16, 64, 64, 3)
    assert (folder.settings.max_observations, folder.settings.max_steps) == (0, 0)  # null then meant "keep all"
    (session / "clips" / "000001.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(OwlError, match=r"\(clips/000001.safetensors\) is damaged: not a safetensors file"):
        folder.load_clip(1)
