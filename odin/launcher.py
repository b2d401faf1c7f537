"""hydra/launcher=slurm and =local: hydra-submitit-launcher's launchers, saying what SLURM refused, why jobs wait
and which jobs failed.

    python run.py -m hydra/launcher=slurm post=none,salt     (conf/hydra/launcher/slurm.yaml: its _target_ is
                                                               hydra_plugins.odin_launcher.SlurmLauncher)

The plugin submits the sweep as one job array and waits for its result files, silently. These launchers:
- when sbatch refuses the array (a GPU asked for on a partition without any, more memory or CPUs than a node
  has, an unknown partition, account or QOS): what SLURM said, what each job asks, what the partition's nodes
  offer and the `hydra.launcher.*` overrides that fit, as one error (exit status 1), not submitit's traceback;
- while waiting: the queue, logged whenever it changes ("SLURM: 1 running, 2 pending (Priority)"); when SLURM says
  a job can never start as asked (PartitionConfig, PartitionTimeLimit, ...), the array is cancelled and the same
  error names what would fit;
- a job that ended without a result (an ODIN error, out of memory, a time limit, scancel): its overrides, state,
  error line and log, once every job is done, instead of waiting for it forever (SLURM without accounting) or
  submitit's traceback; the other jobs' results stay in the sweep dir. The local launcher does the same.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from hydra.core.singleton import Singleton
from hydra.core.utils import filter_overrides
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

from odin.errors import UserError

log = logging.getLogger("odin.launcher")

# squeue's pending reasons that waiting cannot cure: the request exceeds what the partition, its nodes or a
# per-job limit allow (slurm.schedmd.com/job_reason_codes.html).
NEVER = {
    "PartitionConfig": "the partition's nodes cannot give what a job asks for",
    "PartitionNodeLimit": "more nodes than the partition allows",
    "PartitionTimeLimit": "a longer time limit than the partition allows",
    "BadConstraints": "no node has the features asked for (hydra.launcher.constraint)",
    "InvalidAccount": "the account is not valid here (hydra.launcher.account)",
    "InvalidQOS": "the QOS is not valid here (hydra.launcher.qos)",
    "QOSMaxCpuPerJobLimit": "more CPUs than the QOS allows a job",
    "QOSMaxGRESPerJob": "more GPUs than the QOS allows a job",
    "QOSMaxMemoryPerJob": "more memory than the QOS allows a job",
    "QOSMaxWallDurationPerJobLimit": "a longer time limit than the QOS allows",
    "AssocMaxWallDurationPerJobLimit": "a longer time limit than the account allows",
    "AssocMaxCpuPerJobLimit": "more CPUs than the account allows a job",
}
ENDED = {"FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED"}
FIX_FOR_END = {
    "OUT_OF_MEMORY": "raise hydra.launcher.mem_gb",
    "TIMEOUT": "raise hydra.launcher.timeout_min (or hydra.launcher.max_num_timeout to requeue it)",
    "CANCELLED": "cancelled (scancel, or an administrator); run the sweep again to finish it",
    "NODE_FAIL": "its node failed; run the sweep again to finish it",
}
# sbatch's refusals -> the hydra.launcher keys that decide them.
REFUSALS = [
    ("generic resource", ["gpus_per_node", "gres", "gpus_per_task"]),
    ("memory specification", ["mem_gb", "mem_per_gpu", "mem_per_cpu"]),
    ("node configuration is not available", ["cpus_per_task", "mem_gb", "gpus_per_node", "constraint"]),
    ("more processors", ["cpus_per_task", "tasks_per_node"]),
    ("invalid partition", ["partition"]),
    ("account", ["account"]),
    ("qos", ["qos"]),
    ("time limit", ["timeout_min"]),
    ("feature", ["constraint"]),
]


class SweepError(UserError):
    """What SLURM would not do or which jobs failed, and what would work: run.py prints it, exit status 1."""


def submit(launcher, job_overrides, initial_job_idx, params: dict) -> tuple[list, list[str]]:
    """The plugin's launch (hydra-submitit-launcher 1.2.0) up to the submission: the jobs and their overrides."""
    import submitit

    kind = launcher._EXECUTOR
    init = {f"{kind}_max_num_timeout": params["max_num_timeout"]} if "max_num_timeout" in params else {}
    executor = submitit.AutoExecutor(cluster=kind, folder=params["submitit_folder"], **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"{kind}_{k}": v for k, v in params.items()
                                  if k not in ("submitit_folder", "max_num_timeout")})
    sweep = launcher.config.hydra.sweep
    log.info(f"Submitit '{kind}' sweep output dir : {sweep.dir}")
    Path(str(sweep.dir)).mkdir(parents=True, exist_ok=True)
    if "mode" in sweep:
        os.chmod(str(sweep.dir), mode=int(str(sweep.mode), 8))
    job_params, names = [], []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        names.append(" ".join(filter_overrides(overrides)))
        log.info(f"\t#{idx} : {names[-1]}")
        job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
    return executor.map_array(launcher, *zip(*job_params, strict=True)), names


def checkout(launcher) -> str:
    """The folder holding hydra_plugins/ and odin/ for this launcher: a job unpickles the launcher and runs odin
    from there, wherever it starts and whatever the venv's editable install points at."""
    return str(Path(sys.modules[type(launcher).__module__].__file__).resolve().parents[2])  # hydra_plugins/<name>/..


class LocalLauncher(submitit_launcher.LocalLauncher):
    """hydra/launcher=local: the plugin's, with a failed job reported as one message (its error line and log)."""

    def launch(self, job_overrides, initial_job_idx):
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [checkout(self), os.environ.get("PYTHONPATH")]))
        jobs, names = submit(self, job_overrides, initial_job_idx, self.params)
        return results(jobs, names, {}, self.config.hydra.sweep.dir)


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    first_poll_s, max_poll_s = 5.0, 60.0  # squeue soon after submitting, then at most once a minute
    lost_after_s = 20.0  # a job ended this long without its result file has none coming (file system latency)

    def launch(self, job_overrides, initial_job_idx):
        import shlex

        from submitit.core.utils import FailedJobError

        path = f"export PYTHONPATH={shlex.quote(checkout(self))}${{PYTHONPATH:+:$PYTHONPATH}}"
        try:
            jobs, names = submit(self, job_overrides, initial_job_idx,
                                 {**self.params, "setup": [*(self.params.get("setup") or []), path]})
        except FailedJobError as error:
            raise SweepError(self._refusal(str(error))) from None
        log.info("SLURM job array %s: %d jobs; logs in %s", jobs[0].job_id.split("_")[0], len(jobs),
                 jobs[0].paths.folder.parent)
        return self._wait(jobs, names)

    # ---- refused at submission ---------------------------------------------------------------------------------

    def _refusal(self, sbatch_error: str) -> str:
        said = "; ".join(line.split("error:", 1)[-1].strip() for line in sbatch_error.splitlines()
                         if "error:" in line and "Batch job submission failed" not in line) or sbatch_error.strip()
        lower = sbatch_error.lower()
        keys = next((keys for pattern, keys in REFUSALS if pattern in lower), [])
        return f"SLURM refused the sweep's job array: {said} (sbatch). {self._fit(keys)}"

    def _fit(self, keys: list[str]) -> str:
        """What a job asks, what the partition's nodes offer, and the overrides that fit them."""
        p = self.params
        gpus, cpus, tasks = p.get("gpus_per_node") or 0, p.get("cpus_per_task") or 1, p.get("tasks_per_node") or 1
        asked = [f"{gpus} GPU(s) (gpus_per_node)", f"{cpus} CPUs (cpus_per_task)", f"{p.get('mem_gb')} GB (mem_gb)",
                 f"{p.get('timeout_min')} min (timeout_min)"]
        asked += [f"{k}={p[k]}" for k in ("gres", "gpus_per_task", "constraint", "account", "qos") if p.get(k)]
        partition = p.get("partition")
        where = f"partition {partition}" if partition else "the default partition"
        text = f"Each job asks for {', '.join(asked)} on {where}"
        nodes = partition_nodes(partition)
        if nodes is None:
            return f"{text}, which sinfo does not know (`sinfo -s` lists the partitions). {_keys_hint(keys)}"
        text += (f" ({nodes['name']}), whose nodes have at most {nodes['cpus']} CPUs, {nodes['mem_mb'] // 1024} GB, "
                 f"{'GPUs (' + nodes['gres'] + ')' if nodes['gpus'] else 'no GPUs'} and a time limit of "
                 f"{nodes['limit']}")
        fixes = []
        if (gpus or p.get("gres") or p.get("gpus_per_task")) and not nodes["gpus"]:
            fixes += ["hydra.launcher.gpus_per_node=0"]
            fixes += [f"hydra.launcher.{k}=null" for k in ("gres", "gpus_per_task") if p.get(k)]
        if cpus * tasks > nodes["cpus"]:
            fixes.append(f"hydra.launcher.cpus_per_task={max(1, nodes['cpus'] // tasks)}")
        if p.get("mem_gb") and p["mem_gb"] * 1024 > nodes["mem_mb"]:
            fixes.append(f"hydra.launcher.mem_gb={max(1, nodes['mem_mb'] // 1024)}")
        if nodes["limit_min"] is not None and (p.get("timeout_min") or 0) > nodes["limit_min"]:
            fixes.append(f"hydra.launcher.timeout_min={nodes['limit_min']}")
        if not fixes:
            return f"{text}. {_keys_hint(keys)}"
        gpu_hint = " (on a CPU cluster: hydra/launcher=slurm_cpu)" if fixes[0].endswith("gpus_per_node=0") else ""
        return f"{text}. These fit: {' '.join(fixes)}{gpu_hint}, or choose another hydra.launcher.partition."

    # ---- waiting ----------------------------------------------------------------------------------------------

    def _wait(self, jobs: list, names: list[str]) -> list:
        poll, next_poll = self.first_poll_s, time.monotonic() + self.first_poll_s
        said, ended_since, lost = "", {}, {}
        while True:
            open_jobs = [j for j in jobs if j.job_id not in lost and not j.done()]
            if not open_jobs:
                break
            if time.monotonic() >= next_poll:
                queue = squeue(sorted({j.job_id.split("_")[0] for j in open_jobs}))
                if queue is not None:
                    summary = queue_summary(queue, [j.job_id for j in open_jobs])
                    if summary != said:
                        log.info("SLURM: %s", summary)
                        said = summary
                    self._stop_if_never(queue, jobs)
                    now = time.monotonic()
                    for job in open_jobs:
                        state = queue[job.job_id][0] if job.job_id in queue else "no longer in the queue"
                        if (state in ENDED or job.job_id not in queue) and not job.paths.result_pickle.exists():
                            if now - ended_since.setdefault(job.job_id, now) >= self.lost_after_s:
                                lost[job.job_id] = state
                        else:
                            ended_since.pop(job.job_id, None)
                poll = min(poll * 2, self.max_poll_s)
                next_poll = time.monotonic() + (min(poll, self.lost_after_s) if ended_since else poll)
            time.sleep(1)
        return results(jobs, names, lost, self.config.hydra.sweep.dir)

    def _stop_if_never(self, queue: dict, jobs: list) -> None:
        never = {job_id: reason for job_id, (state, reason) in queue.items()
                 if state == "PENDING" and reason.split(",")[0] in NEVER}
        if not never:
            return
        reason = next(iter(never.values())).split(",")[0]
        arrays = sorted({j.job_id.split("_")[0] for j in jobs})
        subprocess.run(["scancel", *arrays], capture_output=True, timeout=60)
        raise SweepError(f"SLURM cannot start {len(never)} job(s) of array {', '.join(arrays)} as asked: {reason} "
                      f"({NEVER[reason]}); the array is cancelled. {self._fit([])}")


def results(jobs: list, names: list[str], lost: dict[str, str], sweep_dir) -> list:
    """Every job's JobReturn; if any job failed, one message naming each (its overrides, its state, its error
    line or traceback, its log) while the others' results stay in the sweep dir."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    out, failed = [], []
    for job, name in zip(jobs, names, strict=True):
        if job.job_id in lost:
            failed.append(ended(job, name, lost[job.job_id]))
            continue
        try:
            out.append(job.results()[0])
        except UncompletedJobError:  # ended without a result file: an ODIN error, killed, out of memory
            failed.append(ended(job, name, job.state))
        except FailedJobError as error:  # an exception in the job (a bug): its traceback, as the job printed it
            failed.append(f"job {job.job_id} ({name}) raised an exception (log: {job.paths.stderr}):\n{error}")
    if failed:
        raise SweepError(f"{len(failed)} of {len(jobs)} jobs failed ({len(jobs) - len(failed)} finished: their results "
                      f"are in {sweep_dir}):\n" + "\n".join(failed))
    return out


def ended(job, name: str, state: str) -> str:
    why = _error_line(job.paths.stderr)
    fix = "" if why else f"; {FIX_FOR_END[state]}" if state in FIX_FOR_END else ""
    how = f"ended {state}" if state in ENDED or state == "no longer in the queue" else "ended"
    return f"job {job.job_id} ({name}) {how} without a result{fix}: {why or 'see its log'} (log: {job.paths.stderr})"


def squeue(arrays: list[str]) -> dict[str, tuple[str, str]] | None:
    """{job id "<array>_<task>": (state, reason)} of the arrays' tasks, ended ones included while SLURM keeps
    them (MinJobAge); None when squeue cannot answer (the controller is busy: ask again later)."""
    try:
        done = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T|%r",
                               f"--jobs={','.join(arrays)}"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    out = {}
    for line in done.stdout.splitlines():
        job_id, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        out[job_id] = (state, reason)
    return out


def queue_summary(queue: dict[str, tuple[str, str]], job_ids: list[str]) -> str:
    """"1 running, 3 pending (Resources: 2, Priority: 1)" for the jobs still open."""
    counts: dict[str, dict[str, int]] = {}
    for job_id in job_ids:
        state, reason = queue.get(job_id, ("UNKNOWN", ""))
        counts.setdefault(state.lower(), {}).setdefault(reason, 0)
        counts[state.lower()][reason] += 1
    parts = []
    for state, reasons in counts.items():
        total = sum(reasons.values())
        shown = [f"{r}: {n}" if len(reasons) > 1 else r for r, n in reasons.items() if r and r != "None"]
        parts.append(f"{total} {state}" + (f" ({', '.join(shown)})" if state == "pending" and shown else ""))
    return ", ".join(parts)


def partition_nodes(partition: str | None) -> dict | None:
    """The largest node of `partition` (the default one when None) as sinfo sees it, or None if unknown."""
    args = ["sinfo", "--noheader", "--format=%P|%c|%m|%G|%l"] + ([f"--partition={partition}"] if partition else [])
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = [line.split("|") for line in done.stdout.splitlines() if line.count("|") == 4]
    if not partition:
        rows = [r for r in rows if r[0].endswith("*")] or rows
    if done.returncode != 0 or not rows:
        return None
    gres = sorted({r[3] for r in rows if r[3] not in ("(null)", "")})
    limit = rows[0][4]
    return {"name": rows[0][0].rstrip("*"), "cpus": max(_int(r[1]) for r in rows),
            "mem_mb": max(_int(r[2]) for r in rows), "gres": ",".join(gres), "gpus": any("gpu" in g for g in gres),
            "limit": limit, "limit_min": _minutes(limit)}


def _int(text: str) -> int:
    return int("".join(c for c in text if c.isdigit()) or 0)


def _minutes(limit: str) -> int | None:
    """SLURM's time limit in minutes; None for "infinite"."""
    if not limit or not limit[0].isdigit():
        return None
    days, _, clock = limit.rpartition("-")
    parts = [int(x) for x in clock.split(":")]
    if days:  # days-hours[:minutes[:seconds]]
        hours, minutes = parts[0], parts[1] if len(parts) > 1 else 0
    elif len(parts) == 3:  # hours:minutes:seconds
        hours, minutes = parts[0], parts[1]
    else:  # minutes[:seconds]
        hours, minutes = 0, parts[0]
    return int(days or 0) * 1440 + hours * 60 + minutes


def _keys_hint(keys: list[str]) -> str:
    if not keys:
        return "Every sbatch option is a hydra.launcher.* key (conf/hydra/launcher/slurm.yaml)."
    return "The key(s) that decide it: " + ", ".join(f"hydra.launcher.{k}" for k in keys) + "."


def _error_line(path: Path) -> str:
    """ODIN's one-line error ("Error: ...") from a job's log, or its last line."""
    try:
        lines = [line.strip() for line in Path(path).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    errors = [line for line in lines if line.startswith("Error: ")]
    return errors[-1] if errors else ""

