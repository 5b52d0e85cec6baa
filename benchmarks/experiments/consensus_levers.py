"""Screen of levers on the consensus phase: 4 sets x 3 seeds, and how stable the types are.

One CplMixVI fit per (dataset, seed, lever) with package defaults except the lever, in a fresh
process (one torch thread, ``OMP_WAIT_POLICY=PASSIVE``, two fits side by side). Besides the scores,
every row measures on 2 000 cells how often a cell's argmax type survives the training-time noise:
``stable_dropout`` (encoder in training mode, dropout and batch statistics, un-augmented input) and
``stable_aug`` (training mode and each arm's augmented copy), both against the evaluation-mode
argmax, and ``margin_median``, the median gap between the two largest type logits. Levers with
public options: ``default`` and ``drop0`` (``dropout_rate=0``); ``me<g>`` sets
``marginal_entropy_weight=g``; ``ns<d>`` ``n_state=d``; ``aug<name>`` ``augmentation=name``;
``cdrop0`` turns the encoder dropout off after the k-means start
(:func:`dropout_off_after_start`); ``lnvae<w>`` pretrains a logistic-normal type code
(:func:`logistic_normal_pretraining`); ``elbo<w>`` lets the ELBO's gradient reach the type
heads at weight ``w`` (:func:`elbo_into_types`); ``arms<n>`` ``n_arms=n``; ``thin<s>`` and
``gdrop<r>`` set the strengths of the default augmenter's binomial thinning (0.5) and gene
dropout (0.1); ``nh<n>`` ``n_hidden=n``;
``nl<n>`` ``n_layers=n``; ``bs<n>`` ``batch_size=n``; ``lr<x>`` ``train(lr=x)``; ``ep<f>`` trains
``f`` times the default epochs; ``pt<f>`` pretrains for ``f`` of them. Levers that patch the model:
``reseed`` re-seeds empty categories by bisecting k-means (:func:`reseed`); ``pcastart`` starts the
heads from k-means on scanpy's 50 PCs and ``mixstart`` from k-means on the codes and the PCs side by
side (:func:`pca_start`); ``zscore<clip>`` standardises the encoder input per gene
(:func:`zscore_input`); ``codecouple<w>`` couples the arms' codes while pretraining
(:func:`couple_pretraining`); ``fpow<g>`` divides the target by the batch's type frequency to the
power ``g`` and ``sharp<t>`` raises the fused posterior to ``t`` instead of 2
(:func:`patch_target`); ``gstart<r>`` starts the heads from k-means at 2K merged to K by
modularity at resolution ``r`` (:func:`graph_start`); ``clr<x>`` multiplies the learning rate
by ``x`` in the consensus phase (:func:`phase_lr_callback`); ``split<f>`` fills empty categories
with self-contained pieces of live ones during the first ``f`` of the phase
(:func:`split_into_empty`); ``over<f>`` trains with ``f * K`` categories and merges them
to K by Ward's criterion (:func:`merge_by_ward`), ``overm<f>`` by modularity on the codes' graph
(:func:`merge_by_graph`); ``wide<n>`` pretrains ``max(K, n)``
categories, merges their codes to K at the start and removes the rest (:func:`wide_start`);
``remap`` makes each start type's one-hot act on the decoder, the state head and the prior as
its mean pretraining code did (:func:`remap_type_inputs`). The rows of
``benchmarks/results/consensus_levers.jsonl`` named ``norm``, ``clean``, ``lrdecay`` and ``beta0.1``
were made with temporary switches, since removed (``norm`` became the default): see
``benchmarks/results/consensus_levers.md``. The rows are appended under the lever's name, with
the package defaults of their day: a lever rerun on later defaults gets a new name
(``<lever>@<day>``), and ``levers.csv`` names the rows each lever is compared with
(``summarise_levers.py --table``). Usage::

    python benchmarks/experiments/consensus_levers.py --levers default drop0 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _env import append_jsonl, in_fresh_processes  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "results" / "consensus_levers.jsonl"


def run_one(dataset: str, seed: int, lever: str) -> dict:
    import time

    import numpy as np
    import scvi
    import torch

    torch.set_num_threads(1)
    from clustering import DATASETS, library_versions, load

    from cplmixvi import CplMixVI
    from cplmixvi.metrics import clustering_scores
    from cplmixvi.model._training import default_max_epochs

    adata = load(dataset)
    truth = adata.obs["cell_type"].astype(str).to_numpy()
    scvi.settings.seed = seed
    CplMixVI.setup_anndata(adata)
    kwargs = {"dropout_rate": 0.0} if "drop0" in lever.split(",") else {}
    for token in lever.split(","):
        if token.startswith("me"):
            kwargs["marginal_entropy_weight"] = float(token[2:])
        if token.startswith("ns"):  # ns<d>: a d-dimensional state
            kwargs["n_state"] = int(token[2:])
        if token.startswith("aug"):  # aug<name>: augmentation=name, e.g. augnone
            kwargs["augmentation"] = token[3:]
        if token.startswith("arms"):  # arms<n>: n arms
            kwargs["n_arms"] = int(token[4:])
        if token.startswith("nh"):  # nh<n>: hidden layers of n units
            kwargs["n_hidden"] = int(token[2:])
        if token.startswith("nl"):  # nl<n>: n hidden layers in the encoder and decoder
            kwargs["n_layers"] = int(token[2:])
    thin = [float(t[4:]) for t in lever.split(",") if t.startswith("thin")]
    gdrop = [float(t[5:]) for t in lever.split(",") if t.startswith("gdrop")]
    if thin or gdrop:  # thin<s>, gdrop<r>: the default augmenter's two strengths
        from cplmixvi.augment import BinomialThinning, GeneDropout

        thinning = BinomialThinning(thin[0] if thin else 0.5)
        kwargs["augmentation"] = [thinning, GeneDropout(gdrop[0] if gdrop else 0.1)]
    train_kwargs = {}
    for token in lever.split(","):
        if token.startswith("ep"):  # e.g. ep1.4: 1.4 times the default epochs
            train_kwargs["max_epochs"] = round(float(token[2:]) * default_max_epochs(adata.n_obs))
        if token.startswith("bs"):  # bs<n>: minibatches of n cells in both phases
            train_kwargs["batch_size"] = int(token[2:])
        if token.startswith("lr"):  # lr<x>: Adam's learning rate in both phases, e.g. lr3e-3
            train_kwargs["lr"] = float(token[2:])
        if token.startswith("pt"):  # e.g. pt0.75: that fraction of the default epochs pretrains
            n_epochs = default_max_epochs(adata.n_obs)
            train_kwargs["pretrain_epochs"] = round(float(token[2:]) * n_epochs)
    for token in lever.split(","):
        if token.startswith("split"):  # split<f>: self-contained pieces into empty categories
            frac = float(token[5:] or 0.75)
            train_kwargs["callbacks"] = [split_callback(lambda: model, frac)]
        if token.startswith("reseed"):  # reseed<f>: split into empty categories, first f of phase
            frac = float(token[6:] or 0.75)
            train_kwargs["callbacks"] = [reseed_callback(lambda: model, frac)]
        if token.startswith("clr"):  # clr<x>: the learning rate times x in the consensus phase
            train_kwargs["callbacks"] = [phase_lr_callback(float(token[3:]))]
    k = DATASETS[dataset]
    # over<f> / overm<f>: f*K categories, merged to K at the end by Ward's criterion / modularity
    over = [float(t.lstrip("overm") or 2) for t in lever.split(",") if t.startswith("over")]
    by_graph = any(t.startswith("overm") for t in lever.split(","))
    # wide<n>: max(K, n) categories pretrain; the start merges them to K and removes the rest
    wide = [int(t[4:]) for t in lever.split(",") if t.startswith("wide")]
    n_types = round(over[0] * k) if over else max(k, wide[0]) if wide else k
    model = CplMixVI(adata, n_types=n_types, **kwargs)
    remap = "remap" in lever.split(",")
    if n_types > k and wide or remap:
        wide_start(k, remap)
    row = {"dataset": dataset, "seed": seed, "lever": lever, "versions": library_versions()}
    for token in lever.split(","):
        if token.startswith("zscore"):  # zscore<clip>: per-gene standardised encoder input
            zscore_input(model, adata, float(token[6:] or 10))
        if token.startswith("codecouple"):  # codecouple<w>: arms' codes coupled while pretraining
            couple_pretraining(model, float(token[10:] or 1))
        if token.startswith("lnvae"):  # lnvae<w>: logistic-normal type code while pretraining
            logistic_normal_pretraining(model, float(token[5:] or 1))
        if token.startswith("elbo"):  # elbo<w>: the ELBO reaches the type heads at weight w
            elbo_into_types(model, float(token[4:]))
        if token.startswith("fpow"):  # fpow<g>: target q^2 / f^g (f: the batch's type frequency)
            patch_target(power=2.0, frequency_power=float(token[4:]))
        if token.startswith("sharp"):  # sharp<t>: target q^t instead of q^2
            patch_target(power=float(token[5:]), frequency_power=0.0)
    if "cdrop0" in lever.split(","):  # dropout off in the consensus phase only
        dropout_off_after_start()
    for token in lever.split(","):
        if token.startswith(
            "gstart"
        ):  # gstart<r>: the package's merged k-means start, resolution r
            graph_start(float(token[6:] or 0.4))
    if "pcastart" in lever or "mixstart" in lever:
        pca_start(adata, DATASETS[dataset], seed, truth, row, mix="mixstart" in lever)
    t0 = time.perf_counter()
    model.train(
        accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, **train_kwargs
    )
    row["fit_s"] = time.perf_counter() - t0
    if "split" in lever:  # (epoch, categories filled)
        row["filled"] = train_kwargs["callbacks"][0].history
    if over:  # over<f>: f*K categories, merged to K by Ward's criterion (overm: modularity)
        row["live_before_merge"] = int(model.get_type_assignments()["type"].nunique())
        labels, arm_labels = (merge_by_graph if by_graph else merge_by_ward)(model, k)
        row.update(clustering_scores(truth, labels.astype(str)))
        row["types_with_cells"] = int(len(np.unique(labels)))
        row["consensus"] = float((arm_labels == labels).all(0).mean())
        return row
    table = model.get_type_assignments()
    row.update(clustering_scores(truth, table["type"].astype(str)))
    row["types_with_cells"] = int(table["type"].nunique())
    row["consensus"] = float((table["arm_agreement"] == 1).mean())
    row.update(stability(model))
    return row


def pca_start(adata, k: int, seed: int, truth, row: dict, mix: bool = False) -> None:
    """Start the heads from k-means on scanpy's 50 PCs instead of the arms' codes.

    With ``mix``, k-means runs on the codes and the PCs side by side, each block scaled to
    unit total variance.

    The heads become the Gaussian assignment around each PCA cluster's mean joint clr code;
    ``start_*`` in ``row`` score the heads' argmax at the start (and ``pca_*`` the PCA
    clusters themselves).
    """
    import numpy as np
    from baselines import kmeans_labels, pca_embedding

    import cplmixvi.model._training as model_module
    from cplmixvi.metrics import clustering_scores, fuse

    pcs = pca_embedding(adata, seed).obsm["X_pca"]
    labels = kmeans_labels(pcs, k, seed)
    row.update({f"pca_{m}": v for m, v in clustering_scores(truth, labels).items()})

    def init(model, *args, **kwargs):
        nonlocal labels
        log_probs, _ = model._infer(model.adata, None, 1024)
        codes = log_probs - log_probs.mean(-1, keepdims=True)
        n_arms, n, _ = codes.shape
        joined = codes.transpose(1, 0, 2).reshape(n, n_arms * k)
        if mix:
            blocks = [b - b.mean(0) for b in (joined, pcs)]
            both = np.hstack([b / np.sqrt((b**2).sum(1).mean()) for b in blocks])
            labels = kmeans_labels(both, k, seed)
        centroids = np.stack([joined[labels == j].mean(0) for j in range(k)])
        variance = ((joined - centroids[labels]) ** 2).sum() / joined.size
        centroids = centroids.reshape(k, n_arms, k).transpose(1, 0, 2)
        centroid_heads(model, centroids, beta=0.5 / max(variance, 1e-8))
        start = fuse(model._infer(model.adata, None, 1024)[0]).argmax(-1)
        row.update({f"start_{m}": v for m, v in clustering_scores(truth, start).items()})

    model_module.init_types_by_kmeans = init


def centroid_heads(model, centroids, beta: float) -> None:
    """Each arm's head as the Gaussian assignment to ``centroids`` ``(A, K, K)`` of its clr code.

    ``softmax(-beta |z - mu_k|^2)`` is ``softmax(2 beta mu_k . z - beta |mu_k|^2)``: a linear map
    of the clr code ``z`` (the package's k-means start until 2026-12-04).
    """
    import torch

    centroids = torch.as_tensor(centroids)
    coef = 2 * beta * centroids.transpose(1, 2)
    model.module.start_types(coef, -beta * centroids.pow(2).sum(-1))


def graph_start(resolution: float) -> None:
    """The heads start from the package's merged k-means start at ``resolution``."""
    import cplmixvi.model._training as model_module
    from cplmixvi.model._type_init import init_types_by_kmeans

    def init(model, *args, **kwargs):
        init_types_by_kmeans(model, resolution)

    model_module.init_types_by_kmeans = init


def remap_type_inputs(model, probs, labels, k: int) -> None:
    """Make type ``j``'s one-hot act on the decoder, state head and prior as its mean code did.

    ``probs``: each arm's pretraining code ``q(c|x)`` ``(A, N, W)``; the rows of category
    ``j < k`` of every layer that reads the type become the mean code of the cells labelled ``j``
    times the old rows (those layers are linear in the code); the other rows are zeroed.
    """
    import numpy as np
    import torch

    module = model.module
    member = np.eye(k)[labels]  # (N, k)
    mean_code = torch.as_tensor(
        np.einsum("nk,anw->akw", member, probs) / member.sum(0)[None, :, None]
    )
    n_state, n_hidden = module.n_state, module.state_head.weight.shape[1] - module.n_types

    def remap(weight, start):
        rows = weight[:, start : start + module.n_types]
        new = torch.bmm(mean_code.to(rows), rows)
        rows.zero_()
        rows[:, :k] = new

    with torch.no_grad():
        remap(module.decoder.linears[0].weight, n_state)
        remap(module.state_head.weight, n_hidden)
        remap(module.prior_mean, 0)
        remap(module.prior_logvar, 0)


def wide_start(k: int, remap: bool = False) -> None:
    """The package's graph-merged start to ``k`` types from a wider code; the rest removed."""
    import numpy as np
    import torch

    import cplmixvi.model._training as model_module
    from cplmixvi.model._type_init import joint_codes, logistic_map, merged_labels

    def init(model, *args, **kwargs):
        codes = joint_codes(model)
        wide = codes.shape[-1]
        labels = merged_labels(codes, k)
        coefs, intercepts = [], []
        for arm_codes in codes:
            coef, intercept = logistic_map(arm_codes, labels)
            coefs.append(np.hstack([coef, np.zeros((wide, wide - k))]))
            intercepts.append(np.hstack([intercept, np.full(wide - k, -30.0)]))
        model.module.start_types(
            torch.as_tensor(np.stack(coefs)), torch.as_tensor(np.stack(intercepts))
        )
        if remap:
            # q(c|x) from the clr codes (written out: the rows were made with these digits)
            probs = np.exp(codes - np.log(np.exp(codes).sum(-1, keepdims=True)))
            remap_type_inputs(model, probs, labels, k)
        if wide > k:
            model.module.remove_types(list(range(k, wide)))

    model_module.init_types_by_kmeans = init


def dropout_off_after_start() -> None:
    """Turn every dropout layer off once the k-means start has set the type heads."""
    import torch

    import cplmixvi.model._training as model_module

    start = model_module.init_types_by_kmeans

    def init(model, *args, **kwargs):
        start(model, *args, **kwargs)
        for layer in model.module.modules():
            if isinstance(layer, torch.nn.Dropout):
                layer.p = 0.0

    model_module.init_types_by_kmeans = init


def zscore_input(model, adata, clip: float) -> None:
    """The type encoder reads each gene's log-normalised value standardised over the cells.

    As scanpy's ``pp.scale(max_value=clip)`` does before PCA (and scDeepCluster before its
    autoencoder): ``(log1p(counts per 10^4) - mean_g) / sd_g``, clipped at ``clip``.
    """
    import numpy as np
    import scanpy as sc
    import torch

    from cplmixvi.nn import log_normalise

    norm = sc.pp.normalize_total(adata, target_sum=1e4, inplace=False)["X"]
    norm = norm.toarray() if hasattr(norm, "toarray") else np.asarray(norm)
    logged = np.log1p(norm)
    mean = torch.as_tensor(logged.mean(0), dtype=torch.float32)
    sd = torch.as_tensor(logged.std(0), dtype=torch.float32).clamp_min(1e-6)
    module = model.module

    def encoder_input(counts):
        z = (log_normalise(counts) - mean.to(counts)) / sd.to(counts)
        return z.clamp(max=clip)

    module._encoder_input = encoder_input


def couple_pretraining(model, weight: float) -> None:
    """While pretraining, add ``weight`` times the squared distance of the arms' clr type codes.

    Each arm sees its own augmented copy of a cell; the term asks the arms to give the copies
    the same code, so the codes keep what the augmentation preserves (the type), as the
    coupling of Eq. 7 does, before the k-means start reads them.
    """
    import torch
    from scvi.module.base import LossOutput

    module = model.module
    loss = module.loss

    def coupled(tensors, inference_outputs, generative_outputs, kl_weight=1.0):
        out = loss(tensors, inference_outputs, generative_outputs, kl_weight)
        if not module.pretraining:
            return out
        log_probs = inference_outputs["log_probs"]
        clr = log_probs - log_probs.mean(-1, keepdim=True)
        first, second = torch.triu_indices(module.n_arms, module.n_arms, 1)
        distance = (clr[first] - clr[second]).pow(2).sum(-1).mean()
        metrics = dict(out.extra_metrics, code_distance=distance.detach())
        return LossOutput(
            loss=out.loss + weight * distance,
            reconstruction_loss=out.reconstruction_loss,
            kl_local=out.kl_local,
            extra_metrics=metrics,
        )

    module.loss = coupled


def logistic_normal_pretraining(model, weight: float) -> None:
    """While pretraining, the type code is ``softmax(z)``, ``z ~ N(logits, sigma^2)``.

    A logistic-normal VAE in place of the deterministic code: a new per-arm head gives
    ``log sigma^2`` from the encoder's hidden layer and ``weight * KL(N(logits, sigma^2) ||
    N(0, I))`` joins the loss, so the logits (whose clr the k-means start clusters) are a
    regularised latent, as scVI's. After pretraining the type head is used as before.
    """
    import torch
    from scvi.module.base import LossOutput

    from cplmixvi.nn import ArmLinear

    module = model.module
    head, loss = module.type_head, module.loss
    module.code_logvar = ArmLinear(module.n_arms, head.weight.shape[-2], module.n_types)
    torch.nn.init.zeros_(module.code_logvar.weight)
    torch.nn.init.constant_(module.code_logvar.bias, -2.0)
    mean_forward = head.forward
    state = {}

    def forward(h):
        mean = mean_forward(h)
        if not (module.training and module.pretraining):
            return mean
        logvar = module.code_logvar(h).clamp(-10.0, 5.0)
        state["kl"] = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
        return mean + torch.exp(0.5 * logvar) * torch.randn_like(mean)

    def with_kl(tensors, inference_outputs, generative_outputs, kl_weight=1.0):
        out = loss(tensors, inference_outputs, generative_outputs, kl_weight)
        if not (module.training and module.pretraining):
            return out
        kl = state["kl"].sum(0).mean()
        return LossOutput(
            loss=out.loss + weight * kl_weight * kl,
            reconstruction_loss=out.reconstruction_loss,
            kl_local=out.kl_local,
            extra_metrics=dict(out.extra_metrics, code_kl=kl.detach()),
        )

    head.forward = forward
    module.loss = with_kl


def elbo_into_types(model, weight: float) -> None:
    """In the consensus phase the ELBO's gradient reaches the type heads, scaled by ``weight``.

    The type sample enters the state posterior and the decoder as ``weight * c + (1 - weight)
    * c.detach()``: the same values, ``weight`` times the gradient (the defaults detach it, 0;
    the paper's objective has 1).
    """
    import cplmixvi.module._cplmixvae as module_file

    module = model.module
    inference, sample = module.inference, module_file.gumbel_softmax

    def scaled_sample(logits, tau):
        c = sample(logits, tau=tau)
        return weight * c + (1.0 - weight) * c.detach()

    def without_detach(*args, **kwargs):
        module.objective = "paper"  # the inference detaches the sample only for "consensus"
        try:
            return inference(*args, **kwargs)
        finally:
            module.objective = "consensus"

    module_file.gumbel_softmax = scaled_sample
    module.inference = without_detach


def patch_target(power: float, frequency_power: float) -> None:
    """The consensus target becomes ``p_ik ∝ q_ik^power / f_k^frequency_power``.

    ``q`` is the arms' fused posterior and ``f_k = mean_i q_ik`` its type frequency in the
    minibatch: ``frequency_power=1`` is DEC's target, ``0`` (with ``power=2``) the default's.
    """
    import torch

    import cplmixvi.module._cplmixvae as module_file

    def target(log_probs):
        fused = torch.log_softmax(log_probs.detach().mean(0), dim=-1)
        log_freq = torch.logsumexp(fused, dim=0) - fused.new_tensor(fused.shape[0]).log()
        return torch.softmax(power * fused - frequency_power * log_freq, dim=-1)

    module_file.sharpened_target = target


def merge_by_ward(model, k: int) -> tuple:
    """Merge the fused types down to ``k`` by Ward's criterion on the arms' encoder output.

    The clean types are the fused argmax in evaluation mode; the two types whose merge least
    raises the within-type sum of squares of the arms' mean encoder output become one, until
    ``k`` remain (:func:`start_types.merge_to`). (Merging the pair that augmentation swaps most
    often was worse: PBMC seed 0 ARI 0.64, worm 0.23.) Returns the merged fused labels ``(N,)``
    and each arm's own argmax through the same merges ``(A, N)``.
    """
    import numpy as np
    from start_quality import arm_hidden
    from start_types import merge_to

    from cplmixvi.metrics import fuse

    log_probs = model._infer(model.adata, None, 1024)[0]
    live, clean = np.unique(fuse(log_probs).argmax(-1), return_inverse=True)
    merged = merge_to(arm_hidden(model).mean(0), clean, k, ward=True)
    relabel = np.full(log_probs.shape[-1], -1)
    relabel[live] = [merged[clean == j][0] for j in range(len(live))]
    return merged, relabel[log_probs.argmax(-1)]


def merge_by_graph(model, k: int) -> tuple:
    """Merge the fused types down to ``k`` as the package's start merges k-means pieces.

    The clean types (fused argmax in evaluation mode) are joined by the largest modularity gain
    (resolution 0.4) on the 15-nearest-neighbour graph of the arms' joint clr codes
    (:func:`~cplmixvi.model._type_init.modularity_merge`). Returns the merged fused labels
    ``(N,)`` and each arm's own argmax through the same merges ``(A, N)``.
    """
    import numpy as np
    from sklearn.neighbors import kneighbors_graph

    from cplmixvi.metrics import fuse
    from cplmixvi.model._type_init import joint_codes, modularity_merge

    log_probs = model._infer(model.adata, None, 1024)[0]
    live, clean = np.unique(fuse(log_probs).argmax(-1), return_inverse=True)
    codes = joint_codes(model)
    joined = codes.transpose(1, 0, 2).reshape(codes.shape[1], -1)
    graph = kneighbors_graph(joined, 15)
    merged = modularity_merge(graph + graph.T, clean, min(k, len(live)), 0.4)
    relabel = np.full(log_probs.shape[-1], -1)
    relabel[live] = [merged[clean == j][0] for j in range(len(live))]
    return merged, relabel[log_probs.argmax(-1)]


def phase_callback(action, frac: float):
    """A callback that runs ``action()`` after each epoch of the first ``frac`` of the
    consensus phase; its ``history`` lists ``(epoch, what action returned)``."""
    from lightning.pytorch.callbacks import Callback

    class Phase(Callback):
        def __init__(self):
            self.history = []

        def on_train_epoch_end(self, trainer, pl_module):
            start = pl_module.pretrain_epochs
            n_phase = trainer.max_epochs - start
            if pl_module.module.pretraining or trainer.current_epoch + 1 - start > frac * n_phase:
                return
            self.history.append((trainer.current_epoch, action()))

    return Phase()


def phase_lr_callback(factor: float):
    """A callback that multiplies every learning rate by ``factor`` once pretraining has ended."""
    from lightning.pytorch.callbacks import Callback

    class PhaseLr(Callback):
        done = False

        def on_train_batch_start(self, trainer, pl_module, *args):
            if self.done or pl_module.module.pretraining:
                return
            for optimizer in trainer.optimizers:
                for group in optimizer.param_groups:
                    group["lr"] *= factor
            self.done = True

    return PhaseLr()


def split_callback(get_model, frac: float):
    """Fill empty categories (:func:`split_into_empty`) in the first ``frac`` of the phase."""
    return phase_callback(lambda: split_into_empty(get_model()), frac)


def split_into_empty(
    model, min_cells: int = 5, min_piece: int = 20, min_self: float = 0.8, max_frac: float = 0.5
) -> int:
    """Give each empty category a self-contained piece of a live one; return how many.

    k-means with 2K clusters on the arms' mean encoder output cuts the cells into pieces; a
    piece qualifies when it holds at least ``min_piece`` cells, 80 % of them in one live
    category (its parent) and at most ``max_frac`` of the parent, and at least ``min_self`` of
    its cells' 15 nearest neighbours lie in the piece (a type the start merged into a
    neighbour, not a slice of a large type). The most self-contained pieces go to the empty
    categories (fewer than ``min_cells`` cells): each arm's head row of the empty category
    becomes the parent's row plus a logistic-regression discriminant of piece against the rest
    of the parent on that arm's encoder output, so the piece's cells move to it and every
    other category keeps its row.
    """
    import numpy as np
    import scvi
    import torch
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import NearestNeighbors
    from start_quality import arm_hidden

    from cplmixvi.metrics import fuse

    labels = fuse(model._infer(model.adata, None, 1024)[0]).argmax(-1)
    k = model.module.n_types
    counts = np.bincount(labels, minlength=k)
    empty = [j for j in range(k) if counts[j] < min_cells]
    if not empty:
        return 0
    hidden = arm_hidden(model)
    features = hidden.mean(0)
    seed = scvi.settings.seed
    pieces = KMeans(2 * k, n_init=3, random_state=seed).fit_predict(features)
    neighbours = NearestNeighbors(n_neighbors=16).fit(features).kneighbors(features)[1][:, 1:]
    candidates = []
    for piece in range(2 * k):
        members = pieces == piece
        if members.sum() < min_piece:
            continue
        parent = np.bincount(labels[members], minlength=k).argmax()
        inside = np.mean(labels[members] == parent)
        contained = np.mean(members[neighbours[members]])
        if inside >= 0.8 and members.sum() <= max_frac * counts[parent] and contained >= min_self:
            candidates.append((contained, piece, parent))
    head = model.module.type_head
    used = set()
    filled = 0
    for _, piece, parent in sorted(candidates, reverse=True):
        if filled == len(empty) or parent in used:
            continue
        target = empty[filled]
        rest = labels == parent
        y = pieces[rest] == piece
        with torch.no_grad():
            for arm in range(model.module.n_arms):
                lr = LogisticRegression(max_iter=500).fit(hidden[arm][rest], y)
                v = torch.as_tensor(lr.coef_[0], dtype=head.weight.dtype)
                head.weight[arm, :, target] = head.weight[arm, :, parent] + v
                head.bias[arm, 0, target] = head.bias[arm, 0, parent] + float(lr.intercept_[0])
        used.add(parent)
        filled += 1
    return filled


def reseed_callback(get_model, frac: float, min_cells: int = 5):
    """After each consensus epoch in the first ``frac`` of the phase, re-seed empty categories.

    Every category holding fewer than ``min_cells`` cells (fused argmax over all cells) takes
    one half of a 2-means split of the live category with the largest within-cluster sum of
    squares in the arms' joint clr codes (bisecting k-means); the heads are then reset to the
    Gaussian assignment around the categories' mean codes, as at the k-means start.
    """
    parents, tried = {}, set()
    return phase_callback(lambda: reseed(get_model(), min_cells, parents, tried), frac)


def reseed(model, min_cells: int, parents: dict, tried: set) -> int:
    """One re-seeding pass; a parent whose split died again is not split a second time."""
    import numpy as np
    import scvi
    from sklearn.cluster import KMeans

    from cplmixvi.metrics import fuse

    log_probs, _ = model._infer(model.adata, None, 1024)
    labels = fuse(log_probs).argmax(-1)
    codes = log_probs - log_probs.mean(-1, keepdims=True)
    n_arms, n, k = codes.shape
    joined = codes.transpose(1, 0, 2).reshape(n, n_arms * k)
    counts = np.bincount(labels, minlength=k)
    empty = [j for j in np.argsort(counts) if counts[j] < min_cells]
    if not empty:
        return 0
    tried.update(parents.pop(e) for e in empty if e in parents)

    def sse(j):
        members = joined[labels == j]
        return ((members - members.mean(0)) ** 2).sum() if len(members) > 1 else 0.0

    for e in empty:
        sizes = np.bincount(labels, minlength=k)
        candidates = [j for j in range(k) if sizes[j] >= 4 * min_cells and j not in tried]
        if not candidates:
            break
        big = max(candidates, key=sse)
        parents[e] = big
        idx = np.flatnonzero(labels == big)
        split = KMeans(2, n_init=3, random_state=scvi.settings.seed).fit(joined[idx])
        part = split.labels_ == np.argmin(np.bincount(split.labels_))
        labels[idx[part]] = e
    far = joined.mean(0) - 1e3 * np.tile(np.eye(k), n_arms)  # (k, A*k): no cell goes there
    centroids = np.stack(
        [joined[labels == j].mean(0) if (labels == j).any() else far[j] for j in range(k)]
    )
    variance = sum(((joined[labels == j] - centroids[j]) ** 2).sum() for j in range(k))
    variance /= joined.size
    centroids = centroids.reshape(k, n_arms, k).transpose(1, 0, 2)
    centroid_heads(model, centroids, beta=0.5 / max(variance, 1e-8))
    return len(empty)


def stability(model, n: int = 2000) -> dict:
    """How often a cell's argmax type survives the training-time noise (dropout, augmentation)."""
    import numpy as np
    import torch

    module, adata = model.module, model.adata
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(adata.n_obs, min(n, adata.n_obs), replace=False))
    x = adata.X[idx]
    x = x.toarray() if hasattr(x, "toarray") else np.asarray(x)
    x = torch.as_tensor(x, dtype=torch.float32)

    def argmax(train: bool, aug: bool):
        module.train(train)
        with torch.no_grad():
            xa = module.augmenter(x, module.n_arms) if aug else x.expand(module.n_arms, *x.shape)
            logits = module.type_head(module.encoder(module._encoder_input(xa), None))
        module.eval()
        return logits, logits.argmax(-1)

    logits, clean = argmax(False, False)
    top = logits.topk(2, -1).values
    out = {"margin_median": float((top[..., 0] - top[..., 1]).median())}
    out["stable_dropout"] = float((argmax(True, False)[1] == clean).float().mean())
    out["stable_aug"] = float((argmax(True, True)[1] == clean).float().mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--datasets", nargs="+", default=["mop_10x", "pbmc_10x_4k", "worm_neuron", "mouse_bladder"]
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--levers", nargs="+", default=["default"])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    runs = [(d, s, lv) for lv in args.levers for s in args.seeds for d in args.datasets]
    calls = [(run_one, run) for run in runs]
    append_jsonl(in_fresh_processes(calls, args.jobs, threads=1), OUT)


if __name__ == "__main__":
    main()
