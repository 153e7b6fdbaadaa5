#!/usr/bin/env bash
# Instructions per event inside the detector component, counted by
# callgrind: the difference between runs of 10 and 40 calls of 256
# generated events, so that start-up cancels out. Instruction counts
# hardly depend on what else the machine is doing, which makes this the
# figure to compare two builds by; they still vary by about 2% from run
# to run, since the host's epoch ticker thread is counted too. Set
# TRIPLINE_NO_EPOCH=1 to count without wasmtime's epoch checks.
#
# From the repository root: benches/instructions.sh (needs valgrind)
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p tripline-benches --example profile_component >&2
binary="${CARGO_TARGET_DIR:-target}/release/examples/profile_component"

count() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$binary" --calls "$1" 2>&1 |
        awk '/Collected/ { print $4 }'
}
short=$(count 10)
long=$(count 40)
echo "instructions per event: $(( (long - short) / (30 * 256) ))"
