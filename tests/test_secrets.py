"""Planted secrets never reach a file ODIN or Hydra writes, nor the console, nor W&B."""

import os
import subprocess
import sys

from chat_server import ChatServer
from conftest import ROOT

from odin.secrets import scrub, scrub_text

KEY = "sk-planted-key-0123456789"
PASSWORD = "pl4nted-pa55word"


def _everything_written(*roots):
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                yield path, path.read_bytes()


def test_no_planted_secret_in_any_file_log_or_wandb(tmp_path):
    with ChatServer() as server:
        url = server.base_url.replace("http://", f"http://odin:{PASSWORD}@")
        done = subprocess.run(
            [sys.executable, str(ROOT / "run.py"), "experiment=smoke", "logger=wandb", "task=formulate",
             "prompt=llm", f"prompt.base_url={url}", "prompt.system=${oc.env:OPENAI_API_KEY}", "prompt.num_prompts=2",
             f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
            env={**os.environ, "OPENAI_API_KEY": KEY, "WANDB_SILENT": "false"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert server.requests and server.requests[0]["messages"][0]["content"] == KEY  # the secret was really used
    files = list(_everything_written(tmp_path / "run", tmp_path / "store"))
    assert any(p.suffix == ".wandb" for p, _ in files) and any(p.name == "run.log" for p, _ in files)
    for path, data in files:
        assert KEY.encode() not in data and PASSWORD.encode() not in data, path
    for stream in (done.stdout, done.stderr):
        assert KEY not in stream and PASSWORD not in stream


def test_a_key_given_on_the_command_line_is_refused_and_masked_everywhere(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "experiment=smoke", f"+prompt.api_key={KEY}",
                           f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1 and "prompt.api_key" in done.stderr and "Traceback" not in done.stderr
    files = list(_everything_written(tmp_path / "run"))
    assert any(p.name == "overrides.yaml" for p, _ in files)
    for path, data in files:
        assert KEY.encode() not in data, path
    assert KEY not in done.stdout + done.stderr


def test_scrub_masks_env_secrets_secret_keys_and_url_credentials(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_planted_token_42")
    config = {"prompt": {"api_key": "x", "system": "use hf_planted_token_42 please", "max_tokens": 30,
                         "base_url": "https://me:secret@host/v1"}, "list": ["hf_planted_token_42"]}
    clean = scrub(config)
    assert clean["prompt"]["api_key"] == "<redacted>" and clean["prompt"]["max_tokens"] == 30
    assert clean["prompt"]["system"] == "use <redacted> please" and clean["list"] == ["<redacted>"]
    assert clean["prompt"]["base_url"] == "https://<redacted>@host/v1"
    assert scrub_text("- +prompt.api_key=sk-123\n- prompt.max_new_tokens=4") == (
        "- +prompt.api_key=<redacted>\n- prompt.max_new_tokens=4")
