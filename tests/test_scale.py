"""Scale: sorted minibatches, sparse and backed training, no full densification, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pytest
import scvi
import torch
from scipy import sparse

from cplmixvi import CplMixVI
from cplmixvi.train import is_distributed

SRC = str(Path(__file__).resolve().parents[1] / "src")
TRAIN = {
    "accelerator": "cpu",
    "devices": 1,
    "enable_progress_bar": False,
    "enable_model_summary": False,
}
SMALL = {"n_types": 3, "n_state": 2, "n_arms": 2, "n_hidden": 16, "n_layers": 1}


# ----- loader -------------------------------------------------------------------------------


def _batches(loader):
    return [{k: np.array(v) for k, v in batch.items()} for batch in loader]


@pytest.mark.parametrize("backed", [False, True])
def test_loader_gives_scvi_tools_minibatches(make_adata, tmp_path, backed):
    """Same seed: exactly the in-memory minibatches of scvi-tools' AnnDataLoader.

    Rows of a backed file are read in increasing order (what h5py needs) and reordered; rows in
    memory are read directly in the sampler's order.
    """
    from scvi.dataloaders import AnnDataLoader

    from cplmixvi.train import CplMixDataLoader

    adata = make_adata(n_cells=103, n_genes=7, seed=4)
    CplMixVI.setup_anndata(adata, layer=None, batch_key="batch")
    manager = CplMixVI._get_most_recent_anndata_manager(adata)
    subset = np.random.default_rng(0).permutation(103)[:90]
    torch.manual_seed(5)
    theirs = _batches(AnnDataLoader(manager, indices=subset, batch_size=16, shuffle=True))
    if backed:
        adata.write_h5ad(tmp_path / "data.h5ad")
        adata = anndata.read_h5ad(tmp_path / "data.h5ad", backed="r")
        CplMixVI.setup_anndata(adata, layer=None, batch_key="batch")
        manager = CplMixVI._get_most_recent_anndata_manager(adata)
    reads = []
    full = manager.create_torch_dataset()
    original = type(full).__getitem__

    def spy(self, rows):
        reads.append(np.asarray(rows))
        return original(self, rows)

    torch.manual_seed(5)
    type(full).__getitem__ = spy
    try:
        ours = _batches(CplMixDataLoader(manager, indices=subset, batch_size=16, shuffle=True))
    finally:
        type(full).__getitem__ = original
    assert len(ours) == len(theirs) == 6
    for mine, ref in zip(ours, theirs, strict=True):
        assert mine.keys() == ref.keys()
        for key in ref:
            np.testing.assert_array_equal(mine[key], ref[key])
    assert len(reads) == 6
    assert all(np.all(np.diff(r) > 0) for r in reads) is backed
    assert sorted(np.concatenate(reads).tolist()) == sorted(subset.tolist())


def test_loader_rejects_sparse_tensors(make_adata):
    from cplmixvi.train import CplMixDataLoader

    adata = make_adata(n_cells=20, n_genes=5)
    CplMixVI.setup_anndata(adata, layer="counts")
    manager = CplMixVI._get_most_recent_anndata_manager(adata)
    with pytest.raises(ValueError, match="load_sparse_tensor"):
        CplMixDataLoader(manager, load_sparse_tensor=True)


def test_is_distributed():
    from lightning.pytorch.strategies import DDPStrategy

    assert is_distributed("ddp") and is_distributed("ddp_spawn")
    assert is_distributed(DDPStrategy())
    assert not is_distributed("auto") and not is_distributed("single_device")


# ----- dense, CSR and backed give one model -------------------------------------------------


def _fit_probs(adata, seed=0):
    CplMixVI.setup_anndata(adata)
    scvi.settings.seed = seed
    model = CplMixVI(adata, gene_likelihood="nb", augmentation="thinning", **SMALL)
    model.train(max_epochs=2, batch_size=64, **TRAIN)
    return model, model.get_type_probabilities(per_arm=True)


def test_dense_sparse_and_backed_training_agree(make_adata, tmp_path):
    dense = make_adata(n_cells=200, n_genes=40, n_types=3, seed=1)
    del dense.layers["counts"]
    csr = dense.copy()
    csr.X = sparse.csr_matrix(csr.X)
    path = tmp_path / "counts.h5ad"
    csr.write_h5ad(path)
    backed = anndata.read_h5ad(path, backed="r")
    assert backed.isbacked

    model_dense, p_dense = _fit_probs(dense)
    _, p_csr = _fit_probs(csr)
    model_backed, p_backed = _fit_probs(backed)
    assert p_dense.shape == (2, 200, 3)
    np.testing.assert_allclose(p_csr, p_dense, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(p_backed, p_dense, rtol=1e-5, atol=1e-6)
    for (name, a), b in zip(
        model_dense.module.state_dict().items(),
        model_backed.module.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    backed.file.close()


def test_normal_likelihood_matches_torch_normal():
    from torch.distributions import Normal

    from cplmixvi.nn import gaussian_nll

    gen = torch.Generator().manual_seed(0)
    x, mean = torch.randn(2, 5, 7, generator=gen), torch.randn(2, 5, 7, generator=gen)
    log_std = torch.randn(2, 1, 7, generator=gen) * 0.3
    expected = -Normal(mean, log_std.exp()).log_prob(x).sum(-1)
    torch.testing.assert_close(gaussian_nll(x, mean, log_std), expected)


# ----- no full-matrix densification ---------------------------------------------------------

_NO_DENSIFY = """
import resource, sys
import numpy as np, scvi, torch
from anndata import AnnData
from scipy import sparse
from cplmixvi import CplMixVI

torch.set_num_threads(1)
n_cells, n_genes = 120_000, 10_000          # dense float32: 4.8 GB
rng = np.random.default_rng(0)
nnz_per_row = 20
indptr = np.arange(0, (n_cells + 1) * nnz_per_row, nnz_per_row)
indices = np.sort(rng.integers(0, n_genes, (n_cells, nnz_per_row)), axis=1).ravel()
data = rng.integers(1, 5, n_cells * nnz_per_row).astype(np.float32)
X = sparse.csr_matrix((data, indices, indptr), shape=(n_cells, n_genes))
X.sum_duplicates()
adata = AnnData(X)

def vm_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

limit = vm_bytes() + 2 * 1024**3             # 2 GiB above what is mapped now
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    np.ones((n_cells, n_genes), dtype=np.float32)
    sys.exit("the memory limit does not stop a dense copy")
except MemoryError:
    pass

CplMixVI.setup_anndata(adata)
scvi.settings.seed = 0
model = CplMixVI(adata, n_types=3, n_arms=2, n_hidden=16, n_layers=1)
model.train(max_epochs=1, batch_size=256, train_size=0.02, validation_size=0.0,
            accelerator="cpu", devices=1, enable_progress_bar=False,
            enable_model_summary=False)
probs = model.get_type_probabilities(indices=np.arange(0, n_cells, 97))
assert np.all(np.isfinite(probs)) and probs.shape == (len(range(0, n_cells, 97)), 3)
print("OK", len(model.train_indices))
"""


def test_training_never_densifies_the_whole_matrix(tmp_path):
    """A 120 000 x 10 000 CSR matrix trains and predicts under a 2 GiB address-space margin."""
    script = tmp_path / "no_densify.py"
    script.write_text(_NO_DENSIFY)
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["OK", "2400"]


# ----- DDP on two CPU processes -------------------------------------------------------------

_DDP = """
import json, os, sys
import numpy as np, scvi, torch
sys.path.insert(0, {tests!r})
from conftest import make_counts_adata
from cplmixvi import CplMixVI

torch.set_num_threads(1)
out = sys.argv[1]
scvi.settings.logging_dir = os.path.join(out, "logs")
adata = make_counts_adata(n_cells=256, n_genes=30, n_types=3, seed=2)
CplMixVI.setup_anndata(adata, layer="counts")
scvi.settings.seed = 0
model = CplMixVI(adata, n_types=3, n_arms=2, n_hidden=16, n_layers=1)
model.train(max_epochs=3, batch_size=32, accelerator="cpu", devices=2, strategy="ddp",
            enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=os.path.join(out, "lightning"))
rank = model.trainer.global_rank
if rank == 0:
    model.save(os.path.join(out, "model"), overwrite=True, save_anndata=False)
    history = {{k: v.to_numpy(dtype=float).ravel().tolist() for k, v in model.history.items()}}
    with open(os.path.join(out, "history.json"), "w") as f:
        json.dump({{"world_size": model.trainer.world_size,
                   "train_batches": model.trainer.num_training_batches,
                   "n_train": len(model.train_indices),
                   "history": history}}, f)
"""


def test_ddp_on_two_cpu_processes_trains_saves_and_loads(make_adata, tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(_DDP.format(tests=str(Path(__file__).parent)))
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    info = json.loads((tmp_path / "history.json").read_text())
    assert info["world_size"] == 2
    # each process sees half of the training cells per epoch: ceil(n_train / 2 / 32) batches
    assert info["train_batches"] == int(np.ceil(info["n_train"] / 2 / 32))
    losses = info["history"]["train_loss"]
    assert len(losses) == 3 and np.all(np.isfinite(losses))
    assert np.all(np.isfinite(info["history"]["consensus_kl_train"]))

    adata = make_adata(n_cells=256, n_genes=30, n_types=3, seed=2)
    model = CplMixVI.load(str(tmp_path / "model"), adata)
    probs = model.get_type_probabilities()
    assert probs.shape == (256, 3)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert model.get_type_assignments()["type"].between(0, 2).all()
