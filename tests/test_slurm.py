"""Sweeps through hydra-submitit-launcher: a real SLURM job array, preemption + requeue, and the local executor.

The SLURM tests need the single-node test cluster (`bash tests/slurm/install.sh && bash tests/slurm/start.sh`);
they are marked `slurm` and skip, saying why, when it is not up.
"""

import functools
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import ROOT
from omegaconf import OmegaConf
from sklearn.datasets import load_digits

SMOKE = ["experiment=smoke", "logger=none"]
# What the single test node offers: no GPU (gres), 2+ CPUs, a few GB. The defaults (1 GPU, 8 CPUs, 64 GB) are
# for real clusters and would never be scheduled here.
FIT_TEST_NODE = ["hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
CPU_CLUSTER = ["hydra/launcher=slurm_cpu", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
STATE_DIR = Path(os.environ.get("ODIN_SLURM_DIR", "/tmp/odin-slurm"))


def _slurm_env() -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": os.environ.get("SLURM_CONF", str(STATE_DIR / "slurm.conf"))}


@functools.cache  # sinfo takes seconds to give up on a stopped controller: ask once per session
def _why_no_slurm() -> str | None:
    if shutil.which("sinfo") is None:
        return "sinfo is not on PATH: run `bash tests/slurm/install.sh && bash tests/slurm/start.sh`"
    conf = Path(_slurm_env()["SLURM_CONF"])
    if not conf.is_file():  # without it sinfo retries for 60 s before failing
        return f"no SLURM config at {conf}: run `bash tests/slurm/start.sh` (or set SLURM_CONF)"
    try:
        done = subprocess.run(["sinfo", "--noheader", "--format=%t"], env=_slurm_env(), capture_output=True,
                              text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: is slurmctld running? (bash tests/slurm/start.sh)"
    states = done.stdout.split()
    if done.returncode != 0 or not {"idle", "mix", "alloc"} & set(states):
        return f"no usable SLURM node (sinfo: {done.stdout.strip() or done.stderr.strip()[-200:]})"
    return None


@pytest.fixture
def slurm_env() -> dict[str, str]:
    """The environment for commands that talk to the test cluster; skips the test when there is none."""
    if reason := _why_no_slurm():
        pytest.skip(reason)
    return _slurm_env()


def _sweep(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    # cwd = the checkout: the job's `python -m submitit.core._submit` puts its cwd first on sys.path, so the
    # job imports this checkout's odin, whatever the venv's editable install points at.
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _jobs(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/metrics.json"))]


def _job_ids(sweep: Path) -> list[str]:
    """hydra.job.id of each job: `<array id>_<task>` for a SLURM array task, the process id for a local job."""
    return [str(OmegaConf.load(p / ".hydra" / "hydra.yaml").hydra.job.id) for p in sorted(sweep.glob("[0-9]*"))]


@pytest.mark.slurm
def test_sweep_runs_as_one_slurm_job_array(tmp_path, slurm_env):
    sweep = tmp_path / "sweep"
    done = _sweep(*CPU_CLUSTER, *SMOKE, "post=none,salt",  # the documented CPU-cluster launcher
                  f"paths.store={tmp_path / 'store'}", f"hydra.sweep.dir={sweep}", env=slurm_env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SLURM job array " in done.stdout  # the launcher says what it submitted ...
    assert "SLURM: 2 " in done.stdout or "SLURM: 1 " in done.stdout  # ... and how the queue stands
    jobs = _jobs(sweep)
    assert [j["post"]["name"] for j in jobs] == ["none", "salt"]
    assert all(j["training"]["status"] == "trained" and len(j["history"]) == 1 for j in jobs)
    assert sum(j["images"]["made"] for j in jobs) == 24  # the two array tasks share the store: made once
    (array_id,) = {job_id.split("_")[0] for job_id in _job_ids(sweep)}  # one sbatch, one array ...
    assert _job_ids(sweep) == [f"{array_id}_0", f"{array_id}_1"]  # ... with a task per sweep job
    script = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "#SBATCH --array=0-1%2" in script and "#SBATCH --requeue" in script and "HF_HUB_OFFLINE=1" in script
    assert "#SBATCH --gpus-per-node=0" in script and f"export PYTHONPATH={ROOT}" in script  # this checkout's odin


@pytest.mark.slurm
def test_a_partition_without_gpus_names_what_slurm_refused_and_the_keys_that_fit(tmp_path, slurm_env):
    """The defaults ask for a GPU: sbatch refuses the array. One message, no traceback, exit 1."""
    done = _sweep("hydra/launcher=slurm", *SMOKE, "post=none,salt", f"paths.store={tmp_path / 'store'}",
                  f"hydra.sweep.dir={tmp_path / 'sweep'}", env=slurm_env, timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    error = next(line for line in done.stderr.splitlines() if line.startswith("Error: "))
    assert "SLURM refused the sweep's job array: Invalid generic resource (gres) specification" in error
    assert "1 GPU(s) (gpus_per_node)" in error and "no GPUs" in error
    assert "These fit: hydra.launcher.gpus_per_node=0" in error and "hydra/launcher=slurm_cpu" in error


@pytest.mark.slurm
def test_jobs_that_can_never_start_are_cancelled_and_named_not_waited_for(tmp_path, slurm_env):
    """No GPU, but the defaults' 8 CPUs and 64 GB on a smaller node: SLURM queues the array (PartitionConfig)
    and would keep it pending forever; the launcher says why, cancels it and exits 1."""
    name = f"odin-test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    done = _sweep("hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", f"hydra.launcher.name={name}", *SMOKE,
                  "post=none,salt", f"paths.store={tmp_path / 'store'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
                  env=slurm_env, timeout=180)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert time.monotonic() - started < 120
    assert "SLURM: 2 pending (PartitionConfig)" in done.stdout  # what the queue said, while waiting
    error = next(line for line in done.stderr.splitlines() if line.startswith("Error: "))
    assert "cannot start 2 job(s)" in error and "PartitionConfig" in error and "the array is cancelled" in error
    assert "8 CPUs (cpus_per_task), 64 GB (mem_gb)" in error
    cpus = int(subprocess.run(["sinfo", "--noheader", "--format=%c"], env=slurm_env, capture_output=True,
                              text=True).stdout.split()[0])
    assert f"These fit: hydra.launcher.cpus_per_task={cpus} hydra.launcher.mem_gb=" in error
    left = subprocess.run(["squeue", "--noheader", f"--name={name}", "--states=PENDING,RUNNING"], env=slurm_env,
                          capture_output=True, text=True).stdout
    assert left.strip() == ""


@pytest.mark.slurm
def test_a_job_that_fails_is_reported_with_its_error_and_the_others_keep_their_results(tmp_path, slurm_env):
    """Without accounting (sacct) submitit never learns that a job died without a result; the launcher sees it
    in the queue and names the job, its overrides, its error line and its log."""
    sweep = tmp_path / "sweep"
    done = _sweep(*CPU_CLUSTER, *SMOKE, "labels=[zero],[eleven]", f"paths.store={tmp_path / 'store'}",
                  f"hydra.sweep.dir={sweep}", env=slurm_env, timeout=240)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "Error: 1 of 2 jobs failed (1 finished" in done.stderr
    failed = next(line for line in done.stderr.splitlines() if line.startswith("job "))
    assert "labels=[eleven]" in failed and "ended FAILED without a result" in failed
    assert "Error: labels ['eleven'] are not classes of dataset=digits" in failed and "_log.err)" in failed
    assert (sweep / "0" / "metrics.json").exists()


def test_slurm_time_limits_and_queue_lines():
    from odin.launcher import _minutes, queue_summary

    assert [_minutes(t) for t in ("infinite", "4:00:00", "30:00", "1-00:00:00", "2-12", "90")] == \
        [None, 240, 30, 1440, 3600, 90]
    queue = {"7_0": ("RUNNING", "None"), "7_1": ("PENDING", "Priority"), "7_2": ("PENDING", "Resources")}
    assert queue_summary(queue, ["7_0", "7_1", "7_2"]) == "1 running, 2 pending (Priority: 1, Resources: 1)"
    assert queue_summary(queue, ["7_1"]) == "1 pending (Priority)"


@pytest.mark.slurm
def test_sharded_formulate_on_slurm_then_a_train_sweep_generates_nothing(tmp_path, slurm_env):
    store = tmp_path / "store"
    made = _sweep("hydra/launcher=slurm", *FIT_TEST_NODE, *SMOKE, "task=formulate", "shard=0,1,2,3", "num_shards=4",
                  f"paths.store={store}", f"hydra.sweep.dir={tmp_path / 'shards'}", env=slurm_env)
    assert made.returncode == 0, made.stderr[-3000:]
    shards = _jobs(tmp_path / "shards")
    assert len(shards) == 4 and sum(j["images"]["made"] for j in shards) == 24  # each unit made by one shard
    train = _sweep("hydra/launcher=slurm", *FIT_TEST_NODE, *SMOKE, "post=none,salt", f"paths.store={store}",
                   f"hydra.sweep.dir={tmp_path / 'train'}", env=slurm_env)
    assert train.returncode == 0, train.stderr[-3000:]
    assert [j["images"]["made"] for j in _jobs(tmp_path / "train")] == [0, 0]


@pytest.mark.slurm
def test_preempted_training_job_is_requeued_and_resumes_from_its_checkpoint(tmp_path, slurm_env):
    # submitit (>= 1.5) asks SLURM for SIGUSR2 before the time limit and handles it as preemption: checkpoint,
    # `scontrol requeue`, exit. The requeued job reruns the same Hydra job, which resumes from the store.
    sweep, store, name = tmp_path / "sweep", tmp_path / "store", f"odin-test-{uuid.uuid4().hex[:8]}"
    epochs = 12  # signalled after the first saved epoch: most of the training is left for the requeued job
    sweep_cmd = [sys.executable, str(ROOT / "run.py"), "-m", "hydra/launcher=slurm", *FIT_TEST_NODE, *SMOKE,
                 f"train.epochs={epochs}", f"hydra.launcher.name={name}", f"paths.store={store}",
                 f"hydra.sweep.dir={sweep}"]
    launcher = subprocess.Popen(sweep_cmd, cwd=ROOT, env=slurm_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not list(store.glob("checkpoints/*/last.pt")):  # at least one epoch is saved
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()[1][-3000:]
            time.sleep(0.2)
        job_id = subprocess.run(["squeue", "--noheader", f"--name={name}", "--format=%i"], env=slurm_env,
                                capture_output=True, text=True, check=True).stdout.split()[0]
        subprocess.run(["scancel", "--signal=USR2", job_id], env=slurm_env, check=True)
        _, stderr = launcher.communicate(timeout=240)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            subprocess.run(["scancel", f"--name={name}"], env=slurm_env)
    assert launcher.returncode == 0, stderr[-3000:]
    log = next((sweep / ".submitit").glob("*/*_0_log.out")).read_text()  # both attempts append here
    assert "this job is preempted" in log and f"Requeued job {job_id}" in log and "resuming from " in log, log[-3000:]
    resumed_after = int(log.split("resuming from ")[1].split("after epoch ")[1].split()[0])
    assert 1 <= resumed_after < epochs
    (job,) = _jobs(sweep)
    assert [h["epoch"] for h in job["history"]] == list(range(1, epochs + 1))  # no epoch lost or repeated


@pytest.mark.slow
def test_local_launcher_runs_the_same_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    done = _sweep("hydra/launcher=local", *SMOKE, "labels=[zero,one]",
                  "post=none,salt", f"paths.store={tmp_path / 'store'}", f"hydra.sweep.dir={sweep}")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = _jobs(sweep)
    assert [j["post"]["name"] for j in jobs] == ["none", "salt"]
    # Each job trained on its own images (salt changes the first epoch's loss) and tested on every real zero and one.
    assert jobs[0]["history"][0]["train_loss"] != jobs[1]["history"][0]["train_loss"]
    digits = load_digits().target
    assert [j["test_images"] for j in jobs] == [int(((digits == 0) | (digits == 1)).sum())] * 2
    assert sum(j["images"]["made"] for j in jobs) == 16  # 2 labels x 2 prompts x 4 images, made once
    assert all(job_id.isdigit() for job_id in _job_ids(sweep))  # local jobs are processes, not array tasks
    assert not list((sweep / ".submitit").glob("*/*_submission.sh"))  # and nothing went through sbatch


@pytest.mark.slow
def test_a_failed_local_job_is_one_message_and_the_other_keeps_its_result(tmp_path):
    sweep = tmp_path / "sweep"
    done = _sweep("hydra/launcher=local", *SMOKE, "labels=[zero],[eleven]", f"paths.store={tmp_path / 'store'}",
                  f"hydra.sweep.dir={sweep}")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "Error: 1 of 2 jobs failed (1 finished" in done.stderr
    failed = next(line for line in done.stderr.splitlines() if line.startswith("job "))
    assert "labels=[eleven]" in failed and "Error: labels ['eleven'] are not classes of dataset=digits" in failed
    assert (sweep / "0" / "metrics.json").exists()
