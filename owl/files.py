"""Files Owl writes: atomically (a temporary sibling, then a rename), to outputs it has checked and locked.

    write_bytes_atomic(path, data)     readers see the old file or the new one, never half of it
    temporary_path(path)               where a file is written before its rename: `.name.PID.tmp.ext`
    check_output(path) / output_lock   an .mp4 output Owl may write, held by one process at a time
    remove_stale_temporaries(folder)   temporaries left by a process that no longer runs (kill -9)

Videos, sessions, checkpoints, configs, reports and contact sheets all go through these.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from owl.errors import OwlError

_TMP = re.compile(r"^\..+\.(\d+)\.tmp(\.[A-Za-z0-9]+)?$")


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


def mp4_path(path: str | os.PathLike) -> Path:
    """An .mp4 file path (not a folder) in a folder that exists."""
    out = Path(path)
    if out.suffix.lower() != ".mp4":
        raise OwlError(f"output must be an .mp4 path, got {str(out)!r}")
    if out.is_dir():
        raise OwlError(f"output {str(out)!r} is a folder; give a file path ending in .mp4")
    if not out.parent.is_dir():
        raise OwlError(f"output folder does not exist: {str(out.parent)!r}")
    return out


def check_output(path: str | os.PathLike) -> Path:
    """An .mp4 path Owl may write, checked before any work starts: not a folder, in a folder that exists and that
    this process can write to, and not being written by another Owl process (see `output_lock`)."""
    out = mp4_path(path)
    with output_lock(out):  # creating the lock file proves the folder writable; taking it, that nobody writes here
        pass
    return out


class output_lock:
    """Hold the exclusive right to write `path` (and the session and partial video beside it) while a rollout
    runs: a second process that asks for the same output gets a one-line error instead of racing the first. An
    advisory `flock` on a hidden file beside the output; the kernel releases it if the process dies."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._fd: int | None = None

    def __enter__(self) -> "output_lock":
        import fcntl

        while True:
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
            except OSError as exc:
                raise OwlError(f"cannot write to the output folder {str(self.path.parent)!r}: "
                               f"{exc.strerror or type(exc).__name__}") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise OwlError(f"another Owl process is writing {str(self.path)!r}; wait for it to finish or "
                               "choose another output") from None
            try:  # the holder before us may have removed the file after we opened it: lock the one on disk
                if os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            self.lock_path.unlink(missing_ok=True)  # while still held, so no one locks a file about to vanish
            os.close(self._fd)
            self._fd = None


def is_temporary(name: str) -> bool:
    """Whether a file name is one of `temporary_path`'s."""
    return bool(_TMP.match(name))


def remove_stale_temporaries(folder: Path, stem: str | None = None) -> None:
    """Delete temporary files (`.name.PID.tmp.ext`) left in `folder` by a process that no longer runs (kill -9)."""
    if not folder.is_dir():
        return
    for f in folder.iterdir():
        m = _TMP.match(f.name)
        if not m or (stem is not None and not f.name.startswith(f".{stem}.")):
            continue
        pid = int(m.group(1))
        if pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            f.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def read_text(path: Path, missing: str) -> str:
    """The text of the file at `path`; `OwlError(missing)` when there is no such file."""
    if not path.is_file():
        raise OwlError(missing)
    return path.read_text()
