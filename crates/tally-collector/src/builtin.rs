//! Schemas compiled into the collector, loaded before any `--schemas` directory.

use std::path::{Path, PathBuf};

use tally_protocol::{SchemaError, SchemaSet};

/// Built-in schema files: (name, TOML text).
pub const SCHEMAS: &[(&str, &str)] = &[
    ("builtin:demo.toml", include_str!("../schemas/demo.toml")),
    ("builtin:strapi.toml", include_str!("../schemas/strapi.toml")),
];

/// The built-in schemas plus every `*.toml` file of `dir` (sorted by name). A file may
/// replace a built-in app's schema; two files may not declare the same app.
pub fn load(dir: Option<&Path>) -> Result<SchemaSet, SchemaError> {
    let builtin = SchemaSet::from_texts(SCHEMAS.iter().map(|(n, t)| (Path::new(n), *t)))?;
    let Some(dir) = dir else { return Ok(builtin) };
    let io_error = |path: &Path, e: std::io::Error| SchemaError {
        file: path.to_path_buf(),
        line: 1,
        message: format!("cannot read: {e}"),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let texts = files
        .iter()
        .map(|p| std::fs::read_to_string(p).map(|t| (p.as_path(), t)).map_err(|e| io_error(p, e)))
        .collect::<Result<Vec<_>, _>>()?;
    let from_dir = SchemaSet::from_texts(texts.iter().map(|(p, t)| (*p, t.as_str())))?;
    let mut all = builtin;
    for schema in from_dir.iter() {
        all.insert(schema.clone());
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schemas_load() {
        let set = load(None).expect("built-in schemas are valid");
        assert!(set.get("demo").is_some());
    }

    #[test]
    fn a_bad_file_names_itself_and_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("good.toml"), "app = \"mytool\"\n[events.start]\nwhy = \"w\"\n").expect("write");
        std::fs::write(
            dir.path().join("bad.toml"),
            "app = \"other\"\n[events.start]\nwhy = \"w\"\nprops = [\"nope\"]\n",
        )
        .expect("write");
        let err = load(Some(dir.path())).expect_err("bad schema");
        let text = err.to_string();
        assert!(text.contains("bad.toml:4:") && text.contains("nope"), "{text}");
        std::fs::remove_file(dir.path().join("bad.toml")).expect("rm");
        let set = load(Some(dir.path())).expect("good schema");
        assert!(set.get("mytool").is_some() && set.get("demo").is_some());
    }

    #[test]
    fn a_file_without_why_refuses_to_load_naming_file_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("nowhy.toml"), "app = \"mytool\"\n\n[events.start]\ndescription = \"d\"\n")
            .expect("write");
        let text = load(Some(dir.path())).expect_err("no why").to_string();
        assert!(text.contains("nowhy.toml:3: event start has no `why`"), "{text}");
    }
}
