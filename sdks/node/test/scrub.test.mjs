// The scrubber against the corpus the Rust scrubber is checked against
// (crates/tally-protocol/scrub-corpus.json): the same findings and the same output.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

import { find, isSensitive, scrub, REDACTED } from "../dist/cjs/scrub.js";
import { repo } from "./helpers.mjs";

const corpus = JSON.parse(fs.readFileSync(path.join(repo, "crates", "tally-protocol", "scrub-corpus.json"), "utf8"));

test("scrub corpus: finds personal data", () => {
  for (const { input, finding } of corpus.finds) {
    assert.equal(find(input), finding, `find(${JSON.stringify(input)})`);
    assert.notEqual(scrub(input), input, `scrub(${JSON.stringify(input)}) changed nothing`);
  }
});

test("scrub corpus: keeps ordinary values", () => {
  for (const ok of [...corpus.clean, ...corpus.short_clean]) {
    assert.equal(find(ok), null, `find(${JSON.stringify(ok)})`);
    assert.equal(scrub(ok), ok);
  }
  for (const s of corpus.short_sensitive) assert.ok(isSensitive(s), s);
});

test("scrub corpus: no leak survives", () => {
  assert.ok(corpus.leaks.length > 40);
  for (const { input, piece, finding } of corpus.leaks) {
    assert.equal(find(input), finding, `find(${JSON.stringify(input)})`);
    const out = scrub(input);
    assert.ok(!out.includes(piece), `scrub(${JSON.stringify(input)}) = ${JSON.stringify(out)} still contains ${piece}`);
    assert.ok(out.includes(REDACTED), out);
    assert.ok(!isSensitive(out), `${out} is still sensitive`);
  }
});

test("scrub corpus: the same output as the Rust scrubber", () => {
  for (const { input, output } of corpus.scrubbed) assert.equal(scrub(input), output, `scrub(${JSON.stringify(input)})`);
});
