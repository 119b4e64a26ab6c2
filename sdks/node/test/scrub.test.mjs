// The scrubber against the corpus the Rust scrubber is checked against
// (crates/tally-protocol/scrub-corpus.json): the same findings and the same output.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

import { find, isSensitive, scrub, REDACTED, utf8Length } from "../dist/cjs/scrub.js";
import { allIn, asciiSet, isName, isPluginName, isToken } from "../dist/cjs/protocol.js";
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

test("the regex-free checks equal the regexes they replace, on every kind of character", () => {
  // Random strings over ASCII, Latin-1, CJK, emoji (surrogate pairs) and lone surrogates.
  const pool = ["a", "z", "A", "Z", "0", "9", ".", "_", "-", "@", "/", ":", "+", " ", "é", "✓", "漢", "😀", "\ud800", "\udc00", "\x00", "\x7f"];
  const pick = () => pool[Math.floor(Math.random() * pool.length)];
  for (let n = 0; n < 20000; n++) {
    const s = Array.from({ length: 1 + Math.floor(Math.random() * 20) }, pick).join("");
    assert.equal(utf8Length(s), Buffer.byteLength(s), JSON.stringify(s));
    assert.equal(isName(s), s.length <= 64 && /^[a-z0-9._-]+$/.test(s), JSON.stringify(s));
    assert.equal(isToken(s, 64), s.length <= 64 && /^[A-Za-z0-9._:+-]+$/.test(s), JSON.stringify(s));
    assert.equal(isPluginName(s), s.length <= 64 && /^[a-z0-9@/._:-]+$/.test(s) && !isSensitive(s), JSON.stringify(s));
  }
  assert.equal(allIn("", asciiSet("a")), true);
  assert.equal(allIn("é", asciiSet("é")), false, "ASCII sets only");
});
