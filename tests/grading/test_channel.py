"""The plain-data channel: what crosses, what is refused, and how calls fail (no kernel)."""

from __future__ import annotations

import json
import math
from collections import Counter, OrderedDict, defaultdict, namedtuple

import numpy as np
import pytest
import torch

from llmcourse.grading import channel
from llmcourse.grading.channel import NotPlainData, ProtocolError, decode, encode
from llmcourse.grading.errors import StudentError
from llmcourse.grading.replies import bounded_loads
from llmcourse.grading.session import in_process_student


def roundtrip(value):
    return decode(json.loads(json.dumps(encode(value), allow_nan=False)))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(2**70),
        1.5,
        "ngram ✓",
        [1, [2.0, "x"]],
        (1, ("a", "b")),
        {("the", "cat"): 2, ("<s>",): 1},
        {1: None, "k": [1], (1, (2,)): {"nested": True}},
        {frozenset({1, 2}): {3, 4}},
        [],
        {},
    ],
)
def test_plain_values_roundtrip_with_their_exact_types(value):
    got = roundtrip(value)
    assert got == value
    assert type(got) is type(value)


@pytest.mark.parametrize("number", [math.inf, -math.inf])
def test_infinities_roundtrip(number):
    assert roundtrip(number) == number


def test_nan_roundtrips_as_nan():
    assert math.isnan(roundtrip(math.nan))


@pytest.mark.parametrize(
    "tensor",
    [
        torch.arange(24, dtype=torch.float32).reshape(2, 3, 4),
        torch.tensor([[True, False]]),
        torch.tensor(3, dtype=torch.int64),
        torch.randn(3, dtype=torch.bfloat16),
        torch.randn(2, 2, dtype=torch.float16),
        torch.randn(2, dtype=torch.complex64),
        torch.empty(0, 5),
        torch.arange(6.0).reshape(2, 3).t(),  # not contiguous
        torch.tensor([math.nan, math.inf, -math.inf]),
    ],
    ids=lambda t: f"{t.dtype}{list(t.shape)}",
)
def test_tensors_roundtrip_as_raw_bytes(tensor):
    got = roundtrip(tensor)
    assert type(got) is torch.Tensor
    assert got.dtype == tensor.dtype and got.shape == tensor.shape
    torch.testing.assert_close(got, tensor, rtol=0, atol=0, equal_nan=True)


def test_tensors_lose_grad_and_subclass():
    parameter = torch.nn.Parameter(torch.ones(2))
    got = roundtrip(parameter)
    assert type(got) is torch.Tensor and not got.requires_grad


@pytest.mark.parametrize(
    "array", [np.arange(6, dtype=np.int32).reshape(2, 3), np.array([1.5, np.nan]), np.zeros((0,))]
)
def test_arrays_roundtrip(array):
    got = roundtrip(array)
    assert type(got) is np.ndarray and got.dtype == array.dtype
    np.testing.assert_array_equal(got, array)


def test_subclasses_travel_as_their_base_type():
    Point = namedtuple("Point", "x y")
    value = [Counter(a=1), OrderedDict(b=2), defaultdict(int, c=3), Point(1, 2), np.float32(0.5)]
    got = decode(json.loads(channel.dumps(value, 10**6)))
    assert got == [{"a": 1}, {"b": 2}, {"c": 3}, (1, 2), 0.5]
    assert [type(x) for x in got] == [dict, dict, dict, tuple, float]


def test_arguments_keep_counters():
    assert type(roundtrip(Counter(a=1))) is Counter


class AlwaysEqual:
    def __eq__(self, other):
        return True


class EvilDict(dict):
    def __eq__(self, other):
        return True


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (AlwaysEqual(), "an object of type test_channel.AlwaysEqual"),
        ([1, object()], "an object of type builtins.object"),
        (print, "builtin_function_or_method"),
        (torch.randn(2, 2).to_sparse(), "sparse"),
        (np.array(["a"]), "an array of dtype <U1"),
    ],
)
def test_values_that_are_not_plain_data_are_refused(value, message):
    with pytest.raises(NotPlainData, match=message):
        encode(value)


def test_an_evil_dict_comes_back_as_a_plain_dict_that_compares_honestly():
    got = roundtrip(EvilDict(a=1))
    assert type(got) is dict and got != {"a": 2}


def test_too_deep_and_too_large_values_are_refused():
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(NotPlainData, match="levels deep"):
        encode(deep)
    with pytest.raises(NotPlainData, match="over the"):
        channel.dumps("x" * 1000, limit=100)


@pytest.mark.parametrize(
    "data",
    [
        {"$nope": 1},
        {"a": 1},
        {"$float": "1.5"},
        {"$tuple": "abc"},
        {"$dict": [[[1], 2]]},
        {"$dict": [[1, 2, 3]]},
        {"$set": [[1]]},
        {"$tensor": {"dtype": "float32", "shape": [2], "data": "AAAA"}},
        {"$tensor": {"dtype": "object", "shape": [1], "data": ""}},
        {"$tensor": {"dtype": "float32", "shape": [-1], "data": ""}},
        {"$ndarray": {"dtype": "int8", "shape": [1], "data": "not base64!"}},
        {"$tensor": {"dtype": "int8", "shape": [1], "data": "AA==", "extra": 1}},
        1e400,
    ],
)
def test_malformed_data_is_a_protocol_error(data):
    with pytest.raises(ProtocolError):
        decode(data)


@pytest.mark.parametrize(
    "text",
    ['{"ok": NaN}', '{"ok": 1, "error": {}}', "[" * 100_000, '{"error": {"kind": 1}}', "nope"],
)
def test_malformed_responses_are_protocol_errors(text):
    with pytest.raises(ProtocolError):
        channel.parse_response(text)


def test_values_are_counted_before_json_makes_them():
    """Commas inside strings do not count; a list of 10,001 numbers is refused unparsed."""
    data = rb'["a,b,[c{", {"k": [1, 2]}, "q\"u,o{"]'
    assert bounded_loads(data, 7) == ["a,b,[c{", {"k": [1, 2]}, 'q"u,o{']
    with pytest.raises(ProtocolError, match="10,002 values, over the limit of 5,000"):
        bounded_loads(b"[" + b"0," * 10_000 + b"0]", 5_000)


NAMESPACE: dict = {}
exec(
    """
import random
def add(a, b):
    return a + b
def fails(x):
    raise KeyError(x)
class MyError(ValueError):
    pass
def custom():
    raise MyError("bad value")
def stub():
    raise NotImplementedError()
def draw():
    return random.random()
def weird():
    return AlwaysEqual()
class AlwaysEqual:
    def __eq__(self, other):
        return True
not_a_function = 3
""",
    NAMESPACE,
)
STUDENT = in_process_student(NAMESPACE)


def test_a_call_returns_plain_data():
    assert STUDENT.call("add", [1], [2]) == [1, 2]
    assert STUDENT.call("add", a=torch.ones(2), b=1).tolist() == [2.0, 2.0]


def test_student_exceptions_match_builtin_classes_and_say_where():
    with pytest.raises(KeyError) as caught:
        STUDENT.call("fails", "x")
    assert isinstance(caught.value, StudentError) and caught.value.kind == "raised"
    assert caught.value.summary == "fails raised KeyError: 'x'"
    assert "in fails" in caught.value.student_traceback
    with pytest.raises(ValueError, match="bad value") as caught:
        STUDENT.call("custom")
    assert caught.value.type_name == "MyError"
    with pytest.raises(NotImplementedError) as caught:
        STUDENT.call("stub")
    assert caught.value.kind == "not_implemented"


@pytest.mark.parametrize(
    ("name", "kind", "message"),
    [
        ("missing", "undefined", "missing is not defined"),
        ("not_a_function", "undefined", "not_a_function is a int"),
        ("weird", "not_plain", r"weird returned an object of type \w+\.AlwaysEqual; expected"),
    ],
)
def test_calls_that_cannot_return_data(name, kind, message):
    with pytest.raises(StudentError, match=message) as caught:
        STUDENT.call(name)
    assert caught.value.kind == kind
    assert not isinstance(caught.value, ValueError | TypeError)


def test_every_call_is_seeded_the_same():
    assert STUDENT.call("draw") == STUDENT.call("draw")


def test_the_kernel_expression_ignores_globals_that_shadow_builtins():
    namespace = {"compile": 1, "exec": 2, "globals": 3, "json": 4, "inc": lambda x: x + 1}
    request = channel.call_request("inc", (1,), {}, seed=0)
    response = eval(channel.call_expression(request, 10**6), namespace)
    assert channel.check_response(response._repr_json_()) == ("ok", 2)  # as IPython sends it
    assert set(namespace) == {"compile", "exec", "globals", "json", "inc", "__builtins__"}
