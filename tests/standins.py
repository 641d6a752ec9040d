"""Random-weight stand-ins of public checkpoint folders, in their official Hugging Face layouts, for tests.

Each function writes one folder laid out as a published checkpoint is, so Owl's loading code can be tested on
"real-layout" folders with no download:

    qwen2_vl_folder      Qwen/Qwen2-VL-2B-Instruct
    qwen2_5_vl_folder    Qwen/Qwen2.5-VL-3B-Instruct
    qwen3_vl_folder      Qwen/Qwen3-VL-2B-Instruct
    wan2_1_folder        Wan-AI/Wan2.1-T2V-1.3B-Diffusers
    wan2_2_ti2v_folder   Wan-AI/Wan2.2-TI2V-5B-Diffusers

Widths and depths are reduced (hidden 64, 2-3 layers, ...) so a folder builds and saves in a second or two and a
forward pass is fast on CPU. What a loader can depend on follows the official folders: the file names, the
classes, `config.json` as the published file reads (the flat transformers-4.x form for Qwen2-VL and Qwen2.5-VL),
the vocabulary size and special-token ids, patch / merge / window geometry, VAE compression factors, latent
channels and statistics, scheduler settings, model_index.json, and the dtypes the weights are stored in (bf16
for the Qwen models and the UMT5 text encoder, float32 for the Wan transformer and VAE). Every weight file is
written by the libraries' own `save_pretrained` (safetensors); the weights are random, seeded (`SEED`).

The tokenizers are built in-process with `tokenizers`: Qwen's is a byte-level BPE with Qwen2's pre-tokenizer,
merges learned from a small English corpus, filler entries up to id 151642 and the special tokens at their real
ids (151643 ...); Wan's is a T5-style Unigram with <pad> 0, </s> 1, <unk> 2. Any text encodes and decodes back;
short English captions take a few ids.

    from tests.standins import qwen2_5_vl_folder, wan2_1_folder
    vlm_dir = qwen2_5_vl_folder(tmp_path / "Qwen2.5-VL-3B-Instruct")
    model = AutoModelForImageTextToText.from_pretrained(vlm_dir)        # bf16, as the real one loads

`**overrides` change the config before the weights are made: for the Qwen folders they are keys of config.json
(a dict value is merged one level deep, e.g. `vision_config={"depth": 4}`, `torch_dtype="float32"`); for the
Wan folders they are per component, `transformer=`, `vae=`, `text_encoder=` (config.json keys) and `scheduler=`.
Values are used as given; keep widths consistent yourself (e.g. vision out_hidden_size == hidden_size).

Where the stand-ins differ from the published folders, besides widths and depths: one weight file, not shards;
the Wan transformer's text_dim is the stand-in UMT5's d_model (32), not 4096, as the real pair agree; the
tokenizers hold ~1k learned entries plus fillers, not Qwen's 151k merges or umt5's 256k pieces (the UMT5 keeps
its 256384-row embedding); tokenizer/ of the Wan folders is written by transformers 5 (tokenizer.json only,
no spiece.model); Qwen3-VL's chat template leaves out tools and reasoning.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import torch

SEED = 0

# --- Qwen tokenizers ----------------------------------------------------------------------------------------------

# (id, token, special) as in Qwen2.5's tokenizer_config.json "added_tokens_decoder"
QWEN2_5_ADDED_TOKENS = [
    (151643, "<|endoftext|>", True),
    (151644, "<|im_start|>", True),
    (151645, "<|im_end|>", True),
    (151646, "<|object_ref_start|>", True),
    (151647, "<|object_ref_end|>", True),
    (151648, "<|box_start|>", True),
    (151649, "<|box_end|>", True),
    (151650, "<|quad_start|>", True),
    (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True),
    (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True),
    (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True),
    (151657, "<tool_call>", False),
    (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False),
    (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False),
    (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False),
    (151664, "<|file_sep|>", False),
]
QWEN2_ADDED_TOKENS = QWEN2_5_ADDED_TOKENS[:14]  # Qwen2-VL stops at <|video_pad|>
QWEN3_ADDED_TOKENS = QWEN2_5_ADDED_TOKENS + [
    (151665, "<tool_response>", False),
    (151666, "</tool_response>", False),
    (151667, "<think>", False),
    (151668, "</think>", False),
]
# the additional_special_tokens of Qwen2-VL / Qwen2.5-VL's tokenizer_config.json
_QWEN_ADDITIONAL_SPECIAL = [t for _, t, _ in QWEN2_ADDED_TOKENS[1:]]

# Qwen2-VL's chat template (Qwen2.5-VL ships the same one)
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}"
    "<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen3-VL's, reduced to text, images and videos (the published one also renders tools and reasoning)
QWEN3_VL_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen2's pre-tokenizer split (transformers' tokenization_qwen2.PRETOKENIZE_REGEX)
_QWEN_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
               r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")


def _corpus() -> list[str]:
    """Short captions of the kind Owl's tests use, and chat words, so they encode to few ids."""
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "white", "black", "grey", "pink", "brown"]
    things = ["ball", "circle", "square", "triangle", "box", "cube", "car", "dog", "cat", "person", "bird", "shape"]
    events = ["rolls left", "rolls right", "moves left", "moves right", "moves up", "moves down", "enters the frame",
              "leaves the frame", "stops", "jumps", "falls", "turns around", "grows", "shrinks", "walks", "runs"]
    lines = [f"a {c} {t} {e}." for c, t, e in itertools.product(colours, things, events)]
    lines += [f"The {c} {t} {e} on a plain background, then the camera pans." for c, t, e in
              itertools.product(colours[:4], things[:6], events[:8])]
    lines += ["You are a helpful assistant.", "system", "user", "assistant", "Describe the video.",
              "What happens next in the scene?", "0 1 2 3 4 5 6 7 8 9 10 100 2024", "Picture 1: Video 1: frame"] * 8
    return lines


def _qwen_tokenizer(added: list[tuple[int, str, bool]], model_max_length: int, chat_template: str):
    """A byte-level BPE with Qwen2's normalizer / pre-tokenizer / decoder, wrapped as transformers' Qwen2Tokenizer.

    Ids below the first special token: 256 byte symbols and ~700 learned merges, then "<|filler_N|>" entries that
    no merge produces, so that the special tokens land on their real ids."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=1024, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator(_corpus(), trainer=trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    first_special = added[0][0]
    vocab.update({f"<|filler_{i}|>": i for i in range(len(vocab), first_special)})
    return Qwen2Tokenizer(
        vocab=vocab, merges=merges, unk_token=None, bos_token=None, eos_token="<|im_end|>",
        pad_token="<|endoftext|>", errors="replace", model_max_length=model_max_length, add_prefix_space=False,
        clean_up_tokenization_spaces=False, split_special_tokens=False, chat_template=chat_template,
        added_tokens_decoder={i: AddedToken(t, special=s, normalized=False) for i, t, s in added},
        additional_special_tokens=_QWEN_ADDITIONAL_SPECIAL,
    )


def _qwen_tokenizer_config(added, model_max_length: int, chat_template: str) -> dict:
    """tokenizer_config.json as Qwen's read (the transformers-4.x form, added tokens listed by id)."""
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                     "special": s}
            for i, t, s in added
        },
        "additional_special_tokens": _QWEN_ADDITIONAL_SPECIAL,
        "bos_token": None,
        "chat_template": chat_template,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


# --- Qwen configs, as the published config.json files read (real values in the comments) ------------------------

def _qwen2_vl_config() -> dict:
    """Qwen/Qwen2-VL-2B-Instruct's config.json, shrunk."""
    return {
        "architectures": ["Qwen2VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "vision_token_id": 151654,
        "image_token_id": 151655,
        "video_token_id": 151656,
        "hidden_act": "silu",
        "hidden_size": 64,  # 1536
        "initializer_range": 0.02,
        "intermediate_size": 128,  # 8960
        "max_position_embeddings": 32768,
        "max_window_layers": 28,
        "model_type": "qwen2_vl",
        "num_attention_heads": 4,  # 12; head_dim 16 (128)
        "num_hidden_layers": 2,  # 28
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.41.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 2,  # 32
            "embed_dim": 32,  # 1280
            "mlp_ratio": 4,
            "num_heads": 2,  # 16
            "in_chans": 3,
            "hidden_size": 64,  # 1536, the text width the merger projects to
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},  # [16, 24, 24]: sums to head_dim / 2
        "vocab_size": 151936,
    }


def _qwen2_5_vl_config() -> dict:
    """Qwen/Qwen2.5-VL-3B-Instruct's config.json, shrunk."""
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "vision_token_id": 151654,
        "image_token_id": 151655,
        "video_token_id": 151656,
        "hidden_act": "silu",
        "hidden_size": 64,  # 2048
        "initializer_range": 0.02,
        "intermediate_size": 128,  # 11008
        "max_position_embeddings": 128000,
        "max_window_layers": 70,
        "model_type": "qwen2_5_vl",
        "num_attention_heads": 4,  # 16; head_dim 16 (128)
        "num_hidden_layers": 2,  # 36
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.41.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vision_config": {
            "depth": 2,  # 32
            "hidden_act": "silu",
            "hidden_size": 32,  # 1280
            "intermediate_size": 64,  # 3420
            "num_heads": 2,  # 16
            "in_chans": 3,
            "out_hidden_size": 64,  # 2048, the text width
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 112,
            "fullatt_block_indexes": [1],  # [7, 15, 23, 31]: the last block of each group attends fully
            "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},  # [16, 24, 24]: sums to head_dim / 2
        "vocab_size": 151936,
    }


def _qwen3_vl_config() -> dict:
    """Qwen/Qwen3-VL-2B-Instruct's config.json (nested, as transformers 4.57 wrote it), shrunk."""
    return {
        "architectures": ["Qwen3VLForConditionalGeneration"],
        "image_token_id": 151655,
        "model_type": "qwen3_vl",
        "text_config": {
            "attention_bias": False,
            "attention_dropout": 0.0,
            "bos_token_id": 151643,
            "dtype": "bfloat16",
            "eos_token_id": 151645,
            "head_dim": 32,  # 128; q width 128 != hidden 64, as in the larger Qwen3 models
            "hidden_act": "silu",
            "hidden_size": 64,  # 2048
            "initializer_range": 0.02,
            "intermediate_size": 128,  # 6144
            "max_position_embeddings": 262144,
            "model_type": "qwen3_vl_text",
            "num_attention_heads": 4,  # 16
            "num_hidden_layers": 3,  # 28; one per deepstack level
            "num_key_value_heads": 2,  # 8
            "rms_norm_eps": 1e-06,
            # mrope_section [24, 20, 20]: sums to head_dim / 2
            "rope_scaling": {"mrope_interleaved": True, "mrope_section": [6, 5, 5], "rope_type": "default"},
            "rope_theta": 5000000,
            "tie_word_embeddings": True,
            "use_cache": True,
            "vocab_size": 151936,
        },
        "tie_word_embeddings": True,
        "dtype": "bfloat16",
        "transformers_version": "4.57.0.dev0",
        "video_token_id": 151656,
        "vision_config": {
            "deepstack_visual_indexes": [0, 1, 2],  # [5, 11, 17]: three levels, as the real one
            "depth": 4,  # 24
            "hidden_act": "gelu_pytorch_tanh",
            "hidden_size": 32,  # 1024
            "in_channels": 3,
            "initializer_range": 0.02,
            "intermediate_size": 64,  # 4096
            "model_type": "qwen3_vl",
            "num_heads": 2,  # 16
            "num_position_embeddings": 2304,
            "out_hidden_size": 64,  # 2048, the text width
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        "vision_end_token_id": 151653,
        "vision_start_token_id": 151652,
    }


# preprocessor_config.json as Qwen2-VL / Qwen2.5-VL publish it; Qwen3-VL's below
_CLIP_MEAN, _CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]


def _qwen2_preprocessor(processor_class: str) -> dict:
    return {
        "min_pixels": 3136,
        "max_pixels": 12845056,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": _CLIP_MEAN,
        "image_std": _CLIP_STD,
        "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": processor_class,
    }


def _qwen3_preprocessor(shortest_edge: int, longest_edge: int, kind: str, cls: str) -> dict:
    return {
        "size": {"longest_edge": longest_edge, "shortest_edge": shortest_edge},
        "patch_size": 16,
        "temporal_patch_size": 2,
        "merge_size": 2,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "processor_class": "Qwen3VLProcessor",
        kind: cls,
    }


def _merged(base: dict, overrides: dict) -> dict:
    """`base` with `overrides`; a dict value is merged into the dict it replaces, one level deep. Copies."""
    out = json.loads(json.dumps(base))
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _dtype_of(config: dict) -> torch.dtype:
    name = config.get("torch_dtype") or config.get("dtype") or "float32"
    return getattr(torch, name)


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")


def _write_qwen_folder(path: Path, config: dict, tokenizer_args: tuple, json_files: dict[str, dict],
                       generation: dict) -> Path:
    """config.json first (read back by AutoConfig, so the weights fit what a loader will see), then the weights
    and the tokenizer by `save_pretrained`, then the JSON files in their published form."""
    from transformers import AutoConfig, AutoModelForImageTextToText, GenerationConfig

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _write_json(path / "config.json", config)
    model_config = AutoConfig.from_pretrained(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = AutoModelForImageTextToText.from_config(model_config)
    model.to(_dtype_of(config))
    model.generation_config = GenerationConfig(**generation)
    model.save_pretrained(path)  # model.safetensors + generation_config.json (and config.json, rewritten below)
    _write_json(path / "config.json", config)

    added, model_max_length, chat_template = tokenizer_args
    tokenizer = _qwen_tokenizer(added, model_max_length, chat_template)
    tokenizer.save_pretrained(path)  # tokenizer.json
    bpe = json.loads(tokenizer.backend_tokenizer.to_str())["model"]  # vocab.json and merges.txt, as Qwen ship them
    _write_json(path / "vocab.json", bpe["vocab"])
    merges = [m if isinstance(m, str) else " ".join(m) for m in bpe["merges"]]
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{m}\n" for m in merges))
    for stray in ("chat_template.jinja", "special_tokens_map.json"):  # v5 writes the template apart; Qwen's don't
        (path / stray).unlink(missing_ok=True)
    _write_json(path / "tokenizer_config.json", _qwen_tokenizer_config(added, model_max_length, chat_template))
    for name, data in json_files.items():
        _write_json(path / name, data)
    return path


# --- the Qwen folders ---------------------------------------------------------------------------------------------

def qwen2_vl_folder(path: Path, **overrides) -> Path:
    """Qwen/Qwen2-VL-2B-Instruct's layout: config.json, model.safetensors, generation_config.json,
    tokenizer.json / tokenizer_config.json / vocab.json / merges.txt, preprocessor_config.json, chat_template.json."""
    return _write_qwen_folder(
        path, _merged(_qwen2_vl_config(), overrides), (QWEN2_ADDED_TOKENS, 32768, QWEN2_VL_CHAT_TEMPLATE),
        {"preprocessor_config.json": _qwen2_preprocessor("Qwen2VLProcessor"),
         "chat_template.json": {"chat_template": QWEN2_VL_CHAT_TEMPLATE}},
        dict(bos_token_id=151643, pad_token_id=151643, do_sample=True, eos_token_id=[151645, 151643],
             temperature=0.01, top_p=0.001, top_k=1),
    )


def qwen2_5_vl_folder(path: Path, **overrides) -> Path:
    """Qwen/Qwen2.5-VL-3B-Instruct's layout: config.json, model.safetensors (the real one has two shards and an
    index), generation_config.json, tokenizer.json / tokenizer_config.json / vocab.json / merges.txt,
    preprocessor_config.json, chat_template.json."""
    return _write_qwen_folder(
        path, _merged(_qwen2_5_vl_config(), overrides), (QWEN2_5_ADDED_TOKENS, 131072, QWEN2_VL_CHAT_TEMPLATE),
        {"preprocessor_config.json": _qwen2_preprocessor("Qwen2_5_VLProcessor"),
         "chat_template.json": {"chat_template": QWEN2_VL_CHAT_TEMPLATE}},
        dict(bos_token_id=151643, pad_token_id=151643, do_sample=True, eos_token_id=[151645, 151643],
             repetition_penalty=1.05, temperature=0.1, top_p=0.001, top_k=1),
    )


def qwen3_vl_folder(path: Path, **overrides) -> Path:
    """Qwen/Qwen3-VL-2B-Instruct's layout: config.json, model.safetensors, generation_config.json,
    tokenizer.json / tokenizer_config.json / vocab.json / merges.txt, preprocessor_config.json,
    video_preprocessor_config.json, chat_template.json. Patch 16, learned position embeddings, deepstack."""
    return _write_qwen_folder(
        path, _merged(_qwen3_vl_config(), overrides), (QWEN3_ADDED_TOKENS, 262144, QWEN3_VL_CHAT_TEMPLATE),
        {"preprocessor_config.json": _qwen3_preprocessor(65536, 16777216, "image_processor_type",
                                                         "Qwen2VLImageProcessorFast"),
         "video_preprocessor_config.json": _qwen3_preprocessor(4096, 25165824, "video_processor_type",
                                                               "Qwen3VLVideoProcessor"),
         "chat_template.json": {"chat_template": QWEN3_VL_CHAT_TEMPLATE}},
        dict(bos_token_id=151643, pad_token_id=151643, do_sample=True, eos_token_id=[151645, 151643],
             temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.0),
    )


# --- Wan: UMT5 text encoder and its tokenizer -----------------------------------------------------------------------

def _umt5_config() -> dict:
    """google/umt5-xxl's config.json as Wan's text_encoder/ carries it, shrunk."""
    return {
        "architectures": ["UMT5EncoderModel"],
        "classifier_dropout": 0.0,
        "d_ff": 64,  # 10240
        "d_kv": 8,  # 64
        "d_model": 32,  # 4096; the transformer's text_dim follows it
        "decoder_start_token_id": 0,
        "dense_act_fn": "gelu_new",
        "dropout_rate": 0.1,
        "eos_token_id": 1,
        "feed_forward_proj": "gated-gelu",
        "initializer_factor": 1.0,
        "is_encoder_decoder": True,
        "is_gated_act": True,
        "layer_norm_epsilon": 1e-06,
        "model_type": "umt5",
        "num_decoder_layers": 2,  # 24
        "num_heads": 4,  # 64
        "num_layers": 2,  # 24
        "output_past": True,
        "pad_token_id": 0,
        "relative_attention_max_distance": 128,
        "relative_attention_num_buckets": 32,
        "scalable_attention": True,
        "tie_word_embeddings": False,
        "tokenizer_class": "T5Tokenizer",
        "torch_dtype": "bfloat16",
        "transformers_version": "4.49.0",
        "use_cache": True,
        "vocab_size": 256384,
    }


def _t5_tokenizer():
    """A T5-style Unigram (Metaspace, </s> appended): <pad> 0, </s> 1, <unk> 2, the corpus's words as whole pieces,
    ASCII characters as pieces so that other text still encodes, then 300 <extra_id_N> sentinels as umt5's."""
    import string

    from transformers import T5Tokenizer

    words = sorted({w.strip(".,?:") for line in _corpus() for w in line.split()} - {""})
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(f"\u2581{w}", -4.0) for w in words] + [(w, -5.0) for w in words]
    pieces += [(c, -10.0) for c in string.ascii_letters + string.digits + string.punctuation]
    pieces += [(f"\u2581{c}", -10.0) for c in string.punctuation + string.digits]
    return T5Tokenizer(vocab=pieces, extra_ids=300)


# --- Wan pipelines ------------------------------------------------------------------------------------------------

_WAN_PARTS = ("transformer", "vae", "text_encoder", "scheduler")

# Wan2.2's 48-channel VAE statistics (Wan-AI/Wan2.2-TI2V-5B-Diffusers vae/config.json)
WAN2_2_LATENTS_MEAN = [
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557, -0.1382, 0.0542, 0.2813, 0.0891,
    0.1570, -0.0098, 0.0375, -0.1825, -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230, -0.0313, -0.1649, 0.0117, 0.0723,
    -0.2839, -0.2083, -0.0520, 0.3748, 0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
]
WAN2_2_LATENTS_STD = [
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013, 0.8158, 1.0344, 0.5894, 1.0901,
    0.6885, 0.6165, 0.8454, 0.4978, 0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093, 0.5709, 0.6065, 0.6415, 0.4944,
    0.5726, 1.2042, 0.5458, 1.6887, 0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
]


def _write_wan_folder(path: Path, transformer: dict, vae: dict, flow_shift: float, expand_timesteps: bool,
                      model_index: dict, overrides: dict) -> Path:
    """Components as diffusers' scripts/convert_wan_to_diffusers.py makes them, saved by `WanPipeline.save_pretrained`;
    text_encoder/config.json and model_index.json are then rewritten in their published form."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    unknown = set(overrides) - set(_WAN_PARTS)
    if unknown:
        raise ValueError(f"unknown overrides {sorted(unknown)}: the accepted ones are {list(_WAN_PARTS)}, "
                         "each a dict of config values")
    path = Path(path)
    text_encoder_config = _merged(_umt5_config(), overrides.get("text_encoder", {}))
    transformer = {**transformer, "text_dim": text_encoder_config["d_model"], **overrides.get("transformer", {})}
    vae = {**vae, **overrides.get("vae", {})}
    scheduler = {"prediction_type": "flow_prediction", "use_flow_sigmas": True, "num_train_timesteps": 1000,
                 "flow_shift": flow_shift, **overrides.get("scheduler", {})}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        text_encoder = UMT5EncoderModel(UMT5Config(**text_encoder_config)).to(_dtype_of(text_encoder_config))
        pipe = WanPipeline(
            tokenizer=_t5_tokenizer(), text_encoder=text_encoder, vae=AutoencoderKLWan(**vae),
            scheduler=UniPCMultistepScheduler(**scheduler), transformer=WanTransformer3DModel(**transformer),
            expand_timesteps=expand_timesteps,
        )
    pipe.save_pretrained(path, safe_serialization=True)
    _write_json(path / "text_encoder" / "config.json", text_encoder_config)
    _write_json(path / "model_index.json", model_index)
    return path


def _wan_model_index(diffusers_version: str, **extra) -> dict:
    return {
        "_class_name": "WanPipeline",
        "_diffusers_version": diffusers_version,
        **extra,
        "scheduler": ["diffusers", "UniPCMultistepScheduler"],
        "text_encoder": ["transformers", "UMT5EncoderModel"],
        "tokenizer": ["transformers", "T5TokenizerFast"],
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
    }


def wan2_1_folder(path: Path, **overrides) -> Path:
    """Wan-AI/Wan2.1-T2V-1.3B-Diffusers's layout: model_index.json, transformer/, vae/, scheduler/ (UniPC, flow
    shift 3), text_encoder/ (UMT5EncoderModel), tokenizer/. Latents: 16 channels, 4x in time and 8x in space."""
    transformer = {
        "patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 24,  # 12 x 128
        "in_channels": 16, "out_channels": 16, "freq_dim": 256, "ffn_dim": 96,  # 8960
        "num_layers": 2,  # 30
        "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": None,
        "added_kv_proj_dim": None, "rope_max_seq_len": 1024,
    }
    vae = {"base_dim": 8, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": [],
           "temperal_downsample": [False, True, True], "dropout": 0.0}  # base_dim 96; diffusers' latents_mean/std
    return _write_wan_folder(path, transformer, vae, flow_shift=3.0, expand_timesteps=False,
                             model_index=_wan_model_index("0.33.0.dev0"), overrides=overrides)


def wan2_2_ti2v_folder(path: Path, **overrides) -> Path:
    """Wan-AI/Wan2.2-TI2V-5B-Diffusers's layout: model_index.json (expand_timesteps true, no transformer_2),
    transformer/, vae/ (Wan2.2's residual VAE: 48 channels, 4x in time, 16x in space via a 2x2 patchify),
    scheduler/ (UniPC, flow shift 5), text_encoder/, tokenizer/."""
    transformer = {
        "patch_size": [1, 2, 2], "num_attention_heads": 2, "attention_head_dim": 24,  # 24 x 128
        "in_channels": 48, "out_channels": 48, "freq_dim": 256, "ffn_dim": 96,  # 14336
        "num_layers": 2,  # 30
        "cross_attn_norm": True, "qk_norm": "rms_norm_across_heads", "eps": 1e-6, "image_dim": None,
        "added_kv_proj_dim": None, "rope_max_seq_len": 1024,
    }
    vae = {
        "base_dim": 8, "decoder_base_dim": 16,  # 160, 256: the decoder is wider than the encoder, as the real one
        "z_dim": 48, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_scales": [],
        "temperal_downsample": [False, True, True], "dropout": 0.0, "is_residual": True, "in_channels": 12,
        "out_channels": 12, "patch_size": 2, "scale_factor_temporal": 4, "scale_factor_spatial": 16,
        "latents_mean": WAN2_2_LATENTS_MEAN, "latents_std": WAN2_2_LATENTS_STD,
    }
    index = _wan_model_index("0.35.0.dev0", boundary_ratio=None, expand_timesteps=True)
    index["transformer_2"] = [None, None]
    index = dict(sorted(index.items()))
    return _write_wan_folder(path, transformer, vae, flow_shift=5.0, expand_timesteps=True,
                             model_index=index, overrides=overrides)
