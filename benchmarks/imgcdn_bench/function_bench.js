// Per-call time of the generated viewer-request CloudFront Function, in node:
// `node function_bench.js FUNCTION.js REQUESTS.json ROUNDS`.
// REQUESTS.json is a list of {"mix", "uri", "query", "accept"}. Each round builds fresh events
// (the Function rewrites the request in place) outside the timed loop, then calls handler() on
// every event; the per-call time of a round is its loop time / calls. Prints one JSON line:
// the median per-call ns of each mix over the rounds, and how many calls answered 400.
// node's V8 is not CloudFront's runtime: read the result as a ratio against the budget.
"use strict";

const fs = require("fs");

function loadHandler(file) {
  const source = fs.readFileSync(file, "utf8");
  // The Function is a script defining `handler`; evaluate it in its own function scope.
  return new Function(`${source}\nreturn handler;`)();
}

function querystring(raw) {
  // CloudFront's shape: names and values as received (percent-encoded), repeats in multiValue.
  const out = {};
  for (const piece of raw.split("&")) {
    if (!piece) continue;
    const at = piece.indexOf("=");
    const name = at < 0 ? piece : piece.slice(0, at);
    const value = at < 0 ? "" : piece.slice(at + 1);
    if (Object.prototype.hasOwnProperty.call(out, name)) {
      const field = out[name];
      if (!field.multiValue) field.multiValue = [{ value: field.value }];
      field.multiValue.push({ value });
    } else {
      out[name] = { value };
    }
  }
  return out;
}

function event(request) {
  const headers = { host: { value: "images.example.test" } };
  if (request.accept !== null) headers.accept = { value: request.accept };
  return {
    version: "1.0",
    context: { eventType: "viewer-request" },
    viewer: { ip: "192.0.2.1" },
    request: {
      method: "GET",
      uri: request.uri,
      querystring: querystring(request.query),
      headers,
      cookies: {},
    },
  };
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function main() {
  const [file, requestsFile, roundsArg] = process.argv.slice(2);
  const handler = loadHandler(file);
  const requests = JSON.parse(fs.readFileSync(requestsFile, "utf8"));
  const rounds = Number(roundsArg || 20);
  const mixes = [...new Set(requests.map((r) => r.mix)), "all"];
  const result = { calls_per_round: {}, ns_per_call: {}, rejected: {}, rounds };
  for (const mix of mixes) {
    const selected = mix === "all" ? requests : requests.filter((r) => r.mix === mix);
    const perCall = [];
    let rejected = 0;
    for (let round = 0; round < rounds + 2; round++) {
      const events = selected.map(event);
      const started = process.hrtime.bigint();
      let bad = 0;
      for (let i = 0; i < events.length; i++) {
        const answer = handler(events[i]);
        if (answer.statusCode === 400) bad++;
      }
      const elapsed = Number(process.hrtime.bigint() - started);
      if (round >= 2) perCall.push(elapsed / events.length); // two rounds warm the JIT up
      rejected = bad;
    }
    result.calls_per_round[mix] = selected.length;
    result.ns_per_call[mix] = median(perCall);
    result.rejected[mix] = rejected;
  }
  process.stdout.write(JSON.stringify(result) + "\n");
}

main();
