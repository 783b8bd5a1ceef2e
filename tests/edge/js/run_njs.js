// The njs harness's main: Python concatenates the generated Function, cloudfront_event.js,
// `var CASES = [...];` and this file into one script (njs 0.7 has no stdin API).
// console.log breaks long lines, so the JSON goes out in chunks that Python joins again.
(function () {
  var out = [];
  var text, i;
  for (i = 0; i < CASES.length; i++) {
    out.push(runCase(handler, CASES[i]));
  }
  text = JSON.stringify(out);
  for (i = 0; i < text.length; i += 1000) {
    console.log(text.slice(i, i + 1000));
  }
})();
