"""Configs read through dataclasses, and a reader that records every read.

Every part of ssljax that a config drives is a dataclass (or a function) whose
fields are the keys of its config section; value checks live in the
dataclass's ``__post_init__`` (:func:`check`). Code reads a config only
through a :class:`ConfigReader`, which records each key it was asked for, so
config checking cannot drift from the code: a key nobody read is unknown (and
the closest key that was asked for at the same place is suggested), a value a
constructor refuses is a :class:`Problem` naming the key and the fix, and all
problems are reported together in one :class:`ConfigError`::

    reader = ConfigReader(config)
    head = build(ProjectionMLP, reader.head)       # head.* -> ProjectionMLP fields
    temperature = reader.get("temperature", 0.5)
    reader.raise_problems()                        # value problems + unknown keys

Imports nothing from ssljax (the bottom layer).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["ConfigError", "ConfigReader", "FieldError", "Problem", "build",
           "check", "field_names", "kwargs_for", "plain", "replace"]

_MISSING = object()
_FLAX_INTERNAL = frozenset({"parent", "name"})


@dataclasses.dataclass(frozen=True)
class Problem:
  """One config problem: the dotted ``key``, its ``value`` and what is wrong
  and how to fix it (``message``)."""
  key: str
  value: Any
  message: str

  def __str__(self) -> str:
    if self.value is _MISSING:
      return f"{self.key} (missing): {self.message}"
    text = json.dumps(self.value, default=repr)
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{self.key} = {text}: {self.message}"


class ConfigError(ValueError):
  """A config with one or more problems; ``problems`` lists them all."""

  def __init__(self, problems):
    self.problems = tuple(problems)
    n = len(self.problems)
    lines = "\n".join(f"  - {p}" for p in self.problems)
    super().__init__(f"{n} problem{'s' if n != 1 else ''} in the config:\n"
                     f"{lines}")

  @property
  def keys(self) -> tuple[str, ...]:
    return tuple(p.key for p in self.problems)


class FieldError(ValueError):
  """Bad field values of one object: ``errors = [(field, value, message)]``."""

  def __init__(self, owner: str, errors):
    self.owner, self.errors = owner, list(errors)
    super().__init__("; ".join(f"{owner}.{f} = {v!r}: {m}"
                               for f, v, m in self.errors))


def check(obj, *rules) -> None:
  """Raise one :class:`FieldError` for every ``(field, ok, message)`` rule of
  ``obj`` whose ``ok`` is false; ``ok`` may be a callable of the field's value
  (an exception in it counts as false). For ``__post_init__``."""
  bad = []
  for field, ok, message in rules:
    value = getattr(obj, field)
    if callable(ok):
      try:
        ok = ok(value)
      except (TypeError, ValueError):
        ok = False
    if not ok:
      bad.append((field, value, message))
  if bad:
    raise FieldError(type(obj).__name__, bad)


def plain(value):
  """ConfigDicts as dicts and lists as tuples, recursively."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  if isinstance(value, Mapping):
    return {k: plain(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(plain(v) for v in value)
  return value


class ConfigReader:
  """A read-only view of a config that records what is read.

  ``reader.x`` / ``reader["x"]`` / ``reader.get("x", default)`` return the
  value (a nested section as a sub-reader; lists as tuples) and record the
  key; asking for an absent key records it as *known* (for suggestions).
  Sub-readers share the record of their root.
  """

  def __init__(self, config, *, _root=None, _prefix: str = ""):
    self._data = config._data if isinstance(config, ConfigReader) else (
        plain(config) if config is not None else {})
    if not isinstance(self._data, Mapping):
      raise TypeError(f"a config must be a ConfigDict or a dict; got "
                      f"{type(config).__name__}.")
    self._root = _root or self
    self._prefix = _prefix
    if _root is None:
      self.read: set[str] = set()       # dotted keys read
      self.known: dict[str, set[str]] = {}  # prefix -> names asked for
      self.problems: list[Problem] = []

  # -- reading ---------------------------------------------------------------

  def get(self, name: str, default=None):
    """The value of ``name`` (a section as a sub-reader), or ``default``."""
    root, present = self._root, name in self._data
    root.known.setdefault(self._prefix, set()).add(name)
    if not present:
      return default
    value = self._data[name]
    if isinstance(value, Mapping) and value:   # a section: its keys are read
      prefix = f"{self._prefix}{name}."
      root.known.setdefault(prefix, set())
      return ConfigReader(value, _root=root, _prefix=prefix)
    root.read.add(self._prefix + name)
    return ConfigReader(value, _root=root, _prefix=f"{self._prefix}{name}."
                        ) if isinstance(value, Mapping) else value

  def __getitem__(self, name: str):
    if name not in self._data:
      self._root.known.setdefault(self._prefix, set()).add(name)
      raise KeyError(f"config has no key {self._prefix + name!r}")
    return self.get(name)

  def __getattr__(self, name: str):
    if name.startswith("_"):
      raise AttributeError(name)
    try:
      return self[name]
    except KeyError as e:
      raise AttributeError(str(e)) from None

  def __contains__(self, name) -> bool:
    return name in self._data

  def keys(self):
    return self._data.keys()

  def to_dict(self) -> dict:
    """The whole section (every key counts as read)."""
    for key in self._leaves(self._data, self._prefix):
      self._root.read.add(key)
    return dict(self._data)

  @property
  def prefix(self) -> str:
    return self._prefix

  # -- problems --------------------------------------------------------------

  def problem(self, key: str, value, message: str) -> None:
    """Record a problem at ``key`` (relative to this section)."""
    self._root.problems.append(Problem(self._prefix + key, value, message))

  @staticmethod
  def _leaves(d: Mapping, prefix: str):
    for k, v in d.items():
      if isinstance(v, Mapping) and v:
        yield from ConfigReader._leaves(v, f"{prefix}{k}.")
      else:
        yield f"{prefix}{k}"

  def unread(self) -> list[Problem]:
    """A problem for every key no code read, with the closest known key."""
    root = self._root
    out = []
    for key in ConfigReader._leaves(root._data, ""):
      if key in root.read:
        continue
      # The unknown key: the first level below the sections code looked into.
      parts, prefix, i = key.split("."), "", 0
      while i < len(parts) - 1 and f"{prefix}{parts[i]}." in root.known:
        prefix, i = f"{prefix}{parts[i]}.", i + 1
      name = parts[i]
      known = root.known.get(prefix, set())
      hint = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
      value = _lookup(root._data, prefix + name)
      message = (f"unknown key; did you mean {prefix + hint[0]!r}? "
                 f"(--config.{prefix}{hint[0]}=...)" if hint else
                 "unknown key (nothing reads it); remove it"
                 + (f". Keys read here: {', '.join(sorted(known))}"
                    if known else ""))
      problem = Problem(prefix + name, value, message)
      if problem not in out:
        out.append(problem)
    return out

  def all_problems(self) -> list[Problem]:
    return list(self._root.problems) + self.unread()

  def raise_problems(self) -> None:
    problems = self.all_problems()
    if problems:
      raise ConfigError(problems)

  def raise_recorded_problems(self) -> None:
    """Raises the problems recorded so far (bad values), not the unread keys:
    for code that reads one part of a whole run config."""
    if self._root.problems:
      raise ConfigError(list(self._root.problems))


def _lookup(d: Mapping, dotted: str):
  for part in dotted.split("."):
    d = d[part]
  return plain(d)


def field_names(target) -> list[str]:
  """The config keys of ``target``: a dataclass's (or Flax module's) init
  fields, a ``functools.partial``'s underlying fields, or a function's
  keyword arguments."""
  if isinstance(target, functools.partial):
    return field_names(target.func)
  if dataclasses.is_dataclass(target):
    fields = [f.name for f in dataclasses.fields(target) if f.init]
    if "parent" in fields:                 # a Flax module: parent, name
      fields = [f for f in fields if f not in _FLAX_INTERNAL]
    return fields
  params = inspect.signature(target).parameters.values()
  return [p.name for p in params
          if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def kwargs_for(target, section: ConfigReader | None, *,
               exclude=()) -> dict[str, Any]:
  """The keys of ``section`` that are fields (dataclass) or keyword arguments
  (function) of ``target``, as a dict; the others stay unread (unknown)."""
  if section is None:
    return {}
  if not isinstance(section, ConfigReader):
    section = ConfigReader(section)
  out = {}
  for name in field_names(target):
    if name in exclude:
      continue
    value = section.get(name, _MISSING)
    if value is not _MISSING:
      out[name] = value.to_dict() if isinstance(value, ConfigReader) else value
  return out


def replace(obj, **changes):
  """``dataclasses.replace``; on an object :func:`build` made unchecked (a
  config with problems) the fields are set without the checks."""
  try:
    return dataclasses.replace(obj, **changes)
  except (ValueError, TypeError):
    out = copy.copy(obj)
    for name, value in changes.items():
      object.__setattr__(out, name, value)
    return out


def build(cls: Callable, section: ConfigReader | None, *,
          top: Sequence[str] = (), config: ConfigReader | None = None,
          **fixed):
  """``cls(**fixed, **<section's keys that are cls fields>)``.

  ``top``: fields read from ``config`` (the top level) instead of
  ``section`` (e.g. MoCo's ``temperature`` beside its ``moco`` section).
  Problems raised by the constructor (:class:`FieldError` from
  :func:`check`, or any ``ValueError`` / ``TypeError``) are recorded on the
  reader the field came from, each under its dotted key with a
  ``--config...`` fix, and ``cls`` is built again from ``fixed`` and its
  defaults so that the rest of the config is still checked;
  :meth:`ConfigReader.raise_problems` reports them.
  """
  if section is None:
    section = ConfigReader({})
  elif not isinstance(section, ConfigReader):
    section = ConfigReader(section)
  kwargs = kwargs_for(cls, section, exclude=(*fixed, *top))
  readers = dict.fromkeys(kwargs, section)
  for name in top:
    value = config.get(name, _MISSING)
    if value is not _MISSING:
      kwargs[name], readers[name] = value, config
  try:
    return cls(**fixed, **kwargs)
  except FieldError as e:
    bad = {field for field, _, _ in e.errors}
    for field, value, message in e.errors:
      where = readers.get(field, section)
      where.problem(field, value, f"{message} (--config.{where.prefix}"
                    f"{field}=...)")
  except (ValueError, TypeError) as e:
    bad = set(kwargs)
    section.problem(next(iter(bad)) if len(bad) == 1 else "",
                    kwargs.get(next(iter(bad))) if len(bad) == 1 else kwargs,
                    str(e))
  # Go on with the good values (and defaults), unchecked, so that the rest of
  # the config is checked too; the problems are raised by the caller.
  good = {k: v for k, v in kwargs.items() if k not in bad}
  try:
    return cls(**fixed, **good)
  except (ValueError, TypeError):
    if not dataclasses.is_dataclass(cls):
      raise ConfigError(section.all_problems()) from None
  obj = object.__new__(cls)
  values = {**good, **fixed}
  for f in dataclasses.fields(cls):
    if f.name in values:
      value = values[f.name]
    elif f.default is not dataclasses.MISSING:
      value = f.default
    elif f.default_factory is not dataclasses.MISSING:
      value = f.default_factory()
    else:
      value = None
    object.__setattr__(obj, f.name, value)
  return obj
