"""`dataset=[a,b]`: the multi-domain sugar, rewritten into overrides Hydra can compose.

Hydra would merge both options into the one `dataset` node, where their schemas clash. So before Hydra
sees them, `dataset=[a,b]` becomes `dataset=multi_domain` plus one package override per domain,
`+dataset@dataset.domains.a=a`: each domain's config lands, with its own schema, under
`dataset.domains.<name>`, where `dataset.domains.a.reader.path=...` overrides it. `dataset.mix={a: 0.5, ...}`
becomes `++dataset.mix=...`, since the shares are keyed by domain names the schema cannot know.
Hydra's overrides.yaml then records this expanded form, so `recfit rerun` composes the same run
(expanding is idempotent).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recfit.config.moved_keys import move_reader_keys
from recfit.config.schema import MultiDomainDatasetConfig
from recfit.errors import ConfigError
from recfit.tasks.registry import make_task, task_class, task_names

MULTI_DOMAIN = "multi_domain"
# `dataset=[a, b]` (a list value, not a sweep): the only form rewritten
_DATASET_LIST = re.compile(r"^dataset=\[(?P<names>[^\[\]]*)\]$")
_MIX = "dataset.mix="
_NAME = re.compile(r"^[A-Za-z_][\w-]*$")


def domain_overrides(names: list[str]) -> list[str]:
    """The Hydra overrides that put each named data set under `dataset.domains.<name>`."""
    return [f"dataset={MULTI_DOMAIN}", *(f"+dataset@dataset.domains.{name}={name}" for name in names)]


def expand_domains(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """Replace a `dataset=[a,b]` override by `dataset=multi_domain` and one package override per domain.

    `dataset.mix={a: 0.5, b: 0.5}` becomes `++dataset.mix=...`: Hydra refuses to set keys a typed dict
    does not hold yet. Other overrides pass through unchanged. Raises ConfigError (one line) for one
    name in brackets, a name given twice, `multi_domain` as a domain, or a name that is not a plain
    option name. Reader arguments given in the layout before `dataset.reader` existed are moved there
    first (recfit.config.moved_keys), so every entry point that expands domains reads them alike.
    """
    expanded: list[str] = []
    for override in move_reader_keys(overrides):
        if override.startswith(_MIX):  # its keys are the domains, which the schema cannot list ahead
            expanded.append(f"++{override}")
            continue
        match = _DATASET_LIST.match(override.replace(" ", ""))
        if match is None:
            expanded.append(override)
            continue
        names = [name for name in match.group("names").split(",") if name]
        if len(names) < 2:
            raise ConfigError(f"'{override}' names {len(names)} data set; multi-domain needs two or more")
        for name in names:
            if not _NAME.match(name):
                raise ConfigError(f"'{name}' in '{override}' is not a data set option name")
            if name == MULTI_DOMAIN:
                raise ConfigError(f"'{override}': a domain cannot itself be {MULTI_DOMAIN}")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ConfigError(f"'{override}' names {', '.join(repeated)} more than once; each domain once")
        expanded.extend(domain_overrides(names))
    return expanded


def check_domains(cfg: DictConfig) -> None:
    """Raise ConfigError (one line) if a multi-domain config cannot make a sensible run; else nothing."""
    dataset = cfg.dataset
    if OmegaConf.get_type(dataset) is not MultiDomainDatasetConfig:
        return
    names = [str(name) for name in dataset.domains]
    if cfg.get("tasks"):  # each would need its metrics per domain as well: not built yet
        raise ConfigError(f"tasks=[...] (multi-task) cannot be combined with dataset={MULTI_DOMAIN} yet")
    if len(names) < 2:
        raise ConfigError(f"dataset={MULTI_DOMAIN} needs two or more domains: use dataset=[a,b]")
    for name in names:
        domain = dataset.domains[name]
        if not isinstance(domain, DictConfig) or "reader" not in domain:
            raise ConfigError(f"dataset.domains.{name} is not a data set config: use dataset=[a,b]")
        if OmegaConf.get_type(domain) is MultiDomainDatasetConfig:
            raise ConfigError(f"dataset.domains.{name} is itself {MULTI_DOMAIN}: domains cannot be nested")
        path = domain.reader.get("path")
        if path is not None and not Path(path).expanduser().exists():
            raise ConfigError(f"dataset.domains.{name}.reader.path does not exist: {path}")
    for name, share in dataset.mix.items():
        if name not in names:
            raise ConfigError(
                f"dataset.mix names '{name}', which is not a domain (domains: {', '.join(names)})"
            )
        if not math.isfinite(share) or share <= 0:
            raise ConfigError(f"dataset.mix.{name} must be a positive share, got {share}")
    if dataset.mix and set(dataset.mix) != set(names):
        missing = sorted(set(names) - set(dataset.mix))
        raise ConfigError(f"dataset.mix has no share for domain {missing[0]}: give every domain one, or none")
    if dataset.mix and (dataset.resampling.value != "none" or dataset.length_buckets > 0):
        raise ConfigError("dataset.mix cannot be combined with dataset.resampling or dataset.length_buckets")
    task = make_task(cfg.task.name, cfg.task, cfg.loss.name)
    if not task.multi_domain:
        able = [name for name in task_names() if task_class(name).multi_domain]
        raise ConfigError(
            f"multi-domain training does {', '.join(able[:-1])} and {able[-1]}, not {task.name}"
        )
    task.check_multi_domain(cfg)
