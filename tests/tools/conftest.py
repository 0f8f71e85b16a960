"""Tests of the project's tools that need neither a cluster nor a broker, only the tools
built by `make tools` (a missing tool fails these tests; it never skips them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from local_platform import Tools
from tests.gitops import GitopsCheckError, gitops_check_path


@pytest.fixture(scope="session")
def tools_bin_dir() -> Path:
    return Tools.locate().bin_dir


@pytest.fixture(scope="session")
def gitops_check(tools_bin_dir: Path) -> Path:
    try:
        return gitops_check_path(tools_bin_dir)
    except GitopsCheckError as exc:
        pytest.fail(str(exc), pytrace=False)
