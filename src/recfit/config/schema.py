"""Typed schemas for every config group.

Each YAML option under ``conf/<group>/`` starts with ``defaults: [<group>_schema, _self_]``, so
Hydra checks it against the dataclass below: an unknown key or a wrong type fails at composition,
before anything heavy is imported. The enums are the single source of the option names that code
compares against (tasks, losses, models, pooling, modality).

This module imports no torch, transformers or Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from recfit.tasks.names import HistoryExamples, LossName, Negatives, TaskName  # noqa: F401 (TaskName: the built-in tasks, kept importable here)


class ModelName(str, Enum):
    two_tower = "two_tower"
    cross_encoder = "cross_encoder"
    mf = "mf"
    popularity = "popularity"
    lr = "lr"


class SplitMethod(str, Enum):
    ratio = "ratio"
    temporal = "temporal"
    leave_one_out = "leave_one_out"
    folds = "folds"
    cold_item = "cold_item"


class BadRowsPolicy(str, Enum):
    error = "error"
    skip = "skip"


class Resampling(str, Enum):
    none = "none"
    oversample = "oversample"
    undersample = "undersample"


class Order(str, Enum):
    random = "random"
    time = "time"


class Modality(str, Enum):
    text = "text"
    image = "image"
    none = "none"


class Pooling(str, Enum):
    cls = "cls"
    mean = "mean"
    last = "last"


class Mode(str, Enum):
    max = "max"
    min = "min"


class AdapterName(str, Enum):
    none = "none"
    lora = "lora"


class UserEncoderName(str, Enum):
    """How a dot-product model makes a user vector; the single source of these names."""

    id = "id"  # a learned vector per user ID (two-tower / DSSM)
    mean = "mean"  # mean of the user's history item vectors
    gru = "gru"  # GRU4Rec over the history item vectors
    transformer = "transformer"  # SASRec: causal self-attention over the history item vectors


class TaskWeighting(str, Enum):
    """How a multi-task run (`tasks: [rating, ctr]`) weighs its tasks' losses."""

    fixed = "fixed"  # task_weights, as given
    uncertainty = "uncertainty"  # learned per-task log-variances (Kendall et al., CVPR 2018)


class TransferPart(str, Enum):
    """What `init_from` can carry over; recfit.models.parts maps each to module names."""

    backbone = "backbone"
    item_tower = "item_tower"
    user_tower = "user_tower"
    head = "head"


# A tokenizer name that builds GPT-2's byte-level BPE with no merges in memory: lets the tiny
# GPT-2 run offline with a real GPT-2 tokenizer class (no pad token, like the real one).
BYTE_LEVEL_TOKENIZER = "byte-level"


@dataclass
class PathsConfig:
    output_dir: str = "outputs"  # run and sweep folders go under here
    data_dir: str = "data"  # downloads and caches go under here


@dataclass
class LoraConfig:
    rank: int = 8  # r: the inner size of each low-rank update
    alpha: float = 16.0  # the update is scaled by alpha / rank
    dropout: float = 0.1  # on the adapter's input, in training
    target_modules: list[str] | None = None  # modules to adapt; null = peft's default for the architecture


@dataclass
class BackboneConfig:
    modality: Modality = Modality.text  # what the backbone reads: item text, item images, or nothing
    name_or_path: str | None = None  # hub id or local folder; resolved offline-first
    model_type: str | None = None  # with name_or_path null: build this architecture from config_overrides
    config_overrides: dict[str, Any] = field(default_factory=dict)  # AutoConfig fields to set
    tokenizer: str | None = None  # tokenizer id or folder; null = same as name_or_path
    pretrained: bool = True  # false = same architecture, random init
    pooling: Pooling = Pooling.cls  # how token states become one vector
    freeze: str = "none"  # none | all | embeddings | N (the embeddings and first N layers)
    max_length: int = 64  # tokens per text, after truncation
    image_size: int = 224  # pixels per side after resizing (image backbones)
    gradient_checkpointing: bool = False  # trade compute for memory
    compile: bool = False  # torch.compile the backbone (pays off on GPUs; the first steps are slow)
    trust_remote_code: bool = False  # never execute hub code unless asked
    adapter: AdapterName = AdapterName.none  # none: train the weights (see freeze); lora: adapters only
    lora: LoraConfig = field(default_factory=LoraConfig)  # with adapter=lora
    cache_vectors: bool = True  # freeze all: item vectors shared on disk under paths.data_dir/cache


@dataclass
class SplitConfig:
    method: SplitMethod = SplitMethod.ratio  # ratio | temporal | leave_one_out | folds | cold_item
    val: float = 0.1  # share for validation (of each user's interactions, of rows, or of items)
    test: float = 0.1  # share for test
    order: Order = Order.random  # ratio: which interactions go last: random order, or by time
    per_user: bool = True  # ratio / temporal: cut each user's interactions, or all at once
    fold: str = "1"  # folds: which predefined test set (MovieLens-100K: 1-5, a, b)
    stratify: bool = False  # split rows keeping label proportions (text classification)
    bootstrap: int = 0  # extra training rows drawn with replacement, as augmentation (0 = off)
    train_fraction: float = 1.0  # share of the train split kept (data-efficiency studies), by split_seed


@dataclass
class FilterConfig:
    rating_threshold: float | None = None  # keep only ratings >= this (implicit feedback); null = all
    k_core_users: int = 0  # drop users with fewer interactions, repeatedly (0 = off)
    k_core_items: int = 0  # drop items with fewer interactions, repeatedly (0 = off)
    deduplicate: bool = False  # keep one interaction per (user, item): the latest


@dataclass
class ReaderConfig:
    """A data set's reader: `_target_` names a function returning recfit.data.tables.RecData, the other
    keys are its arguments, so `hydra.utils.instantiate` calls it as it stands."""

    _target_: str = MISSING  # the reader function


@dataclass
class DatasetConfig:
    """Keys every data set has: its reader, then how its interactions are filtered, split and batched."""

    reader: ReaderConfig = MISSING  # the reader and its arguments (each data set's own schema)
    filter: FilterConfig = field(default_factory=FilterConfig)
    split_seed: int = 0  # seeds the split only, so a seed sweep keeps the same split
    batch_size: int = 64  # training interactions per step
    eval_batch_size: int = 256  # users (ranking) or rows per evaluation step
    num_workers: int = 0  # DataLoader worker processes
    class_weights: Any = None  # ctr / text classification: null | balanced | [w0, w1, ...] per class
    resampling: Resampling = Resampling.none  # none | oversample | undersample training rows to equal classes
    length_buckets: int = 0  # >0: per-row texts batched by similar length within windows of N batches


@dataclass
class SyntheticReaderConfig(ReaderConfig):
    _target_: str = "recfit.data.sources.synthetic.make_synthetic"
    num_users: int = 150  # users, each preferring one or two topics
    num_items: int = 200  # items, each about one topic
    interactions_per_user: int = 12  # interactions sampled per user
    preference_strength: float = 0.9  # chance an interaction comes from a preferred topic
    image_size: int = 32  # side of the generated item images, in pixels
    seed: int = 0  # seeds the generator (not the split)


@dataclass
class SyntheticDatasetConfig(DatasetConfig):
    reader: SyntheticReaderConfig = field(default_factory=SyntheticReaderConfig)


@dataclass
class MovieLensReaderConfig(ReaderConfig):
    _target_: str = "recfit.data.sources.movielens.read_movielens_100k"
    path: str | None = None  # folder with u.data, u.item, u.user; null = download into download_dir
    download_dir: str = "${paths.data_dir}"  # where the official zip is fetched and checked
    on_bad_rows: BadRowsPolicy = (
        BadRowsPolicy.error
    )  # error: refuse a file with bad rows; skip: drop and count


@dataclass
class MovieLensDatasetConfig(DatasetConfig):
    reader: MovieLensReaderConfig = field(default_factory=MovieLensReaderConfig)


@dataclass
class MovieLens1MReaderConfig(ReaderConfig):
    _target_: str = "recfit.data.sources.movielens.read_movielens_1m"
    path: str | None = None  # folder with ratings.dat, movies.dat, users.dat; null = download
    download_dir: str = "${paths.data_dir}"  # where the official zip is fetched and checked
    on_bad_rows: BadRowsPolicy = BadRowsPolicy.error  # error: refuse a file with bad rows; skip: drop, count


@dataclass
class MovieLens1MDatasetConfig(DatasetConfig):
    reader: MovieLens1MReaderConfig = field(default_factory=MovieLens1MReaderConfig)


@dataclass
class RecBoleReaderConfig(ReaderConfig):
    _target_: str = "recfit.data.sources.recbole.read_recbole_atomic"
    path: str = MISSING  # folder holding <name>.inter (and .item, .user)
    name: str | None = None  # file stem; null = the folder's name
    text_fields: list[str] | None = None  # item fields joined into the item text; null = title
    on_bad_rows: BadRowsPolicy = BadRowsPolicy.error  # error: refuse a file with bad rows; skip: drop, count


@dataclass
class RecBoleDatasetConfig(DatasetConfig):
    reader: RecBoleReaderConfig = field(default_factory=RecBoleReaderConfig)


@dataclass
class AmazonGamesReaderConfig(ReaderConfig):
    _target_: str = "recfit.data.sources.recbole.read_amazon_games"
    path: str = MISSING  # folder holding Games-6k.item, Games-6k.valid.inter, Games-6k.test.inter


@dataclass
class AmazonGamesDatasetConfig(DatasetConfig):
    reader: AmazonGamesReaderConfig = field(default_factory=AmazonGamesReaderConfig)


@dataclass
class TextCsvReaderConfig(ReaderConfig):
    _target_: str = "recfit.data.sources.text_csv.read_text_csv"
    path: str = MISSING  # the CSV file
    text_column: str = "text"  # column holding the text
    label_column: str = "label"  # column holding the label


@dataclass
class TextCsvDatasetConfig(DatasetConfig):
    reader: TextCsvReaderConfig = field(default_factory=TextCsvReaderConfig)


@dataclass
class ImageFolderReaderConfig(ReaderConfig):
    _target_: str = "recfit.data.sources.image_folder.read_image_folder"
    path: str = MISSING  # folder holding the items and interactions CSV files (and the images)
    items_file: str = "items.csv"  # one row per item: its id, its image path, optionally a text column
    interactions_file: str = "interactions.csv"  # one row per interaction: user, item[, rating, timestamp]
    item_column: str = "item_id"  # items_file column holding the item id
    image_column: str = "image"  # items_file column holding the image path, relative to path
    text_column: str | None = None  # items_file column holding item text (text backbones); null = none
    image_size: int = 224  # images are resized to this square once, when read
    on_bad_rows: BadRowsPolicy = BadRowsPolicy.error  # error: refuse a bad image or row; skip: drop and count


@dataclass
class ImageFolderDatasetConfig(DatasetConfig):
    reader: ImageFolderReaderConfig = field(default_factory=ImageFolderReaderConfig)


@dataclass
class MultiDomainReaderConfig(ReaderConfig):
    """Reads every domain with its own reader and filter (`domains` is the data set's own key)."""

    _target_: str = "recfit.data.sources.multi_domain.read_domains"
    domains: Any = "${..domains}"  # the data set's domains: name -> that data set's full config


@dataclass
class MultiDomainDatasetConfig(DatasetConfig):
    """Several data sets trained at once (`dataset=[a,b]`); the common keys apply to the mixed batches."""

    reader: MultiDomainReaderConfig = field(default_factory=MultiDomainReaderConfig)
    domains: dict[str, Any] = field(default_factory=dict)  # domain name -> that data set's full config
    mix: dict[str, float] = field(default_factory=dict)  # batch share per domain; {} = by size


@dataclass
class TaskConfig:
    name: str = MISSING  # what is predicted: a registered task (recfit.tasks), e.g. rating or ranking
    metric: str = MISSING  # model-selection metric, without the val/ prefix
    mode: Mode = Mode.max  # whether a higher or lower metric is better
    topk: list[int] = field(default_factory=lambda: [10, 20])  # cut-offs for ranking metrics
    rating_threshold: float = 4.0  # ctr: label = rating >= threshold
    candidates: str = "full"  # ranking: full (every item) | uniN | popN (N sampled negatives per user)
    next_item_examples: HistoryExamples = HistoryExamples.prefixes  # next_item: rows per prefix or per user


@dataclass
class UserEncoderConfig:
    """How two_tower and mf make a user vector: an ID embedding, or an encoder over the user's history
    (task=next_item). The fields of recfit.models.user_encoders.UserEncoderSpec; null = the encoder's
    own default (RecBole's SASRec / GRU4Rec)."""

    name: UserEncoderName = UserEncoderName.id  # id | mean | gru | transformer (all but id: task=next_item)
    max_history: int = 50  # the most recent items a user is represented by (SASRec's max length)
    num_layers: int | None = None  # transformer: null = 2; gru: null = 1
    num_heads: int = 2  # transformer attention heads; must divide model.embedding_dim
    inner_size: int = 256  # transformer feed-forward width
    dropout: float | None = None  # transformer: null = 0.5 (hidden states); gru: null = 0.3 (inputs)
    attention_dropout: float = 0.5  # transformer: on the attention probabilities


@dataclass
class ModelConfig:
    name: ModelName = MISSING  # checked against the task and backbone
    _target_: str = MISSING  # the recommender class
    embedding_dim: int = 64  # size of user/item vectors (two_tower, mf)
    dropout: float = 0.1  # before the projection or head
    item_id_embedding: bool = False  # two_tower: add a learned per-item vector (zero for unseen items)
    user_encoder: UserEncoderConfig = field(default_factory=UserEncoderConfig)  # two_tower, mf: user tower


@dataclass
class LossConfig:
    name: LossName = MISSING  # checked against the task
    temperature: float = 0.05  # cross_entropy for ranking and next_item: scores are divided by this
    logq_correction: bool = True  # ranking, next_item (sampled, in_batch): subtract log item frequency
    l2: float = 0.0  # dot-product models: weight of the batch rows' squared vector and bias norms
    negatives: Negatives = Negatives.full  # next_item: full | sampled | in_batch softmax
    num_negatives: int = 1000  # next_item with negatives=sampled: items drawn per batch


@dataclass
class OptimizerConfig:
    _target_: str = MISSING  # a torch.optim class
    backbone_lr: float = 2e-5  # learning rate of the pretrained backbone
    head_lr: float = 1e-3  # learning rate of everything else (embeddings, projection, heads)
    weight_decay: float = 0.01  # decoupled (AdamW) or L2 (Adam, SGD)
    extra: dict[str, Any] = field(default_factory=dict)  # other optimizer arguments


@dataclass
class SchedulerConfig:
    _target_: str = MISSING  # a transformers get_*_schedule_with_warmup function
    warmup_ratio: float = 0.0  # share of all steps spent warming up


@dataclass
class TrainerConfig:
    _target_: str = "lightning.pytorch.Trainer"
    accelerator: str = "auto"  # cpu | gpu | auto
    devices: Any = "auto"  # number of devices per machine, a list of ids, auto, or -1 (all)
    strategy: str = "auto"  # auto | ddp (one process per device) | ddp_spawn (sweeps, tests)
    num_nodes: int = 1  # machines (torchrun or SLURM start the processes; docs/scaling.md)
    max_epochs: int = 3  # passes over the training interactions
    max_steps: int = -1  # stop after this many steps (-1 = no limit)
    precision: str = "32-true"  # 32-true | bf16-mixed | 16-mixed
    deterministic: bool = True  # reproducible kernels (same seed, same metrics on CPU)
    gradient_clip_val: float = 1.0  # clip gradient norm (0 = off)
    accumulate_grad_batches: int = 1  # steps per optimizer update
    limit_train_batches: Any = 1.0  # share or count of training batches per epoch (smoke tests)
    limit_val_batches: Any = 1.0  # share or count of validation batches
    limit_test_batches: Any = 1.0  # share or count of test batches
    val_check_interval: Any = 1.0  # validate this often within an epoch
    log_every_n_steps: int = 10  # training-curve resolution in metrics.csv
    enable_progress_bar: bool = True  # live progress in the terminal
    num_sanity_val_steps: int = 0  # validation steps before training


@dataclass
class CSVLoggerConfig:
    _target_: str = "lightning.pytorch.loggers.CSVLogger"
    name: str = ""  # sub-folder of the run folder ("" = metrics.csv in the run folder itself)
    version: str = ""  # version sub-folder ("" = none)


@dataclass
class TensorBoardLoggerConfig:
    _target_: str = "lightning.pytorch.loggers.TensorBoardLogger"
    name: str = "tensorboard"  # sub-folder of the run folder holding the event files
    version: str = ""  # version sub-folder ("" = none)
    default_hp_metric: bool = False  # no placeholder hp_metric=-1 in the HPARAMS tab
    log_graph: bool = False  # trace the model graph into the event file


@dataclass
class MLflowLoggerConfig:
    _target_: str = "recfit.training.loggers.MLflowLogger"
    tracking_uri: str = MISSING  # where runs are recorded (a database URL or a tracking server)
    experiment_name: str = MISSING  # the MLflow experiment the run belongs to
    run_name: str | None = None  # null: the run folder's name
    artifact_location: str | None = None  # artifact root of a newly created experiment
    tags: dict[str, str] = field(default_factory=dict)  # extra tags on the MLflow run
    log_model: bool = False  # also upload checkpoints as artifacts


@dataclass
class WandbLoggerConfig:
    _target_: str = "lightning.pytorch.loggers.WandbLogger"
    project: str = MISSING  # the W&B project
    name: str | None = None  # null: the run folder's name
    offline: bool = True  # record locally (no account); `wandb sync` uploads later
    entity: str | None = None  # W&B team or user (online only)
    log_model: bool = False  # also upload checkpoints as artifacts


@dataclass
class LoggersConfig:
    """The Lightning loggers of a run: each `logger=` option fills its own key, the others stay null."""

    csv: CSVLoggerConfig | None = None
    tensorboard: TensorBoardLoggerConfig | None = None
    mlflow: MLflowLoggerConfig | None = None
    wandb: WandbLoggerConfig | None = None


@dataclass
class InitFromConfig:
    path: str | None = None  # a run folder (its checkpoints/best.ckpt) or a .ckpt file; null = no parent
    parts: list[TransferPart] = field(default_factory=lambda: list(TransferPart))  # what carries over


class CheckpointKeep(str, Enum):
    """Which checkpoints a completed run keeps (an unfinished run always keeps last.ckpt to resume from)."""

    best = "best"
    last = "last"
    both = "both"
    none = "none"


@dataclass
class CheckpointConfig:
    """What checkpoints hold and which of them outlive the run."""

    keep: CheckpointKeep = CheckpointKeep.best  # best | last | both | none: kept once the run completes
    save_frozen: bool = False  # true: frozen backbone weights in every checkpoint, not a verified reference


@dataclass
class TaskWeightsConfig:
    """Fixed loss weights of a multi-task run, one key per task that can take part."""

    rating: float = 1.0  # weight of the rating task's loss (mse)
    ctr: float = 1.0  # weight of the ctr task's loss (bce)


@dataclass
class TrainConfig:
    experiment_name: str = "default"  # names the run folder: outputs/runs/<experiment_name>/...
    seed: int = 42  # seeds Python, NumPy and torch for training
    paths: PathsConfig = field(default_factory=PathsConfig)
    backbone: BackboneConfig = MISSING
    dataset: DatasetConfig = MISSING
    split: SplitConfig = MISSING
    task: TaskConfig = MISSING
    model: ModelConfig = MISSING
    loss: LossConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    scheduler: SchedulerConfig = MISSING
    trainer: TrainerConfig = MISSING
    logger: LoggersConfig = field(default_factory=LoggersConfig)  # Lightning loggers by name
    test: bool = True  # evaluate the best checkpoint on the test split after training
    early_stopping_patience: int = 0  # validations without improvement before stopping (0 = never)
    checkpoint_every_n_steps: int = 50  # write last.ckpt this often, mid-epoch too (0 = each epoch's end)
    resume: str | None = None  # auto: continue the newest unfinished run of this experiment
    ckpt_path: str | None = None  # continue the run this checkpoint belongs to (in its own folder)
    quiet: bool | None = None  # no progress bar, config summary or metrics table (null: quiet in sweeps)
    init_from: InitFromConfig = field(default_factory=InitFromConfig)  # start from another run's weights
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)  # what checkpoints hold and keep
    tasks: list[str] = field(default_factory=list)  # pointwise tasks sharing one model; [] = task alone
    task_weights: TaskWeightsConfig = field(default_factory=TaskWeightsConfig)  # fixed loss weight per task
    task_weighting: TaskWeighting = TaskWeighting.fixed  # fixed | uncertainty (learned weights)


# Schema entries in the ConfigStore end with this; they are not options a user picks.
SCHEMA_SUFFIX = "_schema"

_GROUP_SCHEMAS: dict[str, dict[str, type]] = {
    "backbone": {"backbone_schema": BackboneConfig},
    "dataset": {
        "synthetic_schema": SyntheticDatasetConfig,
        "movielens_schema": MovieLensDatasetConfig,
        "text_csv_schema": TextCsvDatasetConfig,
        "movielens_1m_schema": MovieLens1MDatasetConfig,
        "recbole_schema": RecBoleDatasetConfig,
        "amazon_games_schema": AmazonGamesDatasetConfig,
        "image_folder_schema": ImageFolderDatasetConfig,
        "multi_domain_schema": MultiDomainDatasetConfig,
    },
    "split": {"split_schema": SplitConfig},
    "task": {"task_schema": TaskConfig},
    "model": {"model_schema": ModelConfig},
    "loss": {"loss_schema": LossConfig},
    "optimizer": {"optimizer_schema": OptimizerConfig},
    "scheduler": {"scheduler_schema": SchedulerConfig},
    "trainer": {"trainer_schema": TrainerConfig},
}


def register_schemas() -> None:
    """Put every schema into Hydra's ConfigStore (idempotent). Every composition calls it, so only the
    missing ones are stored: storing all of them again took a sixth of each composition's time."""
    store = ConfigStore.instance()
    if "train_schema.yaml" not in store.repo:
        store.store(name="train_schema", node=TrainConfig)
    for group, schemas in _GROUP_SCHEMAS.items():
        for name, node in schemas.items():
            if f"{name}.yaml" not in store.repo.get(group, {}):
                store.store(group=group, name=name, node=node)
