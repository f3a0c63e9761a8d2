"""Benchmark: how long the command line takes to start, against a bare interpreter.

Times whole processes (the median of `--repeat` runs, after one warm-up each): `python -c pass`
(the floor), `patchctl --help`, the `--help` of the commands with the most options (`status`,
`serve`, `devices`) and `patchctl validate --repo .` (the example repository, no state database),
and counts the modules each imports. Prints the ratios to the floor and writes JSON; no
thresholds (issue 14, item 6: every `--help` at most 3 times the floor).

    .venv/bin/python bench/cli_start.py [--repeat 15] [--out bench/results/cli_start.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "cli_start.json"
CLI = [sys.executable, "-m", "controller.cli"]
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "patchctl --help": [*CLI, "--help"],
    "patchctl status --help": [*CLI, "status", "--help"],
    "patchctl validate": [*CLI, "validate", "--repo", str(ROOT)],
    "patchctl serve --help": [*CLI, "serve", "--help"],
    "patchctl devices --help": [*CLI, "devices", "--help"],
}


def timed(command: list[str]) -> float:
    """Seconds of wall time for one run (output discarded; a failure stops the bench)."""
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - start


def modules(command: list[str]) -> int:
    """How many modules the command imports (`-X importtime` lines)."""
    traced = [command[0], "-X", "importtime", *command[1:]]
    result = subprocess.run(traced, capture_output=True, text=True, cwd=ROOT, check=True)
    return sum(1 for line in result.stderr.splitlines() if line.startswith("import time:")) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = {}
    for name, command in CASES.items():
        timed(command)  # warm the file cache and the bytecode
        runs = [timed(command) for _ in range(args.repeat)]
        results[name] = {"medianSeconds": statistics.median(runs), "modules": modules(command)}
    floor = results["python -c pass"]["medianSeconds"]
    for name, figures in results.items():
        figures["ratioToPython"] = figures["medianSeconds"] / floor
        print(
            f"{name:<26} {figures['medianSeconds'] * 1000:7.1f} ms  "
            f"{figures['ratioToPython']:5.1f}x  {figures['modules']:4d} modules"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"repeat": args.repeat, "cases": results}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
