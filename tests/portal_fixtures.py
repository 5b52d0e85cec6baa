"""Tiny files in the exact formats of the Allen Brain Map portal releases loaded by cplmixvi.data.

Used by the loader tests and by the Tasic 2018 tutorial's CI run (``python
tests/portal_fixtures.py tasic2018 DIR`` writes the fixture there). Counts are Poisson with a few
marker genes per cluster, so a model can find the clusters.
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

RELEASE = "2018-06-14"

#: (cluster, class, subclass, cells) per region; the taxonomy-renamed and the dropped clusters
#: are included on purpose.
TASIC_CLUSTERS = {
    "VISp": [
        ("L2/3 IT VISp Rrad", "Glutamatergic", "L2/3 IT", 6),
        ("L6b VISp Col8a1 Rprm", "Glutamatergic", "L6b", 5),
        ("L5 NP VISp Trhr Met", "Glutamatergic", "NP", 5),
        ("Pvalb Tpbg", "GABAergic", "Pvalb", 6),
        ("Lamp5 Lsp1", "GABAergic", "Lamp5", 5),
        ("CR Lhx5", "Glutamatergic", "CR", 3),
        ("Meis2 Adamts19", "GABAergic", "Meis2", 2),
        ("Low Quality", "Low Quality", "Low Quality", 3),
        ("Astro Aqp4", "Non-Neuronal", "Astro", 4),
    ],
    "ALM": [
        ("L6 CT ALM Nxph2 Sla", "Glutamatergic", "L6 CT", 6),
        ("L5 NP VISp Trhr Met", "Glutamatergic", "NP", 3),
        ("L2/3 IT ALM Sla", "Glutamatergic", "L2/3 IT", 5),
        ("Pvalb Tpbg", "GABAergic", "Pvalb", 4),
        ("Sst Chodl", "GABAergic", "Sst", 5),
        ("Low Quality", "Low Quality", "Low Quality", 2),
        ("Oligo Synpr", "Non-Neuronal", "Oligo", 3),
    ],
}
#: Genes of the release that are not among the paper's 5 032.
N_EXTRA_GENES = 40


def tasic_gene_table(paper_genes: list[str], seed: int = 0) -> pd.DataFrame:
    """genes-rows table: the paper's genes plus extra ones, in a shuffled (non-paper) order."""
    rng = np.random.default_rng(seed)
    symbols = list(paper_genes) + [f"Fixture{i}" for i in range(N_EXTRA_GENES)]
    symbols = [symbols[i] for i in rng.permutation(len(symbols))]
    return pd.DataFrame(
        {
            "gene_symbol": symbols,
            "gene_id": np.arange(len(symbols)) + 500_000,
            "chromosome": "1",
            "gene_entrez_id": np.arange(len(symbols)) + 100_000,
            "gene_name": [f"{s} protein" for s in symbols],
        }
    )


def tasic_region(region: str, genes: pd.DataFrame, seed: int = 0, scale: int = 1):
    """(samples-columns table, genes x samples counts DataFrame) of one region."""
    rng = np.random.default_rng(seed + (region == "ALM"))
    rows = []
    for cluster, klass, subclass, n in TASIC_CLUSTERS[region]:
        for i in range(n * scale):
            rows.append(
                {
                    "sample_name": f"{region}_{len(rows):04d}",
                    "sample_id": 1_000_000 + len(rows) + (50_000 if region == "ALM" else 0),
                    "sex": "M" if i % 2 else "F",
                    "brain_hemisphere": "L",
                    "brain_region": region,
                    "brain_subregion": "L5",
                    "seq_batch": f"L8S4_{i % 3}",
                    "class": klass,
                    "subclass": subclass,
                    "cluster": cluster,
                    "confusion_score": 0.1,
                }
            )
    samples = pd.DataFrame(rows)
    n_genes = len(genes)
    base = rng.gamma(0.6, 2.0, size=n_genes)
    clusters = sorted({c for c, *_ in TASIC_CLUSTERS["VISp"] + TASIC_CLUSTERS["ALM"]})
    marker_rng = np.random.default_rng(seed + 100)  # the same markers in both regions
    markers = {c: marker_rng.choice(n_genes, 25, replace=False) for c in clusters}
    means = np.tile(base, (len(samples), 1))
    for row, cluster in enumerate(samples["cluster"]):
        means[row, markers[cluster]] += 40.0
    counts = rng.poisson(means).astype(np.int64)
    matrix = pd.DataFrame(
        counts.T, index=genes["gene_entrez_id"].to_numpy(), columns=samples["sample_name"]
    )
    # the samples table lists the samples in another order than the matrix's columns
    samples = samples.iloc[rng.permutation(len(samples))].reset_index(drop=True)
    return samples, matrix


def write_tasic2018(folder: str | Path, zipped=("VISp", "ALM"), seed: int = 0, scale: int = 1):
    """Write both regions: a zip archive for the regions in ``zipped``, extracted CSVs (in the
    archive-named subfolder) for the others. Returns ``{region: (samples, matrix)}``."""
    from cplmixvi.data import tasic2018_genes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    genes = tasic_gene_table(tasic2018_genes(), seed)
    written = {}
    for region in ("VISp", "ALM"):
        samples, matrix = tasic_region(region, genes, seed, scale)
        texts = {
            "exon-matrix": matrix.to_csv(index_label=""),
            "samples-columns": samples.to_csv(index=False),
            "genes-rows": genes.to_csv(index=False),
        }
        stem = f"mouse_{region}_gene_expression_matrices_{RELEASE}"
        if region in zipped:
            with zipfile.ZipFile(folder / f"{stem}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
                for what, text in texts.items():
                    archive.writestr(f"mouse_{region}_{RELEASE}_{what}.csv", text)
        else:
            sub = folder / stem
            sub.mkdir(exist_ok=True)
            for what, text in texts.items():
                (sub / f"mouse_{region}_{RELEASE}_{what}.csv").write_text(text)
        written[region] = (samples, matrix)
    return written


# ----- Yao 2021 10x ------------------------------------------------------------------------------
YAO_CLUSTERS = [
    # cluster_label, subclass_label, class_label, region_label, cells
    ("1_Lamp5 Pdlim5", "Lamp5", "GABAergic", "MOp", 6),
    ("60_Pvalb Reln", "Pvalb", "GABAergic", "MOp", 5),
    ("120_L2/3 IT", "L2/3 IT CTX", "Glutamatergic", "MOp", 7),
    ("200_L6 CT Cpa6", "L6 CT CTX", "Glutamatergic", "MOp", 4),
    ("365_Astro", "Astro", "Non-Neuronal", "MOp", 5),
    ("120_L2/3 IT", "L2/3 IT CTX", "Glutamatergic", "SSp", 6),
    ("1_Lamp5 Pdlim5", "Lamp5", "GABAergic", "VISp", 3),
    ("370_Oligo", "Oligo", "Non-Neuronal", "SSp", 4),
]


def write_yao2021(folder: str | Path, seed: int = 0, n_genes: int = 30, match="sample_name"):
    """Write ``expression_matrix.hdf5`` (genes x cells, as the release) and ``metadata.csv``.

    ``match`` names the metadata column that holds the matrix's cell ids (the other gets
    different ids). Two matrix cells have no metadata row. Returns (metadata, counts cells x
    genes, cell ids, gene names).
    """
    import h5py

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    order = {name: i + 1 for i, name in enumerate(dict.fromkeys(c[0] for c in YAO_CLUSTERS))}
    for cluster, subclass, klass, region, n in YAO_CLUSTERS:
        for _ in range(n):
            cell = f"{''.join(rng.choice(list('ACGT'), 16))}-L8TX_{len(rows):03d}"
            rows.append(
                {
                    "sample_name": cell if match == "sample_name" else f"SM-{len(rows)}",
                    "exp_component_name": cell if match != "sample_name" else f"EC-{len(rows)}",
                    "cluster_label": cluster,
                    "cluster_order": order[cluster],
                    "cluster_color": f"#{order[cluster] * 30:06X}",
                    "subclass_label": subclass,
                    "subclass_order": order[cluster],
                    "subclass_color": "#112233",
                    "class_label": klass,
                    "class_order": {"GABAergic": 1, "Glutamatergic": 2}.get(klass, 3),
                    "class_color": "#445566",
                    "region_label": region,
                    "region_order": 1,
                    "region_color": "#778899",
                    "_cell": cell,
                }
            )
    metadata = pd.DataFrame(rows)
    cells = list(metadata["_cell"]) + ["ORPHAN1-L8TX", "ORPHAN2-L8TX"]
    cells = [cells[i] for i in rng.permutation(len(cells))]
    genes = [f"Gene{i}" for i in range(n_genes)]
    counts = rng.poisson(2.0, size=(len(cells), n_genes)).astype(np.int32)
    with h5py.File(folder / "expression_matrix.hdf5", "w") as handle:
        data = handle.create_group("data")
        data.create_dataset("counts", data=counts.T, chunks=(n_genes, 4))
        data.create_dataset("gene", data=np.array(genes, dtype="S"))
        data.create_dataset("samples", data=np.array(cells, dtype="S"))
        data.create_dataset("shape", data=np.array(counts.T.shape))
    metadata = metadata.iloc[rng.permutation(len(metadata))].reset_index(drop=True)
    metadata.drop(columns="_cell").to_csv(folder / "metadata.csv", index=False)
    return metadata, counts, np.array(cells), genes


if __name__ == "__main__":  # python tests/portal_fixtures.py tasic2018 DIR [SCALE]
    kind, target = sys.argv[1], sys.argv[2]
    if kind == "tasic2018":
        write_tasic2018(target, scale=int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    elif kind == "yao2021":
        write_yao2021(target)
    else:
        raise SystemExit(f"unknown fixture {kind!r}")
