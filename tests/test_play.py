"""`owl play` (owl/play.py): steering a world from the terminal, over the World API."""

import subprocess
import sys

from owl.play import play
from owl.session import SessionFolder
from owl.world import World

PROMPT = "a red ball rolls left"


def test_play_accepts_edits_and_branches(tiny_pipe, tmp_path):
    world = World.open(tiny_pipe, tmp_path / "w.mp4", prompt=PROMPT)
    lines = iter(["", "a blue square enters.", "b 1 the ball bounces.", "s", "b x", "", "q"])
    shown = []
    last = play(world, read=lambda prompt: next(lines), write=shown.append)
    assert [(c.dynamics, c.predicted) for c in world.clips[1:]][1] == ("a blue square enters.", False)
    assert len(world.clips) == 3 and world.clips[1].predicted
    assert last.output == tmp_path / "w.b1.mp4"  # the branch is steered from then on
    assert [c.dynamics for c in last.clips][1] == "the ball bounces." and len(last.clips) == 3
    assert last.clips[2].predicted
    assert any(line.startswith("  clip 1 (") and "the ball bounces." in line for line in shown)  # the storyboard
    assert "owl: error: branch as: b N [dynamics], N a clip index from 1" in shown
    assert shown[-1].startswith("owl play: the world is saved in ")


def test_owl_play_in_a_terminal_and_again_from_its_session(tmp_path):
    run = lambda args, text: subprocess.run([sys.executable, "-m", "owl.cli", "play", "--preset", "tiny", *args],
                                            input=text, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    done = run(["--prompt", PROMPT, "--out", "w.mp4"], "\n\nq\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("filmed clip") == 2 and done.stderr == ""
    done = run(["w.session"], "the ball stops.\n")  # then the end of input: quit
    assert done.returncode == 0, done.stderr
    folder = SessionFolder.open(tmp_path / "w.session")
    assert [c.dynamics for c in folder.records][3] == "the ball stops." and folder.complete
    assert (tmp_path / "w.mp4").is_file()
    for args, message in ((["--prompt", PROMPT], "owl play needs --out"),
                          (["w.session", "--seed", "3"], "drop --seed")):
        done = run(args, "q\n")
        assert done.returncode == 2 and done.stderr.startswith("owl: error: ") and message in done.stderr
