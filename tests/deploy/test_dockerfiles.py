"""Each service's Dockerfile: hadolint clean, a pinned slim base, a non-root user, the service's own app."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from stack_files import ROOT, SERVICES

HADOLINT = Path(sys.executable).with_name("hadolint")


@pytest.mark.parametrize("service", SERVICES)
def test_hadolint_finds_nothing(service):
    done = subprocess.run([str(HADOLINT), f"services/{service}/Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_complain_about_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\n")
    done = subprocess.run([str(HADOLINT), str(bad)], capture_output=True, text=True)
    assert done.returncode != 0


@pytest.mark.parametrize("service", SERVICES)
def test_slim_pinned_non_root_and_runs_its_own_app(service):
    text = (ROOT / "services" / service / "Dockerfile").read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert bases and all(re.search(r":\d+\.\d+\.\d+-slim", b) for b in bases), bases
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0"), users
    assert f'"{service}.main:create_app"' in text
    assert f"/api/{service}/health" in text  # the image's own health check
