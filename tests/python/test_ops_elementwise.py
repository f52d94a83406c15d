"""Conformance of the elementwise ops on the CPU backend against PyTorch."""
import math

import pytest
import torch

from conformance import FLOAT_DTYPES, check_op, randn

aten = torch.ops.aten

# op name -> (reference, input generator)
POSITIVE = lambda shape, dt: (randn(*shape, dtype=torch.float32).abs() + 0.1).to(dt)
ANY = lambda shape, dt: randn(*shape, dtype=torch.float32, scale=2.0).to(dt)
UNARY = {
    "abs": (aten.abs, ANY), "neg": (aten.neg, ANY), "exp": (aten.exp, ANY), "log": (aten.log, POSITIVE),
    "sqrt": (aten.sqrt, POSITIVE), "rsqrt": (aten.rsqrt, POSITIVE), "reciprocal": (aten.reciprocal, POSITIVE),
    "sin": (aten.sin, ANY), "cos": (aten.cos, ANY), "tanh": (aten.tanh, ANY), "erf": (aten.erf, ANY),
    "floor": (aten.floor, ANY), "ceil": (aten.ceil, ANY), "round": (aten.round, ANY), "sign": (aten.sign, ANY),
    "logical_not": (aten.logical_not, ANY), "isnan": (aten.isnan, ANY),
}
SHAPES = [(7,), (3, 5), (2, 3, 4, 5), (), (0, 3), (1, 1, 9)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("op", sorted(UNARY))
def test_unary_float(op, shape, dtype):
    ref, gen = UNARY[op]
    check_op(op, ref, [gen(shape, dtype)])


@pytest.mark.parametrize("op", ["abs", "neg", "sign", "floor", "ceil", "round", "logical_not"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int8])
def test_unary_int(op, dtype):
    x = torch.tensor([[-3, 0, 5], [7, -1, 2]], dtype=dtype)
    check_op(op, UNARY[op][0], [x])


@pytest.mark.parametrize("op", ["exp", "sqrt", "sin"])
def test_unary_int_promotes_to_float(op):
    x = torch.tensor([1, 2, 3, 4], dtype=torch.int64)
    check_op(op, UNARY[op][0], [x])


def test_unary_special_values():
    x = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-40, -2.5, 2.5, 0.5], dtype=torch.float32)
    for op in ["abs", "neg", "exp", "tanh", "erf", "floor", "ceil", "round", "sign", "isnan", "logical_not"]:
        check_op(op, UNARY[op][0], [x])


def test_isnan_logical_not_on_bool_and_int():
    b = torch.tensor([True, False, True])
    check_op("logical_not", aten.logical_not, [b])
    check_op("isnan", aten.isnan, [torch.tensor([1, 2], dtype=torch.int32)])
