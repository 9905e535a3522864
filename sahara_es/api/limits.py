"""What a request body may be, checked before and after it is parsed, so that hostile input
gets a 4xx naming what is wrong rather than a 500 or a giant event.

- its size: ``MAX_CONTENT_LENGTH`` (413 beyond it, before anything is parsed);
- its nesting: ``[`` and ``{`` at most ``max_json_depth`` deep, counted on the raw text
  before ``json.loads`` (whose recursion would otherwise end in a ``RecursionError``);
- its numbers: finite (``NaN``, ``Infinity`` and numbers too large for a float are not JSON
  that could be answered back);
- its strings: no NUL character and no lone surrogate anywhere, keys included (neither can be
  stored nor used as a file name);
- its free-form configs (``node_configs``, ``cluster_configs``, ``job_configs``...): at
  most ``max_config_bytes`` each, serialized.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

from sahara_es.api.errors import ApiError, bad_request

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_CONFIG_BYTES = 64 * 1024

CONFIG_FIELDS = ("node_configs", "cluster_configs", "job_configs", "interface", "extra",
                 "credentials", "plugin_labels", "version_labels")
"""Free-form fields whose serialized size is bounded by ``max_config_bytes``, at any depth of
a body (a cluster's node groups carry ``node_configs`` each)."""

# One token at a time, each character read once: a run of characters that are neither quotes
# nor brackets, a string (to its closing quote, or to the end if it has none), or a bracket.
_TOKENS = re.compile(r'[^"\[\]{}]++|"(?:[^"\\]++|\\.)*+"?|[\[\]{}]', re.S)


@dataclass(frozen=True, kw_only=True)
class Limits:
    max_body_bytes: int = MAX_BODY_BYTES
    max_json_depth: int = MAX_JSON_DEPTH
    max_config_bytes: int = MAX_CONFIG_BYTES


def malformed(detail: str) -> ApiError:
    return bad_request(detail, code="malformed-body", name="MALFORMED_REQUEST_BODY")


def nesting_depth_exceeds(text: str, limit: int) -> bool:
    """Whether arrays and objects nest deeper than ``limit`` in the JSON ``text`` (brackets
    inside strings do not count); linear in the text, and stops at the first excess."""
    depth = 0
    for token in _TOKENS.finditer(text):
        char = token.group()
        if char in ("[", "{"):
            depth += 1
            if depth > limit:
                return True
        elif char in ("]", "}"):
            depth -= 1
    return False


def parse(raw: bytes, limits: Limits) -> Any:
    """The JSON document in ``raw``, or a 400 saying why it is not one we take."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise malformed("the body is not valid UTF-8") from None
    if nesting_depth_exceeds(text, limits.max_json_depth):
        raise malformed(f"the body nests arrays and objects deeper than"
                        f" {limits.max_json_depth} levels")
    try:
        return json.loads(text, parse_constant=_not_a_number, parse_float=_finite)
    except NotFinite as error:
        raise malformed(f"the body holds {error.args[0]}: only finite numbers are JSON"
                        " (NaN and Infinity are not)") from None
    except RecursionError:
        raise malformed(f"the body nests arrays and objects deeper than"
                        f" {limits.max_json_depth} levels") from None
    except ValueError:
        raise malformed("the body is not valid JSON") from None


class NotFinite(ValueError):
    """A number JSON has no room for (Python's parser takes it by default)."""


def _not_a_number(constant: str) -> Any:
    raise NotFinite(constant)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NotFinite(f"{text[:20]}{'...' if len(text) > 20 else ''} (out of range)")
    return value


def check_strings(value: Any, path: str = "body") -> None:
    """No NUL character and no lone surrogate in any string or key (400 naming where)."""
    if isinstance(value, str):
        _check_string(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(str(key), f"{path} key {_shorten(str(key))!r}")
            check_strings(item, f"{path}.{_shorten(str(key))}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_strings(item, f"{path}[{index}]")


def _check_string(value: str, path: str) -> None:
    if "\x00" in value:
        raise bad_request(f"{path}: NUL characters are not allowed", code="invalid-characters",
                          name="INVALID_DATA")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise bad_request(f"{path}: lone surrogates (invalid unicode) are not allowed",
                          code="invalid-characters", name="INVALID_DATA") from None


def _shorten(key: str) -> str:
    key = key.replace("\x00", "\\0")
    return key if len(key) <= 40 else f"{key[:37]}..."


def check_config_sizes(value: Any, limits: Limits, path: str = "body") -> None:
    """Each free-form config (``CONFIG_FIELDS``), serialized, within ``max_config_bytes``."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path != "body" else str(key)
            if key in CONFIG_FIELDS:
                size = len(json.dumps(item, separators=(",", ":")).encode("utf-8"))
                if size > limits.max_config_bytes:
                    raise bad_request(f"{where}: {size} bytes serialized, more than the limit"
                                      f" of {limits.max_config_bytes}", code="config-too-large",
                                      name="INVALID_DATA")
                continue  # what it nests is part of the text just measured
            check_config_sizes(item, limits, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_config_sizes(item, limits, f"{path}[{index}]")
