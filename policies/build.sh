#!/usr/bin/env bash
# Builds the example policies to WebAssembly reactors:
#   policies/build.sh [OUT_DIR]      (default: bin/policies)
# Each policies/<name> main package becomes OUT_DIR/<name>.wasm.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/bin/policies}"
GO="${GO:-go}"
mkdir -p "$out"
cd "$root"
for name in keyvalidation ttlrules acl; do
	GOOS=wasip1 GOARCH=wasm "$GO" build -buildmode=c-shared -trimpath -o "$out/$name.wasm" "./policies/$name"
	echo "built $out/$name.wasm"
done
