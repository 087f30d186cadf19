"""The output-layer registry: the one place that knows how hidden features become word
log-probabilities. Model, training and export ask this registry; no other file branches on the
output layer's name.

Every output layer is an ``nn.Module`` built as ``model.decoder`` with three methods, all on
2-D features ``h [N, D]`` (rows = batch × time positions):

* ``loss(h, targets [N]) -> [N]``      negative log-likelihood per row (training);
* ``target_logprob(h, targets [N]) -> [N]``  exact ln P(target | h) (the score graph);
* ``log_probs(h) -> [N, V]``           the full normalised log-distribution (the step graph);
* ``export_ready() -> nn.Module``     the layer as the graphs hold it (export calls it).

Each entry of :data:`OUTPUTS` declares the model settings it reads and its capabilities by name;
adding an output layer is one entry (from any file: ``OUTPUTS["name"] = OutputLayer(...)``).

``full``: one ``[V, D]`` linear layer and a softmax over the whole vocabulary.

``adaptive`` (Grave et al., 2017): the vocabulary, numbered by falling frequency, is cut at
``cutoffs`` c0 < c1 < ... into a head and tail clusters::

    ids   0 ........ c0-1 | c0 ......... c1-1 | c1 ........... V-1
          head words       | tail cluster 1    | tail cluster 2
    head  softmax over [c0 words + one entry per tail cluster]          h [N, D] -> [N, c0+K]
    tail k  h -> proj_k [N, D/div^k] -> softmax over its words          (rows that need it)

    ln P(w) = head[w]                                  (w in the head)
    ln P(w) = head[c0 + k - 1] + tail_k[w - c_{k-1}]   (w in tail cluster k)

Every distribution is exact and normalised. ``target_logprob`` and ``loss`` run a tail cluster
only on the rows whose target lies in it, so the ``[N, V]`` distribution is never built; only
``log_probs`` (the one-step graph) assembles it. On a GPU the tails run on every row and are
masked instead (no ``nonzero``, so no host synchronisation per step; same values).

Tied weights: the head's word rows are the embedding's first c0 rows; tail cluster k's word
vectors are its words' embedding rows mapped down by a learned ``[E, E/div^k]`` matrix
(``TiedTail``), so rare words' output vectors learn from their input embeddings too (test
sentence perplexity 30.16 → 29.67 on the KJV `tiny` recipe, bench/README.md). The cluster
entries, the projections and the biases are the layer's own; export folds each tail's product
into one constant matrix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pocketlm.runtime.artifact import PocketLMError


class FullSoftmax(nn.Linear):
    """Softmax over the whole vocabulary: ``logits = h W^T + b``, ``W`` [V, D]. With ``tied``
    the weight is the embedding matrix itself (parameter names stay ``decoder.weight``,
    ``decoder.bias``)."""

    def __init__(self, in_size: int, vocab_size: int, tied: nn.Embedding | None) -> None:
        super().__init__(in_size, vocab_size)
        if tied is not None:
            self.weight = tied.weight
        self.tied = tied is not None
        nn.init.zeros_(self.bias)
        if not self.tied:
            nn.init.uniform_(self.weight, -0.1, 0.1)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return super().forward(h)                                          # (N, V)

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        return F.log_softmax(self.logits(h).float(), dim=-1)               # (N, V)

    def target_logprob(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.log_probs(h).gather(1, targets.unsqueeze(1)).squeeze(1)  # (N,)

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(h).float(), targets, reduction="none")  # (N,)

    def export_ready(self) -> nn.Module:
        """The layer as the graphs hold it (this one already is)."""
        return self


class TiedTail(nn.Module):
    """A tail cluster's word layer tied to the embedding: the output vectors of words
    ``lo..hi-1`` are their embedding rows mapped down, ``E[lo:hi] Q`` with ``Q`` [E, size]
    learned, plus a bias per word. Export folds the product into one constant matrix."""

    def __init__(self, embedding: nn.Embedding, lo: int, hi: int, size: int) -> None:
        super().__init__()
        self._embedding = [embedding]                             # a reference, not a submodule
        self.lo, self.hi = lo, hi
        dim = embedding.weight.shape[1]
        self.down = nn.Parameter(torch.empty(dim, size))
        nn.init.uniform_(self.down, -(3 / dim) ** 0.5, (3 / dim) ** 0.5)
        self.bias = nn.Parameter(torch.zeros(hi - lo))

    def weight(self) -> torch.Tensor:
        return self._embedding[0].weight[self.lo:self.hi] @ self.down    # (n, size)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.linear(z, self.weight(), self.bias)

    @torch.no_grad()
    def as_linear(self) -> nn.Linear:
        """The same layer with the product computed once (what the graphs hold)."""
        linear = nn.Linear(self.down.shape[1], self.hi - self.lo)
        linear.weight.copy_(self.weight())
        linear.bias.copy_(self.bias)
        return linear


class AdaptiveSoftmax(nn.Module):
    """Frequency clusters: a head of the ``cutoffs[0]`` most frequent words plus one entry per
    tail cluster; tail cluster k sits behind a projection to ``in_size // div_value**k``."""

    def __init__(self, in_size: int, vocab_size: int, tied: nn.Embedding | None,
                 cutoffs: tuple[int, ...] = (1000, 4000), div_value: float = 4.0,
                 tied_tails: bool = True) -> None:
        super().__init__()
        self.bounds = (*cutoffs, vocab_size)                      # c0 < c1 < ... < V
        self.shortlist = cutoffs[0]
        self.clusters = len(cutoffs)
        self.tied = tied is not None
        self._embedding = [tied] if tied is not None else []      # a reference, not a submodule
        if tied is None:
            self.head_words = nn.Parameter(torch.empty(self.shortlist, in_size))
            nn.init.uniform_(self.head_words, -0.1, 0.1)
        self.head_clusters = nn.Parameter(torch.empty(self.clusters, in_size))
        nn.init.uniform_(self.head_clusters, -0.1, 0.1)
        self.head_bias = nn.Parameter(torch.zeros(self.shortlist + self.clusters))
        self.tails = nn.ModuleList()
        for k in range(self.clusters):
            size = max(1, int(in_size // (div_value ** (k + 1))))
            lo, hi = self.bounds[k], self.bounds[k + 1]
            words = (TiedTail(tied, lo, hi, size) if tied is not None and tied_tails
                     else nn.Linear(size, hi - lo))
            self.tails.append(nn.Sequential(nn.Linear(in_size, size, bias=False), words))

    def head_weight(self) -> torch.Tensor:
        words = (self._embedding[0].weight[:self.shortlist] if self.tied  # (c0, D)
                 else self.head_words)
        return torch.cat([words, self.head_clusters], dim=0)           # (c0 + K, D)

    def head_log_probs(self, h: torch.Tensor) -> torch.Tensor:
        logits = F.linear(h, self.head_weight(), self.head_bias)        # (N, c0 + K)
        return F.log_softmax(logits.float(), dim=-1)

    def log_probs(self, h: torch.Tensor) -> torch.Tensor:
        head = self.head_log_probs(h)                                   # (N, c0 + K)
        parts = [head[:, :self.shortlist]]
        for k, tail in enumerate(self.tails):
            tail_lp = F.log_softmax(tail(h).float(), dim=-1)            # (N, n_k)
            parts.append(head[:, self.shortlist + k:self.shortlist + k + 1] + tail_lp)
        return torch.cat(parts, dim=1)                                  # (N, V)

    def target_logprob(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        head = self.head_log_probs(h)                                   # (N, c0 + K)
        # head column of each target: the word itself, or its cluster's entry
        column = targets.clamp(max=self.shortlist - 1)
        for k in range(self.clusters):
            column = torch.where(targets >= self.bounds[k],
                                 torch.full_like(targets, self.shortlist + k), column)
        out = head.gather(1, column.unsqueeze(1)).squeeze(1)            # (N,)
        if h.is_cuda:
            return out + self._dense_tails(h, targets)
        for k, tail in enumerate(self.tails):
            lo, hi = self.bounds[k], self.bounds[k + 1]
            rows = torch.nonzero((targets >= lo) & (targets < hi)).squeeze(1)   # (M,)
            tail_lp = F.log_softmax(tail(h.index_select(0, rows)).float(), dim=-1)  # (M, n_k)
            picked = tail_lp.gather(1, (targets.index_select(0, rows) - lo).unsqueeze(1))
            # each row lies in one cluster: scatter its tail term into place (ONNX ScatterElements)
            out = out + torch.zeros_like(out).scatter(0, rows, picked.squeeze(1))
        return out

    def _dense_tails(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The tail terms computed for every row and masked: no ``nonzero``, so no host
        synchronisation on a GPU, where the small tail matrices cost little."""
        extra = torch.zeros(targets.shape, dtype=torch.float32, device=h.device)
        for k, tail in enumerate(self.tails):
            lo, hi = self.bounds[k], self.bounds[k + 1]
            inside = (targets >= lo) & (targets < hi)
            tail_lp = F.log_softmax(tail(h).float(), dim=-1)            # (N, n_k)
            picked = tail_lp.gather(1, (targets - lo).clamp(0, hi - lo - 1).unsqueeze(1))
            extra = extra + torch.where(inside, picked.squeeze(1), torch.zeros_like(extra))
        return extra

    def loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return -self.target_logprob(h, targets)

    def export_ready(self) -> nn.Module:
        """This layer with every tied tail's word matrix computed once, so a graph holds a
        constant ``[n_k, size]`` matrix instead of multiplying embedding rows on every run.
        Changes this module in place; export calls it on the model it loaded for export."""
        for tail in self.tails:
            if isinstance(tail[1], TiedTail):
                tail[1] = tail[1].as_linear()
        return self


#: Capabilities an output layer may declare (``OutputLayer.capabilities``):
#: it needs word ids numbered by falling training frequency (training checks the data);
FREQUENCY_ORDER = "frequency_order"
#: some of its parameters get no gradient in a step (DistributedDataParallel must look for them).
UNUSED_PARAMETERS = "unused_parameters"


@dataclass(frozen=True)
class OutputLayer:
    """One kind of output layer: how to build it, which model settings it reads, what it needs.

    ``module(in_size, vocab_size, tied, **settings)`` builds it, ``settings`` naming the
    :class:`~pocketlm.pipeline.model.ModelConfig` fields it takes (e.g. ``cutoffs``);
    ``capabilities`` holds :data:`FREQUENCY_ORDER`, :data:`UNUSED_PARAMETERS`; ``check`` refuses
    settings it cannot use (the vocabulary size is 0 while not yet known); ``describe`` adds
    what the export manifest records beyond name and description."""

    name: str
    module: Callable[..., nn.Module]
    description: str
    settings: tuple[str, ...] = ()
    capabilities: frozenset[str] = frozenset()
    check_settings: Callable[[Any], None] | None = None
    describe_settings: Callable[[Any], dict[str, Any]] | None = None

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def build(self, in_size: int, vocab_size: int, tied: nn.Embedding | None,
              config: Any) -> nn.Module:
        """The layer for a model of ``config`` (a ``ModelConfig``)."""
        return self.module(in_size, vocab_size, tied,
                           **{name: getattr(config, name) for name in self.settings})

    def check(self, config: Any) -> None:
        """Refuse settings of ``config`` this layer cannot use, naming the option."""
        if self.check_settings is not None:
            self.check_settings(config)

    def describe(self, config: Any) -> dict[str, Any]:
        """What the export manifest records about the output layer."""
        extra = self.describe_settings(config) if self.describe_settings is not None else {}
        return {"name": self.name, "description": self.description, **extra}


def _check_cutoffs(config: Any) -> None:
    cutoffs, vocab_size = config.cutoffs, config.vocab_size
    text = ",".join(str(c) for c in cutoffs)
    if not cutoffs:
        raise PocketLMError(f"--output {config.output} needs --cutoffs (e.g. 1000,4000)")
    if any(b <= a for a, b in zip(cutoffs, cutoffs[1:])) or cutoffs[0] < 1:
        raise PocketLMError(f"--cutoffs {text}: cutoffs must be positive and strictly "
                            f"increasing")
    if vocab_size and cutoffs[-1] >= vocab_size:
        raise PocketLMError(f"--cutoffs {text}: the last cutoff must be below the "
                            f"vocabulary size {vocab_size}; use smaller cutoffs")


def _describe_clusters(config: Any) -> dict[str, Any]:
    bounds = (0, *config.cutoffs, config.vocab_size)
    return {"cutoffs": list(config.cutoffs), "div_value": config.div_value,
            "clusters": [{"ids": [a, b - 1]} for a, b in zip(bounds, bounds[1:])]}


OUTPUTS: dict[str, OutputLayer] = {
    "full": OutputLayer("full", FullSoftmax, "softmax over the whole vocabulary"),
    "adaptive": OutputLayer(
        "adaptive", AdaptiveSoftmax,
        "adaptive softmax: a head of the most frequent words plus one entry per tail cluster, "
        "each tail behind a smaller projection",
        settings=("cutoffs", "div_value", "tied_tails"),
        capabilities=frozenset({FREQUENCY_ORDER, UNUSED_PARAMETERS}),
        check_settings=_check_cutoffs, describe_settings=_describe_clusters),
}


def output_names() -> list[str]:
    """The registered output layers' names (a registration made later shows up too)."""
    return list(OUTPUTS)


def get_output(name: str) -> OutputLayer:
    """The registered output layer called ``name``; a clear error lists the others."""
    try:
        return OUTPUTS[name]
    except KeyError:
        raise PocketLMError(f"unknown output layer {name!r}; choose one of "
                            f"{', '.join(OUTPUTS)}") from None


def check_frequency_order(counts: torch.Tensor | object, first_word: int = 2,
                          output: str = "adaptive") -> None:
    """Refuse a vocabulary whose word ids (from ``first_word`` on) are not numbered by falling
    frequency in the training split (``counts[i]`` = occurrences of id i), as the output layer
    ``output`` (one with the :data:`FREQUENCY_ORDER` capability) needs."""
    import numpy as np

    c = np.asarray(counts)[first_word:]
    bad = np.nonzero(c[1:] > c[:-1])[0]
    if len(bad):
        i = int(bad[0]) + first_word
        raise PocketLMError(f"--output {output} needs a vocabulary numbered by falling frequency, "
                            f"but id {i + 1} occurs {int(c[i + 1 - first_word])} times in the "
                            f"train split and id {i} only {int(c[i - first_word])}; re-run "
                            f"pocketlm ingest or use --output full")
