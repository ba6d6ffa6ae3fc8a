"""datatree: an object graph stored as JSON and arrays, rebuilt from allowed classes only."""

import json

import numpy as np
import pytest

from hpcopt.optimize import datatree


class Node:
    pass


class Bag(dict):
    pass


def graph():
    shared = np.arange(3.0)
    a, b = Node(), Node()
    a.x, a.same, a.other, a.rng = shared, shared, b, np.random.default_rng(5)
    b.back, b.keys, b.nan = a, {(0, 1): "tuple key", 2: [1, 2.5, None]}, float("nan")
    a.bag = Bag(one=np.float32(1.5), two={"s": {1, 2}, "t": (3, "x")})
    a.bag.extra = True
    a.fn = np.linalg.eigh
    return a


def test_a_graph_comes_back_with_its_shape_and_values():
    text, arrays = datatree.dump(graph(), [Node, Bag], [np.linalg.eigh], name="g")
    assert set(arrays) == {"g.x"}
    a = datatree.load(text, arrays, [Node, Bag], [np.linalg.eigh])
    assert np.array_equal(a.x, np.arange(3.0)) and a.same is a.x and a.other.back is a
    assert a.other.keys == {(0, 1): "tuple key", 2: [1, 2.5, None]} and np.isnan(a.other.nan)
    assert type(a.bag) is Bag and a.bag["one"] == np.float32(1.5) and type(a.bag["one"]) is np.float32
    assert a.bag["two"] == {"s": {1, 2}, "t": (3, "x")} and a.bag.extra is True and a.fn is np.linalg.eigh
    assert a.rng.standard_normal() == np.random.default_rng(5).standard_normal()


def test_dump_refuses_what_it_cannot_store_as_data():
    with pytest.raises(TypeError, match="Node"):
        datatree.dump(graph(), [Bag], [np.linalg.eigh])
    with pytest.raises(TypeError, match="eigh"):
        datatree.dump(graph(), [Node, Bag])


@pytest.mark.parametrize("node, message", [
    ({"$id": 0, "$obj": "os:system", "attrs": {"$id": 1, "$dict": []}}, "os:system is not among"),
    ({"$ref": "builtins:eval"}, "builtins:eval is not among"),
    ({"$scalar": "|O", "value": 1}, "not a numeric dtype"),
    ({"$id": 0, "$rng": "os", "state": {}}, "not a numpy bit generator"),
    ({"$id": 0, "$array": "missing"}, "missing"),
    ({"$same": 7}, "before it is made"),
    ({"$float": "1e400"}, "not a float"),
    ({"$id": 0, "$list": [{"$id": 0, "$list": []}]}, "new \\$id"),
])
def test_load_refuses_what_is_not_allowed_or_not_well_formed(node, message):
    with pytest.raises(ValueError, match=message):
        datatree.load(json.dumps(node), {}, [Node], [np.linalg.eigh])


def test_a_deeply_nested_document_is_a_value_error():
    text = '{"$id": 0, "$list": [' * 5000 + "1" + "]}" * 5000
    with pytest.raises(ValueError):
        datatree.load(text, {}, [], [])


def test_memory_order_and_views_come_back_as_they_were():
    """cma keeps its eigenvectors in Fortran order (from eigh) and dC as a view of C's
    diagonal, which follows C's in-place updates: a copy in C order sums matrix products
    otherwise, and a detached dC goes stale; either made resumed CMA-ES runs drift."""
    C = np.arange(9.0).reshape(3, 3)
    B = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    graph = {"C": C, "dC": np.diag(C), "column": B[:, 1], "B": B, "again": np.diag(C)}
    text, arrays = datatree.dump(graph, [])
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}  # as HDF5 gives them back: C order
    back = datatree.load(text, arrays, [])
    assert back["B"].flags.f_contiguous and np.array_equal(back["B"], B)
    back["C"] *= 2  # in place, as cma updates C
    assert np.array_equal(back["dC"], [0, 8, 16]) and np.array_equal(back["again"], [0, 8, 16])
    back["B"][0, 1] = -1
    assert back["column"][0] == -1
    assert len(arrays) == 2  # C and B, once each


def test_a_view_reaching_outside_its_array_is_refused():
    C = np.arange(9.0).reshape(3, 3)
    text, arrays = datatree.dump({"C": C, "d": np.diag(C)}, [])
    doctored = text.replace('"offset":0', '"offset":64')
    with pytest.raises(ValueError, match="outside"):
        datatree.load(doctored, arrays, [])

