//! A test of the emulator's import order: no file imports a sibling that
//! imports it back (`lib.rs`, the parent, aside), so each concern can be
//! read, and changed, from the files it depends on down.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The siblings each file names through `super::` (comments and test
/// modules left out: a doc link or a test's import is no dependency).
fn sibling_imports(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let files: BTreeMap<String, String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_stem()?.to_str()?.to_string();
            (path.extension()? == "rs" && name != "lib")
                .then(|| (name, std::fs::read_to_string(&path).unwrap()))
        })
        .collect();
    let mut imports = BTreeMap::new();
    for (name, text) in &files {
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        let mut named = BTreeSet::new();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("super::") {
                let rest = &line[i + "super::".len()..];
                let words: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                    group.split(['}', ',']).map(str::trim).collect()
                } else {
                    vec![rest]
                };
                for word in words {
                    let module: String = word
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if files.contains_key(&module) && &module != name {
                        named.insert(module);
                    }
                }
            }
        }
        imports.insert(name.clone(), named);
    }
    imports
}

#[test]
fn no_emulator_file_imports_a_sibling_that_imports_it_back() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let imports = sibling_imports(&dir);
    assert!(imports.len() > 10, "read {} files", imports.len());
    let circles: Vec<(&String, &String)> = imports
        .iter()
        .flat_map(|(a, named)| named.iter().map(move |b| (a, b)))
        .filter(|(a, b)| a < b && imports[*b].contains(*a))
        .collect();
    assert!(
        circles.is_empty(),
        "files importing each other: {circles:?}"
    );
}
