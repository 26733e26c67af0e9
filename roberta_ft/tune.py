"""`tune(config)`: a hyperparameter search whose trials are normal training runs; hopeless ones stop early.

An Optuna study (TPE, or a grid for the RoBERTa paper's settings) lives in a database: a SQLite file in
the output directory unless ``--storage`` names another. Each trial is `train.train` with the trial's
settings over the user's, into ``DIR/trials/NNN``; a progress wrapper reports every epoch's validation
metric to the trial, and the pruner may stop it there (`RunStopped`, recorded as status "pruned" in
the trial's run_config.json). ``DIR/best`` is a copy of the best trial's model dir, ``DIR/tune.json``
every trial of the study, rewritten after each one.

Re-running the same command continues the study: finished trials are kept, and a trial whose process
was killed is run again from its last checkpoint (a process on this machine that is gone is noticed
at once; one elsewhere once its heartbeat is older than GRACE_SECONDS). Several processes, on one
machine or several, may work on one study: each trial is run by exactly one of them.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import shutil
import socket
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roberta_ft import artifacts
from roberta_ft.config import TUNE_TRIALS, TrainConfig, TuneConfig
from roberta_ft.errors import ConfigError, RobertaFtError, RunStopped, TrainingError
from roberta_ft.search_space import Parameter, SearchSpace, load_space

logger = logging.getLogger(__name__)

TUNE_FILE = "tune.json"
STUDY_FILE = "study.sqlite3"
TRIALS_DIR = "trials"
BEST_DIR = "best"
BEST_TRIAL_FILE = "trial.json"  # in DIR/best: which trial it is a copy of
# A running trial writes a heartbeat this often; one silent for GRACE_SECONDS is taken as dead and re-run.
HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 120
MAX_RETRY = 3  # times an interrupted trial is run again
_ATTRIBUTE = "roberta_ft"  # the study's user attribute holding what the study searches


def _import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError("tune needs Optuna, which is not installed", 'pip install "roberta-ft[tune]"') from None
    return optuna


@dataclass
class TuneResult:
    output_dir: Path
    document: dict[str, Any]  # what tune.json holds

    @property
    def trials(self) -> list[dict[str, Any]]:
        return self.document["trials"]

    @property
    def best(self) -> dict[str, Any] | None:
        return self.document["best"]

    def to_dict(self) -> dict[str, Any]:
        return self.document


@dataclass
class _Study:
    """One process's view of the study and the settings every trial of it starts from."""

    optuna: Any
    config: TuneConfig
    root: Path
    study: Any
    storage: Any
    retry: Any  # the callback that queues an interrupted trial again
    space: SearchSpace
    fixed: dict[str, Any]
    trial_base: TrainConfig
    metric: str
    greater_is_better: bool
    target: int
    progress: Callable[[], Any] | None
    current: int | None = None  # the number of the trial this process runs


def tune(config: TuneConfig, *, progress: Callable[[], Any] | None = None) -> TuneResult:
    """Run (or continue) the study in ``config.output`` until it holds ``config.trials`` finished trials.

    ``progress`` makes a fresh training progress display for each trial (e.g. ``RichProgress``); None logs.
    """
    from roberta_ft import problems
    from roberta_ft.best_epoch import BestEpochRule
    from roberta_ft.registry import get_task

    config.validate()
    optuna = _import_optuna()
    base = config.train.resolved()  # a bad setting fails before anything is written
    task = get_task(base.task)
    rule = BestEpochRule.for_training(task, problems.for_training(task, base), base)
    space = load_space(config.space, base)
    given = config.train.given()
    fixed = {name: given[name] for name in space.names if name in given}
    if fixed:
        logger.info("Fixed by the options, not searched: %s", ", ".join(f"{k} {v}" for k, v in fixed.items()))
        space = space.without(fixed)
    if not space.parameters:
        raise ConfigError(
            f"nothing left to search: the options fix every setting of space {space.name!r}",
            "drop some of those options, or pass another --space",
        )
    # Every trial holds out the same validation rows, even when the seed is searched: scores compare.
    trial_base = config.train.replace(split_seed=base.seed) if config.train.split_seed is None else config.train
    target = config.trials or space.grid_size or TUNE_TRIALS
    if space.grid_size is not None and target > space.grid_size:
        logger.info("The grid has %d points: the study ends after %d trials", space.grid_size, space.grid_size)
        target = space.grid_size
    root = _prepare_output(optuna, config)
    storage, retry = _open_storage(optuna, config, root)
    study = _open_study(optuna, config, storage, space, rule, _identity(trial_base, space, rule), base)
    run = _Study(
        optuna,
        config,
        root,
        study,
        storage,
        retry,
        space,
        fixed,
        trial_base,
        rule.metric,
        rule.greater_is_better,
        target,
        progress,
    )
    logger.info(
        "Study %r (%s %s, %s pruning): %s; %d trials",
        config.study_name,
        "maximize" if rule.greater_is_better else "minimize",
        rule.metric,
        config.pruner,
        "; ".join(p.describe() for p in space.parameters),
        target,
    )
    _write_document(run)
    deadline = time.monotonic() + config.timeout if config.timeout else None
    while True:
        _fail_dead_trials(run)
        counts = _counts(study)
        if counts["done"] + counts["running"] >= target:
            break
        if deadline is not None and time.monotonic() >= deadline:
            logger.info("--timeout reached: no new trial starts (%d of %d finished)", counts["done"], target)
            break
        try:
            with _quiet_optuna(optuna):
                study.optimize(lambda trial: _objective(run, trial), n_trials=1, catch=(_TrialFailed,))
        except KeyboardInterrupt:
            _queue_again(run, run.current, reason="interrupted (Ctrl-C)")
            _write_document(run)
            raise
        _after_trial(run)
    _update_best(run)
    document = _write_document(run)
    from roberta_ft import reports

    reports.write_study_pictures(root, study)
    _check_some_completed(run, document)
    return TuneResult(root, document)


# ---------------------------------------------------------------------------------------------- set-up


def _prepare_output(optuna, config: TuneConfig) -> Path:
    """The study's directory: created, cleared with --overwrite, else it must hold this study or nothing."""
    root = Path(config.output)
    if config.overwrite:
        artifacts.prepare_output_dir(root, overwrite=True)
        if config.storage is not None:
            with contextlib.suppress(KeyError), _quiet_optuna(optuna):
                optuna.delete_study(study_name=config.study_name, storage=config.storage)
                logger.info("--overwrite: deleted study %r from the storage", config.study_name)
        return root
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--output {root} exists and is a file", "pass a directory path")
    if root.is_dir() and any(root.iterdir()):
        document = _read_document(root)
        if document is None and not (root / STUDY_FILE).exists():
            raise ConfigError(
                f"--output {root} is not empty and holds no tune study",
                "pass --overwrite to replace it, or choose another --output",
            )
        if document is not None and _moved_elsewhere(document.get("storage"), config):
            raise ConfigError(
                f"--output {root} holds the trials of the study in {document.get('storage')}",
                "pass that --storage to continue it, --overwrite to start over, or another --output",
            )
        if document is not None and document.get("study") != config.study_name:
            raise ConfigError(
                f"--output {root} holds study {document.get('study')!r}, not {config.study_name!r}",
                f"pass --study-name {document.get('study')} to continue it, --overwrite to start over, or another --output",
            )
    root.mkdir(parents=True, exist_ok=True)
    return root


def _moved_elsewhere(saved: str | None, config: TuneConfig) -> bool:
    """Whether --storage now names another database than the one DIR's trials belong to."""
    if config.storage is None:  # the default: the SQLite file in DIR, wherever DIR has moved
        return saved is not None and not saved.endswith(f"/{STUDY_FILE}")
    return saved != shown_url(config.storage)


def _read_document(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / TUNE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def storage_url(config: TuneConfig) -> str:
    return config.storage or f"sqlite:///{(Path(config.output) / STUDY_FILE).resolve()}"


def shown_url(url: str) -> str:
    """The storage URL with its password hidden, for logs and tune.json."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def _open_storage(optuna, config: TuneConfig, root: Path):
    url = storage_url(config)
    # SQLite: a writer waits for the other process's write instead of failing with "database is locked".
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY, inherit_intermediate_values=True)
        try:
            storage = _rdb_storage(optuna, url, engine, retry)
        except ImportError as exc:
            raise ConfigError(
                f"--storage {shown_url(url)} needs a database driver: {exc}",
                "install it (PostgreSQL: pip install psycopg2-binary; MySQL: pip install pymysql)",
            ) from None
        except Exception as exc:
            raise ConfigError(
                f"cannot open --storage {shown_url(url)}: {str(exc).splitlines()[0]}",
                "check the URL, and that the database server is reachable",
            ) from None
    return storage, retry


def _rdb_storage(optuna, url: str, engine, retry, attempts: int = 5):
    """Optuna's RDBStorage; processes started together on a new database race to create its tables
    (one of them fails on the schema's version row): the loser tries again once they exist."""
    from sqlalchemy.exc import DBAPIError

    for attempt in range(1, attempts + 1):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=retry,
            )
        except DBAPIError:
            if attempt == attempts:
                raise
            time.sleep(0.5 * attempt)


def _identity(trial_base: TrainConfig, space: SearchSpace, rule) -> dict[str, Any]:
    """What a study was made with; a re-run must match it (paths, devices and such may differ)."""
    from roberta_ft.checkpoint import HARMLESS_SETTINGS

    settings = {
        key: value
        for key, value in sorted(trial_base.to_dict().items())
        if key not in HARMLESS_SETTINGS and value is not None and key not in space.names
    }
    # The data files' contents, not their paths (which may differ from machine to machine).
    files = {key: _file_sha256(getattr(trial_base, key)) for key in ("data", "validation")}
    value = {"settings": settings, "space": space.to_dict(), "metric": rule.metric, "data_files": files}
    return json.loads(json.dumps(value))


def _file_sha256(path: str | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None  # none given, or a task's dataset (its name is among the settings)
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_study(
    optuna, config: TuneConfig, storage, space: SearchSpace, rule, identity: dict[str, Any], base: TrainConfig
):
    if space.grid:
        sampler = optuna.samplers.GridSampler(
            {p.name: list(p.choices) for p in space.parameters}, seed=config.sampler_seed
        )
    else:
        startup = min(10, max(3, (config.trials or TUNE_TRIALS) // 3))  # random trials before TPE models them
        sampler = optuna.samplers.TPESampler(seed=config.sampler_seed, n_startup_trials=startup)
    if config.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    elif config.pruner == "successive-halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    else:
        pruner = optuna.pruners.NopPruner()
    # The default SQLite file holds one study: the trial directories are numbered by it.
    if config.storage is None:
        others = [name for name in optuna.get_all_study_names(storage) if name != config.study_name]
        if others:
            raise ConfigError(
                f"--output {config.output} holds study {others[0]!r}, not {config.study_name!r}",
                f"pass --study-name {others[0]} to continue it, --overwrite to start over, or another --output",
            )
    with _quiet_optuna(optuna):
        study = optuna.create_study(
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            study_name=config.study_name,
            direction="maximize" if rule.greater_is_better else "minimize",
            load_if_exists=True,
        )
    saved = study.user_attrs.get(_ATTRIBUTE)
    if saved is None:
        if study.get_trials(deepcopy=False):
            raise ConfigError(
                f"study {config.study_name!r} in {shown_url(storage_url(config))} was not made by roberta-ft tune",
                "pass another --study-name",
            )
        study.set_user_attr(_ATTRIBUTE, identity)
        if space.name == "wide":  # the space around the defaults starts at them
            _enqueue_defaults(study, space, base)
    elif saved != identity:
        raise ConfigError(
            f"study {config.study_name!r} was made with other settings ({_differences(saved, identity)})",
            "re-run with the study's settings, pass --overwrite to start a new study, or another --study-name",
        )
    return study


def _enqueue_defaults(study, space: SearchSpace, base: TrainConfig) -> None:
    """The wide space's first trial: the settings a plain `train` would use, so that the search never
    ends worse than not searching."""
    defaults = {}
    for parameter in space.parameters:
        value = getattr(base, parameter.name)
        if parameter.choices is not None:
            inside = value in parameter.choices
        else:
            inside = isinstance(value, (int, float)) and parameter.low <= value <= parameter.high
            inside = inside and (parameter.kind != "int" or isinstance(value, int))
            inside = inside and not (parameter.step and (value - parameter.low) % parameter.step)
        if inside:
            defaults[parameter.name] = value
    if defaults:
        study.enqueue_trial(defaults, user_attrs={"defaults": True})


def _differences(then: dict[str, Any], now: dict[str, Any]) -> str:
    changed = []
    for part in ("metric", "space"):
        if then.get(part) != now.get(part):
            changed.append(f"{part} was {json.dumps(then.get(part))}, now {json.dumps(now.get(part))}")
    for key, digest in (now.get("data_files") or {}).items():
        if (then.get("data_files") or {}).get(key) != digest:
            changed.append(f"the --{key} file's contents differ" if key == "validation" else "the data differ")
    old, new = then.get("settings", {}), now.get("settings", {})
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            changed.append(f"--{key.replace('_', '-')} was {old.get(key)!r}, now {new.get(key)!r}")
    return "; ".join(changed[:3]) + (f"; and {len(changed) - 3} more" if len(changed) > 3 else "")


@contextlib.contextmanager
def _quiet_optuna(optuna):
    """Optuna's own log lines (trial finished, failed with a traceback) would repeat ours."""
    previous = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(previous)


# ---------------------------------------------------------------------------------------------- one trial


class _TrialFailed(Exception):
    """A trial that failed for a reason the user can read (recorded in its user attributes): the study goes on."""


class _TrialReporter:
    """The trial's training progress: every epoch's metric goes to the trial, and the pruner may stop it."""

    def __init__(self, trial, metric: str, inner) -> None:
        from roberta_ft.loop import LogProgress

        self.trial = trial
        self.metric = metric
        self.inner = inner or LogProgress()
        self.epochs = 0
        self.total_epochs = 0

    def start(self, total_steps: int, epochs: int) -> None:
        self.total_epochs = epochs
        self.inner.start(total_steps, epochs)

    def step(self, step, epoch, loss, learning_rate, samples_per_second) -> None:
        self.inner.step(step, epoch, loss, learning_rate, samples_per_second)

    def epoch_end(self, epoch: int, metrics: dict[str, float], best: bool) -> None:
        self.inner.epoch_end(epoch, metrics, best)
        self.epochs = epoch
        value = float(metrics[self.metric])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an epoch a resumed trial reports again is ignored, with a warning
            self.trial.report(value, step=epoch)
        # After the last epoch, stopping would save nothing and lose a complete result.
        if epoch < self.total_epochs and self.trial.should_prune():
            raise RunStopped(f"pruned at epoch {epoch} ({self.metric} {value:.4f})", status="pruned")

    def stop(self) -> None:
        self.inner.stop()


def _suggest(trial, parameter: Parameter):
    if parameter.choices is not None:
        return trial.suggest_categorical(parameter.name, list(parameter.choices))
    if parameter.kind == "int":
        step = int(parameter.step or 1)
        return trial.suggest_int(parameter.name, int(parameter.low), int(parameter.high), step=step, log=parameter.log)
    return trial.suggest_float(parameter.name, parameter.low, parameter.high, step=parameter.step, log=parameter.log)


def trial_dir(root: Path, number: int) -> Path:
    return root / TRIALS_DIR / f"{number:03d}"


def _objective(run: _Study, trial) -> float:
    from roberta_ft.checkpoint import checkpoints_dir, latest
    from roberta_ft.loop import OutOfMemoryError
    from roberta_ft.train import train

    run.current = trial.number
    params = {parameter.name: _suggest(trial, parameter) for parameter in run.space.parameters}
    output = trial_dir(run.root, trial.number)
    # A trial queued again after its process was killed carries the earlier attempt's attributes:
    # its directory moves here and the run resumes from its last checkpoint.
    earlier = trial.user_attrs.get("output_dir")
    resume = False
    if earlier and Path(earlier) != output and Path(earlier).is_dir():
        output.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(output, ignore_errors=True)
        os.replace(earlier, output)
        resume = latest(output) is not None
        logger.info("Trial %d continues trial %s%s", trial.number, Path(earlier).name, " from its checkpoint" * resume)
        trial.set_user_attr("continues", int(Path(earlier).name))
    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
    trial.set_user_attr("output_dir", str(output.resolve()))
    trial.set_user_attr("reason", None)
    trial.set_user_attr("outcome", None)
    done = _counts(run.study)["done"]
    shown = ", ".join(f"{k} {_shown(v)}" for k, v in params.items())
    logger.info("Trial %d (%d of %d): %s -> %s", trial.number, done + 1, run.target, shown, output)
    settings = run.trial_base.replace(**params, output=str(output), overwrite=not resume, resume=resume)
    reporter = _TrialReporter(trial, run.metric, run.progress() if run.progress else None)
    interrupted = False
    try:
        result = train(settings, progress=reporter)
    except RunStopped as stop:
        logger.info("Trial %d %s", trial.number, stop.one_line())
        raise run.optuna.TrialPruned(stop.one_line()) from None
    except RobertaFtError as error:
        _failed(trial, error.one_line())
    except (MemoryError, OutOfMemoryError):
        _failed(trial, f"out of memory with {shown}")
    except KeyboardInterrupt:
        interrupted = True
        trial.set_user_attr("reason", "interrupted (Ctrl-C)")
        raise
    finally:
        if not interrupted:  # an ended trial is never resumed: its checkpoints only take room
            shutil.rmtree(checkpoints_dir(output), ignore_errors=True)
    best = result.metrics["best"]
    if run.metric not in best:  # few-shot training holds no validation rows out
        _failed(trial, f"no validation rows scored the trial ({run.metric}): pass --validation or --method fine-tune")
    value = float(best[run.metric])
    trial.set_user_attr("train_seconds", result.metrics["train_seconds"])
    trial.set_user_attr("best_epoch", best["epoch"])
    if not math.isfinite(value):
        _failed(trial, f"the best epoch's {run.metric} is {value}")
    logger.info("Trial %d complete: %s %.4f (best epoch %d)", trial.number, run.metric, value, best["epoch"])
    return value


def _failed(trial, reason: str) -> None:
    logger.warning("Trial %d failed: %s", trial.number, reason)
    trial.set_user_attr("reason", reason)
    trial.set_user_attr("outcome", "failed")
    raise _TrialFailed(reason)


def _shown(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------------------------------- bookkeeping


def _counts(study) -> dict[str, int]:
    """Trials finished (complete, pruned, or failed for a reason of their own), running and waiting."""
    from optuna.trial import TrialState

    counts = {"complete": 0, "pruned": 0, "failed": 0, "interrupted": 0, "running": 0, "waiting": 0}
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.COMPLETE:
            counts["complete"] += 1
        elif trial.state == TrialState.PRUNED:
            counts["pruned"] += 1
        elif trial.state == TrialState.FAIL:
            counts["failed" if trial.user_attrs.get("outcome") == "failed" else "interrupted"] += 1
        elif trial.state == TrialState.RUNNING:
            counts["running"] += 1
        elif trial.state == TrialState.WAITING:
            counts["waiting"] += 1
    counts["done"] = counts["complete"] + counts["pruned"] + counts["failed"]
    return counts


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _fail_dead_trials(run: _Study) -> None:
    """Running trials whose process is gone: failed and queued again (by the storage's retry callback).

    A process on another machine is noticed by its missing heartbeat, GRACE_SECONDS after the last
    one; a process on this machine at once, by its process id.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", run.optuna.exceptions.ExperimentalWarning)
        run.optuna.storages.fail_stale_trials(run.study)  # silent for GRACE_SECONDS, wherever they ran
    host = socket.gethostname()
    for trial in run.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker") or {}
        pid = worker.get("pid")
        if worker.get("host") != host or not isinstance(pid, int) or pid == os.getpid() or _alive(pid):
            continue
        try:
            run.storage.set_trial_user_attr(trial._trial_id, "reason", f"interrupted: its process (pid {pid}) ended")
            if not run.storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another process got there first
        logger.info("Trial %d was interrupted (its process, pid %d, ended): it runs again", trial.number, pid)
        _call_retry(run, run.storage.get_trial(trial._trial_id))


def _queue_again(run: _Study, number: int | None, *, reason: str) -> None:
    """The trial this process was running when interrupted: queued again, to be resumed by the next run."""
    if number is None:
        return
    for trial in run.study.get_trials(deepcopy=False):
        if trial.number == number and trial.state.is_finished() and trial.user_attrs.get("reason") == reason:
            _call_retry(run, trial)


def _call_retry(run: _Study, trial) -> None:
    trial = copy.deepcopy(trial)
    trial.user_attrs.pop("reason", None)  # the copy starts afresh; the interrupted trial keeps its reason
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", run.optuna.exceptions.ExperimentalWarning)
        run.retry(run.study, trial)


def _after_trial(run: _Study) -> None:
    _update_best(run)
    _write_document(run)
    run.current = None


def _update_best(run: _Study) -> Path | None:
    """DIR/best: a copy of the best complete trial's model dir (when that trial ran into this directory)."""
    try:
        best = run.study.best_trial
    except ValueError:
        return None  # no complete trial yet
    target = run.root / BEST_DIR
    marker = target / BEST_TRIAL_FILE
    with contextlib.suppress(OSError, ValueError):
        if json.loads(marker.read_text(encoding="utf-8")).get("number") == best.number:
            return target
    source = trial_dir(run.root, best.number)
    if not (source / "config.json").exists():
        source = Path(best.user_attrs.get("output_dir") or source)
    if not (source / "config.json").exists():
        worker = best.user_attrs.get("worker") or {}
        logger.info("The best trial, %d, ran on %s: its model is in %s there", best.number, worker.get("host"), source)
        return None
    from roberta_ft.checkpoint import CHECKPOINTS

    with _lock(run.root / ".best.lock"):
        scratch = Path(tempfile.mkdtemp(prefix=".best-", dir=run.root))
        try:
            shutil.copytree(source, scratch, dirs_exist_ok=True, ignore=shutil.ignore_patterns(CHECKPOINTS, ".*"))
            artifacts.write_json(scratch / BEST_TRIAL_FILE, _trial_record(best, run.metric))
            old = None
            if target.exists():
                old = run.root / f".best-old-{os.getpid()}"
                os.replace(target, old)
            os.chmod(scratch, artifacts.plain_mode(directory=True))  # mkdtemp's 0o700, as mkdir would make it
            os.replace(scratch, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    logger.info("Best so far: trial %d (%s %.4f) -> %s", best.number, run.metric, best.value, target)
    return target


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock between the processes sharing one output directory (where the OS has flock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting"}


def _trial_record(trial, metric: str) -> dict[str, Any]:
    attrs = trial.user_attrs
    state = _STATES.get(trial.state.name, trial.state.name.lower())
    reason = attrs.get("reason")
    if state == "failed" and attrs.get("outcome") != "failed":  # its process ended: queued again
        state = "interrupted"
        reason = reason or "interrupted (its process stopped sending heartbeats)"
    if state == "pruned":
        last = max(trial.intermediate_values, default=None)
        reason = f"pruned at epoch {last}" if last is not None else "pruned"
    seconds = trial.duration.total_seconds() if trial.duration is not None else None
    return {
        "number": trial.number,
        "state": state,
        "params": dict(trial.params),
        "value": trial.value,
        "metric": metric,
        "epochs": len(trial.intermediate_values),
        "seconds": seconds,
        "train_seconds": attrs.get("train_seconds"),
        "best_epoch": attrs.get("best_epoch"),
        "reason": reason,
        "continues": attrs.get("continues"),
        "output_dir": attrs.get("output_dir"),
        "worker": attrs.get("worker"),
        "intermediate": {str(step): value for step, value in sorted(trial.intermediate_values.items())},
    }


def _document(run: _Study) -> dict[str, Any]:
    trials = [_trial_record(trial, run.metric) for trial in run.study.get_trials(deepcopy=False)]
    continued = {record["continues"]: record["number"] for record in trials if record["continues"] is not None}
    for record in trials:
        if record["number"] in continued:
            record["reason"] = f"{record['reason']}; continued as trial {continued[record['number']]}"
    counts = _counts(run.study)
    try:
        best = _trial_record(run.study.best_trial, run.metric)
    except ValueError:
        best = None
    best_dir = run.root / BEST_DIR
    return {
        "study": run.config.study_name,
        "storage": shown_url(storage_url(run.config)),
        "output_dir": str(run.root),
        "status": "complete" if counts["done"] >= run.target else "running",
        "metric": run.metric,
        "direction": "maximize" if run.greater_is_better else "minimize",
        "space": run.space.to_dict(),
        "fixed": run.fixed,
        "pruner": run.config.pruner,
        "target_trials": run.target,
        "counts": counts,
        "best": best,
        "best_model_dir": str(best_dir) if (best_dir / BEST_TRIAL_FILE).exists() else None,
        "epochs_run": sum(record["epochs"] for record in trials),
        "trials": trials,
    }


def _write_document(run: _Study) -> dict[str, Any]:
    document = _document(run)
    artifacts.write_json(run.root / TUNE_FILE, document)
    return document


def _check_some_completed(run: _Study, document: dict[str, Any]) -> None:
    counts = document["counts"]
    if counts["complete"]:
        return
    where = f"see {run.root / TUNE_FILE}"
    if counts["failed"]:
        first = next(t["reason"] for t in document["trials"] if t["state"] == "failed" and t["reason"])
        raise TrainingError(
            f"every trial of study {run.config.study_name!r} failed ({counts['failed']} failed, "
            f"{counts['pruned']} pruned); the first: {first}",
            f"{where}; fix the settings, then re-run with --overwrite",
        )
    if counts["pruned"]:
        raise TrainingError(
            f"every trial of study {run.config.study_name!r} was pruned", f"{where}; pass --pruner none"
        )
    raise TrainingError(
        f"no trial of study {run.config.study_name!r} finished", f"{where}; give a longer --timeout, or more --trials"
    )
