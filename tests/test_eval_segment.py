"""Palette segmentation and object detection (owl/eval/segment.py) on rendered Shapes World frames."""

import numpy as np
import pytest

from owl.data.shapes import BACKGROUND, PALETTE, render_video
from owl.errors import OwlError
from owl.eval.segment import (UNKNOWN, classify_shape, components, detect_objects, detect_video, label_pixels,
                              segment_video)
from owl.video_io import read_video, write_video


def _boxes_overlap(a, b):
    return not (a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def _clear_entries(tracks_frame, size):
    """Track entries fully inside the frame and not overlapping another object: their pixels are all theirs."""
    for e in tracks_frame:
        x0, y0, x1, y1 = e["box"]
        if x0 > 0 and y0 > 0 and x1 < size and y1 < size and not any(
                _boxes_overlap(e["box"], o["box"]) for o in tracks_frame if o is not e):
            yield e


def test_labels_are_exact_on_rendered_frames_and_unknown_off_palette():
    video = render_video(3, 1, seconds=4)
    labels = label_pixels(video.frames)
    assert labels.shape == video.frames.shape[:3] and labels.dtype == np.int8
    assert (labels >= 0).all()  # every rendered pixel is the background or a palette colour
    assert ((labels == 0) == (video.frames == BACKGROUND).all(-1)).all()
    odd = np.full((1, 4, 4, 3), 128, np.uint8)  # grey is far from every reference colour
    odd[0, 0, 0] = PALETTE["blue"]
    odd[0, 0, 1] = np.array(PALETTE["blue"]) + 20  # compression-like error stays blue
    got = label_pixels(odd)[0]
    assert got[0, 0] == got[0, 1] == 1 + list(PALETTE).index("blue")
    assert (got[1:] == UNKNOWN).all()


@pytest.mark.parametrize("seed", [1, 3, 7])
def test_detection_recovers_shape_classes_and_boxes_of_rendered_shapes(seed):
    checked = 0
    for index in range(4):
        video = render_video(seed, index, seconds=8)
        for entries, dets in zip(video.tracks, detect_video(video.frames)):
            assert len(dets) == len([e for e in entries if e["pixels"] >= 8])
            for e in _clear_entries(entries, 64):
                (d,) = [d for d in dets if d.colour == e["colour"]]
                assert d.shape == e["shape"]
                assert list(d.box) == e["box"]
                assert d.area == e["pixels"]
                assert not d.touches_border
                checked += 1
    assert checked > 100


def test_shape_classes_survive_video_compression(tmp_path):
    video = render_video(7, 2, seconds=8)
    write_video(tmp_path / "v.mp4", video.frames, video.fps)
    frames, _ = read_video(tmp_path / "v.mp4")
    counted = 0
    for entries, dets in zip(video.tracks, detect_video(frames)):
        for e in _clear_entries(entries, 64):
            (d,) = [d for d in dets if d.colour == e["colour"]]
            assert d.shape == e["shape"]
            assert all(abs(a - b) <= 1 for a, b in zip(d.box, e["box"]))
            counted += 1
    assert counted > 20


def test_classify_shape_on_plain_masks():
    yy, xx = np.mgrid[:21, :21] + 0.5
    disc = (xx - 10.5) ** 2 + (yy - 10.5) ** 2 <= 10.5 ** 2
    square = np.ones((12, 12), bool)
    triangle = np.abs(xx - 10.5) <= yy / 2  # apex up, as Shapes World draws it
    assert classify_shape(disc) == "circle"
    assert classify_shape(square) == "square"
    assert classify_shape(triangle) == "triangle"
    assert classify_shape(triangle[::-1]) == "triangle"  # apex down still tapers


def test_components_split_same_colour_blobs_and_ignore_diagonal_contact():
    frame = np.zeros((1, 8, 8, 3), np.uint8)
    frame[:] = BACKGROUND
    frame[0, 0:3, 0:3] = PALETTE["red"]
    frame[0, 3:6, 3:6] = PALETTE["red"]  # touches the first only at a corner: another object under 4-connectivity
    frame[0, 0:3, 5:8] = PALETTE["green"]
    labels = label_pixels(frame)
    ids = components(labels)
    assert len(np.unique(ids[ids >= 0])) == 3
    dets = detect_objects(frame[0], min_area=4)
    assert sorted((d.colour, d.box) for d in dets) == [
        ("green", (5, 0, 8, 3)), ("red", (0, 0, 3, 3)), ("red", (3, 3, 6, 6))]
    assert all(d.shape == "square" for d in dets)
    assert [d for d in dets if d.colour == "red" and d.box[0] == 3][0].centroid == (4.5, 4.5)
    assert detect_objects(frame[0], min_area=10) == []  # 9-pixel blobs are specks at this min_area


def test_segmentation_marks_object_pixels_and_rejects_bad_frames():
    video = render_video(3, 0, seconds=4)
    seg = segment_video(video.frames[:3])
    assert seg.objects.sum() == sum(e["pixels"] for f in video.tracks[:3] for e in f)
    with pytest.raises(OwlError, match="uint8"):
        detect_video(video.frames.astype(np.float32))
    with pytest.raises(OwlError, match=r"\(T, H, W, 3\)"):
        detect_video(video.frames[0])
