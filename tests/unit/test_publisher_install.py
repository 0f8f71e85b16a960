"""An application installs the envelope and DlqPublisher without the operator's dependencies.

The base install (``pip install dlq-operator``) declares only what the publisher needs; the
operator, its workers and dlq-admin come with the ``operator`` extra (README, "For
applications: the publisher"). Checked without a network: what importing the publisher
loads must come from the base install's dependencies, and the image must install the extra.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# What an application must never have to install for the publisher (the issue names them).
OPERATOR_ONLY = {"kopf", "kubernetes", "typer", "rich", "aiohttp", "httpx"}

# Run in a fresh interpreter: the modules that importing the publisher loads, each with the
# distributions that provide it (none for the standard library).
LOADED_BY_PUBLISHER = """
import json, sys
from importlib import metadata
before = set(sys.modules)
import dlq_operator
import dlq_operator.publisher
from dlq_operator.publisher import DlqPublisher
providers = metadata.packages_distributions()
loaded = {name.partition(".")[0] for name in set(sys.modules) - before}
print(json.dumps({name: providers.get(name, []) for name in sorted(loaded)}))
"""


def names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(text).name) for text in requirements}


def installed_closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements bring in, as installed here (with their extras)."""
    todo = [(Requirement(text), {""}) for text in requirements]
    seen: set[str] = set()
    while todo:
        requirement, extras = todo.pop()
        if requirement.marker and not any(
            requirement.marker.evaluate({"extra": extra}) for extra in extras
        ):
            continue
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [(Requirement(text), {"", *requirement.extras}) for text in needs]
    return seen


def test_the_base_install_declares_none_of_the_operators_dependencies() -> None:
    base = names(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]

    assert base & OPERATOR_ONLY == set()
    assert names(extras["operator"]) >= OPERATOR_ONLY
    # The development install (make venv, .ci/run) is the operator's.
    assert any("operator" in Requirement(text).extras for text in extras["dev"])


def test_importing_the_publisher_loads_only_what_the_base_install_brings() -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADED_BY_PUBLISHER], capture_output=True, text=True, check=True
    )
    loaded: dict[str, list[str]] = json.loads(result.stdout)
    base = installed_closure(PROJECT["dependencies"])
    operator_only = installed_closure(PROJECT["optional-dependencies"]["operator"]) - base

    assert set(loaded) & OPERATOR_ONLY == set()
    assert "pydantic_settings" in loaded  # KafkaSettings: part of the base install on purpose
    providers = {
        canonicalize_name(dist)
        for module, dists in loaded.items()
        if module != "dlq_operator"
        for dist in dists
    }
    assert providers - base == set()
    assert providers & operator_only == set()


def test_the_image_installs_the_operator_extra(tmp_path: Path) -> None:
    """The Dockerfile's own command that lists the image's requirements, run on pyproject."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    (command,) = re.findall(r"RUN (python -c '[^']*') > requirements\.txt", dockerfile)
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    script = command.removeprefix("python -c '")[:-1]
    listed = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split()

    assert names(listed) == names(PROJECT["dependencies"]) | names(
        PROJECT["optional-dependencies"]["operator"]
    )
