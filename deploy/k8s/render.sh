#!/usr/bin/env bash
# Render one overlay of deploy/k8s to stdout with a pinned kustomize, installing it first if
# .cache/bin lacks it (built from the Go module proxy with the machine's Go toolchain, ~1 min).
#
#   deploy/k8s/render.sh dev|gpu|prod     print the overlay's manifests
#   deploy/k8s/render.sh federated-worker a data owner's federated worker (not an overlay)
#   deploy/k8s/render.sh --install        only make sure kustomize is installed; print its path
set -euo pipefail

KUSTOMIZE_VERSION=v5.8.1   # the newest v5 that builds with Go 1.24+ (v5.8.3 needs Go 1.27)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin="$root/.cache/bin"
kustomize="$bin/kustomize"

install_kustomize() {
  if [ -x "$kustomize" ] && [ "$("$kustomize" version 2>/dev/null)" = "$KUSTOMIZE_VERSION" ]; then
    return
  fi
  local go
  go=$(command -v go || echo /usr/local/go/bin/go)
  if [ ! -x "$go" ]; then
    echo "render.sh: kustomize $KUSTOMIZE_VERSION is missing and there is no Go 1.24+ to build it" >&2
    exit 2
  fi
  mkdir -p "$bin"
  echo "render.sh: installing kustomize $KUSTOMIZE_VERSION into $bin" >&2
  GOBIN="$bin" GOTOOLCHAIN=local "$go" install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2
}

case "${1:-}" in
  --install)
    install_kustomize
    echo "$kustomize"
    ;;
  dev | gpu | prod)
    install_kustomize
    "$kustomize" build "$root/deploy/k8s/overlays/$1"
    ;;
  federated-worker)
    install_kustomize
    "$kustomize" build "$root/deploy/k8s/federated-worker"
    ;;
  *)
    echo "usage: $0 dev|gpu|prod|federated-worker | --install" >&2
    exit 2
    ;;
esac
