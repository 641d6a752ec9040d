"""`owl play`: steer a world from the terminal (for SSH), over the same `owl.World` API as `owl app`.

    owl play --prompt "a red circle enters from the left." --out world.mp4     start a world (clip 0 is filmed)
    owl play world.session                                                    go on with a saved world

After each clip it shows the world model's proposal for the next one and reads a line:

    Enter          film the proposal
    any text       film that instead (given dynamics)
    b N [text]     branch at clip N (keep clips 0..N-1, film clip N from the text, or predicted) and steer the branch
    s              show the storyboard
    q              quit (so does end of input); the world is saved after every clip, `owl play SESSION` goes on
"""

from __future__ import annotations

import sys
from pathlib import Path

from owl.errors import OwlError
from owl.world import World

HELP = "[Enter] film it · other text: film that · b N [text]: branch at clip N · s: storyboard · q: quit"


def describe(record) -> str:
    return (f"clip {record.index} ({record.start:.1f}-{record.end:.1f} s, {record.origin}): "
            f"{record.dynamics or '(empty)'}")


def branch_output(world: World, at: int) -> Path:
    """Beside the world's video: NAME.bN.mp4, or NAME.bN-2.mp4, ... if taken."""
    out = world.output
    n, candidate = 1, out.with_name(f"{out.stem}.b{at}.mp4")
    while candidate.exists() or candidate.with_suffix(".session").exists():
        n += 1
        candidate = out.with_name(f"{out.stem}.b{at}-{n}.mp4")
    return candidate


def play(world: World, read=input, write=print, progress: bool = False) -> World:
    """The loop: propose, read a line, act; until q or the end of input. Returns the world steered last."""
    write(f"owl play: {world.output} ({len(world.clips)} clips); {HELP}")
    while True:
        try:
            proposal = world.propose()
        except OwlError as exc:  # as long as a rollout may be
            write(f"owl play: {exc}")
            return world
        write(f"next: {proposal or '(empty)'}")
        try:
            line = read("> ").strip()
        except EOFError:
            line = "q"
        try:
            if line == "q":
                write(f"owl play: the world is saved in {world.path}; go on with: owl play {world.path}")
                return world
            if line == "s":
                for record in world.clips:
                    write("  " + describe(record))
                continue
            if line == "b" or line.startswith("b "):
                parts = line.split(maxsplit=2)
                if len(parts) < 2 or not parts[1].isdigit():
                    raise OwlError("branch as: b N [dynamics], N a clip index from 1")
                at = int(parts[1])
                world = world.fork(at, branch_output(world, at), parts[2] if len(parts) > 2 else None,
                                   progress=progress)
                write(f"branched into {world.output}: filmed {describe(world.clips[-1])}")
                continue
            record = world.step(None if not line or line == proposal else line, progress=progress)
            write(f"filmed {describe(record)}")
        except OwlError as exc:
            write(f"owl: error: {exc}")


def main_loop(world: World, progress: bool) -> int:
    def read(prompt: str) -> str:
        if sys.stdin.isatty():
            return input(prompt)
        line = sys.stdin.readline()  # a pipe: no prompt echoed
        if not line:
            raise EOFError
        return line

    play(world, read=read, write=lambda text: print(text, flush=True), progress=progress)
    return 0
