#!/usr/bin/env bash
# Prepares the llama.cpp reference the engine tests compare against:
#   1. npm pack the prebuilt @node-llama-cpp/linux-x64 (libllama, libggml-cpu-*)
#      and node-llama-cpp (whose llama/gitRelease.bundle is the llama.cpp source);
#   2. clone that bundle for the headers and the models/ggml-vocab-* test files;
#   3. build tools/llamaref/llamaref.c against the prebuilt libraries;
#   4. npm pack @huggingface/jinja, the independent chat-template renderer
#      the engine's Jinja templates are checked against (pkg/serve/engine/chat).
# Everything lands in $LLAMAREF_DIR (default ~/.cache/llmctl/llamaref); reruns
# are cheap no-ops. Prints nothing but errors unless VERBOSE=1.
set -euo pipefail

VER=3.21.1
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=${LLAMAREF_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/llmctl/llamaref}
mkdir -p "$DIR"
cd "$DIR"

log() { [ "${VERBOSE:-0}" = 1 ] && echo "llamaref: $*" >&2 || true; }

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "llamaref: the prebuilt llama.cpp reference exists for linux x86_64 only" >&2
  exit 1
fi

fetch() { # package tarball
  if [ ! -s "$2" ]; then
    log "npm pack $1"
    npm pack --silent "$1" >/dev/null
  fi
}
fetch "@node-llama-cpp/linux-x64@$VER" "node-llama-cpp-linux-x64-$VER.tgz"
fetch "node-llama-cpp@$VER" "node-llama-cpp-$VER.tgz"

if [ ! -f bin/.done ]; then
  rm -rf bin && mkdir bin
  tar -xzf "node-llama-cpp-linux-x64-$VER.tgz" -C bin --strip-components=3 package/bins/linux-x64
  touch bin/.done
fi

if [ ! -f llama.cpp/.done ]; then
  rm -rf llama.cpp pkgsrc && mkdir pkgsrc
  tar -xzf "node-llama-cpp-$VER.tgz" -C pkgsrc package/llama/gitRelease.bundle
  git clone --quiet pkgsrc/package/llama/gitRelease.bundle llama.cpp 2>/dev/null
  rm -rf pkgsrc
  touch llama.cpp/.done
fi

if [ ! -x llamaref ] || [ "$HERE/llamaref.c" -nt llamaref ]; then
  log "building llamaref"
  ${CC:-cc} -O2 -std=c11 -D_POSIX_C_SOURCE=200809L \
    -Illama.cpp/include -Illama.cpp/ggml/include \
    "$HERE/llamaref.c" -o llamaref.tmp \
    -L"$DIR/bin" -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so \
    -Wl,-rpath,"$DIR/bin"
  mv llamaref.tmp llamaref
fi

HFJINJA=0.5.13
fetch "@huggingface/jinja@$HFJINJA" "huggingface-jinja-$HFJINJA.tgz"
if [ ! -f hfjinja/.done-$HFJINJA ]; then
  rm -rf hfjinja && mkdir hfjinja
  tar -xzf "huggingface-jinja-$HFJINJA.tgz" -C hfjinja --strip-components=1
  touch hfjinja/.done-$HFJINJA
fi

# The test harness reads this path.
echo "$DIR"
