"""`bsrn upscale --ray ADDRESS`: the jobs the single-machine planner made, run on a Ray cluster.

The driver plans (naming, skipping existing outputs, clashes) exactly as a local run does, then
hands every remaining job to a pool of Ray actors. Each actor loads the network once (a
registered model from its own installation, a weights file from the same path, which like the
inputs and outputs every machine must see), runs the packed backend with the cores Ray gives
it, and writes its outputs atomically to the path the user named. Results come back one per job: done, skipped
(another run wrote the output meanwhile) or failed with its one error line; notes too.

Fault tolerance is Ray's, used on purpose: an actor whose process dies is restarted and its
unfinished job retried (``max_restarts``/``max_task_retries``); a driver that dies leaves only
complete outputs, and the rerun skips them like any rerun.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bsrn_cli.errors import BsrnError

RETRIES = 3  # restarts of a dead worker, and retries of the job it was running


def require_ray():
    """The ray module, or a one-line error with the install command."""
    try:
        import ray
    except ImportError:
        raise BsrnError("--ray needs Ray, which is not installed: pip install 'bsrn[ray]'") from None
    return ray


@dataclass
class Outcome:
    source: str
    status: str          # done | skipped | failed
    message: str = ""    # the error line (failed) or the reason it was skipped
    notes: tuple = ()


def connect(address: str, ray, cpus: int | None = None) -> int:
    """Join the cluster at ``address`` (``auto``: the one this machine is part of, ``local``: a new
    one in this process's machine); how many CPUs it has."""
    options = dict(include_dashboard=False, log_to_driver=False, configure_logging=True, logging_level="ERROR")
    try:
        if address == "local":
            ray.init(num_cpus=cpus or os.cpu_count() or 1, **options)
        else:
            ray.init(address=address, **options)
    except Exception as exc:  # ConnectionError, ValueError, RuntimeError, by version and cause
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BsrnError(f"--ray {address}: cannot join the Ray cluster ({text})") from exc
    return max(int(ray.cluster_resources().get("CPU", 1)), 1)


class Worker:
    """One Ray actor: a network loaded once, run on the jobs it is given."""

    def __init__(self, model: str, scale: int, settings: dict):
        from bsrn_cli.backends import make_upscaler
        from bsrn_cli.cli.upscale import Runner
        from bsrn_cli.pretrained.loader import load_model

        weights, _, _ = load_model(model, scale)
        notes: list[str] = []
        threads = settings.pop("threads")
        upscaler = make_upscaler(weights, settings.pop("backend"), "cpu", threads=threads, on_retry=notes.append,
                                 **settings.pop("upscaler"))
        self.runner = Runner(upscaler, notes, **settings)

    def run(self, job) -> Outcome:
        from rich.progress import Progress

        from bsrn_cli.cli.upscale import job_error
        from bsrn_cli.io.atomic import OutputExists

        self.runner.notes.clear()
        try:
            if job.video:
                with Progress(disable=True) as progress:
                    self.runner.video(job, progress, frames_only=False)
            else:
                self.runner.image(job)
            return Outcome(str(job.source), "done", notes=tuple(self.runner.notes))
        except OutputExists as exc:
            if exc.same:  # this job's own output: a first try wrote it, then its worker died unreported
                return Outcome(str(job.source), "done", notes=tuple(self.runner.notes))
            return Outcome(str(job.source), "skipped", str(exc), tuple(self.runner.notes))
        except BsrnError as exc:
            return Outcome(str(job.source), "failed", str(exc), tuple(self.runner.notes))
        except Exception as exc:  # anything else: one line naming the file, as locally
            return Outcome(str(job.source), "failed", str(job_error(job, exc)), tuple(self.runner.notes))


def run_on_ray(ray, jobs: list, model: str, scale: int, settings: dict, cpus: int, on_outcome) -> None:
    """Run ``jobs`` on ``cpus // cpus_per_worker`` actors; ``on_outcome(job, Outcome)`` hears each
    result in the order they finish."""
    per_worker = max(int(settings.pop("cpus_per_worker", 1)), 1)
    workers_count = max(min(cpus // per_worker, len(jobs)), 1)
    settings = {**settings, "threads": per_worker}
    actor = ray.remote(num_cpus=per_worker, max_restarts=RETRIES, max_task_retries=RETRIES)(Worker)
    # Each actor loads the model itself: a restarted actor needs nothing from the driver.
    pool = [actor.remote(model, scale, dict(settings, upscaler=dict(settings["upscaler"])))
            for _ in range(workers_count)]
    pending = {}
    queue = list(jobs)
    for worker in pool:  # one job per worker in flight, the next when it reports
        if queue:
            job = queue.pop(0)
            pending[worker.run.remote(job)] = (worker, job)
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        worker, job = pending.pop(ready[0])
        try:
            outcome = ray.get(ready[0])
        except Exception as exc:  # the job failed even after the retries Ray gave it
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            outcome = Outcome(str(job.source), "failed", f"{job.source}: the Ray worker failed ({reason[:200]})")
        on_outcome(job, outcome)
        if queue:
            job = queue.pop(0)
            pending[worker.run.remote(job)] = (worker, job)
