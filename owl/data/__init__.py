"""Owl's data: clip and dense-caption datasets, Shapes World, and preprocessing (scene cuts and scores).

    from owl.data import ClipDataset, DenseCaptionDataset, collate
    loader = DataLoader(DenseCaptionDataset("data/shapes/captions.json", clips_per_sample=6),
                        batch_size=4, num_workers=2, collate_fn=collate)

Files: clips.py (ClipDataset: one clip + caption per row of a CSV / JSONL), dense_captions.py
(DenseCaptionDataset: clip sequences with per-clip dynamics), caption_files.py (ActivityNet Captions and Vript
readers), shapes.py (Shapes World), scan.py (scene cuts and clip scores, after Koala-36M), collate.py (batching),
bad_entries.py (how bad annotation entries are reported), commands.py (`owl data ...`).
"""

from owl.data.clips import ClipDataset
from owl.data.collate import collate
from owl.data.dense_captions import DenseCaptionDataset
from owl.data.scan import ScanSettings, scan_video, scan_videos
from owl.data.shapes import BACKGROUND, PALETTE, SHAPES, ShapesVideo, generate_shapes, render_video

__all__ = [
    "ClipDataset", "DenseCaptionDataset", "collate", "ScanSettings", "scan_video", "scan_videos",
    "PALETTE", "BACKGROUND", "SHAPES", "ShapesVideo", "render_video", "generate_shapes",
]
