#!/usr/bin/env bash
# retentionc's single test command (what CI runs through .ci/run):
#   1. scripts/install-deps.sh: PostgreSQL 15, pg_cron, pg_partman 4.7.2 + 5.2.4 (as root);
#      then a C compiler and Rust (rustup) when missing (scripts/lib/toolchain.sh);
#   2. cargo build --all-targets;
#   3. cargo test: the whole suite. Integration tests start their own throwaway PostgreSQL
#      clusters (tests/common/cluster.rs); this script starts none;
#   4. installing: cargo install --path and --git (release profile), cargo package, man
#      pages (tests/install.rs, ignored by a plain `cargo test`), on a full run only. It
#      starts before step 3 and runs beside it: its release builds use target/install-check/
#      and the CPU the suite leaves while its tests wait on PostgreSQL;
#   5. retentionc compile --check on the repository's policies/, when that folder exists.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test cluster_smoke`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=lib/toolchain.sh source-path=SCRIPTDIR
. scripts/lib/toolchain.sh

SECONDS=0
section() { printf '\n==== %s ====\n' "$*"; }
done_in() { printf -- '---- %s: done in %ss\n' "$1" "$SECONDS"; SECONDS=0; }

section "1/5 Dependencies (scripts/install-deps.sh; a C compiler and Rust when missing)"
scripts/install-deps.sh
ensure_rust_toolchain test.sh || exit 1
done_in "dependencies"

section "2/5 Build (cargo build --all-targets)"
cargo build --all-targets
done_in "build"

failed=()

# 4/5 starts here, in the background (see the header); its result is read after step 3.
install_pid=""
install_log="$(mktemp)"
snapshot_refs="$(mktemp)"
trap 'rm -f "$snapshot_refs" "$install_log"; [ -z "$install_pid" ] || kill "$install_pid" 2>/dev/null || true' EXIT
if [ "$#" -eq 0 ]; then
    install_test="$(cargo test --test install --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)"
    [ -x "$install_test" ] || { echo "test.sh: cannot find the install test's binary" >&2; exit 1; }
    # Run as cargo runs a test binary: from the package's folder.
    "$install_test" --ignored > "$install_log" 2>&1 &
    install_pid=$!
fi

section "3/5 Tests (cargo test --no-fail-fast${*:+ $*})"
# insta lists every snapshot a test reads; after a full run, a .snap file no test read is
# stale (its test was renamed or removed) and fails the run, so snapshots cannot rot.
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
if [ -n "$install_pid" ]; then
    install_status=0
    wait "$install_pid" || install_status=$?
    install_pid=""
    cat "$install_log"
    if [ "$install_status" -eq 0 ]; then
        done_in "install (after the tests; it ran beside them)"
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
