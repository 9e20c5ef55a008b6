"""Time two versions of xpnet against each other, paired round by round.

Each round runs ``scripts/bench.py`` (one round of its timings, beside its floor) once on
each version, in alternating order, with the version's source tree first on
``PYTHONPATH``.  The figure of a round is the new version's time over the old one's in
that round, so that a spell of load on this machine falls on both; the report gives the
median over the rounds and their range, and each version's median ratio to the floor.

Usage::

    git worktree add /tmp/before <commit>            # the version to compare against
    python scripts/bench_versions.py --old /tmp/before --new . --rounds 5
    python scripts/bench_versions.py --old /tmp/before --new . --backend jax \\
        --impls xpnet-jit --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def one_round(tree: Path, args: argparse.Namespace, out: Path) -> dict[tuple[str, ...], dict]:
    """One round of ``bench.py`` with ``tree``'s xpnet: its rows, by (problem, dtype, row)."""
    env = dict(os.environ, PYTHONPATH=str(tree.resolve()))
    command = [
        sys.executable, str(HERE / "bench.py"), "--problems", args.problems,
        "--dtypes", args.dtypes, "--backend", args.backend,
        "--impls", f"floor,{args.impls}", "--rounds", "1", "--no-memory", "--json", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench.py failed on {tree}:\n{done.stdout}\n{done.stderr}")
    rows = json.loads(out.read_text())["results"]
    return {(r["problem"], r["dtype"], "floor" if r["role"] == "floor" else r["impl"]): r
            for r in rows}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old", type=Path, required=True, help="source tree of the old version")
    p.add_argument("--new", type=Path, default=HERE.parent, help="source tree of the new one")
    p.add_argument("--problems", default="S,M")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--impls", default="xpnet", help="xpnet's rows of bench.py to compare")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()

    new_over_old: dict[tuple, list[float]] = {}
    to_floor: dict[tuple, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for k in range(args.rounds):
            order = [("old", args.old), ("new", args.new)]
            if k % 2:
                order.reverse()  # neither version always runs first
            rows = {name: one_round(tree, args, Path(scratch) / f"{name}.json")
                    for name, tree in order}  # fmt: skip
            for key, new in rows["new"].items():
                old = rows["old"].get(key)
                if old is None or key[2] == "floor":
                    continue
                new_over_old.setdefault(key, []).append(new["median_s"] / old["median_s"])
                for name in ("old", "new"):
                    row = rows[name][key]
                    floor = rows[name][(key[0], key[1], "floor")]
                    ratios = to_floor.setdefault(key, {"old": [], "new": []})
                    ratios[name].append(row["median_s"] / floor["median_s"])
            print(f"round {k + 1} of {args.rounds} done", file=sys.stderr)

    print(f"| problem | dtype | row | new ÷ old, median (range) over {args.rounds} rounds "
          "| old × floor | new × floor |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for key, ratios in new_over_old.items():
        med = statistics.median(ratios)
        floors = {name: statistics.median(v) for name, v in to_floor[key].items()}
        print(
            f"| {key[0]} | {key[1]} | {key[2]} | {med:.3f} ({min(ratios):.3f}–{max(ratios):.3f}) "
            f"| {floors['old']:.2f} | {floors['new']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
