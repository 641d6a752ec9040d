"""Shapes World metrics (owl/eval/metrics.py, owl/eval/captions.py) on rendered ground truth and altered copies."""

import numpy as np
import pytest

from owl.data.shapes import BACKGROUND, PALETTE, render_video
from owl.errors import OwlError
from owl.eval.captions import Caption, parse_caption
from owl.eval.metrics import ShapesTruth, evaluate_video

# (seed, index) of rendered videos with a leave-and-come-back; (3, 1) also has another object enter meanwhile
WITH_RETURNS = [(3, 1), (3, 3), (3, 4), (3, 5), (1, 1), (1, 2)]


def _truth(video):
    return ShapesTruth.from_video(video)


@pytest.mark.parametrize("text, caption", [
    ("a red circle enters from the left.", Caption("enter", "circle", "red", side="left")),
    ("The square moves up", Caption("move", "square", direction="up")),
    ("the triangle stops.", Caption("stop", "triangle")),
    ("an orange circle turns blue.", Caption("recolour", "circle", "orange", new_colour="blue")),
    ("the circle grows.", Caption("grow", "circle")),
    ("the circle shrinks.", Caption("shrink", "circle")),
    ("the red circle leaves the frame to the top.", Caption("exit", "circle", "red", side="top")),
    ("the square exits to the right.", Caption("exit", "square", side="right")),
    ("the circle comes back from the right.", Caption("reenter", "circle", side="right")),
    ("the green triangle returns.", Caption("reenter", "triangle", "green")),
    ("the frame stays empty.", Caption("empty")),
    ("nothing moves.", Caption("still")),
])
def test_caption_grammar(text, caption):
    assert parse_caption(text) == caption


@pytest.mark.parametrize("text", ["a dog runs", "the circle moves sideways.", "the hexagon grows.", ""])
def test_text_outside_the_grammar_parses_to_none(text):
    assert parse_caption(text) is None


@pytest.mark.parametrize("seed", [1, 3, 5])
def test_ground_truth_video_scores_full_marks(seed):
    reentries = 0
    for index in range(8):
        video = render_video(seed, index, seconds=24)
        scores = evaluate_video(video.frames, _truth(video))
        following = scores["following"]
        assert following["total"] == 6 and following["skipped"] == 0
        assert following["accuracy"] == 1.0, [s for s in following["segments"] if not s["correct"]]
        if scores["reentry"]["total"]:
            assert scores["reentry"]["accuracy"] == 1.0 and scores["reentry"]["truth_accuracy"] == 1.0
        reentries += scores["reentry"]["total"]
    assert reentries >= 2


def test_reentry_cases_name_what_left_and_what_came_back():
    video = render_video(3, 1, seconds=24)
    (case,) = evaluate_video(video.frames, _truth(video))["reentry"]["cases"]
    assert case["departed"] == case["returned"] == case["truth"] == {"colour": "purple", "shape": "circle"}
    assert (case["left_at"], case["back_at"]) == (12.0, 20.0)
    assert case["correct"] and case["matches_truth"]


def _recolour_from(frames, start, old, new):
    frames = frames.copy()
    tail = frames[start:]
    tail[(tail == PALETTE[old]).all(-1)] = PALETTE[new]
    return frames


@pytest.mark.parametrize("seed, index", WITH_RETURNS)
def test_returning_object_with_a_swapped_colour_fails_reentry(seed, index):
    video = render_video(seed, index, seconds=24)
    truth = _truth(video)
    (case,) = evaluate_video(video.frames, truth)["reentry"]["cases"]
    colour = case["truth"]["colour"]
    used = {e["colour"] for frame in video.tracks for e in frame}
    swap = next(c for c in PALETTE if c not in used)
    back = int(round(case["back_at"] * video.fps))
    scores = evaluate_video(_recolour_from(video.frames, back, colour, swap), truth)
    (bad,) = scores["reentry"]["cases"]
    assert not bad["correct"] and not bad["matches_truth"]
    assert bad["departed"]["colour"] == colour and bad["returned"]["colour"] == swap
    assert bad["departed"]["shape"] == bad["returned"]["shape"]
    assert scores["reentry"]["accuracy"] == 0.0


def test_returning_object_with_another_shape_fails_reentry():
    video = render_video(3, 1, seconds=24)  # a purple circle leaves at 12 s and comes back at 20 s
    frames = video.frames.copy()
    for f in range(20 * 8, len(frames)):  # from its return on, fill its box: a purple square comes back
        for e in video.tracks[f]:
            if e["id"] == 0:
                x0, y0, x1, y1 = e["box"]
                frames[f, y0:y1, x0:x1] = PALETTE["purple"]
    (case,) = evaluate_video(frames, _truth(video))["reentry"]["cases"]
    assert case["departed"] == {"colour": "purple", "shape": "circle"}
    assert case["returned"] == {"colour": "purple", "shape": "square"}
    assert not case["correct"] and not case["matches_truth"]


def test_objects_hidden_in_the_ground_truth_are_not_held_against_a_video():
    video = render_video(32, 57, seconds=24)  # the circle shrinks behind the square drawn over it
    following = evaluate_video(video.frames, _truth(video))["following"]
    last = following["segments"][-1]
    assert last["text"] == "the circle shrinks." and last["correct"] is None and "hidden" in last["reason"]
    assert following["total"] == 5 and following["skipped"] == 1 and following["accuracy"] == 1.0
    video = render_video(32, 20, seconds=24)  # the square comes back half under a circle and stays there
    (case,) = evaluate_video(video.frames, _truth(video))["reentry"]["cases"]
    assert case["returned"] == {"colour": "purple", "shape": None}  # never whole in view: only colour counts
    assert case["correct"] and case["matches_truth"]


def test_frozen_video_has_zero_dynamic_degree_and_fails_motion():
    video = render_video(3, 0, seconds=24)
    frozen = np.repeat(video.frames[:1], len(video.frames), axis=0)
    scores = evaluate_video(frozen, _truth(video))
    assert scores["quality"]["dynamic_degree"] == 0.0
    assert scores["quality"]["frame_difference"] == 0.0
    assert scores["quality"]["flicker"] == 0.0
    real = evaluate_video(video.frames, _truth(video))["quality"]["dynamic_degree"]
    assert real > 1.0  # px/s: the real video moves
    segments = {s["text"]: s["correct"] for s in scores["following"]["segments"]}
    assert segments["a green circle moves down."] is False
    assert segments["a purple triangle enters from the bottom."] is False
    assert segments["the circle stops."] is True  # standing still is all a frozen video does right
    assert scores["following"]["accuracy"] < 0.5


def test_mirrored_video_fails_horizontal_dynamics_only():
    video = render_video(1, 0, seconds=24)  # enters from the right, moves down, ...
    scores = evaluate_video(video.frames[:, :, ::-1].copy(), _truth(video))
    segments = {s["text"]: s["correct"] for s in scores["following"]["segments"]}
    assert segments["a green circle enters from the right."] is False
    assert segments["the circle moves down."] is True
    assert segments["a red square enters from the bottom."] is True


def test_drift_rises_when_the_background_shifts():
    video = render_video(3, 5, seconds=24)
    truth = _truth(video)
    clean = evaluate_video(video.frames, truth)["drift"]
    assert [p["t"] for p in clean["curve"]] == [4.0, 8.0, 12.0, 16.0, 20.0, 24.0]
    assert all(p["background"] == 0.0 for p in clean["curve"])
    assert all(p["object"] in (None, 0.0) for p in clean["curve"])
    shifted = video.frames.copy()
    ramp = np.linspace(0, 30, len(shifted)).round().astype(np.uint8)  # grey levels added over 24 s
    for t in range(len(shifted)):
        background = (shifted[t] == BACKGROUND).all(-1)
        shifted[t][background] += ramp[t]
    drift = evaluate_video(shifted, truth)["drift"]
    curve = [p["background"] for p in drift["curve"]]
    assert curve == sorted(curve) and curve[-1] > 25 > 5 > curve[0]
    assert drift["end"]["background"] == curve[-1] and drift["first"]["background"] == curve[0]
    assert drift["relative"]["background"] > 4
    assert all(p["object"] in (None, 0.0) for p in drift["curve"])  # the objects did not change


def test_object_colour_drift_and_palette_fraction():
    video = render_video(3, 0, seconds=24)
    frames = video.frames.copy()
    green = (frames == PALETTE["green"]).all(-1)
    frames[green] = np.array(PALETTE["green"]) + np.array([0, 0, 40])  # still nearest green, 40 grey levels off
    drift = evaluate_video(frames, _truth(video))["drift"]
    assert max(p["object"] for p in drift["curve"]) == pytest.approx(0.0)  # off from the start: no drift
    frames[96:][green[96:]] = np.array(PALETTE["green"]) + np.array([0, 0, 20])
    drift = evaluate_video(frames, _truth(video))["drift"]
    assert drift["curve"][0]["object"] == pytest.approx(0.0) and drift["end"]["object"] > 5
    noisy = video.frames.copy()
    noisy[:, :8] = 128  # an off-palette band: one eighth of every frame
    assert evaluate_video(noisy, _truth(video))["quality"]["palette_fraction"] == pytest.approx(7 / 8)


def test_short_video_leaves_late_segments_unscored():
    video = render_video(3, 1, seconds=24)
    scores = evaluate_video(video.frames[:100], _truth(video))  # 12.5 s of 24
    following = scores["following"]
    assert following["total"] == 3 and following["skipped"] == 3
    assert scores["reentry"]["total"] == 0 and scores["reentry"]["skipped"] == 1
    assert scores["reentry"]["cases"][0]["note"] == "the video ends before the return"
    assert [p["t"] for p in scores["drift"]["curve"]] == [4.0, 8.0, 12.0]  # the clips the video covers


def test_truth_must_hold_one_entry_per_segment():
    video = render_video(3, 1, seconds=8)
    with pytest.raises(OwlError, match="one per segment"):
        ShapesTruth(video.sentences[:1], video.timestamps, video.events, video.tracks, video.fps)
