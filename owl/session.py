"""World sessions on disk: a rollout saved after every clip, so it can be resumed, branched or extended.

A session is a folder beside the video it makes (`out.mp4` -> `out.session/`):

    session.json              format, status ("preparing", "running" or "complete"), the model, the
                              output's file name, the prompt, the settings (`RolloutSettings`), the dynamics
                              plan d_0, d_1, ..., the first image's SHA-256, and per finished clip its record
                              (index, start, end, dynamics, predicted, source), how many of its frames are in
                              the video and the SHA-256 of its file
    start.safetensors         image: the first image (H, W, 3) uint8, for image-to-video only
    clips/000000.safetensors  one per finished clip:
        frames       (T, H, W, 3) uint8   the clip as filmed, uncut: the video so far is these, cut per record
        key_frames   (K, H, W, 3) uint8   O_t, the observation the next step feeds the LMM
        context      (1, C, c, h, w) f32  the clip's last latent frames: the next clip's context
        rng          (5056,) uint8        the torch.Generator state after the clip

Nothing is pickled: tensors are safetensors, the rest JSON. Every file is written atomically (temporary file and
rename), each clip's file before session.json names it, so a kill at any moment leaves a session of complete
clips only: resuming loses at most the clip that was in progress.

What is read back is checked, each failure one `OwlError` line naming the file: `open` builds the session's
`RolloutSettings` (which checks types and ranges), so a hand-edited setting is refused before any model loads;
every tensor file must match the SHA-256 recorded when it was written (flipped bytes never reach a video), and
its frames the session's height x width. Format 1 sessions recorded no checksums: their files are read
unverified.

The LMM's KV cache is not saved (it is large and tied to library versions): `replay` gives the loop a clip source
(`owl.clip_sources.Replay`) that hands it the saved clips, so a fresh `WorldSession` is run by the same loop through
the same calls, in the same order and the same chunks, as the first time, and the cache and the states read from it
are the same numbers. Given dynamics are fed as text; predicted ones are generated again from the same history with
the generator set to the state it had then (the rng saved with clip t-1), and must come out as recorded, or the
session was made by another model.

Frames are kept raw (H x W x 3 bytes each) so a resumed video is bit-identical to an uninterrupted one; a
finished session may be deleted when it will not be branched or extended.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from owl.clip_sources import Replay
from owl.errors import OwlError
from owl.files import is_temporary, read_text, remove_stale_temporaries, write_bytes_atomic
from owl.rollout import ClipRecord, ClipStep
from owl.settings import RolloutSettings
from owl.video_io import VideoWriter

FORMAT = 3  # 2 added the SHA-256 of each tensor file; 3: a history bound of null is the model's default, not "all"
READS = (1, 2, 3)  # format 1 sessions (no checksums) still open
SESSION_FILE = "session.json"


def session_path(output: str | Path) -> Path:
    """The session folder of an output video: `out.mp4` -> `out.session`."""
    return Path(output).with_suffix(".session")


def partial_path(output: str | Path) -> Path:
    """The playable video-so-far published while `output` is being made: `out.mp4` -> `out.partial.mp4`."""
    output = Path(output)
    return output.with_name(f"{output.stem}.partial.mp4")


class SessionFolder:
    """One session folder: its metadata (session.json) and its clip files."""

    def __init__(self, path: Path, meta: dict):
        self.path = path
        self.meta = meta

    # --- creating and opening -------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, *, prompt: str, image: np.ndarray | None, settings: RolloutSettings,
               dynamics: list[str | None], output: str | Path, model: dict | None,
               parent: dict | None = None, status: str = "running") -> "SessionFolder":
        """A new, empty session at `path`; an older session there is replaced (its clips are removed).

        status "preparing": the session is being filled from another one or from a video (branch, extend) and
        cannot be resumed until `mark_running`.
        """
        path = Path(path)
        if path.exists():
            if not (path / SESSION_FILE).is_file():
                raise OwlError(f"{str(path)!r} exists and is not an Owl session; move it away or choose another --out")
            _clear(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "clips").mkdir(exist_ok=True)
        image_sha256 = None
        if image is not None:
            image_sha256 = _write_tensors(path / "start.safetensors",
                                          {"image": torch.from_numpy(np.ascontiguousarray(image))})
        meta = {
            "format": FORMAT, "status": status, "model": model, "output": Path(output).name,
            "prompt": prompt, "has_image": image is not None, "image_sha256": image_sha256,
            "settings": dataclasses.asdict(settings), "dynamics": list(dynamics), "parent": parent, "clips": [],
        }
        folder = cls(path, meta)
        folder._save_meta()
        return folder

    @classmethod
    def open(cls, path: str | Path) -> "SessionFolder":
        """Open and check a saved session (OwlError with one line if it is not one)."""
        path = Path(path)
        if not path.is_dir():
            raise OwlError(f"session not found: {str(path)!r} (a session is the folder beside a video, e.g. out.session)")
        try:
            meta = json.loads(read_text(path / SESSION_FILE, f"{str(path)!r} is not an Owl session: it has no "
                                                            f"{SESSION_FILE}"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OwlError(f"session {str(path)!r} is damaged: {SESSION_FILE} is not valid JSON") from exc
        _check_meta(meta, path)
        _read_settings(meta, path)  # types and ranges, before any model loads
        folder = cls(path, meta)
        for record in folder.records:
            if not folder._clip_file(record.index).is_file():
                raise OwlError(f"session {str(path)!r} is damaged: clip file {record.index} is missing")
        remove_stale_temporaries(path / "clips")
        remove_stale_temporaries(path)
        return folder

    # --- what it holds --------------------------------------------------------------------------------------

    @property
    def prompt(self) -> str:
        return self.meta["prompt"]

    @property
    def settings(self) -> RolloutSettings:
        return _read_settings(self.meta, self.path)

    @property
    def dynamics(self) -> list[str | None]:
        return list(self.meta["dynamics"])

    @property
    def model(self) -> dict | None:
        return self.meta["model"]

    @property
    def complete(self) -> bool:
        return self.meta["status"] == "complete"

    @property
    def output(self) -> Path:
        """The video this session makes (beside the session folder)."""
        return self.path.parent / self.meta["output"]

    @property
    def records(self) -> list[ClipRecord]:
        return [ClipRecord(**{k: v for k, v in c.items() if k in _RECORD_KEYS}) for c in self.meta["clips"]]

    @property
    def written(self) -> int:
        """Frames of the video so far."""
        return sum(c["video_frames"] for c in self.meta["clips"])

    def image(self) -> np.ndarray | None:
        """The first image (H, W, 3) uint8 of an image-to-video session, else None."""
        if not self.meta["has_image"]:
            return None
        tensors = self._read_file(None, ["image"])
        s = self.settings
        _check_frames(tensors["image"].numpy(), (s.height, s.width, 3), "image", self._where(None))
        return tensors["image"].numpy()

    def _clip_file(self, index: int) -> Path:
        return self.path / "clips" / f"{index:06d}.safetensors"

    def load_clip(self, index: int) -> ClipStep:
        """Clip `index` as the loop left it: frames (T, H, W, 3) and key frames (K, H, W, 3) uint8 at the session's
        size, context latents and generator state; its file verified against its checksum."""
        tensors = self._read_file(index, ["frames", "key_frames", "context", "rng"])
        s, video_frames = self.settings, self.meta["clips"][index]["video_frames"]
        frames, observation = tensors["frames"].numpy(), tensors["key_frames"].numpy()
        _check_frames(frames, (None, s.height, s.width, 3), "frames", self._where(index))
        _check_frames(observation, (None, s.height, s.width, 3), "key frames", self._where(index))
        if len(frames) < video_frames:
            raise OwlError(f"{self._where(index)}: {len(frames)} frames, but {SESSION_FILE} puts {video_frames} of "
                           f"them in the video; {self._remedy(index)}")
        return ClipStep(self.records[index], frames, video_frames, observation, tensors["context"], tensors["rng"])

    # Reading a file: clip `index`, or the first image (index None). The bytes must match the SHA-256 that
    # session.json recorded when the file was written; a format 1 session recorded none (read unverified).

    def _read_file(self, index: int | None, names: list[str]) -> dict[str, torch.Tensor]:
        from safetensors import SafetensorError
        from safetensors.torch import load

        data = self._verified_bytes(index)
        try:
            tensors = load(data)
        except (SafetensorError, ValueError) as exc:
            raise OwlError(f"{self._where(index)} is damaged: not a safetensors file; {self._remedy(index)}") from exc
        missing = [name for name in names if name not in tensors]
        if missing:
            raise OwlError(f"{self._where(index)} is damaged: it lacks {', '.join(missing)}; {self._remedy(index)}")
        return tensors

    def _verified_bytes(self, index: int | None) -> bytes:
        if index is None:
            file, sha256 = self.path / "start.safetensors", self.meta.get("image_sha256")
        else:
            file, sha256 = self._clip_file(index), self.meta["clips"][index].get("sha256")
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise OwlError(f"{self._where(index)} cannot be read ({exc.strerror}); {self._remedy(index)}") from exc
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise OwlError(f"{self._where(index)} is damaged: checksum mismatch; {self._remedy(index)}")
        return data

    def _where(self, index: int | None) -> str:
        """How messages name a file: 'clip 3 of session 'out.session' (clips/000003.safetensors)'."""
        what, name = ("the first image", "start.safetensors") if index is None else \
            (f"clip {index}", f"clips/{self._clip_file(index).name}")
        return f"{what} of session {str(self.path)!r} ({name})"

    def _remedy(self, index: int | None) -> str:
        """What to do about a damaged file: clips 1.. can be cut off by a branch; clip 0 or the image cannot."""
        if not index:
            return "generate the video again"
        return f"keep clips 0..{index - 1} with: owl branch {self.path} --at {index} (or generate the video again)"

    def video_frames(self, count: int | None = None) -> Iterator[np.ndarray]:
        """The video so far, clip by clip ((T, H, W, 3) uint8 each), of the first `count` clips (all by default)."""
        for index, entry in enumerate(self.meta["clips"][:count]):
            yield self.load_clip(index).frames[: entry["video_frames"]]

    # --- writing --------------------------------------------------------------------------------------------

    def save_clip(self, step: ClipStep) -> None:
        """Save one finished clip (or update the last one): its file first, then session.json."""
        index = step.record.index
        if index > len(self.meta["clips"]):
            raise ValueError(f"clip {index} saved before clip {len(self.meta['clips'])}")
        sha256 = _write_tensors(self._clip_file(index), {
            "frames": torch.from_numpy(np.ascontiguousarray(step.frames)),
            "key_frames": torch.from_numpy(np.ascontiguousarray(step.key_frames)),
            "context": step.context.detach().float().cpu().contiguous(),
            "rng": step.rng.contiguous(),
        })
        entry = {**dataclasses.asdict(step.record), "video_frames": int(step.video_frames), "sha256": sha256}
        self.meta["clips"] = self.meta["clips"][:index] + [entry]
        self._save_meta()

    def copy_clips(self, source: "SessionFolder", count: int) -> None:
        """Take clips 0..count-1 from another session (branch, extend), files copied byte for byte once their
        checksums match (with them: a clip the source read unverified stays unverified)."""
        for index in range(count):
            write_bytes_atomic(self._clip_file(index), source._verified_bytes(index))
        self.meta["clips"] = [dict(c) for c in source.meta["clips"][:count]]
        self._save_meta()

    @property
    def preparing(self) -> bool:
        return self.meta["status"] == "preparing"

    def check_resumable(self) -> None:
        """OwlError unless `resume` can carry this session on."""
        if self.complete:
            raise OwlError(f"session {str(self.path)!r} is already complete ({str(self.output)!r}); continue it "
                           "with extend, or fork it with branch")
        if self.preparing:
            raise OwlError(f"session {str(self.path)!r} was interrupted while branch or extend was preparing it; "
                           "run that command again")

    def grow(self, seconds: float, dynamics: list[str | None]) -> None:
        """Lengthen the session to `seconds`, with the dynamics plan `dynamics`, for `resume` to carry on (a world
        stepped clip by clip, owl/world.py). The new settings are checked as any session's."""
        meta = {**self.meta, "settings": {**self.meta["settings"], "seconds": seconds}}
        _read_settings(meta, self.path)
        self.meta = {**meta, "dynamics": list(dynamics), "status": "running"}
        self._save_meta()

    def mark_running(self) -> None:
        self.meta["status"] = "running"
        self._save_meta()

    def mark_complete(self) -> None:
        self.meta["status"] = "complete"
        self._save_meta()

    def write_video(self, path: str | Path) -> Path:
        """Write the video so far to `path` (atomically), clip by clip."""
        with VideoWriter(path, fps=self.settings.fps) as writer:
            for frames in self.video_frames():
                writer.append(frames)
        return writer.path

    def _save_meta(self) -> None:
        write_bytes_atomic(self.path / SESSION_FILE, (json.dumps(self.meta, indent=2) + "\n").encode())

    # --- rebuilding the world session -----------------------------------------------------------------------

    def replay(self, then, upto: int | None = None) -> Replay:
        """The clip source that carries this session on through `owl.rollout.rollout`: clips 0..upto (default:
        all saved) replayed, the world model reading them exactly as it did, then the clips of `then`."""
        upto = len(self.meta["clips"]) - 1 if upto is None else upto
        return Replay(self, upto, then, _describe_model(self.model))


class PartialVideo:
    """A playable mp4 of the video so far (`out.partial.mp4`), republished atomically after each clip so a user
    can watch a long rollout grow and abort it; removed once the output is complete.

    Each publish re-encodes the whole video so far; past `always_seconds` of video it is skipped whenever
    publishing has taken more than `budget` of the time since the rollout began, so it never costs more than
    about that share of a long run (the partial then lags a few clips behind).
    """

    def __init__(self, folder: SessionFolder, path: Path, always_seconds: float = 120.0, budget: float = 0.1):
        self.folder, self.path = folder, path
        self.always_seconds, self.budget = always_seconds, budget
        self.started, self.spent = time.perf_counter(), 0.0

    def publish(self) -> Path | None:
        """Publish the video so far (or skip, see above); returns the partial's path when there is one."""
        elapsed = time.perf_counter() - self.started
        seconds = self.folder.written / self.folder.settings.fps
        if seconds <= self.always_seconds or self.spent <= self.budget * elapsed:
            tick = time.perf_counter()
            self.folder.write_video(self.path)
            self.spent += time.perf_counter() - tick
        return self.path if self.path.is_file() else None

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


# --- helpers of this file ------------------------------------------------------------------------------------

_SETTINGS_KEYS = {f.name for f in dataclasses.fields(RolloutSettings)}
# settings added after the first sessions were written: an older session without them takes these
_SETTINGS_DEFAULTS = {"max_observations": 0, "max_steps": 0}  # keep all, as those sessions did
_RECORD_KEYS = {f.name for f in dataclasses.fields(ClipRecord)}
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _describe_model(model: dict | None) -> str:
    if not model:
        return "unknown"
    return f"--preset {model['preset']}" if "preset" in model else f"--model {model.get('path')}"


def _check_meta(meta, path: Path) -> None:
    where = f"session {str(path)!r} is damaged"
    if not isinstance(meta, dict) or meta.get("format") not in READS:
        raise OwlError(f"{where}: unknown format (this Owl reads formats {', '.join(map(str, READS))})")
    needed = {"status": str, "output": str, "prompt": str, "has_image": bool, "settings": dict, "dynamics": list,
              "clips": list}
    for key, kind in needed.items():
        if not isinstance(meta.get(key), kind):
            raise OwlError(f"{where}: {SESSION_FILE} lacks a valid {key!r}")
    if not all(d is None or isinstance(d, str) for d in meta["dynamics"]):
        raise OwlError(f"{where}: every entry of 'dynamics' must be a string or null")
    if meta.get("image_sha256") is not None and not _is_sha256(meta["image_sha256"]):
        raise OwlError(f"{where}: 'image_sha256' must be 64 lowercase hex digits or null")
    for n, clip in enumerate(meta["clips"]):
        if not isinstance(clip, dict) or clip.get("index") != n:
            raise OwlError(f"{where}: clip entry {n} is not a clip record")
        bad = _bad_clip_key(clip)
        if bad:
            raise OwlError(f"{where}: clip entry {n} has {bad}")


def _bad_clip_key(clip: dict) -> str | None:
    """What is wrong with a clip entry of session.json (a ClipRecord plus video_frames and sha256), or None."""
    accepted = {  # key: (test, what it accepts)
        "index": (_is_count, "a whole number >= 0"), "start": (_is_seconds, "a finite number of seconds >= 0"),
        "end": (_is_seconds, "a finite number of seconds >= 0"),
        "dynamics": (lambda v: isinstance(v, str), "a string"),
        "predicted": (lambda v: isinstance(v, bool), "true or false"),
        "source": (lambda v: v in ("film", "video"), '"film" or "video"'),
        "video_frames": (_is_count, "a whole number >= 0"), "sha256": (_is_sha256, "64 lowercase hex digits"),
    }
    missing = sorted((_RECORD_KEYS | {"video_frames"}) - set(clip))  # sha256 may be missing: format 1
    if missing:
        return f"no {missing[0]!r}"
    for key, value in clip.items():
        if key not in accepted:
            return f"an unknown key {key!r} (accepted: {', '.join(accepted)})"
        test, what = accepted[key]
        if not test(value):
            return f"{key} = {json.dumps(value)}; it must be {what}"
    return None


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_seconds(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _is_sha256(value) -> bool:
    return isinstance(value, str) and bool(_SHA256.fullmatch(value))


def _read_settings(meta: dict, path: Path) -> RolloutSettings:
    """A session's `RolloutSettings` from session.json; OwlError naming the key when one cannot be taken.

    The types and ranges are RolloutSettings' own checks; only the keys (and older sessions' defaults) are the
    session's. Before format 3 a history bound of null meant "keep all", which is 0 now."""
    saved = meta["settings"]
    if meta["format"] < 3:
        saved = {**saved, **{k: 0 for k in _SETTINGS_DEFAULTS if saved.get(k, None) is None}}
    where = f"session {str(path)!r} has bad settings in {SESSION_FILE}"
    unknown = sorted(set(saved) - _SETTINGS_KEYS)
    if unknown:
        raise OwlError(f"{where}: unknown key {unknown[0]!r} (accepted: {', '.join(sorted(_SETTINGS_KEYS))})")
    missing = sorted(_SETTINGS_KEYS - set(_SETTINGS_DEFAULTS) - set(saved))
    if missing:
        raise OwlError(f"{where}: {missing[0]!r} is missing (only {', '.join(sorted(_SETTINGS_DEFAULTS))} may be, "
                       "in older sessions)")
    try:
        return RolloutSettings(**{**_SETTINGS_DEFAULTS, **saved})
    except (TypeError, ValueError) as exc:  # OwlError is a ValueError: RolloutSettings' message names the key
        raise OwlError(f"{where}: {exc}") from exc


def _check_frames(array: np.ndarray, shape: tuple[int | None, ...], name: str, where: str) -> None:
    """OwlError unless `array` is uint8 of `shape` (None: any length >= 1): the session's height x width x 3."""
    fits = len(array.shape) == len(shape) and all(m >= 1 if n is None else m == n for m, n in zip(array.shape, shape))
    if array.dtype != np.uint8 or not fits:
        expected = ", ".join("T" if n is None else str(n) for n in shape)
        raise OwlError(f"{where}: {name} of shape {tuple(array.shape)} {array.dtype}, expected ({expected}) uint8 "
                       "(the session's height x width x 3)")


def _clear(path: Path) -> None:
    """Remove what a session folder holds (only its own files)."""
    clips = path / "clips"
    if clips.is_dir():
        for f in clips.iterdir():
            if f.suffix == ".safetensors" or is_temporary(f.name):
                f.unlink()
    for name in (SESSION_FILE, "start.safetensors"):
        (path / name).unlink(missing_ok=True)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write a safetensors file atomically; returns its SHA-256 (hex), which session.json records."""
    from safetensors.torch import save

    data = save(tensors)
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()
