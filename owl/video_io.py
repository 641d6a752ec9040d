"""Video files: decord for reading, imageio (ffmpeg) for writing, always atomically.

Frames travel through Owl as uint8 arrays laid out `(T, H, W, C)` (`thwc`), RGB.

Writing is streaming: `VideoWriter` appends each finished clip to the mp4 at once, so a long rollout never holds
the whole video in memory. The file is written under a temporary name beside the target and moved into place
only when it is complete; an error or Ctrl-C removes the temporary file and leaves nothing at the target.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from owl.errors import OwlError


def temporary_path(path: Path) -> Path:
    """A unique sibling of `path` for writing before an atomic rename (same folder, so `os.replace` is atomic)."""
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: readers see the old file or the new one."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class VideoWriter:
    """Streams `(T, H, W, C)` uint8 RGB frames into an mp4 (H.264, yuv420p), moved into place on `close()`.

    Use as a context manager: on an exception inside the block (KeyboardInterrupt included) the temporary file
    is deleted and the target path is left as it was.

        with VideoWriter("out.mp4", fps=8) as writer:
            writer.append(frames_thwc)
    """

    def __init__(self, path: str | os.PathLike, fps: float, quality: int = 8):
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise OwlError(f"output must be an .mp4 file, got {str(self.path)!r}")
        if not self.path.parent.is_dir():
            raise OwlError(f"output folder does not exist: {str(self.path.parent)!r}")
        self.fps = float(fps)
        self.quality = quality
        self.num_frames = 0
        self.tmp_path = temporary_path(self.path)
        self._writer = None
        self._size: tuple[int, int] | None = None

    def append(self, frames_thwc: np.ndarray) -> None:
        """Append frames (T, H, W, 3) uint8; every call must keep the first call's H and W."""
        if frames_thwc.ndim != 4 or frames_thwc.shape[-1] != 3 or frames_thwc.dtype != np.uint8:
            raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames_thwc.dtype} {tuple(frames_thwc.shape)}")
        if self._writer is None:
            import imageio

            self._size = frames_thwc.shape[1:3]
            # macro_block_size=1: never let ffmpeg silently resize; Owl's sizes are multiples of 16 anyway.
            self._writer = imageio.get_writer(
                self.tmp_path, format="FFMPEG", mode="I", fps=self.fps, codec="libx264",
                quality=self.quality, pixelformat="yuv420p", macro_block_size=1,
            )
        if frames_thwc.shape[1:3] != self._size:
            raise ValueError(f"frame size changed from {self._size} to {frames_thwc.shape[1:3]}")
        for frame in frames_thwc:
            self._writer.append_data(frame)
        self.num_frames += len(frames_thwc)

    def close(self) -> Path:
        """Finish the file and move it into place; returns the final path."""
        if self._writer is None:
            raise ValueError("no frames were written")
        self._writer.close()
        self._writer = None
        os.replace(self.tmp_path, self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial file; the target path is left untouched."""
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


def read_video(path: str | os.PathLike, fps: float | None = None) -> tuple[np.ndarray, float]:
    """Read a whole video as (T, H, W, C) uint8, resampled to `fps` when given; returns (frames, fps).

    Minimal reader used by the core; `owl.video_io` grows spans, resizing and metadata handling on top of it.
    """
    import decord

    path = Path(path)
    if not path.is_file():
        raise OwlError(f"video not found: {str(path)!r}")
    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    except Exception as exc:  # decord raises its own DECORDError with a long C++ trace
        raise OwlError(f"cannot read video {str(path)!r}: not a readable video file") from exc
    native_fps = float(reader.get_avg_fps())
    n = len(reader)
    if n == 0:
        raise OwlError(f"video has no frames: {str(path)!r}")
    if fps is None:
        indices = np.arange(n)
        fps = native_fps
    else:
        count = max(1, int(round(n / native_fps * fps)))
        indices = np.minimum(np.round(np.arange(count) * native_fps / fps).astype(int), n - 1)
    return reader.get_batch(indices.tolist()).asnumpy(), float(fps)
