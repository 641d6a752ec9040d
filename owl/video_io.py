"""Video files: decord for reading, imageio (ffmpeg) for writing, always atomically.

Frames travel through Owl as uint8 arrays laid out `(T, H, W, C)` (`thwc`), RGB. Models take float tensors
`(C, T, H, W)` (`cthw`) in [-1, 1]; `thwc_to_cthw` and `cthw_to_thwc` convert between the two.

Reading picks frames by time, not by index: `read_span(path, start, end, fps=8, num_frames=32, size=(64, 64))`
turns the wanted times into frame indices with the file's own timestamps (so variable frame rate files come out
evenly spaced in time) and asks decord for exactly those frames; nothing else is decoded to RGB. Frames are
resized while decoding to cover `size` and then centre-cropped, so the aspect ratio is kept.

What decord 0.6 gets wrong, and what is done about it:
- rotation metadata: decord turns 180-degree files correctly but returns garbage (or fails) for 90/270. Rotated
  MP4/MOV files are therefore read from memory with their display matrix set to identity, and the frames are
  turned with `np.rot90` here. The rotation comes from the video track's `tkhd` box (ISO/IEC 14496-12, 8.3.2).
- some frame widths (8, 16, 24, 48, 72, ...): single frames come back with padded rows and `get_batch` fails.
  Files of such a width are read frame by frame with the padding cut off; scaled reads pick a slightly larger
  size that decodes cleanly and let the centre crop absorb it.
- errors: decord raises its own exceptions with C++ traces; every failure becomes one `OwlError` naming the file.
Audio tracks are ignored (decord picks the best video stream).

Readers are cached per process by `ReaderCache`: a dataset holds one, opens readers lazily inside each
DataLoader worker, and drops them when pickled or forked, so decord handles never cross a process boundary.

Writing is streaming: `VideoWriter` appends each finished clip to the mp4 at once, so a long rollout never holds
the whole video in memory. The file is written under a temporary name beside the target and moved into place
only when it is complete; an error or Ctrl-C removes the temporary file and leaves nothing at the target.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import struct
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from owl.errors import OwlError
from owl.files import mp4_path, temporary_path

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")  # what folder scans pick up, in this order


# x264's speed preset. On Owl's videos "faster" spends a third less CPU than the default "medium", for a 6% smaller
# file 0.1 dB lower in PSNR (`python benchmarks/encoding.py`), so encoding takes less from the loop it runs beside.
X264_PRESET = "faster"

# How much nicer than the loop the encoding thread and its ffmpeg run: encoding is background work, so it takes the
# CPU the loop leaves (`python benchmarks/world_model_steps.py` measures what that changes). 0: the loop's priority.
ENCODER_NICENESS = 10


class VideoWriter:
    """Streams `(T, H, W, C)` uint8 RGB frames into an mp4 (H.264, yuv420p), moved into place on `close()`.

    Use as a context manager: on an exception inside the block (KeyboardInterrupt included) the temporary file
    is deleted and the target path is left as it was.

        with VideoWriter("out.mp4", fps=8) as writer:
            writer.append(frames_thwc)

    Encoding runs on a thread of its own, so the loop films the next clip while ffmpeg takes this one (at most
    two appended chunks wait, so memory stays flat); an encoding error is raised by the next `append` or by
    `close`. Appended arrays must not be changed afterwards.
    """

    def __init__(self, path: str | os.PathLike, fps: float, quality: int = 8, preset: str = X264_PRESET):
        self.path = mp4_path(path)  # (no lock here: the rollout holding `output_lock` writes through this)
        self.fps = float(fps)
        self.quality, self.preset = quality, preset
        self.num_frames = 0
        self.tmp_path = temporary_path(self.path)
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._queue = None
        self._thread = None
        self._error: BaseException | None = None

    def append(self, frames_thwc: np.ndarray) -> None:
        """Append frames (T, H, W, 3) uint8; every call must keep the first call's H and W."""
        if frames_thwc.ndim != 4 or frames_thwc.shape[-1] != 3 or frames_thwc.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames_thwc.dtype} {tuple(frames_thwc.shape)}")
        if self._writer is None:
            import queue

            import imageio

            self._size = frames_thwc.shape[1:3]
            # macro_block_size=1: never let ffmpeg silently resize; Owl's sizes are multiples of 16 anyway.
            self._writer = imageio.get_writer(
                self.tmp_path, format="FFMPEG", mode="I", fps=self.fps, codec="libx264",
                quality=self.quality, pixelformat="yuv420p", macro_block_size=1,
                output_params=["-preset", self.preset],
            )
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(target=self._encode, name="owl-video-writer", daemon=True)
            self._thread.start()
        if frames_thwc.shape[1:3] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {frames_thwc.shape[1:3]}")
        self._raise_error()
        self._queue.put(frames_thwc)
        self.num_frames += len(frames_thwc)

    def _encode(self) -> None:
        """The encoding thread: write each queued chunk until None arrives; keep the first error.

        Its niceness rises first (Linux keeps one per thread), and ffmpeg, started from it at the first frame,
        inherits that: the loop's threads then get the CPU before the encoder does."""
        if ENCODER_NICENESS and sys.platform.startswith("linux"):
            thread = threading.get_native_id()
            with contextlib.suppress(OSError):
                niceness = os.getpriority(os.PRIO_PROCESS, thread) + ENCODER_NICENESS
                os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness))
        while (chunk := self._queue.get()) is not None:
            if self._error is None:
                try:
                    for frame in chunk:
                        self._writer.append_data(frame)
                except BaseException as exc:  # raised in the caller's thread by append or close
                    self._error = exc

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def _finish_encoding(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def close(self) -> Path:
        """Finish the file and move it into place; returns the final path."""
        if self._writer is None:
            raise ValueError("no frames were written")
        self._finish_encoding()
        try:
            self._raise_error()
        except BaseException:
            self.abort()
            raise
        self._writer.close()
        self._writer = None
        try:
            os.replace(self.tmp_path, self.path)
        except OSError as exc:  # e.g. a folder appeared at the path meanwhile: leave nothing half-written behind
            self.tmp_path.unlink(missing_ok=True)
            raise OwlError(f"cannot move the finished video to {str(self.path)!r}: {exc.strerror}") from exc
        return self.path

    def abort(self) -> None:
        """Drop the partial file; the target path is left untouched."""
        self._finish_encoding()
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:  # the file is being discarded; a failing close must not hide the original error
                pass
            self._writer = None
        self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(path: str | os.PathLike, frames_thwc: np.ndarray, fps: float) -> Path:
    """Write a whole (T, H, W, 3) uint8 video at once, atomically; returns the path."""
    with VideoWriter(path, fps=fps) as writer:
        writer.append(frames_thwc)
    return writer.path


# ----------------------------------------------------------------------------------------------------------------
# Frame layout


def thwc_to_cthw(frames_thwc: np.ndarray):
    """uint8 (T, H, W, C) -> float32 torch tensor (C, T, H, W) in [-1, 1]."""
    import torch

    frames = torch.from_numpy(np.ascontiguousarray(frames_thwc))
    return frames.permute(3, 0, 1, 2).float().div_(127.5).sub_(1.0)


def cthw_to_thwc(frames_cthw) -> np.ndarray:
    """float tensor (C, T, H, W) in [-1, 1] -> uint8 (T, H, W, C), rounded and clipped."""
    import torch

    frames = ((frames_cthw.detach().float().cpu() + 1.0) * 127.5).round().clamp_(0, 255).to(torch.uint8)
    return frames.permute(1, 2, 3, 0).numpy()


# ----------------------------------------------------------------------------------------------------------------
# Rotation metadata (MP4 / MOV)

_MP4_CONTAINERS = {b"moov", b"trak", b"mdia"}


def _boxes(data: bytes | bytearray, start: int, end: int):
    """Yield (type, body_start, box_end) of the ISO-BMFF boxes in data[start:end]; stops at a malformed box."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _top_level_box(f, kind: bytes) -> bytes | None:
    """Read one top-level box body from an open file by seeking past the others (moov may sit after mdat)."""
    f.seek(0, os.SEEK_END)
    end = f.tell()
    pos = 0
    while pos + 8 <= end:
        f.seek(pos)
        header = f.read(16)
        if len(header) < 8:
            return None
        size, this = struct.unpack(">I4s", header[:8])
        head = 8
        if size == 1:
            if len(header) < 16:
                return None
            size, head = struct.unpack(">Q", header[8:16])[0], 16
        elif size == 0:
            size = end - pos
        if size < head:
            return None
        if this == kind:
            f.seek(pos + head)
            return f.read(size - head)
        pos += size
    return None


def _video_tkhd_matrix_offset(moov: bytes | bytearray, base: int = 0) -> int | None:
    """Offset of the 3x3 display matrix in the video track's tkhd, inside a moov body (plus `base`)."""
    for kind, body, end in _boxes(moov, 0, len(moov)):
        if kind != b"trak":
            continue
        tkhd, is_video = None, False
        for kind2, body2, end2 in _boxes(moov, body, end):
            if kind2 == b"tkhd":
                tkhd = body2
            elif kind2 == b"mdia":
                for kind3, body3, _ in _boxes(moov, body2, end2):
                    # hdlr: version/flags (4), pre_defined (4), handler_type (4)
                    if kind3 == b"hdlr" and moov[body3 + 8:body3 + 12] == b"vide":
                        is_video = True
        if is_video and tkhd is not None:
            # tkhd v0: times and ids take 20 bytes, v1: 32; then reserved (8), layer/group/volume/reserved (8).
            version = moov[tkhd]
            offset = tkhd + 4 + (32 if version == 1 else 20) + 16
            if offset + 36 <= len(moov):
                return base + offset
    return None


def _rotation_from_matrix(matrix: bytes) -> int:
    """Counter-clockwise display rotation in degrees (0, 90, 180, 270) of a tkhd matrix, as ffmpeg reports it."""
    a, b = struct.unpack(">2i", matrix[:8])
    if a == 0 and b == 0:
        return 0
    return int(round(-math.degrees(math.atan2(b, a)) / 90.0)) % 4 * 90


def _is_iso_bmff(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(12)
    return len(head) == 12 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


def video_rotation(path: str | os.PathLike) -> int:
    """Display rotation (counter-clockwise degrees: 0, 90, 180 or 270) stored in an MP4/MOV file; 0 otherwise."""
    path = Path(path)
    if not _is_iso_bmff(path):
        return 0
    with open(path, "rb") as f:
        moov = _top_level_box(f, b"moov")
    if moov is None:
        return 0
    offset = _video_tkhd_matrix_offset(moov)
    return 0 if offset is None else _rotation_from_matrix(moov[offset:offset + 36])


def _unrotated_bytes(path: Path) -> bytes:
    """The file's bytes with the video track's display matrix set to identity (decord then decodes it as coded)."""
    data = bytearray(path.read_bytes())
    for kind, body, end in _boxes(data, 0, len(data)):
        if kind == b"moov":
            offset = _video_tkhd_matrix_offset(bytes(data[body:end]), base=body)
            if offset is not None:
                data[offset:offset + 36] = struct.pack(">9i", 1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)
    return bytes(data)


# ----------------------------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds, as displayed (width and height after rotation)."""

    path: str
    frames: int           # number of video frames
    fps: float            # average frame rate (frames / duration)
    duration: float       # seconds, from the first frame's start to the last frame's end
    width: int
    height: int
    rotation: int = 0     # counter-clockwise degrees applied on read: 0, 90, 180, 270
    variable_fps: bool = False  # frame spacing varies by more than 10% of the median

    @property
    def size(self) -> tuple[int, int]:
        """(H, W), as displayed."""
        return (self.height, self.width)


def _parse_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        size = (size, size)
    try:
        height, width = (int(s) for s in size)
    except (TypeError, ValueError):
        raise OwlError(f"size must be an int or (height, width), got {size!r}") from None
    if height < 1 or width < 1:
        raise OwlError(f"size must be positive, got {(height, width)}")
    return height, width


_FORK_HOOK: list = []


@contextlib.contextmanager
def _native_stderr_silenced():
    """Send file descriptor 2 to /dev/null while decord opens a file: on a corrupt one its FFmpeg and C++ layers write
    their own lines there ("moov atom not found", "ERROR opening: ..."), beside the one-line OwlError that says it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _collect_before_fork() -> None:
    """Free unreachable decord readers in the parent before any fork (a DataLoader's workers): collected in a
    child, a reader's finalizer waits forever on decoder threads that did not survive the fork. Readers still in
    use are kept from the child by `ReaderCache`."""
    if not _FORK_HOOK:
        import gc

        os.register_at_fork(before=gc.collect)
        _FORK_HOOK.append(True)


class VideoFile:
    """One open video: a decord reader, the start time of every frame, and the rotation to apply.

    `size=(H, W)` makes decord scale while decoding so that the displayed frame covers (H, W); `frames()` then
    centre-crops to exactly (H, W). Not picklable on purpose: open it inside the process that reads.
    """

    def __init__(self, path: str | os.PathLike, size: tuple[int, int] | int | None = None, threads: int = 0):
        import decord

        _collect_before_fork()
        self.path = Path(path)
        self.size = _parse_size(size)
        where = str(self.path)
        if not self.path.exists():
            raise OwlError(f"video not found: {where!r}")
        if not self.path.is_file():
            raise OwlError(f"not a video file (a folder?): {where!r}")
        if self.path.stat().st_size == 0:
            raise OwlError(f"video file is empty (0 bytes): {where!r}")
        try:
            self.rotation = video_rotation(self.path)
        except OSError as exc:
            raise OwlError(f"cannot read video {where!r}: {exc.strerror or exc}") from exc
        source = io.BytesIO(_unrotated_bytes(self.path)) if self.rotation else where
        try:
            with _native_stderr_silenced():
                probe = decord.VideoReader(source, ctx=decord.cpu(0), num_threads=threads)
                count = len(probe)
                first = probe[0]
            coded_h, coded_w = first.shape[:2]
        except Exception as exc:  # decord raises DECORDError / RuntimeError / AssertionError with C++ traces
            raise OwlError(f"cannot read video {where!r}: not a readable video file (no decodable video stream)") \
                from exc
        if count == 0:
            raise OwlError(f"video has no frames: {where!r}")
        quarter = self.rotation in (90, 270)
        display_w, display_h = (coded_h, coded_w) if quarter else (coded_w, coded_h)
        self._crop = None
        reader = probe
        if self.size is not None and (display_h, display_w) != self.size:
            height, width = self.size
            scale = max(width / display_w, height / display_h)
            # decord 0.6 bug: at some output widths (8, 16, 24, 48, 72, ...) frames come back with padded rows
            # (seen as 4, 6 or 12 "channels") and get_batch fails; scaled output is then scrambled. Scale a little
            # larger instead (the centre crop absorbs it), keeping the aspect ratio.
            for grow in range(16):
                s = scale * (1 + grow / max(display_w, display_h))
                scaled_w, scaled_h = max(width, round(display_w * s)), max(height, round(display_h * s))
                decode_w, decode_h = (scaled_h, scaled_w) if quarter else (scaled_w, scaled_h)
                if self.rotation:
                    source.seek(0)
                try:
                    with _native_stderr_silenced():
                        reader = decord.VideoReader(source, ctx=decord.cpu(0), width=decode_w, height=decode_h,
                                                    num_threads=threads)
                        first = reader[0]
                except Exception as exc:
                    raise OwlError(f"cannot read video {where!r}: decoding at {decode_w}x{decode_h} failed") from exc
                if first.shape[-1] == 3:
                    break
            else:
                raise OwlError(f"cannot read video {where!r} at size {self.size}: decord cannot scale to it")
            top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
            self._crop = (top, left)
        self._reader = reader
        # The same decord bug at the file's own width: single frames have padded rows, which are cut off here;
        # such files are read frame by frame.
        self._padded_rows = first.shape[-1] != 3
        try:
            times = reader.get_frame_timestamp(np.arange(count)).astype(np.float64)  # (N, 2): start, end
        except Exception as exc:
            raise OwlError(f"cannot read video {where!r}: broken frame timestamps") from exc
        starts = times[:, 0] - times[0, 0]
        ends = times[:, 1] - times[0, 0]
        self.times = starts  # (N,) start time of each frame, seconds from the first frame
        steps = np.diff(starts)
        median = float(np.median(steps)) if len(steps) else 0.0
        if median <= 0:
            median = 1.0 / max(float(reader.get_avg_fps()), 1e-6)
        self.frame_period = median
        variable = bool(len(steps) and np.any(np.abs(steps - median) > 0.1 * median))
        nominal = float(reader.get_avg_fps())
        if not variable and nominal > 0 and abs(1.0 / nominal - median) < 0.01 * median:
            fps, duration = nominal, count / nominal  # constant rate: the container's exact rate, no float32 noise
        else:
            duration = float(max(ends[-1], starts[-1] + median))
            fps = count / duration
        self.info = VideoInfo(
            path=where, frames=count, fps=fps, duration=duration,
            width=display_w, height=display_h, rotation=self.rotation, variable_fps=variable,
        )

    def indices_at(self, times: np.ndarray) -> np.ndarray:
        """Index of the frame nearest each time (seconds; ties to the earlier frame), by the file's timestamps."""
        times = np.asarray(times, dtype=np.float64)
        after = np.clip(np.searchsorted(self.times, times, side="left"), 0, self.info.frames - 1)
        before = np.clip(after - 1, 0, self.info.frames - 1)
        earlier = np.abs(times - self.times[before]) <= np.abs(self.times[after] - times) + 1e-6
        return np.where(earlier, before, after)

    @staticmethod
    def _unpad(frame: np.ndarray) -> np.ndarray:
        """(H, W, k) with rows padded past W * 3 bytes -> (H, W, 3)."""
        height, width = frame.shape[:2]
        return frame.reshape(height, -1)[:, :width * 3].reshape(height, width, 3)

    def frames(self, indices) -> np.ndarray:
        """Decode exactly these frames, in this order: (T, H, W, 3) uint8, rotated and cropped."""
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            raise OwlError(f"no frames asked for from {self.info.path!r}")
        if indices.min() < 0 or indices.max() >= self.info.frames:
            raise OwlError(f"frame index out of range 0..{self.info.frames - 1} in {self.info.path!r}")
        # decord seeks per batch; asking once for the sorted unique indices decodes each frame once.
        unique, inverse = np.unique(indices, return_inverse=True)
        try:
            if self._padded_rows:
                batch = np.stack([self._unpad(self._reader[int(i)].asnumpy()) for i in unique])
            else:
                batch = self._reader.get_batch(unique.tolist()).asnumpy()
        except Exception as exc:
            raise OwlError(f"cannot decode frames of {self.info.path!r}: the file may be damaged") from exc
        frames = batch[inverse]
        if self.rotation:
            frames = np.rot90(frames, k=self.rotation // 90, axes=(1, 2))
        if self._crop is not None:
            top, left = self._crop
            height, width = self.size
            frames = frames[:, top:top + height, left:left + width]
        return np.ascontiguousarray(frames[..., :3])


_FORKED_AWAY: list = []  # readers a forked child inherited from its parent; see ReaderCache.get


class ReaderCache:
    """Open `VideoFile`s of this process, least recently used dropped first.

    Safe to hold in a Dataset: it pickles as empty and notices a fork (the pid changes), so every DataLoader
    worker opens its own readers, lazily, on first use.
    """

    def __init__(self, max_open: int = 8, threads: int = 0):
        self.max_open = max_open
        self.threads = threads
        self._open: OrderedDict = OrderedDict()
        self._pid = os.getpid()

    def get(self, path: str | os.PathLike, size: tuple[int, int] | int | None = None) -> VideoFile:
        if self._pid != os.getpid():
            # Forked (a DataLoader worker): the parent's decoders are not ours to use, and freeing them here can
            # crash (decord's decoder threads did not survive the fork). Keep them referenced, never touched.
            _FORKED_AWAY.extend(self._open.values())
            self._open = OrderedDict()
            self._pid = os.getpid()
        key = (str(path), _parse_size(size))
        video = self._open.pop(key, None)
        if video is None:
            video = VideoFile(path, size=size, threads=self.threads)
            while len(self._open) >= self.max_open:
                self._open.popitem(last=False)
        self._open[key] = video
        return video

    def clear(self) -> None:
        self._open.clear()

    def __getstate__(self):
        return {"max_open": self.max_open, "threads": self.threads}

    def __setstate__(self, state):
        self.__init__(**state)


def video_info(path: str | os.PathLike) -> VideoInfo:
    """Frames, average fps, duration, displayed size and rotation of a video file; OwlError if unreadable."""
    return VideoFile(path, threads=1).info


def span_times(start: float, end: float, fps: float, num_frames: int | None = None) -> np.ndarray:
    """Sample times `start + k / fps` inside [start, end): all of them, or exactly `num_frames` (OwlError if
    they do not fit)."""
    if fps <= 0:
        raise OwlError(f"fps must be positive, got {fps}")
    if end <= start:
        raise OwlError(f"span end must be after its start, got start={start} end={end}")
    available = max(1, int(math.floor((end - start) * fps + 1e-6)))
    if num_frames is None:
        num_frames = available
    elif num_frames > available:
        raise OwlError(
            f"span [{start:.3f}, {end:.3f}] s holds {available} frames at {fps:g} fps, {num_frames} were asked for")
    return start + np.arange(num_frames, dtype=np.float64) / fps


def read_span(
    path: str | os.PathLike,
    start: float = 0.0,
    end: float | None = None,
    *,
    fps: float | None = None,
    num_frames: int | None = None,
    size: tuple[int, int] | int | None = None,
    readers: ReaderCache | None = None,
) -> tuple[np.ndarray, float]:
    """Frames of [start, end) seconds (end None: the end of the video) at `fps` (None: the file's average).

    Returns ((T, H, W, 3) uint8, fps). With `num_frames`, exactly that many frames from `start` (OwlError if the
    span is too short); with `size=(H, W)`, frames are scaled to cover and centre-cropped. A span outside the
    video raises OwlError. Pass a `ReaderCache` to keep the file open between calls.
    """
    video = readers.get(path, size) if readers is not None else VideoFile(path, size=size)
    info = video.info
    if end is None:
        end = info.duration
    tolerance = 0.5 * video.frame_period  # timestamps are rounded by containers: forgive half a frame
    if start < 0 or end > info.duration + tolerance:
        raise OwlError(f"span [{start:.3f}, {end:.3f}] s is outside {info.path!r} (duration {info.duration:.3f} s)")
    fps = float(info.fps if fps is None else fps)
    times = span_times(start, min(end, info.duration + tolerance), fps, num_frames)
    return video.frames(video.indices_at(times)), fps


def read_video(
    path: str | os.PathLike, fps: float | None = None, *, size: tuple[int, int] | int | None = None
) -> tuple[np.ndarray, float]:
    """Read a whole video as (T, H, W, C) uint8, resampled to `fps` when given; returns (frames, fps)."""
    video = VideoFile(path, size=size)
    fps = float(video.info.fps if fps is None else fps)
    if fps <= 0:
        raise OwlError(f"fps must be positive, got {fps}")
    count = max(1, int(round(video.info.duration * fps)))
    times = np.arange(count, dtype=np.float64) / fps
    return video.frames(video.indices_at(times)), fps
