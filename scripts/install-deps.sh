#!/usr/bin/env bash
# Installs what retentionc's test suite needs on Debian 12 (bookworm), as root (or as a
# user with sudo):
#   - PostgreSQL 15 with pg_partman 4.7.2 and pg_cron 1.4 (Debian 12 packages);
#   - promtool (Debian's prometheus package; its server is not started), man-db, and
#     check-jsonschema (PyPI, in a virtualenv under /opt/retentionc-ci) for the
#     monitoring, manual-page and GitHub Action tests;
#   - pg_partman 5.2.4's extension scripts, taken from Debian 13's (trixie)
#     postgresql-17-partman and copied beside 4.7.2 into PostgreSQL 15's extension
#     folder, so that each test database can choose
#     CREATE EXTENSION pg_partman VERSION '4.7.2' or VERSION '5.2.4'.
# The trixie package is fetched with `apt-get download` through a private apt
# configuration in a temporary folder: the machine's own apt sources stay on Debian 12.
# Idempotent: when everything is in place it returns in well under a second.
# `--demo`: only what scripts/demo.sh needs (no promtool, man-db or check-jsonschema).
set -euo pipefail

TEST_TOOLS=1
[ "${1:-}" != "--demo" ] || TEST_TOOLS=0

PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PACKAGES=(postgresql-common "postgresql-${PG_MAJOR}" "postgresql-client-${PG_MAJOR}"
          "postgresql-${PG_MAJOR}-partman" "postgresql-${PG_MAJOR}-cron" util-linux)
# The network-fault tests' proxy (socat) and kill(1) to freeze it (procps); promtool, man,
# check-jsonschema's Python and git for the monitoring and install tests.
[ "$TEST_TOOLS" = 0 ] || PACKAGES+=(socat procps prometheus man-db python3-venv git)
PARTMAN5_PACKAGE=postgresql-17-partman
PARTMAN5_VERSION=5.2.4
PARTMAN4_VERSION=4.7.2

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { printf 'install-deps: ERROR: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
    command -v sudo >/dev/null || die "run as root (or install sudo)"
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# --- 1. Debian 12 packages -------------------------------------------------------------
missing=()
for p in "${PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    $SUDO apt-get update -qq
    if ! installed postgresql-common; then
        $SUDO apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null
    fi
    # The tests make their own throwaway clusters: don't let the package create (and
    # start) a default "main" cluster on port 5432, unless one exists already.
    if [ ! -d "/etc/postgresql/${PG_MAJOR}" ] && [ -f /etc/postgresql-common/createcluster.conf ] \
        && ! grep -q '^create_main_cluster' /etc/postgresql-common/createcluster.conf; then
        echo 'create_main_cluster = false' | $SUDO tee -a /etc/postgresql-common/createcluster.conf >/dev/null
    fi
    # Only promtool is wanted from the prometheus package: keep its server (and any other
    # service these packages bring) from starting, unless a policy is in place already.
    policy_rc=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy_rc" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy_rc" >/dev/null
        $SUDO chmod 0755 "$policy_rc"
        added_policy=1
    fi
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ "$added_policy" = 0 ] || $SUDO rm -f "$policy_rc"
fi
[ "$TEST_TOOLS" = 0 ] || command -v promtool >/dev/null || die "promtool missing after installing prometheus"

# --- 1b. check-jsonschema (PyPI), for the GitHub Action and workflow files -------------
CHECK_JSONSCHEMA_VERSION=0.39.0
CI_VENV=/opt/retentionc-ci/venv
if [ "$TEST_TOOLS" = 1 ] && ! "$CI_VENV/bin/check-jsonschema" --version 2>/dev/null | grep -q "$CHECK_JSONSCHEMA_VERSION"; then
    log "installing check-jsonschema ${CHECK_JSONSCHEMA_VERSION} into ${CI_VENV}"
    $SUDO python3 -m venv "$CI_VENV"
    $SUDO "$CI_VENV/bin/pip" install -q "check-jsonschema==${CHECK_JSONSCHEMA_VERSION}"
fi
[ -x "${PG_BIN}/initdb" ] || die "${PG_BIN}/initdb missing after install"

EXT_DIR="$("${PG_BIN}/pg_config" --sharedir)/extension"
[ -f "${EXT_DIR}/pg_partman--${PARTMAN4_VERSION}.sql" ] \
    || die "pg_partman ${PARTMAN4_VERSION} install script missing from ${EXT_DIR}"

# --- 2. pg_partman 5.2.4's SQL scripts beside 4.7.2 --------------------------------------
partman5_complete() {
    [ -f "${EXT_DIR}/pg_partman--${PARTMAN5_VERSION}.sql" ] \
        && [ -f "${EXT_DIR}/pg_partman--4.8.0--5.0.0.sql" ] \
        && [ -f "${EXT_DIR}/pg_partman--5.2.3--${PARTMAN5_VERSION}.sql" ]
}

if ! partman5_complete; then
    log "fetching pg_partman ${PARTMAN5_VERSION} from Debian 13 (${PARTMAN5_PACKAGE})"
    work="$(mktemp -d /tmp/retentionc-partman5.XXXXXX)"
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/sources" "$work/lists/partial" "$work/cache/archives/partial" "$work/deb"

    # The machine's own Debian archive URI (deb822 .sources first, then one-line format).
    uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri="$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/ && $i ~ /debian\/?$/) { print $i; exit } }' "$f")"
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ]; then
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            uri="$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { if ($i !~ /security/ && $i ~ /debian\/?$/) print $i; break } }' "$f" | head -n1)"
            [ -n "$uri" ] && break
        done
    fi
    [ -n "$uri" ] || uri="http://deb.debian.org/debian"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    cat >"$work/sources/trixie.sources" <<SRC
Types: deb
URIs: ${uri}
Suites: trixie
Components: main
Signed-By: ${keyring}
SRC
    apt_private=(
        -o "Dir::Etc::SourceParts=$work/sources"
        -o "Dir::Etc::SourceList=/dev/null"
        -o "Dir::Etc::Preferences=/dev/null"
        -o "Dir::Etc::PreferencesParts=$work/sources"
        -o "Dir::State::Lists=$work/lists"
        -o "Dir::Cache=$work/cache"
        -o "APT::Sandbox::User=root"
        -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
        -o "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false"
        -o "Acquire::Languages=none"
    )
    if ! apt-get "${apt_private[@]}" update -qq; then
        # An old keyring may lack Debian 13's archive key: a newer bookworm one has it.
        log "private apt update failed; upgrading debian-archive-keyring and retrying"
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq --only-upgrade debian-archive-keyring >/dev/null
        apt-get "${apt_private[@]}" update -qq
    fi
    (cd "$work/deb" && apt-get "${apt_private[@]}" download -qq "${PARTMAN5_PACKAGE}")
    deb="$(ls "$work"/deb/*.deb)"
    dpkg-deb -x "$deb" "$work/x"
    src_ext="$(ls -d "$work"/x/usr/share/postgresql/*/extension)"
    [ -f "$src_ext/pg_partman--${PARTMAN5_VERSION}.sql" ] \
        || die "$(basename "$deb") has no pg_partman--${PARTMAN5_VERSION}.sql (Debian 13 moved on?); files: $(ls "$src_ext" | tr '\n' ' ')"
    # The scripts are plain SQL; the package's only C code is the optional background
    # worker (pg_partman_bgw.so), which the scripts never load. Refuse anything else.
    if grep -l -E 'MODULE_PATHNAME|\$libdir' "$src_ext"/pg_partman--*.sql >/dev/null; then
        die "pg_partman scripts in $(basename "$deb") reference a C library: $(grep -l -E 'MODULE_PATHNAME|\$libdir' "$src_ext"/pg_partman--*.sql | xargs -n1 basename | tr '\n' ' ')"
    fi
    copied=0
    for f in "$src_ext"/pg_partman--*.sql; do
        name="$(basename "$f")"
        # Keep Debian 12's own files (and its control file, default_version 4.7.2).
        [ -e "${EXT_DIR}/${name}" ] && continue
        $SUDO install -m 0644 "$f" "${EXT_DIR}/.${name}.tmp"
        $SUDO mv -f "${EXT_DIR}/.${name}.tmp" "${EXT_DIR}/${name}"
        copied=$((copied + 1))
    done
    log "copied ${copied} pg_partman script(s) from $(basename "$deb") into ${EXT_DIR}"
    rm -rf "$work"
    trap - EXIT
fi

# --- 3. Check -----------------------------------------------------------------------------
partman5_complete || die "pg_partman ${PARTMAN5_VERSION} scripts still missing from ${EXT_DIR}"
grep -q "default_version = '${PARTMAN4_VERSION}'" "${EXT_DIR}/pg_partman.control" \
    || log "warning: pg_partman.control's default_version is not ${PARTMAN4_VERSION}"
for v in "$PARTMAN4_VERSION" "$PARTMAN5_VERSION"; do
    [ -f "${EXT_DIR}/pg_partman--${v}.sql" ] || die "pg_partman--${v}.sql missing"
done
[ -f "${EXT_DIR}/pg_cron.control" ] || die "pg_cron.control missing from ${EXT_DIR}"
[ -f "$("${PG_BIN}/pg_config" --pkglibdir)/pg_cron.so" ] || die "pg_cron.so missing"
id postgres >/dev/null 2>&1 || die "no postgres user (postgresql-common should create it)"
log "ok: PostgreSQL ${PG_MAJOR}, pg_cron, pg_partman ${PARTMAN4_VERSION} + ${PARTMAN5_VERSION} (CREATE EXTENSION itself is checked by tests/cluster_smoke.rs)$([ "$TEST_TOOLS" = 0 ] || echo ', promtool, man, check-jsonschema')"
