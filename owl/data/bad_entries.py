"""Bad entries in an annotation file: one error that lists them, or (asked for) a warning that counts them.

Datasets check every entry when they are built, not when a worker reaches it mid-epoch. The problems are
collected here; `raise_or_skip` then raises one `OwlError` naming the file and the first few entries with their
ids and reasons, or, with `skip_invalid=True`, returns the ids to drop and says how many in a `warnings.warn`.

    bad = BadEntries("captions.json")
    bad.add("v_abc", "video not found in 'videos/'")
    skipped = bad.raise_or_skip(skip_invalid=False)
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from owl.errors import OwlError, OwlWarning

SHOWN = 5  # entries named in the error message


class BadEntries:
    """Problems found in one annotation source, by entry id (first problem per entry kept)."""

    def __init__(self, source: str):
        self.source = source
        self.problems: dict[str, str] = {}

    def add(self, entry_id, reason: str) -> None:
        self.problems.setdefault(str(entry_id), reason)

    def __contains__(self, entry_id) -> bool:
        return str(entry_id) in self.problems

    def __len__(self) -> int:
        return len(self.problems)

    def raise_or_skip(self, skip_invalid: bool, what: str = "entries") -> set[str]:
        """Raise OwlError listing the bad entries, or warn and return their ids when `skip_invalid`."""
        if not self.problems:
            return set()
        if skip_invalid:
            warnings.warn(f"{self.source}: skipped {len(self.problems)} invalid {what}", OwlWarning, stacklevel=3)
            return set(self.problems)
        shown = "; ".join(f"{key}: {reason}" for key, reason in list(self.problems.items())[:SHOWN])
        more = f" (and {len(self.problems) - SHOWN} more)" if len(self.problems) > SHOWN else ""
        raise OwlError(f"{self.source}: {len(self.problems)} invalid {what}: {shown}{more}; "
                       f"pass skip_invalid=True (--skip-invalid) to skip them")


def jsonl_values(path: Path, bad: BadEntries, label=lambda n: f"line {n}") -> list[tuple[int, object]]:
    """The values of a JSON Lines file with their line numbers, blank lines skipped; a malformed line is a bad
    entry named `label(number)`."""
    values = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                values.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                bad.add(label(number), f"malformed JSON: {exc.msg}")
    return values
