import itertools

import pytest
import torch
import torch.nn.functional as F

from llmcourse.data import IGNORE_INDEX
from llmcourse.models import (
    BERT,
    GPT,
    FineTuner,
    SequenceClassificationHead,
    SpanQAHead,
    TokenClassificationHead,
    align_labels_to_subwords,
    best_span,
    encode_words,
    load_pretrained,
    pool_hidden,
    span_qa_loss,
)
from llmcourse.modules import TransformerConfig


@pytest.fixture
def hidden():
    return torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(0))


PADDING = torch.tensor(
    [[True] * 5, [True, True, True, False, False], [True, False, False, False, False]]
)


def test_pool_hidden_by_hand(hidden):
    assert torch.equal(pool_hidden(hidden, "first"), hidden[:, 0])
    assert torch.equal(pool_hidden(hidden, "last"), hidden[:, -1])
    last = pool_hidden(hidden, "last", PADDING)
    assert torch.equal(last, torch.stack([hidden[0, 4], hidden[1, 2], hidden[2, 0]]))
    mean = pool_hidden(hidden, "mean", PADDING)
    expected = torch.stack([hidden[0].mean(0), hidden[1, :3].mean(0), hidden[2, 0]])
    assert torch.allclose(mean, expected, atol=1e-6)


def test_pool_hidden_errors(hidden):
    with pytest.raises(ValueError, match="how must be one of"):
        pool_hidden(hidden, "max")
    with pytest.raises(ValueError, match=r"hidden must be \(batch, time, d_model\)"):
        pool_hidden(hidden[0])
    with pytest.raises(ValueError, match="padding_mask must be a bool tensor of shape"):
        pool_hidden(hidden, "first", PADDING.long())
    with pytest.raises(ValueError, match="at least one real token"):
        pool_hidden(hidden, "mean", torch.zeros(3, 5, dtype=torch.bool))


def test_sequence_head_reads_only_the_first_token(hidden):
    torch.manual_seed(0)
    head = SequenceClassificationHead(4, 3)
    logits = head(hidden)
    assert logits.shape == (3, 3)
    changed = hidden.clone()
    changed[:, 1:] += 10.0
    assert torch.equal(head(changed), logits)
    assert torch.allclose(logits, hidden[:, 0] @ head.linear.weight.T + head.linear.bias)


def test_head_arguments_are_checked():
    with pytest.raises(ValueError, match="n_classes >= 2"):
        SequenceClassificationHead(4, 1)
    with pytest.raises(ValueError, match="pool must be one of"):
        SequenceClassificationHead(4, 2, pool="max")
    with pytest.raises(ValueError, match="n_labels >= 2"):
        TokenClassificationHead(4, 1)
    with pytest.raises(ValueError, match="d_model must be >= 1"):
        SpanQAHead(0)


def test_token_head_and_ignored_labels(hidden):
    torch.manual_seed(0)
    head = TokenClassificationHead(4, 7)
    logits = head(hidden)
    assert logits.shape == (3, 5, 7)
    labels = torch.full((3, 5), IGNORE_INDEX)
    labels[0, 1], labels[2, 3] = 4, 6
    logits = logits.detach().requires_grad_()
    loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
    expected = -(logits[0, 1].log_softmax(-1)[4] + logits[2, 3].log_softmax(-1)[6]) / 2
    assert torch.allclose(loss, expected, atol=1e-6)
    loss.backward()
    touched = logits.grad.abs().sum(-1) > 0
    assert touched.nonzero().tolist() == [[0, 1], [2, 3]]


def test_span_head_scores_and_padding(hidden):
    torch.manual_seed(0)
    head = SpanQAHead(4)
    logits = head(hidden, PADDING)
    assert logits.shape == (3, 5, 2)
    assert torch.allclose(logits[0, :, 0], hidden[0] @ head.start)
    assert torch.allclose(logits[0, :, 1], hidden[0] @ head.end)
    assert torch.isinf(logits[~PADDING]).all() and torch.isfinite(logits[PADDING]).all()


def test_span_qa_loss_by_hand(hidden):
    logits = torch.randn(3, 5, 2, generator=torch.Generator().manual_seed(1))
    starts, ends = torch.tensor([0, 2, 1]), torch.tensor([3, 2, 4])
    lp = logits.log_softmax(dim=1)
    expected = -(lp[torch.arange(3), starts, 0].mean() + lp[torch.arange(3), ends, 1].mean()) / 2
    assert torch.allclose(span_qa_loss(logits, starts, ends), expected, atol=1e-6)
    with pytest.raises(ValueError, match="ends must be"):
        span_qa_loss(logits, starts, ends[:2])


def test_best_span_matches_brute_force():
    logits = torch.randn(4, 7, 2, generator=torch.Generator().manual_seed(2))
    for max_length in (1, 3, None):
        starts, ends = best_span(logits, max_length)
        limit = max_length or 7
        for b in range(4):
            best = max(
                ((s, e) for s, e in itertools.product(range(7), repeat=2) if 0 <= e - s < limit),
                key=lambda se, b=b: logits[b, se[0], 0] + logits[b, se[1], 1],
            )
            assert (starts[b].item(), ends[b].item()) == best


def test_align_labels_to_subwords_by_hand():
    # "<s> un believ able news </s>": word 0 has three subwords, word 1 one
    assert align_labels_to_subwords([5, 2], [None, 0, 0, 0, 1, None]) == [
        IGNORE_INDEX,
        5,
        IGNORE_INDEX,
        IGNORE_INDEX,
        2,
        IGNORE_INDEX,
    ]
    assert align_labels_to_subwords([1, 1], [0, 1]) == [1, 1]  # same label, two words
    with pytest.raises(ValueError, match="word id 2 is outside"):
        align_labels_to_subwords([1, 1], [0, 2])


@pytest.fixture(scope="module")
def pretrained():
    return load_pretrained()


@pytest.mark.parametrize(
    "text",
    [
        "many clever writers near the tables sleep .",
        "Return the unbelievably long identifier, please",
    ],
)
def test_encode_words_matches_encoding_the_joined_text(pretrained, text):
    _, tokenizer = pretrained
    words = text.split()
    ids, word_ids = encode_words(tokenizer, words)
    assert ids == tokenizer.encode(text)
    assert len(word_ids) == len(ids) and sorted(set(word_ids)) == list(range(len(words)))
    for w, word in enumerate(words):
        pieces = [i for i, k in zip(ids, word_ids, strict=True) if k == w]
        assert tokenizer.decode(pieces).strip() == word


CONFIG = TransformerConfig(vocab_size=20, block_size=8, d_model=16, n_heads=2, n_layers=1)


def test_finetuner_with_a_causal_gpt_ignores_right_padding():
    torch.manual_seed(0)
    model = FineTuner(GPT(CONFIG), TokenClassificationHead(16, 3)).eval()
    idx = torch.randint(0, 20, (2, 6))
    padded = idx.clone()
    padded[0, 4:] = 0
    out, out_padded = model(idx), model(padded)
    assert out.shape == (2, 6, 3)
    assert torch.allclose(out[0, :4], out_padded[0, :4], atol=1e-6)
    assert torch.allclose(out[1], out_padded[1], atol=1e-6)


def test_finetuner_bidirectional_sees_the_future_and_bert_uses_padding():
    torch.manual_seed(0)
    idx = torch.randint(0, 20, (2, 6))
    later = idx.clone()
    later[:, -1] = (later[:, -1] + 1) % 20
    causal = FineTuner(GPT(CONFIG), SpanQAHead(16)).eval()
    both = FineTuner(causal.body, causal.head, bidirectional=True).eval()
    assert torch.allclose(causal(idx)[:, 0], causal(later)[:, 0], atol=1e-6)
    assert not torch.allclose(both(idx)[:, 0], both(later)[:, 0], atol=1e-4)
    padding = torch.ones(2, 6, dtype=torch.bool)
    padding[:, -1] = False
    assert torch.allclose(both(idx, padding)[:, :5], both(later, padding)[:, :5], atol=1e-6)
    bert = FineTuner(BERT(CONFIG), SequenceClassificationHead(16, 2)).eval()
    assert torch.allclose(bert(idx, padding), bert(later, padding), atol=1e-6)
    assert not torch.allclose(bert(idx), bert(later), atol=1e-4)
