"""The static decode step captured once as a CUDA graph and replayed (spec: Algorithm 14).

At batch 1 a decode step of a small model launches a few hundred short kernels; launching
them from Python costs more than running them. ``StaticDecoder``'s step
(torch_impl/static_decode.py) has fixed shapes and fixed buffers -- the KV cache is
preallocated and written in place at the tensor position ``pos`` -- so the kernels of one
step can be recorded once with ``torch.cuda.CUDAGraph`` and replayed for every token: each
replay reads the new token and position from two static input buffers and leaves the next
logits in a static output buffer. The replayed kernels are the eager step's own, on the
same inputs, so a graph decode produces the eager static decode's tokens exactly.

Off CUDA there is nothing to capture: the decoder runs the eager static step (``graphed`` is
False), so the same code path is testable on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from torch_impl.models import DTransformer
from torch_impl.static_decode import StaticDecoder

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (token (B, 1), pos (1,)) -> logits


class GraphedStep:
    """``step`` recorded as one CUDA graph over static token, position and logits buffers.

    Warm-up runs (on a side stream, as CUDA graph capture requires) and the capture call
    ``step`` on the buffers' current token and position (StaticDecoder's start as zeros):
    they write the cache there, and every decode overwrites the cache with its prompt and
    tokens before reading it.
    """

    def __init__(self, step: Step, token: torch.Tensor, pos: torch.Tensor, warmup: int = 3):
        self.token, self.pos = token, pos  # (B, 1) and (1,): the graph reads them in place
        device = token.device
        with torch.inference_mode():
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    step(self.token, self.pos)
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.logits = step(self.token, self.pos)  # (B, N_V), rewritten by each replay

    def __call__(self, token: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """The next logits (B, N_V), valid until the next call (the graph's output buffer).

        Inputs other than the static buffers are copied into them first."""
        if token is not self.token:
            self.token.copy_(token)
        if pos is not self.pos:
            self.pos.copy_(pos)
        self.graph.replay()
        return self.logits


class CUDAGraphDecoder(StaticDecoder):
    """``StaticDecoder`` whose single-token step replays a CUDA graph on a CUDA model.

    ``generate`` is StaticDecoder's (eager prefill, then one step per new token); only the
    step differs. On a CPU model the step stays the eager static step (``graphed`` False).
    """

    def __init__(self, model: DTransformer, B: int = 1, capacity: int | None = None):
        super().__init__(model, B, capacity, compile=False)
        device = model.lm_head.weight.device
        self.graphed = device.type == "cuda"
        if self.graphed:  # StaticDecoder.generate steps through its own token and pos buffers
            self.step = GraphedStep(self._step, self.token, self.pos)
