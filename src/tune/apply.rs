//! `--apply`: writes the chosen memory (and architecture) into the
//! function's Cargo.toml, keeping the file's comments and layout
//! (toml_edit), and says which file and key changed, with a line diff.
//!
//! Where: the table whose value wins for this function when that table is
//! the function's own (`[package.metadata.fn.functions.<bin>]`, or
//! `[package.metadata.fn]` of a package with one binary); otherwise the
//! function's own table, which wins over the shared ones. So tuning one
//! binary of a package never moves the others. Under a stage, the same
//! table's `stages.<stage>` table: tuning one stage never moves another.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::{Arch, FunctionConfig, Source};

/// The path of the table `--apply` writes `key` of binary `bin` into, in
/// the package manifest `manifest` holding `bins` binaries; `source` is
/// where the value in force comes from.
pub fn table_for(
    bin: &str,
    source: Option<&Source>,
    key: &str,
    manifest: &Path,
    bins: usize,
) -> Vec<String> {
    let own = format!("package.metadata.fn.functions.{bin}");
    let package = "package.metadata.fn";
    let winning = match source {
        Some(Source::Manifest { file, key: at }) if file == manifest => at.strip_suffix(key),
        _ => None,
    }
    .map(|t| t.trim_end_matches('.'));
    let table = match winning {
        Some(t) if t == own => own.as_str(),
        Some(t) if t == package && bins == 1 => package,
        _ if bins == 1 => package,
        _ => own.as_str(),
    };
    let mut path: Vec<String> = ["package", "metadata", "fn"].map(String::from).to_vec();
    if table == own {
        path.extend(["functions".to_string(), bin.to_string()]);
    }
    path
}

/// [`table_for`] for `key` of `cfg`; under a stage, that table's
/// `stages.<stage>` table, so tuning one stage never moves another.
pub fn table_of(cfg: &FunctionConfig, key: &str, manifest: &Path, bins: usize) -> Vec<String> {
    let Some(stage) = &cfg.stage else {
        return table_for(&cfg.bin, cfg.sources.get(key), key, manifest, bins);
    };
    // The value in force may sit in a stage table already: the plain rule
    // sees the table around it.
    let marker = format!(".stages.{}.", stage.name);
    let source = cfg.sources.get(key).map(|s| match s {
        Source::Manifest { file, key } => Source::Manifest {
            file: file.clone(),
            key: key.replacen(&marker, ".", 1),
        },
        other => other.clone(),
    });
    let mut path = table_for(&cfg.bin, source.as_ref(), key, manifest, bins);
    path.extend(["stages".to_string(), stage.name.clone()]);
    path
}

/// One value written: the table (dotted), the key, the new and old value.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub table: String,
    pub key: String,
    pub value: String,
    pub old: Option<String>,
}

/// The new text of `manifest` with each `(table, key, value)` set; only
/// those lines change (missing tables and keys are added).
pub fn edit(
    manifest: &str,
    values: &[(Vec<String>, &str, toml_edit::Item)],
) -> Result<(String, Vec<Change>)> {
    let mut doc: toml_edit::DocumentMut = manifest.parse().context("parsing Cargo.toml")?;
    let mut changes = Vec::new();
    for (path, key, value) in values {
        let package = doc
            .get_mut("package")
            .and_then(|p| p.as_table_mut())
            .context("Cargo.toml has no [package] table")?;
        let mut table: &mut dyn toml_edit::TableLike = package;
        let mut dotted = String::from("package");
        for (i, name) in path.iter().enumerate().skip(1) {
            dotted = format!("{dotted}.{name}");
            // The tables on the way stay implicit (no empty headers).
            let last = i + 1 == path.len();
            table = table
                .entry(name)
                .or_insert_with(|| table_item(!last))
                .as_table_like_mut()
                .with_context(|| format!("`{dotted}` is not a table"))?;
        }
        let old = table.get(key).and_then(|i| i.as_value()).map(plain);
        set(table, key, value.clone());
        changes.push(Change {
            table: dotted,
            key: key.to_string(),
            value: value.as_value().map(plain).unwrap_or_default(),
            old,
        });
    }
    Ok((doc.to_string(), changes))
}

/// A value as written, without its spacing and comment.
fn plain(v: &toml_edit::Value) -> String {
    let mut v = v.clone();
    v.decor_mut().clear();
    v.to_string()
}

fn table_item(implicit: bool) -> toml_edit::Item {
    let mut t = toml_edit::Table::new();
    t.set_implicit(implicit);
    toml_edit::Item::Table(t)
}

/// Replaces a value keeping its line's comment and spacing.
fn set(table: &mut dyn toml_edit::TableLike, key: &str, value: toml_edit::Item) {
    match table.get_mut(key) {
        Some(item) if item.is_value() => {
            let decor = item.as_value().map(|v| v.decor().clone());
            *item = value;
            if let (Some(decor), Some(v)) = (decor, item.as_value_mut()) {
                *v.decor_mut() = decor;
            }
        }
        _ => {
            table.insert(key, value);
        }
    }
}

/// Lines removed (`-`) and added (`+`) between two texts: the changed
/// middle between their common first and last lines.
pub fn diff(path: &Path, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let head = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let mut out = format!(
        "--- {0}\n+++ {0}\n@@ line {1} @@\n",
        path.display(),
        head + 1
    );
    for l in &a[head..a.len() - tail] {
        out.push_str(&format!("-{l}\n"));
    }
    for l in &b[head..b.len() - tail] {
        out.push_str(&format!("+{l}\n"));
    }
    out
}

/// What `--apply` did to a manifest: the values it set and the diff.
#[derive(Debug, Clone)]
pub struct Applied {
    pub changes: Vec<Change>,
    pub diff: String,
}

/// Sets `memory` (and `arch`) of `cfg` in its package manifest, in place
/// (temp file, then rename); `None` when nothing changes.
pub fn apply(
    manifest: &Path,
    cfg: &FunctionConfig,
    bins: usize,
    memory: u32,
    arch: Option<Arch>,
) -> Result<Option<Applied>> {
    let old = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let table = |key: &str| table_of(cfg, key, manifest, bins);
    let mut values = vec![(
        table("memory"),
        "memory",
        toml_edit::value(i64::from(memory)),
    )];
    if let Some(arch) = arch {
        values.push((
            table("architecture"),
            "architecture",
            toml_edit::value(arch.as_str()),
        ));
    }
    let (new, changes) =
        edit(&old, &values).with_context(|| format!("editing {}", manifest.display()))?;
    if new == old {
        return Ok(None);
    }
    let tmp = manifest.with_extension("toml.cargo-fn-tune");
    std::fs::write(&tmp, &new).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, manifest).with_context(|| format!("writing {}", manifest.display()))?;
    let changes = changes
        .into_iter()
        .filter(|c| c.old.as_deref() != Some(c.value.as_str()))
        .collect();
    Ok(Some(Applied {
        changes,
        diff: diff(manifest, &old, &new),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"[package]
name = "hello"   # the crate
version = "0.1.0"

# How Lambda runs it.
[package.metadata.fn]
memory = 128     # MB, tuned by hand
timeout = 10

[dependencies]
lambda_runtime = "1"
"#;

    fn package_table() -> Vec<String> {
        ["package", "metadata", "fn"].map(String::from).to_vec()
    }

    #[test]
    fn only_the_memory_line_changes_and_its_comment_stays() {
        let (new, changes) = edit(
            MANIFEST,
            &[(package_table(), "memory", toml_edit::value(1024))],
        )
        .unwrap();
        let changed: Vec<(&str, &str)> = MANIFEST
            .lines()
            .zip(new.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            vec![(
                "memory = 128     # MB, tuned by hand",
                "memory = 1024     # MB, tuned by hand"
            )]
        );
        assert_eq!(MANIFEST.lines().count(), new.lines().count());
        let d = diff(Path::new("Cargo.toml"), MANIFEST, &new);
        assert!(
            d.contains("-memory = 128") && d.contains("+memory = 1024"),
            "{d}"
        );
        assert_eq!(
            changes,
            vec![Change {
                table: "package.metadata.fn".into(),
                key: "memory".into(),
                value: "1024".into(),
                old: Some("128".into()),
            }]
        );
    }

    #[test]
    fn under_a_stage_the_stage_table_is_written() {
        let manifest = Path::new("/p/Cargo.toml");
        let project = crate::project::Project {
            workspace_root: "/p".into(),
            workspace_manifest: manifest.into(),
            target_dir: "/p/target".into(),
            workspace_metadata: serde_json::Value::Null,
            functions: vec![crate::project::FunctionTarget {
                package: "p".into(),
                bin: "a".into(),
                manifest_path: manifest.into(),
                package_metadata: serde_json::json!({ "fn": {
                    "memory": 256,
                    "stages": { "prod": { "timeout": 5 }, "dev": { "memory": 512 } }
                } }),
                src_path: "/p/src/main.rs".into(),
            }],
        };
        let resolve = |stage: &str| {
            let overrides = crate::config::Overrides {
                stage: Some(stage.into()),
                ..Default::default()
            };
            crate::config::resolve_with_env(&project, &overrides, &Default::default())
                .unwrap()
                .remove(0)
        };
        let stage_table = |bin_table: bool, stage: &str| {
            let mut t = package_table();
            if bin_table {
                t.extend(["functions".to_string(), "a".to_string()]);
            }
            t.extend(["stages".to_string(), stage.to_string()]);
            t
        };
        // memory comes from the plain table: prod's table gets its own.
        let prod = resolve("prod");
        assert_eq!(
            table_of(&prod, "memory", manifest, 1),
            stage_table(false, "prod")
        );
        assert_eq!(
            table_of(&prod, "memory", manifest, 2),
            stage_table(true, "prod")
        );
        // dev's own value is rewritten where it is.
        let dev = resolve("dev");
        assert_eq!(
            table_of(&dev, "memory", manifest, 1),
            stage_table(false, "dev")
        );
    }

    #[test]
    fn a_missing_table_or_key_is_added() {
        let bare = "[package]\nname = \"x\"\nversion = \"0.1.0\"\n";
        let (new, _) = edit(
            bare,
            &[
                (package_table(), "memory", toml_edit::value(512)),
                (package_table(), "architecture", toml_edit::value("arm64")),
            ],
        )
        .unwrap();
        assert!(new.starts_with(bare), "{new}");
        assert!(
            new.contains("[package.metadata.fn]\nmemory = 512\narchitecture = \"arm64\"\n"),
            "{new}"
        );
    }

    #[test]
    fn a_binary_of_a_package_with_several_gets_its_own_table() {
        let manifest = Path::new("/p/Cargo.toml");
        let at = |key: &str| Source::Manifest {
            file: manifest.to_path_buf(),
            key: key.into(),
        };
        let own = |bin: &str| {
            let mut t = package_table();
            t.extend(["functions".to_string(), bin.to_string()]);
            t
        };
        // The value in force is the binary's own: written there.
        let s = at("package.metadata.fn.functions.a.memory");
        assert_eq!(table_for("a", Some(&s), "memory", manifest, 2), own("a"));
        // The package's, shared with another binary: the binary's own table.
        let s = at("package.metadata.fn.memory");
        assert_eq!(table_for("a", Some(&s), "memory", manifest, 2), own("a"));
        assert_eq!(table_for("a", None, "memory", manifest, 2), own("a"));
        // One binary: the package table is its own.
        assert_eq!(
            table_for("a", Some(&s), "memory", manifest, 1),
            package_table()
        );
        assert_eq!(table_for("a", None, "memory", manifest, 1), package_table());
        let ws = Source::Manifest {
            file: "/Cargo.toml".into(),
            key: "workspace.metadata.fn.memory".into(),
        };
        assert_eq!(
            table_for("a", Some(&ws), "memory", manifest, 1),
            package_table()
        );

        let text = "[package]\nname = \"p\"\nversion = \"0.1.0\"\n\n[package.metadata.fn]\nmemory = 128\n\n[package.metadata.fn.functions.a]\nmemory = 256 # a\n\n[package.metadata.fn.functions.b]\ntimeout = 3\n";
        let (new, changes) = edit(text, &[(own("a"), "memory", toml_edit::value(1024))]).unwrap();
        assert!(
            new.contains("[package.metadata.fn]\nmemory = 128\n"),
            "{new}"
        );
        assert!(
            new.contains("[package.metadata.fn.functions.a]\nmemory = 1024 # a\n"),
            "{new}"
        );
        assert_eq!(changes[0].table, "package.metadata.fn.functions.a");
        let (new, _) = edit(text, &[(own("b"), "memory", toml_edit::value(512))]).unwrap();
        assert!(
            new.contains("[package.metadata.fn.functions.b]\ntimeout = 3\nmemory = 512\n"),
            "{new}"
        );
        let (new, _) = edit(text, &[(own("c"), "memory", toml_edit::value(512))]).unwrap();
        assert!(
            new.contains("[package.metadata.fn.functions.c]\nmemory = 512\n"),
            "{new}"
        );
        assert!(!new.contains("[package.metadata.fn.functions]\n"), "{new}");
    }
}
