"""`owl app`: make, steer and branch a world in the browser; a thin shell over `owl.World` (owl/world.py).

    owl app                                  the shipped model at http://127.0.0.1:7860, worlds in outputs/app
    owl app --model DIR --port 8000 --worlds DIR
    owl app --host 0.0.0.0                   reachable from other machines (it says so when it starts)

The page (Gradio):
- Start: a prompt, and optionally a first image (image-to-video) or a video to go on from; films clip 0.
- The video grows clip by clip, with live progress: the clip and denoising step under way, and the time left.
- The storyboard: a strip of clips, each with the dynamics that drove it and whether the world model wrote them.
- The next clip: the world model's proposal in an editable box. "Film next clip" films the box as it stands
  (unchanged, it is the world model's prediction; edited, given dynamics). "Film to N s" films on, with the
  timeline's segments where they apply and the world model's predictions elsewhere.
- Branch at clip K: a new world that keeps clips 0..K-1 and films clip K from other dynamics.
- Downloads: the mp4, its storyboard (JSON) and a contact sheet (PNG), beside the world's video.

Each action is one `World` call on a saved session, so a world made here is a session like any other: `owl generate
--resume`, `owl branch`, `owl extend` and `owl play` take it, and a crash loses at most the clip being filmed.
Work on the model runs one action at a time through Gradio's queue, so a second tab waits in line and sees its
place; the page stays live. Bad input shows Owl's one-line error in the page and leaves no files behind.
"""

from __future__ import annotations

import base64
import html
import io
import ipaddress
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from owl.contact_sheet import save_contact_sheet
from owl.errors import OwlError
from owl.loading import open_image
from owl.memory import MEMORIES
from owl.settings import check_setting
from owl.timeline import Timeline
from owl.world import World

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the app sends nothing anywhere
try:
    import gradio as gr
except ImportError:  # `owl app` says how to install it; Studio works without it
    gr = None

MODEL_QUEUE = "owl-model"  # every action that runs the model shares this one slot of Gradio's queue
THUMB_WIDTH = 160


@dataclass
class Progress:
    """Live progress of one action, for the page to show while the model works."""

    steps: int = 0  # denoising steps per clip, and clips this action films: set once the action knows them
    clips: int = 1
    clip: int = 0  # clips finished
    step: int = 0  # denoising steps done in the clip under way
    video: Path | None = None  # the newest playable video of the world so far
    stop: bool = False  # set to end the action after the denoising step under way (the clip is dropped)
    started: float = field(default_factory=time.monotonic)

    def hooks(self, steps: int, clips: int = 1) -> dict:
        """The callbacks a `World` call takes, for an action that films `clips` clips of `steps` steps each."""
        self.steps, self.clips = steps, clips
        return {"callback": self.on_clip, "callback_on_step_end": self.on_step}

    def on_step(self, pipe, i, t, tensors) -> dict:
        """`callback_on_step_end`."""
        self.step = i + 1
        if self.stop:
            pipe._interrupt = True  # diffusers' way to end a call; the session stays resumable
        return {}

    def on_clip(self, event) -> None:
        """`callback`, after each finished clip."""
        self.clip, self.step = self.clip + 1, 0
        self.video = event.path or self.video

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        if not self.steps:
            return "Reading the world ..."
        done, total = self.clip * self.steps + self.step, self.clips * self.steps
        left = f"about {elapsed / done * (total - done):.0f} s left" if done else "estimating the time left"
        clip = min(self.clip + 1, self.clips)
        return (f"Filming clip {clip} of {self.clips}: denoising step {self.step} of {self.steps} · "
                f"{elapsed:.0f} s so far, {left}")


class Studio:
    """What the page does, without the page: the worlds in one folder and the actions on them."""

    def __init__(self, pipe, folder: str | Path):
        self.pipe = pipe
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OwlError(f"cannot make the worlds folder {str(self.folder)!r}: {exc.strerror}") from exc
        self._thumbs: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()
        self._model = threading.Lock()  # one action on the model at a time, even past a tab that went away
        self._running: tuple[str | None, Progress] | None = None

    def run(self, tab: str | None, work, progress: Progress) -> World:
        """Run one action, `work(progress)`, for browser tab `tab`, holding the model."""
        with self._model:
            self._running = (tab, progress)
            try:
                return work(progress)
            finally:
                self._running = None

    def stop(self, tab: str | None) -> bool:
        """Ask tab `tab`'s running action to stop after its current denoising step; False if none runs."""
        running = self._running
        if running is None or running[0] != tab:
            return False
        running[1].stop = True
        return True

    # --- the worlds -----------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        """The worlds saved in the folder (their session folders' names), oldest first."""
        return sorted(p.name for p in self.folder.glob("*.session") if (p / "session.json").is_file())

    def world(self, name: str | None) -> World:
        if not name:
            raise OwlError("no world yet: start one with a prompt, an image or a video")
        if name not in self.names():
            raise OwlError(f"no world named {name!r} in {str(self.folder)!r}; choose one of {self.names()}")
        return World.load(self.pipe, self.folder / name)

    def new_output(self) -> Path:
        """world-NNN.mp4, the first number no world, video or temporary in the folder uses."""
        with self._lock:
            taken = {p.name.split(".")[0] for p in self.folder.iterdir()}
            n = 1
            while f"world-{n:03d}" in taken:
                n += 1
            return self.folder / f"world-{n:03d}.mp4"

    def settings(self, seed, height, width, steps, guidance, memory) -> dict:
        """The page's settings as `World.open` takes them (the pipeline checks each value)."""
        values = {"seed": seed, "height": height, "width": width, "num_inference_steps": steps,
                  "guidance_scale": guidance, "memory": memory}
        whole = {"seed", "height", "width", "num_inference_steps"}
        return {k: int(v) if k in whole and isinstance(v, float) and v.is_integer() else v
                for k, v in values.items() if v is not None}

    # --- the actions (each one World call) --------------------------------------------------------------------

    def start(self, prompt: str, image: str | None, video: str | None, settings: dict, progress: Progress) -> World:
        """A new world: clip 0 from the prompt (and the first image), or the first new clip after a video."""
        if image and video:
            raise OwlError("give either a first image or a video to go on from, not both")
        output = self.new_output()
        hooks = progress.hooks(settings.get("num_inference_steps") or self.pipe.renderer.config.num_inference_steps)
        upload = video or image
        try:
            if video:
                return World.extend(self.pipe, output, video, prompt=prompt or "", **hooks, **settings)
            first = None if not image else open_image(image)
            return World.open(self.pipe, output, prompt=prompt or "", image=first, **hooks, **settings)
        except OwlError as exc:  # an upload is named as the user named it, not by the server's copy of it
            if not upload:
                raise
            raise OwlError(str(exc).replace(repr(str(upload)), repr(Path(upload).name))) from None

    def film(self, name: str, text: str, proposal: str | None, progress: Progress) -> World:
        """The next clip from the box: unchanged or empty, the world model's proposal; edited, given dynamics."""
        world = self.world(name)
        text = (text or "").strip()
        dynamics = None if not text or text == (proposal or "").strip() else text
        world.step(dynamics, **progress.hooks(world.folder.settings.num_inference_steps))
        return world

    def film_to(self, name: str, seconds, rows, progress: Progress) -> World:
        """Film on to `seconds`: the timeline's dynamics where a segment covers a clip's start, the world model's
        predictions elsewhere (the clips filmed before keep theirs)."""
        world = self.world(name)
        s, grid = world.folder.settings, self.pipe.renderer.grid
        check_setting("seconds", seconds)
        done = len(world.clips)
        total = grid.count(grid.total_frames(float(seconds), s.fps))
        if total <= done:
            raise OwlError(f"the world is already {world.folder.written / s.fps:g} s long ({done} clips); "
                           f"film to more seconds than that")
        timeline = timeline_from_rows(rows)
        planned = timeline.dynamics_for(world.clip_starts(total)) if timeline else []
        dynamics = (planned + [None] * total)[done - 1: total - 1]
        world.play(total - done, dynamics, **progress.hooks(s.num_inference_steps, total - done))
        return world

    def branch(self, name: str, at, dynamics: str | None, progress: Progress) -> World:
        """A new world that keeps clips 0..at-1 of `name` and films clip `at` from `dynamics` (empty: predicted)."""
        world = self.world(name)
        if isinstance(at, float) and at.is_integer():
            at = int(at)
        return world.fork(at, self.new_output(), (dynamics or "").strip() or None,
                          **progress.hooks(world.folder.settings.num_inference_steps))

    # --- what the page shows ----------------------------------------------------------------------------------

    def downloads(self, world: World) -> list[str]:
        """The world's mp4, storyboard and contact sheet, the last two written (atomically) beside the mp4."""
        storyboard = world.storyboard
        base = world.output.with_suffix("")
        story, sheet = Path(f"{base}.storyboard.json"), Path(f"{base}.sheet.png")
        storyboard.save(story)
        save_contact_sheet(world.output, storyboard, sheet)
        return [str(world.output), str(story), str(sheet)]

    def thumbnail(self, world: World, index: int) -> str:
        """A small JPEG of clip `index`'s middle frame, as a data: URL (kept per session and clip)."""
        key = (str(world.path.resolve()), index)
        if key not in self._thumbs:
            from PIL import Image

            frames = world.folder.load_clip(index).frames
            image = Image.fromarray(frames[len(frames) // 2])
            image = image.resize((THUMB_WIDTH, max(1, round(image.height * THUMB_WIDTH / image.width))))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=85)
            self._thumbs[key] = "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()
        return self._thumbs[key]

    def storyboard_html(self, world: World | None) -> str:
        if world is None:
            return '<div id="owl-strip" class="owl-empty">No world yet.</div>'
        cards = []
        for clip in world.clips:
            cards.append(
                f'<figure class="owl-clip" data-index="{clip.index}" data-how="{clip.origin}">'
                f'<img src="{self.thumbnail(world, clip.index)}" alt="clip {clip.index}">'
                f'<figcaption><b>clip {clip.index}</b> · {clip.start:.1f}-{clip.end:.1f} s · <i>{clip.origin}</i><br>'
                f'<span class="owl-dynamics">{html.escape(clip.dynamics)}</span></figcaption></figure>')
        director = world.pipe.world_model.instruction  # director mode: what its VLM writes the events after
        note = (f'<p class="owl-director"><b>Director</b> · {html.escape(director)}</p>' if director else "")
        return f'{note}<div id="owl-strip">{"".join(cards)}</div>'


def timeline_from_rows(rows) -> Timeline | None:
    """The timeline editor's rows (start, end, dynamics; a row with no dynamics is ignored) as a Timeline."""
    if rows is None:
        return None
    if hasattr(rows, "values"):  # a pandas DataFrame
        rows = rows.values.tolist()
    blank = lambda value: value is None or value == "" or (isinstance(value, float) and math.isnan(value))
    items = []
    for n, row in enumerate(rows, 1):
        start, end, text = (list(row) + [None, None, None])[:3]
        if blank(text) or not str(text).strip():
            continue
        item = {"dynamics": str(text).strip()}
        for key, value in (("start", start), ("end", end)):
            if blank(value):
                if key == "end":
                    raise OwlError(f"timeline row {n} needs an end time (seconds)")
                continue
            try:
                item[key] = float(value)
            except (TypeError, ValueError):
                raise OwlError(f"timeline row {n}: {key} must be a number of seconds, got {value!r}") from None
        items.append(item)
    return Timeline.from_list(items, source="timeline") if items else None


def _choices(studio: Studio) -> list[tuple[str, str]]:
    return [(name.removesuffix(".session"), name) for name in studio.names()]


def run_in_thread(work, every: float = 0.5):
    """Run `work()` on a thread and yield every `every` seconds while it runs (the page shows progress then);
    return its result, or raise its error, with `result = yield from run_in_thread(...)`."""
    box: dict = {}

    def target():
        try:
            box["result"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="owl-app-work", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(every)
        if thread.is_alive():
            yield
    if "error" in box:
        raise box["error"]
    return box["result"]


CSS = """
#owl-strip { display: flex; gap: 10px; overflow-x: auto; padding: 4px 0; }
#owl-strip .owl-clip { margin: 0; min-width: 170px; max-width: 170px; font-size: 12px; }
#owl-strip .owl-clip img { width: 160px; border-radius: 4px; display: block; }
#owl-strip .owl-clip[data-how="given"] figcaption i { color: #b45309; }
#owl-status { min-height: 1.5em; }
"""


def build_app(studio: Studio):
    """The Gradio Blocks of the page (launched by `serve`)."""
    cfg = studio.pipe.renderer.config

    def failed(exc: OwlError) -> tuple:
        """Owl's one line in the status line (and a toast); every other view stays as it was."""
        gr.Warning(f"owl: error: {exc}")
        return (gr.skip(),) * 5 + (f"owl: error: {exc}",) + (gr.skip(),) * 2

    with gr.Blocks(title="Owl", analytics_enabled=False) as app:
        current = gr.State(None)  # the name of the world this tab steers
        proposed = gr.State(None)  # the world model's proposal, as it wrote it
        gr.Markdown("## Owl: steer a world as it runs")
        with gr.Row():
            with gr.Column(scale=2):
                prompt = gr.Textbox(label="Prompt", placeholder="a red ball rolls left", elem_id="owl-prompt")
                with gr.Row():
                    image = gr.File(label="First image (optional)", file_types=["image"], type="filepath",
                                    elem_id="owl-image")
                    video_in = gr.File(label="Or a video to go on from (optional)", file_types=["video"],
                                       type="filepath", elem_id="owl-video-in")
                with gr.Accordion("Settings", open=False):
                    with gr.Row():
                        seed = gr.Number(label="Seed", value=0, precision=0, elem_id="owl-seed")
                        height = gr.Number(label="Height", value=cfg.height, precision=0, elem_id="owl-height")
                        width = gr.Number(label="Width", value=cfg.width, precision=0, elem_id="owl-width")
                    with gr.Row():
                        steps = gr.Number(label="Denoising steps", value=cfg.num_inference_steps, precision=0)
                        guidance = gr.Number(label="Guidance scale", value=cfg.guidance_scale)
                        memory = gr.Dropdown(label="Memory", choices=list(MEMORIES), value="full")
                start = gr.Button("Start a world", variant="primary", elem_id="owl-start")
            with gr.Column(scale=3):
                video = gr.Video(label="The world so far", interactive=False, height=420, elem_id="owl-video")
                status = gr.Markdown("", elem_id="owl-status")
        storyboard = gr.HTML(studio.storyboard_html(None), elem_id="owl-storyboard")
        with gr.Row():
            with gr.Column(scale=3):
                proposal = gr.Textbox(label="Next clip: the world model's proposal (edit it to steer)", lines=2,
                                      elem_id="owl-proposal")
                with gr.Row():
                    film = gr.Button("Film next clip", variant="primary", elem_id="owl-film")
                    until = gr.Number(label="Film to (seconds)", value=24, elem_id="owl-until")
                    film_to = gr.Button("Film to N s", elem_id="owl-film-to")
                    stop = gr.Button("Stop", variant="stop", elem_id="owl-stop")
            with gr.Column(scale=2):
                with gr.Row():
                    at = gr.Number(label="Branch at clip", value=1, precision=0, elem_id="owl-at")
                    branch_text = gr.Textbox(label="Its dynamics (empty: predicted)", elem_id="owl-branch-text")
                branch = gr.Button("Branch", elem_id="owl-branch")
                worlds = gr.Dropdown(label="Worlds", choices=_choices(studio), value=None, elem_id="owl-worlds")
        with gr.Accordion("Timeline: scripted segments for Film to N s (seconds of the video)", open=False):
            timeline = gr.Dataframe(headers=["start", "end", "dynamics"], datatype=["number", "number", "str"],
                                    value=[[None, None, ""]], row_count=3, interactive=True, elem_id="owl-timeline")
        files = gr.File(label="Downloads: video, storyboard, contact sheet", file_count="multiple",
                        interactive=False, elem_id="owl-downloads")

        views = [current, proposed, video, storyboard, proposal, status, files, worlds]

        def view(world: World, note: str) -> tuple:
            """Every view of `world`, after an action (the proposal for its next clip among them)."""
            try:
                text = world.propose()
            except OwlError as exc:  # the world is as long as a rollout may be
                text, note = "", f"{note} {exc}."
            name = world.path.name
            return (name, text, str(world.output), studio.storyboard_html(world), text, note,
                    studio.downloads(world), gr.update(choices=_choices(studio), value=name))

        def running(progress: Progress) -> tuple:
            shown = str(progress.video) if progress.video else gr.skip()
            return (gr.skip(), gr.skip(), shown, gr.skip(), gr.skip(), progress.line(), gr.skip(), gr.skip())

        def act(request, work, done):
            """Run one action (`work(progress)`) for the tab of `request` on its own thread, showing its progress; then every
            view of the world it leaves (`done(world)`: the status line), or Owl's one-line error. A tab that goes
            away stops its action after the denoising step under way."""
            progress = Progress()
            try:
                gen = run_in_thread(lambda: studio.run(request.session_hash, work, progress))
                while True:
                    try:
                        next(gen)
                    except StopIteration as stop:
                        world = stop.value
                        break
                    yield running(progress)
                note = f"Stopped: {world.path.stem} keeps its {len(world.clips)} clips." if progress.stop \
                    else done(world)
                yield view(world, note)
            except OwlError as exc:
                yield failed(exc)
            except GeneratorExit:
                progress.stop = True
                raise

        def on_start(text, image_path, video_path, seed_, height_, width_, steps_, guidance_, memory_,
                     request: gr.Request):
            settings = lambda: studio.settings(seed_, height_, width_, steps_, guidance_, memory_)
            yield from act(request, lambda p: studio.start(text, image_path, video_path, settings(), p),
                           lambda w: f"Started {w.path.stem}: clip {w.clips[-1].index} filmed.")

        def on_film(name, text, proposal_text, request: gr.Request):
            yield from act(request, lambda p: studio.film(name, text, proposal_text, p),
                           lambda w: f"Filmed clip {w.clips[-1].index}.")

        def on_film_to(name, seconds, rows, request: gr.Request):
            yield from act(request, lambda p: studio.film_to(name, seconds, rows, p),
                           lambda w: f"Filmed to {w.clips[-1].end:g} s.")

        def on_branch(name, at_, text, request: gr.Request):
            yield from act(request, lambda p: studio.branch(name, at_, text, p),
                           lambda w: f"Branched into {w.path.stem}: clip {w.clips[-1].index} filmed.")

        def on_pick(name):
            try:
                return view(studio.world(name), f"Opened {name.removesuffix('.session')}.")
            except OwlError as exc:
                return failed(exc)

        def on_stop(request: gr.Request):
            return "Stopping after this denoising step ..." if studio.stop(request.session_hash) else gr.skip()

        model = {"outputs": views, "concurrency_id": MODEL_QUEUE, "concurrency_limit": 1}
        start.click(on_start, [prompt, image, video_in, seed, height, width, steps, guidance, memory], **model)
        film.click(on_film, [current, proposal, proposed], **model)
        film_to.click(on_film_to, [current, until, timeline], **model)
        branch.click(on_branch, [current, at, branch_text], **model)
        worlds.input(on_pick, [worlds], **model)
        stop.click(on_stop, None, [status], queue=False)  # not behind the work it stops
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(studio: Studio, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = 200):
    """Serve the page on host:port (loopback unless told otherwise) from a background thread; returns the app
    (`app.close()` stops it)."""
    app = build_app(studio)
    app.queue(default_concurrency_limit=1)
    theme = gr.themes.Soft(font=["ui-sans-serif", "system-ui", "sans-serif"],
                           font_mono=["ui-monospace", "monospace"])  # system fonts: nothing fetched from the web
    try:
        app.launch(server_name=host, server_port=port, quiet=True, show_error=True, prevent_thread_lock=True,
                   allowed_paths=[str(studio.folder.resolve())], max_file_size=int(max_upload_mb * 1024 * 1024),
                   ssr_mode=False, mcp_server=False, theme=theme, css=CSS, footer_links=["settings"])
    except OSError:
        raise OwlError(f"cannot serve on {host}:{port}: the port is in use or the address is not this machine's; "
                       "choose another --port or --host") from None
    return app

