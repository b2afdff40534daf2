"""Tests of the reference semantic-cache service: the index with real wordllama embeddings,
and the HTTP protocol of PROTOCOL.md on a real server on a free port.

Run: .tools/venv/bin/python -m unittest discover -s services/semantic-cache
"""

import http.client
import json
import pathlib
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import semantic_cache as sc  # noqa: E402

EMBED = sc.wordllama_embedder(pathlib.Path(tempfile.mkdtemp(prefix="wordllama-test-")))
ANSWER = {"status": 200, "content_type": "application/json", "body": '{"id":"x"}'}
ALICE = ("scope-alice", "gpt-4o-mini", "params-1")


class Clock:
    """A clock the test moves."""

    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


class EmbeddingTest(unittest.TestCase):
    def test_paraphrases_are_close_and_different_subjects_are_not(self):
        def similarity(a, b):
            return float(EMBED(a) @ EMBED(b))

        self.assertGreaterEqual(
            similarity("Give me three tips for better sleep.", "Give me 3 tips for better sleep."),
            0.95,
        )
        self.assertLess(similarity("Write a poem about cats", "Write a poem about dogs"), 0.95)
        self.assertLess(
            similarity("Say hello in exactly 5 words.", "What is the capital of France?"), 0.5
        )


class IndexTest(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.index = sc.SemanticIndex(EMBED, max_entries=3, clock=self.clock)

    def test_a_paraphrase_in_the_same_partition_hits(self):
        self.index.store(ALICE, "Give me three tips for better sleep.", ANSWER, 60)
        found = self.index.lookup(ALICE, "Give me 3 tips for better sleep.", 0.95)
        self.assertTrue(found.hit)
        self.assertEqual(found.entry.answer, ANSWER)
        self.assertGreaterEqual(found.similarity, 0.95)

    def test_a_different_subject_misses_and_reports_the_best_similarity(self):
        self.index.store(ALICE, "Write a poem about cats", ANSWER, 60)
        found = self.index.lookup(ALICE, "Write a poem about dogs", 0.95)
        self.assertFalse(found.hit)
        self.assertLess(found.similarity, 0.95)

    def test_another_scope_model_or_parameters_never_sees_the_entry(self):
        prompt = "Give me three tips for better sleep."
        self.index.store(ALICE, prompt, ANSWER, 60)
        for other in (
            ("scope-bob", "gpt-4o-mini", "params-1"),
            ("scope-alice", "claude-haiku", "params-1"),
            ("scope-alice", "gpt-4o-mini", "params-2"),
        ):
            found = self.index.lookup(other, prompt, 0.0)
            self.assertFalse(found.hit, other)
            self.assertIsNone(found.similarity, other)

    def test_an_entry_expires_after_its_ttl(self):
        self.index.store(ALICE, "Give me three tips for better sleep.", ANSWER, 60)
        self.clock.now += 59
        self.assertTrue(self.index.lookup(ALICE, "Give me three tips for better sleep.", 0.95).hit)
        self.clock.now += 1
        self.assertFalse(self.index.lookup(ALICE, "Give me three tips for better sleep.", 0.95).hit)
        self.assertEqual(len(self.index), 0)
        self.assertEqual(self.index.counters.evictions_expired, 1)

    def test_the_age_of_a_hit_is_the_time_since_its_store(self):
        self.index.store(ALICE, "Give me three tips for better sleep.", ANSWER, 60)
        self.clock.now += 12
        self.assertEqual(self.index.lookup(ALICE, "Give me three tips for better sleep.", 0.9).age_s, 12)

    def test_when_full_the_least_recently_used_entry_goes_first(self):
        prompts = [
            "Give me three tips for better sleep.",
            "How do I reverse a list in Python?",
            "Explain how a TCP handshake works.",
        ]
        for prompt in prompts:
            self.index.store(ALICE, prompt, ANSWER, 60)
        # A hit refreshes the first entry, so the second is now the least recently used.
        self.assertTrue(self.index.lookup(ALICE, prompts[0], 0.95).hit)
        self.index.store(ALICE, "What is the capital of France?", ANSWER, 60)
        self.assertEqual(len(self.index), 3)
        self.assertEqual(self.index.counters.evictions_capacity, 1)
        self.assertTrue(self.index.lookup(ALICE, prompts[0], 0.95).hit)
        self.assertFalse(self.index.lookup(ALICE, prompts[1], 0.95).hit)
        self.assertTrue(self.index.lookup(ALICE, prompts[2], 0.95).hit)

    def test_storing_the_same_prompt_again_replaces_its_entry(self):
        newer = dict(ANSWER, body='{"id":"newer"}')
        self.index.store(ALICE, "Give me three tips for better sleep.", ANSWER, 60)
        self.index.store(ALICE, "Give me three tips for better sleep.", newer, 60)
        self.assertEqual(len(self.index), 1)
        found = self.index.lookup(ALICE, "Give me three tips for better sleep.", 0.95)
        self.assertEqual(found.entry.answer, newer)

    def test_a_ttl_beyond_the_cap_is_cut_to_the_cap(self):
        index = sc.SemanticIndex(EMBED, max_entries=3, max_ttl_s=10, clock=self.clock)
        index.store(ALICE, "Give me three tips for better sleep.", ANSWER, 86_400)
        self.clock.now += 10
        self.assertFalse(index.lookup(ALICE, "Give me three tips for better sleep.", 0.95).hit)


class IndexStructureTest(unittest.TestCase):
    """Many entries through adds, replacements, expiry and eviction: every live entry is
    still found by its own prompt with its own answer (the row bookkeeping holds)."""

    def test_every_live_entry_keeps_its_own_vector_and_answer(self):
        import numpy as np

        rng = np.random.default_rng(7)
        vectors = {}

        def embed(text):
            if text not in vectors:
                v = rng.standard_normal(256).astype(np.float32)
                vectors[text] = v / np.linalg.norm(v)
            return vectors[text]

        clock = Clock()
        index = sc.SemanticIndex(embed, max_entries=30, clock=clock)
        live = {}
        for i in range(60):
            prompt = f"p{i % 45}"  # some prompts come back: replaced
            ttl = 5 if i % 7 == 0 else 1000
            index.store(ALICE, prompt, dict(ANSWER, body=str(i)), ttl)
            live[prompt] = (str(i), clock.now + ttl)
            clock.now += 1
        expected = {p: b for p, (b, exp) in live.items() if exp > clock.now}
        found = {}
        for prompt in live:
            hit = index.lookup(ALICE, prompt, 0.999)
            if hit.hit:
                found[prompt] = hit.entry.answer["body"]
        self.assertEqual(len(index), len(found))
        self.assertLessEqual(len(found), 30)
        for prompt, body in found.items():
            self.assertEqual(body, expected[prompt], prompt)


class HttpTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.index = sc.SemanticIndex(EMBED, max_entries=100)
        cls.server = sc.serve("127.0.0.1", 0, cls.index)
        cls.port = cls.server.server_address[1]
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def request(self, method, path, body=None):
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        raw = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        connection.request(method, path, body=raw, headers={"content-type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, data

    def post(self, path, body):
        status, data = self.request("POST", path, body)
        return status, json.loads(data)

    def partition(self, scope):
        return {"scope": scope, "model": "gpt-4o-mini", "params": "p"}

    def test_store_then_a_paraphrase_lookup_returns_the_stored_answer(self):
        store = dict(self.partition("http-a"), prompt="How do I reverse a list in Python?",
                     ttl_s=3600, answer=ANSWER)
        status, stored = self.post("/store", store)
        self.assertEqual((status, stored["stored"]), (200, True))
        lookup = dict(self.partition("http-a"), prompt="How can I reverse a list in Python?",
                      threshold=0.95)
        status, found = self.post("/lookup", lookup)
        self.assertEqual(status, 200)
        self.assertTrue(found["hit"])
        self.assertEqual(found["answer"], ANSWER)
        self.assertGreaterEqual(found["similarity"], 0.95)
        self.assertEqual(found["age_s"], 0)

    def test_a_lookup_in_an_empty_partition_is_a_miss_without_similarity(self):
        status, found = self.post(
            "/lookup", dict(self.partition("http-empty"), prompt="hi", threshold=0.95)
        )
        self.assertEqual((status, found), (200, {"hit": False}))

    def test_malformed_requests_get_400_with_the_reason(self):
        cases = [
            (b"not json", "Expecting value"),
            ([1, 2], "expected a JSON object"),
            (dict(self.partition("x"), prompt="hi"), "threshold"),
            (dict(self.partition("x"), prompt="hi", threshold=1.5), "threshold"),
            ({"model": "m", "params": "p", "prompt": "hi", "threshold": 0.9}, "scope"),
            (dict(self.partition("x"), prompt=7, threshold=0.9), "prompt"),
        ]
        for body, reason in cases:
            status, data = self.request("POST", "/lookup", body)
            self.assertEqual(status, 400, body)
            self.assertIn(reason, json.loads(data)["error"], body)
        bad_store = dict(self.partition("x"), prompt="hi", ttl_s=0, answer=ANSWER)
        status, data = self.request("POST", "/store", bad_store)
        self.assertEqual(status, 400)
        self.assertIn("ttl_s", json.loads(data)["error"])
        bad_answer = dict(self.partition("x"), prompt="hi", ttl_s=5, answer={"status": 200})
        status, data = self.request("POST", "/store", bad_answer)
        self.assertEqual(status, 400)
        self.assertIn("answer.content_type", json.loads(data)["error"])

    def test_unknown_paths_are_404(self):
        self.assertEqual(self.request("GET", "/nope")[0], 404)
        self.assertEqual(self.request("POST", "/nope", {})[0], 404)

    def test_health_and_metrics(self):
        status, data = self.request("GET", "/health")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(data)["status"], "ok")
        self.post("/lookup", dict(self.partition("http-metrics"), prompt="hi", threshold=0.9))
        status, data = self.request("GET", "/metrics")
        self.assertEqual(status, 200)
        text = data.decode()
        samples = dict(
            line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")
        )
        for name in (
            "semantic_cache_lookups_total",
            "semantic_cache_hits_total",
            "semantic_cache_stores_total",
            'semantic_cache_evictions_total{reason="capacity"}',
            'semantic_cache_evictions_total{reason="expired"}',
            "semantic_cache_entries",
        ):
            self.assertIn(name, samples)
        self.assertGreaterEqual(int(samples["semantic_cache_lookups_total"]), 1)


if __name__ == "__main__":
    unittest.main()
