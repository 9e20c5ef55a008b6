#!/usr/bin/env bash
# The first run on a machine with an NVIDIA GPU: the tests that need a GPU, the numeric
# tests on CuPy, the `xpnet` command on CuPy, the benchmark on CuPy (against PyTorch
# CUDA), stacks of networks against separate fits on CuPy and PyTorch CUDA, and, where JAX
# has a GPU, the benchmark on JAX.  Built for a machine without a package index:
#
#   bash scripts/gpu_wheelhouse.sh          # beforehand, where pip reaches an index
#   OUT=/some/folder bash scripts/gpu_check.sh     # on the GPU machine, wheelhouse/ beside
#   bash scripts/gpu_check.sh --list        # the parts, their time limits, what each needs
#   bash scripts/gpu_check.sh --only bench-cupy    # some parts again (comma-separated)
#
# What it needs there: `python3` (or `python`, or $PYTHON) with NumPy, pytest and
# scikit-learn, and CuPy, PyTorch and JAX as far as they are to be checked.  xpnet is
# this repository's own copy, put first on PYTHONPATH; array-api-compat is the wheel in
# wheelhouse/ (at xpnet's floor: the check runs on the oldest version xpnet accepts),
# unpacked onto PYTHONPATH (no pip, no virtual environment, no index), or where there
# is none, the one installed.
#
# Results go to $OUT (default: bench-results/gpu/DATE-GPU/, which git ignores), eleven
# files at most: gpu_check.log (everything printed), summary.md and summary.json (each
# part's result, rewritten after every part), and the benchmarks' JSON and Markdown.
# Commit the benchmarks worth keeping under benchmarks/gpu/.
#
# Each part runs under a time limit of its own (`--list`); the limits and their grace
# periods add up to BUDGET_S, well inside ten minutes, so that a run cut off at ten
# minutes has written every part's summary.  A part at its limit is stopped as Ctrl-C
# stops it (pytest then still prints what passed and failed) or by SIGTERM (a
# benchmark then writes the rows it finished), and the next part starts.  The parts run
# in order of what they tell: the tests that need a GPU first.  On a machine without a
# GPU (a rehearsal), the test parts still run, their GPU tests skipped, and the parts
# that need a GPU are reported as skipped for want of one.
#
# Extra arguments go to the CuPy benchmark (scripts/bench.py), e.g. `--problems S`.
set -uo pipefail  # no -e: a part that fails does not stop the others

# A relative $OUT is the caller's, not the repository's.
if [[ -n ${OUT:-} && $OUT != /* ]]; then OUT=$PWD/$OUT; fi
cd "$(dirname "$0")/.."
REPO=$PWD

# -- the parts ---------------------------------------------------------------------------

PARTS=(prepare gpu-tests cupy-tests command bench-cupy bench-stacks bench-jax)
declare -A LIMIT=([prepare]=30 [gpu-tests]=130 [cupy-tests]=75 [command]=45
                  [bench-cupy]=115 [bench-stacks]=85 [bench-jax]=45)
# What a part needs besides Python: "cupy" (CuPy sees a CUDA device), "jax-gpu", or "-".
declare -A NEEDS=([prepare]=- [gpu-tests]=- [cupy-tests]=- [command]=cupy
                  [bench-cupy]=cupy [bench-stacks]=cupy [bench-jax]=jax-gpu)
declare -A WHAT=(
    [prepare]="python3, xpnet from this repository, array-api-compat, the GPU seen"
    [gpu-tests]="the tests that need a GPU (pytest -m gpu): fused kernels, CUDA graphs, README"
    [cupy-tests]="every numeric test on the CuPy backend (pytest --backend cupy -k cupy)"
    [command]="xpnet train and evaluate on CuPy, eager and with --engine jit"
    [bench-cupy]="scripts/bench.py --backend cupy: xpnet on CuPy and PyTorch CUDA"
    [bench-stacks]="scripts/bench_stacks.py: K fits one by one ÷ one stack of K, CuPy, PyTorch CUDA"
    [bench-jax]="scripts/bench.py --backend jax: xpnet compiled on JAX's GPU"
)
#: Seconds a part may take after its limit to stop before it is killed.
GRACE_S=5
#: What all the parts may take together, grace periods included.
BUDGET_S=560

total=0
for name in "${PARTS[@]}"; do total=$((total + LIMIT[$name] + GRACE_S)); done
if ((total > BUDGET_S)); then
    echo "gpu_check.sh: the parts' limits add up to $total s, over the budget of $BUDGET_S s" >&2
    exit 2
fi

only=""
BENCH_ARGS=()
while (($#)); do
    case "$1" in
        --list)
            printf '%-12s %6s  %-8s %s\n' part limit needs what
            for name in "${PARTS[@]}"; do
                printf '%-12s %5ss  %-8s %s\n' "$name" "${LIMIT[$name]}" "${NEEDS[$name]}" \
                    "${WHAT[$name]}"
            done
            echo "total: $total s with ${GRACE_S} s of grace per part (budget $BUDGET_S s)"
            exit 0 ;;
        --only)
            only=",${2:?--only needs part names},"
            for name in ${2//,/ }; do
                if [[ -z ${LIMIT[$name]:-} ]]; then
                    echo "gpu_check.sh: no part is named '$name' (see --list)" >&2
                    exit 2
                fi
            done
            shift 2 ;;
        *) BENCH_ARGS+=("$1"); shift ;;
    esac
done

# -- where the results go ----------------------------------------------------------------

PYTHON="${PYTHON:-$(command -v python3 || command -v python || echo python3)}"
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1 \
      | tr -cs 'A-Za-z0-9' '-' | sed 's/-*$//')
OUT="${OUT:-bench-results/gpu/$(date -u +%Y-%m-%d)-${gpu:-no-gpu}}"
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd)
SCRATCH=$(mktemp -d)  # the unpacked wheels, the command's model file, each part's output
LOG="$OUT/gpu_check.log"
exec > >(tee -a "$LOG") 2>&1
tee_pid=$!
# At the end, the log complete before the script returns.
trap 'rm -rf "$SCRATCH"; exec >&- 2>&-; wait "$tee_pid"' EXIT
export PYTHON OUT SCRATCH REPO PYTHONUNBUFFERED=1
printf '' > "$SCRATCH/parts.tsv"

# One line per part: name, result, seconds, limit, detail.
record() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >> "$SCRATCH/parts.tsv"; }

# summary.md and summary.json from the parts so far and the machine (prepare's facts).
write_summary() {
    "$PYTHON" - "$SCRATCH/parts.tsv" "$SCRATCH/machine.json" "$OUT" "${PARTS[*]}" <<'PY'
import datetime, json, sys
from pathlib import Path

parts_tsv, machine_json, out, planned = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4].split()
machine = json.loads(machine_json.read_text()) if machine_json.exists() else {}
rows = [dict(zip(("part", "result", "seconds", "limit", "detail"), line.split("\t")))
        for line in parts_tsv.read_text().splitlines() if line]
for r in rows:
    r.update({k: int(r[k]) for k in ("seconds", "limit") if r[k].isdigit()})
done = {r["part"] for r in rows}
rows += [{"part": p, "result": "not run", "seconds": "", "limit": "", "detail": ""}
         for p in planned if p not in done]
created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
(out / "summary.json").write_text(json.dumps(
    {"created": created, "machine": machine, "parts": rows}, indent=1) + "\n")
lines = [f"# GPU check, {created}", ""]
lines += [f"- {key}: {value}" for key, value in machine.items()]
lines += ["", "| part | result | seconds | limit | detail |", "|---|---|--:|--:|---|"]
lines += [f"| {r['part']} | {r['result']} | {r['seconds']} | {r['limit']} | {r['detail']} |"
          for r in rows]
(out / "summary.md").write_text("\n".join(lines) + "\n")
PY
}

# -- each part's commands (run by `timeout`, in a shell of their own) --------------------

part_gpu_tests() {
    # JAX, should a test import it, must not take most of the GPU's memory first.
    XLA_PYTHON_CLIENT_PREALLOCATE=false "$PYTHON" -m pytest -m gpu -q -ra -p no:cacheprovider \
        tests/test_fused.py tests/test_compiled.py tests/test_readme.py
}

part_cupy_tests() {
    # Every test run once per backend, on CuPy alone: tests whose names hold "cupy".
    XLA_PYTHON_CLIENT_PREALLOCATE=false "$PYTHON" -m pytest --backend cupy -m "not gpu" -k cupy \
        -q -ra -p no:cacheprovider
}

part_command() {
    "$PYTHON" -m xpnet train --backend cupy --dtype float32 --save "$SCRATCH/digits.npz" &&
    "$PYTHON" -m xpnet evaluate --model "$SCRATCH/digits.npz" --backend cupy &&
    echo "-- the same job through the fused kernels: the accuracy should be the same" &&
    "$PYTHON" -m xpnet train --backend cupy --dtype float32 --engine jit --quiet
}

part_bench_cupy() {
    "$PYTHON" scripts/bench.py --backend cupy --rounds 3 --target-seconds 0.2 --no-memory \
        --json "$OUT/gpu_bench.json" --markdown "$OUT/gpu_bench.md" "$@"
}

part_bench_jax() {
    "$PYTHON" scripts/bench.py --backend jax --rounds 3 --target-seconds 0.2 --no-memory \
        --json "$OUT/gpu_bench_jax.json" --markdown "$OUT/gpu_bench_jax.md"
}

# S, K = 1, 16 and 256 (full batch and mini-batches of 64), on CuPy through its fused
# kernels (engine="jit", the stacks and the separate fits alike) and then on PyTorch
# CUDA.  4 epochs per fit, 2 rounds, 32 of the K separate fits timed: about 30 s on each
# library by an estimate for the H200, not yet measured.  Each run stops itself at
# its own time limit (writing the rows done, exit status 124), so that a slow first one
# leaves the second its share of the part's limit.
part_bench_stacks() {
    local status=0 code
    local common=(--problems S --K 1,16,256 --epochs 4 --rounds 2 --max-separate 32)
    "$PYTHON" scripts/bench_stacks.py --backend cupy --engine jit "${common[@]}" --time-limit-s 38 \
        --json "$OUT/gpu_bench_stacks_cupy.json" --markdown "$OUT/gpu_bench_stacks_cupy.md" ||
        status=$?
    if [[ ${TORCH_CUDA:-0} != 1 ]]; then
        echo "bench-stacks: not on PyTorch CUDA (${TORCH_WHY:-PyTorch has no CUDA device})"
        return "$status"
    fi
    "$PYTHON" scripts/bench_stacks.py --backend torch-cuda "${common[@]}" --time-limit-s 32 \
        --json "$OUT/gpu_bench_stacks_torch.json" --markdown "$OUT/gpu_bench_stacks_torch.md"
    code=$?
    ((status)) || status=$code
    return "$status"
}

export -f part_gpu_tests part_cupy_tests part_command part_bench_cupy part_bench_stacks \
    part_bench_jax

# -- prepare: Python, xpnet, array-api-compat, and what this machine has -----------------

prepare() {
    echo "== prepare (limit ${LIMIT[prepare]} s): $PYTHON"
    if ! "$PYTHON" -c 'import sys; print("python", sys.version.split()[0])'; then
        echo "no Python: set PYTHON to an interpreter with NumPy and pytest"
        return 1
    fi
    if command -v nvidia-smi > /dev/null; then nvidia-smi; else echo "no nvidia-smi here"; fi
    mkdir -p "$SCRATCH/site"
    local wheel
    for wheel in wheelhouse/*.whl; do
        [[ -e "$wheel" ]] || continue
        echo "unpacking $wheel"
        "$PYTHON" -m zipfile -e "$wheel" "$SCRATCH/site" || return 1
    done
    export PYTHONPATH="$REPO:$SCRATCH/site${PYTHONPATH:+:$PYTHONPATH}"
    # Versions, and the GPU as each library sees it (or why not): shell assignments for
    # the parts below, and machine.json for the summary.
    timeout "${LIMIT[prepare]}" "$PYTHON" scripts/_gpu_check_env.py \
        --facts "$SCRATCH/machine.json" > "$SCRATCH/facts.sh" || return 1
    cat "$SCRATCH/facts.sh"
    # shellcheck disable=SC1091
    source "$SCRATCH/facts.sh"
    export TORCH_CUDA TORCH_WHY  # for bench-stacks, which runs on PyTorch CUDA where it can
}

# -- run ---------------------------------------------------------------------------------

ran=() skipped=()
for name in "${PARTS[@]}"; do
    if [[ -n "$only" && "$name" != prepare && "$only" != *",$name,"* ]]; then
        continue
    fi
    limit=${LIMIT[$name]}
    start=$SECONDS
    if [[ $name == prepare ]]; then
        # In this shell, not a pipeline's: what it exports is for the parts below.
        prepare > "$SCRATCH/part.out" 2>&1
        status=$?
        cat "$SCRATCH/part.out"
        if ((status == 0)); then
            record prepare passed $((SECONDS - start)) "$limit" "$GPU_SUMMARY"
            ran+=("prepare")
            write_summary
            continue
        fi
        record prepare failed $((SECONDS - start)) "$limit" "$(tail -n 1 "$SCRATCH/part.out")"
        write_summary 2>/dev/null
        echo "gpu_check.sh: prepare failed; nothing else can run"
        exit 3
    fi
    need=${NEEDS[$name]}
    if [[ $need == cupy && $CUPY_GPU != 1 ]]; then
        why="no GPU: $CUPY_WHY"
    elif [[ $need == jax-gpu && $JAX_GPU != 1 ]]; then
        why="no GPU: $JAX_WHY"
    else
        why=""
    fi
    if [[ -n $why ]]; then
        echo "== $name: skipped ($why)"
        record "$name" skipped 0 "$limit" "$why"
        skipped+=("$name")
        write_summary
        continue
    fi
    # pytest stops on Ctrl-C and still reports; the benchmark writes its rows on SIGTERM.
    signal=TERM
    [[ $name == *tests ]] && signal=INT
    echo "== $name (limit $limit s): ${WHAT[$name]}"
    record "$name" running "" "$limit" "started at $(date -u +%H:%M:%S)"
    write_summary
    timeout -s "$signal" -k "$GRACE_S" "$limit" \
        bash -c "part_${name//-/_} \"\$@\"" part "${BENCH_ARGS[@]}" 2>&1 | tee "$SCRATCH/part.out"
    status=${PIPESTATUS[0]}
    seconds=$((SECONDS - start))
    # pytest's last count line ("3 passed, 2 skipped in 4.1s"), or the last line printed.
    detail=$(grep -E '[0-9]+ (passed|failed|skipped|deselected|errors?)\b|no tests ran' \
             "$SCRATCH/part.out" | tail -n 1 | sed 's/^[=! ]*//; s/[=! ]*$//')
    [[ -z $detail ]] && detail=$(grep -v '^\s*$' "$SCRATCH/part.out" | tail -n 1 | cut -c1-200)
    case $status in
        0) result=passed ;;
        124 | 137) result="stopped at its limit" ;;
        5) result="no tests ran" ;;
        *) result="failed (exit status $status)" ;;
    esac
    if [[ $name == *tests && $CUPY_GPU != 1 && $TORCH_CUDA != 1 ]]; then
        detail="$detail (no GPU here: the tests that need one were skipped)"
    fi
    sed -i "/^$name\trunning\t/d" "$SCRATCH/parts.tsv"
    record "$name" "$result" "$seconds" "$limit" "$detail"
    ran+=("$name")
    write_summary
    echo "== $name: $result in $seconds s: $detail"
done

echo
echo "== summary (also in $OUT/summary.md and summary.json)"
echo "ran:     ${ran[*]:-none}"
echo "skipped: ${skipped[*]:-none}${skipped[*]:+ (for want of a GPU)}"
cat "$OUT/summary.md"
# The exit status: 0 only if every part that ran passed.
awk -F'\t' '$2 != "passed" && $2 != "skipped" { bad = 1 } END { exit bad }' "$SCRATCH/parts.tsv"
