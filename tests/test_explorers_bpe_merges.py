"""Tests of llmcourse.explorers.bpe_merges: BPE merges learned from a text and stepped one at
a time, against the package's trainer and tokenizer, and the widget."""

from __future__ import annotations

import pytest

from llmcourse.explorers import WIDGET_VIEW, bpe_html, bpe_step, explore_bpe, segment, text_merges
from llmcourse.text import BPETokenizer, PairCounts, count_words
from llmcourse.text.bytelevel import BYTE_ID

PHRASES = "the car the cat the rat"
DOCS = (
    "The function returns the value of the attribute; the functions return values. "
    "If the attribute is not found, the function raises an exception."
)


def test_the_three_phrases_step_by_step():
    # Byte-level pre-tokens: "the", " car", " the", " cat", " the", " rat".
    merges = text_merges(PHRASES)
    assert merges[:2] == ((b"h", b"e"), (b"t", b"he"))
    start = bpe_step(PHRASES, 0)
    assert start.last is None and start.count == 0
    assert start.n_tokens == start.n_bytes == len(PHRASES)
    second = bpe_step(PHRASES, 2)
    assert second.last == (b"t", b"he") and second.count == 3
    assert second.words[0] == (b"the",) and second.words[2] == (b" ", b"the")
    assert second.new[0] == (True,) and second.new[1] == (False, False, False, False)
    done = bpe_step(PHRASES, len(merges))
    assert all(len(word) == 1 for word in done.words)  # every pre-token is one token


def test_the_merges_are_the_trainers_and_the_tokens_the_tokenizers():
    merges = text_merges(DOCS, 40)
    assert len(merges) == 40 and len(text_merges(DOCS)) < 400  # no pair is left before 400
    for n in (0, 1, 7, 20, 40):
        tokenizer = BPETokenizer.train([DOCS], vocab_size=256 + n)
        assert list(merges[:n]) == tokenizer.merges
        step = bpe_step(DOCS, n, 40)
        flat = [token for word in step.words for token in word]
        assert flat == [tokenizer.vocab[i] for i in tokenizer.encode(DOCS)]
        assert b"".join(flat) == DOCS.encode()


def test_the_count_is_the_trainers_count_and_each_merge_saves_it():
    merges = text_merges(DOCS, 40)
    words = count_words([DOCS])
    pairs = PairCounts([[BYTE_ID[b] for b in w] for w in words], list(words.values()))
    ids = {bytes([b]): BYTE_ID[b] for b in range(256)}
    for n, (left, right) in enumerate(merges, start=1):
        step = bpe_step(DOCS, n, 40)
        pair = (ids[left], ids[right])
        assert step.count == pairs.counts[pair] > 0
        before = bpe_step(DOCS, n - 1, 40)
        if left != right:  # a merge of two different tokens shortens the text by its count
            assert before.n_tokens - step.n_tokens == step.count
        ids.setdefault(left + right, len(ids))  # a repeated spelling keeps its id
        pairs.merge(pair, ids[left + right])


def test_segment_and_html():
    assert segment("the cat", [(b"h", b"e"), (b"t", b"he")]) == [[b"the"], [b" ", b"c", b"a", b"t"]]
    page = bpe_html(bpe_step("a <b> & a <b>", 2))  # the text's markup is escaped
    assert "<b>" not in page and "&lt;" in page and "&amp;" in page
    first = bpe_html(bpe_step(PHRASES, 0))
    assert first.startswith("<div><p>No merge yet: the text is its 23 bytes.")
    second = bpe_html(bpe_step(PHRASES, 2))
    assert "Merge 2 of 10: <code>t</code> + <code>he</code> &rarr; <code>the</code>" in second
    assert second.count("outline:2px") == 3  # the three new tokens "the"
    assert "Ġ" in second  # spaces spelled as in the chapter


def test_steps_are_validated():
    with pytest.raises(ValueError, match=r"n_merges must be at most 10"):
        bpe_step(PHRASES, 11)
    with pytest.raises(ValueError, match=r"n_merges must be an integer >= 0"):
        bpe_step(PHRASES, -1)
    with pytest.raises(TypeError, match="text must be a str"):
        text_merges(b"bytes")


def test_the_widget_steps_and_follows_a_new_text():
    explorer = explore_bpe(DOCS, 5)
    slider = explorer.controls["n_merges"]
    assert slider.max == len(text_merges(DOCS))
    assert explorer.rendering.mime == "text/html"
    assert explorer.rendering.text.startswith("5 merges")
    slider.value = 6
    assert "Merge 6 of" in explorer.output.outputs[0]["data"]["text/html"]
    slider.value = slider.max
    explorer.controls["text"].value = PHRASES  # 10 merges only: the slider follows
    assert (slider.max, slider.value) == (10, 10)
    assert explorer.rendering.text == "10 merges: 23 bytes, 6 tokens"
    assert set(explorer._repr_mimebundle_()) == {"text/plain", WIDGET_VIEW, "text/html"}
    with pytest.raises(ValueError, match=r"n_merges must be in \[0, 10\]"):
        explore_bpe(PHRASES, 11)
