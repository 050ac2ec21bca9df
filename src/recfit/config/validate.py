"""Cross-field checks on a composed config, before any data or model loads.

The schemas catch unknown keys and wrong types; this module catches combinations that are each
valid alone but not together (a loss that does not fit the task, a metric the task never computes,
a data path that does not exist). Every failure is one ConfigError line.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from recfit.config.balance import check_balance
from recfit.config.domains import check_domains
from recfit.config.limits import check_limits
from recfit.config.multitask import check_multitask
from recfit.config.parent_run import find_parent
from recfit.config.places import check_places
from recfit.config.schema import AdapterName, Modality, TextCsvDatasetConfig, UserEncoderName
from recfit.config.targets import check_targets
from recfit.errors import ConfigError
from recfit.models.declarations import MODELS, declaration
from recfit.tasks.registry import make_task, task_class, task_names

FREEZE_WORDS = ("none", "all", "embeddings")

# The optional loggers and the package each needs (`pip install "recfit[loggers]"` brings all three).
LOGGER_PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) if the config cannot make a sensible run."""
    check_targets(cfg)  # first: it resolves every interpolation, and refuses code recfit does not allow
    _check_task_names(cfg)
    _check_required(cfg)
    check_places(cfg)
    check_limits(cfg)
    task, loss, model = cfg.task.name, cfg.loss.name, cfg.model.name
    modality = cfg.backbone.modality

    spec = make_task(task, cfg.task, loss)
    if loss not in spec.losses:
        allowed = " or ".join(option.value for option in spec.losses)
        raise ConfigError(f"loss '{loss.value}' does not fit task '{spec.name}' (use loss={allowed})")
    declared = declaration(model)
    if spec.shape not in declared.shapes:
        allowed = ", ".join(name for name in task_names() if task_class(name).shape in declared.shapes)
        raise ConfigError(f"model '{model.value}' cannot do task '{spec.name}' (it does: {allowed})")
    if modality not in declared.modalities:
        wanted = declared.modalities
        hint = "backbone=none" if wanted == ("none",) else f"a {' or '.join(wanted)} backbone"
        raise ConfigError(f"model '{model.value}' needs {hint}, but backbone modality is '{modality.value}'")

    _check_user_encoder(cfg, spec.name, spec.reads_histories, declared.user_encoders)

    is_text_csv = OmegaConf.get_type(cfg.dataset) is TextCsvDatasetConfig
    if spec.labelled_text != is_text_csv:
        text_tasks = [name for name in task_names() if task_class(name).labelled_text]
        raise ConfigError(
            f"task '{text_tasks[0]}' needs a labelled text data set (dataset=text_csv), "
            f"and dataset=text_csv only supports task={text_tasks[0]}"
        )

    known = spec.metric_names()
    if cfg.task.metric not in known:
        raise ConfigError(
            f"task.metric '{cfg.task.metric}' is not reported for task '{spec.name}' "
            f"with loss '{loss.value}' (choose from: {', '.join(known)})"
        )
    if not re.fullmatch(r"full|(uni|pop)[1-9]\d*", cfg.task.candidates):
        raise ConfigError(f"task.candidates '{cfg.task.candidates}' must be full, uniN or popN (e.g. uni100)")
    _check_freeze(cfg.backbone.freeze)
    check_multitask(cfg)
    check_balance(cfg)
    _check_adapter(cfg.backbone)
    _check_numbers(cfg)
    _check_paths(cfg)
    check_domains(cfg)
    _check_logger_packages(cfg)
    if cfg.get("init_from") is not None and cfg.init_from.path is not None and not cfg.get("ckpt_path"):
        find_parent(cfg.init_from.path)  # a resumed child's checkpoints hold what it took: no parent needed


def _check_user_encoder(cfg: DictConfig, task: str, task_has_histories: bool, model_can: bool) -> None:
    """`model.user_encoder`: a positive history length, and an encoder other than `id` only where users
    have histories (a next-item task) and the model has a user tower to put it in."""
    encoder = cfg.model.get("user_encoder")
    if encoder is None:
        return
    if encoder.max_history < 1:
        raise ConfigError(
            f"model.user_encoder.max_history must be a positive number of items (got {encoder.max_history})"
        )
    name = encoder.name
    if name == UserEncoderName.id:
        return
    if not task_has_histories:
        readers = [other for other in task_names() if task_class(other).reads_histories]
        raise ConfigError(
            f"model.user_encoder.name={name.value} encodes users from their item histories, which task "
            f"'{task}' does not have (use task={' or '.join(readers)}, or model.user_encoder.name=id)"
        )
    if not model_can:
        able = [model for model, declared in MODELS.items() if declared.user_encoders]
        raise ConfigError(
            f"model '{cfg.model.name.value}' has no user tower for model.user_encoder.name={name.value} "
            f"(use model={' or '.join(able)})"
        )
    if encoder.num_layers is not None and encoder.num_layers < 1:
        raise ConfigError(f"model.user_encoder.num_layers must be at least 1 (got {encoder.num_layers})")
    for key in ("dropout", "attention_dropout"):
        value = encoder[key]
        if value is not None and not 0 <= value < 1:
            raise ConfigError(f"model.user_encoder.{key} must be in [0, 1) (got {value})")
    if name == UserEncoderName.transformer:
        heads, dim = encoder.num_heads, cfg.model.embedding_dim
        if heads < 1 or dim % heads:
            raise ConfigError(
                f"model.user_encoder.num_heads={heads} must divide model.embedding_dim={dim} "
                "(each attention head takes an equal share of the item vector)"
            )
        if encoder.inner_size < 1:
            raise ConfigError(f"model.user_encoder.inner_size must be at least 1 (got {encoder.inner_size})")


def _check_task_names(cfg: DictConfig) -> None:
    """`task.name` and `tasks` name registered tasks (recfit.tasks), refused as a wrong enum value is."""
    known = task_names()
    expected = f"expected one of [{', '.join(known)}]"
    if not OmegaConf.is_missing(cfg.task, "name") and cfg.task.name not in known:
        raise ConfigError(f"task.name: Invalid value '{cfg.task.name}', {expected}")
    for index, name in enumerate(cfg.get("tasks") or []):
        if name not in known:
            raise ConfigError(f"tasks[{index}]: Invalid value '{name}', {expected}")


def _check_logger_packages(cfg: DictConfig) -> None:
    for name, package in LOGGER_PACKAGES.items():
        if cfg.logger.get(name) is not None and importlib.util.find_spec(package) is None:
            raise ConfigError(f"logger={name} needs the {package} package: pip install 'recfit[loggers]'")


def _check_required(cfg: DictConfig) -> None:
    missing = sorted(_missing_keys(cfg))
    if missing:
        raise ConfigError(f"required config value missing: {missing[0]} (set it, e.g. {missing[0]}=...)")


def _missing_keys(node: DictConfig, prefix: str = "") -> list[str]:
    found = []
    for key in node:
        full = f"{prefix}{key}"
        if OmegaConf.is_missing(node, key):
            found.append(full)
            continue
        try:
            value = node[key]
        except MissingMandatoryValue:
            found.append(full)
            continue
        if isinstance(value, DictConfig):
            found.extend(_missing_keys(value, full + "."))
    return found


def _check_freeze(freeze: str) -> None:
    if freeze in FREEZE_WORDS or re.fullmatch(r"\d+", freeze):
        return
    raise ConfigError(f"backbone.freeze '{freeze}' must be one of none, all, embeddings or a layer count N")


def _check_adapter(backbone: DictConfig) -> None:
    if backbone.adapter == AdapterName.none:
        return
    if backbone.modality == Modality.none:
        raise ConfigError("backbone.adapter=lora needs a backbone, and backbone=none has none")
    if backbone.freeze == "all":
        # LoRA freezes every base weight already; freeze=N keeps the first N layers free of adapters
        raise ConfigError(
            "backbone.adapter=lora with backbone.freeze=all would train no adapter "
            "(use freeze none, embeddings or N: adapters in the layers after the first N)"
        )
    lora = backbone.lora
    if lora.rank < 1 or lora.alpha <= 0 or not 0 <= lora.dropout < 1:
        raise ConfigError(
            f"backbone.lora needs rank >= 1, alpha > 0 and dropout in [0, 1) "
            f"(got rank {lora.rank}, alpha {lora.alpha}, dropout {lora.dropout})"
        )
    if backbone.modality == Modality.image and not lora.target_modules:
        raise ConfigError("backbone.lora.target_modules must name the layers to adapt in an image backbone")


def _check_numbers(cfg: DictConfig) -> None:
    split = cfg.split
    if not (0 <= split.val < 1 and 0 <= split.test < 1 and split.val + split.test < 1):
        raise ConfigError(
            f"split.val ({split.val}) and split.test ({split.test}) must be in [0, 1) "
            "and leave some training data"
        )
    for key in ("batch_size", "eval_batch_size"):
        if cfg.dataset[key] < 1:
            raise ConfigError(f"dataset.{key} must be at least 1 (got {cfg.dataset[key]})")
    if cfg.dataset.length_buckets < 0:
        raise ConfigError(
            f"dataset.length_buckets must be 0 (off) or more (got {cfg.dataset.length_buckets})"
        )
    devices = cfg.trainer.devices
    bad_count = isinstance(devices, int) and devices < 1 and devices != -1
    if bad_count or isinstance(devices, str) and devices != "auto":
        raise ConfigError(
            f"trainer.devices must be auto, -1 (all), a count of at least 1, or a list of ids (got {devices})"
        )
    if cfg.trainer.num_nodes < 1:
        raise ConfigError(f"trainer.num_nodes must be at least 1 (got {cfg.trainer.num_nodes})")
    make_task(cfg.task.name, cfg.task, cfg.loss.name).check(cfg)  # the task's own settings, e.g. batch size
    if split.bootstrap < 0:
        raise ConfigError("split.bootstrap must be 0 or more")
    if not 0 < split.train_fraction <= 1:
        raise ConfigError(f"split.train_fraction ({split.train_fraction}) must be in (0, 1]")
    for key in ("k_core_users", "k_core_items"):
        if cfg.dataset.filter[key] < 0:
            raise ConfigError(f"dataset.filter.{key} must be 0 or more")
    if any(k < 1 for k in cfg.task.topk):
        raise ConfigError(f"task.topk values must be at least 1 (got {list(cfg.task.topk)})")
    if cfg.loss.temperature <= 0:
        raise ConfigError(f"loss.temperature must be positive (got {cfg.loss.temperature})")
    if cfg.model.get("embedding_dim", 1) < 1:
        raise ConfigError("model.embedding_dim must be at least 1")
    if cfg.backbone.max_length < 4:
        raise ConfigError(f"backbone.max_length must be at least 4 (got {cfg.backbone.max_length})")


def _check_paths(cfg: DictConfig) -> None:
    data_path = cfg.dataset.reader.get("path")
    if data_path is not None and not Path(data_path).expanduser().exists():
        raise ConfigError(f"dataset.reader.path does not exist: {data_path}")
    for key in ("name_or_path", "tokenizer"):
        value = cfg.backbone.get(key)
        if value and _looks_like_local_path(value) and not Path(value).expanduser().exists():
            raise ConfigError(f"backbone.{key} is a local path that does not exist: {value}")


def _looks_like_local_path(value: str) -> bool:
    return value.startswith(("/", "./", "../", "~")) or Path(value).suffix in {".json", ".bin"}
