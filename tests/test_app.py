"""`owl app` (owl/app.py): the page's actions through the API, and the page itself in a real headless browser.

The browser tests drive Debian's chromium with Playwright (`.ci/run` installs both; nothing is downloaded when they
run) against `owl app` started as a user starts it, on a free local port. They skip, saying why, when no browser
is installed. Set OWL_SCREENSHOTS=DIR to keep the screenshots they take (the README's comes from this file).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from owl.app import Progress, Studio, is_loopback, timeline_from_rows
from owl.errors import OwlError
from owl.session import SessionFolder
from owl.timeline import Timeline
from owl.video_io import read_video

REPO = Path(__file__).resolve().parent.parent
PROMPT = "a red ball rolls left"


# --- the page's actions, without a browser ----------------------------------------------------------------------

def test_film_to_with_a_timeline_is_owl_generate_with_that_script(tiny_pipe, tmp_path):
    """"Film to N s" with the timeline editor's rows films what `owl generate --script` films with that timeline."""
    studio = Studio(tiny_pipe, tmp_path / "worlds")
    world = studio.start(PROMPT, None, None, {"seed": 2}, Progress())
    fps, grid = tiny_pipe.renderer.config.fps, tiny_pipe.renderer.grid
    seconds = grid.bounds(3)[1] / fps  # four clips
    starts = [grid.bounds(t)[0] / fps for t in range(4)]
    rows = [[starts[2], starts[3], "a blue square enters."], [None, None, ""]]  # drives clip 2; the empty row is ignored
    studio.film_to(world.path.name, seconds, rows, Progress())
    timeline = Timeline.from_list([{"start": starts[2], "end": starts[3], "dynamics": "a blue square enters."}])
    whole = tiny_pipe(PROMPT, seconds=seconds, seed=2, dynamics=timeline, progress=False)
    world = studio.world(world.path.name)
    assert np.array_equal(world.frames(), whole.frames)
    assert [c.dynamics for c in world.clips] == [c.dynamics for c in whole.storyboard.clips]
    assert [c.predicted for c in world.clips] == [False, True, False, True]
    with pytest.raises(OwlError, match="already"):
        studio.film_to(world.path.name, 1.0, None, Progress())


def test_bad_input_leaves_no_world_behind(tiny_pipe, tmp_path):
    studio = Studio(tiny_pipe, tmp_path / "worlds")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png at all")
    with pytest.raises(OwlError, match="image"):
        studio.start(PROMPT, str(bad), None, {}, Progress())
    with pytest.raises(OwlError, match="height must be a multiple of 16"):
        studio.start(PROMPT, None, None, studio.settings(0, 60, 64, None, None, "full"), Progress())
    with pytest.raises(OwlError, match="prompt is empty"):
        studio.start("  ", None, None, {}, Progress())
    with pytest.raises(OwlError, match="no world yet"):
        studio.film(None, "", None, Progress())
    assert list(studio.folder.iterdir()) == []


def test_timeline_rows_are_checked_in_one_line():
    assert timeline_from_rows([[None, None, ""], [None, None, None]]) is None
    assert timeline_from_rows([[0, 4, "the ball stops."]]).segments[0].end == 4
    with pytest.raises(OwlError, match="row 1 needs an end time"):
        timeline_from_rows([[0, None, "the ball stops."]])
    with pytest.raises(OwlError, match="overlaps"):
        timeline_from_rows([[0, 4, "a"], [2, 6, "b"]])
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")


def test_owl_app_refuses_bad_options_in_one_line(tmp_path):
    for argv, message in ((["--port", "0"], "--port must be from 1 to 65535"),
                          (["--max-upload-mb", "0"], "--max-upload-mb must be > 0"),
                          (["--model", str(tmp_path)], "model")):
        done = subprocess.run([sys.executable, "-m", "owl.cli", "app", *argv], capture_output=True, text=True,
                              cwd=tmp_path, timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("owl: error: ") and message in done.stderr and done.stderr.count("\n") == 1


# --- the page in a real browser ------------------------------------------------------------------------------------

def _chromium() -> str | None:
    return os.environ.get("OWL_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright is not installed (bash install.sh dev installs it)")
    executable = _chromium()
    if executable is None:
        pytest.skip("no chromium browser installed (Debian: apt-get install chromium; .ci/run installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`owl app ...` in its own process, as a user starts it."""

    def __init__(self, tmp: Path, *options: str):
        self.worlds, self.port = tmp / "worlds", _free_port()
        env = {**os.environ, "GRADIO_TEMP_DIR": str(tmp / "uploads")}
        self.log = tmp / "app.log"
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "owl.cli", "app", *options, "--worlds", str(self.worlds), "--port",
                 str(self.port)], stdout=log, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp)
        deadline = time.monotonic() + 180
        while "\n" not in self.output() and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        self.first_line = self.output().split("\n")[0]  # printed once the page is served
        if "serving" not in self.first_line:
            self.process.kill()
            raise AssertionError(f"owl app did not start: {self.output()}")
        self.url = f"http://127.0.0.1:{self.port}/"

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> str:
        """Ctrl-C, as a user stops it; what it printed."""
        if self.process.poll() is not None:
            return self.output()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        return self.output()


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.goto(url)
    page.locator("#owl-start").wait_for()
    return page


def _fill_number(page, selector: str, value) -> None:
    """Type into a number box and leave it, so the page holds the value before the next click (again if a page
    that was still settling put its default back)."""
    box = page.locator(selector)
    for _ in range(10):
        box.fill(str(value))
        box.press("Tab")
        page.wait_for_timeout(300)
        if box.input_value() == str(value):
            return
    raise AssertionError(f"{selector} does not keep {value!r}: it shows {box.input_value()!r}")


def _wait_status(page, pattern: str, timeout: float = 240):
    from playwright.sync_api import expect

    expect(page.locator("#owl-status")).to_have_text(re.compile(pattern), timeout=timeout * 1000)


def _screenshot(page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    folder = os.environ.get("OWL_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / name, Path(folder) / name)


def test_the_app_in_a_browser(browser, tiny_pipe, tmp_path):
    """Start `owl app --preset tiny`; a bad upload and a bad size show Owl's line and leave nothing; film two
    clips, edit the third's proposal, branch at clip 1, download the mp4; each checked on disk."""
    server = AppServer(tmp_path, "--preset", "tiny")
    try:
        assert server.first_line.startswith("owl app: serving preset tiny at http://127.0.0.1:")
        page = _open(browser, server.url)

        bad = tmp_path / "bad.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
        page.locator("#owl-prompt textarea").fill(PROMPT)
        page.locator("#owl-image input[type=file]").set_input_files(str(bad))
        page.locator("#owl-image").get_by_text("bad.png").wait_for()
        page.locator("#owl-start").click()
        _wait_status(page, r"owl: error: .*image")
        assert not server.worlds.exists() or list(server.worlds.iterdir()) == []

        page = _open(browser, server.url)  # a fresh page: no upload
        page.locator("#owl-prompt textarea").fill(PROMPT)
        page.get_by_text("Settings", exact=True).first.click()
        _fill_number(page, "#owl-height input", "60")
        page.locator("#owl-start").click()
        _wait_status(page, r"owl: error: height must be a multiple of 16")
        assert list(server.worlds.iterdir()) == []
        _fill_number(page, "#owl-height input", str(tiny_pipe.renderer.config.height))

        page.locator("#owl-start").click()  # clip 0
        _wait_status(page, r"Started world-001: clip 0 filmed\.")
        page.locator("#owl-film").click()  # clip 1: the proposal as it stands
        _wait_status(page, r"Filmed clip 1\.")
        page.locator("#owl-proposal textarea").fill("a blue square enters.")
        page.locator("#owl-film").click()  # clip 2: the edited proposal
        _wait_status(page, r"Filmed clip 2\.")
        assert page.locator("#owl-strip .owl-clip").count() == 3
        assert page.locator("#owl-strip .owl-clip[data-index='2']").get_attribute("data-how") == "given"
        assert "a blue square enters." in page.locator("#owl-strip .owl-clip[data-index='2']").inner_text()

        world = SessionFolder.open(server.worlds / "world-001.session")
        assert [(c.dynamics, c.predicted) for c in world.records][2] == ("a blue square enters.", False)
        assert world.records[1].predicted and world.complete
        fps = tiny_pipe.renderer.config.fps
        steered = tiny_pipe(PROMPT, seconds=world.written / fps, dynamics=[None, "a blue square enters."],
                            progress=False)  # what owl generate --dynamics ";a blue square enters." films
        frames, _ = read_video(server.worlds / "world-001.mp4")
        assert np.array_equal(np.concatenate(list(world.video_frames())), steered.frames)
        assert len(frames) == len(steered.frames)

        _fill_number(page, "#owl-at input", "1")
        page.locator("#owl-branch-text textarea").fill("the ball bounces.")
        page.locator("#owl-branch").click()
        _wait_status(page, r"Branched into world-002: clip 1 filmed\.")
        fork = SessionFolder.open(server.worlds / "world-002.session")
        assert [c.dynamics for c in fork.records][1] == "the ball bounces." and not fork.records[1].predicted
        assert fork.meta["parent"]["at"] == 1 and len(fork.records) == 2
        assert len(SessionFolder.open(server.worlds / "world-001.session").records) == 3  # left as it was

        with page.expect_download() as download:
            page.locator("#owl-downloads a[download='world-002.mp4']").click()
        saved = tmp_path / "downloaded.mp4"
        download.value.save_as(saved)
        assert saved.read_bytes() == (server.worlds / "world-002.mp4").read_bytes()
        for name in ("world-002.storyboard.json", "world-002.sheet.png"):
            assert page.locator(f"#owl-downloads a[download='{name}']").count() == 1 and (server.worlds / name).is_file()
        leftovers = [p.name for p in server.worlds.iterdir() if ".tmp" in p.name or ".partial" in p.name]
        assert leftovers == []
        printed = server.stop().strip().splitlines()  # Owl's lines only: no library noise, no traceback
        assert printed[0] == server.first_line and printed[1:] == ["owl app: stopped"], printed
    finally:
        server.stop()


def test_a_second_tab_waits_in_the_queue_and_stop_stops(browser, tmp_path):
    """While one tab films, a second tab's action waits in Gradio's queue (it says so) and then runs; Stop ends
    an action after its denoising step, and the world goes on from the clips it kept."""
    server = AppServer(tmp_path, "--preset", "tiny", "--max-upload-mb", "1")
    try:
        first, second = _open(browser, server.url), _open(browser, server.url)
        first.locator("#owl-prompt textarea").fill(PROMPT)
        first.locator("#owl-start").click()
        _wait_status(first, r"Started world-001")
        _fill_number(first, "#owl-until input", "12")
        first.locator("#owl-film-to").click()
        _wait_status(first, r"Filming clip")
        second.locator("#owl-prompt textarea").fill("a green square")
        second.locator("#owl-start").click()
        second.get_by_text(re.compile(r"queue: ?1/")).first.wait_for(timeout=60_000)
        _wait_status(first, r"Filmed to", timeout=600)
        _wait_status(second, r"Started world-002: clip 0 filmed\.", timeout=300)
        assert SessionFolder.open(server.worlds / "world-002.session").prompt == "a green square"

        # Stop: the action ends after the denoising step under way; the world keeps its finished clips, goes on
        _fill_number(first, "#owl-until input", "60")
        first.locator("#owl-film-to").click()
        _wait_status(first, r"Filming clip 2 of")
        first.locator("#owl-stop").click()
        _wait_status(first, r"Stopped: world-001 keeps its \d+ clips\.")
        kept = len(SessionFolder.open(server.worlds / "world-001.session").records)
        assert 4 <= kept < 20
        first.locator("#owl-film").click()
        _wait_status(first, rf"Filmed clip {kept}\.")
        world = SessionFolder.open(server.worlds / "world-001.session")
        assert len(world.records) == kept + 1 and world.complete

        big = tmp_path / "big.png"  # over --max-upload-mb: refused by the page, nothing written
        big.write_bytes(os.urandom(2 * 1024 * 1024))
        before = sorted(p.name for p in server.worlds.iterdir())
        second.locator("#owl-image input[type=file]").set_input_files(str(big))
        second.get_by_text(re.compile(r"exceed the maximum allowed size.*big\.png")).first.wait_for(timeout=60_000)
        assert sorted(p.name for p in server.worlds.iterdir()) == before
        assert not list((tmp_path / "uploads").rglob("big.png"))
    finally:
        server.stop()


def test_a_24_second_world_of_the_shipped_model(browser, tmp_path):
    """The shipped model in the app: make a 24 s world, steer it, branch it; the README's screenshot."""
    server = AppServer(tmp_path)
    try:
        page = _open(browser, server.url)
        page.locator("#owl-prompt textarea").fill("a red circle enters from the left.")
        page.locator("#owl-start").click()
        _wait_status(page, r"Started world-001")
        page.locator("#owl-film").click()
        _wait_status(page, r"Filmed clip 1\.")
        page.locator("#owl-proposal textarea").fill("a blue square enters from the top.")
        page.locator("#owl-film").click()
        _wait_status(page, r"Filmed clip 2\.")
        _fill_number(page, "#owl-until input", "24")
        page.locator("#owl-film-to").click()
        _wait_status(page, r"Filmed to 24(\.\d+)? s\.", timeout=600)
        world = SessionFolder.open(server.worlds / "world-001.session")
        assert world.written / world.settings.fps == pytest.approx(24, abs=0.5) and world.complete
        assert world.records[2].dynamics == "a blue square enters from the top."
        assert all(c.predicted for c in world.records[3:]) and all(c.dynamics for c in world.records[1:])
        _screenshot(page, tmp_path, "app.png")
        assert (tmp_path / "app.png").stat().st_size > 10_000
        _fill_number(page, "#owl-at input", "2")
        page.locator("#owl-branch-text textarea").fill("a green triangle enters from the right.")
        page.locator("#owl-branch").click()
        _wait_status(page, r"Branched into world-002", timeout=600)
        assert SessionFolder.open(server.worlds / "world-002.session").records[2].dynamics == \
            "a green triangle enters from the right."
    finally:
        server.stop()


def test_a_world_from_a_video_upload(tiny_pipe, tmp_path):
    """The page's "video to go on from": its clips observed, one clip filmed; a corrupt one is one line, no files."""
    studio = Studio(tiny_pipe, tmp_path / "worlds")
    fps, grid = tiny_pipe.renderer.config.fps, tiny_pipe.renderer.grid
    source = tiny_pipe(PROMPT, seconds=(grid.first + grid.rest) / fps, output=tmp_path / "clip.mp4", progress=False)
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42 but nothing after")
    with pytest.raises(OwlError, match="'broken.mp4'"):  # named as uploaded, not by the server's copy
        studio.start("", None, str(bad), {}, Progress())
    with pytest.raises(OwlError, match="not both"):
        studio.start(PROMPT, str(source.path), str(source.path), {}, Progress())
    assert list(studio.folder.iterdir()) == []
    world = studio.start(PROMPT, None, str(source.path), {}, Progress())
    assert [c.source for c in world.clips] == ["video", "video", "film"]
    assert 'data-how="from the video"' in studio.storyboard_html(world)
