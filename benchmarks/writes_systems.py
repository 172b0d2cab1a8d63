"""The three stores bench_writes.py drives with the same documents, vectors and operations: embedsearch (through
its Python API, with the ``bench-384`` encoder), LanceDB (local, no ANN index: exact search, as ours is for Flat)
and Chroma (local persistent client: HNSW always). Each method returns what the benchmark measures."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

import benchmarks.bench_encoder  # noqa: F401 (registers bench-384)


@dataclass
class Batch:
    """Documents with their vectors (what the encoder gives for their texts) and filter fields."""

    ids: list[str]
    texts: list[str]
    vectors: np.ndarray
    g10: list[str]
    g100: list[str]

    def documents(self):
        from embedsearch.data import Document

        return [
            Document(i, t, {"g10": a, "g100": b})
            for i, t, a, b in zip(self.ids, self.texts, self.g10, self.g100, strict=True)
        ]


def disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class Ours:
    name = "embedsearch"

    def __init__(self, work: Path, spec: str, compaction=None) -> None:
        self.home, self.spec, self.compaction = work / "ours", spec, compaction
        self.searcher = None

    def build(self, batch: Batch) -> None:
        from embedsearch import build_index
        from embedsearch.index import CompactionPolicy

        policy = self.compaction or CompactionPolicy()
        build_index("bench", batch.documents(), "bench-384", spec=self.spec, home=self.home, compaction=policy)

    def add(self, batch: Batch, compact: bool = True) -> None:
        from embedsearch import add_documents

        add_documents("bench", batch.documents(), home=self.home, compact=compact)

    def upsert(self, batch: Batch) -> None:
        self.add(batch)

    def delete(self, ids: list[str]) -> None:
        from embedsearch import delete_documents

        delete_documents("bench", ids, home=self.home)

    def open(self) -> None:
        from embedsearch import load_index
        from embedsearch.runtime import use_query_threads

        use_query_threads()
        self.searcher = load_index("bench", self.home)

    def search(self, vector: np.ndarray, k: int, where: dict | None = None, **knobs) -> list[str]:
        return [h.id for h in self.searcher.search_vectors(vector[None], k, where, **knobs)[0]]

    def compact(self) -> None:
        from embedsearch.index import compact_index

        compact_index("bench", self.home)

    def segments(self) -> int:
        from embedsearch import index_info

        return len(index_info("bench", self.home)["segments"])

    def disk(self) -> int:
        return disk_bytes(self.home / "bench")


class Lance:
    name = "lancedb"

    def __init__(self, work: Path, spec: str = "") -> None:
        import lancedb

        self.path = work / "lance"
        self.db = lancedb.connect(str(self.path))
        self.table = None

    @staticmethod
    def _arrow(batch: Batch):
        import pyarrow as pa

        vectors = pa.FixedSizeListArray.from_arrays(pa.array(batch.vectors.reshape(-1)), batch.vectors.shape[1])
        return pa.table({"id": batch.ids, "text": batch.texts, "g10": batch.g10, "g100": batch.g100, "vector": vectors})

    def build(self, batch: Batch) -> None:
        self.table = self.db.create_table("bench", data=self._arrow(batch), mode="overwrite")

    def add(self, batch: Batch, compact: bool = True) -> None:
        self.table.add(self._arrow(batch))

    def upsert(self, batch: Batch) -> None:
        self.table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(
            self._arrow(batch)
        )

    def delete(self, ids: list[str]) -> None:
        quoted = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
        self.table.delete(f"id IN ({quoted})")

    def open(self) -> None:
        self.table = self.db.open_table("bench")

    def search(self, vector: np.ndarray, k: int, where: dict | None = None, **knobs) -> list[str]:
        query = self.table.search(vector).distance_type("dot").limit(k).select(["id", "_distance"])
        if where:
            ((key, value),) = where.items()
            query = query.where(f"{key} = '{value}'", prefilter=True)
        return [row["id"] for row in query.to_list()]

    def compact(self) -> None:
        self.table.optimize(cleanup_older_than=timedelta(seconds=0))

    def segments(self) -> int:
        return self.table.stats()["fragment_stats"]["num_fragments"]

    def disk(self) -> int:
        return disk_bytes(self.path)


class Chroma:
    name = "chroma"

    def __init__(self, work: Path, spec: str = "") -> None:
        import chromadb
        from chromadb.config import Settings

        self.path = work / "chroma"
        self.client = chromadb.PersistentClient(path=str(self.path), settings=Settings(anonymized_telemetry=False))
        self.collection = None

    def build(self, batch: Batch) -> None:
        self.collection = self.client.create_collection("bench", metadata={"hnsw:space": "ip"})
        self.add(batch)

    def add(self, batch: Batch, compact: bool = True) -> None:
        size = self.client.get_max_batch_size()
        for first in range(0, len(batch.ids), size):
            part = slice(first, first + size)
            metadatas = [{"g10": a, "g100": b} for a, b in zip(batch.g10[part], batch.g100[part], strict=True)]
            self.collection.add(
                ids=batch.ids[part], embeddings=batch.vectors[part], documents=batch.texts[part], metadatas=metadatas
            )

    def upsert(self, batch: Batch) -> None:
        metadatas = [{"g10": a, "g100": b} for a, b in zip(batch.g10, batch.g100, strict=True)]
        self.collection.upsert(ids=batch.ids, embeddings=batch.vectors, documents=batch.texts, metadatas=metadatas)

    def delete(self, ids: list[str]) -> None:
        self.collection.delete(ids=ids)

    def open(self) -> None:
        self.collection = self.client.get_collection("bench")

    def search(self, vector: np.ndarray, k: int, where: dict | None = None, **knobs) -> list[str]:
        result = self.collection.query(query_embeddings=[vector], n_results=k, where=where, include=[])
        return result["ids"][0]

    def compact(self) -> None:
        pass  # no compaction call in Chroma's local client

    def segments(self) -> int:
        return 1

    def disk(self) -> int:
        return disk_bytes(self.path)


SYSTEMS = {"embedsearch": Ours, "lancedb": Lance, "chroma": Chroma}


def fresh(work: Path) -> Path:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work
