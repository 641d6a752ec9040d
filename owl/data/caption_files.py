"""Dense caption files, ActivityNet Captions and Vript, read into one form: videos with timed sentences.

ActivityNet Captions (Krishna et al., ICCV 2017; train.json / val_1.json) is one JSON object:

    {"v_QOlSCBRmfWY": {"duration": 82.73, "timestamps": [[0.83, 19.86], [17.37, 60.81]],
                        "sentences": ["A young woman is seen ...", "She then ..."]}}

An entry may also hold "state_sentences" (Owl's extension, written by Shapes World): per segment, its sentence
with every object it mentions named in full ("the circle comes back" -> "the purple circle comes back"), what
the world state should know then; the world stage can train the state to name it (`words_from: state`).

Vript (Yang et al., NeurIPS 2024, github.com/mutonix/Vript) annotates every scene of a video, a scene being a
shot cut by PySceneDetect, with a script-like caption. Its files come in a few shapes; all of these are read:
- a per-video caption file: {"meta": {"video_id", ...}, "data": {"<id>-Scene-001": {"clip_id", "caption":
  {"shot_type", "camera_movement", "content", "scene_title"}, "voiceover", "timestamp"?}}}
- a per-video file with "clips" (a list or a dict) whose items carry "clip_id", a time span and "content"
  (either the text or the caption object above), next to optional "global_info";
- JSONL with one such video per line, or one clip per line (grouped by "video_id", "meta.video_id" or the
  clip id before "-Scene-"); a folder of per-video files (*.json, *.jsonl).
A clip's span is read from "timestamp" / "timestamps" (a pair, or "start - end"), "start"/"end",
"start_time"/"end_time" or "start_timestamp"/"end_timestamp", as seconds or "HH:MM:SS.mmm". A clip without one
is looked up in `<video_id>_cut_meta.json` (beside the caption file or in a `<video_id>/` folder there), which
may map clip ids to spans in the same ways. Every Vript clip opens a new scene (`Segment.cut`).

Entries that cannot be used (bad timestamps, empty sentences, a malformed JSONL line) are collected in a
`BadEntries` for the caller; a caption file that is not JSON at all raises OwlError at once.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from owl.data.bad_entries import BadEntries, jsonl_values
from owl.errors import OwlError


@dataclass
class Segment:
    """One captioned span of a video."""

    start: float
    end: float
    sentence: str
    cut: bool = False  # a scene cut is annotated at the start of this segment (every Vript scene)
    state: str = ""  # the sentence with its objects named in full ("state_sentences"); "" where not annotated


@dataclass
class CaptionedVideo:
    """A video id with its captioned segments, sorted by start time."""

    video_id: str
    duration: float | None  # as annotated; None when the file does not say
    segments: list[Segment]


FORMATS = ("auto", "activitynet", "vript")


def load_captions(path: str | Path, bad: BadEntries, format: str = "auto", vript_text: str = "content"):
    """Read a caption file (or a folder of Vript files) into a list of CaptionedVideo."""
    path = Path(path)
    if format not in FORMATS:
        raise OwlError(f"unknown caption format {format!r}; accepted: {', '.join(FORMATS)}")
    if not path.exists():
        raise OwlError(f"caption file not found: {str(path)!r}")
    if path.is_dir():
        if format == "activitynet":
            raise OwlError(f"ActivityNet captions are one JSON file, got a folder: {str(path)!r}")
        return load_vript(path, bad, vript_text)
    if path.suffix.lower() == ".jsonl":
        if format == "activitynet":
            raise OwlError(f"ActivityNet captions are one JSON file, got JSONL: {str(path)!r}")
        return load_vript(path, bad, vript_text)
    data = read_json(path)
    if format == "auto":
        format = "activitynet" if _looks_like_activitynet(data) else "vript"
    if format == "activitynet":
        return activitynet_videos(data, bad)
    return vript_videos(data, path, bad, vript_text)


def read_json(path: Path):
    """json.load with a one-line OwlError naming the file, line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise OwlError(f"{str(path)!r} is not a UTF-8 text file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise OwlError(f"malformed JSON in {str(path)!r} at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def parse_time(value) -> float:
    """Seconds from a number or a string: "12.5", "01:02.5", "00:01:02.500", "00:01:02,500"."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        parts = value.strip().replace(",", ".").split(":")
        if 1 <= len(parts) <= 3 and all(re.fullmatch(r"\d+(\.\d*)?", p) for p in parts):
            seconds = 0.0
            for part in parts:
                seconds = seconds * 60 + float(part)
            return seconds
    raise ValueError(f"not a time: {value!r}")


# ----------------------------------------------------------------------------------------------------------------
# ActivityNet Captions


def _looks_like_activitynet(data) -> bool:
    if not isinstance(data, dict) or not data:
        return False
    if {"meta", "data"} & set(data) or "clips" in data:
        return False
    first = next(iter(data.values()))
    return isinstance(first, dict) and ("sentences" in first or "timestamps" in first)


def activitynet_videos(data, bad: BadEntries) -> list[CaptionedVideo]:
    if not isinstance(data, dict):
        raise OwlError(f"{bad.source}: ActivityNet captions must be a JSON object {{video_id: {{...}}}}, "
                       f"got {type(data).__name__}")
    videos = []
    for video_id, entry in data.items():
        if not isinstance(entry, dict):
            bad.add(video_id, "entry is not an object")
            continue
        timestamps, sentences = entry.get("timestamps"), entry.get("sentences")
        if not isinstance(timestamps, list) or not isinstance(sentences, list):
            bad.add(video_id, "needs lists 'timestamps' and 'sentences'")
            continue
        if len(timestamps) != len(sentences):
            bad.add(video_id, f"{len(timestamps)} timestamps but {len(sentences)} sentences")
            continue
        states = entry.get("state_sentences", [""] * len(sentences))
        if (not isinstance(states, list) or len(states) != len(sentences)
                or not all(isinstance(s, str) and s.strip() for s in states if s != "")):
            bad.add(video_id, f"'state_sentences' must be a list of {len(sentences)} sentences, one per segment")
            continue
        duration = entry.get("duration")
        if duration is not None and (not isinstance(duration, (int, float)) or isinstance(duration, bool)
                                     or duration <= 0):
            bad.add(video_id, f"duration must be a positive number, got {duration!r}")
            continue
        segments = []
        for i, (span, sentence, state) in enumerate(zip(timestamps, sentences, states)):
            problem = _check_segment(span, sentence)
            if problem:
                bad.add(video_id, f"segment {i}: {problem}")
                break
            segments.append(Segment(float(span[0]), float(span[1]), sentence.strip(), state=state.strip()))
        else:
            if not segments:
                bad.add(video_id, "no segments")
                continue
            segments.sort(key=lambda s: (s.start, s.end))
            videos.append(CaptionedVideo(str(video_id), None if duration is None else float(duration), segments))
    return videos


def _check_segment(span, sentence) -> str | None:
    if not isinstance(span, (list, tuple)) or len(span) != 2:
        return f"timestamp must be [start, end], got {span!r}"
    if not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in span):
        return f"timestamp must be numbers, got {span!r}"
    if span[0] < 0 or span[1] <= span[0]:
        return f"timestamp must have 0 <= start < end, got {list(span)}"
    if not isinstance(sentence, str) or not sentence.strip():
        return f"empty sentence at {list(span)}"
    return None


# ----------------------------------------------------------------------------------------------------------------
# Vript

_SPAN_KEYS = (("start", "end"), ("start_time", "end_time"), ("start_timestamp", "end_timestamp"))


def _span(item) -> tuple[float, float] | None:
    """A clip's (start, end) in seconds from any of the accepted keys; None if it carries none."""
    if not isinstance(item, dict):
        return None
    for key in ("timestamp", "timestamps", "time", "span"):
        value = item.get(key)
        if isinstance(value, str) and re.search(r"\d\s*(-|-->|to)\s*\d", value):
            value = re.split(r"\s*(?:-->|-|to)\s*", value.strip(), maxsplit=1)
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return parse_time(value[0]), parse_time(value[1])
    for first, second in _SPAN_KEYS:
        if first in item and second in item:
            return parse_time(item[first]), parse_time(item[second])
    return None


def _text(clip, field: str) -> str | None:
    """The caption text of a Vript clip: caption.content (or `field`), or a plain string."""
    for key in ("caption", "content"):
        value = clip.get(key)
        if isinstance(value, dict):
            value = value.get(field)
        if isinstance(value, str):
            return value
    return None


def _clip_items(container) -> list[tuple[str | None, dict]]:
    """(clip id or None, clip) pairs from a list or a dict of clips."""
    if isinstance(container, dict):
        return [(str(k), v) for k, v in container.items()]
    if isinstance(container, list):
        return [(None, v) for v in container]
    return []


def _video_id(obj: dict, fallback: str | None) -> str | None:
    for holder in (obj.get("meta"), obj.get("global_info"), obj):
        if isinstance(holder, dict) and isinstance(holder.get("video_id"), str) and holder["video_id"]:
            return holder["video_id"]
    return fallback


def _cut_meta(video_id: str, near: Path) -> dict[str, tuple[float, float]]:
    """Clip spans from `<video_id>_cut_meta.json` beside the caption file, if there is one."""
    folder = near if near.is_dir() else near.parent
    for candidate in (folder / f"{video_id}_cut_meta.json", folder / video_id / f"{video_id}_cut_meta.json"):
        if candidate.is_file():
            data = read_json(candidate)
            if isinstance(data, dict) and isinstance(data.get("clips", data.get("data")), (dict, list)):
                data = data.get("clips", data.get("data"))
            spans = {}
            for key, item in _clip_items(data):
                clip_id = item.get("clip_id", key) if isinstance(item, dict) else key
                try:
                    span = _span(item)
                except ValueError:
                    span = None
                if clip_id is not None and span is not None:
                    spans[str(clip_id)] = span
            return spans
    return {}


def _vript_video(obj, fallback_id: str | None, source: Path, bad: BadEntries, field: str):
    """One Vript video object -> CaptionedVideo, or None (and a bad entry)."""
    video_id = _video_id(obj, fallback_id)
    clips = obj.get("data", obj.get("clips", obj.get("scenes")))
    if video_id is None:
        bad.add(fallback_id or "?", "no video_id")
        return None
    items = _clip_items(clips)
    if not items:
        bad.add(video_id, "no clips ('data' or 'clips')")
        return None
    sidecar = None
    segments = []
    for n, (key, clip) in enumerate(items):
        if not isinstance(clip, dict):
            bad.add(video_id, f"clip {key or n} is not an object")
            return None
        clip_id = str(clip.get("clip_id", key or n))
        try:
            span = _span(clip) or _span(clip.get("meta"))
        except ValueError as exc:
            bad.add(video_id, f"clip {clip_id}: {exc}")
            return None
        if span is None:
            sidecar = _cut_meta(video_id, source) if sidecar is None else sidecar
            span = sidecar.get(clip_id)
        if span is None:
            bad.add(video_id, f"clip {clip_id} has no timestamps")
            return None
        text = _text(clip, field)
        if text is None or not text.strip():
            bad.add(video_id, f"clip {clip_id}: empty {field!r}")
            return None
        if span[0] < 0 or span[1] <= span[0]:
            bad.add(video_id, f"clip {clip_id}: timestamp must have 0 <= start < end, got {list(span)}")
            return None
        segments.append(Segment(span[0], span[1], text.strip(), cut=True))
    segments.sort(key=lambda s: (s.start, s.end))
    duration = None
    for holder in (obj.get("meta"), obj.get("global_info"), obj):
        if isinstance(holder, dict) and holder.get("duration") is not None:
            try:
                duration = parse_time(holder["duration"])
            except ValueError:
                pass
            break
    return CaptionedVideo(video_id, duration, segments)


def _group_clip_rows(rows: list[tuple[str, dict]]) -> dict[str, dict]:
    """Clip-per-line rows -> {video_id: {"video_id", "clips": [...]}}, in order of first appearance."""
    videos: dict[str, dict] = {}
    for where, row in rows:
        video_id = _video_id(row, None)
        if video_id is None and isinstance(row.get("clip_id"), str):
            video_id = row["clip_id"].rsplit("-Scene-", 1)[0]
        video_id = video_id or where
        videos.setdefault(video_id, {"video_id": video_id, "clips": []})["clips"].append(row)
    return videos


def vript_videos(data, source: Path, bad: BadEntries, field: str = "content") -> list[CaptionedVideo]:
    """Vript JSON already loaded: one video, {video_id: video}, or a list of videos or clip rows."""
    stem = source.stem.removesuffix("_caption") if source.is_file() else None
    if isinstance(data, dict) and any(k in data for k in ("data", "clips", "scenes")):
        video = _vript_video(data, stem, source, bad, field)
        return [video] if video else []
    if isinstance(data, dict):
        objects = [(str(k), v) for k, v in data.items()]
    elif isinstance(data, list):
        objects = [(f"{source.name}[{i}]", v) for i, v in enumerate(data)]
    else:
        raise OwlError(f"{bad.source}: Vript captions must be a JSON object or list, got {type(data).__name__}")
    videos, rows = [], []
    for key, obj in objects:
        if not isinstance(obj, dict):
            bad.add(key, "entry is not an object")
        elif any(k in obj for k in ("data", "clips", "scenes")):
            video = _vript_video(obj, key if isinstance(data, dict) else None, source, bad, field)
            if video:
                videos.append(video)
        else:
            rows.append((key, obj))
    for video_id, obj in _group_clip_rows(rows).items():
        video = _vript_video(obj, video_id, source, bad, field)
        if video:
            videos.append(video)
    return videos


def load_vript(path: Path, bad: BadEntries, field: str = "content") -> list[CaptionedVideo]:
    """Vript from a JSONL file or a folder of per-video JSON / JSONL files; a malformed line is a bad entry."""
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in (".json", ".jsonl")
                   and not p.name.endswith("_cut_meta.json")) if path.is_dir() else [path]
    if not files:
        raise OwlError(f"no .json or .jsonl caption files in {str(path)!r}")
    videos = []
    for file in files:
        if file.suffix.lower() == ".json":
            try:
                data = read_json(file)
            except OwlError as exc:
                bad.add(file.name, str(exc))
                continue
            videos.extend(vript_videos(data, file, bad, field))
            continue
        items = [value for _, value in jsonl_values(file, bad, lambda number: f"{file.name}:{number}")]
        videos.extend(vript_videos(items, file, bad, field))
    return videos
