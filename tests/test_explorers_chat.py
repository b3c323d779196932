"""Tests of llmcourse.explorers.chat: the reply is the chat session's (and a greedy loop's
written out), sampling is seeded, the HTML escapes what the user types, and the widget
redraws on the shipped models."""

from __future__ import annotations

import html
import re

import pytest
import torch

from llmcourse.explorers import WIDGET_VIEW
from llmcourse.explorers.chat import (
    LINE_BREAK,
    ChatView,
    chat_html,
    chat_view,
    explore_chat,
    settings_text,
    tokens_html,
)
from llmcourse.models import load_pretrained
from llmcourse.prompting import END, ChatSession, encode_dialogue

pytestmark = pytest.mark.usefixtures("one_thread")

CAPITALS = "Write the letters in capitals.\nb a d"
MESSAGES = [CAPITALS, "Give the last letter.\nm o p s", "Work out the result.\n7+5-3"]


@pytest.fixture(scope="module")
def models():
    instruct, tokenizer = load_pretrained("instruct")
    fewshot, _ = load_pretrained("fewshot")
    return instruct, fewshot, tokenizer


def greedy_by_hand(model, ids, max_new_tokens, stop_id):
    """The plain greedy loop: the whole sequence through the model at every step, the
    argmax appended, stopping at ``stop_id`` (no KV cache, no batching)."""
    ids, out = list(ids), []
    with torch.no_grad():
        for _ in range(max_new_tokens):
            token = int(model(torch.tensor([ids]))[0, -1].argmax())
            if token == stop_id:
                return out, True
            ids.append(token)
            out.append(token)
    return out, False


@pytest.mark.parametrize("message", MESSAGES)
@pytest.mark.parametrize("system", [None, "Answer briefly."])
def test_the_greedy_reply_is_the_chat_sessions(models, message, system):
    instruct, _, tokenizer = models
    view = chat_view(instruct, tokenizer, message, system=system, max_new_tokens=40)
    session = ChatSession(instruct, tokenizer, system=system, max_new_tokens=40)
    assert view.reply == session.send(message)
    assert list(view.prompt_ids) == session.last_prompt
    messages = [] if system is None else [{"role": "system", "content": system}]
    ids, _ = encode_dialogue(
        tokenizer, [*messages, {"role": "user", "content": message}], add_generation_prompt=True
    )
    assert list(view.prompt_ids) == ids and ids[-1] == tokenizer.specials["<|assistant|>"]
    out, stopped = greedy_by_hand(instruct, ids, 40, tokenizer.specials[END])
    assert list(view.reply_ids) == out and view.stopped == stopped
    assert view.reply == tokenizer.decode(out)
    assert view.n_prompt_tokens == len(ids) and view.n_reply_tokens == len(out) + stopped
    assert view.base_ids is None and view.base_reply is None


def test_the_model_answers_a_trained_instruction(models):
    instruct, _, tokenizer = models
    view = chat_view(instruct, tokenizer, CAPITALS)
    letters = CAPITALS.split("\n")[1]
    assert view.reply == letters.upper() and view.stopped


def test_a_short_limit_cuts_the_reply(models):
    instruct, _, tokenizer = models
    full = chat_view(instruct, tokenizer, CAPITALS, max_new_tokens=32)
    cut = chat_view(instruct, tokenizer, CAPITALS, max_new_tokens=2)
    assert full.stopped and len(full.reply_ids) > 2
    assert not cut.stopped and cut.reply_ids == full.reply_ids[:2] and cut.n_reply_tokens == 2
    assert "cut at max_new_tokens = 2" in chat_html(cut, tokenizer)
    assert f"ended with {html.escape(END)}" in chat_html(full, tokenizer)


def test_sampling_is_seeded_and_is_the_sessions(models):
    instruct, fewshot, tokenizer = models
    message = "Reverse the letters.\nd o g s"
    replies = set()
    for seed in range(6):
        view = chat_view(instruct, tokenizer, message, temperature=1.5, seed=seed, base=fewshot)
        again = chat_view(instruct, tokenizer, message, temperature=1.5, seed=seed, base=fewshot)
        assert view == again  # the same seed, the same replies
        session = ChatSession(instruct, tokenizer, temperature=1.5, seed=seed)
        assert view.reply == session.send(message)
        replies.add(view.reply)
    assert len(replies) > 1  # different seeds draw different replies
    assert settings_text(view) == "sampled at τ = 1.50, seed 5"


def test_the_base_model_continues_the_plain_message(models):
    instruct, fewshot, tokenizer = models
    view = chat_view(instruct, tokenizer, CAPITALS, base=fewshot, max_new_tokens=12)
    end = tokenizer.specials[END]
    out, stopped = greedy_by_hand(fewshot, [end, *tokenizer.encode(CAPITALS)], 12, end)
    assert list(view.base_ids) == out and view.base_stopped == stopped
    assert view.base_reply == tokenizer.decode(out)
    page = chat_html(view, tokenizer)
    assert 'class="chat-base"' in page and html.escape(view.base_reply) in page


def badges(page):
    return re.findall(r'<span class="chat-special"[^>]*>(.*?)</span>', page)


def test_the_html_escapes_what_the_user_types(models):
    instruct, _, tokenizer = models
    message = 'Hi <script>alert("x")</script> & <|assistant|> <b>bold</b>'
    view = chat_view(instruct, tokenizer, message, max_new_tokens=8)
    page = chat_html(view, tokenizer)
    assert "<script>" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page and "&amp;" in page
    # the typed <|assistant|> is text, not a turn: only the template's tokens are marked
    end, user, assistant = (html.escape(t) for t in (END, "<|user|>", "<|assistant|>"))
    prompt = page.split('class="chat-prompt"')[1].split("</div>")[0]
    assert badges(prompt) == [end, user, assistant]
    assert "&lt;|assistant|&gt; &lt;b&gt;bold" in prompt
    assert view.prompt_ids.count(tokenizer.specials["<|assistant|>"]) == 1


def test_tokens_html_marks_specials_and_keeps_the_text(models):
    _, _, tokenizer = models
    messages = [
        {"role": "system", "content": "Be exact."},
        {"role": "user", "content": "Give the plural.\ncat"},
        {"role": "assistant", "content": "cats"},
    ]
    ids, _ = encode_dialogue(tokenizer, messages)
    page = tokens_html(tokenizer, ids)
    specials = {i: s for s, i in tokenizer.specials.items()}
    assert badges(page) == [html.escape(specials[i]) for i in ids if i in specials]
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    assert text == tokenizer.decode(ids)  # badges hold the specials' own text


def test_views_are_validated(models):
    instruct, _, tokenizer = models
    with pytest.raises(ValueError, match="message must be a non-empty str"):
        chat_view(instruct, tokenizer, "  \n")
    with pytest.raises(ValueError, match="message must be a non-empty str"):
        chat_view(instruct, tokenizer, None)
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        chat_view(instruct, tokenizer, CAPITALS, temperature=0.0)
    with pytest.raises(ValueError, match="max_new_tokens must be an integer >= 1"):
        chat_view(instruct, tokenizer, CAPITALS, max_new_tokens=0)
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        chat_view(instruct, tokenizer, CAPITALS, seed=-1)
    with pytest.raises(ValueError, match="system must be a str or None"):
        chat_view(instruct, tokenizer, CAPITALS, system=3)
    window = instruct.config.block_size
    with pytest.raises(ValueError, match=f"more than the model's context of {window} tokens"):
        chat_view(instruct, tokenizer, "a b " * window)


def test_the_widget_redraws_when_a_control_moves(models):
    instruct, fewshot, tokenizer = models
    explorer = explore_chat(instruct, tokenizer, CAPITALS.replace("\n", LINE_BREAK), base=fewshot)
    assert list(explorer.controls) == [
        "message", "decoding", "temperature", "max_new_tokens", "seed", "show_base"
    ]  # fmt: skip
    greedy = chat_view(instruct, tokenizer, CAPITALS, max_new_tokens=32)
    assert explorer.rendering.mime == "text/html"
    assert explorer.rendering.text == f"{greedy.n_reply_tokens} reply tokens (greedy): 'B A D'"
    assert 'class="chat-base"' in explorer.rendering.data
    explorer.controls["show_base"].value = False
    assert 'class="chat-base"' not in explorer.output.outputs[0]["data"]["text/html"]
    explorer.controls["decoding"].value = "sample"
    explorer.controls["seed"].value = 3
    sampled = chat_view(instruct, tokenizer, CAPITALS, temperature=1.0, seed=3, max_new_tokens=32)
    assert explorer.rendering.text == (
        f"{sampled.n_reply_tokens} reply tokens (sampled at τ = 1.00, seed 3): {sampled.reply!r}"
    )
    explorer.controls["max_new_tokens"].value = 1
    assert explorer.rendering.text.startswith("1 reply token (sampled")
    explorer.controls["message"].value = "   "
    assert explorer.rendering.text.startswith("no reply: message must be a non-empty str")
    assert "<b>No reply:</b>" in explorer.rendering.data
    assert set(explorer._repr_mimebundle_()) == {"text/plain", WIDGET_VIEW, "text/html"}


def test_the_widget_without_a_base_model_and_its_checks(models):
    instruct, _, tokenizer = models
    explorer = explore_chat(instruct, tokenizer)
    assert "show_base" not in explorer.controls
    assert explorer.controls["max_new_tokens"].max == 128
    with pytest.raises(ValueError, match="decoding must be 'greedy' or 'sample'"):
        explore_chat(instruct, tokenizer, decoding="beam")
    with pytest.raises(ValueError, match=r"max_new_tokens must be an integer in \[1, 128\]"):
        explore_chat(instruct, tokenizer, max_new_tokens=200)
    assert isinstance(chat_view(instruct, tokenizer, CAPITALS), ChatView)
