#!/usr/bin/env bash
# The whole check on a lent GPU machine (16 cores, one NVIDIA GPU, no network), in one call that carries
# .device and .gl (made by pack.sh): the 16-core scaling run (bench/scaling: TP 2/4/8, PP 2/4, hybrid,
# emulated links, llama.cpp at the same threads), then the GPU check (bench/gpu). Results land in $OUT.
# SCALING_ARGS / GPU_ARGS override each run's flags (a quick local rehearsal uses small ones).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/tessera-device-out}
mkdir -p "$OUT"
log() { echo "[$(date +%T)] $*"; }
export ORT_DISABLE_TELEMETRY=1
export TESSERA_BENCH_COMMIT=$(cat .device/commit 2>/dev/null) TESSERA_BENCH_DIRTY=$(cat .device/dirty 2>/dev/null)
if command -v node >/dev/null && node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)'; then
  NODE=$(command -v node)
else
  mkdir -p /tmp/nodebin && xz -dc .device/node.xz > /tmp/nodebin/node && chmod +x /tmp/nodebin/node && NODE=/tmp/nodebin/node
  export PATH=/tmp/nodebin:$PATH
fi
[ -d node_modules/onnxruntime-node ] || tar -xJf .device/nm.tar.xz
[ -f dist/bench/scaling/scaling.js ] || tar -xJf .device/dist.tar.xz
log "node $($NODE --version), $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -2
if ls .gl/*.deb >/dev/null 2>&1 && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && export VK_DRIVER_FILES=$icd
log "vulkan loader: $(ldconfig -p | grep -c libvulkan.so.1), ICD: ${VK_DRIVER_FILES:-none}"
timeout 20 python3 -c 'import onnxruntime as o; print("python onnxruntime", o.__version__, o.get_available_providers())' 2>&1 | tail -1
timeout 20 find /usr /opt -name 'libonnxruntime_providers_cuda.so*' 2>/dev/null | head -3

log "scaling"
# shellcheck disable=SC2086
timeout 330 "$NODE" dist/bench/scaling/scaling.js ${SCALING_ARGS:---configs single,tp2,tp4,tp8,pp2,pp4,pp2xtp2,pp4xtp2 --llama-threads 1,2,4,8 --rounds 6 --tokens 16 --prompt-tokens 128 --ttft-rounds 2 --sweep tp2,pp2,tp4 --latencies 50,300,2000 --sweep-rounds 2} \
  --out "$OUT/scaling.json" > "$OUT/scaling.log" 2>&1
log "scaling exit $?"; tail -25 "$OUT/scaling.log"

log "gpu"
# shellcheck disable=SC2086
timeout 230 "$NODE" dist/bench/gpu/gpu.js ${GPU_ARGS:---rounds 4 --tokens 32 --prompt-tokens 256} --out "$OUT/gpu.json" > "$OUT/gpu.log" 2>&1
log "gpu exit $?"; tail -40 "$OUT/gpu.log"
