#!/usr/bin/env bash
# Prints the peer table: the T1059.009 detection as the plain native
# filter, Tripline's engine, the component path, whole `tripline run`
# processes with 1 and 2 workers, and Vector's VRL, on the same generated
# events, each as a ratio to the plain filter measured in the same run.
# Then the start-up time of `tripline run` and its peak memory.
#
# From the repository root: benches/peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building tripline, the VRL peer and the driver" >&2
cargo build --release -p tripline
cargo build --release --manifest-path benches/vrl/Cargo.toml --target-dir target
cargo bench -p tripline-benches --bench peers --no-run

echo "== $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')" >&2
cargo bench -p tripline-benches --bench peers
