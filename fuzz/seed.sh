#!/usr/bin/env bash
# Seeds the fuzz corpora fuzz/corpus/<target>/ (not committed; see docs/fuzzing.md) from the
# files the tests already use, so that the seeds follow the protocol as it changes:
# - batch:  each protocol vector's `batch`, as the request body, once per Content-Encoding
#           (first byte 0 identity, 1 gzip, 2 zstd when the zstd tool is installed);
# - schema: the vectors' schema and the built-in schemas;
# - strapi: the Strapi payload fixtures, as Strapi posts them.
# Needs node (which `cargo xtask test` needs anyway). Rerunning only rewrites the seeds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
corpus=$root/fuzz/corpus
mkdir -p "$corpus/batch" "$corpus/schema" "$corpus/strapi"

cp "$root/crates/tally-protocol/vectors/schema.toml" "$corpus/schema/seed-vectors.toml"
for f in "$root"/crates/tally-collector/schemas/*.toml; do
    cp "$f" "$corpus/schema/seed-builtin-$(basename "$f")"
done
for f in "$root"/crates/tally-collector/tests/fixtures/strapi/*.json; do
    cp "$f" "$corpus/strapi/seed-$(basename "$f")"
done

SEED_VECTORS=$root/crates/tally-protocol/vectors SEED_OUT=$corpus/batch node -e '
const fs = require("fs"), path = require("path"), zlib = require("zlib");
const dir = process.env.SEED_VECTORS, out = process.env.SEED_OUT;
for (const kind of ["valid", "invalid"]) {
  for (const name of fs.readdirSync(path.join(dir, kind)).filter(n => n.endsWith(".json")).sort()) {
    const vector = JSON.parse(fs.readFileSync(path.join(dir, kind, name), "utf8"));
    const body = Buffer.from(JSON.stringify(vector.batch));
    const stem = `seed-${kind}-${name.replace(/\.json$/, "")}`;
    fs.writeFileSync(path.join(out, `${stem}.identity`), Buffer.concat([Buffer.from([0]), body]));
    fs.writeFileSync(path.join(out, `${stem}.gzip`), Buffer.concat([Buffer.from([1]), zlib.gzipSync(body)]));
    fs.writeFileSync(path.join(out, `${stem}.json`), body);
  }
}'
if command -v zstd >/dev/null; then
    for f in "$corpus"/batch/seed-*.json; do
        { printf '\002'; zstd -q -c "$f"; } >"${f%.json}.zstd"
    done
fi
rm -f "$corpus"/batch/seed-*.json
echo "seeded; the corpora in $corpus now hold $(ls "$corpus/batch" | wc -l) batch, $(ls "$corpus/schema" | wc -l) schema and $(ls "$corpus/strapi" | wc -l) strapi inputs"
