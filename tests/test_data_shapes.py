"""Shapes World: exact palette pixels, tracks that match them, the story's rules, determinism, files and CLI."""

import argparse
import json

import numpy as np
import pytest
from PIL import Image

from owl.data.commands import add_data_commands, main
from owl.data.shapes import BACKGROUND, PALETTE, SHAPES, generate_shapes, render_video
from owl.errors import OwlError
from owl.video_io import read_video, video_info


@pytest.fixture(scope="module")
def videos():
    return [render_video(seed=7, index=i, seconds=24, size=64, fps=8) for i in range(24)]


def test_frames_are_flat_palette_colours(videos):
    allowed = {tuple(c) for c in PALETTE.values()} | {tuple(BACKGROUND)}
    assert len(PALETTE) == 6 and len(set(PALETTE.values())) == 6 and set(SHAPES) >= {"circle", "square", "triangle"}
    for video in videos[:6]:
        assert video.frames.shape == (192, 64, 64, 3) and video.frames.dtype == np.uint8
        rgb = video.frames.reshape(-1, 3).astype(np.int32)
        codes = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])
        assert {(c >> 16, c >> 8 & 255, c & 255) for c in codes.tolist()} <= allowed


def test_tracks_agree_with_pixels(videos):
    for video in videos[:8]:
        assert len(video.tracks) == len(video.frames)
        for frame, entries in zip(video.frames, video.tracks):
            seen = set()
            for entry in entries:
                x0, y0, x1, y1 = entry["box"]
                assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
                assert entry["colour"] not in seen  # colours identify objects within a video
                seen.add(entry["colour"])
                match = np.all(frame == PALETTE[entry["colour"]], axis=-1)
                inside = np.zeros_like(match)
                inside[y0:y1, x0:x1] = True
                assert not (match & ~inside).any()  # every pixel of its colour lies in its box
                assert match.sum() == entry["pixels"]
            others = [c for c in PALETTE if c not in seen]
            for colour in others:  # nothing untracked is drawn
                assert not np.all(frame == PALETTE[colour], axis=-1).any()


def test_story_rules(videos):
    kinds, uncoloured_returns = set(), 0
    for video in videos:
        assert 1 <= len(video.objects) <= 3
        assert len({o["shape"] for o in video.objects}) == len(video.objects)
        assert len(video.sentences) == 6 and video.timestamps[0] == [0.0, 4.0] and video.timestamps[-1][1] == 24.0
        assert video.sentences[0].split()[0] in ("a", "an")  # the prompt introduces what it shows
        assert all(s.endswith(".") and s == s.lower() for s in video.sentences)
        colour_at_exit = {}
        for k, (event, sentence) in enumerate(zip(video.events, video.sentences)):
            kinds.add(event["kind"])
            if event["kind"] == "exit":
                frame = int(k * 4 * 8)  # the slot's first frame: it is still fully there
                entry = next(e for e in video.tracks[frame] if e["id"] == event["object"])
                colour_at_exit[event["object"]] = entry["colour"]
                assert entry["colour"] in sentence
            if event["kind"] == "reenter":
                obj = event["object"]
                last = int((k + 1) * 4 * 8) - 1
                entry = next(e for e in video.tracks[last] if e["id"] == obj)
                assert entry["colour"] == colour_at_exit[obj]  # it comes back as it left
                assert (entry["colour"] in sentence) == event["colour_named"]
                uncoloured_returns += not event["colour_named"]
                assert f"{colour_at_exit[obj]} {video.objects[obj]['shape']}" in video.state_sentences[k]
                away = [i for i, entries in enumerate(video.tracks) if i < last and i >= (k - 1) * 32
                        and all(e["id"] != obj for e in entries)]
                assert len(away) >= 3 * 8  # away at least 3 s
    assert kinds >= {"enter", "move", "stop", "recolour", "grow", "shrink", "exit", "reenter"}
    assert uncoloured_returns >= 1


def test_state_sentences_name_the_object_in_full(videos):
    """The caption with only its object's colour added, the colour it has as the slot starts (as it left, for a
    return); captions without an object are their own state sentence."""
    completed = 0
    for video in videos:
        assert len(video.state_sentences) == len(video.sentences)
        last_colour = {}
        for k, (event, sentence, state) in enumerate(zip(video.events, video.sentences, video.state_sentences)):
            obj = event["object"]
            if obj is None:
                assert state == sentence
                continue
            shape = video.objects[obj]["shape"]
            colour = next((e["colour"] for e in video.tracks[k * 32] if e["id"] == obj), last_colour.get(obj))
            if event["kind"] == "enter":
                colour = next(e["colour"] for e in video.tracks[(k + 1) * 32 - 1] if e["id"] == obj)
            assert f"{colour} {shape}" in state, (sentence, state)
            assert state.replace(f"{colour} {shape}", shape, 1) == sentence.replace(f"{colour} {shape}", shape, 1)
            completed += state != sentence
            for frame in video.tracks[k * 32 : (k + 1) * 32]:
                last_colour.update({e["id"]: e["colour"] for e in frame})
    assert completed >= 20  # most captions say "the circle": the state sentence adds what memory must supply


def test_same_seed_same_world(videos, tmp_path):
    again = render_video(seed=7, index=3, seconds=24, size=64, fps=8)
    assert np.array_equal(again.frames, videos[3].frames)
    assert again.tracks == videos[3].tracks and again.sentences == videos[3].sentences
    other = render_video(seed=8, index=3, seconds=24, size=64, fps=8)
    assert not np.array_equal(other.frames, videos[3].frames)

    first, second = tmp_path / "a", tmp_path / "b"
    generate_shapes(first, videos=2, seconds=8, seed=5, size=32)
    generate_shapes(second, videos=2, seconds=8, seed=5, size=32)
    names = ["captions.json", "tracks/shapes_5_00000.json", "tracks/shapes_5_00001.json",
             "scenarios/shapes_5_00001.json", "scenarios/shapes_5_00001.png"]
    for name in names:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name
    assert np.array_equal(read_video(first / "shapes_5_00001.mp4")[0], read_video(second / "shapes_5_00001.mp4")[0])


def test_files(tmp_path):
    ids = generate_shapes(tmp_path, videos=3, seconds=12, seed=2, size=64, fps=8, clip_seconds=4)
    captions = json.loads((tmp_path / "captions.json").read_text())
    assert list(captions) == ids
    for vid in ids:
        video = render_video(2, int(vid.rsplit("_", 1)[1]), seconds=12, size=64, fps=8)
        info = video_info(tmp_path / f"{vid}.mp4")
        assert (info.frames, info.fps, info.size) == (96, 8.0, (64, 64))
        assert captions[vid] == {"duration": 12.0, "timestamps": video.timestamps, "sentences": video.sentences,
                                 "state_sentences": video.state_sentences}
        tracks = json.loads((tmp_path / "tracks" / f"{vid}.json").read_text())
        assert len(tracks["frames"]) == 96 and tracks["frames"] == video.tracks
        scenario = json.loads((tmp_path / "scenarios" / f"{vid}.json").read_text())
        assert scenario["prompt"] == video.sentences[0] and scenario["dynamics"] == video.sentences
        assert scenario["clip_seconds"] == 4
        assert (tmp_path / "scenarios" / scenario["tracks"]).resolve() == (tmp_path / "tracks" / f"{vid}.json")
        png = np.asarray(Image.open(tmp_path / "scenarios" / scenario["first_frame"]))
        assert np.array_equal(png, video.frames[0])  # lossless: exact palette colours
        decoded = read_video(tmp_path / f"{vid}.mp4")[0].astype(int)
        assert np.abs(decoded - video.frames).mean() < 4  # H.264 keeps the flat colours close


def test_scenario_grid_follows_clip_seconds(tmp_path):
    generate_shapes(tmp_path, videos=1, seconds=12, seed=3, size=32, clip_seconds=3)
    scenario = json.loads((tmp_path / "scenarios" / "shapes_3_00000.json").read_text())
    assert scenario["clip_seconds"] == 3 and len(scenario["dynamics"]) == 4


def test_bad_settings():
    with pytest.raises(OwlError, match="at least clip_seconds"):
        render_video(0, seconds=2, clip_seconds=4)
    with pytest.raises(OwlError, match="size"):
        render_video(0, size=8)


def parse(argv):
    parser = argparse.ArgumentParser(prog="owl")
    add_data_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_cli_shapes(tmp_path, capsys):
    args = parse(["data", "shapes", "--out", str(tmp_path / "sw"), "--videos", "2", "--seconds", "8", "--seed", "1",
                  "--size", "32", "--fps", "4"])
    assert args.func(args) == 0
    assert "wrote 2 Shapes World videos" in capsys.readouterr().out
    assert video_info(tmp_path / "sw" / "shapes_1_00001.mp4").frames == 32
    with pytest.raises(SystemExit):
        parse(["data", "shapes", "--out", str(tmp_path), "--videos", "0", "--seconds", "8", "--seed", "1"])
    assert main(["data", "shapes", "--out", str(tmp_path / "x"), "--videos", "1", "--seconds", "2", "--seed",
                 "1"]) == 2
    assert "owl: error: seconds (2) must be at least clip_seconds (4)" in capsys.readouterr().err
