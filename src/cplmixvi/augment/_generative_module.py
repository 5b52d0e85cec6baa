"""Where the generative augmenter's networks were defined before they moved to ``module/``.

Models saved with a generative augmentation pickle its networks under this path; the name
resolves to :class:`cplmixvi.module.GenerativeAugmenterModule` so that they still load. New code
imports it from :mod:`cplmixvi.module`.
"""


def __getattr__(name: str):
    if name == "GenerativeAugmenterModule":
        from cplmixvi.module import GenerativeAugmenterModule  # only when unpickling old saves

        return GenerativeAugmenterModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
