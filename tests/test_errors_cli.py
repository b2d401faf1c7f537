"""Faults that are the user's to fix, through `python run.py`: one line naming the path or key and what
would work, exit status 1, nothing already made lost; and no secret on the console, Hydra's text included."""

import contextlib
import subprocess

import pytest
from conftest import ROOT
from test_cli import assert_clean_error, run_py

SMALL = ["experiment=smoke", "logger=none"]
FORMULATE = [*SMALL, "task=formulate", "labels=[two]", "prompt.num_prompts=1", "diffusion.images_per_prompt=2"]
KEY = "sk-planted-key-0123456789"


def one_line(done) -> str:
    """The error message: the last line of stderr, which must be all of it."""
    message = done.stderr[("\n" + done.stderr).rindex("\nError: "):].strip()
    assert "\n" not in message, message
    return message


@contextlib.contextmanager
def immutable(*paths):
    """`chattr +i`: refuses writes even to root (a plain chmod does not)."""
    done = subprocess.run(["chattr", "+i", *map(str, paths)], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"chattr +i is not available here: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_a_store_path_that_is_a_file(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    done = run_py(*FORMULATE, f"paths.store={tmp_path / 'a-file'}", cwd=tmp_path)
    assert_clean_error(done, f"paths.store={tmp_path / 'a-file'}", "is a file, not a folder", "paths.store=")
    one_line(done)
    assert (tmp_path / "a-file").read_text() == "not a folder"


def test_odin_store_that_is_a_file(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    done = run_py(*FORMULATE, cwd=tmp_path, env={"ODIN_STORE": str(tmp_path / "a-file")})
    assert_clean_error(done, f"ODIN_STORE={tmp_path / 'a-file'}", "is a file, not a folder")
    one_line(done)


def test_an_immutable_label_folder_that_needs_a_write(tmp_path):
    store = tmp_path / "store"
    first = run_py(*FORMULATE, f"paths.store={store}", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    [label] = store.glob("images/[!.]*/two")
    made = {p.name: p.read_bytes() for p in label.iterdir()}
    with immutable(label):
        done = run_py(*FORMULATE[:-1], "diffusion.images_per_prompt=3", f"paths.store={store}", cwd=tmp_path)
    assert_clean_error(done, "cannot write in", str(label), "Operation not permitted", "paths.store")
    one_line(done)
    assert {p.name: p.read_bytes() for p in label.iterdir()} == made  # nothing lost
    again = run_py(*FORMULATE[:-1], "diffusion.images_per_prompt=3", f"paths.store={store}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]  # once writable, it goes on; the first two are the same
    assert all((label / name).read_bytes() == data for name, data in made.items())


@pytest.mark.slow
def test_an_immutable_checkpoint_folder(tmp_path):
    store = tmp_path / "store"
    train = [*SMALL, "labels=[zero,one]", "prompt.num_prompts=1", "diffusion.images_per_prompt=3",
             f"paths.store={store}"]
    first = run_py(*train, "train.epochs=1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    [folder] = store.glob("checkpoints/[!.]*")
    kept = {p.name: p.read_bytes() for p in folder.iterdir()}
    with immutable(folder):
        done = run_py(*train, "train.epochs=2", cwd=tmp_path)  # resumes, and must write its checkpoint
    assert_clean_error(done, "cannot write in", str(folder))
    one_line(done)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == kept


def test_a_read_only_run_dir(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    with immutable(run_dir):
        done = run_py(*FORMULATE, f"paths.store={tmp_path / 'store'}", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert_clean_error(done, f"cannot write {run_dir}", "hydra.run.dir=")
    one_line(done)
    assert not (tmp_path / "store").exists()


def test_filter_clip_without_its_model(tmp_path):
    done = run_py(*FORMULATE, "filter=clip", f"paths.store={tmp_path / 'store'}", cwd=tmp_path)
    assert_clean_error(done, "filter.model", "filter.model=")
    one_line(done)
    assert not (tmp_path / "store" / "images").exists()


def test_local_settings_that_do_not_parse(tmp_path):
    local = tmp_path / "extra" / "local" / "default.yaml"
    local.parent.mkdir(parents=True)
    local.write_text("train:\n  epochs: [3\nfoo: : :\n")
    done = run_py(*FORMULATE, f"hydra.searchpath=[file://{tmp_path / 'extra'}]", cwd=tmp_path)
    assert_clean_error(done, f"{local} does not parse as YAML", "line 2")
    one_line(done)


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=local"]])
def test_a_key_the_launcher_does_not_take(tmp_path, launcher):
    done = run_py("-m", *FORMULATE, *launcher, "+hydra.launcher.bogus_key=1", f"paths.store={tmp_path / 'store'}",
                  f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert_clean_error(done, "hydra.launcher.bogus_key", "no such key", "--cfg hydra --package hydra.launcher")
    one_line(done)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize("template, words", [("a photo of a digit", ["must contain {label}"]),
                                             ("'a photo of a {label'", ["is not a template"])])
def test_a_template_without_its_placeholder(tmp_path, template, words):
    done = run_py(*FORMULATE, f"prompt.template={template}", f"paths.store={tmp_path / 'store'}", cwd=tmp_path)
    assert_clean_error(done, f"prompt.template={template.strip(chr(39))!r}", *words,
                       "e.g. prompt.template='a photo of one {label} {context}'")
    assert "Error in call to target" not in done.stderr
    one_line(done)


@pytest.mark.parametrize("plus", ["", "+"])
def test_a_key_on_the_command_line_never_reaches_the_console(tmp_path, plus):
    done = run_py(*FORMULATE, f"{plus}prompt.api_key={KEY}", f"paths.store={tmp_path / 'store'}",
                  f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert_clean_error(done, "prompt.api_key", "no such key")  # words stay words: "no such key"
    assert "To append to your config" not in done.stderr  # Hydra's hint repeats the value
    assert KEY not in done.stdout + done.stderr and KEY[3:12] not in done.stdout + done.stderr
    for path in (tmp_path / "run").rglob("*") if (tmp_path / "run").exists() else ():
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path


def test_a_secret_in_a_bugs_traceback_is_masked(tmp_path):
    """A bug keeps its traceback, Hydra's "Error executing job with overrides: [...]" too, masked."""
    done = run_py(*FORMULATE, "diffusion._target_=backends.Broken", f"+diffusion.password={KEY}",
                  f"paths.store={tmp_path / 'store'}", cwd=tmp_path, env={"PYTHONPATH": str(ROOT / "tests")})
    assert done.returncode == 1 and KEY not in done.stdout + done.stderr


def test_odins_own_hint_about_the_api_key_is_not_masked(tmp_path):
    env = {"OPENAI_API_KEY": ""}
    done = run_py(*FORMULATE, "prompt=llm", f"paths.store={tmp_path / 'store'}", cwd=tmp_path, env=env)
    assert_clean_error(done, "export OPENAI_API_KEY=...")
    assert "<redacted>" not in done.stderr


def test_cfg_job_masks_credentials_and_is_otherwise_plain(tmp_path):
    done = run_py("--cfg", "job", "prompt=llm", "prompt.base_url=http://me:pa55word@host/v1", cwd=tmp_path)
    assert done.returncode == 0 and "http://<redacted>@host/v1" in done.stdout and "pa55word" not in done.stdout
    assert done.stdout.startswith("name: ") or "\nlabels: null\n" in done.stdout


@pytest.mark.parametrize("labels, words", [('labels=[""]', ["label 1 of 1 is empty ('')"]),
                                           ('labels=[seven," "]', ["label 2 of 2 is empty (' ')"]),
                                           ("labels=[]", ["labels=[] is empty", "a shell removes the quotes"])])
def test_an_empty_label_is_named_as_such(tmp_path, labels, words):
    done = run_py(*FORMULATE[:3], labels, f"paths.store={tmp_path / 'store'}", cwd=tmp_path)
    assert_clean_error(done, *words)
    one_line(done)
