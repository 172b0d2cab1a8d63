"""When segments merge: the compaction policy and the merge plan (pure functions of segment sizes).

- a segment whose tombstoned fraction passes ``max_deleted_fraction`` is rewritten without them;
- segments of about the same size (the same power of ``merge_factor`` above ``floor_vectors``; every segment
  below the floor counts as one size) merge when ``merge_factor`` of them exist: a chunk is rewritten about
  log(N / floor) / log(merge_factor) times over an index's life, plus a few times while it is in a small segment,
  and the segments stay few (Lucene's tiered merge policy, with its floor segment size);
- past ``max_segments`` segments of at least ``floor_vectors`` (an HNSW or IVF search costs about the same
  whatever a segment's size, so their number is what a search pays for), the smallest of them merge.

A segment below the floor is built flat whatever the index's spec (a buffer: a scan of a few thousand vectors
costs less than an HNSW search), and an IVF/PQ quantizer is trained on the first segment that reaches the floor.
The defaults were chosen with ``benchmarks/bench_writes.py`` (see benchmarks/README.md).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from embedsearch.index import factory


@dataclass(frozen=True)
class CompactionPolicy:
    """When segments merge (see the module's docstring); recorded in the manifest at build."""

    max_segments: int = 4
    merge_factor: int = 4
    floor_vectors: int = 4096
    max_deleted_fraction: float = 0.25
    retrain_growth: float = 4.0

    def settings(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> CompactionPolicy:
        known = {k: v for k, v in (manifest.get("compaction") or {}).items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def tier(self, vectors: int) -> int:
        """Segments below ``floor_vectors`` share tier 0; above, a tier spans a factor of ``merge_factor``."""
        if vectors < self.floor_vectors:
            return 0
        return 1 + int(math.log(vectors / self.floor_vectors, self.merge_factor))


DEFAULT_POLICY = CompactionPolicy()


def segment_spec(manifest: dict[str, Any], vectors: int, quantizer: str | None) -> str | None:
    """``"Flat"`` for a segment of ``vectors`` that is built flat rather than in the index's spec (below the floor,
    or before an IVF/PQ quantizer is trained), else ``None`` (the index's spec)."""
    if manifest["spec"] == "Flat":
        return None
    floor = CompactionPolicy.of(manifest).floor_vectors
    if vectors < floor or (factory.needs_training(manifest["spec"], manifest["dim"]) and quantizer is None):
        return "Flat"
    return None


@dataclass
class CompactionReport:
    """The merges a compaction committed (each: sources, new segment, vectors, dropped tombstones, seconds)."""

    merges: list[dict[str, Any]] = field(default_factory=list)
    retrained: bool = False
    upgraded: bool = False
    skipped: str | None = None

    @property
    def dropped(self) -> int:
        return sum(m["dropped"] for m in self.merges)


def plan_merges(segments: list[tuple[int, int, int]], policy: CompactionPolicy) -> list[list[int]]:
    """Groups of segment numbers to merge, each group into one. ``segments``: ``(number, vectors, tombstones)``.

    Pure: the same segments and policy always give the same plan.
    """
    live = {n: v - t for n, v, t in segments}
    groups = [[n] for n, v, t in segments if v and t / v > policy.max_deleted_fraction]
    taken = {n for g in groups for n in g}
    tiers: dict[int, list[int]] = {}
    for number, _vectors, _dead in segments:
        if number not in taken:
            tiers.setdefault(policy.tier(live[number]), []).append(number)
    for tier in sorted(tiers):
        if len(tiers[tier]) >= policy.merge_factor:
            groups.append(sorted(tiers[tier]))
            taken |= set(tiers[tier])
    large = [n for n in live if n not in taken and live[n] >= policy.floor_vectors]
    large += [-1] * sum(1 for g in groups if sum(live[n] for n in g) >= policy.floor_vectors)  # merges' results
    if len(large) > policy.max_segments:
        smallest = sorted((n for n in large if n >= 0), key=lambda n: (live[n], n))
        group = smallest[: max(2, len(large) - policy.max_segments + 1)]
        if len(group) > 1:
            groups.append(sorted(group))
    return groups


def segments_of(segments: list[tuple[int, int, int]], numbers: list[int]) -> list[tuple[int, int, int]]:
    return [s for s in segments if s[0] in numbers]
