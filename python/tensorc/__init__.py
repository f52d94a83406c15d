"""tensorc: an inference compiler for PyTorch models. `tensorc.compile(module, inputs)` splits a
model into parts that tensorc engines run and parts that stay in PyTorch; `torch.compile(model,
backend="tensorc")` does the same per captured graph; `tensorc.save` / `tensorc.load` keep the result.
Importing tensorc registers the tensorc::execute_engine op, which saved programs need."""
from . import _C
from ._C import Error
from ._log import logger
from .compile import Input, compile, decomposition_table, partition_report, register_backend, tensorc_backend
from .partition import UnsupportedError
from .runtime import EngineModule, InputError
from .save import EngineFileModule, load, save

__version__ = "0.1.0"
__all__ = ["Error", "EngineFileModule", "EngineModule", "Input", "InputError", "UnsupportedError", "compile",
           "decomposition_table", "load", "logger", "partition_report", "save", "tensorc_backend", "version"]


def version():
    """The C library's version and compiled-in backends, e.g. "0.1.0 (backends: cpu)"."""
    return _C.version()


register_backend()
