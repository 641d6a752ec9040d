"""DenseCaptionDataset: videos cut into a fixed clip grid, each clip with the caption of what happens in it.

This is the data of Owl-1's stage 3 (world-model training on ActivityNet Captions and Vript, arXiv 2412.09600
section 3.3): a sample is a sequence of (clip_t, dynamics_t). The grid has clips of `clip_seconds` (Owl-1: 4 s)
from the start of the video; only whole clips are used. Each clip takes the sentence of the segment that
overlaps it most (ties: the later-starting one, the newer event); a clip no segment touches gets "".

`new_scene[t]` is True where clip t opens a new scene: the first clip of a video, a clip whose segment carries an
annotated cut (every Vript scene), and a clip whose segment starts after a gap from the previous clip's segment
(no overlap, not touching). Touching or overlapping segments continue the scene. The trainer drops the image
condition of clips that open a new scene. Flags describe the video: when a sample is a window that starts
mid-video, its clip 0 may be False, and it has no previous clip in the sample either way.

    data = DenseCaptionDataset("data/shapes/captions.json", clip_seconds=4, frames_per_clip=8, size=(64, 64),
                               clips_per_sample=6)
    sample = data[0]
    sample["frames"]     # (T, C, F, H, W) float32 in [-1, 1]
    sample["dynamics"]   # list of T str: dynamics[t] describes clip t (the model's "what happens next" after
                         #   clip t - 1); the trainer shifts it as it needs
    sample["new_scene"]  # (T,) bool
    sample["video_id"]   # str

`clips_per_sample=T` cuts each video into windows of exactly T clips (starting every T clips, plus one window
ending at the last clip when some clips are left over), so samples stack into batches; videos with fewer than T
clips are left out with a warning. `None` gives one sample per video with all its clips.

Videos are found in `video_root` (default: the caption file's folder) as `<id><ext>` for each of `extensions`,
following the ActivityNet convention that `v_<id>` may be stored without the `v_` (and the reverse). With
`check_videos` every video is opened once at construction, so missing, unreadable or too-short videos and
timestamps past the end of a video are reported before training starts; segments past the end by at most
`tolerance` seconds (ActivityNet rounds) are clipped to the video.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from owl.data.bad_entries import BadEntries
from owl.data.caption_files import CaptionedVideo, Segment, load_captions
from owl.errors import OwlError, OwlWarning
from owl.video_io import VIDEO_EXTENSIONS, ReaderCache, thwc_to_cthw, video_info


def clip_captions(timestamps, n_clips: int, clip_seconds: float) -> list[int]:
    """For clip k = [k L, (k + 1) L): the index of the segment overlapping it most, -1 when none does.

    `timestamps` is a list of [start, end]; ties go to the later-starting segment (the newer event)."""
    chosen = []
    for k in range(n_clips):
        lo, hi = k * clip_seconds, (k + 1) * clip_seconds
        best, best_overlap = -1, 0.0
        for i, (start, end) in enumerate(timestamps):
            overlap = min(hi, end) - max(lo, start)
            if overlap > best_overlap + 1e-9 or (
                    best >= 0 and abs(overlap - best_overlap) <= 1e-9 and overlap > 0 and start > timestamps[best][0]):
                best, best_overlap = i, overlap
        chosen.append(best)
    return chosen


def scene_starts(segments: list[Segment], chosen: list[int]) -> list[bool]:
    """new_scene per clip, from the chosen segment of each clip (see the module docstring)."""
    flags, last = [], -1
    for k, index in enumerate(chosen):
        if k == 0:
            flag = True
        elif index < 0 or index == last:
            flag = False
        elif last < 0:  # the first captioned clip after uncaptioned ones: only an annotated cut says so
            flag = segments[index].cut
        else:
            flag = segments[index].cut or segments[index].start > segments[last].end + 1e-6
        flags.append(bool(flag))
        if index >= 0:
            last = index
    return flags


def resolve_video(root: Path, video_id: str, extensions) -> Path | None:
    """`root/<id><ext>` for the first extension that exists, trying `v_<id>` <-> `<id>` too."""
    names = [video_id]
    names.append(video_id[2:] if video_id.startswith("v_") else f"v_{video_id}")
    for name in names:
        for ext in extensions:
            candidate = root / f"{name}{ext}"
            if candidate.is_file():
                return candidate
    return None


class DenseCaptionDataset(Dataset):
    """Clip sequences with per-clip dynamics captions and scene flags, from ActivityNet Captions or Vript."""

    def __init__(
        self,
        captions: str | Path,
        video_root: str | Path | None = None,
        *,
        format: str = "auto",
        extensions: tuple[str, ...] | str = VIDEO_EXTENSIONS,
        clip_seconds: float = 4.0,
        frames_per_clip: int = 8,
        fps: float | None = None,
        size: tuple[int, int] | int | None = (64, 64),
        clips_per_sample: int | None = None,
        vript_text: str = "content",
        check_videos: bool = True,
        tolerance: float = 1.0,
        skip_invalid: bool = False,
        threads: int = 1,
    ):
        """
        captions: ActivityNet JSON, or Vript JSON / JSONL / folder (see owl.data.caption_files).
        video_root: folder of the videos (default: the caption file's folder).
        format: "auto", "activitynet" or "vript".
        extensions: video file extensions to try, in order.
        clip_seconds: clip length of the grid (Owl-1: 4 s).
        frames_per_clip: F frames read per clip.
        fps: frame rate of those frames (default F / clip_seconds: spread over the whole clip).
        size: (H, W) of the frames, scaled to cover and centre-cropped; None keeps the video's size.
        clips_per_sample: T clips per sample (None: a whole video per sample).
        vript_text: which field of a Vript caption is the dynamics text.
        check_videos: open every video at construction to check it and its timestamps.
        tolerance: seconds a segment may run past the end of its video before it is an error.
        skip_invalid: skip bad videos (with a warning that counts them) instead of raising OwlError.
        threads: decoding threads per reader (default 1: DataLoader workers give the parallelism; 0: decord's
            choice, one per core).
        """
        if clip_seconds <= 0:
            raise OwlError(f"clip_seconds must be positive, got {clip_seconds}")
        if frames_per_clip < 1:
            raise OwlError(f"frames_per_clip must be at least 1, got {frames_per_clip}")
        self.fps = float(fps) if fps is not None else frames_per_clip / clip_seconds
        if (frames_per_clip - 1) / self.fps >= clip_seconds + 1e-9:
            raise OwlError(f"{frames_per_clip} frames at {self.fps:g} fps do not fit in a {clip_seconds:g} s clip")
        if clips_per_sample is not None and clips_per_sample < 1:
            raise OwlError(f"clips_per_sample must be at least 1 or None, got {clips_per_sample}")
        self.captions_path = Path(captions)
        self.video_root = Path(video_root) if video_root is not None else (
            self.captions_path if self.captions_path.is_dir() else self.captions_path.parent)
        if not self.video_root.is_dir():
            raise OwlError(f"video folder not found: {str(self.video_root)!r}")
        if isinstance(extensions, str):
            extensions = (extensions,)
        self.extensions = tuple(e if e.startswith(".") else f".{e}" for e in extensions)
        self.clip_seconds = float(clip_seconds)
        self.frames_per_clip = int(frames_per_clip)
        self.size = size
        self.clips_per_sample = clips_per_sample
        self.readers = ReaderCache(threads=threads)

        bad = BadEntries(str(self.captions_path))
        videos = load_captions(self.captions_path, bad, format=format, vript_text=vript_text)
        self.videos: list[dict] = []
        for video in videos:
            entry = self._prepare(video, bad, check_videos, tolerance)
            if entry is not None:
                self.videos.append(entry)
        bad.raise_or_skip(skip_invalid, what="videos")
        self.videos = [v for v in self.videos if v["video_id"] not in bad]

        self.samples: list[tuple[int, int, int]] = []  # (video, first clip, clips)
        short = 0
        for v, video in enumerate(self.videos):
            n = len(video["dynamics"])
            if clips_per_sample is None:
                self.samples.append((v, 0, n))
                continue
            if n < clips_per_sample:
                short += 1
                continue
            starts = list(range(0, n - clips_per_sample + 1, clips_per_sample))
            if starts[-1] + clips_per_sample < n:
                starts.append(n - clips_per_sample)
            self.samples.extend((v, s, clips_per_sample) for s in starts)
        if short:
            warnings.warn(f"{self.captions_path}: {short} videos are shorter than {clips_per_sample} clips "
                          f"of {clip_seconds:g} s and were left out", OwlWarning, stacklevel=2)
        if not self.samples:
            raise OwlError(f"{str(self.captions_path)!r}: no usable samples (every video was invalid or too short)")

    def _prepare(self, video: CaptionedVideo, bad: BadEntries, check_videos: bool, tolerance: float):
        path = resolve_video(self.video_root, video.video_id, self.extensions)
        if path is None:
            bad.add(video.video_id, f"video not found in {str(self.video_root)!r} "
                                    f"(tried {', '.join(self.extensions)})")
            return None
        duration = video.duration
        if check_videos:
            try:
                duration = video_info(path).duration
            except OwlError as exc:
                bad.add(video.video_id, str(exc))
                return None
        if duration is None:
            duration = max(s.end for s in video.segments)
        segments = []
        for i, segment in enumerate(video.segments):
            if segment.start >= duration or segment.end > duration + tolerance:
                bad.add(video.video_id, f"segment {i} [{segment.start:g}, {segment.end:g}] is outside the video "
                                        f"(duration {duration:.2f} s)")
                return None
            segments.append(Segment(segment.start, min(segment.end, duration), segment.sentence, segment.cut))
        n_clips = int(math.floor(duration / self.clip_seconds + 1e-6))
        if n_clips == 0:
            bad.add(video.video_id, f"video is shorter than one clip ({duration:.2f} s < {self.clip_seconds:g} s)")
            return None
        chosen = clip_captions([(s.start, s.end) for s in segments], n_clips, self.clip_seconds)
        return {
            "video_id": video.video_id, "path": str(path), "duration": duration,
            "dynamics": [segments[i].sentence if i >= 0 else "" for i in chosen],
            "new_scene": scene_starts(segments, chosen),
        }

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        v, first, count = self.samples[index]
        video = self.videos[v]
        reader = self.readers.get(video["path"], self.size)
        offsets = np.arange(self.frames_per_clip) / self.fps
        starts = (first + np.arange(count)) * self.clip_seconds
        times = (starts[:, None] + offsets[None, :]).reshape(-1)  # (T * F,)
        if times[-1] > reader.info.duration + 0.5 * reader.frame_period:
            raise OwlError(f"{video['path']!r}: clip at {starts[-1]:g} s runs past the end of the video "
                           f"({reader.info.duration:.2f} s)")
        frames = reader.frames(reader.indices_at(times))  # (T * F, H, W, 3) uint8
        cthw = thwc_to_cthw(frames)  # (C, T * F, H, W)
        channels, _, height, width = cthw.shape
        tcfhw = cthw.reshape(channels, count, self.frames_per_clip, height, width).permute(1, 0, 2, 3, 4)
        return {
            "frames": tcfhw.contiguous(),
            "dynamics": video["dynamics"][first:first + count],
            "new_scene": torch.tensor(video["new_scene"][first:first + count], dtype=torch.bool),
            "video_id": video["video_id"],
        }
