"""The data parts a run's config describes: what `RecDataModule.setup` reads, filters and splits, and how
batches are drawn. Torch-free readers, filters and splits stay unaware of Hydra and of each other."""

from __future__ import annotations

from functools import partial

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from recfit.config.schema import SplitMethod
from recfit.data.datamodule import DataSource, Loading
from recfit.data.read_once import read_once
from recfit.data.split import make_splits
from recfit.data.tables import RecData


def reader(dataset: DictConfig) -> partial[RecData]:
    """The data set's reader (`dataset.reader`) with its arguments bound: calling it reads the data.

    Nested keys reach the reader as they are (a multi-domain reader instantiates its domains' readers).
    """
    return instantiate(dataset.reader, _partial_=True, _recursive_=False)


def read_dataset(dataset: DictConfig) -> RecData:
    """Read the data set a `dataset` config describes (unfiltered)."""
    return reader(dataset)()


def data_source(cfg: DictConfig) -> DataSource:
    """The reader, filter and split of a run's `dataset` and `split` configs."""
    split = cfg.split
    cut = partial(
        make_splits,
        method=split.method.value,
        val=split.val,
        test=split.test,
        seed=cfg.dataset.split_seed,
        order=split.order.value,
        per_user=split.per_user,
        fold=split.fold,
        stratify=split.stratify,
        bootstrap=split.bootstrap,
        train_fraction=split.train_fraction,
    )
    return DataSource(
        read=read_once(reader(cfg.dataset), cfg.dataset.reader),  # a sweep's jobs read the same files once
        split=cut,
        filter=OmegaConf.to_container(cfg.dataset.filter, resolve=True),
        cold_items=split.method == SplitMethod.cold_item,
    )


def loading(cfg: DictConfig) -> Loading:
    """How a run's batches are drawn: the loader keys of `dataset`, the training and split seeds."""
    dataset = cfg.dataset
    mix = dataset.get("mix")
    return Loading(
        batch_size=dataset.batch_size,
        eval_batch_size=dataset.eval_batch_size,
        num_workers=dataset.num_workers,
        resampling=dataset.resampling,
        length_buckets=dataset.length_buckets,
        mix=None if mix is None else OmegaConf.to_container(mix, resolve=True),
        seed=cfg.seed,
        candidate_seed=dataset.split_seed,
    )
