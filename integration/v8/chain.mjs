// The benchmark chain in V8, outside Envoy: a minimal proxy-wasm host in JavaScript that runs
// tollgate.wasm's pipeline over the same requests as `cargo bench -p tollgate --bench chain`
// (one cache miss that stores, the budget, the metrics, per request), so V8's cost for our own
// code can be timed and profiled apart from Envoy's (`node --cpu-prof` names the module's
// functions when it keeps its name section).
//
//   node integration/v8/chain.mjs <module.wasm> <pipeline-config.json> [requests] [rounds]
//
// Prints µs per request for each round and the host calls one request makes. Only the calls
// the benchmark's request makes are implemented; any other import answers Unimplemented (12)
// and is counted, so a new call shows up in the table instead of passing unseen.
// scripts/profile-v8 builds the inputs and runs this (docs/benchmarks.md).

import { readFileSync } from "node:fs";

const [modulePath, configPath, requestsArg, roundsArg] = process.argv.slice(2);
if (!modulePath || !configPath) {
  console.error("usage: chain.mjs <module.wasm> <pipeline-config.json> [requests] [rounds]");
  process.exit(2);
}
const REQUESTS = Number(requestsArg ?? 20000);
const ROUNDS = Number(roundsArg ?? 5);
const ROUTE_NAME = "bench-route/0/0";

const OK = 0, NOT_FOUND = 1, CAS_MISMATCH = 8, UNIMPLEMENTED = 12;
const enc = new TextEncoder();
const dec = new TextDecoder();

const module = new WebAssembly.Module(readFileSync(modulePath));
const config = enc.encode(readFileSync(configPath, "utf8").trim());

let instance;
// Views of the module's memory, made again only when it grows (growing detaches the buffer).
let buffer, u8, dv;
function refresh() {
  if (buffer !== instance.exports.memory.buffer) {
    buffer = instance.exports.memory.buffer;
    u8 = new Uint8Array(buffer);
    dv = new DataView(buffer);
  }
}
const mem = () => (refresh(), u8);
const view = () => (refresh(), dv);
const text = (ptr, len) => dec.decode(mem().subarray(ptr, ptr + len));
const bytes = (ptr, len) => mem().slice(ptr, ptr + len);
const u32 = (ptr, v) => view().setUint32(ptr, v, true);

/** Copies `data` into memory the module allocates, and writes its address and size. */
function give(data, ptrPtr, sizePtr) {
  const alloc = instance.exports.proxy_on_memory_allocate ?? instance.exports.malloc;
  const ptr = data.length ? alloc(data.length) : 0;
  if (data.length) mem().set(data, ptr);
  u32(ptrPtr, ptr);
  u32(sizePtr, data.length);
  return OK;
}

/** proxy-wasm's header map serialization: count, (key, value) lengths, NUL-ended strings. */
function serializeMap(pairs) {
  const parts = pairs.map(([k, v]) => [enc.encode(k), enc.encode(v)]);
  let size = 4 + parts.length * 8;
  for (const [k, v] of parts) size += k.length + v.length + 2;
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, parts.length, true);
  let at = 4;
  for (const [k, v] of parts) {
    dv.setUint32(at, k.length, true);
    dv.setUint32(at + 4, v.length, true);
    at += 8;
  }
  for (const [k, v] of parts) {
    out.set(k, at); at += k.length + 1;
    out.set(v, at); at += v.length + 1;
  }
  return out;
}

// The host's state for the current stream.
const shared = new Map(); // key -> { value: Uint8Array, cas }
let casCounter = 1;
const metrics = [];
const maps = { 0: [], 2: [] }; // request headers, response headers
const buffers = { 0: new Uint8Array(), 1: new Uint8Array() }; // request body, response body
const properties = new Map();
const calls = new Map();
let counting = false;

const host = {
  proxy_log: (level, ptr, len) => { if (level >= 3) console.error(`module log ${level}: ${text(ptr, len)}`); return OK; },
  proxy_get_log_level: (ret) => { u32(ret, 4); return OK; }, // error: our info logs stay in
  proxy_get_current_time_nanoseconds: (ret) => {
    view().setBigUint64(ret, process.hrtime.bigint() + 1_700_000_000_000_000_000n, true);
    return OK;
  },
  proxy_set_tick_period_milliseconds: () => OK,
  proxy_set_effective_context: () => OK,
  proxy_get_buffer_bytes: (type, start, max, ptrPtr, sizePtr) => {
    let data;
    if (type === 7) data = config; // plugin configuration
    else if (type === 6) data = new Uint8Array(); // VM configuration
    else data = buffers[type];
    if (data === undefined) return NOT_FOUND;
    return give(data.subarray(start, start + (max >>> 0)), ptrPtr, sizePtr);
  },
  proxy_set_buffer_bytes: (type, start, size, ptr, len) => {
    buffers[type] = bytes(ptr, len);
    return OK;
  },
  proxy_get_header_map_pairs: (type, ptrPtr, sizePtr) => {
    // Serialized once per map and request (a change drops it): the harness's own cost stays
    // small next to the module's.
    const map = maps[type] ?? [];
    map.serialized ??= serializeMap(map);
    return give(map.serialized, ptrPtr, sizePtr);
  },
  proxy_get_header_map_value: (type, kp, kl, ptrPtr, sizePtr) => {
    const key = text(kp, kl);
    const found = (maps[type] ?? []).find(([k]) => k === key);
    return found ? give(enc.encode(found[1]), ptrPtr, sizePtr) : NOT_FOUND;
  },
  proxy_replace_header_map_value: (type, kp, kl, vp, vl) => {
    const key = text(kp, kl), value = text(vp, vl);
    const map = (maps[type] ??= []);
    const i = map.findIndex(([k]) => k === key);
    if (i >= 0) map[i] = [key, value]; else map.push([key, value]);
    map.serialized = undefined;
    return OK;
  },
  proxy_add_header_map_value: (type, kp, kl, vp, vl) => {
    const map = (maps[type] ??= []);
    map.push([text(kp, kl), text(vp, vl)]);
    map.serialized = undefined;
    return OK;
  },
  proxy_remove_header_map_value: (type, kp, kl) => {
    const key = text(kp, kl);
    maps[type] = (maps[type] ?? []).filter(([k]) => k !== key);
    return OK;
  },
  proxy_get_property: (pp, pl, ptrPtr, sizePtr) => {
    const path = text(pp, pl);
    const value = properties.get(path);
    return value === undefined ? NOT_FOUND : give(value, ptrPtr, sizePtr);
  },
  proxy_set_property: (pp, pl, vp, vl) => {
    properties.set(text(pp, pl), bytes(vp, vl));
    return OK;
  },
  proxy_get_shared_data: (kp, kl, ptrPtr, sizePtr, casPtr) => {
    const entry = shared.get(text(kp, kl));
    if (!entry) return NOT_FOUND;
    give(entry.value, ptrPtr, sizePtr);
    u32(casPtr, entry.cas);
    return OK;
  },
  proxy_set_shared_data: (kp, kl, vp, vl, cas) => {
    const key = text(kp, kl);
    const entry = shared.get(key);
    if (cas !== 0 && entry && entry.cas !== cas) return CAS_MISMATCH;
    shared.set(key, { value: bytes(vp, vl), cas: casCounter++ });
    return OK;
  },
  proxy_define_metric: (type, np, nl, ret) => {
    metrics.push({ name: text(np, nl), value: 0n });
    u32(ret, metrics.length - 1);
    return OK;
  },
  proxy_increment_metric: (id, delta) => {
    if (metrics[id]) metrics[id].value += BigInt(delta);
    return OK;
  },
  proxy_record_metric: (id, value) => {
    if (metrics[id]) metrics[id].value = BigInt(value);
    return OK;
  },
  proxy_continue_stream: () => OK,
  proxy_send_local_response: () => OK,
  // WASI, as Envoy gives a wasm32-unknown-unknown module that imports it.
  environ_sizes_get: (countPtr, sizePtr) => { u32(countPtr, 0); u32(sizePtr, 0); return 0; },
  environ_get: () => 0,
  args_sizes_get: (countPtr, sizePtr) => { u32(countPtr, 0); u32(sizePtr, 0); return 0; },
  args_get: () => 0,
  clock_time_get: (id, precision, ret) => {
    view().setBigUint64(ret, process.hrtime.bigint(), true);
    return 0;
  },
  random_get: (ptr, len) => { mem().fill(7, ptr, ptr + len); return 0; },
  fd_write: (fd, iovs, iovsLen, ret) => { u32(ret, 0); return 0; },
  proc_exit: (code) => { throw new Error(`proc_exit(${code})`); },
};

const imports = {};
const unimplemented = new Set();
for (const { module: mod, name, kind } of WebAssembly.Module.imports(module)) {
  if (kind !== "function") continue;
  const impl = host[name] ?? (() => (unimplemented.add(name), UNIMPLEMENTED));
  (imports[mod] ??= {})[name] = (...args) => {
    if (counting) calls.set(name, (calls.get(name) ?? 0) + 1);
    return impl(...args);
  };
}
instance = new WebAssembly.Instance(module, imports);
const x = instance.exports;
(x._initialize ?? x._start ?? (() => {}))();

const ROOT = 1;
properties.set("plugin_root_id", enc.encode("tollgate"));
x.proxy_on_context_create(ROOT, 0);
if (!x.proxy_on_vm_start(ROOT, 0)) throw new Error("on_vm_start failed");
if (!x.proxy_on_configure(ROOT, config.length)) throw new Error("on_configure failed");

const answer = enc.encode(
  '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini",' +
  '"choices":[{"index":0,"message":{"role":"assistant","content":"Benchmarks measure what they measure."},' +
  '"finish_reason":"stop"}],"usage":{"prompt_tokens":240,"completion_tokens":9,"total_tokens":249}}');
let nextContext = 2;

// THRASH_KB=n: between callbacks, walk n KiB of other memory (as Envoy's own work between our
// callbacks does to the CPU caches) and time only the callbacks, to see what cold caches cost.
const THRASH = new Uint32Array((Number(process.env.THRASH_KB ?? 0) * 1024) / 4);
let inCallbacks = 0n;
let sink = 0;
function timed(fn) {
  if (THRASH.length) for (let i = 0; i < THRASH.length; i += 16) sink += THRASH[i]++;
  const start = process.hrtime.bigint();
  const result = fn();
  inCallbacks += process.hrtime.bigint() - start;
  return result;
}

/** One request of the benchmark chain: a unique body, so the cache misses and stores. */
function request(n) {
  const body = enc.encode(
    `{"model":"gpt-4o-mini","temperature":0,"max_tokens":64,"stream":false,"messages":[` +
    `{"role":"system","content":"You are terse. ${n}"},` +
    `{"role":"user","content":"Summarize the following paragraph in one sentence please."}]}`);
  const ctx = nextContext++;
  maps[0] = [
    [":method", "POST"], [":path", "/v1/chat/completions"], [":authority", "gateway"],
    [":scheme", "http"], ["content-type", "application/json"], ["content-length", String(body.length)],
  ];
  maps[2] = [];
  properties.set("xds\0route_name", enc.encode(ROUTE_NAME));
  buffers[0] = body;
  timed(() => x.proxy_on_context_create(ctx, ROOT));
  timed(() => x.proxy_on_request_headers(ctx, maps[0].length, 0));
  if (timed(() => x.proxy_on_request_body(ctx, body.length, 1)) !== 0) throw new Error("request paused");
  maps[2] = [[":status", "200"], ["content-type", "application/json"],
             ["content-length", String(answer.length)]];
  timed(() => x.proxy_on_response_headers(ctx, maps[2].length, 0));
  buffers[1] = answer;
  timed(() => x.proxy_on_response_body(ctx, answer.length, 1));
  timed(() => x.proxy_on_log(ctx));
  timed(() => x.proxy_on_done(ctx));
  timed(() => x.proxy_on_delete(ctx));
}

request(0); // defines the metric series
counting = true;
request(1);
counting = false;
const total = [...calls.values()].reduce((a, b) => a + b, 0);
console.log(`host calls per request: ${total} ` +
  JSON.stringify(Object.fromEntries([...calls].sort())));

let n = 2;
for (let round = 0; round < ROUNDS; round++) {
  const start = process.hrtime.bigint();
  inCallbacks = 0n;
  for (let i = 0; i < REQUESTS; i++) request(n++);
  const ns = Number(process.hrtime.bigint() - start);
  console.log(`round ${round + 1}: ${(ns / REQUESTS / 1000).toFixed(2)} µs per request, ` +
    `${(Number(inCallbacks) / REQUESTS / 1000).toFixed(2)} in the callbacks (${REQUESTS} requests)`);
}
const stored = metrics.find((m) => m.name.includes("cache_stores"));
console.log(`cache stores counted: ${stored ? stored.value : "none"}; shared-data keys: ${shared.size}`);
if (unimplemented.size) {
  // A call this harness does not serve: its timing would not be the chain's.
  console.error(`host calls answered Unimplemented: ${[...unimplemented].join(", ")}`);
  process.exit(1);
}
