#!/usr/bin/env bash
# Installs what srlm needs on a fresh Debian 12 machine, and nothing that is already there:
#   - Debian packages: compilers' libraries (gRPC, protobuf, abseil, yaml-cpp, OpenMPI, GoogleTest,
#     SQLite, sentencepiece, RE2, OpenSSL, CLI11, nlohmann-json), ccache, and for tests Slurm, munge and
#     Debian's python3-grpcio (an independent gRPC client);
#   - a Python virtual environment in .venv holding a pinned PyPI torch, whose libtorch the build
#     links, and the Hugging Face packages the tests use as an independent reference.
# Idempotent: a second run checks, installs nothing, and takes seconds.
# Usage: deploy/setup.sh            (everything)
#        SRLM_SKIP_APT=1 deploy/setup.sh   (only the Python environment; for machines without root)
set -euo pipefail
cd "$(dirname "$0")/.."

# The torch version must match the GPU machines' (PyTorch 2.11, CUDA 13.0); change both together.
TORCH_VERSION="${SRLM_TORCH_VERSION:-2.11.0}"
PY_PACKAGES=(
  "torch==${TORCH_VERSION}"
  "numpy==2.4.6"
  "transformers==5.23.0"
  "tokenizers==0.23.3"
  "safetensors==0.8.0"
  "sentencepiece==0.2.3"
)
DEB_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config python3-venv
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libyaml-cpp-dev libabsl-dev libopenmpi-dev openmpi-bin libgtest-dev libgmock-dev
  nlohmann-json3-dev libsqlite3-dev libsentencepiece-dev libicu-dev libcli11-dev libre2-dev libssl-dev
  slurm-wlm munge python3-grpcio python3-grpc-tools
)

log() { echo "[setup] $*"; }

if [[ "${SRLM_SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    SUDO=""; [[ $(id -u) != 0 ]] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    log "Debian packages: all present"
  fi
fi

# The virtual environment. Prefer the python3 on PATH; fall back to Debian's.
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  python3 -m venv .venv 2>/dev/null || /usr/bin/python3 -m venv .venv
fi
stamp=".venv/.srlm-packages"
want="$(printf '%s\n' "${PY_PACKAGES[@]}")"
if [[ ! -f "$stamp" ]] || [[ "$(cat "$stamp")" != "$want" ]]; then
  log "installing Python packages: ${PY_PACKAGES[*]}"
  .venv/bin/pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
  printf '%s\n' "${PY_PACKAGES[@]}" > "$stamp"
else
  log "Python packages: all present (${PY_PACKAGES[*]})"
fi
