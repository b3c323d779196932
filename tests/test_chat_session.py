"""A conversation with a chat model, and the chat box (llmcourse.prompting.chat_session)."""

import pytest
import torch
from tiny_models import random_gpt

from llmcourse.generation import greedy
from llmcourse.models import load_pretrained
from llmcourse.prompting.chat import encode_dialogue, reply_text
from llmcourse.prompting.chat_session import ChatSession, chat_widget


@pytest.fixture(scope="module")
def tokenizer():
    return load_pretrained()[1]


@pytest.fixture(scope="module")
def model(tokenizer):
    return random_gpt(seed=1, vocab_size=len(tokenizer), block_size=64).eval()


def test_a_reply_is_the_greedy_continuation_of_the_whole_dialogue(model, tokenizer):
    session = ChatSession(model, tokenizer, system="Be brief.", max_new_tokens=5)
    first = session.send("Reverse the letters.\nd o g")
    second = session.send("Give the plural.\ncat")
    roles = [m["role"] for m in session.messages]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert session.messages[2]["content"] == first and session.messages[4]["content"] == second
    # By hand: the dialogue before the second reply, then greedy decoding.
    ids, _ = encode_dialogue(tokenizer, session.messages[:4], add_generation_prompt=True)
    out = greedy(model, torch.tensor([ids]), 5, eos_id=tokenizer.specials["<|endoftext|>"])
    assert second == reply_text(tokenizer, out[0, len(ids) :].tolist())
    assert session.transcript().splitlines()[1] == "user: Reverse the letters. / d o g"


def test_the_oldest_exchanges_are_dropped_when_the_context_is_full(model, tokenizer):
    session = ChatSession(model, tokenizer, system="Be brief.", max_new_tokens=8)
    for i in range(6):
        session.send(f"Give the plural.\ncat number {i}")
    ids = session.last_prompt
    assert len(ids) + 8 <= 64
    text = tokenizer.decode(ids)
    assert text.startswith("<|endoftext|><|system|>Be brief.")  # the system message stays
    assert "cat number 5" in text and "cat number 0" not in text
    assert len(session.messages) == 13  # the session keeps everything; the prompt is cut
    with pytest.raises(ValueError, match="the message is too long"):
        session.send("a " * 80)
    assert len(session.messages) == 13  # the refused message is not kept
    session.reset()
    assert session.messages == [{"role": "system", "content": "Be brief."}]


def test_sampled_replies_are_seeded(model, tokenizer):
    replies = [
        ChatSession(model, tokenizer, temperature=1.0, seed=3).send("hello") for _ in range(2)
    ]
    assert replies[0] == replies[1]
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        ChatSession(model, tokenizer, temperature=0.0)
    with pytest.raises(ValueError, match="smaller than the context"):
        ChatSession(model, tokenizer, max_new_tokens=64)
    with pytest.raises(ValueError, match="non-empty str"):
        ChatSession(model, tokenizer).send("  ")


def test_the_chat_box_sends_from_the_field_the_button_and_its_send(model, tokenizer):
    session = ChatSession(model, tokenizer, max_new_tokens=4)
    box = chat_widget(session)
    log = box.children[0]
    field, button, clear = box.children[1].children
    reply = box.send("Give the plural. / cat")
    assert session.messages[0]["content"] == "Give the plural.\ncat"  # " / " is a line break
    assert log.value == session.transcript() and reply in log.value
    field.value = "Sort the letters. / d a c"  # what pressing Enter does
    assert len(session.messages) == 4 and field.value == ""
    field.value = "Copy the letters. / a b"
    button.click()
    assert len(session.messages) == 6
    clear.click()
    assert session.messages == [] and log.value == ""
