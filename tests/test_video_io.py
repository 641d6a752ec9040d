"""owl.video_io: exact frames by index and by time, variable frame rate, rotation, odd sizes, audio, bad files."""

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from owl.errors import OwlError
from owl.video_io import (
    ReaderCache, VideoFile, VideoWriter, cthw_to_thwc, read_span, read_video, thwc_to_cthw, video_info,
    video_rotation, write_video,
)


def ffmpeg(*args):
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", *args], check=True)


def index_frames(n, height=48, width=64, step=4):
    """Frame i is flat grey 8 + step * i: its index survives H.264 (and scaling, off by ~2 levels) as brightness."""
    return np.stack([np.full((height, width, 3), 8 + step * i, np.uint8) for i in range(n)])


def decode_index(frames, step=4):
    return np.round((frames.reshape(len(frames), -1).mean(1) - 8) / step).astype(int)


@pytest.fixture(scope="module")
def index_video(tmp_path_factory):
    """60 frames at 10 fps, keyframe every 12 frames with B-frames, so decord must seek and reorder."""
    path = tmp_path_factory.mktemp("io") / "index.mp4"
    import imageio

    writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=10, codec="libx264", quality=8,
                                pixelformat="yuv420p", macro_block_size=1, output_params=["-g", "12", "-bf", "3"])
    for frame in index_frames(60):
        writer.append_data(frame)
    writer.close()
    return path


def test_exact_frame_indices(index_video):
    video = VideoFile(index_video)
    rng = np.random.default_rng(0)
    for _ in range(5):
        wanted = rng.integers(0, 60, size=12)  # unsorted, with repeats
        assert decode_index(video.frames(wanted)).tolist() == wanted.tolist()
    assert decode_index(video.frames(np.arange(60))).tolist() == list(range(60))


@pytest.mark.parametrize("width", [16, 48, 72])
def test_widths_that_decord_pads(tmp_path, width):
    # decord 0.6 returns padded rows (and fails get_batch) for these widths; frames must still be exact.
    path = tmp_path / "narrow.mp4"
    write_video(path, index_frames(12, 32, width, step=16), fps=8)
    frames, _ = read_video(path)
    assert frames.shape == (12, 32, width, 3)
    assert decode_index(frames, step=16).tolist() == list(range(12))
    frames, _ = read_span(path, 0.5, fps=8, num_frames=4, size=(48, 48))
    assert frames.shape == (4, 48, 48, 3) and decode_index(frames, step=16).tolist() == [4, 5, 6, 7]


def test_info_and_time_sampling(index_video):
    info = video_info(index_video)
    assert (info.frames, info.fps, info.duration, info.size, info.rotation) == (60, 10.0, 6.0, (48, 64), 0)
    assert not info.variable_fps
    frames, fps = read_video(index_video)
    assert fps == 10.0 and decode_index(frames).tolist() == list(range(60))
    frames, fps = read_video(index_video, fps=5)
    assert fps == 5.0 and decode_index(frames).tolist() == list(range(0, 60, 2))
    frames, _ = read_span(index_video, 1.0, 3.0, fps=2.5)  # times 1.0, 1.4, ..., 2.6
    assert decode_index(frames).tolist() == [10, 14, 18, 22, 26]
    frames, _ = read_span(index_video, 2.0, fps=10, num_frames=4)
    assert decode_index(frames).tolist() == [20, 21, 22, 23]


def test_span_errors(index_video):
    with pytest.raises(OwlError, match="outside"):
        read_span(index_video, 5.0, 9.0, fps=10)
    with pytest.raises(OwlError, match="holds 10 frames at 10 fps, 20 were asked"):
        read_span(index_video, 0.0, 1.0, fps=10, num_frames=20)
    with pytest.raises(OwlError, match="after its start"):
        read_span(index_video, 3.0, 2.0, fps=10)


def test_size_covers_and_crops(index_video):
    frames, _ = read_span(index_video, 0, 1, fps=10, size=(32, 32))
    assert frames.shape == (10, 32, 32, 3)
    assert decode_index(frames).tolist() == list(range(10))
    frames, _ = read_video(index_video, size=(16, 40))
    assert frames.shape == (60, 16, 40, 3)


def test_variable_frame_rate_sampled_by_time(tmp_path):
    # 20 frames 0.1 s apart, then 20 frames 0.05 s apart: frame i's grey level says i.
    source, path = tmp_path / "cfr.mp4", tmp_path / "vfr.mp4"
    write_video(source, index_frames(40, 32, 32), fps=10)
    ffmpeg("-i", str(source), "-vf", "settb=1/1000,setpts='if(lt(N,20),N*0.1,2+(N-20)*0.05)/TB'",
           "-fps_mode", "passthrough", "-enc_time_base", "1/1000", "-video_track_timescale", "1000",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    info = video_info(path)
    assert info.variable_fps and info.frames == 40 and info.duration == pytest.approx(3.05, abs=0.01)
    frames, _ = read_span(path, 0.0, 3.0, fps=10)  # one frame per 0.1 s, whatever the file's spacing
    assert decode_index(frames).tolist() == list(range(20)) + list(range(20, 40, 2))


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path, degrees):
    plain, rotated, reference = tmp_path / "plain.mp4", tmp_path / "rotated.mp4", tmp_path / "ref.png"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=8:duration=1", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           str(plain))
    ffmpeg("-display_rotation", str(degrees), "-i", str(plain), "-c", "copy", str(rotated))
    ffmpeg("-i", str(rotated), "-frames:v", "1", str(reference))  # ffmpeg turns it on decode
    from PIL import Image

    expected = np.asarray(Image.open(reference).convert("RGB")).astype(int)
    assert video_rotation(rotated) == degrees
    info = video_info(rotated)
    assert info.size == expected.shape[:2] and info.rotation == degrees
    frames, _ = read_span(rotated, 0, 1, fps=8)
    assert frames.shape[1:3] == expected.shape[:2]
    assert np.abs(frames[0].astype(int) - expected).mean() < 1.0
    resized, _ = read_video(rotated, size=(24, 24))
    assert resized.shape == (8, 24, 24, 3)


def test_odd_size_with_audio_track(tmp_path):
    path = tmp_path / "odd.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=65x47:rate=10:duration=2", "-f", "lavfi", "-i",
           "sine=frequency=440:duration=2", "-c:v", "libx264", "-pix_fmt", "yuv444p", "-c:a", "aac", str(path))
    info = video_info(path)
    assert info.size == (47, 65) and info.frames == 20
    frames, _ = read_video(path, fps=5)
    assert frames.shape == (10, 47, 65, 3)
    frames, _ = read_span(path, 0.5, 1.5, fps=4, size=(31, 33))
    assert frames.shape == (4, 31, 33, 3)


def test_bad_files_raise_owl_errors_naming_the_file(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    (tmp_path / "notes.mp4").write_text("not a video\n")
    ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(tmp_path / "audio.mp4"))
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=32x32:rate=8:duration=1", "-frames:v", "0", "-c:v", "libx264",
           str(tmp_path / "zero.mp4"))
    write_video(tmp_path / "good.mp4", index_frames(16, 32, 32), fps=8)
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    from PIL import Image

    Image.fromarray(index_frames(1)[0]).save(tmp_path / "image.png")
    for name in ["missing.mp4", "empty.mp4", "noise.mp4", "notes.mp4", "audio.mp4", "zero.mp4", "cut.mp4",
                 "image.png"]:
        with pytest.raises(OwlError, match=name.replace(".", r"\.")):
            video_info(tmp_path / name)
        with pytest.raises(OwlError, match=name.replace(".", r"\.")):
            read_video(tmp_path / name)
    with pytest.raises(OwlError, match="folder"):
        video_info(tmp_path)


def test_writer_is_atomic(tmp_path):
    target = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(target, fps=8) as writer:
            writer.append(index_frames(4, 16, 16))
            raise RuntimeError("interrupted")
    assert not target.exists() and not list(tmp_path.iterdir())
    write_video(target, index_frames(8, 16, 16), fps=8)
    assert decode_index(read_video(target)[0]).tolist() == list(range(8))
    with pytest.raises(OwlError, match="mp4"):
        VideoWriter(tmp_path / "out.avi", fps=8)


def test_writer_encodes_in_order_and_reports_an_encoding_error(tmp_path):
    """Encoding runs on the writer's thread: chunks arrive in order, and an error there surfaces in the caller
    (at the next append or at close), leaving nothing at the target."""
    target = tmp_path / "out.mp4"
    with VideoWriter(target, fps=8) as writer:
        for start in range(0, 12, 3):
            writer.append(index_frames(12, 16, 16)[start : start + 3])
    assert decode_index(read_video(target)[0]).tolist() == list(range(12))

    broken = tmp_path / "broken.mp4"
    with pytest.raises(OSError, match="disk full"):
        with VideoWriter(broken, fps=8) as writer:
            writer.append(index_frames(4, 16, 16))

            def fail(frame):
                raise OSError("disk full")

            writer._writer.append_data = fail
            for _ in range(4):  # the error is raised by an append once the thread has met it, else by close
                writer.append(index_frames(4, 16, 16))
    assert not broken.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a niceness per thread is Linux's")
def test_the_encoder_runs_nicer_than_the_loop(tmp_path):
    """The encoding thread and the ffmpeg it starts run ENCODER_NICENESS nicer than the caller, which keeps its own."""
    from owl.video_io import ENCODER_NICENESS

    own = os.getpriority(os.PRIO_PROCESS, 0)
    with VideoWriter(tmp_path / "out.mp4", fps=8) as writer:
        writer.append(index_frames(4, 16, 16))
        deadline, children = time.monotonic() + 30, []
        while not children and time.monotonic() < deadline:  # ffmpeg starts with the thread's first frame
            children = [int(pid) for task in Path(f"/proc/{os.getpid()}/task").iterdir()
                        for pid in (task / "children").read_text().split()]
            time.sleep(0.05)
        assert len(children) == 1
        assert os.getpriority(os.PRIO_PROCESS, children[0]) == min(19, own + ENCODER_NICENESS)
        assert os.getpriority(os.PRIO_PROCESS, writer._thread.native_id) == min(19, own + ENCODER_NICENESS)
        assert os.getpriority(os.PRIO_PROCESS, 0) == own
    assert ENCODER_NICENESS > 0


def test_reader_cache_is_lazy_and_never_pickled(index_video):
    cache = ReaderCache(max_open=2)
    first = cache.get(index_video)
    assert cache.get(index_video) is first
    copy = pickle.loads(pickle.dumps(cache))
    assert copy._open == {} and copy.max_open == 2
    frames, _ = read_span(index_video, 0, 1, fps=10, readers=copy)
    assert decode_index(frames).tolist() == list(range(10))


def test_layout_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), np.uint8)
    tensor = thwc_to_cthw(frames)
    assert tensor.shape == (3, 3, 4, 5) and tensor.dtype == torch.float32
    assert tensor.min() >= -1 and tensor.max() <= 1
    assert np.array_equal(cthw_to_thwc(tensor), frames)


def test_a_corrupt_video_gets_owls_line_and_no_native_noise(tmp_path):
    """decord's FFmpeg and C++ layers write to file descriptor 2 on a corrupt file; Owl says it in one line."""
    import sys

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 64)
    code = ("from owl.errors import OwlError\nfrom owl.video_io import read_video\n"
            f"try:\n    read_video({str(bad)!r})\nexcept OwlError as exc:\n    print(exc)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "not a readable video file" in run.stdout
    assert run.stderr == ""
    ok = tmp_path / "ok.mp4"  # and a good file still reads, its descriptors restored
    from owl.video_io import read_video, write_video

    write_video(ok, np.zeros((9, 16, 16, 3), np.uint8), fps=8)
    assert read_video(ok)[0].shape == (9, 16, 16, 3)
