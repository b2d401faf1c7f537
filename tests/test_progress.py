"""Progress bars written to a file (a SLURM log, `2> err.txt`) are plain lines, not walls of carriage returns."""

import os
import subprocess
import sys

from conftest import ROOT

from odin.progress import Lines


def test_a_run_whose_stderr_is_a_file_prints_progress_as_plain_lines(tmp_path):
    env = {**os.environ, "ODIN_PROGRESS": "1", "ODIN_PROGRESS_EVERY": "0"}  # a line per update, at once
    with open(tmp_path / "err.txt", "w") as err:
        done = subprocess.run([sys.executable, str(ROOT / "run.py"), "experiment=smoke", "logger=none",
                               "train.epochs=2", f"paths.store={tmp_path / 'store'}",
                               f"hydra.run.dir={tmp_path / 'run'}"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=err, text=True, timeout=600)
    stderr = (tmp_path / "err.txt").read_text()
    assert done.returncode == 0, stderr[-3000:]
    assert "\r" not in stderr and "\x1b[" not in stderr
    lines = stderr.splitlines()
    assert any(line.startswith("train: 100% 2/2 [") for line in lines), stderr[-2000:]
    assert any(line.startswith("epoch 1: ") for line in lines)
    assert len(lines) == len(set(lines))  # no line repeated by a parent bar's redraw


def test_a_quiet_period_prints_nothing_and_redraws_become_lines(tmp_path):
    env = {**os.environ, "ODIN_PROGRESS": "1"}  # the default: a line at most every 30 s
    script = "from odin.progress import progress\nfor _ in progress(range(50), desc='quick'): pass\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0 and done.stderr == ""  # done before the first 30 s: no line at all

    class Sink:
        text = ""

        def write(self, s):
            self.text += s

    sink = Sink()
    lines = Lines(sink)
    lines.write("\rtrain:  50% 1/2   ")
    lines.write("\n\x1b[A\rtrain:  50% 1/2")  # a nested bar closed: the parent redraws unchanged
    lines.write("\r" + " " * 40 + "\r")  # leave=False clears its line
    lines.write("\rtrain: 100% 2/2\n")
    assert sink.text == "train:  50% 1/2\ntrain: 100% 2/2\n"
