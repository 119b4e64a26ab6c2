/**
 * Every setting of a client, declared once with its default, and `resolve`, which turns
 * them into what a process knows before anything starts: the files, the project, the
 * consent decision. Reads files, writes none. The client, the `telemetry` command and the
 * controls all start here.
 */
import * as os from "node:os";
import * as path from "node:path";
import { resolveConsent } from "./consent.js";
import { ciVendor } from "./facts.js";
import { findProject, parseUuid } from "./project.js";
import { isName } from "./protocol.js";
import { appPrefix, flag } from "./vars.js";
/** The platform's config and local data directories, as the Rust `dirs` crate finds them. */
export function platformDirs(vars) {
    const home = vars.HOME || (process.platform === "win32" ? vars.USERPROFILE : undefined) || safeHome();
    const abs = (p) => (p && path.isAbsolute(p) ? p : null);
    if (process.platform === "win32") {
        return { config: abs(vars.APPDATA), data: abs(vars.LOCALAPPDATA) };
    }
    if (!home)
        return { config: null, data: null };
    if (process.platform === "darwin") {
        const support = path.join(home, "Library", "Application Support");
        return { config: support, data: support };
    }
    return {
        config: abs(vars.XDG_CONFIG_HOME) ?? path.join(home, ".config"),
        data: abs(vars.XDG_DATA_HOME) ?? path.join(home, ".local", "share"),
    };
}
function safeHome() {
    try {
        return os.homedir() || undefined;
    }
    catch {
        return undefined;
    }
}
export function paths(o, vars) {
    const dirs = o.configDir && o.dataDir ? { config: null, data: null } : platformDirs(vars);
    const config = o.configDir ?? (dirs.config ? path.join(dirs.config, "tally", o.app) : null);
    const data = o.dataDir ?? (dirs.data ? path.join(dirs.data, "tally", o.app) : null);
    return {
        userConfig: config ? path.join(config, "config.toml") : null,
        identity: config ? path.join(config, "identity.toml") : null,
        data,
    };
}
/** Resolves consent for these options (see `consent.ts`). Reads files, writes none. */
export function resolve(o) {
    const vars = o.vars ?? process.env;
    const prefix = o.envPrefix ?? appPrefix(o.app);
    const p = paths(o, vars);
    const givenId = o.projectId === undefined ? null : parseUuid(o.projectId);
    let project = null;
    if (o.projectId === undefined) {
        let start = o.projectDir;
        if (start === undefined) {
            try {
                start = process.cwd();
            }
            catch {
                start = undefined;
            }
        }
        project = start === undefined ? null : findProject(start, o.app);
    }
    const decision = typeof o.app === "string" && isName(o.app)
        ? resolveConsent({
            app: o.app,
            envPrefix: prefix,
            vars,
            policyPath: o.policyPath,
            project: givenId ? { given: true } : project ? { found: project } : null,
            userConfig: p.userConfig ?? undefined,
            default: o.defaultMode ?? "on",
        })
        : { mode: "off", source: { key: "author_default" } };
    return {
        app: o.app,
        command: o.command ?? o.app,
        prefix,
        decision,
        debug: flag(vars, `${prefix}_TELEMETRY_DEBUG`),
        endpoint: o.endpoint ?? null,
        project,
        projectId: givenId ?? project?.id ?? null,
        paths: p,
        ci: ciVendor(vars),
        vars,
    };
}
