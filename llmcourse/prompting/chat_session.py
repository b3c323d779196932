"""Talking to a chat model: a conversation's history, and a small JupyterLab chat box.

:class:`ChatSession` keeps the messages of one conversation and gets the model's reply
to each new user message: it writes the whole dialogue in the chat template
(:func:`~llmcourse.prompting.chat.encode_dialogue`), ends it with ``<|assistant|>``, and
decodes until the model writes ``<|endoftext|>``. A model reads at most ``block_size``
tokens, so when the dialogue no longer fits with room for the reply, the oldest
exchanges are dropped (the system message stays): the model forgets the start of a long
conversation, as every chat model with a finite context does.

:func:`chat_widget` puts a session in an ipywidgets box (a text field, a send button and
the transcript) for JupyterLab; the logic is the session's, which a test can drive
without a browser.
"""

from __future__ import annotations

import torch
from torch import nn

from llmcourse.checks import check_int, check_positive
from llmcourse.generation.generate import context_size
from llmcourse.prompting.chat import END, encode_dialogue, reply_text
from llmcourse.prompting.scoring import generate_completions
from llmcourse.text.bpe import BPETokenizer


class ChatSession:
    """One conversation with a chat model.

    Args:
        model: a chat model (e.g. ``load_pretrained("instruct")``).
        tokenizer: its tokenizer, with the chat template's special tokens.
        system: an optional system message, kept first whatever is dropped.
        max_new_tokens: the longest reply, in tokens.
        temperature: None for greedy replies (the same reply to the same dialogue), else
            sampling at that temperature, seeded by ``seed``.
        seed: seeds the sampling.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: BPETokenizer,
        system: str | None = None,
        max_new_tokens: int = 48,
        temperature: float | None = None,
        seed: int = 0,
    ) -> None:
        check_int("max_new_tokens", max_new_tokens)
        if temperature is not None:
            check_positive("temperature", temperature)
        window = context_size(model)
        if window is not None and max_new_tokens >= window:
            raise ValueError(f"max_new_tokens must be smaller than the context ({window})")
        self.model, self.tokenizer = model, tokenizer
        self.system, self.max_new_tokens, self.temperature = system, max_new_tokens, temperature
        self.generator = torch.Generator().manual_seed(seed)
        self.messages: list[dict[str, str]] = []
        self.last_prompt: list[int] = []  # the ids the model read for its last reply
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (keep the system message)."""
        self.messages = [] if self.system is None else [{"role": "system", "content": self.system}]

    def prompt_ids(self) -> list[int]:
        """The dialogue so far, ending with ``<|assistant|>``, cut from the oldest exchange
        until it leaves ``max_new_tokens`` of the context for the reply."""
        head = self.messages[:1] if self.system is not None else []
        turns = self.messages[len(head) :]
        window = context_size(self.model)
        while True:
            ids, _ = encode_dialogue(self.tokenizer, head + turns, add_generation_prompt=True)
            if window is None or len(ids) + self.max_new_tokens <= window:
                return ids
            if len(turns) <= 1:
                raise ValueError(
                    f"the message is too long: {len(ids)} tokens, and the reply needs "
                    f"{self.max_new_tokens} of the model's {window}"
                )
            turns = turns[2:]  # drop the oldest exchange

    def send(self, text: str) -> str:
        """Add the user's message, get the model's reply, add it, and return it."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a message must be a non-empty str")
        self.messages.append({"role": "user", "content": text})
        try:
            ids = self.prompt_ids()
        except ValueError:
            self.messages.pop()
            raise
        self.last_prompt = ids
        out = generate_completions(
            self.model,
            [ids],
            self.max_new_tokens,
            stop_id=self.tokenizer.specials[END],
            temperature=self.temperature,
            generator=self.generator,
        )[0]
        reply = reply_text(self.tokenizer, out)
        self.messages.append({"role": "assistant", "content": reply})
        return reply

    def transcript(self) -> str:
        """The conversation as lines ``user: ...`` and ``assistant: ...``."""
        lines = []
        for message in self.messages:
            content = message["content"].replace("\n", " / ")
            lines.append(f"{message['role']}: {content}")
        return "\n".join(lines)


def chat_widget(session: ChatSession):
    """An ipywidgets chat box for ``session``: type a message, press Enter or *Send*.

    Returns the ``ipywidgets.VBox``; its ``send(text)`` attribute sends a message as the
    button does (used by tests and by the book's static transcript).
    """
    import ipywidgets as widgets

    log = widgets.Textarea(
        value=session.transcript(),
        disabled=True,
        layout=widgets.Layout(width="100%", height="220px"),
    )
    field = widgets.Text(placeholder="Type a message, e.g. Reverse the letters. / d o g")
    button = widgets.Button(description="Send")
    clear = widgets.Button(description="Clear")

    def send(text: str) -> str:
        # "/" stands for a line break, so that an instruction and its input fit one field
        reply = session.send(text.replace(" / ", "\n"))
        log.value = session.transcript()
        return reply

    def on_send(_: object = None) -> None:
        if field.value.strip():
            try:
                send(field.value)
            except ValueError as error:
                log.value = session.transcript() + f"\n[{error}]"
            field.value = ""

    def on_clear(_: object = None) -> None:
        session.reset()
        log.value = session.transcript()

    button.on_click(on_send)
    clear.on_click(on_clear)
    field.continuous_update = False
    field.observe(lambda change: on_send() if change["name"] == "value" else None, "value")
    box = widgets.VBox([log, widgets.HBox([field, button, clear])])
    box.send = send
    return box
