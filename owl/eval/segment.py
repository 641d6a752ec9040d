"""Palette segmentation and object detection for Shapes World frames, numpy only.

Shapes World draws flat colours without anti-aliasing (owl/data/shapes.py), so a frame is segmented exactly:
every pixel takes the nearest of BACKGROUND and the PALETTE colours, or stays unknown when even the nearest is
farther than `tolerance` (RGB Euclidean distance; H.264 blurs chroma at object edges, a generator may paint
off-palette colours). An object is a 4-connected component of one palette colour with at least `min_area`
pixels; it carries its colour name, a shape class, its box, centroid and area.

Shape class, from the component's mask inside its box (Shapes World triangles stand apex up):
    taper = mean width of the top third of rows / mean width of the bottom third (either way round)
    fill  = area / box area
    triangle if taper < TRIANGLE_TAPER or fill < TRIANGLE_FILL; else square if fill >= SQUARE_FILL; else circle.
A rasterized disc fills about pi/4 of its box (0.69-0.86 at the sizes Shapes World draws), a square 1, a triangle
about 0.5.
An object cut by the frame edge (`touches_border`) or within 2 pixels of another object (`touches_other`: it
may be partly hidden) is classified all the same, but its class says little; `clear` is neither.

    labels_thw = label_pixels(frames_thwc)                  # -1 unknown, 0 background, 1.. PALETTE order
    detections = detect_video(frames_thwc)                  # per frame: [Detection]
    detections[0][0].colour, .shape, .box, .centroid, .area

Connected components run on all frames at once: union-find over the same-colour neighbour pairs, with
min-label hooking and pointer jumping (a few vectorized passes instead of a Python flood fill per pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from owl.data.shapes import BACKGROUND, PALETTE
from owl.errors import OwlError

COLOURS: tuple[str, ...] = tuple(PALETTE)  # label k (1-based) is COLOURS[k - 1]; 0 is the background
UNKNOWN = -1
TOLERANCE = 60.0  # RGB distance to the nearest reference colour beyond which a pixel is unknown
MIN_AREA = 8  # smaller components are compression specks, not objects
TRIANGLE_TAPER = 0.6
TRIANGLE_FILL = 0.6
SQUARE_FILL = 0.88

_REFERENCE = np.array([BACKGROUND, *PALETTE.values()], np.int32)  # (7, 3): background, then the palette


@dataclass(frozen=True)
class Detection:
    colour: str  # a PALETTE name
    shape: str  # circle, square or triangle
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive), like the Shapes World tracks
    centroid: tuple[float, float]  # x, y in pixels (pixel centres at +0.5)
    area: int  # pixels
    fill: float  # area / box area
    touches_border: bool  # cut by the frame edge: the shape class is unreliable
    touches_other: bool = False  # within 2 pixels of another object: it may be partly hidden

    @property
    def clear(self) -> bool:
        """Whole in view as far as one can tell: its shape class can be trusted."""
        return not (self.touches_border or self.touches_other)


def check_frames(frames_thwc: np.ndarray, what: str = "frames") -> np.ndarray:
    """Frames must be uint8 (T, H, W, 3) with T >= 1."""
    frames_thwc = np.asarray(frames_thwc)
    if frames_thwc.dtype != np.uint8 or frames_thwc.ndim != 4 or frames_thwc.shape[-1] != 3 or not len(frames_thwc):
        raise OwlError(f"{what} must be uint8 (T, H, W, 3) with T >= 1, got {frames_thwc.dtype} {frames_thwc.shape}")
    return frames_thwc


def _nearest(frames_thwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nearest reference index (T, H, W) int8, squared RGB distance to it (T, H, W) int32)."""
    x = frames_thwc.astype(np.int32)
    best = np.full(x.shape[:3], np.iinfo(np.int32).max, np.int32)
    nearest = np.zeros(x.shape[:3], np.int8)
    for k, colour in enumerate(_REFERENCE):  # 7 colours: a loop of whole-video passes beats an (N, 7, 3) array
        d = x - colour
        dist2 = np.einsum("thwc,thwc->thw", d, d)
        closer = dist2 < best
        best[closer] = dist2[closer]
        nearest[closer] = k
    return nearest, best


def label_pixels(frames_thwc: np.ndarray, tolerance: float = TOLERANCE) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W) int8: 0 background, k >= 1 the colour COLOURS[k - 1], -1 unknown (farther
    than `tolerance` from every reference colour)."""
    nearest, dist2 = _nearest(check_frames(frames_thwc))
    return np.where(dist2 <= tolerance * tolerance, nearest, UNKNOWN).astype(np.int8)


def components(labels_thw: np.ndarray) -> np.ndarray:
    """4-connected components of the palette labels (>= 1) within each frame: (T, H, W) int64 component ids
    (the flat index of the component's first pixel), -1 for background and unknown pixels."""
    t, h, w = labels_thw.shape
    flat = np.arange(t * h * w, dtype=np.int64).reshape(t, h, w)
    fg = labels_thw > 0
    right = fg[:, :, :-1] & (labels_thw[:, :, :-1] == labels_thw[:, :, 1:])
    down = fg[:, :-1, :] & (labels_thw[:, :-1, :] == labels_thw[:, 1:, :])
    a = np.concatenate([flat[:, :, :-1][right], flat[:, :-1, :][down]])
    b = np.concatenate([flat[:, :, 1:][right], flat[:, 1:, :][down]])
    parent = flat.reshape(-1).copy()
    while True:
        pa, pb = parent[a], parent[b]
        if np.array_equal(pa, pb):
            break
        low = np.minimum(pa, pb)
        np.minimum.at(parent, pa, low)  # hook both roots under the smaller one
        np.minimum.at(parent, pb, low)
        while True:  # pointer jumping: every pixel points at its root
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    return np.where(fg.reshape(-1), parent, -1).reshape(t, h, w)


def classify_shape(mask_hw: np.ndarray) -> str:
    """Shape class of a boolean mask cropped to its box (see the module docstring)."""
    h, w = mask_hw.shape
    fill = float(mask_hw.sum()) / (h * w)
    widths = mask_hw.sum(1).astype(np.float64)
    third = max(1, h // 3)
    top, bottom = widths[:third].mean(), widths[h - third:].mean()
    taper = min(top, bottom) / max(top, bottom, 1e-9)
    if taper < TRIANGLE_TAPER or fill < TRIANGLE_FILL:
        return "triangle"
    return "square" if fill >= SQUARE_FILL else "circle"


@dataclass
class Segmentation:
    """A segmented video: pixel labels, object pixels and detections."""

    labels: np.ndarray  # (T, H, W) int8, as `label_pixels`
    objects: np.ndarray  # (T, H, W) bool, pixels of a detected object (a component of >= min_area pixels)
    detections: list[list[Detection]]  # per frame, largest first


def _grow(ids_thw: np.ndarray, labels_thw: np.ndarray, nearest_thw: np.ndarray) -> np.ndarray:
    """One ring of growth: an unknown pixel whose nearest colour is that of a 4-neighbour's component joins it.
    H.264 halves the chroma resolution, so the 1-pixel rim of a small shape often lands beyond the tolerance;
    without it a small circle (a square with 1-pixel caps) would read as a square."""
    grown = ids_thw.copy()
    free = labels_thw == UNKNOWN
    t, h, w = ids_thw.shape
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        here = (slice(None), slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx)))
        there = (slice(None), slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx)))
        take = free[here] & (grown[here] < 0) & (ids_thw[there] >= 0) & (labels_thw[there] == nearest_thw[here])
        grown[here][take] = ids_thw[there][take]
    return grown


def _near(mask_hw: np.ndarray, other_hw: np.ndarray, reach: int) -> bool:
    """Whether any `other_hw` pixel lies within `reach` pixels (chessboard distance) of `mask_hw`."""
    grown = mask_hw.copy()
    for _ in range(reach):
        step = grown.copy()
        step[1:] |= grown[:-1]
        step[:-1] |= grown[1:]
        step[:, 1:] |= step[:, :-1].copy()
        step[:, :-1] |= step[:, 1:].copy()
        grown = step
    return bool((grown & other_hw).any())


def segment_video(frames_thwc: np.ndarray, tolerance: float = TOLERANCE, min_area: int = MIN_AREA) -> Segmentation:
    """Label every pixel and detect the objects of every frame."""
    frames_thwc = check_frames(frames_thwc)
    nearest, dist2 = _nearest(frames_thwc)
    labels = np.where(dist2 <= tolerance * tolerance, nearest, UNKNOWN).astype(np.int8)
    t, h, w = labels.shape
    ids = _grow(components(labels), labels, nearest)
    detections: list[list[Detection]] = [[] for _ in range(t)]
    fg = ids >= 0
    roots, inverse, areas = np.unique(ids[fg], return_inverse=True, return_counts=True)
    keep = areas >= min_area
    objects = np.zeros_like(fg)
    if not keep.any():
        return Segmentation(labels, objects, detections)
    objects[fg] = keep[inverse]
    tt, yy, xx = np.nonzero(fg)
    n = len(roots)
    x0 = np.full(n, w, np.int64)
    y0 = np.full(n, h, np.int64)
    x1 = np.zeros(n, np.int64)
    y1 = np.zeros(n, np.int64)
    np.minimum.at(x0, inverse, xx)
    np.minimum.at(y0, inverse, yy)
    np.maximum.at(x1, inverse, xx + 1)
    np.maximum.at(y1, inverse, yy + 1)
    cx = np.bincount(inverse, xx + 0.5, n) / areas
    cy = np.bincount(inverse, yy + 0.5, n) / areas
    colour_of = labels.reshape(-1)[roots]  # a root is a seed pixel, inside the tolerance
    owner = np.where(objects, ids, -1)
    for k in np.nonzero(keep)[0]:
        f = int(roots[k] // (h * w))
        box = (int(x0[k]), int(y0[k]), int(x1[k]), int(y1[k]))
        mask = ids[f, box[1]:box[3], box[0]:box[2]] == roots[k]
        area = int(areas[k])
        around = owner[f, max(0, box[1] - 2):box[3] + 2, max(0, box[0] - 2):box[2] + 2]  # the box and 2 pixels
        others = (around >= 0) & (around != roots[k])
        touches_other = bool(others.any()) and _near(around == roots[k], others, 2)
        detections[f].append(Detection(
            colour=COLOURS[int(colour_of[k]) - 1], shape=classify_shape(mask), box=box,
            centroid=(float(cx[k]), float(cy[k])), area=area, fill=area / ((box[2] - box[0]) * (box[3] - box[1])),
            touches_border=box[0] == 0 or box[1] == 0 or box[2] == w or box[3] == h, touches_other=touches_other))
    for dets in detections:
        dets.sort(key=lambda d: -d.area)
    return Segmentation(labels, objects, detections)


def detect_video(frames_thwc: np.ndarray, tolerance: float = TOLERANCE,
                 min_area: int = MIN_AREA) -> list[list[Detection]]:
    """Objects in every frame of (T, H, W, 3) uint8 frames: per frame a list of `Detection`, largest first."""
    return segment_video(frames_thwc, tolerance, min_area).detections


def detect_objects(frame_hwc: np.ndarray, tolerance: float = TOLERANCE, min_area: int = MIN_AREA) -> list[Detection]:
    """Objects in one (H, W, 3) uint8 frame, largest first."""
    return detect_video(np.asarray(frame_hwc)[None], tolerance, min_area)[0]
