#!/usr/bin/env bash
# Builds the local platform's tools once and caches them outside the repository:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
#   kubectl                         (one Go module pinned to a Kubernetes release)
#   helm, crictl, promtool          (go install at a pinned version)
#   Kafka jars                      (Maven, from a generated pom)
#   the pause image                 (the release's pause.c, static, as an OCI archive)
#   gitops-check                    (hack/gitops-check: kstatus and Argo CD health verdicts)
# and installs the node's Debian packages when one is missing (containerd, runc, CNI
# plugins, iptables, conntrack, kcat, buildah).
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
  echo "build-tools: ${verb:-building} $name (log: $log)" >&2
  "$@" >"$log" 2>&1 || fail "$name" "$*" "$log"
}

kube_tools=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

build_kube() {
  local stamp="$bin/.kube-$KUBERNETES_VERSION-r3" tool
  if [ -f "$stamp" ] && [ -x "$bin/etcd" ]; then
    for tool in "${kube_tools[@]}"; do [ -x "$bin/$tool" ] || break; done
    [ -x "$bin/$tool" ] && return 0
  fi
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
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
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
  for tool in "${kube_tools[@]}"; do
    ( cd "$mod" && run_logged "$tool" "$logs/build-$tool.log" go build "${flags[@]}" -o "$bin/$tool" "k8s.io/kubernetes/cmd/$tool" )
  done
  rm -f "$bin"/.kube-*
  touch "$stamp"
}

kube_source() { # the pinned k8s.io/kubernetes module's source directory (downloaded if needed)
  (cd "$cache" && go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
}

# The node's Debian packages (the kubelet's runtime, the CNI plugins, kube-proxy's tools,
# kcat and buildah for the demo and the images, a static C toolchain for the pause binary).
# apt runs only when one is missing.
node_packages=(containerd runc containernetworking-plugins iptables conntrack kcat buildah debootstrap gcc libc6-dev)

install_packages() {
  local missing=() pkg log="$logs/install-packages.log"
  for pkg in "${node_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  : >"$log"
  verb=running run_logged "apt-get update" "$log" "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update
  DEBIAN_FRONTEND=noninteractive verb=installing run_logged "${missing[*]}" "$log" \
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y --no-install-recommends "${missing[@]}"
}

# The pod sandbox image, built here as the release builds it (build/pause: the static
# pause.c, user 65535, entrypoint /pause) because no registry is reachable.
pause_ref="localhost/dlq-pause:$PAUSE_VERSION"
pause_archive="$cache/images/pause-$PAUSE_VERSION.tar"

build_pause() {
  local stamp="$cache/images/.pause-$PAUSE_VERSION-$KUBERNETES_VERSION" log="$logs/build-pause.log" src
  [ -f "$stamp" ] && [ -s "$pause_archive" ] && return 0
  install_packages
  mkdir -p "$cache/images"
  : >"$log"
  src=$(kube_source)
  [ -n "$src" ] || fail "pause image" "go mod download k8s.io/kubernetes@$KUBERNETES_VERSION" "$log"
  local tag ref=$pause_ref archive=$pause_archive
  tag=$(sed -n 's/^TAG ?= *//p' "$src/build/pause/Makefile")
  [ "$tag" = "$PAUSE_VERSION" ] ||
    echo "build-tools: note: Kubernetes $KUBERNETES_VERSION's pause is $tag, PAUSE_VERSION is $PAUSE_VERSION" >&2
  local work="$cache/images/pause-build"
  rm -rf "$work" && mkdir -p "$work"
  run_logged "pause binary" "$log" gcc -Os -Wall -Werror -static "-DVERSION=v$tag-$KUBERNETES_VERSION" \
    -o "$work/pause" "$src/build/pause/linux/pause.c"
  local buildah=(buildah --root "$cache/containers/overlay" --runroot "$cache/containers/overlay-run" --storage-driver overlay)
  local ctr
  ctr=$("${buildah[@]}" from scratch 2>>"$log") || fail "pause image" "buildah from scratch" "$log"
  {
    "${buildah[@]}" copy "$ctr" "$work/pause" /pause &&
      "${buildah[@]}" config --entrypoint '["/pause"]' --user 65535:65535 --os linux --arch amd64 "$ctr" &&
      "${buildah[@]}" commit --format oci --rm "$ctr" "$ref" &&
      rm -f "$archive" &&
      "${buildah[@]}" push "$ref" "oci-archive:$archive:$ref"
  } >>"$log" 2>&1 || fail "pause image" "buildah commit/push $ref" "$log"
  rm -rf "$work"
  touch "$stamp"
}

build_crictl() { # the CRI client: down removes pod sandboxes through the runtime (CNI teardown included)
  local stamp="$bin/.crictl-$CRICTL_VERSION"
  [ -f "$stamp" ] && [ -x "$bin/crictl" ] && return 0
  GOBIN="$bin" run_logged crictl "$logs/build-crictl.log" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
  touch "$stamp"
}

build_helm() {
  local stamp="$bin/.helm-$HELM_VERSION"
  [ -f "$stamp" ] && [ -x "$bin/helm" ] && return 0
  GOBIN="$bin" run_logged helm "$logs/build-helm.log" go install -trimpath -ldflags "-s -w" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  touch "$stamp"
}

# promtool (Prometheus 3.x) checks and unit-tests the chart's alert rules. The module tag
# v0.3AB.C is Prometheus 3.AB.C; stamp that release into `promtool --version`, as the
# release build does.
build_promtool() {
  local stamp="$bin/.promtool-$PROMETHEUS_VERSION"
  [ -f "$stamp" ] && [ -x "$bin/promtool" ] && return 0
  local n=${PROMETHEUS_VERSION#v0.} release
  release="$((${n%%.*} / 100)).$((${n%%.*} % 100)).${n#*.}"
  GOBIN="$bin" run_logged promtool "$logs/build-promtool.log" go install -trimpath \
    -ldflags "-s -w -X github.com/prometheus/common/version.Version=$release -X github.com/prometheus/common/version.Branch=HEAD" \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION"
  touch "$stamp"
}

# gitops-check is the project's own module (its go.mod pins kstatus and gopher-lua): the
# stamp is a hash of its sources, so any change rebuilds it.
build_gitops_check() {
  local src="$here/gitops-check" sum
  sum=$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-16)
  local stamp="$bin/.gitops-check-$sum"
  [ -f "$stamp" ] && [ -x "$bin/gitops-check" ] && return 0
  ( cd "$src" && run_logged gitops-check "$logs/build-gitops-check.log" go build -trimpath -ldflags "-s -w" -o "$bin/gitops-check" . )
  rm -f "$bin"/.gitops-check-*
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
  echo "PAUSE_ARCHIVE=$pause_archive"
  echo "PAUSE_IMAGE=$pause_ref"
  exit 0
fi

targets=${*:-packages kafka kube crictl helm promtool pause gitops-check}
for t in $targets; do
  case $t in
    packages | node) install_packages ;;
    kube) build_kube ;;
    helm) build_helm ;;
    promtool) build_promtool ;;
    gitops-check) build_gitops_check ;;
    crictl) build_crictl ;;
    kafka) fetch_kafka ;;
    pause) build_pause ;;
    *) echo "build-tools: unknown target '$t' (packages|node|kafka|kube|crictl|helm|promtool|pause|gitops-check)" >&2; exit 2 ;;
  esac
done
