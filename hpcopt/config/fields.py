"""Validation helpers shared by every part of the config: where a field is, how a
value is shown in a message, and the checks every reader repeats (a table's keys, a
number's type and range), each raising one ConfigError naming file and field."""

import json
import math
import os

from ..errors import ConfigError


def read_json(path, what="config"):
    """The decoded JSON file ``path``; a ConfigError naming it if unreadable or not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as err:
        raise ConfigError(path, f"cannot read {what}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(path, f"not UTF-8 text: byte 0x{err.object[err.start]:02x} at offset {err.start}") from err
    except json.JSONDecodeError as err:
        raise ConfigError(path, f"not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from err


class Where:
    """A field path inside a config file, for messages."""

    def __init__(self, source, path=()):
        self.source, self.path = source, path

    def __truediv__(self, key):
        return Where(self.source, self.path + (str(key),))

    def error(self, key, message):
        field = ".".join(self.path + ((str(key),) if key is not None else ()))
        return ConfigError(f"{self.source}: {field}" if field else self.source, message)


def show(value):
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) < 60 else text[:57] + "..."


def table(raw, where, required=(), optional=()):
    if not isinstance(raw, dict):
        raise where.error(None, f"expected an object {{...}}, found {show(raw)}")
    valid = tuple(required) + tuple(optional)
    for key in raw:
        if key not in valid:
            raise where.error(key, f"unknown key; valid keys here: {', '.join(valid)}")
    for key in required:
        if key not in raw:
            raise where.error(key, "missing (required)")
    return raw


def finite(value):
    """Whether the JSON number ``value`` is finite and a float holds it (Python's json
    reads NaN, Infinity and integers of any length)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def number(raw, where, key, *, minimum=None, above=None, maximum=None, integer=False):
    value = raw[key]
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
        raise where.error(key, f"expected {kind}, found {show(value)}")
    if not finite(value):
        raise where.error(key, f"expected a finite number, found {show(value)}")
    if minimum is not None and value < minimum:
        raise where.error(key, f"must be >= {minimum}, found {show(value)}")
    if above is not None and value <= above:
        raise where.error(key, f"must be > {above}, found {show(value)}")
    if maximum is not None and value > maximum:
        raise where.error(key, f"must be <= {maximum:,}, found {show(value)}")
    return int(value) if integer else float(value)


def numbers(raw, where, key):
    """The list of finite numbers of field ``key``, as a tuple of floats."""
    values = raw[key]
    if not isinstance(values, list):
        raise where.error(key, f"expected a list of numbers, found {show(values)}")
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not finite(value):
            raise where.error(f"{key}.{i}", f"expected a finite number, found {show(value)}")
    return tuple(map(float, values))


def path_of(value, where, key, base_dir):
    """The path ``value`` of field ``key``, relative to ``base_dir`` (the config's folder)."""
    if not isinstance(value, str) or not value:
        raise where.error(key, f"expected a path, found {show(value)}")
    return os.path.normpath(os.path.join(base_dir or ".", os.path.expanduser(value)))


def callable_name(raw, where, key, shape="'package.module:callable'"):
    """The 'module:name' string of field ``key`` (``shape``: how a message shows it)."""
    value = raw[key]
    if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
        raise where.error(key, f"expected {shape}, found {show(value)}")
    return value


def import_path(raw, where, base_dir):
    """The directories of field ``path`` (put in front of sys.path to import the user's
    code); default: the config's folder."""
    path = raw.get("path", [base_dir] if base_dir else [])
    if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
        raise where.error("path", f"expected a list of directories, found {show(path)}")
    return tuple(path)
