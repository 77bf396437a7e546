//! `--apply`: writes the chosen memory (and architecture) into the
//! function's `[package.metadata.fn]`, keeping the file's comments and
//! layout (toml_edit), and says what changed as a line diff.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::Arch;

/// The new text of `manifest` with `memory` (and `architecture`) set in
/// `[package.metadata.fn]`; only those lines change.
pub fn edit(manifest: &str, memory: u32, arch: Option<Arch>) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = manifest.parse().context("parsing Cargo.toml")?;
    let package = doc
        .get_mut("package")
        .and_then(|p| p.as_table_mut())
        .context("Cargo.toml has no [package] table")?;
    let metadata = package
        .entry("metadata")
        .or_insert_with(implicit_table)
        .as_table_like_mut()
        .context("`package.metadata` is not a table")?;
    let table = metadata
        .entry("fn")
        .or_insert(toml_edit::Item::Table(toml_edit::Table::new()))
        .as_table_like_mut()
        .context("`package.metadata.fn` is not a table")?;
    set(table, "memory", toml_edit::value(i64::from(memory)));
    if let Some(arch) = arch {
        set(table, "architecture", toml_edit::value(arch.as_str()));
    }
    Ok(doc.to_string())
}

fn implicit_table() -> toml_edit::Item {
    let mut t = toml_edit::Table::new();
    t.set_implicit(true);
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

/// Edits the manifest in place (temp file, then rename) and returns the
/// diff, or `None` when nothing changes.
pub fn apply(manifest: &Path, memory: u32, arch: Option<Arch>) -> Result<Option<String>> {
    let old = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let new =
        edit(&old, memory, arch).with_context(|| format!("editing {}", manifest.display()))?;
    if new == old {
        return Ok(None);
    }
    let tmp = manifest.with_extension("toml.cargo-fn-tune");
    std::fs::write(&tmp, &new).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, manifest).with_context(|| format!("writing {}", manifest.display()))?;
    Ok(Some(diff(manifest, &old, &new)))
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

    #[test]
    fn only_the_memory_line_changes_and_its_comment_stays() {
        let new = edit(MANIFEST, 1024, None).unwrap();
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
    }

    #[test]
    fn a_missing_table_or_key_is_added() {
        let bare = "[package]\nname = \"x\"\nversion = \"0.1.0\"\n";
        let new = edit(bare, 512, Some(Arch::Arm64)).unwrap();
        assert!(new.starts_with(bare), "{new}");
        assert!(
            new.contains("[package.metadata.fn]\nmemory = 512\narchitecture = \"arm64\"\n"),
            "{new}"
        );
    }
}
