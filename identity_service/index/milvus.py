"""Milvus as a gallery's vector store: the configuration, the names, and one collection's calls.

``FACEID_VECTOR_STORE=milvus://[user:password@]host:port[/db][?option=value...]`` selects it
(``faiss``, the default, keeps galleries in process). The same client code talks to a
milvus-lite server (development and tests), Milvus standalone and a Milvus cluster. Options:

- ``prefix`` (default ``faceid``): the start of every collection name; two deployments that
  share one Milvus must use different ones (or different databases).
- ``m``, ``ef_construction``, ``ef``: HNSW's graph degree, build beam and search beam.
- ``consistency`` (default ``Session``): searches see every write this process applied or saw
  applied when it last polled (``barrier``), as a FAISS node sees the log up to its last poll;
  ``Strong`` waits for Milvus' next time tick on every search (200-400 ms on Milvus 2.3).
- ``tls=1``: connect with TLS (``https``); ``timeout`` (seconds, default 30) per call.

One faceid collection (id + model) is one Milvus collection, so tenants never share one. Its
name ``<prefix>_c<id>_<model>`` is an alias of the physical collection ``<alias>__g<stamp>``;
a rebuild fills a new physical collection while searches go on against the old one, then moves
the alias. ``<prefix>_state`` holds, per alias, the physical collection and the last
``index_log`` sequence number applied to it: Postgres stays the truth, this says how far the
derived copy got. Vectors are L2-normalised and scored by inner product (metric IP), which is
cosine similarity; the index is HNSW, whose similarities are exact inner products, so the
open-set thresholds calibrated on them mean what they mean on FAISS.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np

from ..errors import ConfigurationError, FaceIDError

SCHEME = "milvus"
INSTALL_HINT = "pip install 'faceid[milvus]' (pymilvus; milvus-lite for a development server)"
CONSISTENCY = ("Strong", "Session", "Bounded", "Eventually")
MAX_TOPK = 16_384  # Milvus' limit on k (and on nq) of one search
_NAME_MAX = 255
_VECTOR, _ID = "embedding", "face_id"


class VectorStoreUnavailableError(FaceIDError):
    """The configured Milvus does not answer (or refused a call): retry later."""

    code = "vector_store_unavailable"
    http_status = 503


@dataclass(frozen=True)
class MilvusConfig:
    """What ``FACEID_VECTOR_STORE=milvus://...`` says (see the module docstring)."""

    uri: str
    db_name: str = ""
    user: str = ""
    password: str = ""
    prefix: str = "faceid"
    m: int = 32
    ef_construction: int = 200
    ef: int = 512
    consistency: str = "Session"
    timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> MilvusConfig:
        parts = urlsplit(url)
        if parts.scheme != SCHEME or not parts.hostname:
            raise ConfigurationError(
                f"vector store {url!r} is not milvus://host:port (or 'faiss')",
                setting="vector_store",
            )
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        known = {"prefix", "m", "ef_construction", "ef", "consistency", "tls", "timeout"}
        if unknown := sorted(set(query) - known):
            raise ConfigurationError(
                f"unknown milvus:// option(s) {unknown}; known: {sorted(known)}"
            )
        try:
            config = cls(
                uri=f"{'https' if query.get('tls') in ('1', 'true') else 'http'}://"
                f"{parts.hostname}:{parts.port or 19530}",
                db_name=parts.path.strip("/"),
                user=unquote(parts.username or ""),
                password=unquote(parts.password or ""),
                prefix=query.get("prefix", "faceid"),
                m=int(query.get("m", 32)),
                ef_construction=int(query.get("ef_construction", 200)),
                ef=int(query.get("ef", 512)),
                consistency=query.get("consistency", "Session"),
                timeout=float(query.get("timeout", 30.0)),
            )
        except ValueError as exc:
            raise ConfigurationError(f"bad milvus:// option in {redact(url)}: {exc}") from exc
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", config.prefix):
            raise ConfigurationError(f"milvus prefix {config.prefix!r}: letters, digits, _")
        if config.consistency not in CONSISTENCY:
            raise ConfigurationError(f"milvus consistency must be one of {CONSISTENCY}")
        if min(config.m, config.ef_construction, config.ef) < 1:
            raise ConfigurationError("milvus m, ef_construction and ef must be positive")
        return config

    @property
    def state_collection(self) -> str:
        return f"{self.prefix}_state"

    def display(self) -> str:
        """Where it points, without credentials."""
        return f"{self.uri}/{self.db_name}" if self.db_name else self.uri


def is_milvus(vector_store: str) -> bool:
    return vector_store.startswith(f"{SCHEME}://")


def redact(url: str) -> str:
    return re.sub(r"//[^@/]*@", "//***@", url)


def collection_alias(prefix: str, collection_id: int, model_tag: str) -> str:
    """``<prefix>_c<id>_<model>``: Milvus' rules (a letter or _, then letters, digits and _,
    at most 255), unique per faceid collection because its id is."""
    model = re.sub(r"[^A-Za-z0-9]+", "_", model_tag).strip("_")[:80] or "model"
    return f"{prefix}_c{int(collection_id)}_{model}"[: _NAME_MAX - 24]


# --------------------------------------------------------------------------- the client
_clients: dict[tuple[int, str, str, str], Any] = {}
_clients_lock = threading.Lock()


def client_for(config: MilvusConfig) -> Any:
    """One MilvusClient per process and server (gRPC channels do not survive a fork)."""
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise ConfigurationError(f"FACEID_VECTOR_STORE is Milvus but {INSTALL_HINT}") from exc
    key = (os.getpid(), config.uri, config.db_name, config.user)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                client = MilvusClient(
                    uri=config.uri,
                    user=config.user,
                    password=config.password,
                    db_name=config.db_name,
                    timeout=config.timeout,
                )
            except Exception as exc:
                raise unavailable(config, exc) from exc
            _clients[key] = client
        return client


def unavailable(config: MilvusConfig, exc: BaseException) -> VectorStoreUnavailableError:
    return VectorStoreUnavailableError(
        f"Milvus at {config.display()} failed: {exc}", vector_store=config.display()
    )


@dataclass(frozen=True)
class RemoteState:
    """How far one alias' physical collection follows the log; ``owner`` names the faceid
    collection it was built for (an id SQLite reused is another owner)."""

    physical: str
    seq: int
    owner: str


class MilvusCollection:
    """One faceid collection in Milvus: its alias, physical collections and state row."""

    def __init__(self, config: MilvusConfig, alias: str, dim: int, owner: str) -> None:
        self.config = config
        self.alias = alias
        self.dim = dim
        self.owner = owner
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = client_for(self.config)
        return self._client

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A client call; a failure is a typed 503 that names the server."""
        try:
            return getattr(self.client, method)(*args, **kwargs)
        except FaceIDError:
            raise
        except Exception as exc:
            raise unavailable(self.config, exc) from exc

    # -- state --------------------------------------------------------------------------------
    def ensure_state_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        name = self.config.state_collection
        if self.call("has_collection", name):
            return
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("alias", DataType.VARCHAR, is_primary=True, max_length=_NAME_MAX)
        schema.add_field("physical", DataType.VARCHAR, max_length=_NAME_MAX)
        schema.add_field("owner", DataType.VARCHAR, max_length=_NAME_MAX)
        schema.add_field("seq", DataType.INT64)
        schema.add_field("unused", DataType.FLOAT_VECTOR, dim=2)  # Milvus needs one vector
        index = MilvusClient.prepare_index_params()
        index.add_index(field_name="unused", index_type="FLAT", metric_type="L2")
        try:
            self.call(
                "create_collection",
                name,
                schema=schema,
                index_params=index,
                consistency_level="Strong",
            )
        except VectorStoreUnavailableError:
            if not self.call("has_collection", name):  # another node created it meanwhile
                raise

    def state(self) -> RemoteState | None:
        rows = self.call(
            "get",
            self.config.state_collection,
            ids=[self.alias],
            output_fields=["physical", "owner", "seq"],
        )
        if not rows:
            return None
        row = rows[0]
        return RemoteState(str(row["physical"]), int(row["seq"]), str(row["owner"]))

    def write_state(self, physical: str, seq: int) -> None:
        row = {
            "alias": self.alias,
            "physical": physical,
            "owner": self.owner,
            "seq": int(seq),
            "unused": [0.0, 0.0],
        }
        self.call("upsert", self.config.state_collection, [row])

    # -- physical collections ---------------------------------------------------------------
    def create_physical(self) -> str:
        from pymilvus import DataType, MilvusClient

        name = f"{self.alias}__g{time.time_ns() // 1000:x}"
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field(_ID, DataType.INT64, is_primary=True)
        schema.add_field(_VECTOR, DataType.FLOAT_VECTOR, dim=self.dim)
        index = MilvusClient.prepare_index_params()
        index.add_index(
            field_name=_VECTOR,
            index_type="HNSW",
            metric_type="IP",
            params={"M": self.config.m, "efConstruction": self.config.ef_construction},
        )
        self.call(
            "create_collection",
            name,
            schema=schema,
            index_params=index,
            consistency_level=self.config.consistency,
        )
        return name

    def physical(self) -> str | None:
        """The collection the alias points at, None without alias."""
        for name in self.physicals():
            if self.alias in self.call("list_aliases", collection_name=name).get("aliases", []):
                return name
        return None

    def exists(self, physical: str) -> bool:
        return bool(self.call("has_collection", physical))

    def points_at(self, physical: str) -> bool:
        """Whether the alias names ``physical`` (two calls, whatever else the server holds)."""
        if not self.exists(physical):
            return False
        aliases = self.call("list_aliases", collection_name=physical).get("aliases", [])
        return self.alias in aliases

    def point_alias(self, physical: str) -> None:
        if self.physical() is None:
            self.call("create_alias", collection_name=physical, alias=self.alias)
        else:
            self.call("alter_alias", collection_name=physical, alias=self.alias)

    def physicals(self) -> list[str]:
        pattern = re.compile(re.escape(self.alias) + r"__g[0-9a-f]+$")
        return [c for c in self.call("list_collections") if pattern.match(c)]

    def drop_physical(self, physical: str) -> None:
        if self.exists(physical):
            self.call("drop_collection", physical)

    def drop_all(self) -> None:
        """The alias, every physical collection and the state row."""
        if self.physical() is not None:
            self.call("drop_alias", alias=self.alias)
        for name in self.physicals():
            self.call("drop_collection", name)
        if self.call("has_collection", self.config.state_collection):
            self.call("delete", self.config.state_collection, ids=[self.alias])

    # -- vectors ------------------------------------------------------------------------------
    def upsert(self, physical: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Insert or replace by face id: applying an add twice leaves one vector."""
        self._write("upsert", physical, ids, vectors)

    def insert(self, physical: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Plain insert, for filling a new collection (ids must not be there yet)."""
        self._write("insert", physical, ids, vectors)

    def _write(self, method: str, physical: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        step = max(1, (4 << 20) // (4 * self.dim))  # ~4 MiB per request
        for lo in range(0, len(ids), step):
            rows = [
                {_ID: int(i), _VECTOR: v}
                for i, v in zip(ids[lo : lo + step].tolist(), vectors[lo : lo + step], strict=True)
            ]
            self.call(method, physical, rows)

    def delete(self, physical: str, ids: list[int]) -> None:
        for lo in range(0, len(ids), 10_000):
            self.call("delete", physical, ids=ids[lo : lo + 10_000])

    def barrier(self) -> None:
        """A write through the alias that changes nothing (face id -1 never exists): Session
        searches by this process wait, from now on, for every write Milvus acknowledged before
        it, whichever process made it (pymilvus keys its session timestamp by the name a write
        and a search use, hence writes and searches go through the alias)."""
        self.call("delete", self.alias, ids=[-1])

    def flush(self, physical: str | None = None) -> None:
        self.call("flush", physical or self.alias)

    def count(self, consistency: str = "Session") -> int:
        """Faces stored (a face stored twice counts twice). Session: exact after this process'
        own writes, at most a moment behind other processes' (a count that lags costs the
        service nothing, and Strong waits for Milvus' next time tick, ~200 ms on Milvus 2.3)."""
        rows = self.call(
            "query",
            self.alias,
            filter="",
            output_fields=["count(*)"],
            consistency_level=consistency,
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def ids(self) -> np.ndarray:
        """Every face id in the collection, as stored (a face stored twice shows twice)."""
        found: list[int] = []
        iterator = self.call(
            "query_iterator",
            self.alias,
            batch_size=10_000,
            filter="",
            output_fields=[_ID],
            consistency_level="Strong",  # a check of the contents: everything written so far
        )
        try:
            while batch := iterator.next():
                found.extend(int(row[_ID]) for row in batch)
        finally:
            iterator.close()
        return np.asarray(found, dtype=np.int64)

    def contains(self, face_id: int) -> bool:
        return bool(self.call("get", self.alias, ids=[int(face_id)], output_fields=[_ID]))

    def search(self, queries: np.ndarray, k: int, ef: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities (n, k) float32, -inf where empty; face ids (n, k) int64, -1 where
        empty) of unit ``queries``."""
        top = min(k, MAX_TOPK)
        sims = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        params = {"metric_type": "IP", "params": {"ef": max(ef, top)}}
        step = min(1024, MAX_TOPK)
        for lo in range(0, len(queries), step):
            chunk = queries[lo : lo + step]
            result = self.call(
                "search",
                self.alias,
                data=list(chunk),
                limit=top,
                search_params=params,
                output_fields=[_ID],
                anns_field=_VECTOR,
                consistency_level=self.config.consistency,
            )
            for row, hits in enumerate(result, start=lo):
                n = len(hits.ids)
                ids[row, :n] = hits.ids
                sims[row, :n] = hits.distances
        return sims, ids
