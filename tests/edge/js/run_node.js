// The node harness: runs the generated Function in a fresh vm context (no require, no console,
// like CloudFront) on requests read from stdin.
//   node run_node.js FUNCTION.js            JSON array of {path, query, accept} in, results out
//   node run_node.js FUNCTION.js --lines    per line: a JSON array of cases in, results out
//   node run_node.js FUNCTION.js --bench    JSON array in; per-call microseconds out
'use strict';
const fs = require('fs');
const path = require('path');
const readline = require('readline');
const vm = require('vm');

const [functionFile, mode] = process.argv.slice(2);
const context = vm.createContext({});
vm.runInContext(fs.readFileSync(functionFile, 'utf8'), context, {filename: 'viewer_request.js'});
const shared = path.join(__dirname, 'cloudfront_event.js');
vm.runInContext(fs.readFileSync(shared, 'utf8'), context, {filename: shared});
const handler = context.handler;

function bench(cases) {
  // Events are built before the clock starts: CloudFront hands the Function a ready object.
  const rounds = Math.max(2, Math.ceil(100000 / cases.length));
  const events = [];
  for (let r = 0; r < rounds; r++) {
    for (const c of cases) {
      events.push(context.cloudfrontEvent(c));
    }
  }
  // The first quarter warms the JIT up and is not timed.
  const warm = events.splice(0, Math.floor(events.length / 4));
  for (const e of warm) {
    handler(e);
  }
  const started = process.hrtime.bigint();
  for (const e of events) {
    handler(e);
  }
  const ns = Number(process.hrtime.bigint() - started);
  return {calls: events.length, us_per_call: ns / events.length / 1000};
}

if (mode === '--lines') {
  const lines = readline.createInterface({input: process.stdin, crlfDelay: Infinity});
  lines.on('line', (line) => {
    const cases = JSON.parse(line);
    process.stdout.write(JSON.stringify(cases.map((c) => context.runCase(handler, c))) + '\n');
  });
} else {
  const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
  const out = mode === '--bench' ? bench(cases) : cases.map((c) => context.runCase(handler, c));
  process.stdout.write(JSON.stringify(out));
}
