"""Both datasets on a tiny Shapes World set, through collate, a 2-worker DataLoader and accelerate."""

import csv
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from owl.data import ClipDataset, DenseCaptionDataset, collate, generate_shapes
from owl.errors import OwlError
from owl.video_io import read_span


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    generate_shapes(root, videos=4, seconds=12, seed=0, size=32, fps=8)
    return root


def to_uint8(frames_cthw):
    return ((frames_cthw.permute(1, 2, 3, 0) + 1) * 127.5).round().byte().numpy()


def test_dense_windows(shapes):
    import json

    captions = json.loads((shapes / "captions.json").read_text())
    data = DenseCaptionDataset(shapes / "captions.json", clip_seconds=4, frames_per_clip=8, size=(32, 32),
                               clips_per_sample=2)
    assert len(data) == 8  # 3 clips per video: windows [0, 1] and [1, 2]
    first, second = data[0], data[1]
    sentences = captions["shapes_0_00000"]["sentences"]
    assert first["video_id"] == second["video_id"] == "shapes_0_00000"
    assert first["dynamics"] == sentences[:2] and second["dynamics"] == sentences[1:]
    assert first["new_scene"].tolist() == [True, False] and second["new_scene"].tolist() == [False, False]
    assert first["frames"].shape == (2, 3, 8, 32, 32) and first["frames"].dtype == torch.float32
    assert -1 <= first["frames"].min() and first["frames"].max() <= 1
    # clip 1 of the second window is the video's seconds 8-12, at 2 fps (8 frames per 4 s)
    expected, _ = read_span(shapes / "shapes_0_00000.mp4", 8, 12, fps=2, size=(32, 32))
    assert np.array_equal(to_uint8(second["frames"][1]), expected)  # clip t is (C, F, H, W)
    whole = DenseCaptionDataset(shapes / "captions.json", frames_per_clip=4, size=(32, 32))
    assert len(whole) == 4 and whole[0]["frames"].shape == (3, 3, 4, 32, 32)


def test_clip_dataset_columns_and_offsets(shapes, tmp_path):
    table = tmp_path / "clips.csv"
    with open(table, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "text", "t0", "t1", "aesthetic"])
        writer.writerow([str(shapes / "shapes_0_00000.mp4"), "a clip", "1.0", "5.0", "0.9"])
        writer.writerow([str(shapes / "shapes_0_00001.mp4"), "another clip", "", "", "0.2"])
        writer.writerow([str(shapes / "shapes_0_00002.mp4"), "a third", "00:00:02.000", "00:00:06.000", "0.5"])
    kwargs = dict(num_frames=8, fps=4, size=(32, 32), video_column="path", caption_column="text",
                  start_column="t0", end_column="t1")
    data = ClipDataset(table, offset="start", **kwargs)
    assert len(data) == 3
    sample = data[0]
    assert sample["frames"].shape == (3, 8, 32, 32) and sample["caption"] == "a clip" and sample["start"] == 1.0
    expected, _ = read_span(shapes / "shapes_0_00000.mp4", 1.0, 3.0, fps=4, size=(32, 32))
    assert np.array_equal(to_uint8(sample["frames"]), expected)
    centred = ClipDataset(table, offset="center", **kwargs)
    assert centred[0]["start"] == 2.0 and centred[1]["start"] == 5.0  # 12 s video, 2 s of frames
    assert ClipDataset(table, offset="random", **kwargs)[1]["start"] <= 10.0
    assert [item["caption"] for item in ClipDataset(table, min_scores={"aesthetic": 0.5}, **kwargs).items] == \
        ["a clip", "a third"]
    filtered = ClipDataset(table, max_scores={"aesthetic": 0.3}, **kwargs)
    assert len(filtered) == 1 and filtered.filtered == 2
    with pytest.raises(OwlError, match="no rows left"):
        ClipDataset(table, min_scores={"aesthetic": 2}, **kwargs)
    with pytest.raises(OwlError, match="no column 'motion'"):
        ClipDataset(table, min_scores={"motion": 0.1}, **kwargs)


def test_collate():
    samples = [{"frames": torch.zeros(3, 2, 4, 4), "caption": f"c{i}", "dynamics": ["a", "b"], "start": 1.5 * i,
                "new_scene": torch.tensor([True, False])} for i in range(3)]
    batch = collate(samples)
    assert batch["frames"].shape == (3, 3, 2, 4, 4) and batch["new_scene"].shape == (3, 2)
    assert batch["caption"] == ["c0", "c1", "c2"] and batch["dynamics"] == [["a", "b"]] * 3
    assert torch.equal(batch["start"], torch.tensor([0.0, 1.5, 3.0]))
    samples[1]["frames"] = torch.zeros(3, 2, 4, 5)
    with pytest.raises(OwlError, match="'frames'.*shapes"):
        collate(samples)


def test_dataloader_with_two_workers(shapes):
    dense = DenseCaptionDataset(shapes / "captions.json", frames_per_clip=4, size=(32, 32), clips_per_sample=3)
    dense[0]  # a reader opened in the parent must not leak into the workers
    loader = DataLoader(dense, batch_size=3, num_workers=2, collate_fn=collate)
    ids = []
    for batch in loader:
        assert batch["frames"].shape[1:] == (3, 3, 4, 32, 32)
        assert batch["new_scene"].dtype == torch.bool and batch["new_scene"][:, 0].all()
        assert all(len(d) == 3 for d in batch["dynamics"])
        ids += batch["video_id"]
    assert sorted(ids) == [f"shapes_0_{i:05d}" for i in range(4)]

    table = shapes / "clips.jsonl"
    table.write_text("".join(f'{{"video": "shapes_0_{i:05d}.mp4", "caption": "clip {i}", "start": 0, "end": 8}}\n'
                             for i in range(4)))
    clips = ClipDataset(table, num_frames=4, fps=2, size=(32, 32))
    batches = list(DataLoader(clips, batch_size=2, num_workers=2, collate_fn=collate, shuffle=True))
    assert sorted(c for b in batches for c in b["caption"]) == [f"clip {i}" for i in range(4)]
    assert batches[0]["frames"].shape == (2, 3, 4, 32, 32)


def test_datasets_pickle_without_readers(shapes):
    data = DenseCaptionDataset(shapes / "captions.json", frames_per_clip=2, size=(16, 16))
    data[0]
    copy = pickle.loads(pickle.dumps(data))
    assert copy.readers._open == {}
    assert torch.equal(copy[0]["frames"], data[0]["frames"])


def test_accelerate_prepared_loader(shapes):
    accelerate = pytest.importorskip("accelerate")
    accelerator = accelerate.Accelerator(cpu=True)
    data = DenseCaptionDataset(shapes / "captions.json", frames_per_clip=2, size=(16, 16), clips_per_sample=2)
    loader = accelerator.prepare(DataLoader(data, batch_size=4, num_workers=2, collate_fn=collate))
    batches = list(loader)
    assert len(batches) == 2
    assert batches[0]["frames"].shape == (4, 2, 3, 2, 16, 16)
    assert isinstance(batches[0]["dynamics"][0][0], str) and isinstance(batches[0]["video_id"][0], str)
