"""The network registry: which graph networks the package offers, as which estimators.

An estimator class joins with :func:`register_estimator`; model files, ``crysatom train
--model`` and the training pipelines find it here, so a new network needs no change in any of
them. Other packages register theirs from a module named in the ``crysatom_featurizers.networks``
entry-point group, which is imported the first time the registry is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ENTRY_POINT_GROUP",
    "NetworkEntry",
    "available_networks",
    "estimator_classes",
    "get_estimator",
    "register_estimator",
]

#: Entry-point group of the modules that register networks of other packages.
ENTRY_POINT_GROUP = "crysatom_featurizers.networks"
TASKS = ("regression", "classification")


@dataclass
class NetworkEntry:
    """A registered network: its name, a one-line description and its estimator per task."""

    name: str
    description: str = ""
    estimators: dict[str, type] = field(default_factory=dict)


_NETWORKS: dict[str, NetworkEntry] = {}
_plugins_loaded = False


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for point in entry_points(group=ENTRY_POINT_GROUP):
        point.load()  # importing the module registers its estimators


def register_estimator(network: str, description: str | None = None) -> Callable[[type], type]:
    """Class decorator: register a graph estimator as the network ``network``'s estimator for
    its task (its ``_task``, ``"regression"`` or ``"classification"``).

    Parameters
    ----------
    network : str
        The network's name, as ``crysatom train --model`` and model files spell it
        (lower case, e.g. ``"cgcnn"``).
    description : str, optional
        One line for listings; default: the class's ``_description``, else the first line of
        its docstring.

    Raises
    ------
    ValueError
        If the name is not a lower-case identifier, or another class already holds that
        network and task.
    """
    if not (isinstance(network, str) and network.isidentifier() and network == network.lower()):
        raise ValueError(f"a network name is a lower-case identifier, got {network!r}")

    def register(cls: type) -> type:
        task = getattr(cls, "_task", None)
        if task not in TASKS:
            raise ValueError(f"{cls.__name__}._task must be one of {TASKS}, got {task!r}")
        entry = _NETWORKS.get(network, NetworkEntry(network))
        held = entry.estimators.get(task)
        if held is not None and held.__qualname__ != cls.__qualname__:
            raise ValueError(f"network {network!r} already has a {task} estimator, {held.__name__}")
        names = {c.__name__: c for e in _NETWORKS.values() for c in e.estimators.values()}
        other = names.get(cls.__name__)
        if other is not None and other is not held:
            raise ValueError(f"another estimator is already registered as {cls.__name__}")
        _NETWORKS[network] = entry  # only once every check has passed
        entry.estimators[task] = cls
        text = description or getattr(cls, "_description", None)
        if text:
            entry.description = text
        elif not entry.description and cls.__doc__:
            entry.description = cls.__doc__.strip().splitlines()[0]
        cls._network = network
        return cls

    return register


def get_estimator(network: str, task: str = "regression") -> type:
    """The estimator class of a registered network for a task.

    Raises
    ------
    ValueError
        If the network is not registered or has no estimator for that task (the message
        lists what is).
    """
    _load_plugins()
    entry = _NETWORKS.get(network)
    if entry is None:
        raise ValueError(f"unknown network {network!r}; registered: {sorted(_NETWORKS)}")
    if task not in entry.estimators:
        raise ValueError(
            f"network {network!r} has no {task} estimator (it has {sorted(entry.estimators)})"
        )
    return entry.estimators[task]


def estimator_classes() -> dict[str, type]:
    """Class name -> class of every registered estimator (what a model file may name)."""
    _load_plugins()
    return {c.__name__: c for e in _NETWORKS.values() for c in e.estimators.values()}


def network_names(task: str | None = None) -> list[str]:
    """Registered network names (with an estimator for ``task``, if given), sorted."""
    _load_plugins()
    return sorted(n for n, e in _NETWORKS.items() if task is None or task in e.estimators)


def available_networks() -> Any:
    """The registered networks as a table.

    Returns
    -------
    pandas.DataFrame
        One row per network: ``name``, ``description``, ``regressor`` and ``classifier``
        (class names, or None), and ``module`` (where its estimators are defined).
    """
    import pandas as pd

    _load_plugins()
    rows = []
    for name in sorted(_NETWORKS):
        entry = _NETWORKS[name]
        regressor = entry.estimators.get("regression")
        classifier = entry.estimators.get("classification")
        any_cls = regressor or classifier
        rows.append(
            {
                "name": name,
                "description": entry.description,
                "regressor": None if regressor is None else regressor.__name__,
                "classifier": None if classifier is None else classifier.__name__,
                "module": None if any_cls is None else any_cls.__module__,
            }
        )
    return pd.DataFrame(rows, columns=["name", "description", "regressor", "classifier", "module"])
