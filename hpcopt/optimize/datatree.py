"""An optimiser's object graph as data: a JSON document plus named numpy arrays,
rebuilt only from classes and functions the caller allows.

Run files travel between people; a pickle in one runs code when it is loaded.
``dump`` walks an object graph (pycma's strategy: dicts, lists, numpy arrays and
scalars, and plain objects of its own classes) and writes it as
JSON-compatible nodes; every array goes beside it under the path where it was
found (``es.sm.C``). ``load`` rebuilds the graph: an object is made with
``cls.__new__`` and its ``__dict__`` filled in, so no code of the stored data
runs, and a class or function that is not in the caller's allowlist is a
``ValueError`` naming it. Shared and cyclic references are kept (``$id`` /
``$same``), so the rebuilt graph has the original's identity structure, and so is
the arrays' memory: an array in Fortran order is rebuilt in Fortran order (a matrix
product sums in another order otherwise, and a resumed run drifts in the last bits),
and a view into another array's memory (cma's ``dC``, the diagonal of ``C``, which
follows C's in-place updates) is rebuilt as the same view of the rebuilt owner.
"""

import json

import numpy as np

_PLAIN = (type(None), bool, int, float, str)
_GENERATORS = {"PCG64": np.random.PCG64, "PCG64DXSM": np.random.PCG64DXSM, "MT19937": np.random.MT19937,
               "Philox": np.random.Philox, "SFC64": np.random.SFC64}


def _name(obj):
    return f"{obj.__module__}:{obj.__qualname__}"


def dump(root, classes, functions=(), name="root"):
    """(JSON text, {path: ndarray}) of the graph under ``root`` (paths start with ``name``).

    classes: the classes whose instances may appear (and be rebuilt);
    functions: callables (or classes used as values) that may appear as values.
    TypeError for anything else (a graph this module cannot store as data).
    """
    allowed = {id(c) for c in classes}
    refs = {id(f): _name(f) for f in functions}
    refs.update({id(c): _name(c) for c in classes})
    arrays, seen, alive, stored = {}, {}, [], {}  # alive: no id in ``seen`` is reused by a later object

    def node(obj, path):
        if type(obj) in _PLAIN:
            return obj if not isinstance(obj, float) or np.isfinite(obj) else {"$float": repr(obj)}
        if isinstance(obj, np.generic):
            return {"$scalar": obj.dtype.str, "value": node(obj.item(), path)}
        if id(obj) in refs:
            return {"$ref": refs[id(obj)]}
        if id(obj) in seen:
            return {"$same": seen[id(obj)]}
        seen[id(obj)] = tag = len(seen)
        alive.append(obj)
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                raise TypeError(f"{path}: an array of Python objects")
            owner = _owner(obj)
            if owner is not None:  # a view into another array's memory: that array, and where
                start = obj.__array_interface__["data"][0] - owner.__array_interface__["data"][0]
                view = {"$id": tag, "$view": None, "order": _order(owner), "dtype": obj.dtype.str,
                        "shape": list(obj.shape), "strides": list(obj.strides), "offset": start}
                if _inside(owner, view):  # else (as_strided beyond its owner) stored as a copy
                    view["$view"] = store(owner, path + "#owner")
                    return view
            return {"$id": tag, "$array": store(obj, path), "order": _order(obj)}
        if isinstance(obj, np.random.Generator):
            bits = type(obj.bit_generator).__name__
            return {"$id": tag, "$rng": bits, "state": node(obj.bit_generator.state, f"{path}.state")}
        if type(obj) is range:
            return {"$range": [obj.start, obj.stop, obj.step]}
        if type(obj) in (list, tuple, set, frozenset):
            return {"$id": tag, f"${type(obj).__name__}": [node(v, f"{path}[{i}]") for i, v in enumerate(obj)]}
        if type(obj) is dict:
            return {"$id": tag, "$dict": _pairs(obj, path)}
        if id(type(obj)) not in allowed:
            what = _name(obj) if callable(obj) and hasattr(obj, "__qualname__") else f"an object of {_name(type(obj))}"
            raise TypeError(f"{path}: {what}, not among the allowed classes and functions")
        out = {"$id": tag, "$obj": _name(type(obj)), "attrs": node(dict(vars(obj)), path)}
        if isinstance(obj, dict):
            out["items"] = _pairs(obj, path)
        elif isinstance(obj, list):
            out["items"] = [node(v, f"{path}[{i}]") for i, v in enumerate(obj)]
        return out

    def store(array, path):
        """The key of ``array`` among the stored arrays (stored once)."""
        if id(array) not in stored:
            key = path.replace("/", "|")  # an HDF5 name holds no slash
            stored[id(array)] = key = key if key not in arrays else f"{key}#{len(arrays)}"
            arrays[key] = array
            alive.append(array)
        return stored[id(array)]

    def _pairs(mapping, path):
        return [[node(k, f"{path}<key>"), node(v, f"{path}.{k}" if isinstance(k, str) else f"{path}[{k!r}]")]
                for k, v in mapping.items()]

    return json.dumps(node(root, name), separators=(",", ":")), arrays


def load(text, arrays, classes, functions=()):
    """The graph ``dump`` wrote, rebuilt; ValueError naming what is not allowed or
    not well formed."""
    known = {_name(c): c for c in classes}
    refs = dict(known)
    refs.update({_name(f): f for f in functions})
    made, stores = {}, {}

    def build(n):
        if type(n) in _PLAIN:
            return n
        if isinstance(n, list) or not isinstance(n, dict):
            raise ValueError(f"not a node: {str(n)[:80]}")
        if "$scalar" in n:
            return np.dtype(_dtype(n["$scalar"])).type(build(n["value"]))
        if "$float" in n or "$range" in n:
            return _number(n)
        if "$ref" in n:
            if n["$ref"] not in refs:
                raise ValueError(f"{n['$ref']} is not among the allowed classes and functions")
            return refs[n["$ref"]]
        if "$same" in n:
            if n["$same"] not in made:
                raise ValueError(f"a reference to object {n['$same']} before it is made")
            return made[n["$same"]]
        tag = n.get("$id")
        if not isinstance(tag, int) or tag in made:
            raise ValueError(f"a node without a new $id: {str(n)[:80]}")
        return _make(n, tag)

    def _make(n, tag):
        if "$array" in n:
            made[tag] = value = _storage(arrays, stores, n["$array"], n.get("order"))
            return value
        if "$view" in n:
            made[tag] = value = _view(_storage(arrays, stores, n["$view"], n.get("order")), n)
            return value
        if "$rng" in n:
            if n["$rng"] not in _GENERATORS:
                raise ValueError(f"{n['$rng']} is not a numpy bit generator")
            made[tag] = value = np.random.Generator(_GENERATORS[n["$rng"]]())
            value.bit_generator.state = build(n["state"])
            return value
        for kind, make in (("$list", list), ("$set", set), ("$tuple", tuple), ("$frozenset", frozenset)):
            if kind in n:
                if kind == "$list":  # mutable: registered first, so that it may contain itself
                    made[tag] = value = []
                    value.extend(build(v) for v in n[kind])
                    return value
                made[tag] = value = make(build(v) for v in n[kind])
                return value
        if "$dict" in n:
            made[tag] = value = {}
            value.update(_entries(n["$dict"]))
            return value
        if "$obj" not in n:
            raise ValueError(f"not a node: {str(n)[:80]}")
        cls = known.get(n["$obj"])
        if cls is None:
            raise ValueError(f"{n['$obj']} is not among the allowed classes")
        made[tag] = value = cls.__new__(cls)
        if isinstance(value, dict):
            dict.update(value, _entries(n.get("items", [])))
        elif isinstance(value, list):
            list.extend(value, (build(v) for v in n.get("items", [])))
        attrs = build(n["attrs"])
        if not isinstance(attrs, dict):
            raise ValueError(f"{n['$obj']}: attributes are not a mapping")
        vars(value).update(attrs)
        return value

    def _entries(pairs):
        return [(build(k), build(v)) for k, v in pairs]

    try:
        return build(json.loads(text))
    except (KeyError, TypeError, RecursionError, json.JSONDecodeError) as err:
        raise ValueError(f"not a stored object graph ({type(err).__name__}: {err})") from None


def _storage(arrays, stores, key, order):
    """The array stored as ``key``, rebuilt once (``stores``: those rebuilt so far), in
    ``order``: one object, whoever refers to it."""
    if key not in arrays:
        raise ValueError(f"array {key!r} is missing")
    if key not in stores:
        stores[key] = np.array(arrays[key], order="F" if order == "F" else "C")
    return stores[key]


def _owner(array):
    """The array that owns the memory ``array`` views (None when it owns its own, or
    when that is no contiguous numpy array)."""
    owner = array
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner is array or owner.base is not None or not (owner.flags.c_contiguous or owner.flags.f_contiguous):
        return None
    return owner


def _order(array):
    """"F" for an array laid out in Fortran order only, else "C"."""
    return "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"


def _view(owner, n):
    """The view node ``n`` describes, into ``owner``; ValueError if it would reach outside
    the owner's memory (a damaged or doctored state)."""
    dtype = _dtype(n["dtype"])
    shape, strides, offset = [int(v) for v in n["shape"]], [int(v) for v in n["strides"]], int(n["offset"])
    if len(shape) != len(strides) or min(shape, default=1) < 0:
        raise ValueError(f"not a view: shape {shape}, strides {strides}")
    if not _inside(owner, n):
        raise ValueError(f"a view reaching outside its array's {owner.nbytes} bytes")
    return np.ndarray(shape, dtype, buffer=owner, offset=offset, strides=strides)


def _inside(owner, n):
    """Whether the view node ``n`` stays within ``owner``'s memory."""
    shape, strides, offset = [int(v) for v in n["shape"]], [int(v) for v in n["strides"]], int(n["offset"])
    if min(shape, default=1) == 0:
        return 0 <= offset <= owner.nbytes
    low = offset + sum((k - 1) * s for k, s in zip(shape, strides) if s < 0)
    high = offset + sum((k - 1) * s for k, s in zip(shape, strides) if s > 0) + np.dtype(n["dtype"]).itemsize
    return low >= 0 and high <= owner.nbytes


def _number(n):
    """A non-finite float or a range, from its node."""
    if "$range" in n:
        start, stop, step = (int(v) for v in n["$range"])
        return range(start, stop, step)
    if n["$float"] not in ("nan", "inf", "-inf"):
        raise ValueError(f"not a float: {n['$float']!r}")
    return float(n["$float"])


def _dtype(text):
    dtype = np.dtype(text)
    if dtype.hasobject or dtype.kind not in "biufc":
        raise ValueError(f"not a numeric dtype: {text!r}")
    return dtype
