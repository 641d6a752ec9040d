"""The Shapes World scenario runner and `owl eval shapes` (owl/eval/shapes.py, owl/eval/commands.py)."""

import argparse
import json
import shutil

import pytest

from owl.data.shapes import generate_shapes
from owl.errors import OwlError
from owl.eval.commands import add_eval_commands
from owl.eval.shapes import evaluate_shapes, list_scenarios, load_scenario, scenario_dynamics


def _parser():
    parser = argparse.ArgumentParser(prog="owl")
    add_eval_commands(parser.add_subparsers(dest="command"))
    return parser


def _run(argv):
    args = _parser().parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def shapes_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, videos=4, seconds=24, seed=3)  # mp4s, tracks, scenarios; two with a return
    return root


def test_ground_truth_videos_score_full_marks_through_the_cli(shapes_set, tmp_path, capsys):
    out = tmp_path / "gt.json"
    assert _run(["eval", "shapes", "--ground-truth", "--scenarios", str(shapes_set / "scenarios"),
                 "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    agg = report["aggregate"]
    assert agg["scenarios"] == len(report["scenarios"]) == 4
    assert agg["reentry"]["total"] == 2 and agg["reentry"]["accuracy"] == 1.0
    assert agg["reentry"]["truth_accuracy"] == 1.0
    assert agg["following"]["total"] == 24 and agg["following"]["accuracy"] == 1.0
    assert agg["drift"]["background"]["end"] < 1.0 and agg["drift"]["object"]["end"] < 3.0  # grey levels
    assert agg["quality"]["palette_fraction"] > 0.98 and agg["quality"]["dynamic_degree"] > 1.0
    assert [p["t"] for p in agg["drift"]["curve"]] == [4.0, 8.0, 12.0, 16.0, 20.0, 24.0]
    assert report["settings"]["ground_truth"] is True
    printed = capsys.readouterr()
    assert "100.0% (2/2)" in printed.out and "100.0% (24/24)" in printed.out
    assert "shapes_3_00001" in printed.out and "[4/4]" in printed.err


def test_limit_takes_the_first_scenarios_in_name_order(shapes_set):
    report = evaluate_shapes(shapes_set / "scenarios", ground_truth=True, limit=2)
    assert [r["video_id"] for r in report["scenarios"]] == ["shapes_3_00000", "shapes_3_00001"]


def test_scenario_dynamics_follow_the_model_clip_grid(shapes_set):
    scenario = load_scenario(shapes_set / "scenarios" / "shapes_3_00001.json")
    d = scenario.dynamics
    assert len(d) == 6 and d[0] == scenario.prompt
    # 2 s clips (the tiny preset: 16 frames at 8 fps after a 17-frame first clip)
    assert scenario_dynamics(scenario, [2.125, 4.125, 6.125, 8.125]) == [d[0], d[1], d[1], d[2]]
    # 4 s clips, as Shapes World: clip t is driven by the text of segment t
    assert scenario_dynamics(scenario, [4.125 + 4 * i for i in range(5)]) == d[1:]


def _copy(shapes_set, tmp_path):
    root = tmp_path / "set"
    shutil.copytree(shapes_set, root)
    return root / "scenarios"


@pytest.mark.parametrize("change, message", [
    (lambda s: (s / "shapes_3_00000.json").write_text("{not json"), "is not valid JSON"),
    (lambda s: (s / "shapes_3_00000.json").write_text("[1, 2]"), "must be a JSON object"),
    (lambda s: (s / "shapes_3_00000.json").write_text(json.dumps({"video_id": "x"})), "lacks 'prompt'"),
    (lambda s: _edit(s, fps="fast"), "'fps' has the wrong type"),
    (lambda s: _edit(s, seconds=0), "'seconds' must be positive"),
    (lambda s: _edit(s, dynamics=[]), "non-empty list of texts"),
    (lambda s: _edit(s, size=[64]), r"'size' must be \[height, width\]"),
    (lambda s: (s / "shapes_3_00000.png").unlink(), "first frame .* does not exist"),
    (lambda s: (s.parent / "tracks" / "shapes_3_00000.json").write_text("{}"), "must hold the lists"),
    (lambda s: (s.parent / "shapes_3_00000.mp4").unlink(), "its video .* does not exist"),
])
def test_bad_scenarios_raise_one_line_errors(shapes_set, tmp_path, change, message):
    scenarios = _copy(shapes_set, tmp_path)
    change(scenarios)
    with pytest.raises(OwlError, match=message) as info:
        _run(["eval", "shapes", "--ground-truth", "--scenarios", str(scenarios)])
    assert "\n" not in str(info.value)


def _edit(scenarios, **changes):
    path = scenarios / "shapes_3_00000.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_bad_folders_and_flags_raise_one_line_errors(shapes_set, tmp_path):
    scenarios = str(shapes_set / "scenarios")
    (tmp_path / "empty").mkdir()
    cases = [
        (["--ground-truth", "--scenarios", str(tmp_path / "missing")], "scenario folder not found"),
        (["--ground-truth", "--scenarios", str(tmp_path / "empty")], r"no scenarios \(\*\.json\)"),
        (["--model", str(tmp_path / "no-model"), "--scenarios", scenarios], "model folder not found"),
        (["--scenarios", scenarios], "give --model DIR"),
        (["--ground-truth", "--model", str(tmp_path), "--scenarios", scenarios], "drop --model"),
        (["--ground-truth", "--guidance", "2", "--scenarios", scenarios], "drop --guidance"),
        (["--reconstruct", "--model", str(tmp_path), "--steps", "3", "--scenarios", scenarios], "drop --steps"),
        (["--reconstruct", "--ground-truth", "--scenarios", scenarios], "drop --ground-truth"),
        (["--reconstruct", "--scenarios", scenarios], "give --model DIR"),
        (["--ground-truth", "--scenarios", scenarios, "--out", str(tmp_path)], "got a folder"),
        (["--ground-truth", "--scenarios", scenarios, "--out", str(tmp_path / "no" / "r.json")], "does not exist"),
    ]
    for argv, message in cases:
        with pytest.raises(OwlError, match=message) as info:
            _run(["eval", "shapes", *argv])
        assert "\n" not in str(info.value)
    with pytest.raises(OwlError, match="memory must be"):
        evaluate_shapes(scenarios, ground_truth=False, pipe=object(), memory="none")
    with pytest.raises(SystemExit):  # argparse itself rejects these
        _parser().parse_args(["eval", "shapes", "--scenarios", scenarios, "--limit", "0"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["eval", "shapes", "--scenarios", scenarios, "--memory", "half"])


def test_reconstruct_measures_the_real_videos_through_the_vae(shapes_set, tiny_dir, tmp_path):
    """--reconstruct: the ceiling a model's VAE sets. An untrained VAE loses the shapes; the real videos keep them."""
    out = tmp_path / "vae.json"
    assert _run(["eval", "shapes", "--reconstruct", "--model", str(tiny_dir), "--scenarios",
                 str(shapes_set / "scenarios"), "--limit", "1", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["settings"]["reconstruct"] and report["scenarios"][0]["frames"] == 192  # 24 s at 8 fps, whole
    truth = evaluate_shapes(shapes_set / "scenarios", ground_truth=True, limit=1)["aggregate"]
    assert truth["following"]["accuracy"] == 1.0
    assert report["aggregate"]["following"]["accuracy"] < 0.5
    assert report["aggregate"]["quality"]["palette_fraction"] < truth["quality"]["palette_fraction"]


def test_list_scenarios_reads_every_json(shapes_set):
    scenarios = list_scenarios(shapes_set / "scenarios")
    assert [s.video_id for s in scenarios] == [f"shapes_3_{i:05d}" for i in range(4)]
    s = scenarios[0]
    assert s.size == (64, 64) and s.fps == 8.0 and s.seconds == 24.0 and s.clip_seconds == 4.0
    assert s.first_frame.is_file() and s.tracks.is_file() and s.video.is_file()


def test_tiny_model_smoke(tiny_dir, tmp_path, capsys):
    root = tmp_path / "short"
    generate_shapes(root, videos=1, seconds=4, seed=1)
    out = tmp_path / "tiny.json"
    assert _run(["eval", "shapes", "--model", str(tiny_dir), "--scenarios", str(root / "scenarios"),
                 "--steps", "1", "--guidance", "1.5", "--memory", "last", "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    (result,) = report["scenarios"]
    assert result["frames"] == 32  # 4 s at 8 fps, the scenario's grid
    text = load_scenario(root / "scenarios" / "shapes_1_00000.json").prompt
    assert [c["dynamics"] for c in result["storyboard"]] == [text, text]  # 2 s clips inside one 4 s segment
    assert not any(c["predicted"] for c in result["storyboard"])
    assert result["following"]["total"] == 1 and result["reentry"]["total"] == 0
    assert 0.0 <= result["quality"]["palette_fraction"] <= 1.0
    assert report["settings"]["memory"] == "last" and report["settings"]["steps"] == 1
    assert report["settings"]["guidance_scale"] == 1.5
    assert "all (1)" in capsys.readouterr().out
