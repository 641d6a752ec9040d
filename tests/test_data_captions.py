"""Dense caption files in the real ActivityNet Captions and Vript schemas (tests/fixtures), and the clip grid."""

from pathlib import Path

import numpy as np
import pytest

from owl.data import DenseCaptionDataset
from owl.data.bad_entries import BadEntries
from owl.data.caption_files import Segment, load_captions, parse_time
from owl.data.dense_captions import clip_captions, scene_starts
from owl.video_io import read_span, write_video

FIXTURES = Path(__file__).parent / "fixtures"
VIDEO_IDS = ["QOlSCBRmfWY", "v_ehGHCYKzyZ8", "339dXVNQXac", "Kx8bJ2kq3Ls", "02toZL7p4_0", "Qm7aZ0pPp1c"]


def make_video(path, seconds=12.25, fps=4, size=32, seed=0):
    """Random 8x8-block frames: every frame differs, so a wrong frame shows."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    cells = rng.integers(0, 256, (n, size // 8, size // 8, 3), dtype=np.uint8)
    write_video(path, np.repeat(np.repeat(cells, 8, 1), 8, 2), fps=fps)


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for i, video_id in enumerate(VIDEO_IDS):  # ActivityNet's v_ prefix: one stored without it, one with it
        make_video(root / f"{video_id}.mp4", seed=i)
    return root


def test_parse_time():
    assert parse_time(12) == 12.0
    assert parse_time("12.5") == 12.5
    assert parse_time("01:02.5") == 62.5
    assert parse_time("00:01:02.500") == 62.5
    assert parse_time("00:01:02,500") == 62.5
    for bad in ["", "1:2:3:4", "abc", None, True, "-1"]:
        with pytest.raises(ValueError):
            parse_time(bad)


def test_clip_grid():
    # most overlap wins; ties go to the later-starting segment; uncovered clips get -1
    assert clip_captions([(0, 5.2), (4.8, 12)], 3, 4.0) == [0, 1, 1]
    assert clip_captions([(0, 6), (2, 8)], 2, 4.0) == [0, 1]
    assert clip_captions([(0, 2), (2, 4)], 1, 4.0) == [1]
    assert clip_captions([(0, 3.5), (8.5, 12)], 3, 4.0) == [0, -1, 1]
    segments = [Segment(0, 3.5, "a"), Segment(8.5, 12, "b")]
    assert scene_starts(segments, [0, -1, 1]) == [True, False, True]  # a gap opens a new scene
    touching = [Segment(0, 4, "a"), Segment(4, 8, "b")]
    assert scene_starts(touching, [0, 1]) == [True, False]  # touching segments continue the scene
    cut = [Segment(0, 4, "a"), Segment(4, 8, "b", cut=True)]
    assert scene_starts(cut, [0, 1]) == [True, True]


def load(path, **kwargs):
    bad = BadEntries(str(path))
    videos = load_captions(path, bad, **kwargs)
    assert not bad.problems, bad.problems
    return {v.video_id: v for v in videos}


def test_fixture_schemas_load():
    anet = load(FIXTURES / "activitynet_captions.json")
    assert list(anet) == ["v_QOlSCBRmfWY", "v_ehGHCYKzyZ8"]
    assert anet["v_QOlSCBRmfWY"].segments[1].sentence.startswith("The girl dances")  # stripped
    assert not any(s.cut for v in anet.values() for s in v.segments)

    official = load(FIXTURES / "vript_caption.json")["339dXVNQXac"]
    assert [(s.start, s.end) for s in official.segments] == [(0, 5.5), (5.5, 9), (9, 12)]
    assert official.segments[0].sentence.startswith("A wooden cabin") and all(s.cut for s in official.segments)
    titles = load(FIXTURES / "vript_caption.json", vript_text="scene_title")["339dXVNQXac"]
    assert titles.segments[2].sentence == "The walk"

    clips = load(FIXTURES / "vript_clips.json")["Kx8bJ2kq3Ls"]
    assert clips.duration == 12.0 and [s.end for s in clips.segments] == [6.25, 12.0]

    rows = load(FIXTURES / "vript_rows.jsonl")["02toZL7p4_0"]
    assert [s.start for s in rows.segments] == [0.0, 8.0]

    folder = load(FIXTURES / "vript_folder")["Qm7aZ0pPp1c"]  # spans from the _cut_meta.json beside it
    assert [(s.start, s.end) for s in folder.segments] == [(0, 4), (4, 12)]


@pytest.mark.parametrize("captions, video_id, dynamics_from, new_scene", [
    ("activitynet_captions.json", "v_QOlSCBRmfWY", [0, 1, 1], [True, False, False]),
    ("activitynet_captions.json", "v_ehGHCYKzyZ8", [0, None, 1], [True, False, True]),
    ("vript_caption.json", "339dXVNQXac", [0, 1, 2], [True, True, True]),
    ("vript_clips.json", "Kx8bJ2kq3Ls", [0, 0, 1], [True, False, True]),
    ("vript_rows.jsonl", "02toZL7p4_0", [0, 0, 1], [True, False, True]),
    ("vript_folder", "Qm7aZ0pPp1c", [0, 1, 1], [True, True, False]),
])
def test_dense_dataset_on_fixtures(video_root, captions, video_id, dynamics_from, new_scene):
    data = DenseCaptionDataset(FIXTURES / captions, video_root, clip_seconds=4, frames_per_clip=4, size=(32, 32))
    index = next(i for i, (v, _, _) in enumerate(data.samples) if data.videos[v]["video_id"] == video_id)
    sample = data[index]
    segments = load(FIXTURES / captions)[video_id].segments
    assert sample["video_id"] == video_id
    assert sample["dynamics"] == ["" if i is None else segments[i].sentence for i in dynamics_from]
    assert sample["new_scene"].tolist() == new_scene
    assert sample["frames"].shape == (3, 3, 4, 32, 32)  # (T, C, F, H, W)
    # the frames are those at 0, 1, 2, ... s (4 per 4 s clip), exactly as read_span gives them
    path = data.videos[data.samples[index][0]]["path"]
    expected, _ = read_span(path, 0, 12, fps=1, size=(32, 32))
    got = ((sample["frames"].permute(0, 2, 3, 4, 1).reshape(12, 32, 32, 3) + 1) * 127.5).round().byte().numpy()
    assert np.array_equal(got, expected)


def test_extensions_and_v_prefix(video_root, tmp_path):
    data = DenseCaptionDataset(FIXTURES / "activitynet_captions.json", video_root, extensions=("mkv", ".mp4"),
                               frames_per_clip=2, size=16)
    paths = {v["video_id"]: Path(v["path"]).name for v in data.videos}
    assert paths == {"v_QOlSCBRmfWY": "QOlSCBRmfWY.mp4", "v_ehGHCYKzyZ8": "v_ehGHCYKzyZ8.mp4"}
