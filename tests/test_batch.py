"""Batch generation: a 2-process run does every prompt exactly once, failures are recorded, re-runs skip."""

import json
import os
import shutil
import socket
import subprocess

import pytest

from owl.cli import main

ROWS = [
    {"prompt": "a red ball", "seconds": 2, "id": "red"},
    {"prompt": "a blue square", "seconds": 2, "seed": 3},
    {"prompt": "a missing picture", "image": "missing.png", "seconds": 2, "id": "bad"},
    {"prompt": "a green circle", "seconds": 2, "dynamics": [], "id": "green"},
    {"prompt": "a yellow star", "seconds": 2, "id": "star"},
]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def rank_lines(out_dir):
    return {p.name: p.read_text().splitlines() for p in sorted(out_dir.glob("manifest.rank*.jsonl"))}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("accelerate") is None, reason="needs the accelerate launcher")
def test_two_processes_do_every_prompt_once_and_a_rerun_does_nothing(tmp_path):
    prompts = write_rows(tmp_path / "prompts.jsonl", ROWS)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # --multi_gpu picks accelerate's torchrun launcher, which also starts N processes on a CPU-only machine
    # (`--cpu` alone starts one); a free port keeps concurrent runs on one machine apart.
    command = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
               "-m", "owl.cli", "generate", "--batch", str(prompts), "--out-dir", str(out_dir), "--preset", "tiny",
               "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode != 0, first.stderr[-3000:]  # rank 0 had a failed row: it exits 2, so the launch fails
    assert "owl: error: batch rank 0/2: 2 done, 1 failed, 0 skipped" in first.stderr  # rows 0, 2, 4
    summaries = sorted(line for line in first.stdout.splitlines() if line.startswith("batch rank"))
    assert len(summaries) == 1, first.stdout
    assert summaries[0].startswith("batch rank 1/2: 2 done, 0 failed, 0 skipped")  # rows 1, 3

    lines = rank_lines(out_dir)
    ids = [json.loads(line)["id"] for file in lines.values() for line in file]
    assert sorted(ids) == sorted(["red", "00001", "bad", "green", "star"])  # each prompt exactly once
    manifest = [json.loads(line) for line in (out_dir / "manifest.jsonl").read_text().splitlines()]
    assert [m["id"] for m in manifest] == ["red", "00001", "bad", "green", "star"]  # merged, in input order
    assert {m["id"]: m["rank"] for m in manifest} == {"red": 0, "00001": 1, "bad": 0, "green": 1, "star": 0}
    bad = next(m for m in manifest if m["id"] == "bad")
    assert bad["status"] == "failed" and bad["error"].startswith("image not found:")
    for m in manifest:
        if m["status"] == "ok":
            assert (out_dir / m["output"]).is_file() and m["frames"] == 16
            assert (out_dir / f"{m['id']}.storyboard.json").is_file() and (out_dir / f"{m['id']}.session").is_dir()

    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(line.split(";")[0] for line in again.stdout.splitlines() if line.startswith("batch rank")) == [
        "batch rank 0/2: 0 done, 0 failed, 3 skipped", "batch rank 1/2: 0 done, 0 failed, 2 skipped"]
    assert rank_lines(out_dir) == lines  # nothing new was run


def test_one_process_runs_everything_and_retries_failures_on_request(tmp_path, capsys):
    prompts = write_rows(tmp_path / "prompts.jsonl", ROWS[1:3])
    args = ["generate", "--batch", str(prompts), "--out-dir", str(tmp_path), "--preset", "tiny", "--quiet",
            "--no-session"]
    assert main(args) == 2  # a failed row: the run went on, but it did not succeed
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("owl: error: batch rank 0/1: 1 done, 1 failed, 0 skipped"), err
    assert not (tmp_path / "00000.session").exists()
    (tmp_path / "missing.png").write_bytes(b"still not an image")
    assert main([*args, "--retry-failed"]) == 2
    assert capsys.readouterr().err.startswith("owl: error: batch rank 0/1: 0 done, 1 failed, 1 skipped")
    manifest = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [(m["id"], m["status"]) for m in manifest] == [("00000", "ok"), ("bad", "failed")]
    assert "cannot read image" in manifest[1]["error"]  # the latest attempt


@pytest.mark.parametrize("content, extra, message", [
    ('{"prompt": "a"}\n{"prompt": "b", "id": "00000"}\n', [], "id '00000' is already used on line 1"),
    ('{"prompt": "a", "size": 4}\n', [], "line 1 has unknown key(s) ['size']; accepted: ['prompt', 'image'"),
    ('{"prompt": "a"}\nnot json\n', [], "line 2 is not valid JSON"),
    ('["a"]\n', [], "line 1 must be a JSON object"),
    ('{"prompt": "a", "id": "../up"}\n', [], "id must be a file name"),
    ('{"prompt": "a", "seconds": "2"}\n', [], "seconds must be a number"),
    ('{"prompt": "a", "dynamics": 3}\n', [], "dynamics must be a list of texts"),
    ('\n', [], "has no rows"),
    ('{"prompt": "a"}\n', ["--prompt", "x"], "--batch takes prompts, images and dynamics from its rows; drop --prompt"),
])
def test_bad_batch_files(tmp_path, capsys, content, extra, message):
    (tmp_path / "p.jsonl").write_text(content)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code = main(["generate", "--batch", str(tmp_path / "p.jsonl"), "--out-dir", str(out_dir), "--preset", "tiny",
                 "--quiet", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("owl: error:") and message in err[0], err
    assert list(out_dir.iterdir()) == []


def test_batch_needs_an_out_dir(tmp_path, capsys):
    write_rows(tmp_path / "p.jsonl", ROWS[:1])
    assert main(["generate", "--batch", str(tmp_path / "p.jsonl"), "--preset", "tiny"]) == 2
    assert "--batch needs --out-dir DIR" in capsys.readouterr().err
