"""World sessions: resume after a crash equals the uninterrupted run; branch and extend; bad input.

Videos are compared two ways. The session's raw uint8 frames must equal the uninterrupted run's frames exactly.
The mp4 files are compared by their decoded pixels, also exactly: both are made by streaming the same uint8
frames through the same encoder with the same settings (x264 is deterministic for identical input), so any
difference would be a real difference in what was generated, not codec noise.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import decord
import numpy as np
import pytest

from owl import OwlError
from owl.cli import main
from owl.session import SessionFolder, partial_path, session_path
from owl.video_io import write_video

PROMPT = "a red ball rolls left"


def decoded(path):
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


def session_frames(path):
    return np.concatenate(list(SessionFolder.open(path).video_frames()))


def tree_digest(folder):
    """Name and content hash of every file under (or at) `folder`."""
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def leftovers(folder):
    """Temporary files left behind (a writer's `.name.PID.tmp.ext`)."""
    return [p.name for p in folder.rglob(".*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def finished(tiny_pipe, tmp_path_factory):
    """A finished 6 s rollout (3 clips) with its session; tests must leave it as it is."""
    folder = tmp_path_factory.mktemp("finished")
    out = folder / "a.mp4"
    result = tiny_pipe(PROMPT, seconds=6, dynamics=["the ball moves up.", None], output=out,
                       session=session_path(out), progress=False)
    return out, result


def test_session_layout(finished):
    out, result = finished
    folder = SessionFolder.open(session_path(out))
    assert folder.complete and folder.output == out and not partial_path(out).exists()
    assert [r.dynamics for r in folder.records] == [c.dynamics for c in result.storyboard.clips]
    assert sorted(p.name for p in (folder.path / "clips").iterdir()) == [f"{i:06d}.safetensors" for i in range(3)]
    step = folder.load_clip(1)
    assert step.frames.dtype == np.uint8 and step.frames.shape == (16, 64, 64, 3)
    assert step.key_frames.shape == (2, 64, 64, 3) and step.rng.dtype.is_floating_point is False
    assert step.context.shape == (1, 4, 1, 8, 8)
    meta = json.loads((folder.path / "session.json").read_text())
    assert meta["settings"]["seconds"] == 6 and meta["dynamics"] == ["the ball moves up.", None]
    assert not [p for p in folder.path.rglob("*") if p.suffix in (".pkl", ".pt", ".bin", ".npy")]  # no pickles


def test_resume_after_a_crash_equals_the_uninterrupted_run(tiny_pipe, tmp_path):
    """Crash after clip 1 of 3, with sampled dynamics (the replay regenerates them from the saved rng)."""
    kwargs = dict(seconds=6, do_sample=True, temperature=1.5, seed=4, progress=False)
    reference = tiny_pipe(PROMPT, **kwargs)
    events = []

    def crash(event):
        events.append(event)
        if event.index == 1:
            raise KeyboardInterrupt

    out = tmp_path / "b.mp4"
    with pytest.raises(KeyboardInterrupt):
        tiny_pipe(PROMPT, output=out, session=session_path(out), callback=crash, **kwargs)
    assert not out.exists() and not leftovers(tmp_path)  # nothing half-written at the output
    partial = partial_path(out)
    assert [e.path for e in events] == [partial, partial] and [e.index for e in events] == [0, 1]
    assert len(decoded(partial)) == 33  # the playable video so far: clips 0 and 1
    assert len(SessionFolder.open(session_path(out)).records) == 2

    resumed = tiny_pipe.resume(session_path(out), progress=False)
    assert resumed.path == out and not partial.exists()
    assert np.array_equal(session_frames(session_path(out)), reference.frames)
    assert [c.dynamics for c in resumed.storyboard.clips] == [c.dynamics for c in reference.storyboard.clips]
    assert resumed.storyboard.clips[1].dynamics  # sampled, so not empty: the replay really regenerated it
    with pytest.raises(OwlError, match="already complete"):
        tiny_pipe.resume(session_path(out), progress=False)


def test_kill_9_then_resume_gives_the_same_video(tiny_pipe, tmp_path):
    out = tmp_path / "k.mp4"
    args = ["generate", "--preset", "tiny", "--prompt", PROMPT, "--seconds", "6", "--dynamics", "the ball stops.",
            "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # the same threads as this process: the same float results
    proc = subprocess.Popen([sys.executable, "-m", "owl.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    meta = session_path(out) / "session.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if meta.is_file() and json.loads(meta.read_text())["clips"]:
            break
        time.sleep(0.02)
    assert proc.poll() is None, proc.stderr.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, stderr
    assert not out.exists()
    assert 1 <= len(SessionFolder.open(session_path(out)).records) < 3

    assert main(["generate", "--resume", str(session_path(out)), "--quiet"]) == 0
    reference = tmp_path / "ref.mp4"
    tiny_pipe(PROMPT, seconds=6, dynamics=["the ball stops."], output=reference, progress=False)
    assert np.array_equal(decoded(out), decoded(reference))
    assert not leftovers(tmp_path) and not partial_path(out).exists()


def test_ctrl_c_leaves_a_resumable_session_and_a_playable_partial(tmp_path):
    out = tmp_path / "c.mp4"
    # 24 s (12 clips): on a loaded machine the signal must still land well before the last clip. SIGINT as at a
    # terminal: a test run started in the background (`cmd &` in a script) would otherwise pass on an ignored
    # SIGINT, and Python keeps a SIGINT that is ignored at its start ignored
    proc = subprocess.Popen([sys.executable, "-m", "owl.cli", "generate", "--preset", "tiny", "--prompt", PROMPT,
                             "--seconds", "24", "--out", str(out), "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    partial = partial_path(out)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not partial.is_file():
        time.sleep(0.02)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and f"resume with: owl generate --resume {session_path(out)}" in lines[0], lines
    assert not out.exists() and not leftovers(tmp_path)
    done = len(SessionFolder.open(session_path(out)).records)
    # the partial is republished right after each clip is saved: it holds every saved clip, or all but the last
    # when the signal came between the two
    assert done >= 1 and len(decoded(partial)) in (17 + 16 * (done - 1), 17 + 16 * (done - 2))


def test_branch_forks_and_leaves_the_original_untouched(tiny_pipe, finished, tmp_path):
    out, original = finished
    before = {**tree_digest(out), **tree_digest(session_path(out))}
    fork = tmp_path / "fork.mp4"
    result = tiny_pipe.branch(session_path(out), at=1, output=fork, dynamics=["a blue square enters."],
                              progress=False)
    assert {**tree_digest(out), **tree_digest(session_path(out))} == before
    clips = result.storyboard.clips
    assert [c.dynamics for c in clips[:2]] == [PROMPT, "a blue square enters."] and not clips[1].predicted
    ours, theirs = session_frames(session_path(fork)), session_frames(session_path(out))
    assert ours.shape == theirs.shape
    assert np.array_equal(ours[:17], theirs[:17])  # clip 0 is kept
    assert not np.array_equal(ours[17:], theirs[17:])  # clips 1.. follow the new dynamics
    meta = json.loads((session_path(fork) / "session.json").read_text())
    assert meta["parent"] == {"session": str(session_path(out).resolve()), "at": 1}


def test_branch_with_the_same_dynamics_reproduces_the_original(tiny_pipe, finished, tmp_path):
    out, _ = finished
    same = tmp_path / "same.mp4"
    tiny_pipe.branch(session_path(out), at=2, output=same, progress=False)  # d_1 was predicted: predicted again
    assert np.array_equal(session_frames(session_path(same)), session_frames(session_path(out)))


def test_extend_a_session_equals_one_longer_run(tiny_pipe, finished, tmp_path):
    out, _ = finished
    longer = tmp_path / "longer.mp4"
    # 6 s = clips of 17 + 16 + 15 (cut from 16) frames; 7 s: the cut frame comes back, then a new clip of 7
    result = tiny_pipe.extend(session_path(out), seconds=1, output=longer, dynamics=["the ball stops."],
                              progress=False)
    assert result.num_frames == 56 and result.storyboard.clips[3].dynamics == "the ball stops."
    assert [c.end for c in result.storyboard.clips] == [17 / 8, 33 / 8, 49 / 8, 56 / 8]
    reference = tiny_pipe(PROMPT, seconds=7, dynamics=["the ball moves up.", None, "the ball stops."], progress=False)
    assert np.array_equal(session_frames(session_path(longer)), reference.frames)


def test_extend_continues_a_decord_read_mp4(tiny_pipe, tmp_path):
    rng = np.random.default_rng(0)
    frames = np.zeros((20, 64, 64, 3), np.uint8)  # 2.5 s at 8 fps: a square moving right
    for i in range(20):
        frames[i, 24:40, 2 * i:2 * i + 16] = (230, 40, 40)
    frames += rng.integers(0, 8, frames.shape, dtype=np.uint8)
    source = write_video(tmp_path / "source.mp4", frames, fps=8)
    out = tmp_path / "more.mp4"
    result = tiny_pipe.extend(source, seconds=2, output=out, prompt="a red square", progress=False)
    assert result.num_frames == 36 and len(decoded(out)) == 36
    clips = result.storyboard.clips
    assert [c.source for c in clips] == ["video", "video", "film"]
    assert [c.predicted for c in clips] == [False, True, True] and clips[0].dynamics == "a red square"
    assert clips[2].start == pytest.approx(20 / 8)
    head = session_frames(session_path(out))[:20]
    assert np.array_equal(head, decoded(source))  # the source, as decord reads it, opens the new video
    # the new session is an ordinary one: it extends again
    again = tiny_pipe.extend(session_path(out), seconds=1, output=tmp_path / "again.mp4", progress=False)
    assert again.num_frames == 44


def run_cli(capsys, *args):
    code = main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


@pytest.mark.parametrize("args, message", [
    (["generate", "--resume", "{tmp}/none.session"], "session not found"),
    (["generate", "--resume", "{session}", "--prompt", "x"], "--resume continues the session with its own settings; "
                                                             "drop --prompt"),
    (["generate", "--resume", "{session}"], "already complete"),
    (["branch", "{session}", "--at", "0", "--out", "{tmp}/b.mp4", "--preset", "tiny"], "at must be a clip index from 1 to 3"),
    (["branch", "{session}", "--at", "7", "--out", "{tmp}/b.mp4", "--preset", "tiny"], "at must be a clip index from 1 to 3"),
    (["branch", "{session}", "--at", "1", "--out", "{out}", "--preset", "tiny"], "would overwrite the session"),
    (["branch", "{session}", "--at", "1", "--out", "{tmp}/b.avi", "--preset", "tiny"], "output must be an .mp4 path"),
    (["branch", "{session}", "--at", "1", "--dynamics", "a;b;c", "--out", "{tmp}/b.mp4", "--preset", "tiny"],
     "3 dynamics given but a 6 s video has only 2 clip transitions"),
    (["extend", "{tmp}/none.mp4", "--seconds", "2", "--out", "{tmp}/e.mp4", "--preset", "tiny"], "nothing to extend"),
    (["extend", "{tmp}/garbage.mp4", "--seconds", "2", "--out", "{tmp}/e.mp4", "--preset", "tiny"], "cannot read video"),
    (["extend", "{session}", "--seconds", "2", "--prompt", "x", "--out", "{tmp}/e.mp4"], "drop --prompt"),
    (["extend", "{session}", "--seconds", "0", "--out", "{tmp}/e.mp4", "--preset", "tiny"], "seconds must be a number > 0"),
    (["extend", "{tmp}/broken.session", "--seconds", "2", "--out", "{tmp}/e.mp4"], "is damaged"),
    (["generate", "--resume", "{tmp}/prep.session"], "interrupted while branch or extend was preparing it"),
])
def test_bad_input(capsys, finished, tmp_path, args, message):
    out, _ = finished
    (tmp_path / "garbage.mp4").write_bytes(b"not a video")
    (tmp_path / "broken.session").mkdir()
    (tmp_path / "broken.session" / "session.json").write_text("{not json")
    shutil.copytree(session_path(out), tmp_path / "prep.session")
    meta = json.loads((tmp_path / "prep.session" / "session.json").read_text())
    (tmp_path / "prep.session" / "session.json").write_text(json.dumps({**meta, "status": "preparing"}))
    inputs = {p.name for p in tmp_path.iterdir()}
    before = {**tree_digest(out), **tree_digest(session_path(out))}
    fill = dict(tmp=tmp_path, session=session_path(out), out=out)
    code, err = run_cli(capsys, *[a.format(**fill) for a in args])
    assert code == 2 and len(err) == 1 and err[0].startswith("owl: error:") and message in err[0], err
    assert {p.name for p in tmp_path.iterdir()} == inputs  # nothing written
    assert {**tree_digest(out), **tree_digest(session_path(out))} == before


def test_extend_refuses_an_unfinished_session(tiny_pipe, tmp_path):
    out = tmp_path / "u.mp4"

    def stop(event):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tiny_pipe(PROMPT, seconds=4, output=out, session=session_path(out), callback=stop, progress=False)
    with pytest.raises(OwlError, match="not finished; resume it first"):
        tiny_pipe.extend(session_path(out), seconds=2, output=tmp_path / "e.mp4", progress=False)
    with pytest.raises(OwlError, match="not an Owl session"):
        (tmp_path / "x.session").mkdir()
        (tmp_path / "x.session" / "keep.txt").write_text("mine")
        tiny_pipe(PROMPT, seconds=2, output=tmp_path / "x.mp4", session=tmp_path / "x.session", progress=False)
    assert (tmp_path / "x.session" / "keep.txt").read_text() == "mine"


def test_every_command_works_with_a_model_folder(tiny_dir, tmp_path, capsys):
    """A session records the model folder it was made with; resume, branch and extend load it again."""
    out = tmp_path / "m.mp4"
    assert main(["generate", "--model", str(tiny_dir), "--prompt", PROMPT, "--seconds", "4", "--out", str(out),
                 "--quiet"]) == 0
    meta = json.loads((session_path(out) / "session.json").read_text())
    assert meta["model"] == {"path": str(tiny_dir.resolve())}
    assert main(["branch", str(session_path(out)), "--at", "1", "--dynamics", "the ball stops.",
                 "--out", str(tmp_path / "b.mp4"), "--quiet"]) == 0
    assert main(["extend", str(session_path(out)), "--seconds", "1", "--out", str(tmp_path / "e.mp4"), "--quiet"]) == 0
    assert main(["extend", str(out), "--model", str(tiny_dir), "--seconds", "1", "--out", str(tmp_path / "v.mp4"),
                 "--quiet"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(" (")[0] for line in lines] == [f"wrote {tmp_path / n}" for n in ("m.mp4", "b.mp4", "e.mp4", "v.mp4")]
    assert len(decoded(tmp_path / "e.mp4")) == 40 and len(decoded(tmp_path / "v.mp4")) == 40
