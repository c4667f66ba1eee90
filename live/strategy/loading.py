"""Finding the strategy a run trades: a SPEC and its parameters, resolved once at start-up (`tradeos up`, `tradeos
backtest`) into a `StrategyChoice` that builds the strategy for a set of symbols.

SPEC is a registered name (`builtin`), `package.module:Class`, or `path/to/file.py:Class`. Parameters come as
`key=value` text (the command line's `--param`) or JSON values (`TRADEOS_STRATEGY_PARAMS`) and are validated against
the class's `Params` model. Every problem is a `StrategyLoadError` whose message is one line naming it.

Code is imported here and only here, from what the person starting the run named: a running engine switches only
among choices resolved at its start (live/engine.py `Engine.apply`), never to code a caller of the API names.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from live.strategy.api import StrategyParams
from live.strategy.base import Strategy
from live.strategy.builtin import BuiltinStrategy

# Strategies known by name (as `--strategy NAME` / `TRADEOS_STRATEGY=NAME`); live/assembly.py re-exports it.
STRATEGIES: Mapping[str, type[Any]] = MappingProxyType({"builtin": BuiltinStrategy})
DEFAULT_STRATEGY = "builtin"
_VALID = f"{', '.join(STRATEGIES)}, package.module:Class or path/to/file.py:Class"
_PORT_METHODS = ("warm_up", "observe", "decide")


class StrategyLoadError(ValueError):
    """A strategy spec or parameter that cannot be used; the message is one line naming the problem, without the
    flag or variable it came from (the caller prefixes that: `--strategy`, `--param`, ...). `about` says which:
    `spec` or `params`."""

    def __init__(self, message: str, *, about: Literal["spec", "params"] = "spec") -> None:
        super().__init__(message)
        self.about = about


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyChoice:
    """A strategy class with validated parameters: what a run trades, records and shows."""

    spec: str  # as given (`builtin`, `pkg.mod:Class`, `path.py:Class`)
    name: str
    version: str
    strategy_class: type[Any]
    params: BaseModel
    params_json: str  # canonical: every field (defaults too), keys sorted, no spaces
    params_hash: str  # sha256 hex of params_json

    def build(self, symbols: Sequence[str]) -> Strategy:
        """A fresh strategy (cold signal models) for `symbols`."""
        strategy: Strategy = self.strategy_class(symbols=tuple(symbols), params=self.params)
        return strategy

    def with_params(self, values: Mapping[str, object]) -> StrategyChoice:
        """The same class with other parameters (validated from its defaults, not from this choice's values)."""
        return _choice(self.spec, self.strategy_class, values)

    @property
    def factory(self) -> Callable[[Sequence[str]], Strategy]:
        return self.build


def load_strategy(spec: str, params: Mapping[str, object] | None = None) -> StrategyChoice:
    """The strategy SPEC names, with `params` validated against its parameter model (StrategyLoadError if not)."""
    spec = spec.strip()
    return _choice(spec, strategy_class(spec), params or {})


def parse_param_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """`key=value` strings (the command line's `--param`, repeatable) as a mapping; the last of a key wins."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StrategyLoadError(f"{pair!r}: expected key=value", about="params")
        parsed[key.strip()] = value
    return parsed


def parse_params_json(text: str) -> dict[str, object]:
    """A JSON object of parameters (`TRADEOS_STRATEGY_PARAMS`; empty text: none)."""
    if not text.strip():
        return {}
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise StrategyLoadError(f"not JSON ({exc})", about="params") from None
    if not isinstance(values, dict):
        raise StrategyLoadError("must be a JSON object of parameter names to values", about="params")
    return values


def strategy_class(spec: str) -> type[Any]:
    """The class SPEC names, checked to implement the strategy port."""
    if not spec:
        raise StrategyLoadError(f"empty; valid: {_VALID}")
    registered = STRATEGIES.get(spec)
    if registered is not None:
        return registered
    where, sep, class_name = spec.rpartition(":")
    if not sep or not where or not class_name:
        raise StrategyLoadError(f"unknown {spec!r}; valid: {_VALID}")
    module = _module_from_file(where) if where.endswith(".py") or "/" in where else _module(where)
    found = getattr(module, class_name, None)
    if found is None:
        raise StrategyLoadError(f"{where} has no class {class_name!r}")
    _check_port(spec, found)
    return found


def _module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise StrategyLoadError(f"no module named {name!r}") from None
        raise StrategyLoadError(f"importing {name} failed: {_one_line(exc)}") from None
    except Exception as exc:
        raise StrategyLoadError(f"importing {name} failed: {_one_line(exc)}") from None


def _module_from_file(path_text: str) -> ModuleType:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise StrategyLoadError(f"no file {path_text!r}")
    # A name of its own per file, so two files called strategy.py do not replace each other.
    name = f"tradeos_strategy_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise StrategyLoadError(f"cannot import {path_text!r} as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[name] = module  # pydantic and dataclasses look the module up while the class is made
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        raise StrategyLoadError(f"importing {path_text} failed: {_one_line(exc)}") from None
    return module


def _check_port(spec: str, found: object) -> None:
    if not inspect.isclass(found):
        raise StrategyLoadError(f"{spec!r} is not a class")
    for method in _PORT_METHODS:
        if not callable(getattr(found, method, None)):
            raise StrategyLoadError(f"{spec!r} is not a Strategy (it has no {method}() method)")
    if inspect.isabstract(found):
        raise StrategyLoadError(f"{spec!r} is abstract (it does not implement {_abstract(found)})")
    for attribute in ("name", "version"):
        value = getattr(found, attribute, None)
        if not isinstance(value, str) or not value:
            raise StrategyLoadError(f"{spec!r} is not a Strategy (it has no `{attribute}` string)")
    params_model = getattr(found, "Params", None)
    if not (inspect.isclass(params_model) and issubclass(params_model, BaseModel)):
        raise StrategyLoadError(f"{spec!r} is not a Strategy (its `Params` is not a StrategyParams model)")


def _abstract(found: type[Any]) -> str:
    return ", ".join(sorted(getattr(found, "__abstractmethods__", ()))) + "()"


def _choice(spec: str, found: type[Any], values: Mapping[str, object]) -> StrategyChoice:
    params_model: type[BaseModel] = found.Params
    if values and not params_model.model_fields:
        given = ", ".join(sorted(values))
        raise StrategyLoadError(f"strategy {found.name!r} takes no parameters (got {given})", about="params")
    try:
        params = params_model.model_validate(dict(values))
    except ValidationError as exc:
        raise StrategyLoadError(f"{found.name}: {_param_errors(exc)}", about="params") from None
    params_json = json.dumps(params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return StrategyChoice(
        spec=spec,
        name=found.name,
        version=found.version,
        strategy_class=found,
        params=params,
        params_json=params_json,
        params_hash=hashlib.sha256(params_json.encode()).hexdigest(),
    )


def _param_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            parts.append(f"unknown parameter {where!r}")
        elif where:
            parts.append(f"parameter {where!r}: {message}")
        else:  # a check across parameters (a model validator)
            parts.append(message)
    return "; ".join(parts)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, SyntaxError) and exc.lineno is not None:
        text = f"{exc.msg} (line {exc.lineno})"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "StrategyChoice",
    "StrategyLoadError",
    "StrategyParams",
    "load_strategy",
    "parse_param_pairs",
    "parse_params_json",
    "strategy_class",
]
