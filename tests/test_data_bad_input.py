"""Bad annotation input: one OwlError listing the first bad entries by id, or skipped and counted on request."""

import json

import numpy as np
import pytest

from owl.data import ClipDataset, DenseCaptionDataset
from owl.errors import OwlError
from owl.video_io import write_video


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    frames = np.repeat(np.repeat(np.random.default_rng(0).integers(0, 256, (48, 4, 4, 3), np.uint8), 8, 1), 8, 2)
    for name in ("good", "other"):
        write_video(root / f"{name}.mp4", frames, fps=4)  # 12 s, 32x32
    (root / "broken.mp4").write_text("not a video")
    return root


def anet(root, entries, name="captions.json"):
    path = root / name
    path.write_text(json.dumps(entries))
    return path


GOOD = {"duration": 12.0, "timestamps": [[0, 6], [6, 12]], "sentences": ["one.", "two."]}


def dense(path, root, **kwargs):
    return DenseCaptionDataset(path, root, frames_per_clip=2, size=16, **kwargs)


@pytest.mark.parametrize("entry, message", [
    ({"duration": 12.0, "timestamps": [[0, 6], [6, 30]], "sentences": ["one.", "two."]}, "outside the video"),
    ({"duration": 12.0, "timestamps": [[0, 6], [6, 12]], "sentences": ["one.", "  "]}, "empty sentence"),
    ({"duration": 12.0, "timestamps": [[0, 6]], "sentences": ["one.", "two."]}, "1 timestamps but 2 sentences"),
    ({"duration": 12.0, "timestamps": [[6, 2]], "sentences": ["one."]}, "0 <= start < end"),
    ({"duration": 12.0, "timestamps": [["a", 2]], "sentences": ["one."]}, "must be numbers"),
    ({"duration": -1, "timestamps": [[0, 2]], "sentences": ["one."]}, "duration must be a positive number"),
    ({"sentences": ["one."]}, "needs lists"),
    ({**GOOD, "state_sentences": ["the red one."]}, "'state_sentences' must be a list of 2 sentences, one per segment"),
    ({**GOOD, "state_sentences": ["the red one.", 2]}, "'state_sentences' must be a list of 2"),
])
def test_bad_activitynet_entries(root, entry, message):
    path = anet(root, {"good": GOOD, "other": entry})
    with pytest.raises(OwlError, match=f"captions.json: 1 invalid videos: other: .*{message}"):
        dense(path, root)
    with pytest.warns(UserWarning, match="skipped 1 invalid videos"):
        data = dense(path, root, skip_invalid=True)
    assert [v["video_id"] for v in data.videos] == ["good"]


def test_missing_and_unreadable_videos(root):
    path = anet(root, {"good": GOOD, "missing": GOOD, "broken": GOOD})
    with pytest.raises(OwlError) as error:
        dense(path, root)
    text = str(error.value)
    assert "2 invalid videos" in text and "missing: video not found" in text
    assert "broken: cannot read video" in text and "skip_invalid=True" in text
    with pytest.warns(UserWarning, match="skipped 2"):
        assert len(dense(path, root, skip_invalid=True)) == 1


def test_many_bad_entries_are_listed_first_few(root):
    path = anet(root, {f"gone{i}": GOOD for i in range(8)} | {"good": GOOD})
    with pytest.raises(OwlError, match=r"8 invalid videos: gone0: .*gone4: .*\(and 3 more\)"):
        dense(path, root)


def test_timestamps_past_the_end_within_tolerance_are_clipped(root):
    path = anet(root, {"good": {"duration": 12.4, "timestamps": [[0, 6], [6, 12.4]], "sentences": ["a.", "b."]}})
    data = dense(path, root)
    assert data.videos[0]["dynamics"] == ["a.", "b.", "b."]  # clip [4, 8): a tie goes to the newer event
    with pytest.raises(OwlError, match="outside the video"):
        dense(path, root, tolerance=0.1)


def test_malformed_json(root):
    path = root / "broken.json"
    path.write_text('{"good": {"duration": 12.0,, }')
    with pytest.raises(OwlError, match=r"malformed JSON in .*broken.json.* at line 1, column 28"):
        dense(path, root)
    with pytest.raises(OwlError, match="caption file not found"):
        dense(root / "nope.json", root)
    with pytest.raises(OwlError, match="unknown caption format"):
        dense(anet(root, {"good": GOOD}), root, format="webvid")


def test_bad_vript_lines_and_clips(root):
    row = {"meta": {"video_id": "good"}, "caption": {"content": "a scene."},
           "timestamp": ["00:00:00.000", "00:00:12.000"]}
    lines = [json.dumps(dict(row, clip_id="good-Scene-001")), "{not json",
             json.dumps({"meta": {"video_id": "other"}, "clip_id": "other-Scene-001", "caption": {"content": "x"}}),
             json.dumps({"meta": {"video_id": "third"}, "clip_id": "third-Scene-001", "caption": {"content": ""},
                         "timestamp": [0, 4]})]
    path = root / "vript.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OwlError) as error:
        dense(path, root)
    text = str(error.value)
    assert "3 invalid videos" in text and "vript.jsonl:2: malformed JSON" in text
    assert "other: clip other-Scene-001 has no timestamps" in text and "third: clip third-Scene-001: empty" in text
    with pytest.warns(UserWarning, match="skipped 3"):
        assert [v["video_id"] for v in dense(path, root, skip_invalid=True).videos] == ["good"]


def clip_table(root, rows, name="clips.jsonl"):
    path = root / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_bad_clip_rows(root):
    good = {"video": "good.mp4", "caption": "fine", "start": 0, "end": 8, "motion": 0.3}
    rows = [good,
            dict(good, video="missing.mp4"),
            dict(good, start=5, end=2),
            dict(good, start=10, end=30),
            dict(good, motion="high"),
            "{oops",
            dict(good, video="broken.mp4"),
            dict(good, start="soon")]
    path = clip_table(root, rows)
    kwargs = dict(num_frames=4, fps=2, size=16, min_scores={"motion": 0.1})
    with pytest.raises(OwlError) as error:
        ClipDataset(path, **kwargs)
    text = str(error.value)
    assert "7 invalid rows" in text and "line 2: video not found" in text
    assert "line 3: good.mp4: span must have 0 <= start < end" in text and "(and 2 more)" in text
    with pytest.warns(UserWarning, match="skipped 7 invalid rows"):
        data = ClipDataset(path, skip_invalid=True, **kwargs)
    assert len(data) == 1 and data[0]["caption"] == "fine"
    with pytest.raises(OwlError, match=r"line 2: good.mp4: span \[10, 30\] is outside the video"):
        ClipDataset(clip_table(root, [good, rows[3]]), **kwargs)
    with pytest.raises(OwlError, match="line 2: .*non-numeric score"):
        ClipDataset(clip_table(root, [good, rows[4]]), **kwargs)
    with pytest.raises(OwlError, match="line 2: .*empty caption"):
        ClipDataset(clip_table(root, [good, dict(good, caption="")]), require_captions=True, **kwargs)
    with pytest.raises(OwlError, match="no column 'caption'"):
        ClipDataset(clip_table(root, [{"video": "good.mp4"}]), **kwargs)
    with pytest.raises(OwlError, match="must be .csv, .jsonl or .json"):
        ClipDataset(clip_table(root, [good], name="clips.txt"), **kwargs)
    with pytest.raises(OwlError, match="offset"):
        ClipDataset(path, offset="middle")


def test_short_spans_are_filtered_not_errors(root):
    good = {"video": "good.mp4", "caption": "fine", "start": 0, "end": 8}
    path = clip_table(root, [good, dict(good, end=1)])
    with pytest.warns(UserWarning, match="1 rows are shorter than 4 frames"):
        data = ClipDataset(path, num_frames=4, fps=2, size=16)
    assert len(data) == 1 and data.too_short == 1
