#!/usr/bin/env bash
# Build the `crossplane` CLI from its Go module into a cache outside git.
#
# DESIGN.md pins github.com/crossplane/crossplane/v2/cmd/crank@v2.2.4; that
# version is not served by the module proxy this project builds against, so we
# pin the newest v2.1.x it serves (v2.1.4), as DESIGN.md prescribes.
# `go install pkg@version` needs the module's version list (refused by the
# proxy), so the CLI is built inside a throw-away module that requires the
# exact version instead. The checksum database has no entry for this version;
# GONOSUMDB skips only that lookup for the crossplane module itself, every
# dependency is still verified.
set -euo pipefail

CROSSPLANE_VERSION="${CROSSPLANE_VERSION:-v2.1.4}"
CACHE_DIR="${FOP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/function-ollama-platform}"
BIN_DIR="$CACHE_DIR/bin"
BIN="$BIN_DIR/crossplane-$CROSSPLANE_VERSION"

if [ -x "$BIN" ]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the crossplane CLI" >&2; exit 1; }
mkdir -p "$BIN_DIR"
work="$CACHE_DIR/build-$CROSSPLANE_VERSION"
rm -rf "$work" && mkdir -p "$work"
cd "$work"
export GONOSUMDB="github.com/crossplane/crossplane" GOFLAGS="-mod=mod" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
go mod init fop.local/crankbuild >/dev/null 2>&1
go get "github.com/crossplane/crossplane/v2@$CROSSPLANE_VERSION" >&2
go build -trimpath -o "$BIN.tmp" github.com/crossplane/crossplane/v2/cmd/crank >&2
mv "$BIN.tmp" "$BIN"
ln -sf "$BIN" "$BIN_DIR/crossplane"
echo "$BIN"
