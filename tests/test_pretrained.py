"""The shipped pretrained model, its documented evaluation, and the recipe that builds it."""

import json
import math
import pickle
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from llmcourse.data import (
    EOT,
    EVAL_GRAMMAR_SEED,
    EVAL_GRAMMAR_SENTENCES,
    SPECIAL_TOKENS,
    document_stream,
    english_grammar,
    evaluation_documents,
    grammar_text,
    python_docs,
)
from llmcourse.generation import greedy
from llmcourse.models import (
    CARD_FILE,
    GPT,
    MODEL_FILE,
    TOKENIZER_FILE,
    WEIGHTS_DIR,
    load_pretrained,
    model_card,
    sha256,
    validation_losses,
)
from llmcourse.modules import TransformerConfig
from llmcourse.text import BPETokenizer
from llmcourse.training import stream_loss, unigram_loss

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = WEIGHTS_DIR / "small"


@pytest.fixture(scope="module")
def shipped():
    model, tokenizer = load_pretrained()
    return model, tokenizer, model_card()


@pytest.fixture(scope="module")
def shipped_losses(shipped):
    model, tokenizer, _ = shipped
    return validation_losses(model, tokenizer)


class Payload:
    """A class that a weights-only load must refuse to unpickle."""


def tiny_gpt(vocab_size=20, block_size=8, seed=0):
    torch.manual_seed(seed)
    config = TransformerConfig(vocab_size, block_size, d_model=16, n_heads=2, n_layers=1)
    return GPT(config).eval()


# ------------------------------------------------------------------ the shipped files
def test_shipped_files_are_a_few_megabytes_of_plain_tensors():
    sizes = {name: (SHIPPED / name).stat().st_size for name in (MODEL_FILE, TOKENIZER_FILE)}
    assert 1e6 < sizes[MODEL_FILE] < 8e6
    assert sizes[TOKENIZER_FILE] < 1e6
    state = torch.load(SHIPPED / MODEL_FILE, map_location="cpu", weights_only=True)
    assert isinstance(state, dict)
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.float32 for t in state.values())


def test_load_pretrained_gives_the_card_s_model_in_eval_mode(shipped):
    model, tokenizer, card = shipped
    assert isinstance(model, GPT) and isinstance(tokenizer, BPETokenizer)
    assert not model.training and not any(m.training for m in model.modules())
    assert asdict(model.config) == card["config"]
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    assert model.lm_head.weight is model.embed.weight  # the tie survives loading
    state = torch.load(SHIPPED / MODEL_FILE, map_location="cpu", weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    for name in (MODEL_FILE, TOKENIZER_FILE):
        assert card["files"][name]["sha256"] == sha256(SHIPPED / name)
        assert card["files"][name]["bytes"] == (SHIPPED / name).stat().st_size


def test_the_tokenizer_agrees_with_the_card_and_reserves_the_special_tokens(shipped):
    model, tokenizer, card = shipped
    assert len(tokenizer) == card["tokenizer"]["vocab_size"] == model.config.vocab_size
    assert list(tokenizer.specials) == card["tokenizer"]["specials"] == list(SPECIAL_TOKENS)
    n = len(tokenizer)
    assert list(tokenizer.specials.values()) == list(range(n - len(SPECIAL_TOKENS), n))
    for special in ("<|pad|>", "<|mask|>", "<|user|>", "<|assistant|>", "<|extra_7|>"):
        assert special in tokenizer.specials
    text = "<|user|>Is the cat big?<|assistant|>"
    ids = tokenizer.encode(text, allowed_special="all")
    assert (
        ids[0] == tokenizer.specials["<|user|>"] and ids[-1] == tokenizer.specials["<|assistant|>"]
    )
    assert tokenizer.decode(ids) == text


def test_every_grammar_word_of_the_evaluation_set_is_one_token(shipped):
    _, tokenizer, _ = shipped
    for sample in english_grammar().generate(EVAL_GRAMMAR_SENTENCES, seed=EVAL_GRAMMAR_SEED):
        assert len(tokenizer.encode(grammar_text(sample.tokens))) == len(sample.tokens)


# ------------------------------------------------------------ the documented evaluation
def test_validation_losses_match_the_card(shipped, shipped_losses):
    _, _, card = shipped
    documented = card["evaluation"]["loss"]
    assert set(shipped_losses) == set(documented) == {"prose", "grammar"}
    for name, loss in shipped_losses.items():
        assert loss == pytest.approx(documented[name], abs=0.01), name


def test_the_model_is_far_better_than_initialisation_and_a_unigram_model(shipped, shipped_losses):
    model, tokenizer, _ = shipped
    documents = evaluation_documents()
    torch.manual_seed(123)
    fresh = GPT(model.config).eval()
    for name, docs in documents.items():
        initial = stream_loss(fresh, document_stream(tokenizer, docs), model.config.block_size)
        assert initial == pytest.approx(math.log(len(tokenizer)), abs=0.3)
        assert shipped_losses[name] < initial - 3.0, name
    # A unigram model of the prose training split, counted by hand with add-one smoothing.
    counts = Counter(i for p in python_docs().train for i in tokenizer.encode(p))
    total = sum(counts.values()) + len(tokenizer)
    validation = [i for p in documents["prose"] for i in tokenizer.encode(p)]
    unigram = -sum(math.log((counts[i] + 1) / total) for i in validation) / len(validation)
    assert shipped_losses["prose"] < unigram - 1.5


def test_the_grammar_loss_is_close_to_the_sample_s_true_entropy(shipped_losses):
    # The exact negative log-probability of the evaluation sentences, per predicted token:
    # every word is one token, and the stream predicts each sentence's words and the
    # <|endoftext|> before every sentence but the first. No model beats it (in expectation).
    samples = english_grammar().generate(EVAL_GRAMMAR_SENTENCES, seed=EVAL_GRAMMAR_SEED)
    predictions = sum(len(s.tokens) for s in samples) + len(samples) - 1
    floor = -sum(s.log_prob for s in samples) / predictions
    assert floor - 0.02 < shipped_losses["grammar"] < floor + 0.25


def test_greedy_generation_is_deterministic_and_follows_the_grammar(shipped):
    model, tokenizer, _ = shipped
    prompt = torch.tensor([tokenizer.encode(f"{EOT}the cat", allowed_special={EOT})])
    first = greedy(model, prompt, max_new_tokens=30)
    second = greedy(model, prompt, max_new_tokens=30)
    assert torch.equal(first, second)
    assert first.shape == (1, prompt.shape[1] + 30)
    reserved = set(tokenizer.specials.values()) - {tokenizer.specials[EOT]}
    assert not reserved & set(first[0].tolist())
    assert "\ufffd" not in tokenizer.decode(first[0].tolist())
    # After "the cat" the grammar allows a few words; the model must put its mass there.
    allowed = {
        s.tokens[2]
        for s in english_grammar().generate(5000, seed=7)
        if s.tokens[:2] == ["the", "cat"]
    }
    ids = [tokenizer.encode(f" {w}") for w in allowed]
    assert all(len(i) == 1 for i in ids)
    probs = torch.softmax(model(prompt)[0, -1], dim=-1)
    assert probs[[i[0] for i in ids]].sum() > 0.9


# -------------------------------------------------------- the helpers, on small inputs
def test_stream_loss_cuts_the_stream_into_windows():
    model = tiny_gpt()
    ids = torch.randint(0, 20, (11,), generator=torch.Generator().manual_seed(0))
    # Windows of 4 predictions: ids[0:5], ids[4:9] and the tail ids[8:11].
    losses = []
    for start, stop in ((0, 5), (4, 9), (8, 11)):
        window = ids[start:stop]
        logits = model(window[None, :-1])[0]
        losses.append(F.cross_entropy(logits, window[1:], reduction="sum"))
    expected = (sum(losses) / 10).item()
    assert stream_loss(model, ids, block_size=4) == pytest.approx(expected, rel=1e-6)
    assert stream_loss(model, ids, block_size=4, batch_size=1) == pytest.approx(expected, rel=1e-6)
    assert stream_loss(model, ids[:9], block_size=4) == pytest.approx(
        (sum(losses[:2]) / 8).item(), rel=1e-6
    )


def test_stream_loss_restores_the_mode_and_validates():
    model = tiny_gpt().train()
    stream_loss(model, torch.arange(10), block_size=8)
    assert model.training
    with pytest.raises(ValueError, match="at least 2 ids"):
        stream_loss(model, torch.tensor([3]), block_size=8)
    with pytest.raises(ValueError, match="1-D long"):
        stream_loss(model, torch.zeros(5), block_size=8)
    with pytest.raises(ValueError, match="block_size must be an integer >= 1, got 0"):
        stream_loss(model, torch.arange(5), block_size=0)


def test_document_stream_puts_endoftext_before_every_document_and_injects_nothing():
    tokenizer = BPETokenizer.train(["the cat sat", "the cat ran"], 270, SPECIAL_TOKENS[:2])
    eot = tokenizer.specials[EOT]
    ids = document_stream(tokenizer, ["the cat", "a <|pad|> b"]).tolist()
    first, second = tokenizer.encode("the cat"), tokenizer.encode("a <|pad|> b")
    assert ids == [eot, *first, eot, *second]
    assert tokenizer.specials["<|pad|>"] not in ids
    with pytest.raises(ValueError, match="non-empty sequence"):
        document_stream(tokenizer, "the cat")
    with pytest.raises(ValueError, match="no <|endoftext|> token"):
        document_stream(BPETokenizer(), ["the cat"])


def test_grammar_text_and_unigram_loss():
    assert grammar_text(["the", "cat", "sleeps", "."]) == "the cat sleeps ."
    with pytest.raises(TypeError, match="not a str"):
        grammar_text("the cat")
    with pytest.raises(ValueError, match="at least one word"):
        grammar_text([])
    # counts of 0, 1, 2 in a vocabulary of 3 with add-one: probabilities 1/6, 2/6, 3/6
    train, held_out = torch.tensor([1, 2, 2]), torch.tensor([0, 0, 2])
    expected = -(math.log(1 / 6) + math.log(3 / 6)) / 2
    assert unigram_loss(train, held_out, 3) == pytest.approx(expected)


def test_evaluation_documents_are_the_documented_sets():
    documents = evaluation_documents()
    assert documents["prose"] == python_docs().validation
    assert len(documents["grammar"]) == EVAL_GRAMMAR_SENTENCES
    assert set(documents["prose"]).isdisjoint(python_docs().train)


# --------------------------------------------------------------- missing or bad files
@pytest.fixture
def copy_of_shipped(tmp_path):
    folder = tmp_path / "small"
    shutil.copytree(SHIPPED, folder)
    return folder


def test_a_missing_file_is_a_clear_error(copy_of_shipped):
    (copy_of_shipped / TOKENIZER_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json' is missing; .*pretrain_small"):
        load_pretrained(directory=copy_of_shipped)
    with pytest.raises(FileNotFoundError, match="no pretrained model folder"):
        load_pretrained(directory=copy_of_shipped / "nowhere")
    with pytest.raises(ValueError, match="unknown pretrained model 'huge'; the package ships"):
        load_pretrained("huge")


def test_corrupt_files_are_refused(copy_of_shipped):
    weights = copy_of_shipped / MODEL_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model.pt' is corrupt"):
        load_pretrained(directory=copy_of_shipped)
    (copy_of_shipped / CARD_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="card.json' is corrupt: it is not JSON"):
        model_card(directory=copy_of_shipped)


def test_pickled_objects_are_refused_even_with_a_matching_card(copy_of_shipped):
    # weights_only=True: a file that holds a pickled object of an arbitrary class is not
    # loaded, even when someone also rewrote the card's checksum to match it.
    weights = copy_of_shipped / MODEL_FILE
    torch.save({"embed.weight": torch.zeros(2), "payload": Payload()}, weights)
    card = json.loads((copy_of_shipped / CARD_FILE).read_text())
    card["files"][MODEL_FILE]["sha256"] = sha256(weights)
    (copy_of_shipped / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_pretrained(directory=copy_of_shipped)


def test_a_card_that_disagrees_with_the_tokenizer_is_refused(copy_of_shipped):
    card = json.loads((copy_of_shipped / CARD_FILE).read_text())
    card["config"]["vocab_size"] += 1
    (copy_of_shipped / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ValueError, match="does not match the card"):
        load_pretrained(directory=copy_of_shipped)


# ----------------------------------------------------------------------- the recipe
def run_recipe(*args):
    command = [sys.executable, str(ROOT / "recipes" / "pretrain_small.py"), *args]
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=300)


def test_a_tiny_run_of_the_recipe_writes_loadable_files_and_resumes(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    flags = ["--tiny", "--out", str(out), "--work", str(work), "--threads", "1", "--no-progress"]
    run_recipe(*flags)
    model, tokenizer = load_pretrained(directory=out)
    card = model_card(directory=out)
    assert card["name"] == "tiny" and card["training"]["resumed_from_step"] == 0
    assert asdict(model.config) == card["config"] and len(tokenizer) == card["config"]["vocab_size"]
    assert validation_losses(model, tokenizer) == pytest.approx(
        card["evaluation"]["loss"], abs=1e-4
    )
    losses = [json.loads(line)["loss"] for line in (work / "log.jsonl").read_text().splitlines()]
    assert len(losses) == card["training"]["steps"]
    first = (out / MODEL_FILE).read_bytes()
    # Running the same command again resumes from the last checkpoint: nothing left to train.
    run_recipe(*flags)
    assert model_card(directory=out)["training"]["resumed_from_step"] == card["training"]["steps"]
    assert (out / MODEL_FILE).read_bytes() == first
