"""Type-preserving augmenters that give each arm its own copy of a cell."""

from ._counts import Augmenter, BinomialThinning, GeneDropout, Identity

__all__ = ["Augmenter", "BinomialThinning", "GeneDropout", "Identity", "get_augmenter"]


def get_augmenter(spec: str | Augmenter | None, gene_likelihood: str, n_arms: int) -> Augmenter:
    """Resolve a user's augmentation argument into an :class:`Augmenter`.

    Parameters
    ----------
    spec
        ``"auto"`` (binomial thinning for count likelihoods, gene dropout otherwise, nothing
        when there is a single arm), ``"thinning"``, ``"dropout"``, ``None``/``"none"``, or an
        :class:`Augmenter` instance.
    gene_likelihood
        The model's likelihood; thinning requires counts.
    n_arms
        Number of arms.
    """
    if isinstance(spec, Augmenter):
        return spec
    counts = gene_likelihood in ("nb", "zinb")
    if spec == "auto":
        spec = "none" if n_arms == 1 else ("thinning" if counts else "dropout")
    if spec is None or spec == "none":
        return Identity()
    if spec == "thinning":
        if not counts:
            raise ValueError(
                "augmentation='thinning' needs counts (gene_likelihood 'nb' or 'zinb'); "
                "use augmentation='dropout' for continuous data."
            )
        return BinomialThinning()
    if spec == "dropout":
        return GeneDropout()
    raise ValueError(
        f"Unknown augmentation {spec!r}: use 'auto', 'thinning', 'dropout', 'none' or an "
        "Augmenter instance."
    )
