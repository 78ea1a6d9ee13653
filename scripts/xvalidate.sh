#!/usr/bin/env bash
# Validate resources with the real `crossplane beta validate`, offline.
#   scripts/xvalidate.sh <extensions (dirs/files, comma-separated)> <resources file or dir or ->
# Extensions default to $OLLAMA_PLATFORM_CRDS (default ../shared/crds) when only
# resources are given. The Crossplane built-in schemas come from the same
# directory's crossplane/ folder, placed in the CLI's cache so nothing downloads.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
crds="${OLLAMA_PLATFORM_CRDS:-$here/../shared/crds}"
if [ $# -eq 1 ]; then set -- "$crds" "$1"; fi
# CROSSPLANE_BIN (set by tests/toolchain.py once it has found the CLI) skips the build.
bin="${CROSSPLANE_BIN:-$("$here/scripts/install-crossplane.sh")}"
case "$(basename "$bin")" in
  crossplane-v*) version="$(basename "$bin" | sed 's/^crossplane-//')" ;;
  *) version="${CROSSPLANE_VERSION:-v2.1.4}" ;;
esac
cache="${FOP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/function-ollama-platform}/validate"
image="xpkg.crossplane.io/crossplane/crossplane:$version"
slot="$cache/xpkg.crossplane.io/crossplane/crossplane@$version"
if [ ! -d "$slot" ]; then
  mkdir -p "$(dirname "$slot")"
  cp -r "$crds/crossplane" "$slot.tmp" && mv "$slot.tmp" "$slot"
fi
exec "$bin" beta validate "$1" "$2" --cache-dir "$cache" --crossplane-image "$image" "${@:3}"
