"""Hard-negative mining: searches an index for each training pair's anchor and writes the pairs file, with
negatives, that ``train text`` reads. It needs both an index and the trainer's data format, so it sits above
both (``search`` and ``train``) in the layers."""

from __future__ import annotations

from embedsearch.mining.hard_negatives import MiningReport, mine_hard_negatives

__all__ = ["MiningReport", "mine_hard_negatives"]
