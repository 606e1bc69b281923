#!/usr/bin/env bash
# Packs srlm's binaries for a GPU machine that has CUDA PyTorch 2.11 (cu130) and python3 with
# transformers but none of srlm's other libraries and no network (the device tool's machines).
# Run here, after `make test` has built everything: it writes .gpu/bundle.tar.xz (git-ignored; the
# device tool carries it) holding
#   bin/NAME        a wrapper that sets the library path and runs bin/real/NAME
#   bin/real/       srlm-worker, model_test, srlm_train_test, model_decode_bench, train_step_bench
#                   (debug info stripped)
#   lib/            every shared library they or OpenMPI's plugins load, except glibc's, libstdc++,
#                   libgcc_s, and libtorch/CUDA/NCCL, which come from the GPU machine's PyTorch
#   ompi/           OpenMPI's plugins (MPI runs as an isolated singleton: no orted, no mpirun)
#   VERSION         the commit (and whether the tree had changes) the binaries were built from
# and checks that the wrapped binaries resolve every library inside the bundle or from that
# allowed set. bench/gpu/run_checks.sh unpacks it there. The binaries were linked against this
# machine's .venv torch (2.11.0+cu130), the same build as the GPU machine's.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD="${BUILD:-build}"
BINARIES=(worker/srlm-worker worker/model/model_test worker/train/srlm_train_test bench/model_decode_bench
          bench/train_step_bench)
OMPI_PLUGINS=/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3

ninja -C "$BUILD" srlm-worker model_test srlm_train_test model_decode_bench train_step_bench >/dev/null
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin/real" "$stage/lib" "$stage/ompi"

# Libraries the GPU machine provides (its glibc, its C++ runtime, its PyTorch and NVIDIA wheels).
provided() {
  case "$(basename "$1")" in
    linux-vdso.so.*|ld-linux-x86-64.so.*|libc.so.*|libm.so.*|libpthread.so.*|librt.so.*|libdl.so.*|libutil.so.*) return 0 ;;
    libstdc++.so.*|libgcc_s.so.*) return 0 ;;
    libtorch*|libc10*|libcudart.so.*|libnccl.so.*|libcuda.so.*|libgomp*|libcupti*|libnvrtc*|libcublas*|libcudnn*) return 0 ;;
  esac
  case "$1" in */torch/lib/*|*/nvidia/*|/usr/local/cuda*) return 0 ;; esac
  return 1
}

# Copies the libraries that $1 needs (and their needs: ldd lists the whole closure).
collect() {
  ldd "$1" | awk '/=> \//{print $1, $3}' | while read -r name path; do
    provided "$path" && continue
    [[ -e "$stage/lib/$name" ]] || cp -L "$path" "$stage/lib/$name"
  done
}

for b in "${BINARIES[@]}"; do
  name="$(basename "$b")"
  objcopy --strip-debug "$BUILD/$b" "$stage/bin/real/$name"
  collect "$BUILD/$b"
  cat >"$stage/bin/$name" <<'EOF'
#!/usr/bin/env bash
# Runs the bundled binary with the bundle's libraries, then the GPU machine's PyTorch and NVIDIA
# libraries (SRLM_TORCH_LIB_PATH, set by bench/gpu/run_checks.sh); MPI as an isolated singleton.
here="$(cd "$(dirname "$0")" && pwd)"
export LD_LIBRARY_PATH="$here/../lib:${SRLM_TORCH_LIB_PATH:?set SRLM_TORCH_LIB_PATH}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMPI_MCA_ess_singleton_isolated=1 OMPI_MCA_mca_base_component_path="$here/../ompi"
export OMPI_MCA_mca_base_component_show_load_errors=0
# One process on one host: shared memory and self only, so that no network plugin (verbs, UCX,
# libfabric) probes the machine's own drivers with the bundle's older libraries.
export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader OMPI_MCA_osc=^ucx OMPI_MCA_mtl=^ofi,psm,psm2
exec "$here/real/$(basename "$0")" "$@"
EOF
  chmod +x "$stage/bin/$name"
done
for plugin in "$OMPI_PLUGINS"/*.so; do
  cp "$plugin" "$stage/ompi/"
  collect "$plugin"
done

# Every library the binaries and plugins load must resolve inside the bundle or the provided set.
torch_lib="$(dirname "$(readlink -f "$(ldd "$BUILD/worker/srlm-worker" | awk '/libtorch_cpu.so/{print $3}')")")"
site="$(dirname "$(dirname "$torch_lib")")"
missing=0
for f in "$stage"/bin/real/* "$stage"/ompi/*.so; do
  while read -r name path; do
    if [[ "$path" == "not" ]]; then echo "pack: $f: $name not found" >&2; missing=1; continue; fi
    [[ "$path" == "$stage/lib/"* ]] || provided "$path" || { echo "pack: $f loads $path from outside the bundle" >&2; missing=1; }
  done < <(LD_LIBRARY_PATH="$stage/lib:$torch_lib:$site/nvidia/cu13/lib:$site/nvidia/nccl/lib" ldd "$f" | awk '/=>/{print $1, $3}')
done
((missing == 0)) || exit 1

echo "$(git rev-parse HEAD)$(git diff --quiet HEAD -- . ':!docs' || echo ' with uncommitted changes')" >"$stage/VERSION"
mkdir -p .gpu
tar -C "$stage" -cJf .gpu/bundle.tar.xz .
echo "pack: .gpu/bundle.tar.xz $(du -h .gpu/bundle.tar.xz | cut -f1) ($(ls "$stage/lib" | wc -l) libraries, $(ls "$stage/ompi" | wc -l) MPI plugins), built from $(cat "$stage/VERSION")"
