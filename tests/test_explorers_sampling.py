"""Tests of llmcourse.explorers.sampling: the view equals the distribution the sampler draws
from, and the widget redraws on the shipped model."""

from __future__ import annotations

import base64
import math

import pytest
import torch

from llmcourse.data import EOT
from llmcourse.explorers import (
    WIDGET_VIEW,
    SamplingChart,
    entropy_nats,
    explore_sampling,
    next_token_logits,
    sampling_view,
    token_label,
)
from llmcourse.explorers.sampling import PROBABILITY_RANGE
from llmcourse.generation import process_logits, sample_next
from llmcourse.models import load_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shipped():
    model, tokenizer = load_pretrained()
    eot = tokenizer.specials[EOT]
    return model, (lambda text: [eot, *tokenizer.encode(text)]), tokenizer.decode


def test_a_view_of_a_small_distribution_by_hand():
    logits = torch.tensor([0.5, 0.3, 0.12, 0.05, 0.03]).log()
    view = sampling_view(logits, top_p=0.85)  # 0.5 + 0.3 = 0.8 < 0.85: three tokens
    assert view.kept.tolist() == [True, True, True, False, False]
    assert view.n_kept == 3
    assert view.kept_mass == pytest.approx(0.92)
    assert view.filtered.tolist() == pytest.approx([0.5 / 0.92, 0.3 / 0.92, 0.12 / 0.92, 0, 0])
    assert view.entropy == pytest.approx(-sum(p * math.log(p) for p in (0.5, 0.3, 0.12)) / 0.92
                                         + math.log(0.92))  # fmt: skip
    assert torch.allclose(
        view.probs, torch.tensor([0.5, 0.3, 0.12, 0.05, 0.03], dtype=torch.float64)
    )


@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(temperature=0.5),
        dict(temperature=2.0, top_k=40),
        dict(top_p=0.9),
        dict(temperature=0.7, min_p=0.1),
        dict(temperature=1.3, top_k=50, top_p=0.95, min_p=0.05),
    ],
)
def test_the_view_is_what_the_sampler_draws_from(shipped, settings):
    model, encode, _ = shipped
    logits = next_token_logits(model, encode("The function returns"))
    view = sampling_view(logits, **settings)
    processed = process_logits(logits.double(), **settings)
    assert torch.equal(view.filtered, processed.softmax(-1))
    assert torch.equal(view.kept, processed > -math.inf)
    tempered = (logits.double() / settings.get("temperature", 1.0)).softmax(-1)
    assert torch.allclose(view.tempered, tempered)
    assert view.kept_mass == pytest.approx(float(tempered[view.kept].sum()))
    assert view.n_kept == int(view.kept.sum())
    assert view.entropy == pytest.approx(entropy_nats(view.filtered))
    # and the sampler's draws fall only on kept tokens
    draws = sample_next(logits.expand(2000, -1), generator=torch.Generator().manual_seed(0),
                        **settings)  # fmt: skip
    assert view.kept[draws].all()


def test_the_filters_do_what_the_chapter_says(shipped):
    model, encode, decode = shipped
    logits = next_token_logits(model, encode("The function returns"))
    plain = sampling_view(logits)
    assert plain.n_kept == 2048 and plain.kept_mass == pytest.approx(1.0)
    top3 = {decode([i]) for i in plain.probs.topk(3).indices.tolist()}
    assert top3 == {" a", " an", " the"}
    # colder is sharper, hotter is flatter; temperature alone removes nothing
    assert sampling_view(logits, 0.5).entropy < plain.entropy < sampling_view(logits, 2.0).entropy
    assert sampling_view(logits, 2.0).n_kept == 2048
    # top-k keeps k, top-p reaches its mass, min-p keeps fewer when the model is sure
    assert sampling_view(logits, top_k=5).n_kept == 5
    nucleus = sampling_view(logits, top_p=0.5)
    assert nucleus.kept_mass >= 0.5 and nucleus.n_kept == 2  # " a" and " an"
    strict, loose = sampling_view(logits, min_p=0.3), sampling_view(logits, min_p=0.01)
    assert strict.n_kept == 3 < loose.n_kept


def test_views_are_validated():
    with pytest.raises(ValueError, match=r"logits must be a \(vocab,\) tensor"):
        sampling_view(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="top_p must be in"):
        sampling_view(torch.zeros(5), top_p=0.0)
    with pytest.raises(ValueError, match="ids must hold at least one token id"):
        next_token_logits(torch.nn.Identity(), [])


def test_token_labels():
    assert token_label(" the") == "␣the"
    assert token_label("\n") == "⏎"
    assert token_label("'") == "'"


def test_the_chart_draws_bars_of_the_top_tokens(shipped):
    model, encode, _ = shipped
    view = sampling_view(next_token_logits(model, encode("the cat")), 0.8, top_k=3)
    chart = SamplingChart(5)
    chart.update(view, list("abcde"), "title")
    order = view.probs.topk(5).indices
    heights = [bar.get_height() for bar in chart.model_bars]
    assert heights == pytest.approx(view.probs[order].tolist())
    sampled = [bar.get_height() for bar in chart.sampled_bars]
    assert sampled == pytest.approx(view.filtered[order].tolist())
    assert sampled[3:] == [0, 0]  # top-k = 3
    assert [t.get_text() for t in chart.ax.get_xticklabels()] == list("abcde")
    assert "kept 3 tokens" in chart.title.get_text()
    assert chart.ax.get_ylim() == pytest.approx(PROBABILITY_RANGE)  # fixed: bars only move
    png = base64.b64decode(chart.rendering(view, list("abcde"), "title", "x").data)
    assert png[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="labels must name the 5 tokens"):
        chart.update(view, ["a"])


def test_the_widget_redraws_when_a_slider_moves(shipped):
    model, encode, decode = shipped
    explorer = explore_sampling(model, encode, decode, "The function returns")
    first = list(explorer.controls)[1]
    assert first == "temperature"  # the first slider, which the JupyterLab test moves
    before = explorer.output.outputs[0]["data"]["image/png"]
    assert explorer.rendering.text == "2048 tokens kept after 'The function returns'"
    explorer.controls["top_p"].value = 0.5
    assert explorer.rendering.text == "2 tokens kept after 'The function returns'"
    explorer.controls["top_p"].value = 1.0
    explorer.controls["temperature"].value = 0.5
    assert explorer.output.outputs[0]["data"]["image/png"] != before
    explorer.controls["top_k"].value = 7
    assert explorer.rendering.text.startswith("7 tokens kept")
    explorer.controls["top_k"].value = 0
    explorer.controls["min_p"].value = 0.3
    assert explorer.rendering.text.startswith("3 tokens kept")
    explorer.controls["prompt"].value = "the cat"
    assert explorer.rendering.text.endswith("after 'the cat'")
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == {"text/plain", WIDGET_VIEW, "image/png"}
