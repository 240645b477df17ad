"""Plain data: the only values that cross the sandbox boundary.

A candidate's return values come back as JSON text, with tags for what JSON lacks:
``{"tuple": [...]}``, ``{"set": [...]}``, ``{"frozenset": [...]}`` and ``{"dict": [[key, value], ...]}``
(JSON objects appear only as these tags).  :func:`loads` turns that into builtin values of exactly
these types and rejects everything else, so whatever the candidate writes, the grader compares
values it built itself: no object of the candidate's ever reaches the grader.  Arguments go the
other way as Python literals (:func:`literal`).

The source of this file is also sent into every sandboxed candidate, where :func:`dumps` runs:
it imports nothing slow and has no ``from __future__`` line.
"""

import _json

_TAGGED = (tuple, set, frozenset)


def dumps(value: object) -> str:
    """JSON text of plain data (None, bool, int, float, str, list, tuple, set, frozenset, dict; exact types).

    Raises TypeError for anything else, subclasses included.
    """
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float:
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "Infinity" if value > 0 else "-Infinity"
        return float.__repr__(value)
    if kind is str:
        return _json.encode_basestring_ascii(value)
    if kind is list:
        return "[" + ",".join([dumps(v) for v in value]) + "]"
    if kind in _TAGGED:
        return '{"' + kind.__name__ + '":[' + ",".join([dumps(v) for v in value]) + "]}"
    if kind is dict:
        return '{"dict":[' + ",".join(["[" + dumps(k) + "," + dumps(v) + "]" for k, v in value.items()]) + "]}"
    raise TypeError(f"not plain data: {kind.__name__}")


def _untag(obj: object) -> object:
    kind = type(obj)
    if obj is None or kind in (bool, int, float, str):
        return obj
    if kind is list:
        return [_untag(v) for v in obj]  # type: ignore[attr-defined]
    if kind is dict and len(obj) == 1:  # type: ignore[arg-type]
        ((tag, items),) = obj.items()  # type: ignore[attr-defined]
        if type(items) is list:
            if tag == "tuple":
                return tuple(_untag(v) for v in items)
            if tag == "set":
                return {_untag(v) for v in items}
            if tag == "frozenset":
                return frozenset(_untag(v) for v in items)
            if tag == "dict" and all(type(p) is list and len(p) == 2 for p in items):
                return {_untag(k): _untag(v) for k, v in items}
    raise ValueError("not plain data")


def loads(text: str) -> object:
    """Plain data from :func:`dumps` text; ValueError (or RecursionError) for anything else."""
    import json

    return _untag(json.loads(text))


def literal(value: object) -> str:
    """A Python literal of plain data (for ``eval`` with only ``set``/``frozenset``/``inf``/``nan`` defined)."""
    dumps(value)  # the same types as the way back, or TypeError
    return repr(value)
