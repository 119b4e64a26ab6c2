// The project id: the Rust SDK's three manifests, nearest first, and createProjectId
// keeping the rest of the manifest as it was.
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { createProjectId, findProject, readManifest } from "../dist/cjs/project.js";

const ID = "7b581c0d-89b7-479e-b379-a76ab90b8754";
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "tally-node-project-"));

test("project: reads each manifest kind, nearest directory first", () => {
  const d = tmp();
  try {
    fs.writeFileSync(path.join(d, "package.json"), JSON.stringify({ name: "x", demo: { uuid: ID } }));
    let p = findProject(d, "demo");
    assert.deepEqual([p.id, p.kind, p.disabled], [ID, "package-json", false]);
    fs.writeFileSync(
      path.join(d, "Cargo.toml"),
      '[package]\nname = "x"\nauthors = [\n  "a",\n]\n[dependencies]\nserde = { version = "1", features = ["derive"] }\n[package.metadata.demo]\ntelemetry-disabled = true\n',
    );
    p = findProject(d, "demo");
    assert.deepEqual([p.kind, p.id, p.disabled], ["cargo-toml", null, true]);
    fs.mkdirSync(path.join(d, ".demo"));
    fs.writeFileSync(path.join(d, ".demo", "telemetry.toml"), `uuid = '${ID}'\n`);
    p = findProject(path.join(d, "sub", "dir"), "demo");
    assert.deepEqual([p.kind, p.id], ["telemetry-toml", ID]);
    assert.equal(findProject(d, "other"), null);
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test("project: a section without a valid uuid has no id; malformed files are skipped", () => {
  const d = tmp();
  try {
    for (const bad of ['""', '"not-a-uuid"', '"00000000-0000-0000-0000-000000000000"', "42"]) {
      fs.writeFileSync(path.join(d, "package.json"), `{"demo":{"uuid":${bad}}}`);
      assert.equal(findProject(d, "demo").id, null, bad);
    }
    fs.writeFileSync(path.join(d, "package.json"), '{"demo":{"telemetryDisabled":"true"}}');
    assert.ok(findProject(d, "demo").disabled);
    fs.writeFileSync(path.join(d, "package.json"), "{ not json");
    assert.equal(findProject(d, "demo"), null);
    assert.throws(() => readManifest(path.join(d, "package.json"), "package-json", "demo"));
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test("project: createProjectId keeps the rest of the manifest", () => {
  const d = tmp();
  try {
    const pkg = '{\n    "name": "site",\n    "zeta": 1,\n    "alpha": [1, 2]\n}\n';
    const file = path.join(d, "package.json");
    fs.writeFileSync(file, pkg);
    const id = createProjectId(d, "demo", "package-json");
    const text = fs.readFileSync(file, "utf8");
    assert.ok(text.startsWith('{\n    "name": "site",\n    "zeta": 1,'), text);
    assert.ok(text.includes(`    "demo": {\n        "uuid": "${id}"`), text);
    assert.equal(createProjectId(d, "demo", "package-json"), id, "idempotent");
    fs.writeFileSync(file, '{"demo": {"plan": "pro"}, "b": 1}');
    const id2 = createProjectId(d, "demo", "package-json");
    assert.equal(readManifest(file, "package-json", "demo").id, id2);
    assert.equal(JSON.parse(fs.readFileSync(file, "utf8")).demo.plan, "pro");
    fs.writeFileSync(file, "{}");
    const id3 = createProjectId(d, "demo", "package-json");
    assert.equal(findProject(d, "demo").id, id3);

    const cargo = '[package]\nname = "x" # keep me\n\n[dependencies]\nserde = "1"\n';
    fs.writeFileSync(path.join(d, "Cargo.toml"), cargo);
    const cid = createProjectId(d, "demo", "cargo-toml");
    const ctext = fs.readFileSync(path.join(d, "Cargo.toml"), "utf8");
    assert.ok(ctext.startsWith(cargo));
    assert.ok(ctext.endsWith(`[package.metadata.demo]\nuuid = "${cid}"\n`));

    const tid = createProjectId(d, "demo", "telemetry-toml");
    assert.equal(findProject(d, "demo").id, tid);
    assert.throws(() => createProjectId(path.join(d, "missing"), "demo", "cargo-toml"), /ENOENT|no such file/);
    fs.writeFileSync(file, "[1, 2]");
    assert.throws(() => createProjectId(d, "demo", "package-json"), /not a JSON object/);
    assert.equal(fs.readFileSync(file, "utf8"), "[1, 2]", "a manifest it cannot change is left alone");
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});
