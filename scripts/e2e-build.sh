#!/usr/bin/env bash
# Build the pinned binaries the end-to-end tests run, into a cache outside git.
#
#   scripts/e2e-build.sh [kube|crossplane|registry|etcd|all] ...
#
# Each binary is keyed by its version (`<name>-<version>` in $BIN_DIR), built
# once under its own lock (two callers wait for one build) and written through
# a temporary file, so an interrupted build never leaves a binary behind.
# Prints `<name>=<path>` for every binary asked for.
#
#   kube        kube-apiserver + kube-controller-manager from k8s.io/kubernetes
#               (a throw-away module that requires it and replaces every
#               k8s.io staging module with the matching v0.x tag, because the
#               main module points them at ./staging)
#   crossplane  Crossplane core (`cmd/crossplane`, the same module as the CLI
#               built by scripts/install-crossplane.sh), with the version
#               ldflag package compatibility checks need, and the module's
#               cluster/crds and cluster/webhookconfigurations (core init reads them)
#   registry    go-containerregistry's in-memory OCI registry (`cmd/registry`),
#               the version Crossplane pins
#   etcd        Debian's etcd-server (apt-get), not built
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
CROSSPLANE_VERSION="${CROSSPLANE_VERSION:-v2.1.4}"
GGCR_VERSION="${GGCR_VERSION:-v0.20.7}"
CACHE_DIR="${FOP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/function-ollama-platform}"
BIN_DIR="$CACHE_DIR/bin"
WORK_DIR="$CACHE_DIR/e2e-build"
mkdir -p "$BIN_DIR" "$WORK_DIR"

export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"

need_go() { command -v go >/dev/null || { echo "go is required to build $1" >&2; exit 1; }; }

# locked NAME CMD...: run CMD under an exclusive lock named NAME.
locked() {
  local name="$1"; shift
  exec {fd}>"$WORK_DIR/$name.lock"
  flock "$fd"
  "$@"
  flock -u "$fd"
  exec {fd}>&-
}

build_kube() {
  local api="$BIN_DIR/kube-apiserver-$KUBE_VERSION" kcm="$BIN_DIR/kube-controller-manager-$KUBE_VERSION"
  if [ -x "$api" ] && [ -x "$kcm" ]; then return; fi
  need_go kube-apiserver
  local staging="v0.${KUBE_VERSION#v1.}" work="$WORK_DIR/kube-$KUBE_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init fop.local/kubebuild >/dev/null 2>&1
  # The staging modules the main module replaces with ./staging/... paths.
  local modfile
  modfile="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  local mods
  mods="$(sed -n 's#^[[:space:]]*\(k8s.io/[^[:space:]]*\) => ./staging/.*#\1#p' "$modfile" | sort -u)"
  [ -n "$mods" ] || { echo "no staging replaces found in $modfile" >&2; exit 1; }
  local args=() m
  for m in $mods; do args+=("-replace=$m=$m@$staging"); done
  go mod edit "${args[@]}" "-require=k8s.io/kubernetes@$KUBE_VERSION"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  go mod tidy -e >&2 || true
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  mkdir -p out
  go build -trimpath -ldflags "$ld" -o out/ k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager >&2
  mv out/kube-apiserver "$api"
  mv out/kube-controller-manager "$kcm"
}

build_crossplane() {
  local bin="$BIN_DIR/crossplane-core-$CROSSPLANE_VERSION"
  if [ -x "$bin" ]; then return; fi
  need_go "Crossplane core"
  local work="$WORK_DIR/crossplane-$CROSSPLANE_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  # The checksum database has no entry for this version; skip only that lookup.
  export GONOSUMDB="github.com/crossplane/crossplane"
  go mod init fop.local/xpbuild >/dev/null 2>&1
  go get "github.com/crossplane/crossplane/v2@$CROSSPLANE_VERSION" >&2
  go build -trimpath -ldflags "-s -w -X github.com/crossplane/crossplane/v2/internal/version.version=$CROSSPLANE_VERSION" \
    -o "$bin.tmp" github.com/crossplane/crossplane/v2/cmd/crossplane >&2
  mv "$bin.tmp" "$bin"
}

# Crossplane core installs its own CRDs and webhook configurations (the Usage
# webhook) from the module's cluster/crds and cluster/webhookconfigurations.
copy_crossplane_dirs() {
  local sub dir missing=()
  for sub in crds webhookconfigurations; do
    [ -d "$BIN_DIR/crossplane-$sub-$CROSSPLANE_VERSION" ] || missing+=("$sub")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  need_go "Crossplane core's CRDs"
  local work="$WORK_DIR/crossplane-$CROSSPLANE_VERSION" src
  mkdir -p "$work" && cd "$work"
  export GONOSUMDB="github.com/crossplane/crossplane"
  [ -f go.mod ] || go mod init fop.local/xpbuild >/dev/null 2>&1
  go mod download "github.com/crossplane/crossplane/v2@$CROSSPLANE_VERSION" >&2
  src="$(go mod download -json "github.com/crossplane/crossplane/v2@$CROSSPLANE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$src/cluster" ] || { echo "cannot find the Crossplane module's cluster/ directory" >&2; exit 1; }
  for sub in "${missing[@]}"; do
    dir="$BIN_DIR/crossplane-$sub-$CROSSPLANE_VERSION"
    rm -rf "$dir" "$dir.tmp"
    cp -r "$src/cluster/$sub" "$dir.tmp"
    chmod -R u+w "$dir.tmp"
    mv "$dir.tmp" "$dir"
  done
}

build_registry() {
  local bin="$BIN_DIR/registry-$GGCR_VERSION"
  if [ -x "$bin" ]; then return; fi
  need_go "the OCI registry"
  local work="$WORK_DIR/registry-$GGCR_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init fop.local/registrybuild >/dev/null 2>&1
  go get "github.com/google/go-containerregistry@$GGCR_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp" github.com/google/go-containerregistry/cmd/registry >&2
  mv "$bin.tmp" "$bin"
}

install_etcd() {
  if command -v etcd >/dev/null; then return; fi
  command -v apt-get >/dev/null || { echo "etcd is missing and apt-get is not available" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >&2 \
    || { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >&2; }
}

crossplane_all() { build_crossplane; copy_crossplane_dirs; }

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(all)
[ "${targets[0]}" != all ] || targets=(etcd registry crossplane kube)
for t in "${targets[@]}"; do
  case "$t" in
    kube) (locked "kube-$KUBE_VERSION" build_kube)
          echo "kube-apiserver=$BIN_DIR/kube-apiserver-$KUBE_VERSION"
          echo "kube-controller-manager=$BIN_DIR/kube-controller-manager-$KUBE_VERSION" ;;
    crossplane) (locked "crossplane-$CROSSPLANE_VERSION" crossplane_all)
          echo "crossplane-core=$BIN_DIR/crossplane-core-$CROSSPLANE_VERSION"
          echo "crossplane-crds=$BIN_DIR/crossplane-crds-$CROSSPLANE_VERSION"
          echo "crossplane-webhookconfigurations=$BIN_DIR/crossplane-webhookconfigurations-$CROSSPLANE_VERSION" ;;
    registry) (locked "registry-$GGCR_VERSION" build_registry)
          echo "registry=$BIN_DIR/registry-$GGCR_VERSION" ;;
    etcd) (locked etcd install_etcd)
          echo "etcd=$(command -v etcd)" ;;
    *) echo "unknown target: $t" >&2; exit 2 ;;
  esac
done
