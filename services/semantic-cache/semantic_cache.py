"""tollgate's reference semantic-cache service.

The gateway's cache stage calls it over HTTP (the protocol is in PROTOCOL.md next to this file):
POST /lookup with the final user prompt of a chat request and its partition (tenant scope, model,
parameters hash); POST /store with the answer after a miss; GET /health; GET /metrics.

Embeddings are real and offline: PyPI's `wordllama` 0.4.0.post1 ships its weights (16 MB
safetensors, dim 256) and tokenizer in the wheel. Its loader looks for the tokenizer in the
package under `tokenizer/` while the wheel holds it under `tokenizers/`; its second place is
`<cache_dir>/tokenizers/`, so the file is copied there and the model loaded with
`disable_download=True` (nothing is ever fetched from a model hub).

Index: entries live in partitions keyed by (scope, model, params); a lookup only compares the
prompt against its own partition, so one tenant's answer is never served to another and one
model's answer never for another model. Each entry has an expiry (TTL from the store call,
capped by --max-ttl). The index is bounded by --max-entries: when full, the least recently used
entry (a hit or a store refreshes it) is evicted first; expired entries are dropped when seen.

Only the Python standard library and numpy (a wordllama dependency) are used besides wordllama.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import pathlib
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

# One lookup is one matrix-vector product; numpy's threaded BLAS only adds contention to it
# (measured on a loaded 2-core machine: 0.6 ms single-threaded vs 11 ms threaded for 10k
# entries). Set before numpy is imported.
for _blas in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_blas, "1")

import numpy as np  # noqa: E402

# Limits on what a client may send; larger requests get a 413.
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_PROMPT_CHARS = 32 * 1024
MAX_FIELD_CHARS = 256


class ProtocolError(Exception):
    """A request that breaks the protocol: answered with 400 and the reason."""


def load_wordllama(cache_dir: Optional[pathlib.Path] = None):
    """WordLlama from the wheel's own files, offline.

    The tokenizer is copied from the package's `tokenizers/` into `<cache_dir>/tokenizers/`,
    where the loader looks after the package's (misnamed) `tokenizer/`; the weights are found in
    the package itself.
    """
    import wordllama
    from wordllama import WordLlama

    package = pathlib.Path(wordllama.__file__).parent
    if cache_dir is None:
        cache_dir = pathlib.Path(tempfile.gettempdir()) / "tollgate-wordllama"
    target = cache_dir / "tokenizers"
    target.mkdir(parents=True, exist_ok=True)
    for source in (package / "tokenizers").glob("*.json"):
        destination = target / source.name
        if not destination.exists():
            shutil.copyfile(source, destination)
    return WordLlama.load(cache_dir=cache_dir, disable_download=True)


def wordllama_embedder(cache_dir: Optional[pathlib.Path] = None) -> Callable[[str], np.ndarray]:
    """A function text -> unit vector (float32, dim 256)."""
    model = load_wordllama(cache_dir)

    def embed(text: str) -> np.ndarray:
        vector = np.asarray(model.embed([text], norm=True)[0], dtype=np.float32)
        return vector

    return embed


@dataclass
class Entry:
    """One stored answer."""

    partition: tuple
    prompt: str
    vector: np.ndarray
    answer: dict
    stored_at: float
    expires_at: float


@dataclass
class Counters:
    """What /metrics reports."""

    lookups: int = 0
    hits: int = 0
    misses: int = 0
    stores: int = 0
    evictions_capacity: int = 0
    evictions_expired: int = 0
    bad_requests: int = 0


@dataclass
class Lookup:
    """The result of a lookup."""

    hit: bool
    similarity: Optional[float] = None
    entry: Optional[Entry] = None
    age_s: Optional[int] = None


class Partition:
    """The entries of one (scope, model, params): ids by prompt, and their vectors and expiry
    times as rows of arrays a lookup multiplies at once. Adding appends a row (the arrays grow
    by doubling), removing moves the last row into the hole: both O(1)."""

    def __init__(self):
        self.by_prompt: dict[str, int] = {}
        self._row: dict[int, int] = {}
        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = None
        self._expires = np.zeros(0, dtype=np.float64)
        self._n = 0

    def add(self, entry_id: int, prompt: str, vector: np.ndarray, expires_at: float) -> None:
        if self._matrix is None:
            self._matrix = np.zeros((4, vector.shape[0]), dtype=np.float32)
            self._ids = np.zeros(4, dtype=np.int64)
            self._expires = np.zeros(4, dtype=np.float64)
        if self._n == len(self._ids):
            grow = len(self._ids)
            self._matrix = np.concatenate([self._matrix, np.zeros_like(self._matrix[:grow])])
            self._ids = np.concatenate([self._ids, np.zeros(grow, dtype=np.int64)])
            self._expires = np.concatenate([self._expires, np.zeros(grow, dtype=np.float64)])
        row = self._n
        self._matrix[row] = vector
        self._ids[row] = entry_id
        self._expires[row] = expires_at
        self._row[entry_id] = row
        self.by_prompt[prompt] = entry_id
        self._n += 1

    def remove(self, entry_id: int, prompt: str) -> None:
        if self.by_prompt.get(prompt) == entry_id:
            del self.by_prompt[prompt]
        row = self._row.pop(entry_id, None)
        if row is None:
            return
        last = self._n - 1
        if row != last:
            moved = int(self._ids[last])
            self._matrix[row] = self._matrix[last]
            self._ids[row] = moved
            self._expires[row] = self._expires[last]
            self._row[moved] = row
        self._n = last

    def arrays(self) -> tuple:
        """(ids, vectors as rows, expiry times) of the live rows, as copies a lookup may keep
        while it removes entries."""
        n = self._n
        return self._ids[:n].copy(), self._matrix[:n], self._expires[:n].copy()


class SemanticIndex:
    """Entries by partition, bounded, with TTL and least-recently-used eviction. Thread-safe."""

    def __init__(
        self,
        embed: Callable[[str], np.ndarray],
        max_entries: int = 10_000,
        max_ttl_s: int = 7 * 24 * 3600,
        clock: Callable[[], float] = time.time,
    ):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._embed = embed
        self._max_entries = max_entries
        self._max_ttl_s = max_ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        # Entry id -> entry, least recently used first.
        self._lru: "collections.OrderedDict[int, Entry]" = collections.OrderedDict()
        self._partitions: dict[tuple, Partition] = {}
        self._next_id = 0
        self.counters = Counters()

    def __len__(self) -> int:
        with self._lock:
            return len(self._lru)

    def _remove(self, entry_id: int) -> None:
        entry = self._lru.pop(entry_id)
        part = self._partitions.get(entry.partition)
        if part is not None:
            part.remove(entry_id, entry.prompt)
            if not part.by_prompt:
                del self._partitions[entry.partition]

    def lookup(self, partition: tuple, prompt: str, threshold: float) -> Lookup:
        """The most similar live entry of the partition, when its similarity is >= threshold."""
        vector = self._embed(prompt)
        now = self._clock()
        with self._lock:
            self.counters.lookups += 1
            part = self._partitions.get(partition)
            best_id, best_similarity = None, None
            if part is not None:
                ids, matrix, expires = part.arrays()
                expired = expires <= now
                if len(ids) and not expired.all():
                    # Before the expired rows are removed: removal moves rows.
                    similarities = matrix @ vector
                    similarities[expired] = -np.inf
                    best = int(np.argmax(similarities))
                    best_id, best_similarity = int(ids[best]), float(similarities[best])
                for entry_id in ids[expired]:
                    self._remove(int(entry_id))
                    self.counters.evictions_expired += 1
            if best_id is not None and best_similarity >= threshold:
                self._lru.move_to_end(best_id)
                entry = self._lru[best_id]
                self.counters.hits += 1
                return Lookup(
                    hit=True,
                    similarity=best_similarity,
                    entry=entry,
                    age_s=max(0, int(now - entry.stored_at)),
                )
            self.counters.misses += 1
            return Lookup(hit=False, similarity=best_similarity)

    def store(self, partition: tuple, prompt: str, answer: dict, ttl_s: int) -> int:
        """Stores an answer; an entry with the same prompt in the partition is replaced.
        Returns the number of entries after the store."""
        vector = self._embed(prompt)
        now = self._clock()
        ttl_s = max(1, min(int(ttl_s), self._max_ttl_s))
        with self._lock:
            part = self._partitions.get(partition)
            if part is not None and prompt in part.by_prompt:
                self._remove(part.by_prompt[prompt])
            while len(self._lru) >= self._max_entries:
                oldest_id, oldest = next(iter(self._lru.items()))
                self._remove(oldest_id)
                if oldest.expires_at <= now:
                    self.counters.evictions_expired += 1
                else:
                    self.counters.evictions_capacity += 1
            entry_id = self._next_id
            self._next_id += 1
            self._lru[entry_id] = Entry(partition, prompt, vector, answer, now, now + ttl_s)
            self._partitions.setdefault(partition, Partition()).add(
                entry_id, prompt, vector, now + ttl_s
            )
            self.counters.stores += 1
            return len(self._lru)

    def metrics_text(self) -> str:
        """Prometheus text exposition of the counters and the entry gauge."""
        with self._lock:
            c = self.counters
            entries = len(self._lru)
            partitions = len(self._partitions)
        lines = [
            "# HELP semantic_cache_lookups_total Lookups answered.",
            "# TYPE semantic_cache_lookups_total counter",
            f"semantic_cache_lookups_total {c.lookups}",
            "# HELP semantic_cache_hits_total Lookups that found an entry at or above the threshold.",
            "# TYPE semantic_cache_hits_total counter",
            f"semantic_cache_hits_total {c.hits}",
            "# HELP semantic_cache_misses_total Lookups that found none.",
            "# TYPE semantic_cache_misses_total counter",
            f"semantic_cache_misses_total {c.misses}",
            "# HELP semantic_cache_stores_total Answers stored.",
            "# TYPE semantic_cache_stores_total counter",
            f"semantic_cache_stores_total {c.stores}",
            "# HELP semantic_cache_evictions_total Entries removed, by reason.",
            "# TYPE semantic_cache_evictions_total counter",
            f'semantic_cache_evictions_total{{reason="capacity"}} {c.evictions_capacity}',
            f'semantic_cache_evictions_total{{reason="expired"}} {c.evictions_expired}',
            "# HELP semantic_cache_bad_requests_total Requests refused with a 4xx.",
            "# TYPE semantic_cache_bad_requests_total counter",
            f"semantic_cache_bad_requests_total {c.bad_requests}",
            "# HELP semantic_cache_entries Entries held now.",
            "# TYPE semantic_cache_entries gauge",
            f"semantic_cache_entries {entries}",
            "# HELP semantic_cache_partitions Partitions (scope, model, params) held now.",
            "# TYPE semantic_cache_partitions gauge",
            f"semantic_cache_partitions {partitions}",
        ]
        return "\n".join(lines) + "\n"


# --- protocol ----------------------------------------------------------------------------------


def _string(body: dict, name: str, limit: int = MAX_FIELD_CHARS) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise ProtocolError(f"{name}: expected a string")
    if len(value) > limit:
        raise ProtocolError(f"{name}: longer than {limit} characters")
    return value


def parse_partition(body: dict) -> tuple:
    """(scope, model, params) from a lookup or store body."""
    scope = _string(body, "scope")
    model = _string(body, "model")
    params = _string(body, "params")
    return (scope, model, params)


def parse_lookup(body: dict) -> tuple[tuple, str, float]:
    partition = parse_partition(body)
    prompt = _string(body, "prompt", MAX_PROMPT_CHARS)
    threshold = body.get("threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ProtocolError("threshold: expected a number")
    if not 0.0 <= float(threshold) <= 1.0:
        raise ProtocolError("threshold: expected a number from 0 to 1")
    return partition, prompt, float(threshold)


def parse_store(body: dict) -> tuple[tuple, str, dict, int]:
    partition = parse_partition(body)
    prompt = _string(body, "prompt", MAX_PROMPT_CHARS)
    ttl_s = body.get("ttl_s")
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s < 1:
        raise ProtocolError("ttl_s: expected a positive integer")
    answer = body.get("answer")
    if not isinstance(answer, dict):
        raise ProtocolError("answer: expected an object")
    status = answer.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ProtocolError("answer.status: expected an HTTP status")
    content_type = answer.get("content_type")
    if not isinstance(content_type, str) or len(content_type) > MAX_FIELD_CHARS:
        raise ProtocolError("answer.content_type: expected a string")
    if not isinstance(answer.get("body"), str):
        raise ProtocolError("answer.body: expected a string")
    stored = {"status": status, "content_type": content_type, "body": answer["body"]}
    return partition, prompt, stored, ttl_s


def make_handler(index: SemanticIndex):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "tollgate-semantic-cache"
        # Headers and body leave in two writes: with Nagle on, the body waits for the ACK of
        # the headers, which the gateway delays by up to 40 ms (measured: hits at 42-48 ms).
        disable_nagle_algorithm = True

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            # One line per request on stderr would drown a test's output; errors still print.
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json"):
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, value: dict):
            self._send(status, json.dumps(value, separators=(",", ":")).encode())

        def _error(self, status: int, message: str):
            with index._lock:
                index.counters.bad_requests += 1
            self._json(status, {"error": message})

        def do_GET(self):
            if self.path == "/health":
                self._json(200, {"status": "ok", "entries": len(index)})
            elif self.path == "/metrics":
                self._send(200, index.metrics_text().encode(), "text/plain; version=0.0.4")
            else:
                self._error(404, f"no such path: {self.path}")

        def do_POST(self):
            if self.path not in ("/lookup", "/store"):
                self._error(404, f"no such path: {self.path}")
                return
            try:
                length = int(self.headers.get("content-length", "0"))
            except ValueError:
                self._error(400, "content-length: not a number")
                return
            if length > MAX_REQUEST_BYTES:
                self.close_connection = True
                self._error(413, f"body larger than {MAX_REQUEST_BYTES} bytes")
                return
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ProtocolError("expected a JSON object")
                if self.path == "/lookup":
                    partition, prompt, threshold = parse_lookup(body)
                    found = index.lookup(partition, prompt, threshold)
                    answer = {"hit": found.hit}
                    if found.similarity is not None:
                        answer["similarity"] = round(found.similarity, 6)
                    if found.hit and found.entry is not None:
                        answer["answer"] = found.entry.answer
                        answer["age_s"] = found.age_s
                    self._json(200, answer)
                else:
                    partition, prompt, stored, ttl_s = parse_store(body)
                    entries = index.store(partition, prompt, stored, ttl_s)
                    self._json(200, {"stored": True, "entries": entries})
            except (ValueError, ProtocolError) as error:
                self._error(400, str(error))

    return Handler


class Server(ThreadingHTTPServer):
    """The HTTP server; a client closing its kept-alive connection is not an error."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def serve(host: str, port: int, index: SemanticIndex) -> ThreadingHTTPServer:
    """A started-later server (call serve_forever)."""
    return Server((host, port), make_handler(index))


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed)")
    parser.add_argument("--max-entries", type=int, default=10_000)
    parser.add_argument("--max-ttl", type=int, default=7 * 24 * 3600, help="seconds")
    parser.add_argument("--cache-dir", type=pathlib.Path, default=None,
                        help="where the tokenizer is copied for wordllama's loader")
    args = parser.parse_args(argv)
    index = SemanticIndex(wordllama_embedder(args.cache_dir), args.max_entries, args.max_ttl)
    server = serve(args.host, args.port, index)
    host, port = server.server_address[:2]
    # The readiness line tests and scripts/up wait for.
    print(f"semantic-cache listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
