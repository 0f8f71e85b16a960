#!/usr/bin/env python3
"""Builds the project's image from its Dockerfile without a Docker engine.

    python hack/image.py build      prints IMAGE=<ref> and ARCHIVE=<oci archive> on stdout

buildah (chroot isolation, overlay storage under the cache dir, the storage the pause image
of build-tools.sh is made in) builds the Dockerfile with its layer cache on a Python 3.11
base made here from Debian's packages by debootstrap, passed as the ``PYTHON_IMAGE``
build-arg (the Dockerfile's own default, for everybody else, is the public
``python:3.11-slim``). The result is tagged by a digest of what goes into it
(``localhost/dlq-operator:src-<digest>``) and saved as an OCI archive carrying that name,
which the node's containerd imports; an unchanged tree is not built again. The newest
archives are kept, older ones and their images go.

``build_image()`` does the same for the tests and the demo. Only the standard library is
used, so this runs before the project is installed. Messages go to stderr; a failed step
raises ``ImageError`` naming the command and its log (under ``$DLQ_CACHE_DIR/logs``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

HACK = Path(__file__).resolve().parent
ROOT = HACK.parent
CACHE = Path(os.environ.get("DLQ_CACHE_DIR", Path.home() / ".cache" / "dlq-operator"))
IMAGES = CACHE / "images"
LOGS = CACHE / "logs"
STORAGE = ("overlay", CACHE / "containers" / "overlay", CACHE / "containers" / "overlay-run")
REPOSITORY = "localhost/dlq-operator"
# The build stage of each kept image, by the same tag (so that pruning finds it).
STAGES = "localhost/dlq-operator-stage"
KEEP_ARCHIVES = 3
# What the image is built from (as .dockerignore lets through); a change to any of it is
# a new image.
SOURCES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "operator")
IGNORED = ("__pycache__", ".egg-info", ".pyc")
DEBIAN_TOOLS = {"buildah": "buildah", "debootstrap": "debootstrap"}

# The base: Debian bookworm's own Python 3.11 with venv, `python` on PATH (python is
# python3, as in the official python images), groupadd/useradd and the CA certificates.
BASE_REPOSITORY = "localhost/dlq-python"
BASE_SUITE = "bookworm"
BASE_MIRROR = "http://deb.debian.org/debian"
# debootstrap resolves no virtual package: python3.11-venv's python3.11-distutils is
# python3-distutils (with python3-lib2to3), and its wheels are named too.
BASE_PACKAGES = (
    "python3.11",
    "python3.11-venv",
    "python3-distutils",
    "python3-lib2to3",
    "python3-pip-whl",
    "python3-setuptools-whl",
    "python3",
    "python-is-python3",
    "passwd",
    "ca-certificates",
)
# Left out of the base: package lists and caches, documentation, logs.
BASE_CLEAN = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/log",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/lintian",
)
BASE_CONFIG = (
    "--env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--env=LANG=C.UTF-8",
    '--cmd=["python3"]',
    "--os=linux",
    "--arch=amd64",
)


class ImageError(RuntimeError):
    """A build step failed; the message names the command and its log."""


def say(message: str) -> None:
    print(f"image: {message}", file=sys.stderr, flush=True)


def buildah(*args: str) -> list[str]:
    driver, root, runroot = STORAGE
    return [
        "buildah",
        "--root",
        str(root),
        "--runroot",
        str(runroot),
        "--storage-driver",
        driver,
        *args,
    ]


def run(cmd: list[str], log: Path, capture: bool = False, env: dict | None = None) -> str:
    """Runs cmd with its output appended to log (in the order it comes); returns its
    stdout when captured."""
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        try:
            result = subprocess.run(
                cmd,
                env=env,
                stdout=subprocess.PIPE if capture else out,
                stderr=out if capture else subprocess.STDOUT,
                text=True,
            )
        except OSError as exc:
            raise ImageError(f"'{' '.join(cmd)}' could not start: {exc} (log: {log})") from None
    if result.returncode:
        lines = log.read_text(errors="replace").splitlines()[-15:]
        raise ImageError(
            f"'{' '.join(cmd)}' failed with exit code {result.returncode} (log: {log})\n"
            + "\n".join(lines)
        )
    return result.stdout or ""


def ensure_tools() -> None:
    """buildah and debootstrap, from Debian's packages, when one is missing."""
    missing = [pkg for tool, pkg in DEBIAN_TOOLS.items() if not tool_path(tool)]
    if not missing:
        return
    log = LOGS / "install-image-tools.log"
    log.write_text("")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    say(f"installing {' '.join(missing)} (log: {log})")
    run([*sudo, "apt-get", "-o", "DPkg::Lock::Timeout=300", "update"], log, env=env)
    run(
        [*sudo, "apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300", *missing],
        log,
        env=env,
    )


def tool_path(name: str) -> str | None:
    """A command's path, with the sbin directories (debootstrap's) on the search path
    even when the caller's PATH lacks them."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])
    return shutil.which(name, path=path)


@contextlib.contextmanager
def locked() -> Iterator[None]:
    """One build at a time per cache dir (a test run and a demo may ask together)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    with (IMAGES / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def image_exists(ref: str) -> bool:
    result = subprocess.run(buildah("inspect", "--type", "image", ref), capture_output=True)
    return result.returncode == 0


def base_ref() -> str:
    recipe = "\n".join([BASE_SUITE, BASE_MIRROR, *BASE_PACKAGES, *BASE_CLEAN, *BASE_CONFIG])
    return f"{BASE_REPOSITORY}:3.11-{BASE_SUITE}-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def base_image() -> str:
    """The local Python base image: made once, again only when its recipe changes (its
    tag carries a digest of the recipe; older ones are removed)."""
    ref = base_ref()
    if image_exists(ref):
        return ref
    log = LOGS / "image-base.log"
    log.write_text("")
    work = IMAGES / "base-build"
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    started = time.monotonic()
    say(f"making the Python base image {ref} with debootstrap (a few minutes; log: {log})")
    run(
        [
            tool_path("debootstrap") or "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE,
            str(rootfs),
            BASE_MIRROR,
        ],
        log,
    )
    for pattern in BASE_CLEAN:
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
                path.mkdir()
            else:
                path.unlink()
    layer = work / "rootfs.tar"
    with tarfile.open(layer, "w") as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    container = run(buildah("from", "scratch"), log, capture=True).strip()
    try:
        run(buildah("add", container, str(layer), "/"), log)
        run(buildah("config", *BASE_CONFIG, container), log)
        run(buildah("commit", "--format", "oci", container, ref), log)
    finally:
        subprocess.run(buildah("rm", container), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    for old in image_names(BASE_REPOSITORY):
        if old != ref:
            subprocess.run(buildah("rmi", old), capture_output=True)
    say(f"base image {ref} made in {time.monotonic() - started:.0f}s")
    return ref


def image_names(repository: str) -> list[str]:
    result = subprocess.run(
        buildah("images", "--format", "{{.Name}}:{{.Tag}}"), capture_output=True, text=True
    )
    return [name for name in result.stdout.split() if name.startswith(f"{repository}:")]


def source_files() -> Iterator[Path]:
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            for file in sorted(path.rglob("*")):
                if file.is_file() and not any(part.endswith(IGNORED) for part in file.parts):
                    yield file
        else:
            yield path


def source_digest(base: str) -> str:
    """A digest of every file the build reads, and of the base it builds on."""
    digest = hashlib.sha256(base.encode() + b"\0")
    for file in source_files():
        digest.update(str(file.relative_to(ROOT)).encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()[:12]


def trust_store_mount() -> list[str]:
    """The build's downloads (pip) trust what this machine trusts: its CA bundle is
    mounted over the image's for the RUN steps only, never committed into a layer (a
    network that re-signs TLS, as some proxies do, is then trusted as it is here)."""
    bundle = Path(os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt")
    if not bundle.is_file():
        return []
    return ["--volume", f"{bundle.resolve()}:/etc/ssl/certs/ca-certificates.crt:ro"]


def project_version() -> str:
    """dlq_operator.__version__, read without importing the project."""
    text = (ROOT / "operator" / "dlq_operator" / "__init__.py").read_text()
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.MULTILINE)
    return match.group(1) if match else "unknown"


def revision() -> str:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
    except OSError:
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def archive_path(ref: str) -> Path:
    return IMAGES / f"dlq-operator-{ref.rpartition(':')[2]}.tar"


def build_image() -> tuple[str, Path]:
    """Builds the image of the working tree unless its archive exists; returns the image
    ref and the OCI archive (which carries the ref as its name)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with locked():
        ensure_tools()
        base = base_image()
        ref = f"{REPOSITORY}:src-{source_digest(base)}"
        archive = archive_path(ref)
        if archive.is_file():
            os.utime(archive)  # the newest archives are the ones pruning keeps
            return ref, archive
        log = LOGS / "image-build.log"
        log.write_text("")
        started = time.monotonic()
        dangling = set(dangling_images())
        say(f"building {ref} (log: {log})")
        run(
            buildah(
                "build",
                "--layers",
                "--force-rm",
                "--pull=never",
                "--isolation",
                "chroot",
                "--format",
                "oci",
                *trust_store_mount(),
                "--build-arg",
                f"PYTHON_IMAGE={base}",
                "--build-arg",
                f"VERSION={project_version()}",
                "--build-arg",
                f"REVISION={revision()}",
                "--tag",
                ref,
                "--file",
                str(ROOT / "Dockerfile"),
                str(ROOT),
            ),
            log,
        )
        # The build stage's last image is untagged and used by no other image: named after
        # the build, it is kept (with the layer cache it sits on) until the build is pruned.
        for leftover in set(dangling_images()) - dangling:
            run(buildah("tag", leftover, f"{STAGES}:{ref.rpartition(':')[2]}"), log)
        partial = archive.with_name(f".{archive.name}.{os.getpid()}.partial")
        partial.unlink(missing_ok=True)
        try:
            run(buildah("push", ref, f"oci-archive:{partial}:{ref}"), log)
            partial.rename(archive)
        finally:
            partial.unlink(missing_ok=True)
        say(f"built {ref} in {time.monotonic() - started:.0f}s: {archive}")
        prune(keep=archive)
        return ref, archive


def dangling_images() -> list[str]:
    result = subprocess.run(
        buildah("images", "--all", "--quiet", "--no-trunc", "--filter", "dangling=true"),
        capture_output=True,
        text=True,
    )
    return result.stdout.split()


def prune(keep: Path) -> None:
    """Keeps the newest archives and their images; older ones go, with their images and
    the cache entries only they used (the current layer cache stays)."""
    archives = sorted(IMAGES.glob("dlq-operator-src-*.tar"), key=lambda p: p.stat().st_mtime)
    kept = {archive.stem.removeprefix("dlq-operator-") for archive in archives[-KEEP_ARCHIVES:]}
    kept.add(keep.stem.removeprefix("dlq-operator-"))
    for archive in archives:
        if archive.stem.removeprefix("dlq-operator-") not in kept:
            archive.unlink(missing_ok=True)
    for name in image_names(REPOSITORY) + image_names(STAGES):
        if name.rpartition(":")[2] not in kept:
            subprocess.run(buildah("rmi", name), capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build"])
    parser.parse_args(argv)
    try:
        ref, archive = build_image()
    except ImageError as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    print(f"IMAGE={ref}")
    print(f"ARCHIVE={archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
