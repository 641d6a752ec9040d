"""Batch generation: many rollouts from a JSONL file, split across processes, with a manifest of results.

    owl generate --batch prompts.jsonl --out-dir DIR --preset tiny
    accelerate launch --multi_gpu --num_processes N -m owl.cli generate --batch prompts.jsonl --out-dir DIR
    torchrun --nproc_per_node N -m owl.cli generate --batch prompts.jsonl --out-dir DIR

One JSON object per line: {"prompt": text, "image": path?, "seconds": s?, "dynamics": [texts] | "a; b" |
[segments]?, "seed": n?, "id": name?}. A missing id is the row number (`00000`, `00001`, ...); relative image
paths are read from the JSONL file's folder. Each row makes DIR/ID.mp4, DIR/ID.storyboard.json and (unless
sessions are off) DIR/ID.session/. A bad file (not JSONL, unknown keys, wrong types, duplicate ids) is refused
before anything runs; a row that fails while running (a missing image, a too long video, a crash) is recorded
with its error and the others go on.

Splitting: process `rank` of `world` (RANK and WORLD_SIZE, as set by `accelerate launch` and `torchrun`) takes
rows rank, rank + world, rank + 2 world, ...: every row exactly once, by position, so the split does not depend
on timing and no process group is needed. Processes do not wait for each other, but for one: a process that had a
failed row waits, before it exits non-zero, until the others have recorded their rows (a launcher stops every
process when one fails). On CUDA, process LOCAL_RANK uses GPU LOCAL_RANK.

Manifest: each process appends one JSON line per row it finishes to DIR/manifest.rank{R}.jsonl (flushed and
fsynced: a kill loses at most the row in progress), then, under a file lock, merges every rank's file into
DIR/manifest.jsonl (written atomically; one line per id, in input order). The last process to finish writes the
complete manifest. Re-running skips ids already recorded, "ok" (with its video still there) or "failed";
`retry_failed` runs the failed ones again.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from owl.errors import OwlError
from owl.settings import DEFAULT_SECONDS, check_setting
from owl.timeline import Timeline
from owl.files import write_bytes_atomic

ROW_KEYS = ("prompt", "image", "seconds", "dynamics", "seed", "id")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class BatchItem:
    index: int  # row number in the file, from 0
    id: str
    prompt: str
    image: str | None
    seconds: float
    dynamics: list[str | None] | Timeline | None
    seed: int


@dataclass
class BatchSummary:
    rank: int
    world: int
    done: int = 0
    failed: int = 0
    skipped: int = 0
    manifest: Path | None = None


def read_batch(path: str | Path, seconds: float = DEFAULT_SECONDS, seed: int = 0) -> list[BatchItem]:
    """Parse and check a batch JSONL file; `seconds` and `seed` fill rows that do not give them (`owl generate
    --batch` passes its --seconds and --seed, by default the API's)."""
    path = Path(path)
    if not path.is_file():
        raise OwlError(f"batch file not found: {str(path)!r}")
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise OwlError(f"batch file {str(path)!r} is not UTF-8 text") from exc
    items, ids = [], {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"batch file {str(path)!r} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise OwlError(f"{where} is not valid JSON: {exc.msg}") from exc
        if not isinstance(row, dict):
            raise OwlError(f"{where} must be a JSON object like {{\"prompt\": \"...\"}}")
        unknown = sorted(set(row) - set(ROW_KEYS))
        if unknown:
            raise OwlError(f"{where} has unknown key(s) {unknown}; accepted: {list(ROW_KEYS)}")
        index = len(items)
        item_id = row.get("id", f"{index:05d}")
        if not isinstance(item_id, str) or not _ID.match(item_id):
            raise OwlError(f"{where}: id must be a file name of letters, digits, '.', '_' or '-', got {item_id!r}")
        if item_id in ids:
            raise OwlError(f"{where}: id {item_id!r} is already used on line {ids[item_id]}")
        ids[item_id] = number
        prompt = row.get("prompt", "")
        if not isinstance(prompt, str):
            raise OwlError(f"{where}: prompt must be a string")
        image = row.get("image")
        if image is not None:
            if not isinstance(image, str) or not image:
                raise OwlError(f"{where}: image must be a path")
            image = str(path.parent / image) if not Path(image).is_absolute() else image
        row_seconds, row_seed = row.get("seconds", seconds), row.get("seed", seed)
        try:  # the rollout's own checks, so a row is held to what the CLI and the API accept
            check_setting("seconds", row_seconds)
            check_setting("seed", row_seed)
        except OwlError as exc:
            raise OwlError(f"{where}: {exc}") from None
        items.append(BatchItem(index, item_id, prompt, image, float(row_seconds),
                               _dynamics(row.get("dynamics"), where), row_seed))
    if not items:
        raise OwlError(f"batch file {str(path)!r} has no rows")
    return items


def _dynamics(value, where: str):
    if value is None:
        return None
    if isinstance(value, str):
        return [d.strip() or None for d in value.split(";")]
    if isinstance(value, list) and value and all(isinstance(d, dict) for d in value):
        return Timeline.from_list(value, where)
    if isinstance(value, list) and all(d is None or isinstance(d, str) for d in value):
        return list(value)
    raise OwlError(f"{where}: dynamics must be a list of texts (null: predicted), a 'a; b' string, or a list of "
                   "segments {start, end, dynamics}")


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process, from RANK / WORLD_SIZE (accelerate launch, torchrun); (0, 1) alone."""
    try:
        rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError as exc:
        raise OwlError(f"RANK and WORLD_SIZE must be integers, got {os.environ.get('RANK')!r}, "
                       f"{os.environ.get('WORLD_SIZE')!r}") from exc
    if world < 1 or not 0 <= rank < world:
        raise OwlError(f"RANK must be in 0..WORLD_SIZE-1, got RANK={rank} WORLD_SIZE={world}")
    return rank, world


def read_manifest(out_dir: Path) -> dict[str, dict]:
    """The latest entry per id over every rank's manifest file (an "ok" entry wins over a later "failed")."""
    entries: dict[str, dict] = {}
    for file in sorted(out_dir.glob("manifest.rank*.jsonl")):
        for line in file.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill: that row was not finished
                continue
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                continue
            old = entries.get(entry["id"])
            if old is None or entry.get("status") == "ok" or old.get("status") != "ok":
                entries[entry["id"]] = entry
    return entries


def run_batch(items: list[BatchItem], out_dir: str | Path, load_pipeline: Callable[[], object], options: dict,
              rank: int = 0, world: int = 1, sessions: bool = True, retry_failed: bool = False,
              progress: bool = True) -> BatchSummary:
    """Run this process's share of `items` (see the module docstring); `options` go to every pipeline call."""
    from tqdm.auto import tqdm

    from owl.session import session_path

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise OwlError(f"output folder does not exist: {str(out_dir)!r}")
    summary = BatchSummary(rank, world)
    recorded = read_manifest(out_dir)

    def to_run(item: BatchItem) -> bool:
        entry = recorded.get(item.id)
        if entry and entry.get("status") == "ok" and (out_dir / f"{item.id}.mp4").is_file():
            return False
        return not (entry and entry.get("status") == "failed" and not retry_failed)

    todo = [item for item in items[rank::world] if to_run(item)]
    summary.skipped = len(items[rank::world]) - len(todo)
    manifest = out_dir / f"manifest.rank{rank}.jsonl"
    if todo:
        pipe = load_pipeline()
        bar = tqdm(total=len(todo), desc=f"batch rank {rank}/{world}", unit="video", position=rank,
                   disable=not progress)
        for item in todo:
            output = out_dir / f"{item.id}.mp4"
            started = time.perf_counter()
            entry = {"id": item.id, "index": item.index, "prompt": item.prompt, "rank": rank}
            try:
                result = pipe(prompt=item.prompt, image=item.image, seconds=item.seconds, dynamics=item.dynamics,
                              seed=item.seed, output=output, session=session_path(output) if sessions else None,
                              progress=False, **options)
                result.storyboard.save(output.with_suffix(".storyboard.json"))
                entry.update(status="ok", output=output.name, seconds=round(result.seconds, 6),
                             frames=result.num_frames)
                summary.done += 1
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # one bad row must not stop the others: record it and go on
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                if not isinstance(exc, OwlError):
                    reason = f"{type(exc).__name__}: {reason} ({_where(exc)})"
                entry.update(status="failed", error=reason)
                summary.failed += 1
            entry["elapsed"] = round(time.perf_counter() - started, 3)
            entry["finished"] = time.time()
            _append_line(manifest, entry)
            bar.update(1)
        bar.close()
    if summary.failed and world > 1:  # this process will exit non-zero, and a launcher then stops the others
        others = [item.id for r in range(world) if r != rank for item in items[r::world] if to_run(item)]
        _wait_for_rows(out_dir, others, since=_launched())
    summary.manifest = merge_manifest(out_dir, items)
    return summary


def _launched() -> float:
    """When this launch began: this process's creation time (a launcher starts its processes together), less a
    margin; every row of this launch finished after it, every row of an earlier launch before it."""
    import psutil  # (accelerate's dependency)

    return psutil.Process().create_time() - 5.0


def _wait_for_rows(out_dir: Path, ids: list[str], since: float, every: float = 0.5) -> None:
    """Wait until the other processes have recorded each of `ids` (finished after `since`). Only a process that
    had a failed row waits: it exits non-zero, and `torchrun` / `accelerate launch` stop every process of a launch
    when one fails, which would cut the others' rows short."""
    while True:
        entries = read_manifest(out_dir)
        if all(entries.get(i, {}).get("finished", 0) >= since for i in ids):
            return
        time.sleep(every)


def merge_manifest(out_dir: Path, items: list[BatchItem]) -> Path:
    """Merge every rank's manifest into DIR/manifest.jsonl, atomically and under a lock (one merge at a time)."""
    target = out_dir / "manifest.jsonl"
    with open(out_dir / ".manifest.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            entries = read_manifest(out_dir)
            order = {item.id: item.index for item in items}
            ids = sorted(entries, key=lambda i: (order.get(i, len(order)), i))
            write_bytes_atomic(target, "".join(json.dumps(entries[i]) + "\n" for i in ids).encode())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target


def _append_line(path: Path, entry: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _where(exc: BaseException) -> str:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    return f"{Path(frame.filename).name}:{frame.lineno}" if frame else "unknown place"
