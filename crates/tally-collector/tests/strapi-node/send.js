#!/usr/bin/env node
// Drives Strapi's own published telemetry code against STRAPI_ANALYTICS_URL (a tally
// collector on loopback, started by tests/strapi.rs):
//
// 1. create-strapi-app's real CLI creates two projects in TALLY_STRAPI_WORK_DIR, with a
//    stand-in `npm` first on PATH (no network): one install takes 0.4 s and succeeds, the
//    other fails. Its events go through its own `trackUsage` sender.
// 2. @strapi/core's telemetry service (sender, rate limiter and request middleware) on a
//    minimal stand-in for the Strapi instance: didStartServer with the payload Strapi's
//    startup sends, ping and didReceiveRequest with an admin in the request context (so
//    userId and OS facts are sent), and an event of a plugin the schema does not list.
//
// Prints one JSON report on its last line. Exits non-zero if a sender did not get a 2xx.

'use strict';

const assert = require('node:assert');
const { spawnSync } = require('node:child_process');
const { createHash, randomUUID } = require('node:crypto');
const { EventEmitter } = require('node:events');
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

const nodeModules = process.env.TALLY_STRAPI_NODE_MODULES;
const work = process.env.TALLY_STRAPI_WORK_DIR;
const analyticsUrl = process.env.STRAPI_ANALYTICS_URL;
assert(nodeModules, 'set TALLY_STRAPI_NODE_MODULES to the directory setup.sh prints');
assert(work, 'set TALLY_STRAPI_WORK_DIR to an empty directory');
assert(analyticsUrl && analyticsUrl.startsWith('http://127.0.0.1:'), 'STRAPI_ANALYTICS_URL must be a loopback collector');

const requireInstalled = createRequire(path.join(nodeModules, '..', 'package.json'));
const pkgVersion = (name) => JSON.parse(fs.readFileSync(path.join(nodeModules, name, 'package.json'), 'utf8')).version;
const mustNotBeStored = [];

function createProjects() {
  const bin = path.join(work, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  // A stand-in package manager: answers --version, "installs" in 0.4 s, or fails like npm.
  fs.writeFileSync(
    path.join(bin, 'npm'),
    [
      '#!/bin/sh',
      'case "$1" in',
      '  --version) echo 10.9.0 ;;',
      '  install) sleep 0.4',
      '    if [ -n "$FAKE_NPM_FAIL" ]; then echo "npm error code EACCES: permission denied, mkdir /home/alice/x" >&2; exit 243; fi ;;',
      'esac',
      'exit 0',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const cli = path.join(nodeModules, 'create-strapi-app', 'bin', 'index.js');
  const runs = [
    { dir: 'app-ts', flags: ['--ts'], env: {} },
    { dir: 'app-js-failing', flags: ['--js'], env: { FAKE_NPM_FAIL: '1' } },
  ];
  for (const run of runs) {
    const env = { ...process.env, ...run.env, PATH: `${bin}${path.delimiter}${process.env.PATH}` };
    delete env.NODE_ENV; // NODE_ENV=test turns create-strapi-app's telemetry off
    delete env.DOCKER;
    delete env.npm_config_user_agent;
    const result = spawnSync(
      process.execPath,
      [cli, path.join(work, run.dir), '--non-interactive', '--skip-cloud', '--use-npm', '--no-run', '--no-git-init',
        '--no-example', '--dbclient', 'sqlite', ...run.flags],
      { env, cwd: work, encoding: 'utf8', timeout: 60_000 },
    );
    const expectFailure = Boolean(run.env.FAKE_NPM_FAIL);
    if (result.status !== (expectFailure ? 1 : 0)) {
      throw new Error(`create-strapi-app ${run.dir} exited ${result.status}\n${result.stdout}\n${result.stderr}`);
    }
    const pkg = JSON.parse(fs.readFileSync(path.join(work, run.dir, 'package.json'), 'utf8'));
    mustNotBeStored.push(pkg.strapi.uuid, pkg.strapi.installId);
  }
}

async function serverTelemetry() {
  process.env.DOCKER = 'true';
  const core = path.join(nodeModules, '@strapi', 'core', 'dist', 'services', 'metrics');
  const createTelemetry = require(path.join(core, 'index.js'));
  const createMiddleware = require(path.join(core, 'middleware.js'));
  const { generateInstallId } = requireInstalled('@strapi/utils');

  const uuid = randomUUID();
  const version = pkgVersion('@strapi/core');
  const admin = { email: 'admin@example.com' };
  let requestContext;
  const values = {
    uuid,
    environment: 'production',
    'info.strapi': version,
    'api.rest.prefix': '/api',
    'database.connection.client': 'postgres',
  };
  const config = {
    uuid,
    environment: 'production',
    packageJsonStrapi: {},
    get: (key, fallback) => (key in values ? values[key] : fallback),
  };
  fs.mkdirSync(path.join(work, 'server', 'src', 'admin'), { recursive: true });
  fs.writeFileSync(path.join(work, 'server', 'tsconfig.json'), '{}');
  const strapi = {
    config,
    dirs: { app: { root: path.join(work, 'server') } },
    fetch: (url, opts) => fetch(url, opts),
    EE: false,
    requestContext: { get: () => requestContext },
  };
  const telemetry = createTelemetry(strapi);
  assert(!telemetry.isDisabled, 'telemetry is enabled (STRAPI_TELEMETRY_DISABLED must not be set)');
  const results = {};
  const send = async (event, payload) => {
    results[event] = await telemetry.send(event, payload);
  };

  // What Strapi.sendStartupTelemetry sends, with no admin in context.
  await send('didStartServer', {
    groupProperties: {
      database: config.get('database.connection.client'),
      plugins: ['content-manager', 'i18n', 'users-permissions', 'upload'],
      numberOfAllContentTypes: 12,
      numberOfComponents: 4,
      numberOfDynamicZones: 1,
      numberOfConditionalFields: 0,
      numberOfCustomControllers: 2,
      environment: config.environment,
    },
  });

  // With an admin in the request context: userId (an e-mail hash) and OS facts are sent.
  requestContext = { state: { user: admin } };
  await send('ping');
  const pending = [];
  const middleware = createMiddleware({
    sendEvent: (event, payload) => {
      const p = telemetry.send(event, payload).then((ok) => {
        results[event] = ok;
      });
      pending.push(p);
      return p;
    },
    strapi,
  });
  const ctx = {
    request: { url: '/api/articles?filters[author][name][$eq]=alice&token=s3cr3t', method: 'GET' },
    response: { status: 404 },
    res: new EventEmitter(),
  };
  // The middleware skips URLs with a dot (static assets), so no e-mail address here.
  await middleware(ctx, async () => {});
  ctx.res.emit('finish');
  await Promise.all(pending);
  await send('didUseMyPlugin', { eventProperties: { note: 'free text from alice' } });

  for (const [event, ok] of Object.entries(results)) {
    if (ok !== true) throw new Error(`@strapi/core's sender got no 2xx for ${event}`);
  }
  mustNotBeStored.push(
    uuid,
    generateInstallId(uuid, undefined),
    createHash('sha256').update(admin.email).digest('hex'),
  );
  return { serverVersion: version, serverProjectId: uuid, serverEvents: Object.keys(results) };
}

async function main() {
  createProjects();
  const server = await serverTelemetry();
  const report = {
    createStrapiAppVersion: pkgVersion('create-strapi-app'),
    nodeVersion: process.versions.node,
    ...server,
    mustNotBeStored,
  };
  console.log(JSON.stringify(report));
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
