"""Torch test helpers: a small GPT with every feature on, a micro GPT, and ``TinyExpert`` (a torch
expert that stands in for the neural expert in the adapter tests: it scores each target from the
``seq_len`` tokens before it, in blocks of ``stride`` targets placed by absolute stream position, and
under torch.distributed splits the blocks across ranks as the neural expert does)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pgolf_core.api import Expert  # noqa: E402
from pgolf_neural.config import GPTConfig  # noqa: E402
from pgolf_neural.model import GPT  # noqa: E402

SMALL = dict(vocab_size=64, num_layers=3, model_dim=32, num_heads=4, num_kv_heads=2, mlp_mult=2.0,
             bigram_vocab_size=37, bigram_dim=8, ve_dim=8, ve_layers=[1, 2], xsa_layers=[0, 1, 2],
             rope_dims=4, rope_train_seq_len=8, train_seq_len=16)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The models here are tiny: one thread avoids OpenMP overhead on a busy 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_model(seed: int = 0, **changes) -> GPT:
    """A small model whose parameters are all perturbed, so that no path is the identity."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig.from_dict({**SMALL, **changes}))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


MICRO = dict(vocab_size=1024, num_layers=3, model_dim=32, num_heads=2, num_kv_heads=2, mlp_mult=2.0,
             bigram_vocab_size=64, bigram_dim=16, ve_dim=16, ve_layers=(2,), xsa_layers=(0, 1, 2),
             rope_dims=4, rope_train_seq_len=32, train_seq_len=32)


def micro_model(seed: int = 0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(**MICRO))


class TinyExpert(Expert):
    def __init__(self, seed: int = 0, seq_len: int = 32, stride: int = 16, log=None):
        super().__init__(1024)
        self.model, self.seq_len, self.stride = micro_model(seed), seq_len, stride
        self.log = log  # list of (start, end, len(tokens)) calls, when given

    def adaptable_model(self):
        return self.model, self.seq_len

    def _blocks(self, start, end):
        first = (start - 1) // self.stride
        last = (end - 2) // self.stride
        return [(max(start, 1 + k * self.stride), min(end, 1 + (k + 1) * self.stride)) for k in range(first, last + 1)]

    def _logp_rows(self, tokens, blocks):
        rows = []
        with torch.no_grad():
            for lo, hi in blocks:
                begin = max(0, hi - 1 - self.seq_len)
                x = torch.from_numpy(np.asarray(tokens[begin : hi - 1], dtype=np.int64))[None]
                logits = self.model.forward_logits(x, rope_len=self.seq_len)[0, lo - 1 - begin :]
                rows.append(torch.log_softmax(logits.double(), dim=-1))
        return torch.cat(rows) if rows else torch.zeros((0, self.vocab_size), dtype=torch.float64)

    def distributions(self, tokens, start, end):
        from pgolf_core.run.distributed import gather_rows, share, world

        if self.log is not None:
            self.log.append((start, end, len(tokens)))
        blocks = self._blocks(start, end)
        rank, size = world()
        lo, hi = share(len(blocks), rank, size)
        mine = self._logp_rows(tokens, blocks[lo:hi])
        sizes = [b - a for a, b in blocks]
        counts = [sum(sizes[slice(*share(len(blocks), r, size))]) for r in range(size)]
        return gather_rows(mine, counts).exp().numpy()

    def score(self, tokens, start, end):
        d = self.distributions(tokens, start, end)
        y = np.asarray(tokens[start:end], dtype=np.int64)
        return np.log(d[np.arange(end - start), y])


def demo_stream(n: int) -> np.ndarray:
    from pgolf_core.demo import demo_tokens

    return np.asarray(demo_tokens("val")[:n])
