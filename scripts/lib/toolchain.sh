# shellcheck shell=bash
# Sourced by scripts/test.sh and scripts/demo.sh (bash): makes sure cargo can build
# retentionc on a fresh Debian 12 machine.
#
#   ensure_rust_toolchain PREFIX
#
# Rust links with the system C compiler (and the `ring` crate compiles C): without `cc`,
# Debian's build-essential is installed (with curl for rustup), through sudo when not root.
# Without cargo (on PATH or in ~/.cargo/bin), Rust is installed with rustup
# (https://rustup.rs), minimal profile, for the user running the script. Afterwards cargo
# is on PATH. PREFIX names the calling script in messages. Returns 1, having said why, when
# something cannot be installed.

# Prints one step in the style of the calling script.
toolchain_say() { printf '\n==> %s\n' "$*"; }

ensure_rust_toolchain() {
    local prefix="${1:-toolchain}"
    local cargo_home="${CARGO_HOME:-${HOME:-/root}/.cargo}"
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$cargo_home/bin/cargo" ]; then
        PATH="$cargo_home/bin:$PATH"
    fi
    if ! command -v cc >/dev/null 2>&1 \
        || { ! command -v cargo >/dev/null 2>&1 && ! command -v curl >/dev/null 2>&1; }; then
        toolchain_say "Installing a C compiler and curl (apt-get install build-essential curl)"
        local as_root=()
        if [ "$(id -u)" -ne 0 ]; then
            if ! command -v sudo >/dev/null 2>&1; then
                printf '%s: ERROR: installing build-essential needs root: run as root, or as a user with sudo (or install build-essential and curl yourself)\n' "$prefix" >&2
                return 1
            fi
            as_root=(sudo)
        fi
        "${as_root[@]}" apt-get update -qq || return 1
        "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends build-essential curl ca-certificates >/dev/null || return 1
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        toolchain_say "Installing Rust with rustup (https://rustup.rs), for this user only"
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal \
            || return 1
        PATH="$cargo_home/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        printf '%s: ERROR: cargo not found after installing Rust (looked on PATH and in %s/bin)\n' \
            "$prefix" "$cargo_home" >&2
        return 1
    fi
    export PATH
}
