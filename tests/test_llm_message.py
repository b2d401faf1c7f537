"""What `python run.py prompt=llm` says when a label gets too few usable prompts from the server."""

import subprocess
import sys

from chat_server import ChatServer, label_of
from conftest import ROOT


def test_too_few_prompts_are_named_as_such_not_as_no_prompts(tmp_path):
    def eight(body):  # 8 good prompts where 10 are asked for, every time
        return "\n".join(f"{i}. A photo of one {label_of(body)} digit, style {i}" for i in range(1, 9))

    with ChatServer(eight) as server:
        done = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "experiment=smoke", "logger=none", "prompt=llm",
             f"prompt.base_url={server.base_url}", "prompt.model=tiny", "prompt.num_prompts=10",
             "prompt.max_asks=2", "labels=[seven]",
             f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"asking tiny at {server.base_url} for prompts failed for 1 of 1 label:" in done.stderr
    assert "  seven: 8 of 10 prompts name the label after 2 asks" in done.stderr
    assert "no prompts" not in done.stderr and "the others are cached" not in done.stderr
