"""odin.provenance: what metrics.json records so that a reader can reproduce a number."""

import json
import shutil
import subprocess
import sys

import numpy
import pytest
import skimage
import sklearn
import timm
import torch

from odin.provenance import ROOT, git_state, package_versions, provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not on PATH")


def test_versions_threads_device_and_precision_are_what_ran():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        record = provenance("cpu", "fp32")
    finally:
        torch.set_num_threads(threads)
    assert record["torch_threads"] == 1 and (record["device"], record["precision"]) == ("cpu", "fp32")
    versions = record["packages"]  # the modules' own version strings, read another way
    assert (versions["numpy"], versions["timm"], versions["scikit-learn"], versions["scikit-image"]) == (
        numpy.__version__, timm.__version__, sklearn.__version__, skimage.__version__)
    assert torch.__version__.startswith(versions["torch"]) and record["torch_build"] == torch.__version__
    assert versions["odin"] == "0.1.0" and record["python"] == ".".join(map(str, sys.version_info[:3]))
    json.dumps(record)  # it goes into metrics.json as is


def test_a_package_that_is_not_installed_reads_none():
    assert package_versions(("numpy", "no-such-package-odin")) == {"numpy": numpy.__version__,
                                                                    "no-such-package-odin": None}


@needs_git
def test_the_commit_of_this_checkout():
    if not (ROOT / ".git").exists():
        pytest.skip("odin is installed, not a git checkout")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert provenance("cpu", "fp32")["git"]["commit"] == head


@needs_git
def test_git_state_names_the_commit_and_a_changed_tree(tmp_path):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-q", "-m", "a")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    assert git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_state(tmp_path) == {"commit": head, "dirty": True}
    git("checkout", "-q", "a.py")
    (tmp_path / "b.py").write_text("y = 1\n")  # a new file the code may import
    assert git_state(tmp_path)["dirty"] is True


def test_no_checkout_or_no_git_reads_none_and_never_fails(tmp_path, monkeypatch):
    assert git_state(tmp_path) is None  # not a checkout
    (tmp_path / ".git").mkdir()
    assert git_state(tmp_path) is None  # looks like one, git says it is not
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no git at all
    assert git_state(ROOT) is None
