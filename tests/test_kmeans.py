"""k-means and Auto-CoT's clustering (llmcourse.prompting.kmeans, .autocot)."""

import pytest
import torch

from llmcourse.prompting.autocot import cluster_questions, construct_demonstrations
from llmcourse.prompting.kmeans import kmeans, kmeans_plus_plus, squared_distances

# A hand example: three groups of points around (0, 0), (10, 0) and (0, 10).
POINTS = torch.tensor(
    [
        [0.0, 0.0],
        [1.0, 0.0],
        [0.0, 1.0],
        [10.0, 0.0],
        [11.0, 0.0],
        [10.0, 2.0],
        [0.0, 10.0],
        [0.0, 12.0],
    ]
)
GROUPS = [{0, 1, 2}, {3, 4, 5}, {6, 7}]


def groups_of(labels):
    return sorted(
        ({i for i, g in enumerate(labels.tolist()) if g == j} for j in set(labels.tolist())),
        key=min,
    )


@pytest.mark.parametrize("seed", range(10))
def test_kmeans_finds_the_three_groups_with_their_means_and_inertia(seed):
    result = kmeans(POINTS, 3, seed=seed)
    assert groups_of(result.labels) == GROUPS
    means = {(1 / 3, 1 / 3), (31 / 3, 2 / 3), (0.0, 11.0)}
    got = {tuple(round(v, 5) for v in c.tolist()) for c in result.centres}
    assert got == {tuple(round(v, 5) for v in m) for m in means}
    # By hand: squared distances of each point to its group's mean.
    # (0, 0), (1, 0), (0, 1) around (1/3, 1/3): 2/9 + 5/9 + 5/9;
    # (10, 0), (11, 0), (10, 2) around (31/3, 2/3): 5/9 + 8/9 + 17/9; (0, 10), (0, 12): 1 + 1.
    inertia = 12 / 9 + 30 / 9 + 2
    assert result.inertia == pytest.approx(inertia, rel=1e-5)


def test_squared_distances_by_hand():
    d = squared_distances(
        torch.tensor([[0.0, 0.0], [3.0, 4.0]]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    )
    assert d.tolist() == [[0.0, 2.0], [25.0, 13.0]]


def test_kmeans_is_seeded_and_one_cluster_per_point_has_no_inertia():
    x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    a, b = kmeans(x, 4, seed=1), kmeans(x, 4, seed=1)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.centres, b.centres)
    assert kmeans(x[:5], 5).inertia == pytest.approx(0.0, abs=1e-10)
    one = kmeans(x, 1)
    assert torch.allclose(one.centres[0], x.mean(0)) and (one.labels == 0).all()


def test_kmeans_plus_plus_picks_distinct_points():
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(2))
    centres = kmeans_plus_plus(x, 6, torch.Generator().manual_seed(0))
    rows = {tuple(c.tolist()) for c in centres}
    assert len(rows) == 6 and rows <= {tuple(p.tolist()) for p in x}
    repeated = torch.zeros(4, 2)
    assert kmeans_plus_plus(repeated, 3, torch.Generator().manual_seed(0)).shape == (3, 2)


def test_kmeans_errors():
    with pytest.raises(ValueError, match="at most the number of points"):
        kmeans(POINTS, 9)
    with pytest.raises(ValueError, match="2-D floating-point tensor"):
        kmeans(torch.zeros(5, dtype=torch.long).view(5, 1), 2)
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        kmeans(POINTS, 0)


def test_cluster_questions_sorts_each_cluster_by_distance_to_its_centre():
    clusters = cluster_questions(POINTS, 3)
    assert sorted(map(set, clusters), key=min) == GROUPS
    for members in clusters:
        centre = POINTS[members].mean(0)
        distances = [(POINTS[i] - centre).pow(2).sum().item() for i in members]
        assert distances == sorted(distances)
    first = next(c for c in clusters if 6 in c)
    assert first == [6, 7]  # equally far from (0, 11): the lower index first


def test_construct_demonstrations_takes_the_first_accepted_question_per_cluster():
    clusters = [[4, 1, 2], [0, 3], [5]]
    chains = {i: f"chain {i}" for i in range(6)}
    tried = []

    def answer(i):
        tried.append(i)
        return chains[i]

    accepted = construct_demonstrations(clusters, answer, lambda i, chain: i not in (4, 5))
    assert accepted == [(1, "chain 1"), (0, "chain 0")]  # cluster [5] gives none
    assert tried == [4, 1, 0, 5]
    tried.clear()
    assert construct_demonstrations([[4, 1, 2]], answer, lambda i, c: False, max_tries=2) == []
    assert tried == [4, 1]
