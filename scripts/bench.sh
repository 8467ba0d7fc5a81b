#!/usr/bin/env bash
# Benchmarks Gatehouse against same-run baselines (see docs/performance.md):
#
#   scripts/bench.sh                   # one loadgen run, then the password benchmarks
#   BENCH_RUNS=3 scripts/bench.sh      # three loadgen runs (the machine is noisy)
#   scripts/bench.sh -rounds 6 -log-levels warn   # extra arguments go to loadgen
#   scripts/bench.sh -scenarios refresh,forward-auth   # token mode only
#
# It builds ./cmd/gatehouse and ./tools/loadgen into a temporary directory,
# runs loadgen against the built server (loopback only; loadgen starts and
# stops the server itself), then runs the Go benchmarks of
# ./internal/password if it has any.
#
# GATEHOUSE_BENCH_POSTGRES_URL (a postgres:// URL of a PostgreSQL on this
# machine whose role may create databases, e.g.
# postgres://postgres@127.0.0.1:5432/test?sslmode=disable) adds the
# PostgreSQL series of the refresh scenario: loadgen creates a database
# gh_bench_… per server and drops it at the end. Unset, they are skipped.
set -euo pipefail

cd "$(dirname "$0")/.."

runs="${BENCH_RUNS:-1}"
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
	echo "bench.sh: BENCH_RUNS must be a positive integer, got '$runs'" >&2
	exit 2
fi

pg=()
if [[ -n "${GATEHOUSE_BENCH_POSTGRES_URL:-}" ]]; then
	pg=(-postgres "$GATEHOUSE_BENCH_POSTGRES_URL")
else
	echo "bench.sh: GATEHOUSE_BENCH_POSTGRES_URL is unset: the PostgreSQL refresh series are skipped (SQLite only)" >&2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "bench.sh: building gatehouse and loadgen into $tmp" >&2
go build -o "$tmp/gatehouse" ./cmd/gatehouse
go build -o "$tmp/loadgen" ./tools/loadgen

for ((i = 1; i <= runs; i++)); do
	echo "bench.sh: loadgen run $i of $runs" >&2
	"$tmp/loadgen" -gatehouse "$tmp/gatehouse" "${pg[@]}" "$@"
done

if grep -qs '^func Benchmark' internal/password/*_test.go; then
	echo "bench.sh: go test -bench ./internal/password/" >&2
	go test -run '^$' -bench . -benchtime 2s ./internal/password/
else
	echo "bench.sh: ./internal/password has no benchmarks; skipped" >&2
fi
