"""Click models that sample clicks on graded pages and fit to click logs.

Four models, one module each: `cascade` (Craswell et al. 2008), `pbm` (position-based,
Richardson et al. 2007), `dcm` (dependent click, Guo et al. 2009) and `dbn` (dynamic Bayesian
network, Chapelle and Zhang 2009). They share the `ClickModel` plug point in `base`, and a
registry maps a short name to each, so a simulation can name its user model in a config::

    model = click_models.get("dbn", gamma=0.8)
    clicks = model.sample(grades, rng)
    fitted = type(model).fit(grades, clicks)
"""

from __future__ import annotations

from typing import Any

from simulations.click_models.base import ClickModel
from simulations.click_models.cascade import CascadeModel
from simulations.click_models.dbn import DynamicBayesianNetworkModel
from simulations.click_models.dcm import DependentClickModel
from simulations.click_models.pbm import PositionBasedModel

__all__ = [
    "CascadeModel",
    "ClickModel",
    "DependentClickModel",
    "DynamicBayesianNetworkModel",
    "PositionBasedModel",
    "get",
    "names",
    "register",
]

_MODELS: dict[str, type[ClickModel]] = {}


def register(name: str, model: type[ClickModel]) -> None:
    """Registers a click model class under a short name.

    Args:
        name: The name `get` will know it by.
        model: A `ClickModel` subclass whose constructor takes its parameters as keywords.

    Raises:
        ValueError: If the name is already taken.
        TypeError: If model is not a `ClickModel` subclass.
    """
    if name in _MODELS:
        raise ValueError(f"name: a click model is already registered as {name!r}")
    if not (isinstance(model, type) and issubclass(model, ClickModel)):
        raise TypeError(f"model: expected a ClickModel subclass, got {model!r}")
    _MODELS[name] = model


def get(name: str, **params: Any) -> ClickModel:
    """Builds the click model registered under a name.

    Args:
        name: A registered name (see `names`).
        **params: Parameters for the model's constructor; omitted ones take its defaults.

    Raises:
        ValueError: If the name is unknown, or a parameter is invalid.
        TypeError: If a parameter is not one the model has.
    """
    try:
        model = _MODELS[name]
    except KeyError:
        known = ", ".join(names())
        raise ValueError(f"name: no click model {name!r}; known: {known}") from None
    return model(**params)


def names() -> tuple[str, ...]:
    """The registered names, sorted."""
    return tuple(sorted(_MODELS))


register("cascade", CascadeModel)
register("dbn", DynamicBayesianNetworkModel)
register("dcm", DependentClickModel)
register("pbm", PositionBasedModel)
