//! The project id: a random UUID v4 kept in the project's own manifest.
//!
//! A project takes part in telemetry only while its manifest carries the id, so deleting
//! it (or never creating it) opts the project out. Three places are read, nearest
//! directory first, and in each directory in this order:
//!
//! | file | where the id is |
//! |---|---|
//! | `.<app>/telemetry.toml` | `uuid = "…"` |
//! | `Cargo.toml` | `[package.metadata.<app>] uuid = "…"` (or `[workspace.metadata.<app>]`) |
//! | `package.json` | `"<app>": { "uuid": "…" }` |
//!
//! The same table may say `telemetryDisabled = true` (also spelled `telemetry_disabled` or
//! `telemetry-disabled`), which switches telemetry off for everyone working on the
//! project. The first file that has a section for the app decides, even when that
//! section has no id.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::outbox::at_path;

/// Which kind of manifest holds a project's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestKind {
    /// `.<app>/telemetry.toml`, for projects of any language.
    TelemetryToml,
    /// `Cargo.toml`, `[package.metadata.<app>]`.
    CargoToml,
    /// `package.json`, `"<app>": {…}` as Strapi does.
    PackageJson,
}

impl ManifestKind {
    /// The manifest's path inside a project directory.
    pub fn path_in(self, dir: &Path, app: &str) -> PathBuf {
        match self {
            ManifestKind::TelemetryToml => dir.join(format!(".{app}")).join("telemetry.toml"),
            ManifestKind::CargoToml => dir.join("Cargo.toml"),
            ManifestKind::PackageJson => dir.join("package.json"),
        }
    }
}

/// What a project's manifest says about telemetry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Project {
    /// The project id; `None` when the app's section has no valid, non-nil UUID.
    pub id: Option<Uuid>,
    /// `telemetryDisabled = true` in the app's section.
    pub disabled: bool,
    /// The manifest that was read.
    pub manifest: PathBuf,
    /// Its kind.
    pub kind: ManifestKind,
}

const KINDS: [ManifestKind; 3] = [ManifestKind::TelemetryToml, ManifestKind::CargoToml, ManifestKind::PackageJson];

/// Finds the project `start` belongs to: the nearest directory, from `start` upwards, with a
/// manifest that has a section for `app`. Unreadable or malformed files are skipped.
pub fn find(start: &Path, app: &str) -> Option<Project> {
    start
        .ancestors()
        .flat_map(|dir| KINDS.iter().map(move |k| (dir, *k)))
        .find_map(|(dir, kind)| read(&kind.path_in(dir, app), kind, app).ok().flatten())
}

/// Reads one manifest; `Ok(None)` when it exists but has no section for `app`.
pub fn read(path: &Path, kind: ManifestKind, app: &str) -> io::Result<Option<Project>> {
    let text = fs::read_to_string(path).map_err(|e| at_path(e, path))?;
    let section = match kind {
        ManifestKind::TelemetryToml => Some(toml_table(&text)?),
        ManifestKind::CargoToml => {
            let doc = toml_table(&text)?;
            ["package", "workspace"]
                .iter()
                .find_map(|top| doc.get(*top)?.get("metadata")?.get(app).and_then(|v| serde_json::to_value(v).ok()))
        }
        ManifestKind::PackageJson => {
            let doc: serde_json::Value = serde_json::from_str(&text).map_err(invalid)?;
            doc.get(app).filter(|v| v.is_object()).cloned()
        }
    };
    Ok(section.map(|s| Project {
        id: s.get("uuid").and_then(|u| u.as_str()).and_then(|u| Uuid::parse_str(u.trim()).ok()).filter(|u| !u.is_nil()),
        disabled: ["telemetryDisabled", "telemetry_disabled", "telemetry-disabled"]
            .iter()
            .any(|k| s.get(*k).is_some_and(is_true)),
        manifest: path.to_path_buf(),
        kind,
    }))
}

fn is_true(v: &serde_json::Value) -> bool {
    v.as_bool() == Some(true) || v.as_str().is_some_and(|s| s == "true" || s == "1")
}

fn toml_table(text: &str) -> io::Result<serde_json::Value> {
    let table: toml::Table = toml::from_str(text).map_err(invalid)?;
    serde_json::to_value(table).map_err(invalid)
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Gives the project in `dir` an id, for a tool that creates projects: returns the id
/// already there, or writes a new random UUID v4 into the manifest of `kind` and returns
/// it. `Cargo.toml` and `package.json` must exist; their other contents and formatting are
/// kept as they are. `.<app>/telemetry.toml` is created when missing.
pub fn create(dir: &Path, app: &str, kind: ManifestKind) -> io::Result<Uuid> {
    let path = kind.path_in(dir, app);
    if let Ok(Some(Project { id: Some(id), .. })) = read(&path, kind, app) {
        return Ok(id);
    }
    let id = Uuid::new_v4();
    let text = match kind {
        ManifestKind::TelemetryToml => {
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).map_err(|e| at_path(e, parent))?;
            }
            let old = fs::read_to_string(&path).unwrap_or_default();
            let old: String =
                old.lines().filter(|l| !l.trim_start().starts_with("uuid")).map(|l| format!("{l}\n")).collect();
            format!("# The project's telemetry id. Delete this line to opt the project out.\nuuid = \"{id}\"\n{old}")
        }
        ManifestKind::CargoToml => insert_cargo(&fs::read_to_string(&path).map_err(|e| at_path(e, &path))?, app, id),
        ManifestKind::PackageJson => {
            insert_package_json(&fs::read_to_string(&path).map_err(|e| at_path(e, &path))?, app, id)?
        }
    };
    let tmp = path.with_extension(format!("tally-{}.tmp", std::process::id()));
    fs::write(&tmp, text).map_err(|e| at_path(e, &tmp))?;
    // Never leave a manifest that does not parse or lacks the id.
    match read(&tmp, kind, app) {
        Ok(Some(Project { id: Some(got), .. })) if got == id => {
            fs::rename(&tmp, &path).map_err(|e| at_path(e, &path))?
        }
        _ => {
            let _ = fs::remove_file(&tmp);
            return Err(invalid(format!("could not add a {app} uuid to {}; add it by hand", path.display())));
        }
    }
    Ok(id)
}

fn insert_cargo(text: &str, app: &str, id: Uuid) -> String {
    let header = format!("[package.metadata.{app}]");
    let line = format!("uuid = \"{id}\"");
    if let Some(pos) = text.find(&header) {
        let after = pos + header.len();
        let eol = text[after..].find('\n').map_or(text.len(), |i| after + i + 1);
        let mut out = text[..eol].to_string();
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&line);
        out.push('\n');
        out.push_str(&text[eol..]);
        out
    } else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("\n{header}\n{line}\n"));
        out
    }
}

fn insert_package_json(text: &str, app: &str, id: Uuid) -> io::Result<String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(invalid)?;
    let obj = doc.as_object().ok_or_else(|| invalid("package.json is not an object"))?;
    let indent = text
        .lines()
        .nth(1)
        .map(|l| &l[..l.len() - l.trim_start().len()])
        .filter(|i| !i.is_empty())
        .unwrap_or("  ")
        .to_string();
    let key = serde_json::to_string(app).map_err(invalid)?;
    if obj.get(app).is_some_and(|v| v.is_object()) {
        // `"app": {` exists: put the id first in it.
        let re = regex::Regex::new(&format!(r"{}\s*:\s*\{{", regex::escape(&key))).map_err(invalid)?;
        let m = re.find(text).ok_or_else(|| invalid("cannot find the app's section"))?;
        let rest = text[m.end()..].trim_start();
        let sep = if rest.starts_with('}') { "" } else { "," };
        return Ok(format!(
            "{}\"uuid\": \"{id}\"{sep} {}",
            &text[..m.end()],
            &text[m.end()..].trim_start_matches([' ', '\t'])
        ));
    }
    let end = text.rfind('}').ok_or_else(|| invalid("package.json has no closing brace"))?;
    let before = text[..end].trim_end();
    let sep = if before.ends_with('{') { "" } else { "," };
    Ok(format!("{before}{sep}\n{indent}{key}: {{\n{indent}{indent}\"uuid\": \"{id}\"\n{indent}}}\n{}", &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn reads_each_manifest_kind() {
        let d = tmp();
        let id = "7b581c0d-89b7-479e-b379-a76ab90b8754";
        fs::write(d.path().join("package.json"), format!(r#"{{"name":"x","demo":{{"uuid":"{id}"}}}}"#)).unwrap();
        let p = find(d.path(), "demo").unwrap();
        assert_eq!(p.id.unwrap().to_string(), id);
        assert_eq!(p.kind, ManifestKind::PackageJson);
        assert!(!p.disabled);

        fs::write(
            d.path().join("Cargo.toml"),
            "[package]\nname='x'\n[package.metadata.demo]\ntelemetry-disabled = true\n",
        )
        .unwrap();
        let p = find(d.path(), "demo").unwrap();
        assert_eq!((p.kind, p.id, p.disabled), (ManifestKind::CargoToml, None, true));

        fs::create_dir(d.path().join(".demo")).unwrap();
        fs::write(d.path().join(".demo/telemetry.toml"), format!("uuid = '{id}'\n")).unwrap();
        let p = find(&d.path().join("sub/dir"), "demo").unwrap();
        assert_eq!(p.kind, ManifestKind::TelemetryToml);
        assert!(p.id.is_some());
        assert!(find(d.path(), "other").is_none());
    }

    #[test]
    fn a_section_without_a_valid_uuid_has_no_id() {
        let d = tmp();
        for bad in [r#""""#, r#""not-a-uuid""#, r#""00000000-0000-0000-0000-000000000000""#] {
            fs::write(d.path().join("package.json"), format!(r#"{{"demo":{{"uuid":{bad}}}}}"#)).unwrap();
            assert_eq!(find(d.path(), "demo").unwrap().id, None, "{bad}");
        }
        fs::write(d.path().join("package.json"), r#"{"demo":{"telemetryDisabled":true}}"#).unwrap();
        assert!(find(d.path(), "demo").unwrap().disabled);
    }

    #[test]
    fn create_keeps_the_rest_of_the_manifest() {
        let d = tmp();
        let pkg = "{\n    \"name\": \"site\",\n    \"zeta\": 1,\n    \"alpha\": [1, 2]\n}\n";
        fs::write(d.path().join("package.json"), pkg).unwrap();
        let id = create(d.path(), "demo", ManifestKind::PackageJson).unwrap();
        let text = fs::read_to_string(d.path().join("package.json")).unwrap();
        assert!(text.starts_with("{\n    \"name\": \"site\",\n    \"zeta\": 1,"), "{text}");
        assert!(text.contains(&format!("    \"demo\": {{\n        \"uuid\": \"{id}\"")));
        // idempotent
        assert_eq!(create(d.path(), "demo", ManifestKind::PackageJson).unwrap(), id);

        fs::write(d.path().join("package.json"), r#"{"demo": {"plan": "pro"}, "b": 1}"#).unwrap();
        let id = create(d.path(), "demo", ManifestKind::PackageJson).unwrap();
        let p = read(&d.path().join("package.json"), ManifestKind::PackageJson, "demo").unwrap();
        assert_eq!(p.unwrap().id, Some(id));

        fs::write(d.path().join("package.json"), "{}").unwrap();
        let id = create(d.path(), "demo", ManifestKind::PackageJson).unwrap();
        assert_eq!(find(d.path(), "demo").unwrap().id, Some(id));

        let cargo = "[package]\nname = \"x\" # keep me\n\n[dependencies]\nserde = \"1\"\n";
        fs::write(d.path().join("Cargo.toml"), cargo).unwrap();
        let id = create(d.path(), "demo", ManifestKind::CargoToml).unwrap();
        let text = fs::read_to_string(d.path().join("Cargo.toml")).unwrap();
        assert!(text.starts_with(cargo), "{text}");
        assert!(text.ends_with(&format!("[package.metadata.demo]\nuuid = \"{id}\"\n")));

        let id = create(d.path(), "demo", ManifestKind::TelemetryToml).unwrap();
        assert_eq!(find(d.path(), "demo").unwrap().id, Some(id));
        assert!(create(&d.path().join("missing"), "demo", ManifestKind::CargoToml).is_err());
    }

    /// Issue 12 item 6: errors did not name the file they failed on.
    #[test]
    fn errors_name_the_manifest() {
        let d = tempfile::tempdir().unwrap();
        let err = create(d.path(), "demo", ManifestKind::CargoToml).unwrap_err();
        assert!(err.to_string().contains(&d.path().join("Cargo.toml").display().to_string()), "{err}");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
