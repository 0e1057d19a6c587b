"""The one error hierarchy used by every package of formal-transformers.

Every message names the argument, what was expected (shape, range, value) and what was
received, so that a user can fix the call without reading our source.
"""

from __future__ import annotations


class FormalTransformersError(Exception):
    """Base class of every error this project raises on purpose."""


class SpecFormatError(FormalTransformersError, ValueError):
    """A spec file (spec/algorithms/*.md, spec/properties.md, ...) is malformed.

    The message names the file and the field at fault.
    """

    def __init__(self, file: str, field: str, problem: str):
        self.file = file
        self.field = field
        self.problem = problem
        super().__init__(f"{file}: field '{field}': {problem}")


class ConfigError(FormalTransformersError, ValueError):
    """A hyperparameter is out of its domain (e.g. d_e not divisible by H)."""


class SpecShapeError(FormalTransformersError, ValueError):
    """An array does not have the shape the spec gives it."""


class SpecDTypeError(FormalTransformersError, TypeError):
    """An array does not have a dtype the callee accepts."""


class TokenRangeError(FormalTransformersError, ValueError):
    """A token id lies outside the vocabulary [N_V] = {0, ..., N_V - 1}."""


class SequenceLengthError(FormalTransformersError, ValueError):
    """A sequence is empty or longer than the context size l_max."""


class NonFiniteError(FormalTransformersError, ValueError):
    """An input or parameter holds NaN or Inf."""


class MaskError(FormalTransformersError, ValueError):
    """A mask is not a boolean matrix of the expected shape."""


class ParameterFileError(FormalTransformersError, ValueError):
    """A parameter file or mapping has missing, extra or mis-shaped entries, or is unreadable."""


class CheckpointError(FormalTransformersError, ValueError):
    """A checkpoint directory is missing, truncated, or from another architecture."""


class AdapterError(FormalTransformersError, TypeError):
    """A conformance adapter is malformed or returned something other than the spec's output."""


class BackwardCacheError(FormalTransformersError, ValueError):
    """A backward pass got a cache its forward did not fill (run the forward with cache={})."""


class SourceError(FormalTransformersError, ValueError):
    """A training source is unknown, empty, or does not fit the chosen architecture."""


class UnsupportedVariantError(ConfigError):
    """A model declares a variant the spec does not have (a bridge refuses it by name)."""


class OutputPathError(FormalTransformersError, ValueError):
    """An output path (--out, --json PATH, ...) is not somewhere a file may be written: a
    directory, device node, FIFO or symbolic link, or in a directory that is not writable."""


class TrainingDivergedError(NonFiniteError):
    """Training produced a non-finite loss; the run stopped and kept its last finite checkpoint."""


class BenchmarkCheckError(FormalTransformersError, RuntimeError):
    """A benchmark's own correctness check failed (e.g. a fast decoder's tokens differ from
    the eager decoder's): its timings are not reported."""
