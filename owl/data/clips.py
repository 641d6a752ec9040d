"""ClipDataset: one clip and its caption per row of a CSV or JSONL table.

The data of Owl-1's stages 1 and 2 (caption-clip pairs such as WebVid and Panda-70M, arXiv 2412.09600 section
3.3), and what `owl data scan` writes. A row names a video, a caption, and optionally a span and scores:

    video,caption,start,end,motion
    clips/a.mp4,a dog runs on the beach,0.0,4.0,0.21

Column names are settings (`video_column`, `caption_column`, `start_column`, `end_column`). Relative video paths
are resolved against `video_root` (default: the table's folder). Times are seconds or "HH:MM:SS.mmm"; a row
without start/end uses the whole video. Rows can be filtered on numeric score columns:
`min_scores={"motion": 0.1}` keeps rows with motion >= 0.1, `max_scores` likewise.

Each sample is `num_frames` frames at `fps` from the row's span: from its start, its centre, or a random offset
(`offset`), scaled to cover `size` and centre-cropped:

    sample["frames"]   # (C, T, H, W) float32 in [-1, 1]
    sample["caption"]  # str
    sample["video"], sample["start"]  # where the frames came from

Rows are checked when the dataset is built (with `check_videos`, every video is opened once): missing videos,
bad or out-of-range spans, non-numeric scores, malformed JSONL lines. They raise one OwlError listing the first
few rows, or are skipped with a warning when `skip_invalid=True`. Rows whose span is too short for `num_frames`
at `fps` are not wrong, just unusable with these settings: they are left out and counted (`too_short`, with a
warning), like rows outside the score bounds (`filtered`).
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import torch
from torch.utils.data import Dataset

from owl.data.bad_entries import BadEntries, jsonl_values
from owl.data.caption_files import parse_time
from owl.errors import OwlError, OwlWarning
from owl.video_io import ReaderCache, read_span, thwc_to_cthw, video_info

OFFSETS = ("start", "center", "random")


def read_table(path: Path, bad: BadEntries) -> list[tuple[str, dict]]:
    """Rows of a .csv, .jsonl or .json (a list of objects) file as (row id, dict); row ids count from 1."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            return [(f"row {n}", row) for n, row in enumerate(csv.DictReader(f), 1)]
    if suffix == ".jsonl":
        rows = []
        for n, row in jsonl_values(path, bad):
            if isinstance(row, dict):
                rows.append((f"line {n}", row))
            else:
                bad.add(f"line {n}", "not a JSON object")
        return rows
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise OwlError(f"malformed JSON in {str(path)!r} at line {exc.lineno}, column {exc.colno}: {exc.msg}") \
                from None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise OwlError(f"{str(path)!r}: a .json clip table must be a list of objects")
        return [(f"item {n}", row) for n, row in enumerate(data)]
    raise OwlError(f"clip table must be .csv, .jsonl or .json, got {str(path)!r}")


def _optional_time(value):
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_time(value)


class ClipDataset(Dataset):
    """Caption-clip pairs from a CSV / JSONL table (see the module docstring)."""

    def __init__(
        self,
        annotations: str | Path,
        video_root: str | Path | None = None,
        *,
        num_frames: int = 16,
        fps: float = 8.0,
        size: tuple[int, int] | int | None = (64, 64),
        video_column: str = "video",
        caption_column: str = "caption",
        start_column: str = "start",
        end_column: str = "end",
        min_scores: dict[str, float] | None = None,
        max_scores: dict[str, float] | None = None,
        offset: str = "center",
        require_captions: bool = False,
        check_videos: bool = True,
        skip_invalid: bool = False,
        threads: int = 1,
    ):
        """
        annotations: the table (.csv, .jsonl, or .json list of objects).
        video_root: folder that relative video paths start from (default: the table's folder).
        num_frames, fps: T frames at this rate per sample.
        size: (H, W), scaled to cover and centre-cropped; None keeps the video's size.
        *_column: column names in the table.
        min_scores / max_scores: {column: bound} filters on numeric columns (inclusive).
        offset: where the T frames sit in a longer span: "start", "center" or "random".
        require_captions: treat empty captions as invalid rows (scan writes "" for captioning later).
        check_videos: open every video at construction to check spans against its duration.
        skip_invalid: skip bad rows with a warning instead of raising OwlError.
        threads: decoding threads per reader (default 1: DataLoader workers give the parallelism; 0: decord's
            choice, one per core).
        """
        if num_frames < 1 or fps <= 0:
            raise OwlError(f"num_frames must be >= 1 and fps > 0, got num_frames={num_frames} fps={fps}")
        if offset not in OFFSETS:
            raise OwlError(f"offset must be one of {', '.join(OFFSETS)}, got {offset!r}")
        self.path = Path(annotations)
        if not self.path.is_file():
            raise OwlError(f"clip table not found: {str(self.path)!r}")
        self.video_root = Path(video_root) if video_root is not None else self.path.parent
        self.num_frames, self.fps, self.size, self.offset = int(num_frames), float(fps), size, offset
        self.readers = ReaderCache(threads=threads)
        window = self.num_frames / self.fps  # seconds the frames of one sample cover

        bad = BadEntries(str(self.path))
        rows = read_table(self.path, bad)
        columns = set().union(*(row.keys() for _, row in rows)) if rows else set()
        bounds = [(k, v, min) for k, v in (min_scores or {}).items()] + \
                 [(k, v, max) for k, v in (max_scores or {}).items()]
        for column in [video_column, caption_column] + [k for k, _, _ in bounds]:
            if rows and column not in columns:
                raise OwlError(f"{str(self.path)!r} has no column {column!r}; columns: {', '.join(sorted(columns))}")

        self.items: list[dict] = []
        self.filtered = 0  # rows dropped by the score filters
        self.too_short = 0  # rows whose span holds fewer than num_frames frames at fps
        durations: dict[str, float] = {}
        for row_id, row in rows:
            video = row.get(video_column)
            if not isinstance(video, str) or not video.strip():
                bad.add(row_id, f"empty {video_column!r}")
                continue
            path = Path(video) if Path(video).is_absolute() else self.video_root / video
            caption = row.get(caption_column)
            caption = "" if caption is None else str(caption)
            if require_captions and not caption.strip():
                bad.add(row_id, f"empty caption for {video}")
                continue
            try:
                start, end = _optional_time(row.get(start_column)), _optional_time(row.get(end_column))
            except ValueError as exc:
                bad.add(row_id, f"{video}: {exc}")
                continue
            start = start or 0.0
            if start < 0 or (end is not None and end <= start):
                bad.add(row_id, f"{video}: span must have 0 <= start < end, got [{start}, {end}]")
                continue
            try:
                scores = {k: float(row[k]) for k, _, _ in bounds}
            except (TypeError, ValueError):
                bad.add(row_id, f"{video}: non-numeric score in {[k for k, _, _ in bounds]}")
                continue
            if any((bound_kind is min and scores[k] < v) or (bound_kind is max and scores[k] > v)
                   for k, v, bound_kind in bounds):
                self.filtered += 1
                continue
            if not path.is_file():
                bad.add(row_id, f"video not found: {str(path)!r}")
                continue
            if check_videos:
                key = str(path)
                if key not in durations:
                    try:
                        durations[key] = video_info(path).duration
                    except OwlError as exc:
                        durations[key] = -1.0
                        bad.add(row_id, str(exc))
                        continue
                duration = durations[key]
                if duration < 0:
                    bad.add(row_id, f"unreadable video {str(path)!r}")
                    continue
                if start >= duration or (end is not None and end > duration + 0.5):
                    bad.add(row_id, f"{video}: span [{start:g}, {'end' if end is None else f'{end:g}'}] is outside "
                                    f"the video (duration {duration:.2f} s)")
                    continue
                span = (min(end, duration) if end is not None else duration) - start
            else:
                span = None if end is None else end - start
            if span is not None and span * self.fps + 1e-6 < self.num_frames:
                self.too_short += 1
                continue
            self.items.append({"id": row_id, "video": str(path), "caption": caption, "start": start, "end": end})
        skipped = bad.raise_or_skip(skip_invalid, what="rows")
        if self.too_short:
            warnings.warn(f"{self.path}: {self.too_short} rows are shorter than {self.num_frames} frames at "
                          f"{self.fps:g} fps ({window:.2f} s) and were left out", OwlWarning, stacklevel=2)
        self.items = [item for item in self.items if item["id"] not in skipped]
        if not self.items:
            raise OwlError(f"{str(self.path)!r}: no rows left ({self.filtered} filtered out by score, "
                           f"{self.too_short} too short)")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        item = self.items[index]
        reader = self.readers.get(item["video"], self.size)
        start = item["start"]
        end = item["end"] if item["end"] is not None else reader.info.duration
        end = min(end, reader.info.duration)
        slack = max(0.0, (end - start) - self.num_frames / self.fps)
        if self.offset == "center":
            start += slack / 2
        elif self.offset == "random":
            start += float(torch.rand(())) * slack
        frames, _ = read_span(item["video"], start, end, fps=self.fps, num_frames=self.num_frames,
                              size=self.size, readers=self.readers)
        return {"frames": thwc_to_cthw(frames), "caption": item["caption"], "video": item["video"], "start": start}
