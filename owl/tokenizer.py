"""The tiny preset's tokenizer: a byte-level BPE built in-process with `tokenizers`, no download.

Byte-level, so every string (any prompt, any language) encodes without unknown tokens; its merges are learned
from a small fixed corpus of Shapes World sentences, so the captions Owl trains on take few tokens. Building is
deterministic and takes well under a second. The result is a transformers `PreTrainedTokenizerFast`, saved with
the model (`tokenizer/`) like any Hugging Face tokenizer.

Special tokens carry Qwen2.5-VL's names, so the same code drives the tiny model and the real one.
"""

from __future__ import annotations

import itertools

from owl.config import TINY_VOCAB

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>"]

_COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "grey"]
_SHAPES = ["circle", "square", "triangle", "ball", "box", "shape", "object"]
_EVENTS = [
    "enters from the left", "enters from the right", "enters from the top", "enters from the bottom",
    "moves left", "moves right", "moves up", "moves down", "rolls left", "rolls right", "stops",
    "turns {c}", "grows", "shrinks", "leaves the frame", "exits", "comes back", "returns", "stays still",
]


def _corpus() -> list[str]:
    lines = []
    for colour, shape, event in itertools.product(_COLOURS, _SHAPES, _EVENTS):
        verb = event.format(c=colour)
        lines.append(f"a {colour} {shape} {verb}.")
        lines.append(f"the {shape} {verb}.")
        lines.append(f"the {colour} {shape} {verb} on a plain background.")
    return lines


def build_tiny_tokenizer():
    """A deterministic byte-level BPE tokenizer of `TINY_VOCAB` entries, as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None,
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
