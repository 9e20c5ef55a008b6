#!/usr/bin/env bash
# Fill wheelhouse/ with what scripts/gpu_check.sh needs and a GPU machine without a package
# index may lack, so that the folder can travel with the repository:
#
#   bash scripts/gpu_wheelhouse.sh        # here, where pip reaches a package index
#   bash scripts/gpu_check.sh             # there, with wheelhouse/ beside scripts/
#
# Only array-api-compat, at the floor pyproject.toml sets: the GPU check then runs xpnet on
# the oldest array-api-compat it accepts.  xpnet itself needs no wheel: the check runs the
# repository's own files, put first on PYTHONPATH, so that what it tests is what is
# committed beside it.  NumPy, CuPy, PyTorch, pytest and scikit-learn come with a GPU
# machine's image; Dask and array-api-strict are not needed there.
#
# The wheel is pure Python ("py3-none-any"): gpu_check.sh unpacks it into a folder of its
# own and puts that on PYTHONPATH, which needs neither pip nor a virtual environment.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
dest="${WHEELHOUSE:-wheelhouse}"

# The floor, as pyproject.toml writes it ("array-api-compat>=1.14").
floor=$(sed -n 's/^ *"array-api-compat>=\([0-9.]*\)".*/\1/p' pyproject.toml)
if [[ -z "$floor" ]]; then
    echo "gpu_wheelhouse.sh: no array-api-compat>=X.Y line in pyproject.toml" >&2
    exit 2
fi

rm -rf "$dest"
mkdir -p "$dest"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$dest" \
    "array-api-compat==$floor.*"
for wheel in "$dest"/*.whl; do
    case "$wheel" in
        *-py3-none-any.whl) ;;
        *) echo "gpu_wheelhouse.sh: $wheel is not pure Python" >&2; exit 2 ;;
    esac
done
echo "wheelhouse: $(cd "$dest" && ls ./*.whl | tr '\n' ' ')(array-api-compat's floor: $floor)"
