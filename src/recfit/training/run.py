"""One training run, end to end: data -> model -> Lightning fit -> best checkpoint -> test -> run folder."""

from __future__ import annotations

import logging
import math
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import EarlyStopping
from omegaconf import DictConfig

from recfit.config.launch import reexecutes_command_line
from recfit.config.multitask import fixed_weights, monitor_key
from recfit.config.record import run_identity
from recfit.config.schema import Modality, ModelName
from recfit.data.configured import data_source, loading
from recfit.data.datamodule import BatchInputs, BatchPlan, RecDataModule
from recfit.data.encode import ImageContent, TextContent
from recfit.data.tables import ITEM, RecData
from recfit.data.token_cache import cached_token_ids
from recfit.errors import DataError
from recfit.models.backbone import Backbone, load_backbone
from recfit.models.declarations import declaration
from recfit.models.frozen_prefix import attach_prefix_cache, frozen_prefix_layers
from recfit.models.popularity import Popularity
from recfit.models.tokenizers import load_preprocessor
from recfit.run_folder import (
    METRICS_FILE,
    PER_USER_FILE,
    RUN_INFO_FILE,
    DiskFullError,
    RunResult,
    Status,
    clean_metrics,
    describe,
    new_record,
    now_iso,
    release_space,
    reserve_space,
    write_json_atomic,
)
from recfit.tasks.registry import make_task, tasks_of_run
from recfit.training import checkpoint_policy, console, curves, run_info
from recfit.training.atomic_writes import use_atomic_checkpoints
from recfit.training.checkpoint_state import load_state_dict, stored_validation_metrics
from recfit.training.class_weights import class_weights
from recfit.training.domains import DomainLayout
from recfit.training.init_from import starting_weights
from recfit.training.interrupts import Interrupted, StopSignals
from recfit.training.item_vector_cache import CACHE_SUBDIR, load_or_compute
from recfit.training.loggers import build_loggers, close_loggers, log_config
from recfit.training.module import RecModule
from recfit.training.multitask import MultiTaskObjective
from recfit.training.per_user import PerUserWriter
from recfit.training.rng_state import RNGStateCallback
from recfit.training.targets import targets_of
from recfit.training.throughput import TrainThroughput

log = logging.getLogger(__name__)

PREFIX_CACHE_MODELS = (ModelName.two_tower, ModelName.cross_encoder)  # models with a `prefix_cache`


def item_and_user_content(
    data: RecData, modality: Modality, preprocessor: Any, max_length: int, data_dir: str, user_text: bool
) -> tuple[Any, TextContent | None]:
    """Item content (text or images, encoded once) and, with `user_text` (cross-encoders), user text."""
    if modality == Modality.none:
        return None, None
    if modality == Modality.image:
        if data.item_images is None:
            raise DataError(f"data set '{data.name}' has no item images for the image backbone")
        return ImageContent(data.item_images, preprocessor), None
    if data.item_text is None:
        raise DataError(f"data set '{data.name}' has no item text for the text backbone")
    items = TextContent(
        data.item_text,
        preprocessor,
        max_length,
        cached_token_ids(data.item_text, preprocessor, max_length, data_dir),
    )
    users = None
    if user_text and data.user_text is not None:
        ids = cached_token_ids(data.user_text, preprocessor, max_length, data_dir)
        users = TextContent(data.user_text, preprocessor, max_length, ids)
    return items, users


def _item_log_frequency(counts: np.ndarray) -> torch.Tensor:
    """log of each item's share of training interactions (unseen items count as seen once)."""
    counts = counts.clip(min=1)
    return torch.as_tensor(np.log(counts / counts.sum()), dtype=torch.float32)


@dataclass
class Built:
    """What `build` hands to the Trainer, plus what the run record reports about the data."""

    module: RecModule
    datamodule: RecDataModule
    data: RecData
    protocol: str
    lineage: dict[str, Any] | None = None  # init_from: the parent run and the parts taken from it
    item_vector_cache: str | None = None  # hit | miss | recomputed | disabled; None: no frozen item tower


def _frozen_item_states(cfg: DictConfig, backbone: Backbone | None) -> str | None:
    """What the model keeps of its items' frozen backbone output: "vectors" (a fully frozen two-tower
    encodes every item once), "layers" (the first N frozen layers run once per item), or None."""
    if backbone is None:
        return None
    if cfg.model.name == ModelName.two_tower and backbone.fully_frozen:
        return "vectors"
    if cfg.model.name in PREFIX_CACHE_MODELS and frozen_prefix_layers(backbone, cfg.backbone.freeze) > 0:
        return "layers"
    return None


def batch_plan(cfg: DictConfig, preprocessor: Any, frozen_item_states: str | None) -> BatchPlan:
    """What a run's task, loss, model and backbone ask of each batch."""
    primary = make_task(cfg.task.name, cfg.task, cfg.loss.name)
    return BatchPlan(
        inputs=BatchInputs(declaration(cfg.model.name).inputs),
        # several tasks: [rows, tasks] targets, in the order of `tasks`
        targets=partial(targets_of, tasks=tasks_of_run(cfg)),
        content=partial(
            item_and_user_content,
            modality=cfg.backbone.modality,
            preprocessor=preprocessor,
            max_length=cfg.backbone.max_length,
            data_dir=cfg.paths.data_dir,
            user_text=cfg.model.name == ModelName.cross_encoder,
        ),
        ranking=primary.ranks_catalogue,
        negatives=primary.needs_negatives,
        candidates=cfg.task.candidates,
        cached_item_states=frozen_item_states is not None,
        sequences=primary.sequence_plan(cfg),
    )


def build(cfg: DictConfig, checkpoint: str | Path | None = None) -> Built:
    """Everything a Trainer needs, from a validated config: the parts constructed, then wired.

    `checkpoint`: a checkpoint of this run that will be loaded (evaluation); its frozen weights are put
    in place before the frozen caches are filled from them (see `init_from.starting_weights`).
    """
    backbone = load_backbone(cfg.backbone)
    frozen_item_states = _frozen_item_states(cfg, backbone)
    datamodule = RecDataModule(
        data_source(cfg), loading(cfg), batch_plan(cfg, load_preprocessor(cfg.backbone), frozen_item_states)
    )
    datamodule.setup()  # the model's sizes, offsets and caches come from the data
    data, splits, targets = datamodule.data, datamodule.splits, datamodule.targets
    primary = make_task(cfg.task.name, cfg.task, cfg.loss.name)  # chooses the model (multi-task: `task`)
    candidates = primary.protocol(cfg, data.num_items, data.domain_names)
    protocol = f"{datamodule.filtered}; {splits.protocol}; {candidates}"
    log.info("protocol: %s; sizes %s", protocol, splits.sizes())
    tasks = tasks_of_run(cfg)
    num_outputs = primary.num_outputs(data)
    recommender = instantiate(
        cfg.model,
        backbone=backbone,
        num_users=data.num_users,
        num_items=data.num_items,
        num_outputs=num_outputs,
        **primary.recommender_options(),
        user_features=data.user_features,
        item_features=data.item_features,
        num_tasks=len(tasks),
    )
    if len(tasks) == 1:
        recommender.set_output_offset(primary.output_offset(targets["train"]))
    else:
        recommender.set_output_offset([t.output_offset(targets["train"][:, i]) for i, t in enumerate(tasks)])
    lineage = starting_weights(cfg, recommender, primary.name, str(checkpoint) if checkpoint else None)
    if isinstance(recommender, Popularity):
        recommender.fit_counts(torch.as_tensor(splits.train[ITEM].to_numpy()))

    vector_cache = None
    item_batches = partial(datamodule.item_batches, cfg.dataset.eval_batch_size, content=True)
    if frozen_item_states == "vectors":
        log.info("backbone fully frozen: encoding %d items once", data.num_items)
        cache_dir = Path(cfg.paths.data_dir) / CACHE_SUBDIR if cfg.backbone.cache_vectors else None
        vector_cache = load_or_compute(recommender, item_batches, cache_dir, data.num_items)
    elif frozen_item_states == "layers" and attach_prefix_cache(
        recommender, cfg.backbone.freeze, datamodule.user_content is None
    ):
        log.info("first %s backbone layers frozen: running them once per item", cfg.backbone.freeze)
        recommender.prefix_cache.fill(item_batches())
    module = RecModule(
        recommender,
        task=cfg.task,
        loss=cfg.loss,
        optimizer=cfg.optimizer,
        scheduler=cfg.scheduler,
        num_items=data.num_items,
        num_classes=num_outputs,
        catalogue=datamodule,
        catalogue_batch_size=cfg.dataset.eval_batch_size,
        item_log_frequency=_item_log_frequency(datamodule.training_item_counts()),
        # per epoch: resampling changes an epoch's length, and the learning-rate schedule with it
        train_batches=math.ceil(datamodule.train_epoch_rows() / cfg.dataset.batch_size),
        class_weights=class_weights(
            cfg.dataset.class_weights, targets["train"], max(num_outputs, 2), data.label_names
        ),
        domains=DomainLayout.of(data),
        multitask=MultiTaskObjective([t.name for t in tasks], cfg.task_weighting, fixed_weights(cfg))
        if len(tasks) > 1
        else None,
    )
    return Built(module, datamodule, data, protocol, lineage=lineage, item_vector_cache=vector_cache)


RUN_INFO_FROM_RECORD = ("data", "data_sha256", "skipped_rows", "init_from")  # copied into run_info.json


def _check_checkpoint(path: str, module: RecModule) -> None:
    """Refuse, in one line, a checkpoint that cannot be read safely or does not fit this model."""
    saved = load_state_dict(path, module)
    expected = {k: v.shape for k, v in module.state_dict().items() if k in dict(module.named_parameters())}
    for name, shape in expected.items():
        if name not in saved or saved[name].shape != shape:
            found = "missing" if name not in saved else tuple(saved[name].shape)
            raise DataError(
                f"checkpoint {path} does not fit this model: {name} is {found}, needs {tuple(shape)}"
            )


def _fit_and_test(
    cfg: DictConfig, run_dir: Path, record: dict[str, Any], stops: StopSignals
) -> dict[str, float | None]:
    quiet = console.is_quiet(cfg)
    console.route_console()
    console.show_config(cfg, run_dir, quiet)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    built = build(cfg)
    module, datamodule = built.module, built.datamodule
    record["data"] = built.data.summary()
    record["data_sha256"] = run_info.data_fingerprint(built.data)
    record["skipped_rows"] = built.data.skipped_rows
    record["protocol"] = built.protocol
    record["init_from"] = built.lineage
    record["item_vector_cache"] = built.item_vector_cache
    record["parameters"] = {
        "total": sum(p.numel() for p in module.parameters()),
        "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    monitor = monitor_key(cfg)
    # `checkpoint` stays first: with ddp_spawn, Lightning hands the first one's best path back to this process
    checkpoint, checkpoint_callbacks = checkpoint_policy.checkpoint_callbacks(cfg, run_dir, monitor)
    checkpoint_policy.attach_frozen_policy(module, cfg, built.lineage)
    per_user = PerUserWriter(run_dir / PER_USER_FILE)
    throughput = TrainThroughput()
    callbacks: list[pl.Callback] = [*checkpoint_callbacks, RNGStateCallback(), per_user, throughput, stops]
    if cfg.early_stopping_patience > 0:
        callbacks.append(
            EarlyStopping(monitor=monitor, mode=cfg.task.mode.value, patience=cfg.early_stopping_patience)
        )
    display_callbacks, display = console.trainer_display(cfg, quiet)
    if cfg.ckpt_path and trainer_is_first():
        curves.set_aside(run_dir)  # before the logger starts: it must write a metrics.csv of its own
    loggers = build_loggers(cfg, run_dir)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks + display_callbacks,
        logger=loggers,
        default_root_dir=str(run_dir),
        **display,
        **_auto_strategy(cfg),
    )
    use_atomic_checkpoints(trainer)  # a checkpoint that fails to write leaves the previous one whole
    log_config(loggers, cfg, run_dir)
    if record["parameters"]["trainable"]:
        if cfg.ckpt_path:
            _check_checkpoint(cfg.ckpt_path, module)  # also checks the frozen weights it refers to
        if cfg.ckpt_path:
            log.info("resuming from %s", cfg.ckpt_path)
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
        stops.raise_if_received()
        record["train_throughput"] = TrainThroughput.summary(trainer)
    else:
        log.info("nothing to train (e.g. the popularity baseline): evaluating directly")
    # ddp_spawn: each validate/test starts new workers whose logger copy rewrites metrics.csv afresh; the
    # training curves wait beside it, as a resumed run's do, and are joined back when the run ends
    if getattr(trainer.strategy, "_start_method", None) == "spawn" and trainer.is_global_zero:
        curves.set_aside(run_dir)
    best = checkpoint.best_model_path or None
    record["best_checkpoint"] = best
    metrics: dict[str, Any] = {}
    # the best checkpoint carries the validation metrics logged when it was written: no second pass
    stored = stored_validation_metrics(best) if best else None
    if stored is not None:
        metrics.update(stored)
    else:  # nothing trained (popularity), or a resume from a checkpoint written without them
        for result in trainer.validate(
            module, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False
        ):
            metrics.update(result)
        stops.raise_if_received()
    if cfg.test:
        for result in trainer.test(
            module, datamodule=datamodule, ckpt_path=best, weights_only=True, verbose=False
        ):
            metrics.update(result)
        stops.raise_if_received()
    if module.multitask is not None:  # the best checkpoint's weights (learned, for uncertainty weighting)
        record["task_weights"] = module.multitask.final_weights()
    close_loggers(loggers)
    return clean_metrics(metrics)


# What `trainer.strategy=auto` means on several devices: Lightning's own choice there is plain `ddp`,
# which stops at the first step that leaves a parameter without a gradient (a text backbone's pooler);
# recfit's ddp configs (trainer=ddp, ddp_cpu) allow them, and so does auto
AUTO_ON_SEVERAL_DEVICES = "ddp_find_unused_parameters_true"


def _auto_strategy(cfg: DictConfig) -> dict[str, str]:
    """{"strategy": ...} for `auto` given several devices or nodes; {} otherwise (Lightning decides)."""
    if str(cfg.trainer.strategy) == "auto" and reexecutes_command_line(cfg):
        log.info("trainer.strategy=auto on several devices: %s", AUTO_ON_SEVERAL_DEVICES)
        return {"strategy": AUTO_ON_SEVERAL_DEVICES}
    return {}


def trainer_is_first() -> bool:
    """Rank 0, the process that writes the run folder (ranks 1..N-1 train alongside, writing nothing)."""
    return rank_zero_only.rank == 0


def train(cfg: DictConfig, run_dir: Path) -> RunResult:
    """Run one training job into `run_dir`; metrics.json and run_info.json say how it ended, always."""
    started = time.time()
    record = new_record(run_dir, run_identity(cfg))
    info = run_info.collect(cfg)
    path = run_dir / METRICS_FILE
    # DDP ranks 1..N-1 started as whole commands (ddp, torchrun, SLURM) train alongside but write nothing
    owner = trainer_is_first()
    stops = StopSignals()  # SIGTERM / Ctrl-C in any phase: recorded as interrupted, resumable exactly
    stops.install()
    try:
        if owner:
            reserve_space(run_dir)  # so that a full disk still lets the run record how it ended
            write_json_atomic(path, record)
        record["metrics"] = _fit_and_test(cfg, run_dir, record, stops)
        record["status"] = Status.completed
    except (KeyboardInterrupt, SystemExit) as stop:  # Lightning stops gracefully on Ctrl-C and SIGTERM
        record["status"] = Status.interrupted
        if isinstance(stop, SystemExit) and not stop.code:  # Lightning's stop: exit as the signal would
            raise Interrupted(stops.received or signal.SIGTERM) from None
        raise
    except Exception as error:
        record.update(status=Status.failed, error=describe(error))
        raise
    finally:
        try:
            with stops.held():  # the records are written whole; a signal now waits until they are
                record["finished_at"] = now_iso()
                record["duration_s"] = round(time.time() - started, 3)
                if owner:
                    _end_records(run_dir, record, info)
                    if record["status"] == Status.completed:  # only now: until then last.ckpt can resume
                        checkpoint_policy.retain_checkpoints(run_dir, cfg.checkpoint.keep)
        finally:
            stops.uninstall()
    return RunResult(record["status"], record["metrics"], run_dir, record)


def _end_records(run_dir: Path, record: dict[str, Any], info: dict[str, Any]) -> None:
    """Join the curves and write how the run ended. A full disk while joining fails the run (the
    curves stay where they were, whole) but its record is still written: the reserved space is freed
    for it first."""
    try:
        curves.join(run_dir)
    except DiskFullError as error:
        if record["status"] != Status.failed:
            record.update(status=Status.failed, error=describe(error))
        release_space(run_dir)
        _write_outcome(run_dir, record, info)
        raise
    release_space(run_dir)
    _write_outcome(run_dir, record, info)


def _write_outcome(run_dir: Path, record: dict[str, Any], info: dict[str, Any]) -> None:
    """metrics.json and run_info.json of a run that has ended, however it ended."""
    write_json_atomic(run_dir / METRICS_FILE, record)
    outcome = {key: record.get(key) for key in ("status", "started_at", "finished_at", "duration_s")}
    write_json_atomic(
        run_dir / RUN_INFO_FILE,
        {**info, **{key: record.get(key) for key in RUN_INFO_FROM_RECORD}, **outcome},
    )
