"""Resume state: read without unpickling, a damaged newest checkpoint passed over, the log without replayed steps.

One uninterrupted run and one crashed run (killed while loading step 8's batch, so no Ctrl-C save: its last
checkpoints are step 3 and step 6, its log holds steps 1-7) are shared; each test resumes a copy of the crashed
run and compares it with the uninterrupted one.
"""

import json
import pickle
import shutil
import warnings

import pytest
import torch

from owl import OwlError
from owl.errors import OwlWarning
from owl.train import generate
from owl.train.common import enable_activation_checkpointing, load_config

SETTINGS = ["steps=8", "batch_size=2", "save_every=3", "keep_checkpoints=3", "ema_decay=0.9"]
# every file name accelerate's save_state used in a checkpoint folder (optimizer.bin, scheduler.bin, the EMA as
# custom_checkpoint_0.pkl, one random_states_R.pkl per process, the fp16 scaler, the sampler, the weights)
OLD_NAMES = ["model.safetensors", "pytorch_model.bin", "optimizer.bin", "scheduler.bin", "scaler.pt", "sampler.bin",
             "custom_checkpoint_0.pkl", "random_states_0.pkl", "random_states_1.pkl"]


def run(out, shapes, resume=False):
    cfg = load_config("generate", None, [f"data={shapes}", f"output_dir={out}", *SETTINGS])
    generate.main(cfg, resume=resume, quiet=True)
    return out


def log_steps(out):
    return [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]


def losses(out):
    return [json.loads(line)["loss"] for line in (out / "log.jsonl").read_text().splitlines()]


def assert_same_run(a, b):
    torch.testing.assert_close(torch.tensor(losses(a)), torch.tensor(losses(b)), atol=1e-5, rtol=1e-5)
    wa = json.loads((a / "done.json").read_text())["weights_sum"]
    wb = json.loads((b / "done.json").read_text())["weights_sum"]
    assert wa == pytest.approx(wb, rel=1e-6)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    from owl.data.commands import main as data_main

    out = tmp_path_factory.mktemp("shapes")
    assert data_main(["data", "shapes", "--out", str(out), "--videos", "3", "--seconds", "8", "--seed", "0"]) == 0
    return out / "captions.json"


@pytest.fixture(scope="module")
def full(shapes, tmp_path_factory):
    return run(tmp_path_factory.mktemp("full") / "out", shapes)


@pytest.fixture(scope="module")
def crashed(shapes, tmp_path_factory):
    calls = {"n": 0}
    original = generate.Clips.__getitem__

    def crash(self, i):
        calls["n"] += 1
        if calls["n"] == 2 * 7 + 1:  # the first item of step 8's batch
            raise RuntimeError("killed")
        return original(self, i)

    out = tmp_path_factory.mktemp("crashed") / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generate.Clips, "__getitem__", crash)
        with pytest.raises(RuntimeError, match="killed"):
            run(out, shapes)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000003", "step-0000006"]
    assert log_steps(out) == [1, 2, 3, 4, 5, 6, 7]
    return out


def copy_of(crashed, tmp_path):
    return shutil.copytree(crashed, tmp_path / "out")


class Planted:
    """Unpickling this creates `marker`: what a crafted pickle could do instead."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_resume_unpickles_nothing_planted_in_the_checkpoints(tmp_path, shapes, full, crashed):
    out = copy_of(crashed, tmp_path)
    marker = tmp_path / "pickle-ran"
    payload = pickle.dumps(Planted(marker))
    pickle.loads(pickle.dumps(Planted(tmp_path / "check")))  # the payload does run when unpickled
    assert (tmp_path / "check").exists()
    for ckpt in (out / "checkpoints").iterdir():
        for name in OLD_NAMES:
            (ckpt / name).write_bytes(payload)
    run(out, shapes, resume=True)
    assert not marker.exists()
    assert_same_run(full, out)


def test_resume_logs_each_step_once(tmp_path, shapes, full, crashed):
    """The crashed run logged step 7 after its last checkpoint (step 6); the resume replays step 7."""
    out = copy_of(crashed, tmp_path)
    with (out / "log.jsonl").open("a") as f:
        f.write('{"step": 8, "lo')  # the crash cut the next record short
    run(out, shapes, resume=True)
    assert log_steps(out) == list(range(1, 9))
    assert not list(out.glob(".tmp-*"))
    assert_same_run(full, out)


def cut_short(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble_header(path):
    data = bytearray(path.read_bytes())
    data[8:24] = b"\xff" * 16  # the same size, but its JSON header no longer parses
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [
    lambda ckpt: cut_short(ckpt / "trainable.safetensors"),
    lambda ckpt: (ckpt / "optimizer.safetensors").unlink(),
    lambda ckpt: garble_header(ckpt / "ema.safetensors"),
], ids=["cut-short", "missing", "garbled"])
def test_a_damaged_newest_checkpoint_is_passed_over_for_the_one_before(tmp_path, shapes, full, crashed, damage):
    out = copy_of(crashed, tmp_path)
    damage(out / "checkpoints" / "step-0000006")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(out, shapes, resume=True)
    ours = [str(w.message) for w in caught if issubclass(w.category, OwlWarning)]
    assert len(ours) == 1 and "\n" not in ours[0], ours
    assert "passed over step-0000006 (" in ours[0] and ours[0].endswith("resuming from step-0000003"), ours[0]
    assert log_steps(out) == list(range(1, 9))
    assert_same_run(full, out)  # steps 4-8 replayed from step 3 give the same run


def test_no_usable_checkpoint_is_one_error(tmp_path, shapes, crashed):
    """Step 6 cut short; step 3 in the old pickled format (its owl_state.json without a format): neither is loaded."""
    out = copy_of(crashed, tmp_path)
    cut_short(out / "checkpoints" / "step-0000006" / "trainable.safetensors")
    old = out / "checkpoints" / "step-0000003"
    shutil.rmtree(old)
    old.mkdir()
    (old / "owl_state.json").write_text('{"step": 3}\n')
    marker = tmp_path / "pickle-ran"
    for name in OLD_NAMES:
        (old / name).write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(OwlError, match="no usable checkpoint") as error:
        run(out, shapes, resume=True)
    message = str(error.value)
    assert "\n" not in message and "step-0000006 (trainable.safetensors is" in message
    assert "step-0000003 (written by an older Owl" in message
    assert not marker.exists()
    assert log_steps(out) == [1, 2, 3, 4, 5, 6, 7]  # nothing was changed


def test_resume_state_round_trip_with_a_loss_scaler(tmp_path):
    """Everything the resume state holds comes back equal in a fresh process's objects: weights, AdamW state,
    scheduler, EMA, the fp16 loss scaler (not used on CPU by accelerate, so built here) and the generators."""
    import random
    from types import SimpleNamespace

    import numpy as np
    from diffusers.training_utils import EMAModel

    from owl import OwlPipeline
    from owl.train.common import apply_resume_state, lr_lambda, param_groups, read_resume_state, write_resume_state

    cfg = load_config("generate", None, [])

    def build():
        pipe = OwlPipeline.from_preset("tiny", seed=0)
        adamw = torch.optim.AdamW(param_groups(cfg, pipe), betas=(0.9, 0.99))
        schedule = torch.optim.lr_scheduler.LambdaLR(adamw, lr_lambda(cfg))
        ema = EMAModel(pipe.renderer.transformer.parameters(), decay=0.9)
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
        process = SimpleNamespace(is_main_process=True, process_index=0, num_processes=1, scaler=scaler)
        return pipe, adamw, schedule, ema, process

    pipe, adamw, schedule, ema, process = build()
    for _ in range(2):
        for group in adamw.param_groups:
            for p in group["params"]:
                p.grad = torch.randn_like(p)
        adamw.step()
        schedule.step()
        ema.step(pipe.renderer.transformer.parameters())
    process.scaler.scale(torch.ones(()))  # the scale starts on first use
    process.scaler.update(new_scale=256.0)
    write_resume_state(tmp_path, process, pipe, adamw, schedule, ema)
    after = torch.rand(3), random.random(), np.random.rand()

    pipe2, adamw2, schedule2, ema2, process2 = build()
    (tmp_path / "owl_state.json").write_text(json.dumps({
        "format": "owl-resume-1", "step": 2, "num_processes": 1,
        "files": {p.name: p.stat().st_size for p in tmp_path.iterdir()}}))
    apply_resume_state(read_resume_state(tmp_path, 0), tmp_path, process2, pipe2, adamw2, schedule2, ema2)
    again = torch.rand(3), random.random(), np.random.rand()  # the generators continue where they were written
    assert torch.equal(again[0], after[0]) and again[1:] == after[1:]
    a, b = adamw.state_dict(), adamw2.state_dict()
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        for key in a["state"][i]:
            assert torch.equal(a["state"][i][key], b["state"][i][key]), (i, key)
    for g, g2 in zip(adamw.param_groups, adamw2.param_groups):
        assert all(torch.equal(p, p2) for p, p2 in zip(g["params"], g2["params"]))
    assert schedule.state_dict() == schedule2.state_dict()
    assert ema.optimization_step == ema2.optimization_step == 2
    assert all(torch.equal(s, s2) for s, s2 in zip(ema.shadow_params, ema2.shadow_params))
    assert process2.scaler.state_dict() == process.scaler.state_dict() and process2.scaler.get_scale() == 256.0


def test_activation_checkpointing_uses_the_new_name_where_there_is_one():
    class Old:
        def gradient_checkpointing_enable(self):
            self.called = "old"

    class New(Old):
        def activation_checkpointing_enable(self):
            self.called = "new"

    for cls, name in ((Old, "old"), (New, "new")):
        model = cls()
        enable_activation_checkpointing(model)
        assert model.called == name
    from owl import OwlPipeline

    vlm = OwlPipeline.from_preset("tiny", seed=0).world_model.vlm
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation notice from the installed transformers
        enable_activation_checkpointing(vlm)
    assert any(getattr(m, "gradient_checkpointing", False) for m in vlm.modules())
