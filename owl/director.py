"""Director mode: long, steerable videos from off-the-shelf checkpoints, with no Owl training.

The closed loop of owl/rollout.py, unchanged, with an unmodified instruct vision-language model (VLM) as the
world model and the video model's own text conditioning as the state:

    s_0 = UMT5(prompt)                                        the Wan folder's text encoder, as WanPipeline uses it
    for t = 0, 1, ...:
        o_t = Film(s_t, tail of o_{t-1})                      the renderer, as in the trained mode
        d_t = VLM(chat(instruction; prompt, d_0..d_{t-1}, key frames of o_t))   or the given text
        s_{t+1} = UMT5(prompt + " " + d_t)

After each clip the VLM sees, through its own chat template, the director's instruction (the system message, kept
in the model folder's `world_model/config.json`, `DirectorConfig.instruction`), the prompt, the events so far and
the latest clip's key frames, and writes the next event as one short sentence. Given dynamics (`--dynamics`,
`--script`, the app's edit box) replace its proposal, as in the trained mode. `Director` has the trained world
model's interface (`session()`, whose `start` / `observe` / `act` / `read_state` the loop calls), so generate,
sessions (resume, branch, extend), batches, the app and `owl eval shapes` take a director folder as they take a
trained one.

What the VLM is shown is its memory: with memory "full" every event so far and the key frames of the last
`max_observations` clips (None: the latest clip only; 0: every clip), events bounded by `max_steps` (None or 0:
all); with memory "last" the latest event and clip only.

The state s_t is (L, text_dim): the prompt and current event tokenized to `max_text_tokens`, encoded, and zeroed
past the text's own tokens, as WanPipeline encodes a prompt; the renderer's `TextCondition` passes it to the
transformer, with the encoded negative prompt for guidance.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from owl.clip_sources import key_frames
from owl.config import DirectorConfig, load_json, save_json
from owl.errors import OwlError
from owl.world_model import pixel_patches

IMAGE_PAD = "<|image_pad|>"  # the chat templates' image placeholder, one per vision token after expansion


class Director(nn.Module):
    """An instruct VLM that writes the next event + the video model's text encoder that turns the prompt and the
    event into the renderer's condition."""

    def __init__(self, vlm, tokenizer, image_processor, text_encoder, text_tokenizer, config: DirectorConfig):
        super().__init__()
        self.vlm = vlm
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.text_encoder = text_encoder
        self.text_tokenizer = text_tokenizer
        self.config = config
        self._execution_device: torch.device | None = None  # set under offload (`place_small_parts`)
        check_director_config(config)
        check_chat_template(tokenizer, "the director's VLM")
        if tokenizer.convert_tokens_to_ids(IMAGE_PAD) in (None, tokenizer.unk_token_id):
            raise OwlError(f"the director's VLM tokenizer has no {IMAGE_PAD!r}: it is not a Qwen-VL tokenizer")

    # --- what the loop and the pipeline read ----------------------------------------------------------------

    @property
    def instruction(self) -> str:
        return self.config.instruction

    @property
    def hidden_size(self) -> int:
        """The width of the state: the text encoder's (the transformer's text_dim)."""
        return self.text_encoder.config.d_model

    @property
    def device(self) -> torch.device:
        """Where inputs are made: the accelerator under CPU offload (`place_small_parts`), else the VLM's device."""
        return self._execution_device or next(self.vlm.parameters()).device

    @property
    def language_model(self) -> nn.Module:
        return self.vlm.model.language_model

    def parts(self) -> dict:
        return {"vlm": self.vlm, "tokenizer": self.tokenizer, "image_processor": self.image_processor,
                "text_encoder": self.text_encoder, "text_tokenizer": self.text_tokenizer}

    def offload_parts(self) -> dict[str, tuple[nn.Module, list[nn.Module]]]:
        """The VLM (called whole, through `generate`) and then the text encoder, in the loop's order."""
        return {"vlm": (self.vlm, [self.vlm]), "text_encoder": (self.text_encoder, [self.text_encoder])}

    def place_small_parts(self, device) -> None:
        """Under offload the director has no weights of its own to keep on the accelerator, but its inputs go there:
        the VLM and the text encoder are brought to them."""
        self._execution_device = torch.device(device)

    def session(self, memory: str = "full", use_cache: bool = True, max_observations: int | None = None,
                max_steps: int | None = None) -> "DirectorSession":
        return DirectorSession(self, memory, max_observations, max_steps)

    # --- the text condition ---------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_text(self, text: str) -> torch.Tensor:
        """The video model's condition for `text`, (L, text_dim), as WanPipeline makes it: cleaned with its
        `prompt_clean`, tokenized to `max_text_tokens` (truncated), encoded, and zero past the text's own tokens."""
        from diffusers.pipelines.wan.pipeline_wan import prompt_clean

        tokens = self.text_tokenizer([prompt_clean(text)], padding="max_length",
                                     max_length=self.config.max_text_tokens, truncation=True,
                                     add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        device = self.device
        mask = tokens.attention_mask.to(device)
        hidden = self.text_encoder(tokens.input_ids.to(device), mask).last_hidden_state[0]
        return hidden * mask[0, :, None].to(hidden.dtype)

    # --- the director's next event --------------------------------------------------------------------------

    def chat(self, prompt: str, events: list[str], clips: list[np.ndarray]) -> list[dict]:
        """The conversation the VLM answers: the instruction as the system message; the prompt, the events so far
        and the key frames of `clips` (each (K, H, W, 3) uint8, oldest first) as the user's."""
        lines = [f"Prompt: {prompt.strip() or '(none: the video starts from an image)'}"]
        lines += ["Events so far:"] + [f"{i + 1}. {e}" for i, e in enumerate(events)] if events else []
        content = [{"type": "text", "text": "\n".join(lines) + "\nThe latest frames:"}]
        content += [{"type": "image"} for frames in clips for _ in frames]
        content.append({"type": "text", "text": "What happens next?"})
        return [{"role": "system", "content": [{"type": "text", "text": self.config.instruction}]},
                {"role": "user", "content": content}]

    @torch.no_grad()
    def propose(self, prompt: str, events: list[str], clips: list[np.ndarray], do_sample: bool = False,
                temperature: float = 1.0, generator: torch.Generator | None = None) -> str:
        """The next event, one short sentence, written by the VLM (greedy, or sampled from `generator`)."""
        frames = np.concatenate(clips) if clips else None
        text = self.tokenizer.apply_chat_template(self.chat(prompt, events, clips), tokenize=False,
                                                  add_generation_prompt=True)
        inputs = {}
        if frames is not None:
            pixels, grid_thw = pixel_patches(self.image_processor, frames, self.config.key_frame_size, self.device)
            merge = self.image_processor.merge_size ** 2
            counts = iter((grid_thw.prod(-1) // merge).tolist())
            text = re.sub(re.escape(IMAGE_PAD), lambda _: IMAGE_PAD * next(counts), text)
            inputs = {"pixel_values": pixels, "image_grid_thw": grid_thw}
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.device)
        sampling = {"do_sample": False}
        if do_sample:  # generate draws from torch's global generator: seed it from the rollout's, in a fork
            sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
        with torch.random.fork_rng(devices=[]):
            if do_sample:
                torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
            out = self.vlm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **inputs,
                                    max_new_tokens=self.config.max_dynamics_tokens, **sampling,
                                    eos_token_id=self.vlm.generation_config.eos_token_id or self.tokenizer.eos_token_id,
                                    pad_token_id=self.tokenizer.pad_token_id)
        return one_sentence(self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))

    # --- save / load ----------------------------------------------------------------------------------------

    def save_pretrained(self, path: str | Path) -> None:
        """`path/config.json`: the director's settings and instruction (it has no weights of its own)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_json(self.config, path / "config.json")

    @classmethod
    def from_parts(cls, vlm, tokenizer, image_processor, text_encoder, text_tokenizer, path: str | Path) -> "Director":
        return cls(vlm, tokenizer, image_processor, text_encoder, text_tokenizer,
                   load_json(DirectorConfig, Path(path) / "config.json"))


def one_sentence(text: str) -> str:
    """The first sentence of the first non-empty line (what the instruction asks for), whitespace collapsed."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    sentence = re.split(r"(?<=[.!?])\s", line.strip(), maxsplit=1)[0]
    return " ".join(sentence.split())


def check_director_config(config: DirectorConfig) -> None:
    """The values a director's config.json may hold (from_dict has checked their types)."""
    if not config.instruction.strip():
        raise OwlError("director config: instruction must be a non-empty text (the VLM's system message)")
    for name in ("key_frames", "key_frame_size", "max_dynamics_tokens", "max_text_tokens"):
        if getattr(config, name) < 1:
            raise OwlError(f"director config: {name} must be a positive integer, got {getattr(config, name)}")


def check_chat_template(tokenizer, what: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise OwlError(f"{what} has no chat template (tokenizer_config.json's chat_template, chat_template.json or "
                       "chat_template.jinja): director mode needs an instruct VLM, such as Qwen2.5-VL-3B-Instruct")


class DirectorSession:
    """One rollout's director: the events and key frames so far, and the current condition. Call in loop order,
    as a `WorldSession`: `start(prompt, image)`, then per step `read_state()`, `observe(clip)`, `act(text|None)`."""

    def __init__(self, director: Director, memory: str = "full", max_observations: int | None = None,
                 max_steps: int | None = None):
        from owl.memory import check_session_memory

        if not isinstance(memory, str):
            raise OwlError(f"a director's memory is named, 'full' or 'last', got {type(memory).__name__}")
        check_session_memory(memory, max_observations, max_steps)
        last = memory == "last"
        self.director = director
        self.max_clips = 1 if last or max_observations is None else max_observations  # 0: all
        self.max_events = 1 if last else (max_steps or 0)  # 0: all
        self.prompt, self.events, self.clips = "", [], []
        self.num_tokens = 0  # (the trained session's history size; the director keeps no KV cache between steps)

    def start(self, prompt: str, image_hwc: np.ndarray | None = None) -> None:
        self.prompt = prompt

    def observe(self, clip_thwc: np.ndarray) -> None:
        """The latest clip's key frames, for the next event."""
        self.clips.append(key_frames(clip_thwc, self.director.config.key_frames))
        if self.max_clips:
            self.clips = self.clips[-self.max_clips:]

    def act(self, dynamics: str | None = None, do_sample: bool = False, temperature: float = 1.0,
            generator: torch.Generator | None = None) -> str:
        """The next event: the given text, or the director's proposal. An empty proposal keeps the last event."""
        if dynamics is None:
            shown = self.events[-self.max_events:] if self.max_events else self.events
            dynamics = self.director.propose(self.prompt, shown, self.clips, do_sample, temperature, generator)
            dynamics = dynamics or (self.events[-1] if self.events else self.prompt)
        self.events.append(dynamics.strip())
        return self.events[-1]

    def read_state(self) -> torch.Tensor:
        """The condition of the next clip, (L, text_dim): the prompt and the current event, encoded."""
        current = f"{self.prompt.strip()} {self.events[-1]}" if self.events else self.prompt
        return self.director.encode_text(current.strip())
