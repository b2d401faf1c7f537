"""What `python run.py prompt=llm` does when a label gets too few prompts naming it from the server."""

import json
import subprocess
import sys

from chat_server import ChatServer, label_of
from conftest import ROOT


def formulate(server, tmp_path, *overrides):
    return subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "experiment=smoke", "logger=none", "task=formulate", "prompt=llm",
         f"prompt.base_url={server.base_url}", "prompt.model=tiny", "prompt.num_prompts=10", "prompt.max_asks=2",
         "labels=[seven]", f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}", *overrides],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_a_short_label_is_asked_again_then_filled_and_says_so(tmp_path):
    def eight(body):  # 8 good prompts where 10 are asked for, every time
        return "\n".join(f"{i}. A photo of one {label_of(body)} digit, style {i}" for i in range(1, 9))

    with ChatServer(eight) as server:
        done = formulate(server, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(server.requests) == 2
    assert "seven: 8 of 10 prompts name the label after 2 asks; repeating them to 10" in done.stderr
    [stored] = (tmp_path / "store" / "prompts").glob("*/seven.json")
    record = json.loads(stored.read_text())
    assert record["info"]["refilled"] == 2 and record["prompts"][8:] == record["prompts"][:2]
    rows = [json.loads(line) for line in next((tmp_path / "store" / "images").glob("*/metadata.jsonl")).open()]
    assert len(rows) == 10 * 4  # smoke: 4 images a prompt, the repeated prompts' too
    assert len({row["seed"] for row in rows}) == 40  # each copy with its own seeds


def test_a_label_no_prompt_names_fails_naming_the_label_and_the_fix(tmp_path):
    with ChatServer(lambda body: "1. A cat on a mat.\n2. A dog on a log.") as server:
        done = formulate(server, tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert f"asking tiny at {server.base_url} for prompts failed for 1 of 1 label:" in done.stderr
    assert ("  seven: no prompt names the label after 2 asks (raise prompt.max_asks, or set "
            "prompt.require_label=false to use the replies as they come)") in done.stderr
    assert not (tmp_path / "store" / "images").exists()
