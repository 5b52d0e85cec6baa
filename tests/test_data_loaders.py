"""The portal loaders on tiny files in the portals' formats (written here; nothing downloads)."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from portal_fixtures import TASIC_CLUSTERS, tasic_gene_table, write_tasic2018, write_yao2021
from scipy import sparse

from cplmixvi.data import tasic2018, tasic2018_genes, tasic2018_taxonomy, yao2021

KEPT = {
    "VISp": [
        "L2/3 IT VISp Rrad",
        "L6b Col8a1 Rprm",
        "L5 NP VISp Trhr Met",
        "Pvalb Tpbg",
        "Lamp5 Lsp1",
    ],
    "ALM": ["L6 CT Nxph2 Sla", "L5 NP VISp Trhr Met", "L2/3 IT ALM Sla", "Pvalb Tpbg", "Sst Chodl"],
}


def _expected_cells(region: str) -> int:
    dropped = {"CR Lhx5", "Meis2 Adamts19", "Low Quality"}
    return sum(
        n
        for cluster, klass, _, n in TASIC_CLUSTERS[region]
        if cluster not in dropped and klass in ("GABAergic", "Glutamatergic")
    )


# ----- package data ------------------------------------------------------------------------------
def test_shipped_gene_list_and_taxonomy():
    genes = tasic2018_genes()
    assert len(genes) == 5032 and len(set(genes)) == 5032
    assert genes[:3] == ["Malat1", "Vip", "Npy"]
    tree = tasic2018_taxonomy()
    leaves = tree[tree["leaf"]].sort_values("x")
    assert len(leaves) == 133  # 115 kept neuron types + 2 dropped + 16 non-neuronal
    assert leaves["label"].iloc[0] == "L2/3 IT VISp Rrad"
    assert {"L6b Col8a1 Rprm", "L6 CT Nxph2 Sla"} <= set(leaves["label"])
    assert leaves["col"].str.match(r"^#[0-9A-Fa-f]{6}$").all()


# ----- Tasic 2018 --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tasic_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tasic")
    written = write_tasic2018(folder, zipped=("VISp",))  # VISp zipped, ALM extracted
    return folder, written


@pytest.fixture(scope="module")
def tasic(tasic_files):
    return tasic2018(tasic_files[0], chunksize=700)


def test_tasic_shapes_filtering_and_labels(tasic):
    n_visp, n_alm = _expected_cells("VISp"), _expected_cells("ALM")
    assert tasic.shape == (n_visp + n_alm, 5032)
    assert set(tasic.obs["class"]) == {"GABAergic", "Glutamatergic"}
    clusters = set(tasic.obs["cluster"])
    assert clusters == set(KEPT["VISp"]) | set(KEPT["ALM"])
    assert not clusters & {"CR Lhx5", "Meis2 Adamts19", "Low Quality", "Astro Aqp4"}
    # the two region-specific names are unified with the taxonomy's
    assert not clusters & {"L6b VISp Col8a1 Rprm", "L6 CT ALM Nxph2 Sla"}
    assert (tasic.obs["region"] == "VISp").sum() == n_visp
    assert list(tasic.obs["region"].cat.categories) == ["ALM", "VISp"]


def test_tasic_gene_order_and_counts(tasic, tasic_files):
    """Genes in the paper's order; every value equals the source matrix's for that cell/gene."""
    _, written = tasic_files
    assert list(tasic.var_names) == tasic2018_genes()
    assert sparse.issparse(tasic.X) and tasic.X.format == "csr"
    assert (tasic.layers["counts"] != tasic.X).nnz == 0
    symbols = tasic_gene_table(tasic2018_genes())["gene_symbol"].tolist()
    for region, (_, matrix) in written.items():
        source = matrix.set_axis(symbols, axis=0)
        cells = tasic.obs_names[tasic.obs["region"] == region]
        expected = source.loc[tasic2018_genes(), cells].to_numpy().T
        np.testing.assert_array_equal(tasic[cells].X.toarray(), expected)


def test_tasic_taxonomy_order_and_colours(tasic):
    tree = tasic2018_taxonomy()
    leaves = tree[tree["leaf"]].sort_values("x")
    present = set(tasic.obs["cluster"])
    order = [label for label in leaves["label"] if label in present]
    assert list(tasic.obs["cluster"].cat.categories) == order
    assert tasic.uns["tasic2018"]["taxonomy_order"] == order
    colours = leaves.set_index("label")["col"]
    assert list(tasic.uns["cluster_colors"]) == [colours[c] for c in order]


def test_tasic_metadata_in_obs(tasic, tasic_files):
    _, written = tasic_files
    samples = pd.concat([written[r][0] for r in ("VISp", "ALM")]).set_index("sample_name")
    obs = tasic.obs
    assert {"seq_batch", "brain_region", "subclass", "sex", "confusion_score"} <= set(obs)
    np.testing.assert_array_equal(
        obs["seq_batch"].astype(str), samples.loc[obs.index, "seq_batch"].astype(str)
    )


def test_tasic_options(tasic_files):
    folder, _ = tasic_files
    everything = tasic2018(folder, genes=None, neurons_only=False, drop_clusters=())
    n_all = sum(n for r in TASIC_CLUSTERS.values() for *_, n in r)
    assert everything.shape == (n_all, 5032 + 40)
    assert "Astro Aqp4" in set(everything.obs["cluster"])
    subset = tasic2018(folder, genes=["Vip", "Malat1"], regions=("ALM",))
    assert list(subset.var_names) == ["Vip", "Malat1"]
    assert subset.n_obs == _expected_cells("ALM")


def test_tasic_both_archives(tmp_path):
    write_tasic2018(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.zip")) == [
        "mouse_ALM_gene_expression_matrices_2018-06-14.zip",
        "mouse_VISp_gene_expression_matrices_2018-06-14.zip",
    ]
    with zipfile.ZipFile(tmp_path / "mouse_ALM_gene_expression_matrices_2018-06-14.zip") as z:
        assert "mouse_ALM_2018-06-14_exon-matrix.csv" in z.namelist()
    adata = tasic2018(tmp_path)
    assert adata.n_obs == _expected_cells("VISp") + _expected_cells("ALM")


def test_tasic_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        tasic2018(tmp_path)
    write_tasic2018(tmp_path, zipped=())
    with pytest.raises(ValueError, match="not in the release"):
        tasic2018(tmp_path, genes=["Vip", "NotAGene"])
    with pytest.raises(ValueError, match="Unknown region"):
        tasic2018(tmp_path, regions=("V1",))
    # a samples table from another release: sample names that are not matrix columns
    sub = tmp_path / "mouse_ALM_gene_expression_matrices_2018-06-14"
    table = sub / "mouse_ALM_2018-06-14_samples-columns.csv"
    samples = pd.read_csv(table)
    samples["sample_name"] = "X" + samples["sample_name"]
    samples.to_csv(table, index=False)
    with pytest.raises(ValueError, match="do not belong together"):
        tasic2018(tmp_path)


# ----- Yao 2021 ----------------------------------------------------------------------------------
@pytest.mark.parametrize("match", ["sample_name", "exp_component_name"])
def test_yao_mop_neurons(tmp_path, match):
    metadata, counts, cells, genes = write_yao2021(tmp_path, match=match)
    adata = yao2021(tmp_path, chunk_cells=3)
    wanted = metadata[
        (metadata["region_label"] == "MOp")
        & metadata["class_label"].isin(["GABAergic", "Glutamatergic"])
    ]
    assert adata.shape == (len(wanted), len(genes))
    assert set(adata.obs_names) == set(wanted["_cell"])
    # cells in the matrix's order, counts equal to the matrix's columns
    position = pd.Index(cells).get_indexer(adata.obs_names)
    assert np.all(np.diff(position) > 0)
    np.testing.assert_array_equal(adata.X.toarray(), counts[position])
    assert (adata.layers["counts"] != adata.X).nnz == 0
    assert list(adata.var_names) == genes
    labels = wanted.set_index("_cell").loc[adata.obs_names, "cluster_label"]
    np.testing.assert_array_equal(adata.obs["cluster_label"].astype(str), labels)
    assert set(adata.obs["region_label"]) == {"MOp"}


def test_yao_labels_order_colours_and_options(tmp_path):
    metadata, counts, cells, genes = write_yao2021(tmp_path)
    adata = yao2021(tmp_path, region=None, neurons_only=False, genes=["Gene3", "Gene0"])
    assert adata.n_obs == len(metadata)  # the two cells without metadata are left out
    assert list(adata.var_names) == ["Gene3", "Gene0"]
    position = pd.Index(cells).get_indexer(adata.obs_names)
    np.testing.assert_array_equal(adata.X.toarray(), counts[position][:, [3, 0]])
    categories = list(adata.obs["cluster_label"].cat.categories)
    by_order = metadata.drop_duplicates("cluster_label").sort_values("cluster_order")
    assert categories == by_order["cluster_label"].tolist()
    colours = by_order.set_index("cluster_label")["cluster_color"]
    assert adata.uns["cluster_label_colors"] == [colours[c] for c in categories]
    two = yao2021(tmp_path, region=["MOp", "SSp"], neurons_only=True)
    assert set(two.obs["region_label"]) == {"MOp", "SSp"}


def test_yao_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        yao2021(tmp_path)
    write_yao2021(tmp_path)
    with pytest.raises(ValueError, match="the regions are"):
        yao2021(tmp_path, region="ACA")
    with pytest.raises(ValueError, match="not in expression_matrix"):
        yao2021(tmp_path, genes=["Gene0", "Nope"])


def test_tasic_gene_table_must_match_matrix_rows(tmp_path):
    write_tasic2018(tmp_path, zipped=())
    sub = tmp_path / "mouse_VISp_gene_expression_matrices_2018-06-14"
    table = sub / "mouse_VISp_2018-06-14_genes-rows.csv"
    genes = pd.read_csv(table)
    genes.iloc[::-1].to_csv(table, index=False)  # same genes, another order
    with pytest.raises(ValueError, match="matches none of"):
        tasic2018(tmp_path)
