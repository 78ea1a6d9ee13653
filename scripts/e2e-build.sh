#!/usr/bin/env bash
# Build the pinned binaries the end-to-end tests run, into a cache outside git.
#
#   scripts/e2e-build.sh [kube|scheduler|crossplane|registry|etcd|providers|provider-helm|provider-kubernetes|kwok|gateway|envoy-gateway|ai-gateway|all] ...
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
#   scheduler   kube-scheduler from the same module (the workload cluster's)
#   etcd        etcd from go.etcd.io/etcd/server/v3 (>= 3.5.13: watch progress
#               requests, which the API server's watch cache needs to answer
#               kwok's lists quickly; Debian's 3.4 lacks them)
#   providers   provider-helm (from its release source in ../shared/sources: the
#               module proxy does not serve it) and provider-kubernetes (module
#               proxy), each with its package/crds; both import
#               github.com/nebius/gosdk for Nebius authentication only and that
#               module is not served either, so a stub of the few names they use
#               is generated here (under the cache dir) and `replace`d in
#   kwok        kwok (fake kubelets for the workload cluster's nodes)
#   gateway     the model gateway's controllers: Envoy Gateway (`cmd/envoy-gateway`
#               from github.com/envoyproxy/gateway, module proxy; its go.mod has no
#               replace directives, so it builds inside its own module like kwok)
#               and the AI Gateway controller (`./cmd/controller` from its release
#               source in ../shared/sources: the module proxy does not serve it)
#
# `all` builds everything, two lanes side by side (the Go build is the
# bottleneck on two cores; the lanes overlap downloads with compiling), and
# prints how long each cold build took.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.34.4}"
CROSSPLANE_VERSION="${CROSSPLANE_VERSION:-v2.1.4}"
GGCR_VERSION="${GGCR_VERSION:-v0.20.7}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.4}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
PROVIDER_HELM_VERSION="${PROVIDER_HELM_VERSION:-v1.4.0}"
PROVIDER_KUBERNETES_VERSION="${PROVIDER_KUBERNETES_VERSION:-v1.3.1}"
ENVOY_GATEWAY_VERSION="${ENVOY_GATEWAY_VERSION:-v1.8.1}"
AI_GATEWAY_VERSION="${AI_GATEWAY_VERSION:-v1.1.0}"
AI_GATEWAY_COMMIT="${AI_GATEWAY_COMMIT:-c217da8a}"   # the tag's commit (its version string)
SHARED_DIR="${FOP_SHARED_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
PROVIDER_HELM_SRC="${PROVIDER_HELM_SRC:-$SHARED_DIR/sources/provider-helm-$PROVIDER_HELM_VERSION}"
AI_GATEWAY_SRC="${AI_GATEWAY_SRC:-$SHARED_DIR/sources/ai-gateway-$AI_GATEWAY_VERSION}"
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

# kube_module DIR: a throw-away module in DIR that requires k8s.io/kubernetes and
# replaces its staging modules; sets KUBE_LDFLAGS.
kube_module() {
  local staging="v0.${KUBE_VERSION#v1.}" work="$1"
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
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
GO
  go mod tidy -e >&2 || true
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local p
  KUBE_LDFLAGS="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    KUBE_LDFLAGS+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
}

build_kube() {
  local api="$BIN_DIR/kube-apiserver-$KUBE_VERSION" kcm="$BIN_DIR/kube-controller-manager-$KUBE_VERSION"
  if [ -x "$api" ] && [ -x "$kcm" ]; then return; fi
  need_go kube-apiserver
  kube_module "$WORK_DIR/kube-$KUBE_VERSION"
  mkdir -p out
  go build -trimpath -ldflags "$KUBE_LDFLAGS" -o out/ k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager >&2
  mv out/kube-apiserver "$api"
  mv out/kube-controller-manager "$kcm"
}

build_scheduler() {
  local bin="$BIN_DIR/kube-scheduler-$KUBE_VERSION"
  if [ -x "$bin" ]; then return; fi
  need_go kube-scheduler
  kube_module "$WORK_DIR/kube-scheduler-$KUBE_VERSION"
  go build -trimpath -ldflags "$KUBE_LDFLAGS" -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-scheduler >&2
  mv "$bin.tmp" "$bin"
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

# go.etcd.io/etcd/server/v3 is the etcd binary's main package; its own replaces
# point at sibling directories, so it is built as a dependency of a throw-away
# module (which resolves api/v3, client/* at the same version).
build_etcd() {
  local bin="$BIN_DIR/etcd-$ETCD_VERSION"
  if [ -x "$bin" ]; then return; fi
  need_go etcd
  local work="$WORK_DIR/etcd-$ETCD_VERSION"
  rm -rf "$work" && mkdir -p "$work" && cd "$work"
  go mod init fop.local/etcdbuild >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$bin.tmp" "$bin"
}

# module_dir MODULE@VERSION: where the module proxy's copy of it was unpacked.
module_dir() {
  go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

# gosdk_stub DIR: the names of github.com/nebius/gosdk that the providers' Nebius
# authentication uses, as a module that refuses to authenticate. Nothing here
# configures Nebius, so none of it runs.
gosdk_stub() {
  local dir="$1"
  rm -rf "$dir" && mkdir -p "$dir/auth"
  printf 'module github.com/nebius/gosdk\n\ngo 1.22\n' > "$dir/go.mod"
  cat > "$dir/gosdk.go" <<'GO'
// Package gosdk is a build stub: Nebius authentication is not available.
package gosdk

import (
	"context"
	"errors"

	"github.com/nebius/gosdk/auth"
)

type SDK struct{}
type Option struct{}
type Credentials struct{}

var errStub = errors.New("nebius authentication is not built in")

func New(context.Context, ...Option) (*SDK, error)                  { return nil, errStub }
func WithCredentials(Credentials) Option                             { return Option{} }
func ServiceAccountReader(any) Credentials                           { return Credentials{} }
func (*SDK) BearerToken(context.Context) (auth.BearerToken, error) { return auth.BearerToken{}, errStub }
GO
  cat > "$dir/auth/auth.go" <<'GO'
// Package auth is a build stub.
package auth

type BearerToken struct{ Token string }

func NewPrivateKeyParser([]byte, string, string) any { return nil }
GO
}

# build_provider NAME VERSION SRC: copy a provider's module source, point its
# gosdk requirement at the stub, build cmd/provider and keep package/crds.
build_provider() {
  local name="$1" version="$2" src="$3"
  local bin="$BIN_DIR/$name-$version" crds="$BIN_DIR/$name-crds-$version"
  if [ -x "$bin" ] && [ -d "$crds" ]; then return; fi
  need_go "$name"
  [ -f "$src/go.mod" ] || { echo "no $name source at $src" >&2; exit 1; }
  local work="$WORK_DIR/$name-$version"
  rm -rf "$work" && mkdir -p "$work"
  cp -r "$src" "$work/src" && chmod -R u+w "$work/src"
  gosdk_stub "$work/gosdk"
  cd "$work/src"
  go mod edit -replace=github.com/nebius/gosdk=../gosdk
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp" ./cmd/provider >&2
  rm -rf "$crds" "$crds.tmp"
  cp -r package/crds "$crds.tmp"
  mv "$crds.tmp" "$crds"
  mv "$bin.tmp" "$bin"
}

build_provider_helm() {
  build_provider provider-helm "$PROVIDER_HELM_VERSION" "$PROVIDER_HELM_SRC"
}

build_provider_kubernetes() {
  local bin="$BIN_DIR/provider-kubernetes-$PROVIDER_KUBERNETES_VERSION"
  if [ -x "$bin" ] && [ -d "$BIN_DIR/provider-kubernetes-crds-$PROVIDER_KUBERNETES_VERSION" ]; then return; fi
  need_go provider-kubernetes
  mkdir -p "$WORK_DIR" && cd "$WORK_DIR"
  build_provider provider-kubernetes "$PROVIDER_KUBERNETES_VERSION" \
    "$(module_dir "github.com/crossplane-contrib/provider-kubernetes@$PROVIDER_KUBERNETES_VERSION")"
}

build_kwok() {
  local bin="$BIN_DIR/kwok-$KWOK_VERSION"
  if [ -x "$bin" ]; then return; fi
  need_go kwok
  local work="$WORK_DIR/kwok-$KWOK_VERSION" src
  mkdir -p "$WORK_DIR" && cd "$WORK_DIR"
  src="$(module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")"
  rm -rf "$work" && mkdir -p "$work"
  cp -r "$src" "$work/src" && chmod -R u+w "$work/src"
  cd "$work/src"
  go build -trimpath -ldflags "-s -w" -o "$bin.tmp" ./cmd/kwok >&2
  mv "$bin.tmp" "$bin"
}

# build_copy SRC WORK BIN PKG LDFLAGS: build PKG of the module at SRC inside a
# writable copy of it (WORK/src), with its own go.mod and go.sum, into BIN.
build_copy() {
  local src="$1" work="$2" bin="$3" pkg="$4" ldflags="$5"
  [ -f "$src/go.mod" ] || { echo "no module source at $src" >&2; exit 1; }
  rm -rf "$work" && mkdir -p "$work"
  cp -r "$src" "$work/src" && chmod -R u+w "$work/src"
  cd "$work/src"
  go build -trimpath -ldflags "-s -w $ldflags" -o "$bin.tmp" "$pkg" >&2
  mv "$bin.tmp" "$bin"
}

# Envoy Gateway's controller (it also runs the infrastructure it manages as
# Deployments of Envoy proxies, which kwok "runs" in the tests).
build_envoy_gateway() {
  local bin="$BIN_DIR/envoy-gateway-$ENVOY_GATEWAY_VERSION"
  if [ -x "$bin" ]; then return; fi
  need_go "Envoy Gateway"
  mkdir -p "$WORK_DIR" && cd "$WORK_DIR"
  build_copy "$(module_dir "github.com/envoyproxy/gateway@$ENVOY_GATEWAY_VERSION")" \
    "$WORK_DIR/envoy-gateway-$ENVOY_GATEWAY_VERSION" "$bin" ./cmd/envoy-gateway \
    "-X github.com/envoyproxy/gateway/internal/cmd/version.envoyGatewayVersion=$ENVOY_GATEWAY_VERSION"
}

# The AI Gateway controller (AIGatewayRoute -> HTTPRoute, Envoy Gateway's
# extension server, the proxies' mutating webhook). Its version string is
# "<tag>-<commits since>-g<sha>" (git describe), as its release build sets it.
build_ai_gateway() {
  local bin="$BIN_DIR/ai-gateway-controller-$AI_GATEWAY_VERSION"
  if [ -x "$bin" ]; then return; fi
  need_go "the AI Gateway controller"
  build_copy "$AI_GATEWAY_SRC" "$WORK_DIR/ai-gateway-$AI_GATEWAY_VERSION" "$bin" ./cmd/controller \
    "-X github.com/envoyproxy/ai-gateway/internal/version.version=$AI_GATEWAY_VERSION-0-g$AI_GATEWAY_COMMIT"
}

crossplane_all() { build_crossplane; copy_crossplane_dirs; }

# timed NAME CMD...: run CMD, and say how long it took when it built something.
timed() {
  local name="$1" t0=$SECONDS; shift
  "$@"
  if [ $((SECONDS - t0)) -gt 2 ]; then echo "e2e-build: $name took $((SECONDS - t0))s" >&2; fi
}

# one TARGET: build TARGET (locked, cached) and print its paths.
one() {
  case "$1" in
    kube) (locked "kube-$KUBE_VERSION" timed kube build_kube)
          echo "kube-apiserver=$BIN_DIR/kube-apiserver-$KUBE_VERSION"
          echo "kube-controller-manager=$BIN_DIR/kube-controller-manager-$KUBE_VERSION" ;;
    scheduler) (locked "kube-scheduler-$KUBE_VERSION" timed kube-scheduler build_scheduler)
          echo "kube-scheduler=$BIN_DIR/kube-scheduler-$KUBE_VERSION" ;;
    crossplane) (locked "crossplane-$CROSSPLANE_VERSION" timed crossplane crossplane_all)
          echo "crossplane-core=$BIN_DIR/crossplane-core-$CROSSPLANE_VERSION"
          echo "crossplane-crds=$BIN_DIR/crossplane-crds-$CROSSPLANE_VERSION"
          echo "crossplane-webhookconfigurations=$BIN_DIR/crossplane-webhookconfigurations-$CROSSPLANE_VERSION" ;;
    registry) (locked "registry-$GGCR_VERSION" timed registry build_registry)
          echo "registry=$BIN_DIR/registry-$GGCR_VERSION" ;;
    etcd) (locked "etcd-$ETCD_VERSION" timed etcd build_etcd)
          echo "etcd=$BIN_DIR/etcd-$ETCD_VERSION" ;;
    providers) one provider-helm; one provider-kubernetes ;;
    provider-helm) (locked "provider-helm-$PROVIDER_HELM_VERSION" timed provider-helm build_provider_helm)
          echo "provider-helm=$BIN_DIR/provider-helm-$PROVIDER_HELM_VERSION"
          echo "provider-helm-crds=$BIN_DIR/provider-helm-crds-$PROVIDER_HELM_VERSION" ;;
    provider-kubernetes) (locked "provider-kubernetes-$PROVIDER_KUBERNETES_VERSION" timed provider-kubernetes build_provider_kubernetes)
          echo "provider-kubernetes=$BIN_DIR/provider-kubernetes-$PROVIDER_KUBERNETES_VERSION"
          echo "provider-kubernetes-crds=$BIN_DIR/provider-kubernetes-crds-$PROVIDER_KUBERNETES_VERSION" ;;
    kwok) (locked "kwok-$KWOK_VERSION" timed kwok build_kwok)
          echo "kwok=$BIN_DIR/kwok-$KWOK_VERSION" ;;
    gateway) one envoy-gateway; one ai-gateway ;;
    envoy-gateway) (locked "envoy-gateway-$ENVOY_GATEWAY_VERSION" timed envoy-gateway build_envoy_gateway)
          echo "envoy-gateway=$BIN_DIR/envoy-gateway-$ENVOY_GATEWAY_VERSION" ;;
    ai-gateway) (locked "ai-gateway-$AI_GATEWAY_VERSION" timed ai-gateway build_ai_gateway)
          echo "ai-gateway-controller=$BIN_DIR/ai-gateway-controller-$AI_GATEWAY_VERSION" ;;
    *) echo "unknown target: $1" >&2; exit 2 ;;
  esac
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(all)
if [ "${targets[0]}" = all ]; then
  # Two lanes of about equal length cold (the Kubernetes binaries, the long
  # pole, provider-kubernetes and the AI Gateway controller in one; the rest, Envoy
  # Gateway last, in the other); each build is
  # locked, so a concurrent caller waits for it.
  ( one kube; one scheduler; one provider-kubernetes; one ai-gateway ) & lane=$!
  for t in etcd registry crossplane kwok provider-helm envoy-gateway; do one "$t"; done
  wait "$lane"
  exit 0
fi
for t in "${targets[@]}"; do one "$t"; done
