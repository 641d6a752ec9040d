"""The memory probe (owl/eval/probe.py) and `owl eval shapes --probe` / `--probe-train`."""

import argparse
import json

import numpy as np
import pytest
import torch

from owl.data.shapes import generate_shapes
from owl.errors import OwlError
from owl.eval.commands import add_eval_commands
from owl.eval.probe import ProbeCase, away_cases, clip_grid, fit_probe, video_states
from owl.eval.shapes import evaluate_shapes, list_scenarios, load_scenario, read_truth


def _run(argv):
    parser = argparse.ArgumentParser(prog="owl")
    add_eval_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """A training set and a held-out set of another seed, 24 s videos."""
    root = tmp_path_factory.mktemp("probe")
    generate_shapes(root / "train", videos=6, seconds=24, seed=5)
    generate_shapes(root / "heldout", videos=4, seconds=24, seed=3)  # two of them with a return
    return root / "train" / "scenarios", root / "heldout" / "scenarios"


def test_cases_are_the_objects_off_screen_that_come_back(sets, tiny_pipe):
    _, heldout = sets
    returns = 0
    for scenario in list_scenarios(heldout):
        truth = read_truth(scenario)
        starts = clip_grid(tiny_pipe.renderer, scenario)
        cases = away_cases(scenario, truth, starts)
        visible = [{o["id"]: o for o in frame} for frame in truth.tracks]
        for case in cases:
            f = starts[case.clip]
            obj = next(i for g in range(f - 1, -1, -1) for i, o in visible[g].items()  # its last sighting
                       if (o["colour"], o["shape"]) == (case.colour, case.shape))
            assert obj not in visible[f - 1]  # off screen in the newest frame the world model saw
            assert any(obj in frame for frame in visible[f:])  # and back later
            assert case.segment == int(f / scenario.fps / scenario.clip_seconds)
        # every return of the ground truth has a case at the clip it happens in, with the identity it left with
        for k, event in enumerate(truth.events):
            if event["kind"] == "reenter":
                returns += 1
                left = [o for frame in truth.tracks[: int(k * scenario.clip_seconds * scenario.fps)]
                        for o in frame if o["id"] == event["object"]][-1]  # as last seen (it may have recoloured)
                (case,) = [c for c in cases if c.segment == k and c.kind == "reenter"]
                assert (case.colour, case.shape) == (left["colour"], left["shape"])
    assert returns == 2


def _synthetic(n: int, signal: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    colours, shapes = ["red", "blue", "green"], ["circle", "square"]
    cases = [ProbeCase(f"v{i // 2}", 1, 1, colours[i % 3], shapes[(i // 3) % 2], "wait", False) for i in range(n)]
    features = torch.randn(n, 40, generator=generator)
    for i, c in enumerate(cases):  # the identity written along two directions, scaled by `signal`
        features[i, colours.index(c.colour)] += signal * 5
        features[i, 10 + shapes.index(c.shape)] += signal * 5
    return features, cases


def test_the_probe_reads_what_the_features_carry_and_nothing_else():
    x, cases = _synthetic(120, 1.0, 0)
    probe = fit_probe(x, cases)
    test_x, test_cases = _synthetic(60, 1.0, 1)
    predicted = probe.predict(test_x)
    assert np.mean([p == c.colour for p, c in zip(predicted["colour"], test_cases)]) > 0.95
    assert np.mean([p == c.shape for p, c in zip(predicted["shape"], test_cases)]) > 0.95
    noise_x, noise_cases = _synthetic(120, 0.0, 2)
    predicted = fit_probe(noise_x, noise_cases).predict(_synthetic(300, 0.0, 3)[0])
    truth = _synthetic(300, 0.0, 3)[1]
    assert np.mean([p == c.colour for p, c in zip(predicted["colour"], truth)]) < 0.5  # chance is 1/3
    with pytest.raises(OwlError, match="at least 2 training cases"):
        fit_probe(x[:1], cases[:1])


def test_the_states_on_a_rollouts_own_frames_are_the_states_it_read(sets, tiny_pipe):
    """The probe reads states by the loop's protocol: on the rollout's frames it finds the rollout's states."""
    _, heldout = sets
    scenario = load_scenario(heldout / "shapes_3_00001.json")
    from owl.eval.shapes import generate

    for memory in ("full", "last"):
        states = []
        frames, _ = generate(tiny_pipe, scenario, memory=memory, steps=1, states=states)
        read = video_states(tiny_pipe.world_model, tiny_pipe.renderer, scenario, frames, memory)
        assert len(read) == len(states) == len(clip_grid(tiny_pipe.renderer, scenario))
        for a, b in zip(read, states):
            torch.testing.assert_close(a, b.float().flatten(), rtol=1e-4, atol=1e-5)


def test_probe_command_reports_both_memories_and_chance(sets, tiny_pipe, tiny_dir, tmp_path, capsys):
    train, heldout = sets
    out = tmp_path / "probe.json"
    assert _run(["eval", "shapes", "--probe", "--model", str(tiny_dir), "--scenarios", str(heldout),
                 "--probe-train", str(train), "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    expected = sum(len(away_cases(s, read_truth(s), clip_grid(tiny_pipe.renderer, s))) for s in list_scenarios(heldout))
    assert set(report["memories"]) == {"full", "last"}
    for scores in list(report["memories"].values()) + [report["chance"]]:
        assert scores["identity"]["total"] == expected > 0
        assert scores["identity"]["correct"] <= min(scores["colour"]["correct"], scores["shape"]["correct"])
        assert sum(k["total"] for k in scores["by_kind"].values()) == expected
    assert len(report["cases"]) == expected
    printed = capsys.readouterr().out
    assert "memory probe" in printed and "full memory" in printed and "chance" in printed


def test_rollout_probe_sits_beside_reentry(sets, tiny_dir, tmp_path):
    train, heldout = sets
    one = heldout.parent / "one"  # the scenario with a return alone (its paths are relative: ../tracks/...)
    one.mkdir(exist_ok=True)
    (one / "shapes_3_00001.json").write_text((heldout / "shapes_3_00001.json").read_text())
    (one / "shapes_3_00001.png").write_bytes((heldout / "shapes_3_00001.png").read_bytes())
    report = evaluate_shapes(one, tiny_dir, steps=1, probe_train=train)
    pooled = report["aggregate"]["probe"]
    per = [r["probe"] for r in report["scenarios"]]
    assert pooled["total"] == sum(p["total"] for p in per) > 0
    assert sum(pooled["returns"].values()) == sum(len(p["returns"]) for p in per)
    assert 0 < sum(len(p["returns"]) for p in per) <= report["aggregate"]["reentry"]["total"]
    with pytest.raises(OwlError, match="probe reads the states of a rollout"):
        evaluate_shapes(heldout, ground_truth=True, probe_train=train)


@pytest.mark.parametrize("extra, message", [
    ([], "--probe needs --model DIR"),
    (["--probe-train", "TRAIN", "--memory", "last"], "drop --memory"),
    (["--probe-train", "TRAIN", "--ground-truth"], "drop --ground-truth"),
    (["--probe-train", "nowhere"], "scenario folder not found"),
])
def test_probe_flags_raise_one_line_errors(sets, tiny_dir, extra, message):
    train, heldout = sets
    extra = [str(train) if e == "TRAIN" else e for e in extra]
    with pytest.raises(OwlError, match=message):
        _run(["eval", "shapes", "--probe", "--model", str(tiny_dir), "--scenarios", str(heldout)] + extra)
    with pytest.raises(OwlError, match="drop --ground-truth and --reconstruct"):
        _run(["eval", "shapes", "--ground-truth", "--scenarios", str(heldout), "--probe-train", str(train)])
