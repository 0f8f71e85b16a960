#!/usr/bin/env bash
# Builds the local platform's tools once and caches them outside the repository:
#   kube-apiserver, kubectl, etcd  (one Go module pinned to a Kubernetes release)
#   helm                            (go install at a pinned version)
#   Kafka jars                      (Maven, from a generated pom)
# Safe to re-run: a tool whose binary or stamp exists is not rebuilt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${DLQ_CACHE_DIR:-$HOME/.cache/dlq-operator}
bin="$cache/bin"
logs="$cache/logs"
mkdir -p "$bin" "$logs"

fail() { echo "build-tools: $1 failed: '$2' (log: $3)" >&2; tail -n 20 "$3" >&2 || true; exit 1; }
run_logged() { # name log cmd...
  local name=$1 log=$2; shift 2
  echo "build-tools: building $name (log: $log)" >&2
  "$@" >"$log" 2>&1 || fail "$name" "$*" "$log"
}

build_kube() {
  local stamp="$bin/.kube-$KUBERNETES_VERSION-r2"
  [ -f "$stamp" ] && [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubectl" ] && [ -x "$bin/etcd" ] && return 0
  local mod="$cache/src/kube-$KUBERNETES_VERSION" log="$logs/build-kube.log"
  mkdir -p "$mod/etcd"
  : >"$log"
  # The release's own go.mod replaces every staging module with a local path;
  # pin each to the matching v0.x.y tag instead (k8s v1.A.B -> v0.A.B).
  local kmod
  kmod=$(cd "$mod" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  [ -n "$kmod" ] || fail kube-apiserver "go mod download k8s.io/kubernetes@$KUBERNETES_VERSION" "$log"
  local staging="v0.${KUBERNETES_VERSION#v1.}"
  {
    echo "module dlq-operator.local/kubetools"
    echo
    echo "go 1.24.0"
    echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
    echo
    echo "replace ("
    sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$kmod"
    echo ")"
  } >"$mod/go.mod"
  cat >"$mod/etcd/main.go" <<'GO'
// etcd for the local platform, at the version the Kubernetes release itself uses.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  ( cd "$mod" && run_logged "go mod tidy (kube tools)" "$log" go mod tidy )
  # Stamp the release version in as the Kubernetes release build does (kubectl version needs it).
  local minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
  local x="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    x+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    x+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  local flags=(-trimpath -ldflags "-s -w$x")
  ( cd "$mod" && run_logged etcd "$logs/build-etcd.log" go build "${flags[@]}" -o "$bin/etcd" ./etcd )
  ( cd "$mod" && run_logged kube-apiserver "$logs/build-kube-apiserver.log" go build "${flags[@]}" -o "$bin/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver )
  ( cd "$mod" && run_logged kubectl "$logs/build-kubectl.log" go build "${flags[@]}" -o "$bin/kubectl" k8s.io/kubernetes/cmd/kubectl )
  touch "$stamp"
}

build_helm() {
  local stamp="$bin/.helm-$HELM_VERSION"
  [ -f "$stamp" ] && [ -x "$bin/helm" ] && return 0
  GOBIN="$bin" run_logged helm "$logs/build-helm.log" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  touch "$stamp"
}

fetch_kafka() {
  local dir="$kafka_dir" log="$logs/fetch-kafka.log"
  [ -f "$dir/.complete" ] && return 0
  mkdir -p "$dir/libs"
  sed -e "s/@KAFKA_VERSION@/$KAFKA_VERSION/g" -e "s/@LOG4J_VERSION@/$LOG4J_VERSION/g" -e "s/@SLF4J_VERSION@/$SLF4J_VERSION/g" \
    "$here/kafka/pom.xml.in" >"$dir/pom.xml"
  run_logged "Kafka $KAFKA_VERSION jars" "$log" \
    mvn -B -q -f "$dir/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$dir/libs"
  touch "$dir/.complete"
}

kafka_dir="$cache/kafka-$KAFKA_VERSION-log4j-$LOG4J_VERSION-slf4j-$SLF4J_VERSION"

if [ "${1:-}" = "--print-paths" ]; then
  # For hack/local_platform.py: where the built tools live.
  echo "BIN_DIR=$bin"
  echo "KAFKA_LIBS=$kafka_dir/libs"
  echo "LOG_DIR=$logs"
  exit 0
fi

targets=${*:-kafka kube helm}
for t in $targets; do
  case $t in
    kube) build_kube ;;
    helm) build_helm ;;
    kafka) fetch_kafka ;;
    *) echo "build-tools: unknown target '$t' (kafka|kube|helm)" >&2; exit 2 ;;
  esac
done
