//! `cargo xtask arch`: the house's rules, checked from the source as text, so
//! that CI fails when an import runs the wrong way.
//!
//! - **Room order.** README.md's Architecture section holds the order of the
//!   top-level rooms (a fenced block right after `<!-- import-order -->`),
//!   highest first, one floor per line. A room may use rooms on lower floors
//!   only; rooms on one floor do not use each other. The README and the check
//!   read the same lines, so they cannot drift apart.
//! - **No circles inside a folder.** At every module level, the child modules
//!   (sibling files and folders) use each other one way only; a parent using
//!   its children and a child using its parent do not count.
//! - **SDK types live in `aws/`.** No file outside `src/aws/` names an AWS SDK
//!   crate (`aws_sdk_*`, `aws_config`, `aws_smithy_*`).
//! - **The code map names every file.** Each source file is named in
//!   README.md's Architecture section: its path, or its file name in a
//!   paragraph that names its folder (a folder's `mod.rs`: the folder).
//! - **Short functions.** A function over 150 lines says why in its doc
//!   comment (a line that starts with `Long:`).
//!
//! Test code (`#[cfg(test)]` modules and the files they declare) is left out:
//! tests may reach anywhere. Paths are read from `use` trees and from
//! qualified paths in code (`crate::x::y`, `super::z`); macros and glob
//! re-exports are not followed, so the check can miss an arrow but does not
//! invent one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Longest function without a reason in its doc comment.
const MAX_FN_LINES: usize = 150;

/// One crate of the workspace whose source the check reads.
struct CrateSrc {
    /// How other crates of the workspace name it (`cargo_fn_emulator`).
    extern_name: &'static str,
    /// Its room when another crate uses it.
    room: &'static str,
    /// Its `src/` folder, relative to the workspace root.
    src: &'static str,
}

const CRATES: &[CrateSrc] = &[
    CrateSrc {
        extern_name: "cargo_fn",
        room: "",
        src: "src",
    },
    CrateSrc {
        extern_name: "cargo_fn_emulator",
        room: "emulator",
        src: "crates/emulator/src",
    },
];

/// Prints the floors the imports allow today (each room one floor above
/// the highest it uses; rooms in a circle share a floor), a starting point
/// for README's block.
pub fn suggest() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let modules = read_crate(&root.join("src"))?;
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &modules {
        let Some(from) = m.path.first() else { continue };
        let entry = uses.entry(from.clone()).or_default();
        for used in &m.uses {
            if let Some(to) = room_of(used).filter(|t| t != from) {
                entry.insert(to);
            }
        }
    }
    let rooms: BTreeSet<String> = uses
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.clone()).chain(v.iter().cloned()))
        .filter(|r| uses.contains_key(r) || CRATES.iter().any(|c| c.room == r))
        .collect();
    let mut floor: BTreeMap<String, usize> = rooms.iter().map(|r| (r.clone(), 0)).collect();
    // Longest path from the ground, bounded so a circle cannot loop forever.
    for _ in 0..rooms.len() {
        for (from, tos) in &uses {
            let top = tos
                .iter()
                .filter_map(|t| floor.get(t))
                .max()
                .map_or(0, |f| f + 1);
            let f = floor.entry(from.clone()).or_default();
            *f = (*f).max(top).min(rooms.len());
        }
    }
    let mut floors: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    for (room, f) in &floor {
        floors.entry(*f).or_default().push(room);
    }
    for (_, rooms) in floors.iter().rev() {
        println!("{}", rooms.join(" "));
    }
    Ok(())
}

pub fn run() -> Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .context("finding the workspace root")?;
    let readme = std::fs::read_to_string(root.join("README.md")).context("reading README.md")?;
    let floors = room_order(&readme)?;
    let mut problems = Vec::new();
    for krate in CRATES {
        let src = root.join(krate.src);
        if !src.is_dir() {
            continue;
        }
        let modules = read_crate(&src)?;
        if krate.room.is_empty() {
            problems.extend(check_room_order(&modules, &floors, &root));
            problems.extend(check_sdk_types(&modules, &root));
        }
        problems.extend(check_sibling_circles(&modules));
        problems.extend(check_function_length(&modules, &root));
        problems.extend(check_code_map(&modules, &root, &readme));
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("arch: {p}");
        }
        bail!(
            "{} architecture rule(s) broken (the rules: xtask/src/arch.rs; the room order: README.md's Architecture section)",
            problems.len()
        );
    }
    eprintln!("xtask: architecture rules hold");
    Ok(())
}

/// The floors of README's import order, highest first: each a set of rooms.
fn room_order(readme: &str) -> Result<Vec<BTreeSet<String>>> {
    let Some(at) = readme.find("<!-- import-order -->") else {
        bail!("README.md has no `<!-- import-order -->` block in its Architecture section");
    };
    let rest = &readme[at..];
    let start = rest
        .find("```")
        .context("README.md: no fenced block after `<!-- import-order -->`")?;
    let body = &rest[start + 3..];
    let body = &body[body.find('\n').unwrap_or(0) + 1..];
    let end = body
        .find("```")
        .context("README.md: the import-order block is not closed")?;
    let floors: Vec<BTreeSet<String>> = body[..end]
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .map(|l| {
            l.split(|c: char| c.is_whitespace() || c == '|' || c == ',')
                .map(|w| w.trim_end_matches('/').trim_end_matches(".rs"))
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<BTreeSet<_>>()
        })
        .filter(|f| !f.is_empty())
        .collect();
    if floors.is_empty() {
        bail!("README.md: the import-order block lists no rooms");
    }
    Ok(floors)
}

/// One module file: its path in the crate (`["deploy", "triggers"]`), the
/// file, its text without test code, and the module paths it names.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    text: String,
    uses: BTreeSet<Vec<String>>,
}

/// Every non-test module of the crate under `src`, from `lib.rs` or
/// `main.rs` down its `mod` declarations.
fn read_crate(src: &Path) -> Result<Vec<Module>> {
    let mut out = Vec::new();
    for top in ["lib.rs", "main.rs"] {
        let file = src.join(top);
        if file.exists() {
            read_module(&file, Vec::new(), &mut out)?;
        }
    }
    // A binary next to a library names the library by its crate name: map
    // those paths onto the library's (`cargo_fn::x` is `crate::x`).
    for m in &mut out {
        m.uses = m
            .uses
            .iter()
            .map(|u| {
                if u.first().is_some_and(|s| s == "cargo_fn") {
                    u[1..].to_vec()
                } else {
                    u.clone()
                }
            })
            .collect();
    }
    Ok(out)
}

fn read_module(file: &Path, path: Vec<String>, out: &mut Vec<Module>) -> Result<()> {
    if out.iter().any(|m| m.file == file) {
        return Ok(());
    }
    let raw =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let text = strip_test_code(&strip_comments_and_strings(&raw));
    let uses = module_paths(&text, &path);
    let children = child_modules(&text);
    let dir = if file
        .file_name()
        .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs")
    {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    };
    out.push(Module {
        path: path.clone(),
        file: file.to_path_buf(),
        text: raw,
        uses,
    });
    for child in children {
        let flat = dir.join(format!("{child}.rs"));
        let nested = dir.join(&child).join("mod.rs");
        let child_file = if flat.exists() { flat } else { nested };
        if !child_file.exists() {
            continue;
        }
        let mut child_path = path.clone();
        child_path.push(child);
        read_module(&child_file, child_path, out)?;
    }
    Ok(())
}

/// Blanks comments, string and char literals (keeping line breaks), so
/// paths are read from code alone.
fn strip_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if b[i] == b'\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == b'r'
            && matches!(b.get(i + 1), Some(b'"') | Some(b'#'))
            && !prev_is_ident(b, i)
        {
            // Raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c as char);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                if b[j] == b'\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 2 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            // Copy one UTF-8 character.
            let len = utf8_len(c);
            out.push_str(&src[i..i + len]);
            i += len;
        }
    }
    out
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

fn utf8_len(first: u8) -> usize {
    match first {
        0..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Cuts every `#[cfg(test)]` item out: an inline `mod tests { ... }`, a
/// `mod tests;` declaration, a test-only `use` or function.
fn strip_test_code(text: &str) -> String {
    let mut out = text.to_string();
    while let Some(at) = out.find("#[cfg(test)]") {
        let after = at + "#[cfg(test)]".len();
        let rest = &out[after..];
        // The item ends at its first `;` unless a `{` comes first, then at
        // the matching `}`.
        let semi = rest.find(';');
        let brace = rest.find('{');
        let end = match (semi, brace) {
            (Some(s), Some(b)) if b < s => matching_brace(rest, b).map(|e| e + 1),
            (None, Some(b)) => matching_brace(rest, b).map(|e| e + 1),
            (Some(s), _) => Some(s + 1),
            (None, None) => Some(rest.len()),
        }
        .unwrap_or(rest.len());
        let keep_lines = rest[..end].matches('\n').count();
        out.replace_range(at..after + end, &"\n".repeat(keep_lines));
    }
    out
}

fn matching_brace(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// The names of the modules a file declares (`mod x;`, `pub mod x;`,
/// `pub(crate) mod x;`), test code already cut out.
fn child_modules(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        let l = l
            .strip_prefix("pub(crate) ")
            .or_else(|| l.strip_prefix("pub(super) "))
            .or_else(|| l.strip_prefix("pub "))
            .unwrap_or(l);
        if let Some(name) = l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
            out.push(name.trim().to_string());
        }
    }
    out
}

/// Every module path the text names, made absolute from the crate root:
/// `use` trees and qualified paths starting with `crate`, `super`, `self`
/// or another crate of the workspace.
fn module_paths(text: &str, here: &[String]) -> BTreeSet<Vec<String>> {
    let mut out = BTreeSet::new();
    let tokens = tokenize(text);
    let mut i = 0;
    while i < tokens.len() {
        if tokens[i] == "use" {
            let end = tokens[i..]
                .iter()
                .position(|t| t == ";")
                .map_or(tokens.len(), |p| i + p);
            let mut paths = Vec::new();
            expand_use_tree(&tokens[i + 1..end], Vec::new(), &mut paths);
            for p in paths {
                if let Some(abs) = absolute(&p, here) {
                    out.insert(abs);
                }
            }
            i = end + 1;
            continue;
        }
        let starts_path = matches!(tokens[i].as_str(), "crate" | "super" | "self")
            || CRATES.iter().any(|c| c.extern_name == tokens[i]);
        let after_sep = i > 0 && tokens[i - 1] == "::";
        if starts_path && !after_sep && tokens.get(i + 1).is_some_and(|t| t == "::") {
            let mut p = vec![tokens[i].clone()];
            let mut j = i + 1;
            while tokens.get(j).is_some_and(|t| t == "::")
                && tokens.get(j + 1).is_some_and(|t| is_ident(t))
            {
                p.push(tokens[j + 1].clone());
                j += 2;
            }
            if let Some(abs) = absolute(&p, here) {
                out.insert(abs);
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::`, and single punctuation characters.
fn tokenize(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            out.push(c.to_string());
            i += 1;
        }
    }
    out
}

/// Expands `a::{b, c::{d as e}, *}` into paths (`a::b`, `a::c::d`, `a`).
fn expand_use_tree(tokens: &[String], prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if t == "{" {
            let mut depth = 0;
            let mut start = i + 1;
            for j in i..tokens.len() {
                match tokens[j].as_str() {
                    "{" => depth += 1,
                    "}" => {
                        depth -= 1;
                        if depth == 0 {
                            expand_use_tree(&tokens[start..j], path.clone(), out);
                            return;
                        }
                    }
                    "," if depth == 1 => {
                        expand_use_tree(&tokens[start..j], path.clone(), out);
                        start = j + 1;
                    }
                    _ => {}
                }
            }
            return;
        } else if t == "as" {
            break;
        } else if t == "*" || t == "::" || t == "pub" || t == "(" || t == ")" {
            // `pub(crate) use`, separators and globs add no segment.
        } else if is_ident(t) {
            if t == "self" && !path.is_empty() {
                // `a::{self}` names `a` itself.
            } else {
                path.push(t.clone());
            }
        }
        i += 1;
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// Makes a path absolute from the crate root; `None` for paths into
/// crates outside the workspace. Another workspace crate is kept as its
/// own first segment (`cargo_fn_emulator`).
fn absolute(path: &[String], here: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    let mut abs: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => {
            let mut base = here.to_vec();
            let mut rest = path;
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend(rest.iter().cloned());
            return Some(base);
        }
        other if CRATES.iter().any(|c| c.extern_name == other) => {
            return Some(path.to_vec());
        }
        _ => return None,
    };
    abs.extend(path[1..].iter().cloned());
    Some(abs)
}

/// The top-level room a module path lies in: `deploy` for
/// `deploy::triggers::x`; a workspace crate by its room name.
fn room_of(path: &[String]) -> Option<String> {
    let first = path.first()?;
    if let Some(c) = CRATES
        .iter()
        .find(|c| c.extern_name == first && !c.room.is_empty())
    {
        return Some(c.room.to_string());
    }
    Some(first.clone())
}

fn check_room_order(modules: &[Module], floors: &[BTreeSet<String>], root: &Path) -> Vec<String> {
    let floor_of = |room: &str| floors.iter().position(|f| f.contains(room));
    let top_rooms: BTreeSet<String> = modules
        .iter()
        .filter_map(|m| m.path.first().cloned())
        .collect();
    let mut problems = Vec::new();
    for room in &top_rooms {
        if floor_of(room).is_none() {
            problems.push(format!(
                "room `{room}` has no place in README.md's import order: add it to the `<!-- import-order -->` block"
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for m in modules {
        let Some(from) = m.path.first() else { continue };
        let Some(from_floor) = floor_of(from) else {
            continue;
        };
        for used in &m.uses {
            let Some(to) = room_of(used) else { continue };
            if &to == from {
                continue;
            }
            let Some(to_floor) = floor_of(&to) else {
                continue;
            };
            if to_floor <= from_floor && seen.insert((m.file.clone(), to.clone())) {
                let file = m.file.strip_prefix(root).unwrap_or(&m.file);
                let why = if to_floor == from_floor {
                    "the same floor"
                } else {
                    "a higher floor"
                };
                problems.push(format!(
                    "{} uses `{}`: room `{from}` may not use `{to}`, which stands on {why} in README.md's import order",
                    file.display(),
                    used.join("::"),
                ));
            }
        }
    }
    problems
}

fn check_sdk_types(modules: &[Module], root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for m in modules {
        if m.path.first().is_some_and(|r| r == "aws") {
            continue;
        }
        let code = strip_test_code(&strip_comments_and_strings(&m.text));
        let named: BTreeSet<&str> = tokenize(&code)
            .iter()
            .filter_map(|t| {
                ["aws_sdk_", "aws_smithy_", "aws_config", "aws_types"]
                    .iter()
                    .find(|p| t.starts_with(*p))
                    .copied()
            })
            .collect();
        for prefix in named {
            problems.push(format!(
                "{} names the AWS SDK (`{prefix}…`): SDK types live in src/aws/ only",
                m.file.strip_prefix(root).unwrap_or(&m.file).display()
            ));
        }
    }
    problems
}

/// Every file is named in README's Architecture section.
fn check_code_map(modules: &[Module], root: &Path, readme: &str) -> Vec<String> {
    let section = readme
        .find("## Architecture")
        .map(|at| {
            let rest = &readme[at + 3..];
            &readme[at..at + 3 + rest.find("\n## ").unwrap_or(rest.len())]
        })
        .unwrap_or("");
    let paragraphs: Vec<&str> = section.split("\n\n").collect();
    let mut problems = Vec::new();
    for m in modules {
        let rel = m.file.strip_prefix(root).unwrap_or(&m.file);
        let rel_text = rel.display().to_string();
        let name = rel
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let folder = rel
            .parent()
            .map(|p| format!("{}/", p.display()))
            .unwrap_or_default();
        let folder_short = rel
            .parent()
            .and_then(|p| p.file_name())
            .map(|f| format!("{}/", f.to_string_lossy()))
            .unwrap_or_default();
        let named = section.contains(&rel_text)
            || if name == "mod.rs" {
                section.contains(&folder) || section.contains(&format!("`{folder_short}"))
            } else {
                paragraphs.iter().any(|p| {
                    p.contains(&name) && (p.contains(&folder) || p.contains(&folder_short))
                })
            };
        if !named {
            problems.push(format!(
                "{rel_text} is not named in README.md's Architecture section: add it to the code map"
            ));
        }
    }
    problems
}

/// At each module level the children must use each other one way only.
fn check_sibling_circles(modules: &[Module]) -> Vec<String> {
    // parent path -> (child -> children it uses)
    let mut levels: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let known: BTreeSet<&Vec<String>> = modules.iter().map(|m| &m.path).collect();
    for m in modules {
        for used in &m.uses {
            // The deepest common parent of the two, and the child of it on
            // each side.
            let common = m
                .path
                .iter()
                .zip(used.iter())
                .take_while(|(a, b)| a == b)
                .count();
            if common >= m.path.len() || common >= used.len() {
                continue; // a module using its own ancestor or descendant
            }
            let parent = m.path[..common].to_vec();
            let from = m.path[common].clone();
            let to = used[common].clone();
            let mut to_path = parent.clone();
            to_path.push(to.clone());
            if !known.contains(&to_path) {
                continue; // an item of the parent, not a sibling module
            }
            levels
                .entry(parent)
                .or_default()
                .entry(from)
                .or_default()
                .insert(to);
        }
    }
    let mut problems = Vec::new();
    for (parent, edges) in &levels {
        for circle in circles(edges) {
            let place = if parent.is_empty() {
                "the crate root".to_string()
            } else {
                parent.join("::")
            };
            problems.push(format!(
                "in {place}, these modules use each other in a circle: {}",
                circle.join(" -> ")
            ));
        }
    }
    problems
}

/// The strongly connected components of more than one node (Tarjan).
fn circles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(ws) = s.edges.get(v) {
            for w in ws {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

/// Functions over [`MAX_FN_LINES`] whose doc comment gives no `Long:` reason.
fn check_function_length(modules: &[Module], root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for m in modules {
        let code = strip_test_code(&strip_comments_and_strings(&m.text));
        let code_lines: Vec<&str> = code.lines().collect();
        let raw_lines: Vec<&str> = m.text.lines().collect();
        for (n, line) in code_lines.iter().enumerate() {
            let Some(name) = fn_name(line) else { continue };
            let Some(len) = body_length(&code_lines, n) else {
                continue;
            };
            if len <= MAX_FN_LINES {
                continue;
            }
            let reason = raw_lines[..n]
                .iter()
                .rev()
                .take_while(|l| {
                    let t = l.trim_start();
                    t.starts_with("///") || t.starts_with("#[")
                })
                .any(|l| {
                    l.trim_start()
                        .trim_start_matches('/')
                        .trim_start()
                        .starts_with("Long:")
                });
            if !reason {
                let file = m.file.strip_prefix(root).unwrap_or(&m.file);
                problems.push(format!(
                    "{}:{}: fn {name} is {len} lines (over {MAX_FN_LINES}): split it, or say why in its doc comment with a line `Long: ...`",
                    file.display(),
                    n + 1
                ));
            }
        }
    }
    problems
}

/// The name of the function a line starts, if it does.
fn fn_name(line: &str) -> Option<String> {
    let tokens = tokenize(line);
    let at = tokens.iter().position(|t| t == "fn")?;
    let before_ok = tokens[..at].iter().all(|t| {
        matches!(
            t.as_str(),
            "pub"
                | "crate"
                | "super"
                | "("
                | ")"
                | "async"
                | "const"
                | "unsafe"
                | "extern"
                | "\""
                | "in"
        )
    });
    let name = tokens.get(at + 1)?;
    (before_ok && is_ident(name)).then(|| name.clone())
}

/// Lines from the `fn` line to its closing brace, when it has a body.
fn body_length(lines: &[&str], start: usize) -> Option<usize> {
    let mut depth = 0i64;
    let mut opened = false;
    for (k, line) in lines[start..].iter().enumerate() {
        for c in line.chars() {
            match c {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                ';' if !opened && depth == 0 => return None,
                _ => {}
            }
            if opened && depth == 0 {
                return Some(k + 1);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn use_trees_expand_and_resolve() {
        let here = s(&["deploy", "plan"]);
        let text = "use crate::{aws::{LambdaApi, fake as f}, config};\nuse super::change::Step;\nfn x() { crate::ui::status(); }";
        let uses = module_paths(text, &here);
        assert!(uses.contains(&s(&["aws", "LambdaApi"])));
        assert!(uses.contains(&s(&["aws", "fake"])));
        assert!(uses.contains(&s(&["config"])));
        assert!(uses.contains(&s(&["deploy", "change", "Step"])));
        assert!(uses.contains(&s(&["ui", "status"])));
    }

    #[test]
    fn comments_strings_and_test_code_name_nothing() {
        let text = strip_test_code(&strip_comments_and_strings(
            "// crate::a::b\nlet x = \"crate::c::d\";\n#[cfg(test)]\nmod tests { use crate::e; }\nfn f() {}",
        ));
        assert!(module_paths(&text, &[]).is_empty(), "{text}");
    }

    #[test]
    fn a_circle_between_siblings_is_found_and_a_parent_child_pair_is_not() {
        let module = |path: &[&str], uses: &[&[&str]]| Module {
            path: s(path),
            file: PathBuf::from(path.join("/")),
            text: String::new(),
            uses: uses.iter().map(|u| s(u)).collect(),
        };
        let modules = vec![
            module(&["deploy"], &[&["deploy", "change", "Step"]]),
            module(
                &["deploy", "change"],
                &[&["deploy", "alias", "Move"], &["deploy", "Ctx"]],
            ),
            module(&["deploy", "alias"], &[&["deploy", "change", "Step"]]),
        ];
        let problems = check_sibling_circles(&modules);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("alias -> change"), "{problems:?}");
    }

    #[test]
    fn the_room_order_is_read_from_the_readme_block() {
        let readme =
            "x\n<!-- import-order -->\n```text\ncli\npipeline   # comment\ndeploy | package\n```\n";
        let floors = room_order(readme).unwrap();
        assert_eq!(floors.len(), 3);
        assert!(floors[2].contains("package"));
    }

    #[test]
    fn long_functions_need_a_reason() {
        let body = "    x();\n".repeat(MAX_FN_LINES + 1);
        let m = |doc: &str| Module {
            path: vec![],
            file: PathBuf::from("f.rs"),
            text: format!("{doc}fn long() {{\n{body}}}\n"),
            uses: BTreeSet::new(),
        };
        assert_eq!(check_function_length(&[m("")], Path::new("")).len(), 1);
        assert!(check_function_length(&[m("/// Long: one table.\n")], Path::new("")).is_empty());
    }
}
