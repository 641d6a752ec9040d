"""The `owl` command: a thin shell over the public API.

    owl generate --prompt "a red ball rolls left" --seconds 24 --out ball.mp4 [--script timeline.yaml]
    owl generate --resume ball.session                  continue an interrupted rollout
    owl generate --batch prompts.jsonl --out-dir DIR    many rollouts (split under accelerate launch / torchrun)
    owl branch ball.session --at 3 --dynamics "a square enters" --out fork.mp4
    owl extend (ball.session | any.mp4) --seconds 8 --out longer.mp4
    owl play --prompt "a red ball rolls left" --out ball.mp4     steer a world clip by clip in the terminal
    owl app [--model DIR] [--port 7860]                 the same in the browser (owl/app.py)
    owl data shapes --out DIR ...        (owl.data)
    owl train STAGE --config FILE        (owl.train)
    owl eval shapes --model DIR --scenarios DIR [--memory full|last] [--out FILE.json]   (owl.eval)

Generation saves a world session beside the video (`ball.session/`, see `owl.session`) after every clip and keeps
a playable `ball.partial.mp4` of the video so far until `ball.mp4` is complete. User mistakes print one line,
`owl: error: ...`, and exit 2, with no traceback; Ctrl-C exits 130, leaves the session resumable and the partial
video playable, and nothing half-written at the output path.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from owl.console import run_command
from owl.errors import OwlError
from owl.settings import RolloutSettings, add_setting_flags, check_setting_flags, given_setting_flags, setting_values

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "checkpoints" / "owl-shapes"

# the rollout settings each command takes as flags (owl.settings makes the flags, their help and their defaults)
GENERATE_SETTINGS = tuple(f.name for f in fields(RolloutSettings))  # all of them
BRANCH_SETTINGS = ("seconds", "seed")
PLAY_SETTINGS = tuple(name for name in GENERATE_SETTINGS if name != "seconds")  # a world grows a clip at a time
EXTEND_SETTINGS = ("seconds", "seed", "fps", "height", "width", "num_inference_steps", "guidance_scale", "memory")


def parse_dynamics(text: str | None) -> list[str | None] | None:
    """`"a; ; c"` -> ["a", None, "c"] (an empty entry is predicted)."""
    return None if text is None else [d.strip() or None for d in text.split(";")]


def pick_device(device: str):
    """"auto": this process's GPU (LOCAL_RANK under accelerate / torchrun) when CUDA is there, else the CPU; a
    device this machine lacks is a one-line error (`owl.loading.resolve_device`)."""
    from owl.loading import resolve_device

    return resolve_device(device)


def check_options(args) -> None:
    """Everything a video command can check before a model loads: the settings, the model folder and the output
    path (`owl generate` opens its image before loading too)."""
    from owl.loading import check_model_folder
    from owl.files import check_output

    check_setting_flags(args)
    if getattr(args, "model", None):
        check_model_folder(args.model)
    if getattr(args, "out", None) is not None:
        check_output(args.out)


DTYPES = ("float32", "bfloat16", "float16")


def load_pipeline(model: str | None, preset: str | None, device: str = "cpu", saved: dict | None = None,
                  args: argparse.Namespace | None = None):
    """The pipeline of --model / --preset; else the one a session recorded (`saved`); else the shipped model.
    `args` carries the speed and memory settings (--dtype, --cpu-offload, --vae-tiling, --compile)."""
    import torch

    from owl.pipeline import OwlPipeline

    dtype_name = getattr(args, "dtype", None) or "float32"  # one of DTYPES (argparse checks it)
    dtype = None if dtype_name == "float32" else getattr(torch, dtype_name)
    if model and preset:
        raise OwlError("give either --model or --preset, not both")
    offload = getattr(args, "cpu_offload", False)
    if offload and torch.device(device).type == "cpu":
        raise OwlError("--cpu-offload keeps the weights on the CPU and runs them on a GPU: it needs --device cuda "
                       "(or auto on a machine with one)")
    load_on = "cpu" if offload else device  # offload moves each component to `device` only while it runs
    seed = 0  # a preset's weights are drawn from this seed: a session made with one records it
    if not model and not preset and saved:
        if "preset" in saved:
            preset, seed = saved["preset"], saved.get("seed", 0)
        model = saved.get("path")
    if preset:
        pipe = OwlPipeline.from_preset(preset, seed=seed, device=load_on, torch_dtype=dtype)
    else:
        if model is None and not DEFAULT_MODEL.is_dir():
            raise OwlError(f"no model given and the shipped model is not at {str(DEFAULT_MODEL)!r}; "
                           "pass --model DIR or --preset tiny")
        pipe = OwlPipeline.from_pretrained(model or DEFAULT_MODEL, device=load_on, torch_dtype=dtype)
    if offload:
        pipe.enable_model_cpu_offload(device)
    if getattr(args, "vae_tiling", False):
        pipe.enable_vae_tiling()
    if getattr(args, "compile", False):
        pipe.compile()
    return pipe


def _progress(args) -> bool:
    """Progress bars only for a person at a terminal (and not with --quiet): a log or a pipe gets Owl's lines."""
    return not args.quiet and sys.stderr.isatty()


def _given(args, names) -> list[str]:
    """The options among `names` given on the command line (set, and not a store_true left off)."""
    given = lambda value: value is not None and value is not False
    return ["--" + n.replace("_", "-") for n in names if given(getattr(args, n, None))]


def _finish(result, out: Path) -> int:
    storyboard_path = out.with_suffix(".storyboard.json")
    result.storyboard.save(storyboard_path)
    print(f"wrote {out} ({result.seconds:.2f} s, {result.num_frames} frames at {result.fps:g} fps); "
          f"storyboard {storyboard_path}")
    return 0


def _interrupted(out: Path) -> int:
    from owl.session import partial_path, session_path

    session, partial = session_path(out), partial_path(out)
    where = f"; the video so far is {partial}" if partial.is_file() else ""
    if (session / "session.json").is_file():
        print(f"owl: interrupted; nothing was left at {out}; resume with: owl generate --resume {session}{where}",
              file=sys.stderr)
    else:
        print("owl: interrupted; nothing was left at the output path", file=sys.stderr)
    return 130


def cmd_generate(args) -> int:
    if args.resume is not None:
        return _resume(args)
    if args.batch is not None:
        return _batch(args)
    if args.out_dir is not None or args.retry_failed:
        raise OwlError(f"{' '.join(_given(args, ('out_dir', 'retry_failed')))} goes with --batch; a single video "
                       "takes --out")
    from owl.loading import open_image
    from owl.session import session_path
    from owl.timeline import read_script

    if args.dynamics is not None and args.script is not None:
        raise OwlError("give either --dynamics or --script, not both")
    dynamics = parse_dynamics(args.dynamics) if args.script is None else read_script(args.script)
    args.out = args.out or "owl.mp4"
    out = Path(args.out)
    check_options(args)  # the output path among them
    image = None if args.image is None else open_image(args.image)  # read once, before the model loads
    pipe = load_pipeline(args.model, args.preset, pick_device(args.device), args=args)
    try:
        result = pipe(prompt=args.prompt or "", image=image, dynamics=dynamics, output=out, progress=_progress(args),
                      session=None if args.no_session else session_path(out),
                      **setting_values(args, GENERATE_SETTINGS))  # the flags given, else the API's defaults
    except KeyboardInterrupt:
        return _interrupted(out)
    return _finish(result, out)


def _resume(args) -> int:
    from owl.session import SessionFolder
    from owl.files import check_output

    clash = (_given(args, ("prompt", "image", "dynamics", "script", "out", "batch", "out_dir", "no_session"))
             + given_setting_flags(args, GENERATE_SETTINGS))
    if clash:
        raise OwlError(f"--resume continues the session with its own settings; drop {' '.join(clash)}")
    folder = SessionFolder.open(args.resume)
    folder.check_resumable()  # before loading a model
    check_options(args)
    check_output(folder.output)
    pipe = load_pipeline(args.model, args.preset, pick_device(args.device), saved=folder.model, args=args)
    try:
        result = pipe.resume(folder.path, progress=_progress(args))
    except KeyboardInterrupt:
        return _interrupted(folder.output)
    return _finish(result, folder.output)


def _batch(args) -> int:
    from owl.batch import process_rank, read_batch, run_batch

    clash = _given(args, ("prompt", "image", "dynamics", "script", "out"))
    if clash:
        raise OwlError(f"--batch takes prompts, images and dynamics from its rows; drop {' '.join(clash)}")
    if args.out_dir is None:
        raise OwlError("--batch needs --out-dir DIR")
    out_dir = Path(args.out_dir)
    if not out_dir.is_dir():
        raise OwlError(f"output folder does not exist: {str(out_dir)!r}")
    check_options(args)
    pick_device(args.device)
    options = setting_values(args, GENERATE_SETTINGS)  # the flags given, else the API's defaults
    items = read_batch(args.batch, seconds=options.pop("seconds"), seed=options.pop("seed"))  # a row may set these
    rank, world = process_rank()

    def load():  # each rank loads its own pipeline when it has work
        return load_pipeline(args.model, args.preset, pick_device(args.device), args=args)

    summary = run_batch(items, out_dir, load, options, rank=rank, world=world, sessions=not args.no_session,
                        retry_failed=args.retry_failed, progress=_progress(args))
    line = (f"batch rank {rank}/{world}: {summary.done} done, {summary.failed} failed, {summary.skipped} skipped; "
            f"manifest {summary.manifest}")
    if summary.failed:  # the run goes on past a bad row, but it did not succeed: say so in the exit status
        raise OwlError(f"{line} (each failed row's error is in the manifest; --retry-failed runs them again)")
    print(line)
    return 0


def cmd_branch(args) -> int:
    from owl.session import SessionFolder

    folder = SessionFolder.open(args.session)
    out = Path(args.out)
    check_options(args)
    pipe = load_pipeline(args.model, args.preset, pick_device(args.device), saved=folder.model, args=args)
    try:
        result = pipe.branch(folder.path, at=args.at, output=out, dynamics=parse_dynamics(args.dynamics),
                             seconds=args.seconds, seed=args.seed, progress=_progress(args))
    except KeyboardInterrupt:
        return _interrupted(out)
    return _finish(result, out)


def cmd_extend(args) -> int:
    from owl.pipeline import check_extend_output
    from owl.session import SessionFolder

    source = Path(args.source)
    saved = None
    if source.is_dir():
        clash = _given(args, ("prompt",)) + given_setting_flags(args, EXTEND_SETTINGS[1:])  # all but --seconds
        if clash:
            raise OwlError(f"a session is extended with its own settings; drop {' '.join(clash)}")
        saved = SessionFolder.open(source).model
    elif not source.is_file():
        raise OwlError(f"nothing to extend at {str(source)!r}: give a session folder or a video file")
    out = Path(args.out)
    check_extend_output(source, out)  # before a model loads
    check_options(args)
    pipe = load_pipeline(args.model, args.preset, pick_device(args.device), saved=saved, args=args)
    try:
        result = pipe.extend(source, output=out, dynamics=parse_dynamics(args.dynamics), prompt=args.prompt or "",
                             progress=_progress(args), **setting_values(args, EXTEND_SETTINGS))
    except KeyboardInterrupt:
        return _interrupted(out)
    return _finish(result, out)


def cmd_init(args) -> int:
    """Assemble an Owl model from a Qwen-VL folder and a Wan folder and write it as an Owl folder."""
    import shutil

    import torch

    from owl.pipeline import OwlPipeline

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OwlError(f"--out {str(out)!r} exists and is not an empty folder; choose a new one")
    choices = {name: getattr(args, name) for name in ("num_queries", "key_frames", "key_frame_size", "clip_seconds",
                                                      "fps", "height", "width") if getattr(args, name) is not None}
    dtype = None if args.dtype in (None, "auto") else getattr(torch, args.dtype)
    pipe = OwlPipeline.from_components(args.lmm, args.vdm, torch_dtype=dtype, seed=args.seed, director=args.director,
                                       instruction=args.instruction, **choices)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OwlError(f"cannot make the folder of --out {str(out.parent)!r}: {exc.strerror}") from exc
    tmp = out.with_name(f".{out.name}.tmp-init")  # written whole, then renamed: never a half-written model
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        pipe.save_pretrained(tmp)
        if out.is_dir():
            out.rmdir()
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wm, r = pipe.world_model, pipe.renderer
    count = lambda module: sum(p.numel() for p in module.parameters())
    state = ("director mode (no training): the LMM writes the events, the Wan text encoder "
             f"({count(wm.text_encoder) / 1e6:.1f}M) conditions" if args.director
             else f"{wm.config.num_queries} state queries")
    print(f"wrote {out}: LMM {type(wm.vlm).__name__} ({count(wm.vlm) / 1e6:.1f}M), renderer Wan "
          f"({count(r.transformer) / 1e6:.1f}M, {r.vae.config.z_dim} latent channels, {r.spatial_scale}x VAE), "
          f"{state}, clips of {r.frames_per_clip(False)} frames at {r.config.fps} fps, "
          f"{r.config.height} x {r.config.width}")
    return 0


def cmd_play(args) -> int:
    """Steer a world from the terminal (owl/play.py)."""
    from owl.loading import open_image
    from owl.play import main_loop
    from owl.session import SessionFolder
    from owl.world import World

    if args.session is not None:
        clash = _given(args, ("prompt", "image", "out")) + given_setting_flags(args, PLAY_SETTINGS)
        if clash:
            raise OwlError(f"a saved world goes on with its own settings; drop {' '.join(clash)}")
        folder = SessionFolder.open(args.session)
        check_options(args)
        pipe = load_pipeline(args.model, args.preset, pick_device(args.device), saved=folder.model, args=args)
        if not folder.complete:  # a clip was being filmed when it stopped: film it first
            pipe.resume(folder.path, progress=_progress(args))
        return main_loop(World.load(pipe, folder.path), _progress(args))
    if args.out is None:
        raise OwlError("owl play needs --out FILE.mp4 for a new world (or a SESSION to go on with)")
    check_options(args)
    image = None if args.image is None else open_image(args.image)
    pipe = load_pipeline(args.model, args.preset, pick_device(args.device), args=args)
    settings = {k: v for k, v in setting_values(args, PLAY_SETTINGS).items() if v is not None}
    world = World.open(pipe, args.out, prompt=args.prompt or "", image=image, progress=_progress(args), **settings)
    return main_loop(world, _progress(args))


def cmd_app(args) -> int:
    """Serve the web app (owl/app.py) until Ctrl-C."""
    import contextlib
    import io
    import time

    from owl import app as web

    if not 0 < args.port < 65536:
        raise OwlError(f"--port must be from 1 to 65535, got {args.port}")
    if not args.max_upload_mb > 0:
        raise OwlError(f"--max-upload-mb must be > 0, got {args.max_upload_mb:g}")
    if web.gr is None:  # the app's one extra dependency
        raise OwlError("owl app needs Gradio: pip install -e '.[app]' (bash install.sh installs it)")
    check_options(args)
    pipe = load_pipeline(args.model, args.preset, pick_device(args.device), args=args)
    studio = web.Studio(pipe, args.worlds)
    app = web.serve(studio, args.host, args.port, args.max_upload_mb)
    where = args.model or (f"preset {args.preset}" if args.preset else DEFAULT_MODEL)
    print(f"owl app: serving {where} at http://{args.host}:{args.port} (worlds in {studio.folder}); Ctrl-C stops",
          flush=True)
    if not web.is_loopback(args.host):
        print(f"owl app: warning: --host {args.host} is not this machine's loopback: anyone who can reach it on port "
              f"{args.port} can run the model and read the worlds", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        with contextlib.redirect_stdout(io.StringIO()):  # Gradio's own "Closing server ..." line
            app.close()
        print("owl app: stopped", flush=True)


def _rollout_command(parser: argparse.ArgumentParser, func, settings, **flag_options) -> None:
    """A command that makes a rollout: its rollout-setting flags (from `RolloutSettings`), the model options."""
    add_setting_flags(parser, settings, **flag_options)
    _model_options(parser)
    parser.set_defaults(func=func)


def _model_options(parser) -> None:
    parser.add_argument("--model", help="a saved Owl pipeline folder (default: the session's, else checkpoints/owl-shapes)")
    parser.add_argument("--preset", help="build a random model of a named size instead (tiny)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N; auto: this process's GPU if any, else cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--dtype", choices=DTYPES, help="weights of the LMM and the VDM transformer "
                        "(default float32; bfloat16 on a GPU halves memory and time)")
    parser.add_argument("--cpu-offload", action="store_true", help="keep the weights in CPU memory and move one "
                        "component at a time to the GPU (much less GPU memory, slower)")
    parser.add_argument("--vae-tiling", action="store_true", help="encode and decode frames in tiles (less memory)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the transformer and the LMM "
                        "(slow first clips, faster after)")


class _Parser(argparse.ArgumentParser):
    """argparse, with its mistakes reported as Owl reports every other: one line, exit 2 (--help shows usage)."""

    def error(self, message: str):
        self.exit(2, f"owl: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="owl", description="Long, consistent videos with an omni world model.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gen = sub.add_parser("generate", help="generate a long video from a prompt (and optionally a first image)",
                         description="Generate a video: the world model keeps the state, the renderer films clips. "
                                     "A world session is saved beside the video after every clip.")
    gen.add_argument("--prompt", help="what the video shows at the start")
    gen.add_argument("--image", help="first frame for image-to-video (PNG, JPEG, ...)")
    gen.add_argument("--dynamics", help='scripted dynamics d_0; d_1; ... separated by ";" (empty = predicted)')
    gen.add_argument("--script", help="JSON or YAML file: a list of dynamics texts, or a timeline of segments "
                                      "{start, end, dynamics} / {duration, dynamics} (gaps are predicted)")
    gen.add_argument("--out", help="output mp4 (default owl.mp4); a .storyboard.json and a .session/ go beside it")
    gen.add_argument("--no-session", action="store_true", help="do not save a world session (no resume, no partial)")
    gen.add_argument("--resume", metavar="SESSION", help="continue an interrupted rollout from its session folder")
    gen.add_argument("--batch", metavar="JSONL", help="one rollout per line: {prompt, image?, seconds?, dynamics?, "
                                                      "seed?, id?} (a row without seconds or seed takes --seconds "
                                                      "or --seed); split across accelerate/torchrun processes")
    gen.add_argument("--out-dir", help="with --batch: folder for the videos and manifest.jsonl")
    gen.add_argument("--retry-failed", action="store_true", help="with --batch: run rows that failed before again")
    _rollout_command(gen, cmd_generate, GENERATE_SETTINGS)

    branch = sub.add_parser("branch", help="fork a saved rollout at a clip, with other dynamics",
                            description="Fork a session at clip K: clips 0..K-1 are kept, clips K.. are filmed again. "
                                        "The original session and video are left untouched.")
    branch.add_argument("session", metavar="SESSION", help="a session folder (e.g. out.session)")
    branch.add_argument("--at", type=int, required=True, metavar="CLIP", help="the first clip to film again (>= 1)")
    branch.add_argument("--dynamics", help='d_{K-1}; d_K; ... separated by ";" (empty or missing = predicted)')
    branch.add_argument("--out", required=True, help="output mp4 of the branch (its session goes beside it)")
    _rollout_command(branch, cmd_branch, BRANCH_SETTINGS, help={
        "seconds": "new total duration (default: the session's)",
        "seed": "reseed at the fork (default: carry the session's generator on)"})

    extend = sub.add_parser("extend", help="continue a finished rollout or any mp4 by N seconds",
                            description="Continue a finished session, or any video (read with decord: its clips "
                                        "become observations, its last frames the context), into a new video. A "
                                        "session goes on with its own settings: --prompt and the rollout settings "
                                        "other than --seconds apply to a video source only.")
    extend.add_argument("source", metavar="SESSION|VIDEO", help="a finished session folder or a video file")
    extend.add_argument("--dynamics", help='dynamics of the new clips, separated by ";" (empty = predicted)')
    extend.add_argument("--prompt", help="a video source only: text placed before the video in the world model")
    extend.add_argument("--out", required=True, help="output mp4: the source followed by the new clips")
    _rollout_command(extend, cmd_extend, EXTEND_SETTINGS, required=("seconds",), help={"seconds": "seconds to add"})

    init = sub.add_parser("init", help="make an Owl model from a Qwen-VL folder and a Wan folder",
                          description="Assemble an Owl model around published checkpoints: a transformers Qwen2-VL, "
                                      "Qwen2.5-VL or Qwen3-VL folder as the world model's LMM and a diffusers Wan "
                                      "folder (Wan2.1 T2V, Wan2.2 TI2V-5B) as the renderer. Every dimension comes "
                                      "from their configs; only the state queries and the projector are new. "
                                      "With --director the folder runs with no training: the instruct LMM writes "
                                      "each next event and the Wan text encoder conditions the video.")
    init.add_argument("--lmm", required=True, metavar="DIR", help="a transformers Qwen-VL folder")
    init.add_argument("--vdm", required=True, metavar="DIR", help="a diffusers Wan folder (model_index.json)")
    init.add_argument("--out", required=True, metavar="DIR", help="the Owl model folder to write (new or empty)")
    init.add_argument("--num-queries", type=int, metavar="Q", help="state queries (default 128, as Owl-1)")
    init.add_argument("--key-frames", type=int, metavar="K", help="key frames per clip fed back (default 2)")
    init.add_argument("--key-frame-size", type=int, metavar="S",
                      help="side of the key frames in the vision tower (default 448)")
    init.add_argument("--clip-seconds", type=float, metavar="S", help="seconds each clip adds (default 5)")
    init.add_argument("--fps", type=int, help="frame rate (default: the Wan model's, 16 or 24)")
    init.add_argument("--height", type=int, help="frame height (default: the Wan model's, 480 or 704)")
    init.add_argument("--width", type=int, help="frame width (default: the Wan model's, 832 or 1280)")
    init.add_argument("--dtype", choices=("auto",) + DTYPES, default="auto",
                      help="weights as written (default auto: as the folders hold them)")
    init.add_argument("--seed", type=int, default=0, help="seed of the new parts (default 0)")
    init.add_argument("--director", action="store_true",
                      help="director mode, usable with no training: the instruct LMM writes each next event and "
                           "the Wan folder's own text encoder conditions the video (needs a chat template and "
                           "text_encoder/)")
    init.add_argument("--instruction", metavar="TEXT",
                      help="the director's instruction (its system message; default: "
                           "owl.config.DIRECTOR_INSTRUCTION); kept in OUT/world_model/config.json, where it can be "
                           "changed")
    init.set_defaults(func=cmd_init)

    play = sub.add_parser("play", help="steer a world clip by clip from the terminal",
                          description="Film a world a clip at a time: after each clip the world model proposes the "
                                      "next dynamics; Enter films them, other text films that instead, 'b N [text]' "
                                      "branches at clip N, 's' shows the storyboard, 'q' quits. The world is saved "
                                      "after every clip (a session beside the video).")
    play.add_argument("session", metavar="SESSION", nargs="?", help="a saved world to go on with (e.g. out.session)")
    play.add_argument("--prompt", help="a new world: what it shows at the start")
    play.add_argument("--image", help="a new world: its first frame (PNG, JPEG, ...)")
    play.add_argument("--out", help="a new world: its mp4 (the session goes beside it)")
    _rollout_command(play, cmd_play, PLAY_SETTINGS)

    app = sub.add_parser("app", help="make, steer and branch worlds in the browser (a local web app)",
                         description="Serve Owl's web app: start a world from a prompt, an image or a video; see "
                                     "the world model's proposal for each next clip and film it, edit it or branch. "
                                     "Each world is a session saved in --worlds. Binds to 127.0.0.1 unless told.")
    app.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    app.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    app.add_argument("--worlds", default="outputs/app", metavar="DIR",
                     help="folder of the worlds made in the app (default outputs/app)")
    app.add_argument("--max-upload-mb", type=float, default=200, metavar="MB",
                     help="largest image or video a page may upload (default 200)")
    _model_options(app)
    app.set_defaults(func=cmd_app)

    from owl.data.commands import add_data_commands
    from owl.eval.commands import add_eval_commands
    from owl.train.commands import add_train_commands

    add_data_commands(sub)
    add_train_commands(sub)
    add_eval_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
