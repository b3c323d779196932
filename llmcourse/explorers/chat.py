"""Explorer of Chapter 11: one message to the instruction-tuned model, in its chat template.

:func:`chat_view` is the computation: the user's message (after an optional system
message) written in the chat template and ended with ``<|assistant|>``
(:func:`llmcourse.prompting.encode_dialogue`), the model's reply decoded until it writes
``<|endoftext|>`` or reaches ``max_new_tokens`` (greedy, or sampled at a temperature with
a seeded generator: :func:`llmcourse.prompting.generate_completions`, what
:class:`llmcourse.prompting.ChatSession` uses), and, for comparison, what a base model
(e.g. the ``fewshot`` model that fine-tuning started from) writes after the same message
as plain text, with no template. :func:`chat_html` shows the exchange as HTML: the tokens
the model reads, the chat template's special tokens marked, and the two replies; every
piece of text is escaped, so a message is shown as typed, never interpreted as markup.
:func:`explore_chat` wraps it in a widget: a message box and the decoding settings.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import ipywidgets
import torch
from torch import nn

from llmcourse.checks import check_int, check_int_in, check_positive
from llmcourse.explorers.widget import Explorer, Rendering, html_rendering
from llmcourse.generation.generate import context_size
from llmcourse.prompting.chat import END, encode_dialogue
from llmcourse.prompting.scoring import generate_completions
from llmcourse.text.bpe import BPETokenizer

MAX_NEW_TOKENS = 128
"""The end of the explorer's ``max_new_tokens`` slider (less for a shorter context)."""

LINE_BREAK = " / "
"""What stands for a line break in the explorer's one-line message box (as in
:func:`llmcourse.prompting.chat_widget`): ``"Reverse the letters. / d o g"``."""


@dataclass(frozen=True)
class ChatView:
    """One user message and the model's reply.

    Attributes:
        message: the user's message (line breaks included).
        system: the system message before it, or None.
        prompt_ids: the ids the model reads: the dialogue in the chat template, ending
            with ``<|assistant|>``.
        reply_ids: the reply's ids, without the ``<|endoftext|>`` that ends it.
        reply: the reply's text.
        stopped: whether the model wrote ``<|endoftext|>`` within ``max_new_tokens``
            (else the reply was cut).
        temperature: None for greedy decoding, else the sampling temperature.
        max_new_tokens, seed: the other decoding settings.
        base_ids, base_reply, base_stopped: the base model's continuation of
            ``<|endoftext|>`` and the message as plain text, decoded with the same
            settings (None without a base model).
    """

    message: str
    system: str | None
    prompt_ids: tuple[int, ...]
    reply_ids: tuple[int, ...]
    reply: str
    stopped: bool
    temperature: float | None
    max_new_tokens: int
    seed: int
    base_ids: tuple[int, ...] | None = None
    base_reply: str | None = None
    base_stopped: bool | None = None

    @property
    def n_prompt_tokens(self) -> int:
        """The length of the prompt, in tokens."""
        return len(self.prompt_ids)

    @property
    def n_reply_tokens(self) -> int:
        """The tokens the model wrote, the closing ``<|endoftext|>`` included."""
        return len(self.reply_ids) + self.stopped


def _continuation(
    model: nn.Module,
    ids: list[int],
    max_new_tokens: int,
    stop_id: int,
    temperature: float | None,
    seed: int,
) -> tuple[list[int], bool]:
    generator = torch.Generator().manual_seed(seed)
    out = generate_completions(
        model, [ids], max_new_tokens, stop_id=stop_id, temperature=temperature, generator=generator
    )[0]
    # generate_completions cuts at the stop token: a shorter output means it was written
    return out, len(out) < max_new_tokens


def chat_view(
    model: nn.Module,
    tokenizer: BPETokenizer,
    message: str,
    *,
    system: str | None = None,
    temperature: float | None = None,
    max_new_tokens: int = 48,
    seed: int = 0,
    base: nn.Module | None = None,
) -> ChatView:
    """The reply of a chat model to one message, and what it read.

    Args:
        model: the chat model (``load_pretrained("instruct")``).
        tokenizer: its tokenizer, with the chat template's special tokens.
        message: the user's message, a non-empty str.
        system: an optional system message.
        temperature: None for greedy decoding, else sampling at this temperature (> 0).
        max_new_tokens: the longest reply, in tokens (>= 1).
        seed: seeds the sampling (>= 0); the same seed gives the same reply.
        base: optionally a model with the same tokenizer that continues
            ``<|endoftext|>`` + ``message`` as plain text, with the same settings.

    Returns:
        A :class:`ChatView`. Its reply is the one that ``ChatSession(model, tokenizer,
        system, max_new_tokens, temperature, seed).send(message)`` returns.

    Raises:
        ValueError: an empty message, a bad setting, or a prompt that leaves less than
            ``max_new_tokens`` of the model's context for the reply.
    """
    if not isinstance(message, str) or not message.strip():
        raise ValueError(f"message must be a non-empty str, got {message!r:.80}")
    if system is not None and not isinstance(system, str):
        raise ValueError(f"system must be a str or None, got {system!r:.80}")
    if temperature is not None:
        check_positive("temperature", temperature)
    check_int("max_new_tokens", max_new_tokens)
    check_int("seed", seed, minimum=0)
    if END not in tokenizer.specials:
        raise ValueError(f"the tokenizer has no {END} token; the chat template needs it")
    end = tokenizer.specials[END]
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages.append({"role": "user", "content": message})
    ids, _ = encode_dialogue(tokenizer, messages, add_generation_prompt=True)
    window = context_size(model)
    if window is not None and len(ids) + max_new_tokens > window:
        raise ValueError(
            f"the prompt is {len(ids)} tokens and the reply may take {max_new_tokens}: "
            f"together more than the model's context of {window} tokens"
        )
    reply_ids, stopped = _continuation(model, ids, max_new_tokens, end, temperature, seed)
    base_ids = base_reply = base_stopped = None
    if base is not None:
        plain = [end, *tokenizer.encode(message)]
        base_ids, base_stopped = _continuation(base, plain, max_new_tokens, end, temperature, seed)
        base_reply = tokenizer.decode(base_ids)
        base_ids = tuple(base_ids)
    return ChatView(
        message=message,
        system=system,
        prompt_ids=tuple(ids),
        reply_ids=tuple(reply_ids),
        reply=tokenizer.decode(reply_ids),
        stopped=stopped,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        seed=seed,
        base_ids=base_ids,
        base_reply=base_reply,
        base_stopped=base_stopped,
    )


BOX_STYLE = (
    "font-family:monospace;white-space:pre-wrap;border:1px solid #d4d4d8;"
    "border-radius:4px;padding:4px 6px;margin:2px 0 8px 0;"
)
SPECIAL_STYLE = (
    "background:#fde68a;color:#78350f;border-radius:3px;padding:0 2px;margin:0 1px;"
    "font-weight:bold;"
)


def special_badge(token: str) -> str:
    """A special token as a highlighted HTML span (the token's text escaped)."""
    return f'<span class="chat-special" style="{SPECIAL_STYLE}">{html.escape(token)}</span>'


def tokens_html(tokenizer: BPETokenizer, ids: Sequence[int]) -> str:
    """Ids as HTML: runs of ordinary tokens decoded and escaped, each special token a
    badge (:func:`special_badge`). Text that merely looks like a special token, such as
    a user's typed ``<|assistant|>``, is ordinary text and is shown escaped."""
    special_text = {i: s for s, i in tokenizer.specials.items()}
    parts: list[str] = []
    run: list[int] = []
    for i in [*ids, None]:
        if i is None or i in special_text:
            if run:
                parts.append(html.escape(tokenizer.decode(run)))
                run = []
            if i is not None:
                parts.append(special_badge(special_text[i]))
        else:
            run.append(i)
    return "".join(parts)


def settings_text(view: ChatView) -> str:
    """The decoding settings in words: ``greedy`` or ``sampled at τ = 0.80, seed 3``."""
    if view.temperature is None:
        return "greedy"
    return f"sampled at τ = {view.temperature:.2f}, seed {view.seed}"


def _ending(stopped: bool, max_new_tokens: int) -> str:
    return f"ended with {END}" if stopped else f"cut at max_new_tokens = {max_new_tokens}"


def chat_html(view: ChatView, tokenizer: BPETokenizer) -> str:
    """An HTML fragment: the prompt as the model reads it (special tokens marked), the
    chat model's reply, and, if the view has one, the base model's continuation."""
    end = [tokenizer.specials[END]] if view.stopped else []
    head = (
        f"<p><b>The model reads</b> {view.n_prompt_tokens} tokens: the message in the chat "
        "template, special tokens marked.</p>"
    )
    prompt = (
        f'<div class="chat-prompt" style="{BOX_STYLE}">'
        f"{tokens_html(tokenizer, view.prompt_ids)}</div>"
    )
    said = (
        f"<p><b>The instruction-tuned model replies</b> ({settings_text(view)}): "
        f"{view.n_reply_tokens} tokens, {html.escape(_ending(view.stopped, view.max_new_tokens))}."
        "</p>"
    )
    reply = (
        f'<div class="chat-reply" style="{BOX_STYLE}background:#eff6ff;">'
        f"{tokens_html(tokenizer, [*view.reply_ids, *end])}</div>"
    )
    parts = [head, prompt, said, reply]
    if view.base_ids is not None:
        base_end = [tokenizer.specials[END]] if view.base_stopped else []
        parts += [
            "<p><b>The base model</b>, reading the message as plain text (no template), "
            f"continues ({len(view.base_ids) + bool(view.base_stopped)} tokens, "
            f"{html.escape(_ending(bool(view.base_stopped), view.max_new_tokens))}):</p>",
            f'<div class="chat-base" style="{BOX_STYLE}background:#f4f4f5;">'
            f"{tokens_html(tokenizer, [*view.base_ids, *base_end])}</div>",
        ]
    return f'<div class="chat-explorer">{"".join(parts)}</div>'


def explore_chat(
    model: nn.Module,
    tokenizer: BPETokenizer,
    message: str = "Write the letters in capitals. / b a d",
    *,
    base: nn.Module | None = None,
    system: str | None = None,
    decoding: str = "greedy",
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    seed: int = 0,
    show_base: bool = True,
) -> Explorer:
    """A widget: type a message, choose greedy decoding or sampling, and read the chat
    model's reply beside what it read (and the base model's continuation).

    Args:
        model, tokenizer: the chat model and its tokenizer.
        message: the initial message; ``" / "`` stands for a line break
            (:data:`LINE_BREAK`), so that an instruction and its input fit one line.
        base: an optional base model to compare with (same tokenizer).
        system: an optional system message.
        decoding: ``"greedy"`` or ``"sample"``, the initial choice.
        temperature, max_new_tokens, seed: the controls' initial values (temperature
            and seed act only when sampling).
        show_base: whether the base model's continuation is shown at first (only with
            ``base``).

    The controls are ``message`` (a text box, read on Enter), ``decoding``,
    ``temperature``, ``max_new_tokens``, ``seed`` and, with a base model, ``show_base``.
    A message that cannot be answered (empty, or too long for the context) shows the
    error instead of a reply.
    """
    if decoding not in ("greedy", "sample"):
        raise ValueError(f"decoding must be 'greedy' or 'sample', got {decoding!r}")
    check_positive("temperature", temperature)
    check_int("seed", seed, minimum=0)
    most = min(MAX_NEW_TOKENS, (context_size(model) or MAX_NEW_TOKENS + 1) - 1)
    check_int_in("max_new_tokens", max_new_tokens, 1, most)

    def render(message, decoding, temperature, max_new_tokens, seed, show_base=False) -> Rendering:
        text = message.replace(LINE_BREAK, "\n")
        try:
            view = chat_view(
                model,
                tokenizer,
                text,
                system=system,
                temperature=None if decoding == "greedy" else temperature,
                max_new_tokens=max_new_tokens,
                seed=seed,
                base=base if show_base else None,
            )
        except ValueError as error:
            shown = f"<p><b>No reply:</b> {html.escape(str(error))}</p>"
            return html_rendering(f'<div class="chat-explorer">{shown}</div>', f"no reply: {error}")
        n = view.n_reply_tokens
        summary = f"{n} reply token{'s' * (n != 1)} ({settings_text(view)}): {view.reply!r}"
        return html_rendering(chat_html(view, tokenizer), summary)

    style = {"description_width": "initial"}
    controls: dict[str, ipywidgets.ValueWidget] = {
        "message": ipywidgets.Text(
            value=message,
            description="message ( / for a line break)",
            continuous_update=False,
            layout=ipywidgets.Layout(width="95%"),
            style=style,
        ),
        "decoding": ipywidgets.ToggleButtons(
            options=["greedy", "sample"], value=decoding, description="decoding", style=style
        ),
        "temperature": ipywidgets.FloatSlider(
            value=temperature,
            min=0.1,
            max=2.0,
            step=0.05,
            description="temperature τ",
            style=style,
        ),
        "max_new_tokens": ipywidgets.IntSlider(
            value=max_new_tokens,
            min=1,
            max=most,
            description="max new tokens",
            style=style,
        ),
        "seed": ipywidgets.IntSlider(value=seed, min=0, max=99, description="seed", style=style),
    }
    if base is not None:
        controls["show_base"] = ipywidgets.Checkbox(
            value=show_base, description="show the base model", style=style
        )
    return Explorer(controls, render, "explorer: a message to the chat model", per_row=1)
