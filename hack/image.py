#!/usr/bin/env python3
"""Builds the project's image from its Dockerfile without a Docker engine.

    python hack/image.py build      prints IMAGE=<ref> and ARCHIVE=<oci archive>

buildah (chroot isolation, overlay storage under the cache dir) builds the Dockerfile on a
Python 3.11 base made here from Debian's packages by debootstrap, passed as the
``PYTHON_IMAGE`` build-arg (the Dockerfile's own default, for everybody else, is the
public ``python:3.11-slim``). The result is tagged by a digest of what goes into it and
saved as an OCI archive that the node's containerd imports; an unchanged tree is not
built again, and buildah's layer cache keeps the dependency layer across code changes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HACK = Path(__file__).resolve().parent
ROOT = HACK.parent
CACHE = Path(os.environ.get("DLQ_CACHE_DIR", Path.home() / ".cache" / "dlq-operator"))
IMAGES = CACHE / "images"
LOGS = CACHE / "logs"
REPOSITORY = "localhost/dlq-operator"
KEEP_ARCHIVES = 3
# The base: Debian bookworm's own Python 3.11 with venv (python is python3, as in the
# official python images), certificates, and nothing else.
BASE_SUITE = "bookworm"
BASE_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = (
    "python3.11",
    "python3.11-venv",
    "python3-venv",
    "python3-distutils",
    "python3-lib2to3",
    "python3-pip-whl",
    "python3-setuptools-whl",
    "python3",
    "python-is-python3",
    "ca-certificates",
)
# What the image is built from; a change to any of it is a new image.
SOURCES = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "operator")


class ImageError(RuntimeError):
    """A build step failed; the message names the command and its log."""


def buildah(*args: str) -> list[str]:
    return [
        "buildah",
        "--root",
        str(CACHE / "containers" / "overlay"),
        "--runroot",
        str(CACHE / "containers" / "overlay-run"),
        "--storage-driver",
        "overlay",
        *args,
    ]


def run(cmd: list[str], log: Path, cwd: Path | None = None) -> str:
    with log.open("a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        result = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=out, text=True)
        out.write(result.stdout)
    if result.returncode:
        lines = log.read_text(errors="replace").splitlines()[-15:]
        raise ImageError(f"'{' '.join(cmd)}' failed (log: {log})\n" + "\n".join(lines))
    return result.stdout


def ensure_tools() -> None:
    """buildah and debootstrap come from Debian's packages, like the node's."""
    if not (shutil.which("buildah") and shutil.which("debootstrap")):
        result = subprocess.run(["bash", str(HACK / "build-tools.sh"), "packages"])
        if result.returncode:
            raise ImageError("installing buildah and debootstrap failed (see the log above)")


def image_exists(ref: str) -> bool:
    return (
        subprocess.run(buildah("inspect", "--type", "image", ref), capture_output=True).returncode
        == 0
    )


def base_image() -> str:
    """The local Python base image, made once per recipe."""
    recipe = hashlib.sha256(
        " ".join([BASE_SUITE, BASE_MIRROR, *BASE_PACKAGES]).encode()
    ).hexdigest()[:12]
    ref = f"localhost/dlq-python:3.11-{BASE_SUITE}-{recipe}"
    if image_exists(ref):
        return ref
    log = LOGS / "image-base.log"
    log.write_text("")
    work = IMAGES / "base-build"
    shutil.rmtree(work, ignore_errors=True)
    rootfs = work / "rootfs"
    print(f"image: making the Python base image {ref} (log: {log})", file=sys.stderr)
    run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(BASE_PACKAGES)}",
            BASE_SUITE,
            str(rootfs),
            BASE_MIRROR,
        ],
        log,
    )
    for leftover in ("var/lib/apt/lists", "var/cache/apt", "usr/share/doc", "usr/share/man"):
        shutil.rmtree(rootfs / leftover, ignore_errors=True)
        (rootfs / leftover).mkdir(parents=True, exist_ok=True)
    layer = work / "rootfs.tar"
    with tarfile.open(layer, "w") as tar:
        for entry in sorted(rootfs.iterdir()):
            tar.add(entry, arcname=entry.name)
    container = run(buildah("from", "scratch"), log).strip()
    try:
        run(buildah("add", container, str(layer), "/"), log)
        run(
            buildah(
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--env",
                "LANG=C.UTF-8",
                "--cmd",
                "python3",
                "--os",
                "linux",
                "--arch",
                "amd64",
                container,
            ),
            log,
        )
        run(buildah("commit", "--format", "oci", container, ref), log)
    finally:
        subprocess.run(buildah("rm", container), capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return ref


def source_digest(base: str) -> str:
    """A digest of every file the build reads, and of the base it builds on."""
    digest = hashlib.sha256(base.encode())
    for name in SOURCES:
        path = ROOT / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
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
    text = (ROOT / "operator" / "dlq_operator" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
    return match.group(1) if match else "unknown"


def revision() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def build_image() -> tuple[str, Path]:
    """Builds the image of the working tree if needed; returns (ref, OCI archive)."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    ensure_tools()
    base = base_image()
    tag = f"src-{source_digest(base)}"
    ref, archive = f"{REPOSITORY}:{tag}", IMAGES / f"dlq-operator-{tag}.tar"
    if archive.exists():
        return ref, archive
    log = LOGS / "image-build.log"
    log.write_text("")
    print(f"image: building {ref} (log: {log})", file=sys.stderr)
    run(
        buildah(
            "build",
            "--layers",
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
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    run(buildah("push", ref, f"oci-archive:{partial}:{ref}"), log)
    partial.rename(archive)
    prune(keep=archive)
    return ref, archive


def prune(keep: Path) -> None:
    """Keeps the newest archives and their images; the layer cache stays."""
    archives = sorted(IMAGES.glob("dlq-operator-src-*.tar"), key=lambda p: p.stat().st_mtime)
    for old in archives[:-KEEP_ARCHIVES]:
        if old == keep:
            continue
        tag = old.stem.removeprefix("dlq-operator-")
        subprocess.run(buildah("rmi", f"{REPOSITORY}:{tag}"), capture_output=True)
        old.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build"])
    parser.parse_args(argv)
    try:
        ref, archive = build_image()
    except ImageError as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 1
    print(f"IMAGE={ref}")
    print(f"ARCHIVE={archive}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
