"""Tests of llmcourse.explorers.attention: the weights are a causal attention distribution,
they are the weights the model's own forward pass uses (the fused path) and what PyTorch's
scaled_dot_product_attention computes from the same queries and keys, and the widget
shows them."""

from __future__ import annotations

import base64
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_models import random_gpt

from llmcourse.data import EOT
from llmcourse.explorers import (
    WIDGET_VIEW,
    AttentionChart,
    attention_label,
    attention_view,
    attention_weights,
    explore_attention,
)
from llmcourse.models import BERT, GPT, llama_config, load_pretrained
from llmcourse.modules import TransformerConfig, merge_heads, split_heads

pytestmark = pytest.mark.usefixtures("one_thread")

SENTENCE = "the writers near the clever child are happy ."


@pytest.fixture(scope="module")
def shipped():
    model, tokenizer = load_pretrained()
    eot = tokenizer.specials[EOT]
    return model, (lambda text: [eot, *tokenizer.encode(text)]), tokenizer.decode


@pytest.fixture(scope="module", params=["shipped", "learned positions", "grouped-query"])
def model(request):
    """The shipped GPT (rotary positions) and two random ones: learned positions, and a
    Llama-style one with grouped-query attention (2 key-value heads for 4 query heads)."""
    if request.param == "shipped":
        return load_pretrained()[0]
    if request.param == "learned positions":
        return random_gpt(vocab_size=50, block_size=16, scale=3.0).eval()
    torch.manual_seed(0)
    return GPT(llama_config(50, 16, d_model=16, n_heads=4, n_layers=3, n_kv_heads=2)).eval()


def ids_for(model, n=11, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.config.vocab_size, (n,), generator=g).tolist()


def capture_attention_inputs(model, ids):
    """Run ``model`` on ``ids`` WITHOUT recording (the fused kernel) and capture, per layer,
    the queries and keys as the attention compares them (after rotary embeddings), the
    values, and the input of the output projection ``w_o`` (the heads concatenated)."""
    seen = {}
    hooks = []
    for index, block in enumerate(model.transformer.blocks):
        attn = block.attn
        store = seen.setdefault(index, {})

        def keep(name, store=store):
            return lambda module, args, out: store.__setitem__(name, out.detach())

        hooks.append(attn.w_q.register_forward_hook(keep("q")))
        hooks.append(attn.w_k.register_forward_hook(keep("k")))
        hooks.append(attn.w_v.register_forward_hook(keep("v")))
        hooks.append(
            attn.w_o.register_forward_hook(
                lambda module, args, out, store=store: store.__setitem__("heads", args[0])
            )
        )
        if attn.rope is not None:  # called twice per forward pass: queries, then keys

            def rotated(module, args, out, store=store):
                store.setdefault("rotated", []).append(out.detach())

            hooks.append(attn.rope.register_forward_hook(rotated))
    try:
        with torch.no_grad():
            model(torch.tensor([ids]))
    finally:
        for hook in hooks:
            hook.remove()
    layers = []
    for index, block in enumerate(model.transformer.blocks):
        attn, store = block.attn, seen[index]
        q = split_heads(store["q"], attn.n_heads)
        k = split_heads(store["k"], attn.n_kv_heads)
        if attn.rope is not None:
            q, k = store["rotated"]
        layers.append((q, k, split_heads(store["v"], attn.n_kv_heads), store["heads"]))
    return layers


def test_the_weights_are_causal_distributions(model):
    ids = ids_for(model)
    weights = attention_weights(model, ids)
    n_layers, n_heads = model.config.n_layers, model.config.n_heads
    assert weights.shape == (n_layers, n_heads, 11, 11)
    assert weights.dtype == torch.float32 and not weights.requires_grad
    above = torch.ones(11, 11, dtype=torch.bool).triu(diagonal=1)
    assert (weights[..., above] == 0).all()  # exactly: the mask sets -inf before the softmax
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(n_layers, n_heads, 11))
    assert torch.equal(weights[..., 0, 0], torch.ones(n_layers, n_heads))  # sees only itself
    assert not model.training
    assert all(not b.attn.record_weights for b in model.transformer.blocks)  # switched back


def test_the_weights_reproduce_the_models_own_attention_output(model):
    """weights @ V equals the heads that the fused kernel computed in an ordinary forward
    pass (the input of the output projection)."""
    ids = ids_for(model, seed=1)
    weights = attention_weights(model, ids)
    for layer, (_, _, v, heads) in enumerate(capture_attention_inputs(model, ids)):
        n_rep = weights.shape[1] // v.shape[1]
        v = v.repeat_interleave(n_rep, dim=1)  # each key-value head serves n_rep query heads
        torch.testing.assert_close(merge_heads(weights[layer][None] @ v), heads, atol=2e-5, rtol=0)


def test_the_weights_equal_torch_scaled_dot_product_attention(model):
    """PyTorch's fused attention of the same queries and keys, with the identity matrix
    as the values, returns the weights themselves."""
    ids = ids_for(model, seed=2)
    weights = attention_weights(model, ids)
    for layer, (q, k, _, _) in enumerate(capture_attention_inputs(model, ids)):
        eye = torch.eye(len(ids)).expand(1, k.shape[1], -1, -1)
        gqa = k.shape[1] != q.shape[1]
        theirs = F.scaled_dot_product_attention(q, k, eye, is_causal=True, enable_gqa=gqa)
        torch.testing.assert_close(weights[layer][None], theirs, atol=2e-6, rtol=0)
        # and by hand, once: softmax(q k^T / sqrt(d_head)) under the causal mask
        if not gqa:
            scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            scores = scores.masked_fill(~torch.ones(len(ids), len(ids)).tril().bool(), -math.inf)
            torch.testing.assert_close(weights[layer][None], scores.softmax(-1))


def test_recording_does_not_change_the_models_output(shipped):
    model, encode, _ = shipped
    ids = encode(SENTENCE)
    with torch.no_grad():
        before = model(torch.tensor([ids]))
    attention_weights(model, ids)
    with torch.no_grad():
        assert torch.equal(model(torch.tensor([ids])), before)


def test_the_view_labels_the_tokens_and_picks_a_head(shipped):
    model, encode, decode = shipped
    view = attention_view(model, encode, decode, SENTENCE)
    assert view.ids == encode(SENTENCE)
    assert view.labels[0] == "<eot>" and view.labels[1] == "the"
    assert view.labels[2] == "␣writers" and len(view.labels) == len(view.ids)
    assert torch.equal(view.weights, attention_weights(model, view.ids))
    assert (view.n_layers, view.n_heads) == (4, 4)
    one = view.maps(2, 1)
    assert one.layer == 2 and one.heads == [1]
    assert torch.equal(one.maps, view.weights[2, 1:2])
    last = view.weights[2, 1, -1]
    assert one.strongest == [int(last.argmax())]
    assert one.strongest_weight == [pytest.approx(float(last.max()))]
    every = view.maps(3)
    assert every.heads == [0, 1, 2, 3] and torch.equal(every.maps, view.weights[3])
    assert every.strongest == view.weights[3, :, -1].argmax(-1).tolist()


def test_labels():
    assert attention_label(EOT) == "<eot>"
    assert attention_label(" the") == "␣the"
    assert attention_label("\n") == "⏎"


def test_inputs_are_validated(shipped):
    model, encode, decode = shipped
    with pytest.raises(ValueError, match="the text is empty"):
        attention_view(model, encode, decode, "")
    with pytest.raises(ValueError, match="the text is empty"):
        attention_view(model, encode, decode, "  \n")
    with pytest.raises(TypeError, match="text must be a str"):
        attention_view(model, encode, decode, None)
    with pytest.raises(
        ValueError, match="the text is 201 tokens long; the model reads at most 128"
    ):
        attention_view(model, encode, decode, " cat" * 200)
    with pytest.raises(ValueError, match="ids must be a non-empty list of token ids"):
        attention_weights(model, [])
    with pytest.raises(ValueError, match="ids must be a non-empty list"):
        attention_weights(model, [1.5, 2])
    with pytest.raises(ValueError, match="the model reads at most 128 tokens, got 129"):
        attention_weights(model, [1] * 129)
    with pytest.raises(ValueError, match="no MultiHeadAttention layer"):
        attention_weights(torch.nn.Linear(2, 2), [1])
    view = attention_view(model, encode, decode, "the cat")
    with pytest.raises(ValueError, match=r"layer must be an integer in \[0, 4\), got 4"):
        view.maps(4)
    with pytest.raises(ValueError, match=r"layer must be an integer in \[0, 4\), got -1"):
        view.maps(-1, 0)
    with pytest.raises(ValueError, match=r"head must be an integer in \[0, 4\) or None"):
        view.maps(0, 4)
    with pytest.raises(ValueError, match="layer must be an integer"):
        view.maps(True, 0)
    # an encoder: no mask, so the weights above the diagonal are not zero
    torch.manual_seed(0)
    encoder = BERT(TransformerConfig(50, 8, 16, 2, 1))
    weights = attention_weights(encoder, [1, 2, 3])
    above = torch.ones(3, 3, dtype=torch.bool).triu(diagonal=1)
    assert weights.shape == (1, 2, 3, 3) and (weights[..., above] > 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 3))


def test_the_chart_draws_the_maps_with_the_tokens(shipped):
    model, encode, decode = shipped
    view = attention_view(model, encode, decode, SENTENCE)
    chart = AttentionChart(4)
    shown = chart.update(view, 1, 3)
    (image,) = chart.images["one"]
    assert torch.equal(torch.as_tensor(image.get_array()), view.weights[1, 3])
    ax = chart.axes["one"][0]
    assert [t.get_text() for t in ax.get_xticklabels()] == view.labels
    assert [t.get_text() for t in ax.get_yticklabels()] == view.labels
    assert image.get_clim() == (0, 1)  # a fixed scale: heads are comparable
    j = shown.strongest[0]
    assert "layer 2, head 4" in chart.titles["one"].get_text()
    assert f"attends most to {view.labels[j]} ({shown.strongest_weight[0]:.2f})" in (
        chart.titles["one"].get_text()
    )
    background = chart.blitters["one"].background
    chart.update(view, 0, 0)  # same tokens: the background is kept
    assert chart.blitters["one"].background is background
    chart.update(view, 3, None)
    for head, image in enumerate(chart.images["all"]):
        assert torch.equal(torch.as_tensor(image.get_array()), view.weights[3, head])
    assert chart.titles["all"].get_text().startswith("layer 4, all heads")
    png = base64.b64decode(chart.rendering(view, 3, None).data)
    assert png[:4] == b"\x89PNG"
    shorter = attention_view(model, encode, decode, "the cat")
    chart.update(shorter, 0, 0)  # new tokens: new ticks and limits
    assert [t.get_text() for t in ax.get_xticklabels()] == ["<eot>", "the", "␣cat"]
    assert ax.get_xlim() == (-0.5, 2.5)
    with pytest.raises(ValueError, match="the chart has 2 heads, the view 4"):
        AttentionChart(2).update(view, 0, 0)


def test_the_widget_redraws_when_a_control_moves(shipped):
    model, encode, decode = shipped
    explorer = explore_attention(model, encode, decode, SENTENCE, layer=3)
    assert explorer.values == {"text": SENTENCE, "layer": 3, "head": "all"}
    assert list(explorer.controls["layer"].options) == [("1", 0), ("2", 1), ("3", 2), ("4", 3)]
    before = explorer.output.outputs[0]["data"]["image/png"]
    assert explorer.rendering.text.startswith(f"layer 4, all heads on {SENTENCE!r}")
    explorer.controls["head"].value = 1
    view = attention_view(model, encode, decode, SENTENCE)
    j = int(view.weights[3, 1, -1].argmax())
    assert explorer.rendering.text == (
        f"layer 4, head 2 on {SENTENCE!r}: the last token attends most to "
        f"{view.labels[j]} ({float(view.weights[3, 1, -1, j]):.2f})"
    )
    assert explorer.output.outputs[0]["data"]["image/png"] != before
    explorer.controls["layer"].value = 0
    assert explorer.rendering.text.startswith("layer 1, head 2")
    explorer.controls["text"].value = "the cat"
    assert "on 'the cat'" in explorer.rendering.text
    explorer.controls["text"].value = " "
    assert explorer.rendering.mime == "text/html"
    assert "the text is empty" in explorer.output.outputs[0]["data"]["text/html"]
    explorer.controls["text"].value = "the cat"
    assert explorer.rendering.mime == "image/png"
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == {"text/plain", WIDGET_VIEW, "image/png"}
    with pytest.raises(ValueError, match="head must be an integer"):
        explore_attention(model, encode, decode, head=7)
    with pytest.raises(ValueError, match="the text is empty"):
        explore_attention(model, encode, decode, "")
