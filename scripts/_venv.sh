# Sourced by scripts/test.sh, scripts/demo.sh and .ci/run: make sure "$VENV" has the package.
#
# VENV    the virtual environment to use or create (default: .venv in the repository root)
# PYTHON  the interpreter to create it with (default: python3; the package needs >= 3.11)
#
# torch is installed first and pinned: pip takes the CPU build of torch 2.13.0 from local disk,
# whereas a bare `torch` requirement would pull a CUDA build of several GB.

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

install_venv() {
    echo "setting up $VENV (torch==$TORCH_VERSION, then the package with its test extras)" >&2
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "torch==$TORCH_VERSION"
    "$VENV/bin/python" -m pip install --quiet -e ".[test]"
}

ensure_venv() {
    if ! "$VENV/bin/python" -c "import cplmixvi, pytest, torch" >/dev/null 2>&1; then
        install_venv
    fi
}
