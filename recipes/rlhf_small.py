"""Recipe: Chapter 12's preference data, reward model and aligned policies.

    python recipes/rlhf_small.py                          # the shipped results
    python recipes/rlhf_small.py --tiny --out /tmp/rlhf   # a smoke run (a few minutes)

Everything starts from the course's instruction-tuned model (``instruct``, made by
``recipes/instruct_small.py``), the SFT step of the InstructGPT pipeline, and is seeded
and offline:

1. **Preference data.** Chat prompts of the training tasks (training-split inputs); two
   replies to each sampled from the SFT model at temperature 1; the gold reward of each
   (:mod:`llmcourse.alignment.gold`: right answer, then brevity) and a label drawn from
   it with the Bradley-Terry model at the annotators' noise scale
   (:func:`llmcourse.alignment.sample_preferences`). A tenth of the prompts are held out.
2. **Reward model.** A :class:`~llmcourse.alignment.ScalarModel` on a copy of the SFT
   model's Transformer, trained with the pairwise loss; its held-out accuracy against
   the noisy labels, against the gold preference, and the noise ceiling; the calibration
   of its reward differences. Saved (bfloat16) with a card, for Chapter 12 to load.
3. **Policies**, each from the SFT model, each evaluated every few steps on fixed
   test-split prompts with the gold reward, the proxy (the reward model's score), the
   accuracy and the KL to the SFT model: PPO against the reward model at several KL
   coefficients (a small one over-optimises the proxy), REINFORCE with a baseline,
   GRPO on the verifiable reward, and DPO on the preference pairs.
4. **Best-of-n** against the reward model: gold and proxy reward of the reply the reward
   model ranks first among ``n`` samples, with the closed-form KL ``log n - (n-1)/n``.

Writes ``llmcourse/alignment/results/`` (or ``--out``): ``reward_model/`` (``model.pt``,
``card.json`` with SHA-256 and metrics) and ``runs.json`` (every curve and table the
chapter plots), checked by ``tests/test_rlhf_results.py``.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from provenance import git_revision
from tqdm.auto import tqdm

from llmcourse.alignment import (
    PreferencePairs,
    RLConfig,
    ScalarModel,
    dpo_pair_loss,
    evaluate_policy,
    noise_ceiling,
    pair_logprobs,
    pair_rewards,
    pairs_from_rollout,
    reward_fn,
    reward_model_loss,
    rl_step,
    sample_preferences,
    sample_rollout,
)
from llmcourse.alignment.gold import GoldReward
from llmcourse.alignment.prompts import RLHF_KINDS, chat_prompts, task_examples
from llmcourse.data.tasks import kind_of
from llmcourse.generation import eval_no_grad
from llmcourse.models import load_pretrained
from llmcourse.models.pretrained import sha256
from llmcourse.training import parameter_groups, train

RECIPE = "recipes/rlhf_small.py"
RESULTS_DIR = Path(__file__).resolve().parents[1] / "llmcourse" / "alignment" / "results"


@dataclass(frozen=True)
class Recipe:
    name: str
    kinds: tuple[str, ...] = RLHF_KINDS
    pairs: int = 6000
    noise: float = 0.25  # the annotators' Bradley-Terry scale, in gold-reward units
    max_new_tokens: int = 40
    rm_epochs: int = 1
    rm_batch: int = 32
    rm_lr: float = 1e-4
    policy_steps: int = 120
    policy_prompts: int = 16
    group_size: int = 4
    policy_lr: float = 5e-5
    betas: tuple[float, ...] = (0.0, 0.02, 0.1)
    eval_every: int = 20
    eval_prompts: int = 200
    eval_samples: int = 2
    dpo_beta: float = 0.1
    dpo_lr: float = 5e-5
    dpo_epochs: int = 2
    dpo_evaluations: int = 6
    best_of: tuple[int, ...] = (1, 2, 4, 8, 16)
    seed: int = 0


SHIPPED = Recipe("shipped")
TINY = dataclasses.replace(
    Recipe("tiny"),
    pairs=64,
    rm_epochs=1,
    policy_steps=4,
    policy_prompts=4,
    betas=(0.02,),
    eval_every=2,
    eval_prompts=8,
    dpo_epochs=1,
    dpo_evaluations=1,
    best_of=(1, 2),
)


# ----------------------------------------------------------------- 1. preferences
def preference_data(sft, tokenizer, recipe: Recipe, generator: torch.Generator):
    """Two sampled replies per prompt, their gold rewards and Bradley-Terry labels."""
    examples = task_examples(recipe.kinds, recipe.pairs, "train", "rlhf-preferences")
    end, pad = tokenizer.specials["<|endoftext|>"], tokenizer.specials["<|pad|>"]
    rollout = sample_rollout(
        sft, chat_prompts(tokenizer, examples), 2, recipe.max_new_tokens, end, pad, 1.0, generator
    )
    gold = GoldReward(tokenizer, examples)(rollout)
    right = GoldReward(tokenizer, examples, cost=0.0)(rollout)
    labels = sample_preferences(gold[0::2], gold[1::2], recipe.noise, generator)
    pairs = pairs_from_rollout(rollout, labels)

    def chosen_and_rejected(values):
        return torch.where(labels, values[0::2], values[1::2]), torch.where(
            labels, values[1::2], values[0::2]
        )

    return pairs, chosen_and_rejected(gold), chosen_and_rejected(right), examples


# ---------------------------------------------------------------- 2. reward model
def pair_batches(pairs: PreferencePairs, batch: int, epochs: int, generator: torch.Generator):
    for _ in range(epochs):
        order = torch.randperm(len(pairs), generator=generator)
        for start in range(0, len(pairs) - batch + 1, batch):
            yield order[start : start + batch]


def train_reward_model(sft, pairs: PreferencePairs, recipe: Recipe, generator, progress: bool):
    rm = ScalarModel.from_language_model(sft)
    rows = list(pair_batches(pairs, recipe.rm_batch, recipe.rm_epochs, generator))
    history = train(
        rm,
        lambda model, r: reward_model_loss(model, pairs.select(r))[0],
        rows,
        len(rows),
        lr=recipe.rm_lr,
        weight_decay=0.1,
        progress=progress,
        desc="reward model",
        schedule="cosine",
        warmup_steps=len(rows) // 10,
    )
    return rm.eval(), history


def reward_model_metrics(rm, sft, pairs: PreferencePairs, gold, right, kinds, noise) -> dict:
    """Held-out accuracy against the labels and the gold preference (on all pairs whose
    gold rewards differ; on those where one reply is right and the other wrong, also by
    kind of task, and for comparison the SFT model's own sequence log-probability used
    as the reward), and calibration: the reward model's predicted ``P(chosen >
    rejected)`` against the annotators' true probability, in bins of its reward
    difference. ``gold`` and ``right`` are (chosen, rejected) pairs of tensors."""
    (gold_chosen, gold_rejected), (right_chosen, right_rejected) = gold, right
    with eval_no_grad(rm, sft):
        chosen, rejected = pair_rewards(rm, pairs)
        sft_chosen, sft_rejected = pair_logprobs(sft, pairs)
    margin = chosen - rejected
    differs = gold_chosen != gold_rejected
    one_right = right_chosen != right_rejected
    p_gold = torch.sigmoid((gold_chosen - gold_rejected) / noise)
    calibration = []
    edges = torch.linspace(-4, 4, 9)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (margin >= lo) & (margin < hi)
        if int(inside.sum()) >= 5:
            calibration.append(
                {
                    "margin": float(margin[inside].mean()),
                    "predicted": float(torch.sigmoid(margin[inside]).mean()),
                    "gold": float(p_gold[inside].mean()),
                    "pairs": int(inside.sum()),
                }
            )
    agrees = (margin > 0) == (gold_chosen > gold_rejected)
    sft_agrees = (sft_chosen > sft_rejected) == (gold_chosen > gold_rejected)
    by_kind = {}
    for kind in sorted(set(kinds)):
        rows = one_right & torch.tensor([k == kind for k in kinds])
        if bool(rows.any()):
            by_kind[kind] = float(agrees[rows].float().mean())
    return {
        "pairs": len(pairs),
        # identical replies get equal rewards: half right, as a coin flip would be
        "accuracy_labels": float(((margin > 0).float() + 0.5 * (margin == 0).float()).mean()),
        "accuracy_gold": float(agrees[differs].float().mean()),
        "accuracy_right_vs_wrong": float(agrees[one_right].float().mean()),
        "accuracy_right_vs_wrong_by_kind": by_kind,
        "sft_logprob_accuracy_right_vs_wrong": float(sft_agrees[one_right].float().mean()),
        "right_vs_wrong_pairs": float(one_right.float().mean()),
        "gold_ties": float((~differs).float().mean()),
        "noise_ceiling": float(noise_ceiling(gold_chosen, gold_rejected, noise).mean()),
        "calibration": calibration,
    }


# ---------------------------------------------------------------------- 3. policies
def evaluator(reference, rm, tokenizer, recipe: Recipe):
    """``evaluate(policy) -> dict`` of gold, proxy, accuracy, KL and length on fixed
    test-split prompts (the same samples' seed for every policy)."""
    examples = task_examples(recipe.kinds, recipe.eval_prompts, "test", "rlhf-evaluation")
    prompts = chat_prompts(tokenizer, examples)
    fns = {
        "gold": GoldReward(tokenizer, examples),
        "accuracy": GoldReward(tokenizer, examples, cost=0.0),
        "proxy": reward_fn(rm),
    }
    end, pad = tokenizer.specials["<|endoftext|>"], tokenizer.specials["<|pad|>"]
    return lambda policy: evaluate_policy(
        policy,
        reference,
        prompts,
        fns,
        samples=recipe.eval_samples,
        max_new_tokens=recipe.max_new_tokens,
        eos_id=end,
        pad_id=pad,
        seed=recipe.seed,
    )


def policy_run(sft, tokenizer, recipe: Recipe, config: RLConfig, reward, evaluate, rm, progress):
    """Train a copy of the SFT model with :func:`~llmcourse.alignment.rl_step`, ``reward``
    mapping a step's examples to its reward function; PPO's value model starts from the
    reward model (as InstructGPT's). Returns the evaluations and each step's statistics."""
    policy = load_copy(sft)
    value = copy.deepcopy(rm).train() if config.method == "ppo" else None
    params = parameter_groups(policy, 0.0) + (
        [{"params": list(value.parameters()), "weight_decay": 0.0}] if value else []
    )
    optimizer = torch.optim.AdamW(params, lr=recipe.policy_lr)
    examples = task_examples(
        recipe.kinds, recipe.policy_steps * recipe.policy_prompts, "train", "rlhf-policy"
    )
    prompts = chat_prompts(tokenizer, examples)
    end, pad = tokenizer.specials["<|endoftext|>"], tokenizer.specials["<|pad|>"]
    generator = torch.Generator().manual_seed(recipe.seed)
    curve = [{"step": 0, **evaluate(policy)}]
    steps = []
    name = f"{config.method} beta={config.beta}"
    for step in tqdm(range(1, recipe.policy_steps + 1), desc=name, disable=not progress):
        rows = slice((step - 1) * recipe.policy_prompts, step * recipe.policy_prompts)
        stats = rl_step(
            policy,
            sft,
            prompts[rows],
            reward(examples[rows]),
            config,
            optimizer,
            eos_id=end,
            pad_id=pad,
            generator=generator,
            value_model=value,
        )
        steps.append(stats)
        if step % recipe.eval_every == 0:
            curve.append({"step": step, **evaluate(policy)})
    return {"config": asdict(config), "curve": curve, "steps": steps}


def load_copy(model):
    """A trainable copy of a language model (the reference stays frozen)."""
    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    return copy.train()


def dpo_run(sft, pairs: PreferencePairs, recipe: Recipe, evaluate, generator, progress):
    policy = load_copy(sft)
    with eval_no_grad(sft):
        ref_chosen, ref_rejected = pair_logprobs(sft, pairs)
    rows = list(pair_batches(pairs, recipe.rm_batch, recipe.dpo_epochs, generator))
    every = max(len(rows) // recipe.dpo_evaluations, 1)
    curve = [{"step": 0, **evaluate(policy)}]

    done = [0]  # optimizer steps so far: one loss per step

    def loss_fn(model, r):
        done[0] += 1
        return dpo_pair_loss(
            model, (ref_chosen[r], ref_rejected[r]), pairs.select(r), recipe.dpo_beta
        )[0]

    def eval_fn(model):
        curve.append({"step": done[0], **evaluate(model)})
        return curve[-1]["gold"]

    history = train(
        policy,
        loss_fn,
        rows,
        len(rows),
        lr=recipe.dpo_lr,
        eval_fn=eval_fn,
        eval_every=every,
        progress=progress,
        desc="DPO",
    )
    return {"beta": recipe.dpo_beta, "curve": curve, "loss": history.train_loss}


# ----------------------------------------------------------------------- 4. best-of-n
def best_of_n(sft, rm, tokenizer, recipe: Recipe) -> list[dict]:
    """Gold and proxy reward of the reply the reward model ranks first among ``n``."""
    examples = task_examples(recipe.kinds, recipe.eval_prompts, "test", "rlhf-evaluation")
    prompts = chat_prompts(tokenizer, examples)
    end, pad = tokenizer.specials["<|endoftext|>"], tokenizer.specials["<|pad|>"]
    n_max = max(recipe.best_of)
    generator = torch.Generator().manual_seed(recipe.seed)
    rollout = sample_rollout(sft, prompts, n_max, recipe.max_new_tokens, end, pad, 1.0, generator)
    gold = GoldReward(tokenizer, examples)(rollout).view(len(prompts), n_max)
    proxy = reward_fn(rm)(rollout).view(len(prompts), n_max)
    out = []
    for n in recipe.best_of:
        pick = proxy[:, :n].argmax(1, keepdim=True)
        out.append(
            {
                "n": n,
                "gold": float(gold[:, :n].gather(1, pick).mean()),
                "proxy": float(proxy[:, :n].gather(1, pick).mean()),
                "kl": math.log(n) - (n - 1) / n,
            }
        )
    return out


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, help=f"results folder (default: {RESULTS_DIR})")
    parser.add_argument("--instruct", type=Path, help="load the SFT model from this folder")
    parser.add_argument("--tiny", action="store_true", help="a few steps, for a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the recipe; returns what it wrote to ``runs.json``."""
    start = time.perf_counter()
    args = parse_args(argv)
    recipe = TINY if args.tiny else SHIPPED
    out = args.out or RESULTS_DIR
    progress = not args.no_progress
    torch.set_num_threads(args.threads)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    sft, tokenizer = load_pretrained("instruct", directory=args.instruct)

    # 1-2: preferences, reward model
    pairs, gold, right, examples = preference_data(sft, tokenizer, recipe, generator)
    gold_chosen, gold_rejected = gold
    test = torch.arange(len(pairs) // 10)
    fit = torch.arange(len(test), len(pairs))
    rm, rm_history = train_reward_model(sft, pairs.select(fit), recipe, generator, progress)
    metrics = reward_model_metrics(
        rm,
        sft,
        pairs.select(test),
        (gold_chosen[test], gold_rejected[test]),
        (right[0][test], right[1][test]),
        [kind_of(examples[int(i)].task) for i in test],
        recipe.noise,
    )
    print("reward model:", json.dumps(metrics), flush=True)

    # 3: policies
    evaluate = evaluator(sft, rm, tokenizer, recipe)
    proxy = lambda examples: reward_fn(rm)  # noqa: E731 -- the proxy needs no answers
    verifiable = lambda examples: GoldReward(tokenizer, examples, cost=0.0)  # noqa: E731
    configs = [
        (
            RLConfig("ppo", recipe.group_size, recipe.max_new_tokens, b, epochs=2, minibatches=2),
            proxy,
        )
        for b in recipe.betas
    ]
    configs.append(
        (RLConfig("reinforce", recipe.group_size, recipe.max_new_tokens, recipe.betas[-1]), proxy)
    )
    configs.append(
        (
            RLConfig(
                "grpo",
                recipe.group_size,
                recipe.max_new_tokens,
                recipe.betas[-1],
                epochs=2,
                minibatches=2,
            ),
            verifiable,
        )
    )
    runs = {}
    for config, reward in configs:
        name = f"{config.method} beta={config.beta}" + (
            " (verifiable)" if reward is verifiable else ""
        )
        runs[name] = policy_run(sft, tokenizer, recipe, config, reward, evaluate, rm, progress)
        print(name, json.dumps(runs[name]["curve"][-1]), flush=True)
    runs["dpo"] = dpo_run(sft, pairs.select(fit), recipe, evaluate, generator, progress)
    best = best_of_n(sft, rm, tokenizer, recipe)

    # 4: files
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "reward_model"
    folder.mkdir(exist_ok=True)
    state = {k: v.detach().to(torch.bfloat16).clone() for k, v in rm.state_dict().items()}
    torch.save(state, folder / "model.pt")
    card = {
        "recipe": RECIPE,
        "git_revision": git_revision(),
        "base": "instruct",
        "config": asdict(sft.config),
        "dtype": "bfloat16",
        "metrics": metrics,
        "files": {
            "model.pt": {
                "bytes": (folder / "model.pt").stat().st_size,
                "sha256": sha256(folder / "model.pt"),
            }
        },
    }
    (folder / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    results = {
        "format": 1,
        "recipe": RECIPE,
        "git_revision": card["git_revision"],
        "settings": asdict(recipe),
        "software": {"python": platform.python_version(), "torch": torch.__version__},
        "threads": args.threads,
        "preferences": {
            "pairs": len(pairs),
            "label_agrees_with_gold": float(
                (gold_chosen > gold_rejected)[gold_chosen != gold_rejected].float().mean()
            ),
            "gold_ties": float((gold_chosen == gold_rejected).float().mean()),
        },
        "reward_model": {"metrics": metrics, "loss": rm_history.train_loss},
        "runs": runs,
        "best_of_n": best,
        "seconds": time.perf_counter() - start,
    }
    (out / "runs.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out} in {results['seconds']:.0f} s", flush=True)
    return results


if __name__ == "__main__":
    main()
