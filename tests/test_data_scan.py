"""Scene cuts and scores: hard cuts and fades found where they are, fast motion left alone, JSONL for ClipDataset."""

import argparse
import json

import numpy as np
import pytest

from owl.data import ClipDataset, generate_shapes
from owl.data.commands import add_data_commands
from owl.data.scan import ScanSettings, find_cuts, frame_features, scan_video, scan_videos
from owl.errors import OwlError
from owl.video_io import write_video

FPS = 8
HARD_CUTS = [24, 88]
DISSOLVE = range(56, 64)      # B -> C
FADE_THROUGH_BLACK = range(112, 124)  # D -> black -> E
FAST_MOTION = range(36, 56)   # a fast pan with a fast object, starting mid-shot


def texture(rng, palette, height, width, block=8):
    cells = rng.integers(len(palette), size=(height // block, width // block))
    return np.repeat(np.repeat(np.array(palette, np.uint8)[cells], block, 0), block, 1)


def cut_video(seed=0):
    """18 s at 8 fps, 64x64: shots A | B (still, then fast motion) / dissolve / C | D \\ black / E."""
    rng = np.random.default_rng(seed)
    frames = []
    a = texture(rng, [(200, 40, 40), (240, 200, 60), (120, 20, 20)], 64, 64)
    for i in range(24):  # A: still, a small square drifts
        f = a.copy()
        f[20:28, 10 + i:18 + i] = 255
        frames.append(f)
    b = texture(rng, [(30, 60, 200), (20, 160, 200), (10, 20, 80), (90, 90, 240)], 64, 320)
    for i in range(32):  # B: still for 1.5 s, then a 5 px/frame pan with a 7 px/frame object
        offset = 0 if i < 12 else (i - 12) * 5
        f = b[:, offset:offset + 64].copy()
        if i >= 12:
            x = (i - 12) * 7 % 48
            f[30:46, x:x + 16] = 250
        frames.append(f)
    c = texture(rng, [(40, 180, 60), (220, 220, 220), (10, 90, 30)], 64, 64)
    last = frames[-1].astype(float)
    for i in range(8):  # dissolve B -> C over 1 s
        w = (i + 1) / 9
        frames.append(((1 - w) * last + w * c).round().astype(np.uint8))
    frames += [c] * 24
    d = texture(rng, [(160, 60, 200), (250, 140, 20), (60, 20, 80)], 64, 64)
    frames += [d] * 24
    e = texture(rng, [(250, 250, 60), (240, 120, 200), (90, 200, 250)], 64, 64)
    frames += [(d * (1 - (i + 1) / 6)).round().astype(np.uint8) for i in range(6)]  # fade out
    frames += [(e * ((i + 1) / 6)).round().astype(np.uint8) for i in range(6)]      # fade in
    frames += [e] * 20
    return np.stack(frames)


def check_cuts(cuts):
    hard = [c.frame for c in cuts if c.kind == "hard"]
    gradual = [c for c in cuts if c.kind == "gradual"]
    assert hard == HARD_CUTS
    assert len(gradual) == 2
    for cut, transition in zip(gradual, [DISSOLVE, FADE_THROUGH_BLACK]):
        # the new shot starts after the transition, whose frames belong to neither shot
        assert abs(cut.frame - transition.stop) <= 1 and abs(cut.frame - cut.transition - transition.start) <= 1
    assert not any(c.frame in FAST_MOTION for c in cuts)


@pytest.fixture(scope="module")
def cut_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "cuts.mp4"
    write_video(path, cut_video(), fps=FPS)
    return path


def test_cuts_in_memory():
    check_cuts(find_cuts(frame_features([cut_video()]), FPS))


def test_cuts_and_scores_from_file(cut_file):
    rows = scan_video(cut_file)
    assert [r["cut"] for r in rows] == ["start", "hard", "gradual", "hard", "gradual"]
    spans = [(r["start"], r["end"]) for r in rows]
    assert spans == [(0.0, 3.0), (3.0, 7.25), (8.0, 11.0), (11.0, 14.0), (15.5, 18.0)]
    motion = [r["motion"] for r in rows]
    assert motion[1] > 0.1 and max(motion[:1] + motion[2:]) < 0.02  # only B moves
    assert all(0 <= r["brightness"] <= 1 and r["sharpness"] > 0 and r["caption"] == "" for r in rows)
    assert rows[-1]["brightness"] > rows[3]["brightness"]  # E is the brightest shot


def test_blur_lowers_sharpness(tmp_path):
    rng = np.random.default_rng(1)
    sharp = texture(rng, [(0, 0, 0), (255, 255, 255)], 64, 64, block=4)
    blurred = sharp.astype(float)
    for _ in range(4):  # box blur
        blurred = (blurred + np.roll(blurred, 1, 0) + np.roll(blurred, 1, 1) + np.roll(blurred, (1, 1), (0, 1))) / 4
    write_video(tmp_path / "sharp.mp4", np.stack([sharp] * 16), fps=8)
    write_video(tmp_path / "blurred.mp4", np.stack([blurred.round().astype(np.uint8)] * 16), fps=8)
    assert scan_video(tmp_path / "sharp.mp4")[0]["sharpness"] > 2 * scan_video(tmp_path / "blurred.mp4")[0]["sharpness"]


def test_shapes_world_has_no_cuts(tmp_path):
    generate_shapes(tmp_path, videos=3, seconds=12, seed=4, size=64)
    rows = scan_videos(tmp_path, tmp_path / "scan.jsonl")
    assert [(r["start"], r["end"], r["cut"]) for r in rows] == [(0.0, 12.0, "start")] * 3


def test_jsonl_feeds_clip_dataset(cut_file, tmp_path):
    out = tmp_path / "clips.jsonl"
    rows = scan_videos(cut_file.parent, out)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == rows and written[0]["video"] == str(cut_file)  # outside out's folder: absolute
    moving = ClipDataset(out, num_frames=8, fps=4, size=(32, 32), min_scores={"motion": 0.1})
    assert len(moving) == 1 and moving.items[0]["start"] == 3.0
    still = ClipDataset(out, num_frames=8, fps=4, size=(32, 32), max_scores={"motion": 0.1})
    assert len(still) == 4 and still[0]["frames"].shape == (3, 8, 32, 32)


def test_floors_are_settings(cut_file):
    rows = scan_video(cut_file, ScanSettings(floor=2.0, gradual_floor=2.0))
    assert [(r["start"], r["end"], r["cut"]) for r in rows] == [(0.0, 18.0, "start")]


def test_scan_errors(tmp_path):
    with pytest.raises(OwlError, match="does not exist"):
        scan_videos(tmp_path / "nothing", tmp_path / "out.jsonl")
    with pytest.raises(OwlError, match="no videos"):
        scan_videos(tmp_path, tmp_path / "out.jsonl")
    (tmp_path / "bad.mp4").write_text("no")
    with pytest.raises(OwlError, match="bad.mp4"):
        scan_videos(tmp_path, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        assert scan_videos(tmp_path, tmp_path / "out.jsonl", skip_invalid=True) == []
    with pytest.raises(OwlError, match=".jsonl"):
        scan_videos(tmp_path, tmp_path / "out.csv")


def test_cli_scan(cut_file, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="owl")
    add_data_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "scan", str(cut_file), "--out", str(tmp_path / "scan.jsonl"),
                              "--min-seconds", "3.5"])
    assert args.func(args) == 0
    assert "wrote 1 clips of 1 videos" in capsys.readouterr().out  # only B lasts 3.5 s or more
    assert len((tmp_path / "scan.jsonl").read_text().splitlines()) == 1
