// Summarises a V8 .cpuprofile (node --cpu-prof): self and inclusive share of the samples per
// function, the module's wasm functions by their names. Used by scripts/profile-v8.
//
//   node integration/v8/top-functions.mjs <file.cpuprofile> [rows]
import { readFileSync } from "node:fs";

const [file, rowsArg] = process.argv.slice(2);
const rows = Number(rowsArg ?? 40);
const profile = JSON.parse(readFileSync(file, "utf8"));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const selfCount = new Map();
for (const id of profile.samples) selfCount.set(id, (selfCount.get(id) ?? 0) + 1);
const total = profile.samples.length;
const self = new Map(), inclusive = new Map();
for (const [id, count] of selfCount) {
  const name = byId.get(id).callFrame.functionName || "(anonymous)";
  self.set(name, (self.get(name) ?? 0) + count);
  const seen = new Set();
  for (let at = id; at !== undefined; at = parent.get(at)) {
    const fn = byId.get(at).callFrame.functionName || "(anonymous)";
    if (seen.has(fn)) continue;
    seen.add(fn);
    inclusive.set(fn, (inclusive.get(fn) ?? 0) + count);
  }
}
const pct = (n) => ((100 * n) / total).toFixed(1).padStart(5);
// The module's own code: samples whose frame is a wasm function (V8 names them wasm://...).
const inModule = profile.samples.filter((id) => byId.get(id).callFrame.url.startsWith("wasm")).length;
const run = profile.samples.filter((id) => {
  for (let at = id; at !== undefined; at = parent.get(at))
    if (byId.get(at).callFrame.functionName === "request") return true;
  return false;
}).length;
console.log(`${total} samples; in requests ${pct(run)} %; the module's own code ${pct(inModule)} % ` +
  `(${((100 * inModule) / run).toFixed(1)} % of the requests' time)`);
console.log(`\nself %  function`);
for (const [name, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, rows))
  console.log(`${pct(n)}  ${name.slice(0, 110)}`);
console.log(`\ninclusive %  function`);
for (const [name, n] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, rows))
  console.log(`${pct(n)}  ${name.slice(0, 110)}`);
