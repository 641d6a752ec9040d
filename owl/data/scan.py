"""Scene cuts and clip scores, after Koala-36M's splitting and scoring (Wang et al., arXiv 2410.08260).

`owl data scan PATH --out clips.jsonl` cuts each video into shots and writes one row per shot, readable by
ClipDataset (which can then filter on the scores):

    {"video": "a.mp4", "start": 0.0, "end": 3.0, "caption": "", "cut": "start",
     "motion": 0.04, "sharpness": 0.11, "brightness": 0.45}

How cuts are found. Frames are sampled at `fps` (default 8, at most the video's rate) and scaled so the long
side is `size` pixels. For each pair of consecutive frames two distances are measured, each in [0, 1]:
- colour: 1 - intersection of their RGB histograms (4 levels per channel, 64 bins); blind to motion, since
  moving things keep their colours;
- structure: 1 - SSIM of their grey images (SSIM over 16x16 blocks, clipped to [0, 1]); blind to slow
  brightness changes, since a fade keeps every edge where it was.
Their mean is the change. A hard cut is where the change exceeds the running mean of the previous `window`
seconds of changes by `sigmas` (3) standard deviations and an absolute `floor`, with the colours moving by at
least `colour_floor` and the structure by at least `structure_floor`. Fast motion moves structure, not colours;
a fade or dissolve moves colours, step by step, not structure: neither cuts, and sustained motion also raises the
running mean. A gradual transition is found instead by comparing frames `gradual_seconds` apart: where their
colour distance exceeds `gradual_floor` with no hard cut between them, there is a transition; its frames are
estimated from that stretch and left out of both shots.

Scores of each shot, on the analysis frames: motion, the mean fraction of pixels whose grey level changes by more
than 8/255 from one frame to the next (per 1/`fps` s); sharpness, the mean absolute Laplacian of the grey image
over 255 (blur lowers it); brightness, the mean grey level over 255. Shots shorter than `min_seconds` are dropped.
Rows name videos relative to the output file's folder when they sit under it, absolutely otherwise. The JSONL is
written atomically.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from owl.errors import OwlError, OwlWarning
from owl.files import write_bytes_atomic
from owl.video_io import VIDEO_EXTENSIONS, VideoFile, video_info


def _setting(default, help: str, zero_ok: bool = False):
    return field(default=default, metadata={"help": help, "zero_ok": zero_ok})


@dataclass(frozen=True)
class ScanSettings:
    """How `scan_video` samples frames and decides cuts (see the module docstring). `owl data scan` makes one
    flag per field (`--colour-floor` for colour_floor), with the help text in the field's metadata."""

    fps: float = _setting(8.0, "analysis frame rate (capped at the video's)")
    size: int = _setting(128, "long side of the analysis frames, pixels")
    window: float = _setting(2.0, "seconds of past changes in the running mean and deviation")
    sigmas: float = _setting(3.0, "a hard cut exceeds the running mean by this many standard deviations", zero_ok=True)
    floor: float = _setting(0.25, "... and this absolute change (0-1)", zero_ok=True)
    colour_floor: float = _setting(0.1, "... with a colour-histogram distance of at least this", zero_ok=True)
    structure_floor: float = _setting(0.15, "... and a structural distance (1 - SSIM) of at least this", zero_ok=True)
    gradual_seconds: float = _setting(1.0, "gradual transitions: compare frames this far apart")
    gradual_floor: float = _setting(0.5, "... and find one where their colour distance exceeds this", zero_ok=True)
    min_seconds: float = _setting(1.0, "shots shorter than this are not written", zero_ok=True)
    chunk: int = _setting(256, "frames decoded at a time (memory)")


@dataclass
class Cut:
    """A shot boundary: the first analysis frame of the new shot, after `transition` frames that belong to
    neither shot (0 for a hard cut; the fade or dissolve of a gradual one)."""

    frame: int           # analysis frame index
    time: float          # seconds
    kind: str            # "hard" or "gradual"
    transition: int = 0  # frames before `frame` left out of both shots


def _histogram(frames_thwc: np.ndarray) -> np.ndarray:
    """(T, 64) normalised RGB histograms, 4 levels per channel."""
    q = (frames_thwc >> 6).astype(np.int32)  # 0..3 per channel
    codes = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).reshape(len(frames_thwc), -1)
    counts = np.stack([np.bincount(c, minlength=64) for c in codes]).astype(np.float64)
    return counts / counts.sum(axis=1, keepdims=True)


def _grey(frames_thwc: np.ndarray) -> np.ndarray:
    """(T, H, W) float64 luma (BT.601), 0..255."""
    return frames_thwc.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def _ssim(a: np.ndarray, b: np.ndarray, block: int = 16) -> float:
    """Mean SSIM over non-overlapping blocks of two grey images (0..255)."""
    h, w = (a.shape[0] // block) * block, (a.shape[1] // block) * block
    if h == 0 or w == 0:  # tinier than one block: one block of the whole image
        h, w, block_h, block_w = a.shape[0], a.shape[1], a.shape[0], a.shape[1]
    else:
        block_h = block_w = block

    def blocks(x):
        tiles = x[:h, :w].reshape(h // block_h, block_h, w // block_w, block_w).swapaxes(1, 2)
        return tiles.reshape(-1, block_h * block_w)

    x, y = blocks(a), blocks(b)
    mx, my = x.mean(1), y.mean(1)
    vx, vy = x.var(1), y.var(1)
    cov = ((x - mx[:, None]) * (y - my[:, None])).mean(1)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ssim = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(ssim.mean())


def _laplacian(grey: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of one grey image, over 255."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    lap = (grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1])
    return float(np.abs(lap).mean() / 255.0)


@dataclass
class FrameFeatures:
    """Per analysis frame: histogram, brightness, sharpness; per consecutive pair: colour, structure, motion."""

    histograms: np.ndarray  # (N, 64)
    brightness: np.ndarray  # (N,)
    sharpness: np.ndarray   # (N,)
    colour: np.ndarray      # (N,), [0] = 0: distance from the previous frame
    structure: np.ndarray   # (N,)
    motion: np.ndarray      # (N,)


def frame_features(chunks) -> FrameFeatures:
    """Features of a stream of (T, H, W, 3) uint8 chunks, in order."""
    hists, bright, sharp, colour, structure, motion = [], [], [], [], [], []
    prev_hist = prev_grey = None
    for frames in chunks:
        h = _histogram(frames)
        g = _grey(frames)
        for i in range(len(frames)):
            bright.append(g[i].mean() / 255.0)
            sharp.append(_laplacian(g[i]))
            if prev_grey is None:
                colour.append(0.0), structure.append(0.0), motion.append(0.0)
            else:
                colour.append(1.0 - float(np.minimum(prev_hist, h[i]).sum()))
                structure.append(min(1.0, max(0.0, 1.0 - _ssim(prev_grey, g[i]))))
                motion.append(float((np.abs(g[i] - prev_grey) > 8).mean()))
            prev_hist, prev_grey = h[i], g[i]
        hists.append(h)
    if not hists:
        raise OwlError("no frames to scan")
    return FrameFeatures(np.concatenate(hists), np.array(bright), np.array(sharp), np.array(colour),
                         np.array(structure), np.array(motion))


def find_cuts(features: FrameFeatures, fps: float, settings: ScanSettings = ScanSettings()) -> list[Cut]:
    """Hard cuts by an adaptive threshold, then gradual transitions by long-range colour distance."""
    change = (features.colour + features.structure) / 2
    n = len(change)
    window = max(2, int(round(settings.window * fps)))
    cuts: list[Cut] = []
    history: list[float] = []
    for t in range(1, n):
        recent = np.array(history[-window:]) if history else np.zeros(1)
        threshold = max(settings.floor, recent.mean() + settings.sigmas * recent.std())
        is_cut = (change[t] > threshold and features.colour[t] >= settings.colour_floor
                  and features.structure[t] >= settings.structure_floor)
        if is_cut:
            cuts.append(Cut(t, t / fps, "hard"))
            history = []  # a new shot: its own statistics
        else:
            history.append(float(change[t]))

    gap = max(1, int(round(settings.gradual_seconds * fps)))
    hard = {c.frame for c in cuts}
    far = np.zeros(n)
    for t in range(gap, n):
        if not any(t - gap < c <= t for c in hard):
            far[t] = 1.0 - float(np.minimum(features.histograms[t - gap], features.histograms[t]).sum())
    t = gap
    while t < n:
        if far[t] > settings.gradual_floor:
            end = t
            while end + 1 < n and far[end + 1] > settings.gradual_floor:
                end += 1
            # frames `gap` apart differ from about the transition's start until `gap` frames after its end
            first, last = sorted((t, end - gap + 1))
            cuts.append(Cut(last + 1, (last + 1) / fps, "gradual", transition=last + 1 - first))
            t = end + gap
        else:
            t += 1
    return sorted(cuts, key=lambda c: c.frame)


def _analysis_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    scale = min(1.0, long_side / max(height, width))
    return max(8, int(round(height * scale))), max(8, int(round(width * scale)))


def scan_video(path: str | os.PathLike, settings: ScanSettings = ScanSettings()) -> list[dict]:
    """Shots of one video as rows {video, start, end, caption "", cut, motion, sharpness, brightness}."""
    info = video_info(path)
    fps = min(settings.fps, info.fps)
    video = VideoFile(path, size=_analysis_size(info.height, info.width, settings.size))
    times = np.arange(max(1, int(math.floor(info.duration * fps + 1e-6)))) / fps
    indices = video.indices_at(times)
    chunks = (video.frames(indices[i:i + settings.chunk]) for i in range(0, len(indices), settings.chunk))
    features = frame_features(chunks)
    cuts = find_cuts(features, fps, settings)
    starts = [0] + [c.frame for c in cuts]
    stops = [c.frame - c.transition for c in cuts] + [len(times)]
    kinds = ["start"] + [c.kind for c in cuts]
    rows = []
    for first, stop, kind in zip(starts, stops, kinds):
        if stop <= first:
            continue
        start = float(video.times[indices[first]])
        # end with the last frame before the cut: the frames between two samples may already be the next shot
        end = float(video.times[indices[stop - 1]]) + (1.0 / info.fps)
        if stop == len(times):
            end = info.duration
        if end - start < settings.min_seconds:
            continue
        pairs = slice(first + 1, stop)  # changes inside the shot
        rows.append({
            "video": str(path), "start": round(start, 3), "end": round(end, 3), "caption": "", "cut": kind,
            "motion": round(float(features.motion[pairs].mean()) if stop - first > 1 else 0.0, 4),
            "sharpness": round(float(features.sharpness[first:stop].mean()), 4),
            "brightness": round(float(features.brightness[first:stop].mean()), 4),
        })
    return rows


def scan_videos(path: str | os.PathLike, out: str | os.PathLike, settings: ScanSettings = ScanSettings(),
                skip_invalid: bool = False) -> list[dict]:
    """Scan a video or every video in a folder (sorted, not recursive) and write the rows to `out` (JSONL)."""
    import warnings

    path, out = Path(path), Path(out)
    if not path.exists():
        raise OwlError(f"nothing to scan: {str(path)!r} does not exist")
    if path.is_dir():
        videos = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
        if not videos:
            raise OwlError(f"no videos ({', '.join(VIDEO_EXTENSIONS)}) in {str(path)!r}")
    else:
        videos = [path]
    if out.suffix.lower() != ".jsonl":
        raise OwlError(f"scan output must be a .jsonl file, got {str(out)!r}")
    if not out.parent.is_dir():
        raise OwlError(f"output folder does not exist: {str(out.parent)!r}")
    rows, failed = [], []
    for video in videos:
        try:
            found = scan_video(video, settings)
        except OwlError as exc:
            if not skip_invalid:
                raise
            failed.append(str(exc))
            continue
        where = video.resolve()
        try:
            name = str(where.relative_to(out.parent.resolve()))
        except ValueError:
            name = str(where)
        rows.extend(dict(row, video=name) for row in found)
    if failed:
        warnings.warn(f"scan skipped {len(failed)} unreadable videos; first: {failed[0]}", OwlWarning, stacklevel=2)
    write_bytes_atomic(out, "".join(json.dumps(row) + "\n" for row in rows).encode())
    return rows
