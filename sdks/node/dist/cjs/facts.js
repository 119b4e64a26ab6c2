"use strict";
/**
 * Facts about the environment: OS, architecture, coarse hardware size, CI, container, and
 * the deployment environment. Read from environment variables, `node:os` and a few files;
 * nothing spawns a process. Values are coarse on purpose, as in the Rust SDK.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.gatherFacts = gatherFacts;
exports.ciVendor = ciVendor;
exports.majorMinor = majorMinor;
exports.parseEnv = parseEnv;
exports.detectEnv = detectEnv;
const fs = require("node:fs");
const os = require("node:os");
const OS_NAMES = { darwin: "macos", win32: "windows", sunos: "solaris" };
const ARCH_NAMES = { x64: "x86_64", arm64: "aarch64", ia32: "x86", ppc64: "powerpc64" };
function floorPow2(n) {
    return n < 1 ? 0 : 2 ** Math.floor(Math.log2(n));
}
function gatherFacts(vars, hardware) {
    const f = {
        os: OS_NAMES[process.platform] ?? process.platform,
        osVersion: osVersion(),
        arch: ARCH_NAMES[process.arch] ?? process.arch,
        ci: ciVendor(vars),
        container: inContainer(vars),
    };
    if (hardware) {
        f.cpus = floorPow2(os.availableParallelism ? os.availableParallelism() : os.cpus().length);
        f.memoryGb = floorPow2(Math.max(1, Math.round(os.totalmem() / 2 ** 30)));
    }
    return f;
}
/** CI vendors by the variable each sets, most specific first (the Rust SDK's table). */
const CI_VENDORS = [
    ["GITHUB_ACTIONS", "github_actions"],
    ["GITLAB_CI", "gitlab"],
    ["CIRCLECI", "circleci"],
    ["TRAVIS", "travis"],
    ["BUILDKITE", "buildkite"],
    ["TF_BUILD", "azure_pipelines"],
    ["BITBUCKET_BUILD_NUMBER", "bitbucket"],
    ["CODEBUILD_BUILD_ID", "aws_codebuild"],
    ["TEAMCITY_VERSION", "teamcity"],
    ["JENKINS_URL", "jenkins"],
    ["DRONE", "drone"],
    ["WOODPECKER", "woodpecker"],
    ["APPVEYOR", "appveyor"],
    ["SEMAPHORE", "semaphore"],
    ["BUDDY", "buddy"],
    ["CF_PAGES", "cloudflare_pages"],
    ["NETLIFY", "netlify"],
    ["VERCEL", "vercel"],
    ["RENDER", "render"],
    ["CODESPACES", "codespaces"],
    ["GOOGLE_CLOUD_BUILD", "google_cloud_build"],
];
/** The CI vendor; `generic` for an unknown system that sets `CI` (or `CONTINUOUS_INTEGRATION`). */
function ciVendor(vars) {
    const set = (name) => {
        const v = vars[name];
        return v !== undefined && v !== "" && v !== "false";
    };
    const found = CI_VENDORS.find(([v]) => set(v));
    if (found)
        return found[1];
    return set("CI") || set("CONTINUOUS_INTEGRATION") ? "generic" : null;
}
function inContainer(vars) {
    if (fs.existsSync("/.dockerenv") || fs.existsSync("/run/.containerenv"))
        return true;
    if (vars.container !== undefined || vars.KUBERNETES_SERVICE_HOST !== undefined)
        return true;
    try {
        const c = fs.readFileSync("/proc/1/cgroup", "utf8");
        return ["docker", "kubepods", "containerd", "lxc", "podman", "libpod"].some((k) => c.includes(k));
    }
    catch {
        return false;
    }
}
function osVersion() {
    if (process.platform === "linux") {
        try {
            return majorMinor(fs.readFileSync("/proc/sys/kernel/osrelease", "utf8"));
        }
        catch {
            return "";
        }
    }
    if (process.platform === "darwin") {
        try {
            const plist = fs.readFileSync("/System/Library/CoreServices/SystemVersion.plist", "utf8");
            const m = /<key>ProductVersion<\/key>\s*<string>(\d+)/.exec(plist);
            return m ? m[1] : "";
        }
        catch {
            return "";
        }
    }
    return "";
}
/** `6.8.0-45-generic` -> `6.8`. */
function majorMinor(release) {
    const t = release.trim();
    let end = 0;
    let dots = 0;
    for (; end < t.length; end++) {
        const c = t.charCodeAt(end);
        if (c === 46 && ++dots === 2)
            break;
        if (c !== 46 && (c < 48 || c > 57))
            break;
    }
    return t.slice(0, end);
}
/** Maps the usual spellings of an environment name; `null` for anything else. */
function parseEnv(s) {
    switch (s.trim().toLowerCase()) {
        case "development":
        case "dev":
        case "local":
            return "development";
        case "staging":
        case "stage":
        case "preview":
        case "qa":
        case "uat":
            return "staging";
        case "production":
        case "prod":
            return "production";
        case "test":
        case "testing":
            return "test";
        default:
            return null;
    }
}
/** The tool's own `<PREFIX>_ENV`, then `NODE_ENV`, `APP_ENV`, `RAILS_ENV`, `ENVIRONMENT`; development otherwise. */
function detectEnv(vars, prefix) {
    for (const name of [`${prefix}_ENV`, "NODE_ENV", "APP_ENV", "RAILS_ENV", "ENVIRONMENT"]) {
        const v = vars[name];
        const e = v === undefined ? null : parseEnv(v);
        if (e)
            return e;
    }
    return "development";
}
