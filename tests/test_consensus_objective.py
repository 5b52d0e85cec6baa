"""The consensus objective: sharpened target, its KL term, the k-means start of the heads."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scvi import REGISTRY_KEYS

import cplmixvi
from cplmixvi.augment import Identity
from cplmixvi.module import CplMixVAE
from cplmixvi.nn import consensus_kl, sharpened_target


def test_sharpened_target_is_the_squared_geometric_mean():
    gen = torch.Generator().manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(3, 20, 4, generator=gen), -1).double()
    log_probs.requires_grad_(True)
    fused = torch.softmax(log_probs.mean(0), -1)
    expected = fused**2 / (fused**2).sum(-1, keepdim=True)
    target = sharpened_target(log_probs)
    torch.testing.assert_close(target, expected.detach())
    assert not target.requires_grad
    # sharper than the fused posterior: the largest probability of every cell grows
    assert (target.max(-1).values >= fused.max(-1).values - 1e-12).all()
    # no re-balancing: a cell's target does not depend on the other cells of the minibatch
    torch.testing.assert_close(sharpened_target(log_probs[:, :1]), target[:1])


def test_consensus_kl_formula_and_zero_at_the_target():
    gen = torch.Generator().manual_seed(1)
    log_probs = torch.log_softmax(torch.randn(2, 5, 3, generator=gen), -1).double()
    target = torch.softmax(torch.randn(5, 3, generator=gen), -1).double()
    expected = (target * (target.log() - log_probs)).sum(-1)
    torch.testing.assert_close(consensus_kl(log_probs, target), expected)
    at_target = consensus_kl(target.log().expand(2, 5, 3), target)
    torch.testing.assert_close(at_target, torch.zeros(2, 5, dtype=torch.float64))


def test_pretraining_uses_the_soft_code_and_no_type_term():
    torch.manual_seed(0)
    module = CplMixVAE(n_input=10, n_types=3, n_hidden=8, n_layers=1, augmenter=Identity())
    x = torch.poisson(torch.full((30, 10), 3.0))
    module.train()
    module.pretraining = True
    inf = module.inference(x)
    torch.testing.assert_close(inf["c"], inf["log_probs"].exp())  # deterministic soft code
    out = module.loss({REGISTRY_KEYS.X_KEY: x}, inf, module.generative(**_gen_in(inf)))
    elbo = (out.reconstruction_loss["reconstruction_loss"] + out.kl_local["kl_state"]).mean()
    torch.testing.assert_close(out.loss, elbo * 2, rtol=1e-5, atol=1e-4)  # summed over 2 arms
    module.pretraining = False
    torch.manual_seed(1)
    inf = module.inference(x)
    out = module.loss({REGISTRY_KEYS.X_KEY: x}, inf, module.generative(**_gen_in(inf)))
    elbo = (out.reconstruction_loss["reconstruction_loss"] + out.kl_local["kl_state"]).mean()
    consensus = float(out.extra_metrics["consensus_kl"])
    assert consensus > 0
    assert float(out.loss) == pytest.approx(float(elbo) * 2 + 2 * consensus, rel=1e-4)
    assert not inf["c"].requires_grad  # the ELBO does not reach the type heads
    assert inf["log_probs"].requires_grad


def _gen_in(inf):
    return {"s": inf["s"], "c": inf["c"], "library": inf["library"]}


def test_train_starts_the_heads_from_merged_kmeans_clusters(make_adata, monkeypatch):
    import scvi

    import cplmixvi.model._type_init as type_init

    adata = make_adata(n_cells=300, n_genes=40)
    cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    scvi.settings.seed = 0
    model = cplmixvi.CplMixVI(adata, n_types=3, n_hidden=32, n_layers=1)
    fitted, merged, calls, widths = [], [], [], []

    class SpyKMeans(type_init.KMeans):
        def fit(self, X, *args, **kwargs):
            fitted.append(self)
            return super().fit(X, *args, **kwargs)

    merge = type_init.modularity_merge

    def spy_merge(*args, **kwargs):
        merged.append(merge(*args, **kwargs))
        return merged[-1]

    def spy(m, n_types):
        calls.append(m.module.pretraining)
        widths.append(m.module.n_types)
        type_init.init_types_by_kmeans(m, n_types)
        widths.append(int(m.module.type_mask.sum()))
        m.is_trained_ = True
        calls.append(m.get_type_assignments()["type"].to_numpy())
        m.is_trained_ = False

    monkeypatch.setattr(type_init, "KMeans", SpyKMeans)
    monkeypatch.setattr(cplmixvi.model._training, "init_types_by_kmeans", spy)
    monkeypatch.setattr(type_init, "modularity_merge", spy_merge)
    model.train(max_epochs=8, enable_progress_bar=False)
    assert len(calls) == 2 and calls[0] is False  # once, as the clustering phase starts
    assert widths == [type_init.PRETRAIN_TYPES, 3]  # a wider code pretrains, merged to K
    assert model.module.type_head.weight.shape[-1] == 3 and not model.module.is_pruned
    assert model.get_type_probabilities().shape == (adata.n_obs, 3)
    assert fitted[0].n_clusters == 6  # k-means at 2 K, merged to K
    assert len(np.unique(merged[0])) == 3
    # the fused label of the new heads is the merged clustering of the arms' joint codes
    assert np.mean(calls[1] == merged[0]) > 0.95
    assert model.history["consensus_kl_train"].iloc[-1, 0] > 0


def test_a_fit_stopped_while_pretraining_still_ends_with_k_types(make_adata):
    import scvi
    from lightning.pytorch.callbacks import Callback

    class StopAfterFirstEpoch(Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            trainer.should_stop = True  # as early stopping does

    adata = make_adata(n_cells=120, n_genes=20)
    cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    scvi.settings.seed = 0
    model = cplmixvi.CplMixVI(adata, n_types=3, n_hidden=16, n_layers=1)
    model.train(max_epochs=4, enable_progress_bar=False, callbacks=[StopAfterFirstEpoch()])
    assert len(model.history["elbo_train"]) == 1  # stopped in pretraining, before the start
    assert model.module.n_types == 3 and not model.module.is_pruned
    assert model.get_type_probabilities().shape == (adata.n_obs, 3)


def test_pretraining_epochs_are_checked_and_skipped_once_trained(make_adata):
    import scvi

    adata = make_adata(n_cells=120, n_genes=20)
    cplmixvi.CplMixVI.setup_anndata(adata, layer="counts")
    scvi.settings.seed = 0
    model = cplmixvi.CplMixVI(adata, n_types=3, n_hidden=16, n_layers=1)
    with pytest.raises(ValueError, match=r"pretrain_epochs must be in \[0, max_epochs\)"):
        model.train(max_epochs=3, pretrain_epochs=3)
    model.train(max_epochs=2, enable_progress_bar=False)
    heads = model.module.type_head.weight.detach().clone()
    model.module.type_head.weight.data[:, :, 0] += 1.0  # a later fit must not restart the heads
    model.train(max_epochs=1, enable_progress_bar=False)  # no pretraining, no k-means
    moved = (model.module.type_head.weight.detach() - heads)[:, :, 0]
    assert float(moved.abs().mean()) > 0.5
    model.module.remove_types([2])
    with pytest.raises(ValueError, match="pruned model"):
        model.train(max_epochs=2, pretrain_epochs=1)


def test_default_pretraining_is_three_quarters_of_at_most_the_default_fit():
    from types import SimpleNamespace

    from cplmixvi.model._type_init import checked_pretrain_epochs

    first = SimpleNamespace(module=SimpleNamespace(objective="consensus"), is_trained_=False)
    assert checked_pretrain_epochs(first, None, 20, 20) == 15  # the default fit
    assert checked_pretrain_epochs(first, None, 8, 20) == 6  # shorter: 3/4 of it
    assert checked_pretrain_epochs(first, None, 80, 20) == 15  # 4x: the extra epochs cluster
    assert checked_pretrain_epochs(first, None, 2, 20) == 1  # one clustering epoch at least
    trained = SimpleNamespace(module=first.module, is_trained_=True)
    assert checked_pretrain_epochs(trained, None, 80, 20) == 0
    paper = SimpleNamespace(module=SimpleNamespace(objective="paper"), is_trained_=False)
    assert checked_pretrain_epochs(paper, None, 80, 20) == 0


def _planted_graph(sizes, pieces, seed=0):
    """A kNN-like graph of planted groups (edges only inside a group) and fine labels cutting
    each group into ``pieces`` equal parts."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    group = np.repeat(np.arange(len(sizes)), sizes)
    rows, cols = [], []
    for g in range(len(sizes)):
        cells = np.flatnonzero(group == g)
        for cell in cells:
            for other in rng.choice(cells, 8, replace=False):
                if other != cell:
                    rows.append(cell)
                    cols.append(other)
    graph = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), (len(group), len(group)))
    fine = np.zeros(len(group), int)
    next_label = 0
    for g, n_pieces in enumerate(pieces):
        cells = np.flatnonzero(group == g)
        fine[cells] = next_label + np.arange(len(cells)) * n_pieces // len(cells)
        next_label += n_pieces
    return graph + graph.T, fine, group


def test_modularity_merge_joins_the_pieces_of_large_types_and_keeps_small_ones():
    from sklearn.metrics import adjusted_rand_score

    from cplmixvi.model._type_init import modularity_merge

    # two large types cut into 4 pieces each, two small ones of 20 cells left whole, no edges
    # between types: the merge must join the pieces, never a small type into a large one
    graph, fine, group = _planted_graph([300, 300, 20, 20], [4, 4, 1, 1])
    merged = modularity_merge(graph, fine, 4, resolution=0.4)
    assert adjusted_rand_score(group, merged) == 1.0
    # it reaches k even where no edge joins the clusters left (greedy CNM would stop at 4)
    assert len(np.unique(modularity_merge(graph, fine, 2, resolution=0.4))) == 2


def test_modularity_merge_is_networkx_greedy_modularity_on_a_connected_graph():
    import networkx as nx
    from scipy import sparse
    from sklearn.metrics import adjusted_rand_score
    from sklearn.neighbors import kneighbors_graph

    from cplmixvi.model._type_init import modularity_merge

    rng = np.random.default_rng(3)
    points = np.concatenate([rng.normal(c, 1.0, (80, 2)) for c in ([0, 0], [4, 0], [0, 4])])
    graph = kneighbors_graph(points, 10)
    graph = graph + graph.T
    # 12 pieces in bands across the three blobs
    fine = np.argsort(np.argsort(points[:, 0] + 3 * points[:, 1])) * 12 // len(points)
    member = sparse.csr_matrix((np.ones(len(fine)), (np.arange(len(fine)), fine)))
    edges = (member.T @ graph @ member).toarray()
    cluster_graph = nx.Graph()
    for i in range(12):
        for j in range(i, 12):
            if edges[i, j]:
                cluster_graph.add_edge(i, j, weight=edges[i, j] / (2 if i == j else 1))
    communities = nx.community.greedy_modularity_communities(
        cluster_graph, weight="weight", resolution=0.4, cutoff=3, best_n=3
    )
    expected = np.empty(12, int)
    for label, nodes in enumerate(communities):
        expected[list(nodes)] = label
    merged = modularity_merge(graph, fine, 3, resolution=0.4)
    assert adjusted_rand_score(expected[fine], merged) == 1.0


def test_linear_type_heads_map_the_clr_code():
    torch.manual_seed(0)
    module = CplMixVAE(n_input=10, n_types=4, n_hidden=8, n_layers=1, augmenter=Identity())
    module.eval()
    x = torch.poisson(torch.full((25, 10), 3.0))
    log_probs = module.inference(x)["log_probs"]
    clr = log_probs - log_probs.mean(-1, keepdim=True)
    coef = torch.randn(2, 4, 4)
    intercept = torch.randn(2, 4)
    module.start_types(coef, intercept)
    new = module.inference(x)["log_probs"]
    expected = torch.log_softmax(torch.bmm(clr, coef) + intercept[:, None], -1)
    torch.testing.assert_close(new, expected, rtol=1e-4, atol=1e-4)


def test_start_types_makes_a_type_act_as_its_mean_code():
    torch.manual_seed(0)
    module = CplMixVAE(n_input=10, n_types=6, n_hidden=8, n_layers=1, augmenter=Identity())
    layers = [module.state_head, module.decoder.linears[0]]
    mean_code = torch.softmax(torch.randn(2, 3, 6), -1)
    s, h = torch.randn(2, 3, module.n_state), torch.randn(2, 3, 8)
    before = [layers[0](torch.cat([h, mean_code], -1)), layers[1](torch.cat([s, mean_code], -1))]
    prior = torch.bmm(mean_code, module.prior_mean), torch.bmm(mean_code, module.prior_logvar)
    module.start_types(torch.randn(2, 6, 3), torch.randn(2, 3), mean_code)
    assert module.type_mask.tolist() == [True] * 3 + [False] * 3
    module.drop_removed_types()
    assert module.n_types == 3 and module.type_mask.tolist() == [True] * 3
    one_hot = torch.eye(3).expand(2, 3, 3)
    after = [layers[0](torch.cat([h, one_hot], -1)), layers[1](torch.cat([s, one_hot], -1))]
    for old, new in zip(before, after, strict=True):
        torch.testing.assert_close(new, old)
    torch.testing.assert_close(module.prior_mean, prior[0])
    torch.testing.assert_close(module.prior_logvar, prior[1])
    assert module.inference(torch.poisson(torch.full((5, 10), 3.0)))["log_probs"].shape[-1] == 3
    with pytest.raises(ValueError, match="give mean_code"):
        module.start_types(torch.randn(2, 3, 2), torch.randn(2, 2))


def test_dropping_removed_types_keeps_the_survivors_posterior():
    torch.manual_seed(0)
    module = CplMixVAE(n_input=10, n_types=5, n_hidden=8, n_layers=1, augmenter=Identity())
    module.eval()
    x = torch.poisson(torch.full((7, 10), 3.0))
    module.remove_types([1, 3])
    before = module.inference(x)
    module.drop_removed_types()
    after = module.inference(x)
    torch.testing.assert_close(after["log_probs"], before["log_probs"][..., [0, 2, 4]])
    torch.testing.assert_close(after["qs_mean"], before["qs_mean"])


def test_a_module_loads_weights_of_another_width():
    wide = CplMixVAE(n_input=10, n_types=6, n_hidden=8, n_layers=1, augmenter=Identity())
    module = CplMixVAE(n_input=10, n_types=3, n_hidden=8, n_layers=1, augmenter=Identity())
    module.load_state_dict(wide.state_dict())  # a checkpoint taken while 6 categories pretrained
    assert module.n_types == 6
    for key, value in wide.state_dict().items():
        torch.testing.assert_close(module.state_dict()[key], value)


def test_modularity_merge_joins_connected_pieces_before_separate_small_types():
    from scipy import sparse
    from sklearn.metrics import adjusted_rand_score

    from cplmixvi.model._type_init import modularity_merge

    # a large type in four pieces joined in a chain by few edges, two small separate types: as
    # the pieces join, the degree penalty makes the gain of the next piece negative, and below
    # that of joining the two small types (no edge between them); the merge must still join
    # the pieces (the simulator's two smallest types were merged so)
    graph, fine, group = _planted_graph([1200, 60, 60], [4, 1, 1])
    graph = graph.tolil()
    for piece in range(3):  # cut the large type's pieces apart, then join neighbours weakly
        inside = np.flatnonzero(fine == piece)
        outside = np.flatnonzero((fine > piece) & (fine < 4))
        graph[np.ix_(inside, outside)] = 0
        graph[np.ix_(outside, inside)] = 0
        nxt = np.flatnonzero(fine == piece + 1)
        for a, b in zip(inside[:5], nxt[:5], strict=True):
            graph[a, b] = graph[b, a] = 1
    graph = sparse.csr_matrix(graph)
    merged = modularity_merge(graph, fine, 3, resolution=0.4)
    assert adjusted_rand_score(group, merged) == 1.0


@pytest.mark.parametrize("n_labels", [2, 4])
def test_logistic_map_gives_the_fitted_probabilities_as_logits(n_labels):
    from sklearn.linear_model import LogisticRegression

    from cplmixvi.model._type_init import logistic_map

    # with two labels scikit-learn returns one logit difference; a single column broadcast over
    # both labels gave them equal logits (a uniform start of the two-type state fixture)
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(n_labels), 30)
    codes = rng.normal(size=(len(labels), 5)) + 3 * labels[:, None]
    coef, intercept = logistic_map(codes, labels)
    assert coef.shape == (5, n_labels) and intercept.shape == (n_labels,)
    logits = torch.as_tensor(codes @ coef + intercept)
    expected = LogisticRegression(max_iter=1000).fit(codes, labels).predict_proba(codes)
    np.testing.assert_allclose(torch.softmax(logits, -1).numpy(), expected, atol=1e-6)
    assert (logits.argmax(-1).numpy() == labels).mean() > 0.9


def test_encoder_dropout_acts_while_pretraining_only():
    torch.manual_seed(0)
    module = CplMixVAE(
        n_input=30, n_types=3, n_hidden=16, n_layers=2, dropout_rate=0.5, augmenter=Identity()
    )
    module.train()
    x = torch.poisson(torch.full((40, 30), 2.0))

    def two_passes():
        return [module.inference(x)["log_probs"] for _ in range(2)]

    module.pretraining = True
    first, second = two_passes()
    assert not torch.allclose(first, second)  # dropout draws other units each pass
    module.pretraining = False
    first, second = two_passes()
    torch.testing.assert_close(first, second)  # the consensus phase: no dropout in training
    paper = CplMixVAE(
        n_input=30, n_types=3, dropout_rate=0.5, objective="paper", augmenter=Identity()
    )
    paper.train()
    log_probs = [paper.inference(x)["log_probs"] for _ in range(2)]
    assert not torch.allclose(*log_probs)  # the paper's objective keeps it throughout
