"""Owl's evaluation: Shapes World metrics measured from the pixels, and the scenario runner.

    from owl.eval import ShapesTruth, evaluate_video, evaluate_shapes
    scores = evaluate_video(frames_thwc, ShapesTruth.from_video(render_video(1, 0)))     # no model needed
    report = evaluate_shapes("data/shapes/scenarios", model="checkpoints/owl-shapes")     # owl eval shapes

Files: segment.py (palette segmentation and object detection), captions.py (the Shapes World caption grammar),
metrics.py (re-entry identity, dynamics following, drift, frame quality), shapes.py (scenarios: load, generate,
measure, sum up, table), commands.py (`owl eval ...`). Eval reads videos and ground truth; it never imports
training code.
"""

from owl.eval.captions import KINDS, Caption, parse_caption
from owl.eval.metrics import ShapesTruth, drift, evaluate_video, following, quality, reentry
from owl.eval.segment import (COLOURS, Detection, Segmentation, classify_shape, detect_objects, detect_video,
                              label_pixels, segment_video)
from owl.eval.shapes import (Scenario, aggregate, evaluate_shapes, format_table, list_scenarios, load_scenario,
                             read_truth)

__all__ = [
    "Caption", "KINDS", "parse_caption",
    "ShapesTruth", "evaluate_video", "reentry", "following", "drift", "quality",
    "COLOURS", "Detection", "Segmentation", "classify_shape", "detect_objects", "detect_video", "label_pixels",
    "segment_video",
    "Scenario", "load_scenario", "list_scenarios", "read_truth", "evaluate_shapes", "aggregate", "format_table",
]
