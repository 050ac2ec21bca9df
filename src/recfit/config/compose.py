"""Find the config tree and compose a config from overrides, turning Hydra's errors into one line."""

from __future__ import annotations

import difflib
from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException, ValidationError

from recfit.config import resolvers  # noqa: F401  (registers the resolvers configs use, torch-free)
from recfit.config.domains import expand_domains
from recfit.config.overrides import check_overrides, first_unknown_added_key
from recfit.config.places import check_hydra_places
from recfit.config.schema import SCHEMA_SUFFIX, register_schemas
from recfit.config.targets import check_targets
from recfit.errors import ConfigError


def conf_dir() -> Path:
    """The `conf/` tree: inside the installed package (wheel), else at the repository root (editable)."""
    package_dir = Path(__file__).resolve().parents[1]
    for candidate in (package_dir / "conf", package_dir.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise ConfigError(f"recfit's conf/ folder was not found next to {package_dir}; reinstall recfit")


def list_options() -> dict[str, list[str]]:
    """Each config group under conf/ and its options (the YAML files), for help texts."""
    root = conf_dir()
    return {
        group.name: sorted(file.stem for file in group.glob("*.yaml"))
        for group in sorted(root.iterdir())
        if group.is_dir()
    }


def compose(
    overrides: list[str] | tuple[str, ...] = (), config_name: str = "train", with_hydra: bool = False
) -> DictConfig:
    """Compose `conf/<config_name>.yaml` with command-line style overrides.

    `dataset=[a,b]` is expanded first (recfit.config.domains). Raises ConfigError with a one-line
    message for an unknown option, key (also one added with `+`) or wrong type, and for anything that
    would run code recfit does not allow or write outside `paths.output_dir`, in the config or in its
    hydra.* part, which Hydra acts on before recfit's own code starts (recfit.config.targets).
    `with_hydra` keeps the `hydra` node (run folder, logging, callbacks): the config a Hydra job runs
    with (recfit.apps.launch).
    """
    overrides = expand_domains(overrides)
    groups = list_options()
    check_overrides(overrides, groups)
    register_schemas()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=list(overrides), return_hydra_config=True)
    except MissingConfigException as error:
        raise ConfigError(_missing_option_message(error)) from None
    except OverrideParseException as error:
        raise ConfigError(f"cannot parse override: {_first_line(str(error))}") from None
    except (ConfigCompositionException, OmegaConfBaseException) as error:
        raise ConfigError(_composition_message(error, overrides, config_name)) from None
    unknown = first_unknown_added_key(cfg, overrides, groups)
    if unknown is not None:
        raise ConfigError(_unknown_key_message(unknown, overrides, config_name))
    check_targets(cfg)
    check_hydra_places(cfg.hydra)
    if not with_hydra:
        with open_dict(cfg):
            del cfg["hydra"]  # the run's own config, as Hydra hands it to the app
    return cfg


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def _missing_option_message(error: MissingConfigException) -> str:
    missing = (error.missing_cfg_file or "").strip("/")
    group, _, option = missing.rpartition("/")
    if not group:
        return _first_line(str(error))
    # Hydra lists no options when the bad one is inside a list (logger=[csv,mlfow]): list them here
    found = error.options or list_options().get(group, [])
    options = [name for name in found if not name.endswith(SCHEMA_SUFFIX)]
    message = f"unknown option '{option}' for '{group}'"
    close = difflib.get_close_matches(option, options, n=1)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    if options:
        message += f"; available: {', '.join(sorted(options))}"
    return message


def _composition_message(error: Exception, overrides: list[str] | tuple[str, ...], config_name: str) -> str:
    cause: BaseException = error
    while cause.__cause__ is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__
    if isinstance(cause, (ConfigKeyError, ConfigAttributeError)) and getattr(cause, "full_key", None):
        return _unknown_key_message(str(cause.full_key), overrides, config_name)
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None):
        return f"{cause.full_key}: {_first_line(getattr(cause, 'msg', str(cause)))}"
    return _first_line(str(cause))


def _unknown_key_message(full_key: str, overrides: list[str] | tuple[str, ...], config_name: str) -> str:
    """Name the unknown key and, when a sibling key is close, the likely intended one."""
    message = f"unknown config key '{full_key}'"
    parent, _, leaf = full_key.rpartition(".")
    try:
        base = _compose_without(full_key, overrides, config_name)
        siblings = OmegaConf.select(base, parent) if parent else base
        names = [str(k) for k in siblings] if isinstance(siblings, DictConfig) else []
    except Exception:  # the suggestion is a courtesy; never hide the real error behind another
        names = []
    close = difflib.get_close_matches(leaf, names, n=1)
    if close:
        message += f" (did you mean '{(parent + '.') if parent else ''}{close[0]}'?)"
    return message


def _compose_without(full_key: str, overrides: list[str] | tuple[str, ...], config_name: str) -> DictConfig:
    """Compose again without the overrides that name `full_key`, to list the keys that do exist."""
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] != full_key]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=kept)
