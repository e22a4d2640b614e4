#!/usr/bin/env bash
# retentionc's single test command (what CI runs through .ci/run):
#   1. scripts/install-deps.sh: PostgreSQL 15, pg_cron, pg_partman 4.7.2 + 5.2.4 (as root);
#   2. cargo build --all-targets;
#   3. cargo test: the whole suite. Integration tests start their own throwaway PostgreSQL
#      clusters (tests/common/cluster.rs); this script starts none;
#   4. installing: cargo install --path and --git (release profile), cargo package, man
#      pages (tests/install.rs, ignored by a plain `cargo test`), on a full run only;
#   5. retentionc compile --check on the repository's policies/, when that folder exists.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test cluster_smoke`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1 && [ -x "${HOME:-/root}/.cargo/bin/cargo" ]; then
    PATH="${HOME:-/root}/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo not found" >&2; exit 1; }

SECONDS=0
section() { printf '\n==== %s ====\n' "$*"; }
done_in() { printf -- '---- %s: done in %ss\n' "$1" "$SECONDS"; SECONDS=0; }

section "1/5 Dependencies (scripts/install-deps.sh)"
scripts/install-deps.sh
done_in "dependencies"

section "2/5 Build (cargo build --all-targets)"
cargo build --all-targets
done_in "build"

failed=()

section "3/5 Tests (cargo test --no-fail-fast${*:+ $*})"
# insta lists every snapshot a test reads; after a full run, a .snap file no test read is
# stale (its test was renamed or removed) and fails the run, so snapshots cannot rot.
snapshot_refs="$(mktemp)"
trap 'rm -f "$snapshot_refs"' EXIT
if INSTA_SNAPSHOT_REFERENCES_FILE="$snapshot_refs" cargo test --no-fail-fast "$@"; then
    done_in "tests"
else
    failed+=("cargo test")
    done_in "tests (FAILED)"
fi
if [ "$#" -eq 0 ]; then
    unreferenced="$(comm -13 <(xargs -r -n1 realpath < "$snapshot_refs" | sort -u) \
                             <(find "$PWD/tests" "$PWD/src" -name '*.snap' | sort))"
    if [ -n "$unreferenced" ]; then
        echo "snapshots no test reads (remove them or restore their tests):"
        echo "$unreferenced"
        failed+=("unreferenced snapshots")
    fi
fi

section "4/5 Install (cargo install --path and --git, cargo package, man pages)"
if [ "$#" -eq 0 ]; then
    if cargo test --test install -- --ignored; then
        done_in "install"
    else
        failed+=("install")
        done_in "install (FAILED)"
    fi
else
    echo "a partial run: skipped"
fi

section "5/5 Policies (retentionc compile --check)"
if [ -d policies ]; then
    if cargo run -q -- compile --check; then
        done_in "policy check"
    else
        failed+=("retentionc compile --check")
        done_in "policy check (FAILED)"
    fi
else
    echo "no policies/ folder: skipped"
fi

if [ "${#failed[@]}" -gt 0 ]; then
    section "FAILED: ${failed[*]}"
    exit 1
fi
section "All checks passed"
