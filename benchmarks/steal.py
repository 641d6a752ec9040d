"""CPU steal while a benchmark runs: the share of CPU time the hypervisor gave to other guests (Linux /proc/stat),
printed beside the figures so that a run on a crowded host can be told from a slow one."""

from __future__ import annotations

from pathlib import Path


def _cpu_times() -> list[int] | None:
    """user, nice, system, idle, iowait, irq, softirq, steal (jiffies, all CPUs); None off Linux."""
    try:
        return [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None


class Steal:
    """`steal = Steal()` when the run starts, then `print(steal.line())` when it ends."""

    def __init__(self) -> None:
        self.before = _cpu_times()

    def line(self) -> str:
        after = _cpu_times()
        if not self.before or not after:
            return "CPU steal during the run: not measured (no /proc/stat)"
        delta = [a - b for a, b in zip(after, self.before)]
        share = delta[7] / max(sum(delta), 1)
        return f"CPU steal during the run: {share:.1%} of CPU time (given by the host to other guests; high steal = noisy figures)"
