"""Timelines: validation (overlaps, negative times, unknown keys), gaps filled by prediction, clip mapping."""

import json

import pytest

from owl import OwlError
from owl.cli import main
from owl.timeline import Timeline, parse_script, read_script

# The tiny preset's clips: 17 frames, then 16, at 8 fps -> clips start at 0, 2.125, 4.125, 6.125, ... s
STARTS = [0.0, 2.125, 4.125, 6.125, 8.125, 10.125]


def timeline(*segments):
    return Timeline.from_list(list(segments))


def test_segments_map_to_the_clip_whose_start_they_cover():
    t = timeline({"start": 0, "end": 3, "dynamics": "a"}, {"start": 4, "end": 9, "dynamics": "b"})
    # clip 1 starts at 2.125 (a); clip 2 at 4.125 and clip 3 at 6.125 and clip 4 at 8.125 (b); clip 5 in no segment
    assert t.dynamics_for(STARTS) == ["a", "b", "b", "b", None]


def test_gaps_are_predicted():
    t = timeline({"start": 2, "end": 3, "dynamics": "a"}, {"start": 10, "end": 11, "dynamics": "b"})
    assert t.dynamics_for(STARTS) == ["a", None, None, None, "b"]


def test_duration_segments_follow_each_other():
    t = timeline({"duration": 4, "dynamics": "a"}, {"duration": 4, "dynamics": "b"}, {"start": 10, "duration": 1,
                                                                                       "dynamics": "c"})
    assert [(s.start, s.end) for s in t.segments] == [(0, 4), (4, 8), (10, 11)]
    assert t.dynamics_for(STARTS) == ["a", "b", "b", None, "c"]


def test_segment_edges_are_half_open():
    t = timeline({"start": 0, "end": 2.125, "dynamics": "a"}, {"start": 2.125, "end": 4.125, "dynamics": "b"},
                 {"start": 4.125, "end": 20, "dynamics": "c"})
    with pytest.raises(OwlError, match="segment 1 .* drives no clip"):  # it ends where clip 1 starts
        t.dynamics_for(STARTS)
    t = timeline({"start": 2.125, "end": 4.125, "dynamics": "b"}, {"start": 4.125, "end": 20, "dynamics": "c"})
    assert t.dynamics_for(STARTS) == ["b", "c", "c", "c", "c"]


@pytest.mark.parametrize("segments, message", [
    ([{"start": 0, "end": 4, "dynamics": "a"}, {"start": 3, "end": 6, "dynamics": "b"}],
     "segment 2 (3-6 s) overlaps segment 1 (0-4 s)"),
    ([{"start": 4, "end": 6, "dynamics": "a"}, {"start": 0, "end": 2, "dynamics": "b"}], "overlaps segment 1"),
    ([{"start": -1, "end": 2, "dynamics": "a"}], "segment 1 start must not be negative, got -1"),
    ([{"duration": -2, "dynamics": "a"}], "duration must not be negative"),
    ([{"start": 3, "end": 2, "dynamics": "a"}], "segment 1 ends at 2 s, not after its start at 3 s"),
    ([{"start": 0, "end": 2, "dynamics": "a", "speed": 2}], "unknown key(s) ['speed']; accepted: ['start', 'end', "),
    ([{"start": 0, "dynamics": "a"}], "needs exactly one of end or duration"),
    ([{"start": 0, "end": 2, "duration": 2, "dynamics": "a"}], "needs exactly one of end or duration"),
    ([{"start": 0, "end": 2}], "needs a non-empty dynamics text"),
    ([{"start": "0s", "end": 2, "dynamics": "a"}], "start must be a finite number of seconds"),
    ([{"start": True, "end": 2, "dynamics": "a"}], "start must be a finite number of seconds"),
    ([{"duration": 0, "dynamics": "a"}], "duration must be > 0"),
])
def test_invalid_segments(segments, message):
    with pytest.raises(OwlError) as exc:
        Timeline.from_list(segments, "script 't.yaml'")
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert str(exc.value).startswith("script 't.yaml': segment")


def test_a_segment_that_drives_no_clip_is_an_error():
    with pytest.raises(OwlError, match=r"segment 2 \(20-24 s\) drives no clip"):
        timeline({"start": 2, "end": 4, "dynamics": "a"}, {"start": 20, "end": 24, "dynamics": "b"}).dynamics_for(STARTS)
    with pytest.raises(OwlError, match="clip 0 is driven by the prompt"):
        timeline({"start": 0, "end": 1, "dynamics": "a"}).dynamics_for(STARTS)


@pytest.mark.parametrize("data, expected", [
    (["a", " b "], ["a", "b"]),
    ({"dynamics": ["a"]}, ["a"]),
    ({"segments": [{"duration": 3, "dynamics": "a"}]}, Timeline.from_list([{"start": 0, "end": 3, "dynamics": "a"}])),
    ([{"duration": 3, "dynamics": "a"}], Timeline.from_list([{"start": 0, "end": 3, "dynamics": "a"}])),
])
def test_script_forms(data, expected):
    assert parse_script(data) == expected


@pytest.mark.parametrize("data, message", [
    ({"dynamics": ["a"], "segments": []}, "not both"),
    ({"timeline": []}, "unknown key(s) ['timeline']; accepted: ['dynamics', 'segments']"),
    (["a", {"duration": 1, "dynamics": "b"}], "must hold a non-empty list"),
    ({"segments": []}, "non-empty list of segments"),
])
def test_invalid_scripts(data, message):
    with pytest.raises(OwlError) as exc:
        parse_script(data)
    assert message in str(exc.value)


def test_read_script_json_and_yaml(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps([{"start": 0, "end": 4, "dynamics": "a"}]))
    (tmp_path / "t.yaml").write_text("- {start: 0, end: 4, dynamics: a}\n")
    assert read_script(tmp_path / "t.json") == read_script(tmp_path / "t.yaml")
    with pytest.raises(OwlError, match="script not found"):
        read_script(tmp_path / "none.yaml")


def test_generate_with_a_timeline_script(tmp_path, capsys):
    script = tmp_path / "timeline.yaml"
    script.write_text("- {start: 4, end: 6, dynamics: the ball stops.}\n")  # 0-4 s: a gap, predicted
    out = tmp_path / "out.mp4"
    assert main(["generate", "--preset", "tiny", "--prompt", "a ball", "--seconds", "6", "--script", str(script),
                 "--out", str(out), "--quiet", "--no-session"]) == 0
    board = json.loads(out.with_suffix(".storyboard.json").read_text())
    assert [c["predicted"] for c in board["clips"]] == [False, True, False]  # clip 1 starts in the gap
    assert board["clips"][2]["dynamics"] == "the ball stops."


@pytest.mark.parametrize("content, message", [
    ("- {start: 0, end: 4, dynamics: a}\n- {start: 2, end: 6, dynamics: b}\n", "overlaps segment 1"),
    ("- {start: -2, end: 4, dynamics: a}\n", "must not be negative"),
    ("- {begin: 0, end: 4, dynamics: a}\n", "unknown key(s) ['begin']"),
    ("- {start: 30, end: 40, dynamics: a}\n", "drives no clip"),
])
def test_generate_refuses_a_bad_timeline(tmp_path, capsys, content, message):
    script = tmp_path / "timeline.yaml"
    script.write_text(content)
    assert main(["generate", "--preset", "tiny", "--prompt", "a ball", "--seconds", "6", "--script", str(script),
                 "--out", str(tmp_path / "out.mp4"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("owl: error:") and message in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timeline.yaml"]  # nothing written
