// Every consent source, each in its own process (the example CLI): `telemetry status`
// names the source, and a `build` run with that environment agrees with it (off writes no
// file at all).
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";

import { Home } from "./helpers.mjs";

/** [name, setup(home) -> extra env, expected mode, expected source] */
const CASES = [
  ["policy off", (h) => (fs.writeFileSync(h.policy, 'telemetry = "off"\n'), {}), "off", "policy"],
  ["policy local", (h) => (fs.writeFileSync(h.policy, 'telemetry = "local"\n'), {}), "local", "policy"],
  ["policy for this app", (h) => (fs.writeFileSync(h.policy, 'telemetry = "allow"\n[apps.nodecli]\ntelemetry = "off"\n'), {}), "off", "policy"],
  ["policy for another app", (h) => (fs.writeFileSync(h.policy, '[apps.other]\ntelemetry = "off"\n'), {}), "on", "author_default"],
  ["policy unparsable", (h) => (fs.writeFileSync(h.policy, "not toml ["), {}), "off", "policy"],
  ["policy unknown field", (h) => (fs.writeFileSync(h.policy, 'telemetry = "allow"\nextra = 1\n'), {}), "off", "policy"],
  ["policy named but missing", (h) => ({ TALLY_POLICY: path.join(h.dir, "missing.toml") }), "off", "policy"],
  ["DO_NOT_TRACK", () => ({ DO_NOT_TRACK: "1" }), "off", "do_not_track"],
  ["DO_NOT_TRACK=0", () => ({ DO_NOT_TRACK: "0" }), "on", "author_default"],
  ["app variable", () => ({ NODECLI_TELEMETRY_DISABLED: "true" }), "off", "app_variable"],
  ["no project id", (h) => (fs.writeFileSync(path.join(h.project, "package.json"), '{"name":"x"}'), {}), "off", "no_project_id"],
  ["a section without a valid id", (h) => (fs.writeFileSync(path.join(h.project, "package.json"), '{"nodecli":{"uuid":"nope"}}'), {}), "off", "no_project_id"],
  ["project manifest", (h) => (fs.writeFileSync(path.join(h.project, "package.json"), '{"nodecli":{"uuid":"7b581c0d-89b7-479e-b379-a76ab90b8754","telemetryDisabled":true}}'), {}), "off", "project_manifest"],
  ["user choice local", (h) => (fs.writeFileSync(path.join(h.configDir, "config.toml"), 'telemetry = "local"\n'), {}), "local", "user_config"],
  ["user choice off", (h) => (fs.writeFileSync(path.join(h.configDir, "config.toml"), 'telemetry = "off"\n'), {}), "off", "user_config"],
  ["user config unreadable", (h) => (fs.writeFileSync(path.join(h.configDir, "config.toml"), "garbage = ["), {}), "off", "user_config_unreadable"],
  ["author default on", () => ({}), "on", "author_default"],
  ["author default off (opt-in)", () => ({ NODECLI_DEFAULT: "off" }), "off", "author_default"],
  ["opt-in, user enabled", (h) => (fs.writeFileSync(path.join(h.configDir, "config.toml"), 'telemetry = "on"\n'), { NODECLI_DEFAULT: "off" }), "on", "user_config"],
  ["DO_NOT_TRACK beats the user's choice", (h) => (fs.writeFileSync(path.join(h.configDir, "config.toml"), 'telemetry = "on"\n'), { DO_NOT_TRACK: "yes" }), "off", "do_not_track"],
];

for (const [name, setup, mode, source] of CASES) {
  test(`consent: ${name}`, () => {
    const home = new Home();
    try {
      const extra = setup(home);
      const s = home.status(extra);
      assert.equal(s.mode, mode, JSON.stringify(s));
      assert.equal(s.source, source, JSON.stringify(s));
      const before = home.files();
      const r = home.run(["build"], extra);
      assert.equal(r.status, 0, r.stderr);
      const after = home.files();
      if (mode === "off") {
        assert.deepEqual(after, before, "off writes no file");
      } else {
        assert.ok(after.some((f) => path.basename(f).startsWith("outbox-")), `events kept: ${after}`);
      }
    } finally {
      home.remove();
    }
  });
}

test("consent: status names the source in words", () => {
  const home = new Home();
  try {
    const r = home.run(["telemetry", "status"], { DO_NOT_TRACK: "1" });
    assert.match(r.stdout, /^telemetry: off \(decided by DO_NOT_TRACK\)/);
    const r2 = home.run(["telemetry"], { NODECLI_TELEMETRY_DISABLED: "1" });
    assert.match(r2.stdout, /decided by NODECLI_TELEMETRY_DISABLED/);
  } finally {
    home.remove();
  }
});
