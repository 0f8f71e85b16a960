"""The image `make image` builds from the Dockerfile (hack/image.py), read as it is: the
OCI archive's index, manifest, config and layers, and the image's own Python run by
buildah. No container engine is involved."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import image
from dlq_operator import __version__

SITE_PACKAGES = "opt/dlq-operator/lib/python3.11/site-packages/"


@dataclass(frozen=True)
class Built:
    ref: str
    archive: Path
    index: dict
    manifest: dict
    config: dict
    layers: list[list[str]]  # each layer's file names, in the manifest's order


def read_archive(ref: str, archive: Path) -> Built:
    with tarfile.open(archive) as tar:

        def blob(digest: str) -> bytes:
            algorithm, _, hexdigest = digest.partition(":")
            member = tar.extractfile(f"blobs/{algorithm}/{hexdigest}")
            assert member is not None, digest
            return member.read()

        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        [descriptor] = index["manifests"]
        manifest = json.loads(blob(descriptor["digest"]))
        config = json.loads(blob(manifest["config"]["digest"]))
        layers = []
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=io.BytesIO(blob(layer["digest"])), mode="r:*") as files:
                layers.append([name.removeprefix("./") for name in files.getnames()])
    return Built(ref, archive, index, manifest, config, layers)


@pytest.fixture(scope="module")
def built() -> Built:
    try:
        ref, archive = image.build_image()
    except image.ImageError as exc:
        pytest.fail(f"the image could not be built: {exc}", pytrace=False)
    return read_archive(ref, archive)


def test_archive_carries_the_content_tagged_name(built: Built) -> None:
    assert built.ref.startswith(f"{image.REPOSITORY}:src-")
    assert built.archive.is_file()
    assert built.archive.parent == image.IMAGES
    [descriptor] = built.index["manifests"]
    assert descriptor["annotations"]["org.opencontainers.image.ref.name"] == built.ref
    assert built.manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"


def test_a_second_build_of_the_same_tree_is_the_same_image_and_quick() -> None:
    first = image.build_image()
    started = time.monotonic()
    assert image.build_image() == first
    assert time.monotonic() - started < 10


def test_config_runs_the_operator_as_the_non_root_user(built: Built) -> None:
    config = built.config["config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["dlq-operator"]
    assert config["Cmd"] == ["run"]
    assert config["ExposedPorts"] == {"8080/tcp": {}, "9090/tcp": {}}
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]
    assert any(e.startswith("PATH=/opt/dlq-operator/bin:") for e in config["Env"])
    assert built.config["os"] == "linux"
    assert built.config["architecture"] == "amd64"


def test_labels_name_the_version_revision_and_base(built: Built) -> None:
    labels = built.config["config"]["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.title"] == "dlq-operator"
    # The commit the image was built at: the tag follows the sources, not the commits, so
    # a later commit that changes none of them reuses the image.
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", labels["org.opencontainers.image.revision"])
    assert labels["org.opencontainers.image.base.name"] == image.base_ref()


def test_dependencies_come_in_a_layer_before_the_project(built: Built) -> None:
    def holding(path: str) -> list[int]:
        return [i for i, names in enumerate(built.layers) if path in names]

    project = f"{SITE_PACKAGES}dlq_operator/__init__.py"
    dependency = f"{SITE_PACKAGES}kafka/__init__.py"
    non_empty = [
        i for i, names in enumerate(built.layers) if any(not n.endswith("/") for n in names)
    ]
    last = built.layers[non_empty[-1]]
    # The last layer is the project alone: its package (with bytecode compiled at build
    # time, for a read-only root filesystem), its metadata and its commands.
    assert holding(project) == [non_empty[-1]]
    assert f"{SITE_PACKAGES}dlq_operator/__pycache__/__init__.cpython-311.pyc" in last
    assert "opt/dlq-operator/bin/dlq-operator" in last
    assert not any(name.startswith(f"{SITE_PACKAGES}kafka/") for name in last)
    # The dependencies, in the layer just before it, with no pip or setuptools.
    assert holding(dependency) == [non_empty[-2]]
    everything = {name for names in built.layers for name in names}
    assert f"{SITE_PACKAGES}pip/__init__.py" not in everything
    assert f"{SITE_PACKAGES}setuptools/__init__.py" not in everything
    # No source tree, tests or virtualenv of the build context.
    assert not any(name.startswith(("src/", "tests/", ".venv/")) for name in everything)


@pytest.fixture(scope="module")
def container(built: Built) -> Iterator[str]:
    """A working container of the archive itself (what the node imports)."""
    result = subprocess.run(
        image.buildah("from", "--pull=never", f"oci-archive:{built.archive}"),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    name = result.stdout.strip()
    yield name
    subprocess.run(image.buildah("rm", name), capture_output=True)


def in_image(container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        image.buildah("run", "--isolation", "chroot", container, "--", *command),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_image_python_runs_dlq_operator(container: str) -> None:
    result = in_image(container, "dlq-operator", "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == __version__


def test_the_image_runs_as_10001_with_its_own_venv(container: str) -> None:
    result = in_image(
        container,
        "python",
        "-c",
        "import os, sys, dlq_operator, kafka; "
        "print(os.getuid(), os.getgid(), sys.prefix, dlq_operator.__file__)",
    )
    assert result.returncode == 0, result.stderr
    uid, gid, prefix, module = result.stdout.split()
    assert (uid, gid, prefix) == ("10001", "10001", "/opt/dlq-operator")
    assert module == f"/{SITE_PACKAGES}dlq_operator/__init__.py"
