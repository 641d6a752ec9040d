"""Contact sheets: one frame per clip of a finished video, with the dynamics that drove the clip under it.

    sheet = contact_sheet("ball.mp4", out.storyboard)          # a PIL image
    save_contact_sheet("ball.mp4", out.storyboard, "ball.sheet.png")

The frame shown for a clip is its middle frame, read back from the mp4 with decord (so the sheet shows what was
written, compression included). Frames are scaled up by an integer factor without smoothing, since the shipped
model films at 64 x 64.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np

from owl.errors import OwlError
from owl.rollout import Storyboard
from owl.files import write_bytes_atomic
from owl.video_io import VideoFile

CAPTION_LINES = 3  # lines of caption text under each frame
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)


def contact_sheet(video: str | Path, storyboard: Storyboard, columns: int | None = None, scale: int | None = None):
    """(PIL.Image) A grid of clip frames, `columns` wide (default: up to 6), each captioned with its dynamics."""
    from PIL import Image, ImageDraw, ImageFont

    clips = storyboard.clips
    if not clips:
        raise OwlError("the storyboard has no clips: nothing to put on a contact sheet")
    reader = VideoFile(video)
    middle = np.array([(c.start + c.end) / 2 for c in clips])
    frames = reader.frames(reader.indices_at(middle))  # (N, H, W, 3) uint8
    h, w = frames.shape[1:3]
    scale = scale or max(1, 192 // max(h, w))
    columns = columns or min(6, len(clips))
    font = ImageFont.load_default(size=11)
    line_height, pad = 14, 6
    cell_w, cell_h = w * scale + 2 * pad, h * scale + 2 * pad + CAPTION_LINES * line_height + pad
    chars = max(8, (w * scale) // 6)
    rows = -(-len(clips) // columns)
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for n, (clip, frame) in enumerate(zip(clips, frames)):
        x, y = (n % columns) * cell_w + pad, (n // columns) * cell_h + pad
        sheet.paste(Image.fromarray(frame).resize((w * scale, h * scale), Image.NEAREST), (x, y))
        heading = f"{clip.index}  {clip.start:.1f}-{clip.end:.1f} s  ({clip.origin})"
        text = heading + "\n" + textwrap.fill(clip.dynamics, chars)
        lines = text.splitlines()[:CAPTION_LINES]
        draw.multiline_text((x, y + h * scale + pad), "\n".join(lines), fill=INK, font=font, spacing=3)
    return sheet


def save_contact_sheet(video: str | Path, storyboard: Storyboard, path: str | Path, **kwargs) -> Path:
    """Write the contact sheet of `video` as a PNG at `path`, atomically."""
    buffer = io.BytesIO()
    contact_sheet(video, storyboard, **kwargs).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())
    return Path(path)
