"""Fusion and evaluation maths: pure functions over plain sequences, no I/O, no engine types."""

from reranker.rrf import rrf

__all__ = ["rrf"]
