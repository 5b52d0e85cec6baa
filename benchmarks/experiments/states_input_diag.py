"""Last-epoch training figures of one simulator fit in the state setting of ``states.py``.

Showed (``benchmarks/results/states_input_check.md``): with the library-normalised type input
the arms agree on slightly fewer training copies (98.3 % vs 99.6 %, seed 0) and the type
entropy and state KL are a little higher; the reconstruction is unchanged. Run it with the
package of each commit to compare (``PYTHONPATH=<worktree>/src``). Usage::

    python benchmarks/experiments/states_input_diag.py --seed 0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(HERE.parent))
    import states

    import cplmixvi

    adata = cplmixvi.data.simulate(n_cells=3000, seed=args.seed)
    states.SETTING["epochs_factor"] = 1.0  # the default epochs, as when it was measured
    history = states.fit(adata, 5, args.seed).history
    for key in ("arm_agreement", "type_entropy", "kl_state", "reconstruction", "consensus_kl"):
        print(key, float(history[f"{key}_train"].to_numpy()[-1, 0]))


if __name__ == "__main__":
    main()
