"""A seeded probabilistic grammar: unlimited text with an exactly known distribution.

A probabilistic context-free grammar (PCFG) rewrites each nonterminal by one of its
alternatives with a fixed probability. Sampling a sentence multiplies the
probabilities of the rules used, so the generator knows the exact probability of
the derivation it made. When the grammar is LL(1) -- at every choice point the next
word (or the end of the sentence) decides which alternative was taken -- every
sentence has exactly one derivation, so the derivation's probability *is* the
sentence's probability. :class:`Grammar` checks the LL(1) property when it is built
and can parse any sentence back to its probability.

Because the distribution is known, so is its entropy: the expected negative
log-probability of a sentence, computed exactly from a linear system over the
nonterminals (Grenander, 1967; Soule, 1974). Divided by the expected number of
predictions per sentence, it is the cross-entropy per token that no language model
can beat on text from this grammar.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

END = "$"  # the end-of-sentence lookahead of the LL(1) parse table

Alternative = tuple[float, Sequence[str]]


@dataclass(frozen=True)
class Sample:
    """A generated sentence and its exact natural-log probability under the grammar."""

    tokens: list[str]
    log_prob: float


class Grammar:
    """An LL(1) probabilistic context-free grammar.

    Args:
        rules: maps each nonterminal to its alternatives, ``(probability, symbols)``
            pairs; the probabilities of one nonterminal sum to 1. A symbol that is
            a key of ``rules`` is a nonterminal, any other symbol is a word. An empty
            symbol sequence is the empty string.
        start: the start symbol.

    Raises:
        ValueError: probabilities that are not positive or do not sum to 1, an
            unknown start symbol, a grammar that is not LL(1) (the message names
            the nonterminal and the words that are ambiguous), or one whose
            sentences are infinitely long on average.
    """

    def __init__(self, rules: Mapping[str, Sequence[Alternative]], start: str = "S") -> None:
        if start not in rules:
            raise ValueError(f"start symbol {start!r} has no rules")
        self.start = start
        self.rules: dict[str, list[tuple[float, tuple[str, ...]]]] = {}
        for lhs, alternatives in rules.items():
            if not alternatives:
                raise ValueError(f"nonterminal {lhs!r} has no alternatives")
            for p, _ in alternatives:
                if not p > 0:
                    raise ValueError(f"rule probabilities must be > 0, got {p} for {lhs!r}")
            total = sum(p for p, _ in alternatives)
            if not math.isclose(total, 1.0, abs_tol=1e-9):
                raise ValueError(f"probabilities of {lhs!r} must sum to 1, got {total}")
            self.rules[lhs] = [(float(p), tuple(symbols)) for p, symbols in alternatives]
        self.nonterminals = sorted(self.rules)
        self.words = sorted(
            {s for alts in self.rules.values() for _, syms in alts for s in syms} - set(self.rules)
        )
        self._table = self._parse_table()
        self._mean_length, self._entropy = self._moments()
        # Sampling tables: cumulative probabilities, symbols and log-probabilities.
        self._cumulative = {
            lhs: list(np.cumsum([p for p, _ in alts])) for lhs, alts in self.rules.items()
        }
        self._log_p = {lhs: [math.log(p) for p, _ in alts] for lhs, alts in self.rules.items()}

    # ----------------------------------------------------------------- LL(1) analysis
    def _first_sets(self) -> tuple[dict[str, set[str]], set[str]]:
        first: dict[str, set[str]] = {a: set() for a in self.rules}
        nullable: set[str] = set()
        changed = True
        while changed:
            changed = False
            for lhs, alts in self.rules.items():
                for _, symbols in alts:
                    f, is_nullable = self._first_of(symbols, first, nullable)
                    if not f <= first[lhs]:
                        first[lhs] |= f
                        changed = True
                    if is_nullable and lhs not in nullable:
                        nullable.add(lhs)
                        changed = True
        return first, nullable

    def _first_of(
        self, symbols: Sequence[str], first: dict[str, set[str]], nullable: set[str]
    ) -> tuple[set[str], bool]:
        """FIRST of a symbol sequence, and whether it can derive the empty string."""
        out: set[str] = set()
        for s in symbols:
            if s not in self.rules:
                out.add(s)
                return out, False
            out |= first[s]
            if s not in nullable:
                return out, False
        return out, True

    def _parse_table(self) -> dict[str, dict[str, int]]:
        first, nullable = self._first_sets()
        follow: dict[str, set[str]] = {a: set() for a in self.rules}
        follow[self.start].add(END)
        changed = True
        while changed:
            changed = False
            for lhs, alts in self.rules.items():
                for _, symbols in alts:
                    for i, s in enumerate(symbols):
                        if s not in self.rules:
                            continue
                        rest_first, rest_nullable = self._first_of(
                            symbols[i + 1 :], first, nullable
                        )
                        new = rest_first | (follow[lhs] if rest_nullable else set())
                        if not new <= follow[s]:
                            follow[s] |= new
                            changed = True
        table: dict[str, dict[str, int]] = {}
        for lhs, alts in self.rules.items():
            row: dict[str, int] = {}
            for k, (_, symbols) in enumerate(alts):
                f, is_nullable = self._first_of(symbols, first, nullable)
                lookaheads = f | (follow[lhs] if is_nullable else set())
                clash = sorted(a for a in lookaheads if a in row)
                if clash:
                    raise ValueError(
                        f"grammar is not LL(1): alternatives {row[clash[0]]} and {k} of {lhs!r} "
                        f"can both start with {clash}"
                    )
                row.update(dict.fromkeys(lookaheads, k))
            table[lhs] = row
        return table

    # ------------------------------------------------------------ exact moments
    def _moments(self) -> tuple[float, float]:
        """Expected length (words) and entropy (nats) of a sentence, exactly.

        With ``M[A, B]`` the expected number of B's in one rewrite of A, both
        quantities solve ``x = b + M x``: ``b`` is the expected number of words in
        one rewrite (for the length) or the entropy of the choice of rewrite (for
        the entropy).
        """
        index = {a: i for i, a in enumerate(self.nonterminals)}
        n = len(index)
        m, words, choice_entropy = np.zeros((n, n)), np.zeros(n), np.zeros(n)
        for lhs, alts in self.rules.items():
            i = index[lhs]
            for p, symbols in alts:
                choice_entropy[i] -= p * math.log(p)
                for s in symbols:
                    if s in index:
                        m[i, index[s]] += p
                    else:
                        words[i] += p
        if max(abs(np.linalg.eigvals(m))) >= 1:
            raise ValueError(
                "grammar is not consistent: its sentences are infinitely long on average"
            )
        a = np.eye(n) - m
        length, entropy = np.linalg.solve(a, words), np.linalg.solve(a, choice_entropy)
        s = index[self.start]
        return float(length[s]), float(entropy[s])

    def mean_length(self) -> float:
        """Expected number of words per sentence."""
        return self._mean_length

    def entropy(self) -> float:
        """Exact entropy of the sentence distribution, in nats per sentence."""
        return self._entropy

    def entropy_per_token(self) -> float:
        """Entropy in nats per predicted token.

        A language model predicts every word of a sentence and then the end of the
        sentence (``</s>``), ``mean_length() + 1`` predictions in all; the sentence
        entropy spread over them is the lowest cross-entropy per token a model can
        reach on i.i.d. sentences from this grammar.
        """
        return self._entropy / (self._mean_length + 1)

    # -------------------------------------------------------------- generation
    def sample(self, rng: random.Random) -> Sample:
        """Draw one sentence, using ``rng`` for every choice."""
        tokens: list[str] = []
        log_prob = 0.0
        stack = [self.start]
        while stack:
            symbol = stack.pop()
            if symbol not in self.rules:
                tokens.append(symbol)
                continue
            k = bisect.bisect_right(self._cumulative[symbol], rng.random())
            k = min(k, len(self.rules[symbol]) - 1)  # guards against cumsum rounding below 1
            log_prob += self._log_p[symbol][k]
            stack.extend(reversed(self.rules[symbol][k][1]))
        return Sample(tokens, log_prob)

    def generate(self, n: int, seed: int = 0) -> list[Sample]:
        """``n`` sentences drawn with ``random.Random(seed)``: the same for the same seed."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative integer, got {n!r}")
        rng = random.Random(seed)
        return [self.sample(rng) for _ in range(n)]

    # ------------------------------------------------------------------ scoring
    def log_prob(self, tokens: Sequence[str]) -> float:
        """Exact natural-log probability of a sentence; ``-inf`` if the grammar cannot make it.

        The sentence is parsed left to right with the LL(1) table, adding the
        log-probability of every rule the parse uses.
        """
        if isinstance(tokens, str):
            raise TypeError("tokens must be a sequence of words, not a str; split it first")
        log_prob = 0.0
        stack = [self.start]
        pos = 0
        while stack:
            symbol = stack.pop()
            lookahead = tokens[pos] if pos < len(tokens) else END
            if symbol not in self.rules:
                if symbol != lookahead:
                    return -math.inf
                pos += 1
                continue
            k = self._table[symbol].get(lookahead)
            if k is None:
                return -math.inf
            log_prob += self._log_p[symbol][k]
            stack.extend(reversed(self.rules[symbol][k][1]))
        return log_prob if pos == len(tokens) else -math.inf


def _uniform(words: str) -> list[Alternative]:
    """Equally likely one-word alternatives from a space-separated list."""
    items = words.split()
    return [(1 / len(items), (w,)) for w in items]


def english_grammar() -> Grammar:
    """The course's toy English: agreement across modifiers, relative clauses, adjectives.

    Subjects agree in number with their verb however many prepositional phrases
    and relative clauses stand between them ("the writer of the books near the
    tables *is* old"), which makes long-range memory pay off. About 60 words; the
    mean sentence has about 7.4 words.
    """
    n_sg = "writer cat dog student teacher book table garden bird child"
    n_pl = "writers cats dogs students teachers books tables gardens birds children"
    return Grammar(
        {
            "S": [
                (0.6, ("the", "ADJS", "SUBJ", ".")),
                (0.2, ("every", "ADJS", "N_SG", "MODS_SG", "VP_SG", ".")),
                (0.2, ("many", "ADJS", "N_PL", "MODS_PL", "VP_PL", ".")),
            ],
            "SUBJ": [
                (0.5, ("N_SG", "MODS_SG", "VP_SG")),
                (0.5, ("N_PL", "MODS_PL", "VP_PL")),
            ],
            "ADJS": [(0.25, ("ADJ", "ADJS")), (0.75, ())],
            "MODS_SG": [(0.25, ("PP", "MODS_SG")), (0.1, ("that", "VP_SG", "MODS_SG")), (0.65, ())],
            "MODS_PL": [(0.25, ("PP", "MODS_PL")), (0.1, ("that", "VP_PL", "MODS_PL")), (0.65, ())],
            "PP": [(1.0, ("PREP", "NP"))],
            "NP": [
                (0.7, ("the", "ADJS", "NOUN")),
                (0.15, ("a", "ADJS", "N_SG")),
                (0.15, ("some", "ADJS", "N_PL")),
            ],
            "NOUN": [(0.5, ("N_SG",)), (0.5, ("N_PL",))],
            "VP_SG": [
                (0.35, ("V_INTR_SG", "ADV")),
                (0.4, ("V_TR_SG", "NP")),
                (0.25, ("is", "ADJ")),
            ],
            "VP_PL": [
                (0.35, ("V_INTR_PL", "ADV")),
                (0.4, ("V_TR_PL", "NP")),
                (0.25, ("are", "ADJ")),
            ],
            "ADV": [(0.15, ("quietly",)), (0.15, ("today",)), (0.7, ())],
            "N_SG": _uniform(n_sg),
            "N_PL": _uniform(n_pl),
            "ADJ": _uniform("big small happy red quiet clever new"),
            "PREP": _uniform("of near behind with"),
            "V_INTR_SG": _uniform("sleeps runs laughs waits"),
            "V_INTR_PL": _uniform("sleep run laugh wait"),
            "V_TR_SG": _uniform("sees likes reads finds opens"),
            "V_TR_PL": _uniform("see like read find open"),
        }
    )
