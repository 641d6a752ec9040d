"""The Shapes World caption grammar, parsed back into what a segment should show.

owl/data/shapes.py writes one plain caption per clip; the evaluation reads the same texts (the scripted dynamics
a model was given) and checks the frames against them. Grammar (case and the final period do not matter):

    subject  := (a | an | the) [colour] shape            shape: circle | square | triangle
    enter    := subject "enters" ["the frame"] ["from the" side]          side: left | right | top | bottom
    move     := subject "moves" (left | right | up | down)
    stop     := subject "stops"
    recolour := subject "turns" colour                   colour: a PALETTE name
    grow     := subject "grows"          shrink := subject "shrinks"
    exit     := subject ("leaves" | "exits") ["the frame"] ["to the" side]
    reenter  := subject ("comes back" | "returns") ["from the" side]
    empty    := "the frame stays empty"                  still := "nothing moves"

    parse_caption("the red circle leaves the frame to the top.")
    -> Caption(kind="exit", shape="circle", colour="red", side="top")

Anything else parses to None: the evaluation counts such a segment as not evaluable rather than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from owl.data.shapes import DIRECTIONS, PALETTE, SHAPES, SIDES

KINDS = ("enter", "move", "stop", "recolour", "grow", "shrink", "exit", "reenter", "empty", "still")

_COLOUR = "|".join(PALETTE)
_SIDE = "|".join(SIDES)
_SUBJECT = rf"(?:a|an|the)\s+(?:(?P<colour>{_COLOUR})\s+)?(?P<shape>{'|'.join(SHAPES)})\s+"
_VERBS = (
    ("enter", rf"enters(?:\s+the\s+frame)?(?:\s+from\s+the\s+(?P<side>{_SIDE}))?"),
    ("move", rf"moves\s+(?P<direction>{'|'.join(DIRECTIONS)})"),
    ("stop", r"stops"),
    ("recolour", rf"turns\s+(?P<new_colour>{_COLOUR})"),
    ("grow", r"grows"),
    ("shrink", r"shrinks"),
    ("exit", rf"(?:leaves|exits)(?:\s+the\s+frame)?(?:\s+to\s+the\s+(?P<side>{_SIDE}))?"),
    ("reenter", rf"(?:comes\s+back|returns)(?:\s+from\s+the\s+(?P<side>{_SIDE}))?"),
)
_PATTERNS = [(kind, re.compile(_SUBJECT + verb)) for kind, verb in _VERBS]


@dataclass(frozen=True)
class Caption:
    kind: str  # one of KINDS
    shape: str | None = None  # the subject's shape (None for empty / still)
    colour: str | None = None  # the subject's colour, when the caption names it
    direction: str | None = None  # move: left, right, up, down
    side: str | None = None  # enter / exit / reenter: the frame edge, when named
    new_colour: str | None = None  # recolour: the colour it turns


def parse_caption(text: str) -> Caption | None:
    """A Shapes World caption -> `Caption`, or None when it is outside the grammar."""
    clean = " ".join(str(text).lower().split()).rstrip(".").strip()
    if clean == "the frame stays empty":
        return Caption("empty")
    if clean == "nothing moves":
        return Caption("still")
    for kind, pattern in _PATTERNS:
        match = pattern.fullmatch(clean)
        if match:
            groups = match.groupdict()
            return Caption(kind, shape=groups["shape"], colour=groups["colour"], direction=groups.get("direction"),
                           side=groups.get("side"), new_colour=groups.get("new_colour"))
    return None
