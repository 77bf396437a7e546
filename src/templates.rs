//! Templates for `cargo fn new` / `cargo fn init`: the built-in ones embedded
//! from `templates/` (so they work offline), or a user's own directory with
//! the same manifest; rendering them into files in memory; and writing those
//! files so that a refusal or a failure leaves nothing half-written.
//!
//! A template is a directory with a `template.toml` manifest ([`Manifest`])
//! beside its files. Files ending in `.jinja` are rendered with minijinja
//! (the suffix is dropped); every other file is copied as it is. Templates
//! may `{% include %}` their own files and the built-in `_shared/` partials.
//! Everything is validated and rendered before the first byte is written.
//!
//! This module knows nothing about the command line, prompts or terminals.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use include_dir::{Dir, include_dir};
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Deserialize;

use crate::error::{UsageError, hinted};

/// The built-in templates, embedded at compile time. (include_dir tracks
/// the files it embeds; after adding a new file, touch this module.)
static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The manifest file every template directory carries.
pub const MANIFEST: &str = "template.toml";

/// The suffix of files that are rendered (and dropped from the output name).
const RENDER_SUFFIX: &str = ".jinja";

/// Context names a manifest cannot define as variables.
const RESERVED_VARIABLES: &[&str] = &[
    "name",
    "crate_name",
    "function_name",
    "env_prefix",
    "template",
    "versions",
];

/// `template.toml`: what a template is and which variables it takes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Manifest {
    /// One line shown in the template list and the prompt.
    pub description: String,
    /// A sample payload in the generated crate (rendered; may use variables),
    /// shown in the next steps for `cargo fn invoke --data-file`.
    #[serde(default)]
    pub example_event: Option<String>,
    /// Variables the templates see besides the built-in context.
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    /// Files (paths in the template directory) included only when a
    /// minijinja expression over the variables is true.
    #[serde(default)]
    pub when: BTreeMap<String, String>,
}

/// A template variable: a default, and optionally the allowed values.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Variable {
    /// The question asked when prompting.
    #[serde(default)]
    pub prompt: Option<String>,
    /// The allowed values; empty means any value.
    #[serde(default)]
    pub choices: Vec<String>,
    pub default: String,
}

impl Manifest {
    /// Parses and checks a manifest; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> anyhow::Result<Manifest> {
        let manifest: Manifest =
            toml::from_str(text).with_context(|| format!("invalid template manifest {origin}"))?;
        for (name, var) in &manifest.variables {
            if RESERVED_VARIABLES.contains(&name.as_str()) {
                bail!(
                    "invalid template manifest {origin}: variable `{name}` is reserved \
                     (reserved: {})",
                    RESERVED_VARIABLES.join(", ")
                );
            }
            if !var.choices.is_empty() && !var.choices.contains(&var.default) {
                bail!(
                    "invalid template manifest {origin}: the default `{}` of variable `{name}` \
                     is not one of its choices ({})",
                    var.default,
                    var.choices.join(", ")
                );
            }
        }
        Ok(manifest)
    }
}

/// Where a template came from.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    Builtin,
    Directory(PathBuf),
}

/// A loaded template: its manifest and its files (paths relative to the
/// template directory, with `/` separators).
#[derive(Debug, Clone)]
pub struct Template {
    pub name: String,
    pub origin: Origin,
    pub manifest: Manifest,
    files: BTreeMap<String, Vec<u8>>,
}

/// One output file: a relative path in the new crate and its contents.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// A rendered crate, ready to write.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub name: String,
    pub template: String,
    pub files: Vec<RenderedFile>,
    /// The example payload's path in the new crate, if the template has one.
    pub example_event: Option<String>,
    /// `[package.metadata.fn] extension = true` in the rendered Cargo.toml.
    pub extension: bool,
}

/// The names of the built-in templates, sorted.
pub fn builtin_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = BUILTIN
        .dirs()
        .filter(|d| d.get_file(d.path().join(MANIFEST)).is_some())
        .filter_map(|d| d.path().file_name()?.to_str())
        .filter(|n| !n.starts_with('_'))
        .collect();
    names.sort_unstable();
    names
}

/// The built-in templates with their descriptions, the default first and
/// then the common event sources.
pub fn builtins() -> anyhow::Result<Vec<Template>> {
    let mut list = builtin_names()
        .into_iter()
        .map(builtin)
        .collect::<anyhow::Result<Vec<_>>>()?;
    const ORDER: &[&str] = &[
        "basic",
        "http",
        "sqs",
        "s3",
        "scheduled",
        "stream",
        "managed",
        "durable",
        "extension",
    ];
    list.sort_by_key(|t| {
        let rank = ORDER
            .iter()
            .position(|n| *n == t.name)
            .unwrap_or(ORDER.len());
        (rank, t.name.clone())
    });
    Ok(list)
}

/// Loads a built-in template by name.
pub fn builtin(name: &str) -> anyhow::Result<Template> {
    let dir = BUILTIN
        .get_dir(name)
        .filter(|_| !name.starts_with('_') && !name.contains(['/', '\\']))
        .ok_or_else(|| unknown_template(name))?;
    let manifest_file = dir
        .get_file(dir.path().join(MANIFEST))
        .ok_or_else(|| unknown_template(name))?;
    let text = manifest_file
        .contents_utf8()
        .context("built-in template manifest is not UTF-8")?;
    let manifest = Manifest::parse(text, &format!("of built-in template `{name}`"))?;
    let mut files = BTreeMap::new();
    collect_embedded(dir, dir.path(), &mut files);
    files.remove(MANIFEST);
    Ok(Template {
        name: name.to_string(),
        origin: Origin::Builtin,
        manifest,
        files,
    })
}

fn collect_embedded(dir: &Dir<'static>, root: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for file in dir.files() {
        let rel = file
            .path()
            .strip_prefix(root)
            .expect("embedded file under its dir");
        out.insert(slash_path(rel), file.contents().to_vec());
    }
    for sub in dir.dirs() {
        collect_embedded(sub, root, out);
    }
}

fn unknown_template(name: &str) -> anyhow::Error {
    UsageError(format!(
        "unknown template `{name}`; the built-in templates are: {} \
         (or pass the path of a directory that holds a {MANIFEST})",
        builtin_names().join(", ")
    ))
    .into()
}

/// Loads a user's template directory (with a `template.toml`).
pub fn load_dir(dir: &Path) -> anyhow::Result<Template> {
    if !dir.is_dir() {
        bail!("template directory `{}` does not exist", dir.display());
    }
    let manifest_path = dir.join(MANIFEST);
    if !manifest_path.is_file() {
        return Err(hinted(
            format!(
                "`{}` is not a template: it has no {MANIFEST}",
                dir.display()
            ),
            format!(
                "add a {MANIFEST} with at least `description = \"...\"`; \
                 the built-in templates are: {}",
                builtin_names().join(", ")
            ),
        ));
    }
    let text = fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let manifest = Manifest::parse(&text, &format!("`{}`", manifest_path.display()))?;
    let mut files = BTreeMap::new();
    collect_dir(dir, dir, &mut files)?;
    files.remove(MANIFEST);
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string());
    Ok(Template {
        name,
        origin: Origin::Directory(dir.to_path_buf()),
        manifest,
        files,
    })
}

/// Reads a template directory, skipping what is never part of a template.
fn collect_dir(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        let kind = entry.file_type()?;
        let file_name = entry.file_name();
        if kind.is_dir() {
            if file_name == ".git" || (dir == root && file_name == "target") {
                continue;
            }
            collect_dir(root, &path, out)?;
        } else if path.is_file() {
            let rel = path.strip_prefix(root).expect("walked under root");
            let contents =
                fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            out.insert(slash_path(rel), contents);
        }
    }
    Ok(())
}

fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `--template NAME|PATH`: a path when it looks like one or names an existing
/// directory, otherwise a built-in name.
pub fn resolve(spec: &str) -> anyhow::Result<Template> {
    let looks_like_path =
        spec.contains(['/', '\\']) || spec.starts_with('.') || spec.starts_with('~');
    if looks_like_path || (Path::new(spec).is_dir() && !builtin_names().contains(&spec)) {
        load_dir(Path::new(spec))
    } else {
        builtin(spec)
    }
}

/// Checks that `name` works both as a crate name and as a Lambda function
/// name: 1-64 of `[A-Za-z0-9_-]`, starting with a letter, not a keyword or a
/// name cargo reserves.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let refuse = |why: &str| -> anyhow::Result<()> {
        Err(UsageError(format!(
            "invalid function name `{name}`: {why}; a name must work both as a crate name and as \
             a Lambda function name: 1-64 characters of A-Z, a-z, 0-9, `-` and `_`, starting with \
             a letter"
        ))
        .into())
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > 64 {
        return refuse(&format!("it is {} characters long", name.len()));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return refuse(&format!("`{c}` is not allowed"));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return refuse("it does not start with a letter");
    }
    let crate_name = name.replace('-', "_");
    if RUST_KEYWORDS.contains(&crate_name.as_str()) {
        return refuse("it is a Rust keyword");
    }
    if CARGO_RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        return refuse(
            "cargo reserves it (it clashes with the standard library or the target directory)",
        );
    }
    Ok(())
}

const RUST_KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "static", "struct", "super", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

const CARGO_RESERVED: &[&str] = &[
    "alloc",
    "core",
    "std",
    "test",
    "proc_macro",
    "proc-macro",
    "build",
    "deps",
    "examples",
    "incremental",
    "con",
    "prn",
    "aux",
    "nul",
    "com1",
    "com2",
    "com3",
    "com4",
    "com5",
    "com6",
    "com7",
    "com8",
    "com9",
    "lpt1",
    "lpt2",
    "lpt3",
    "lpt4",
    "lpt5",
    "lpt6",
    "lpt7",
    "lpt8",
    "lpt9",
];

/// The dependency versions shared by all built-in templates
/// (`templates/versions.toml`), available to templates as `versions`.
pub fn versions() -> anyhow::Result<BTreeMap<String, String>> {
    let text = BUILTIN
        .get_file("versions.toml")
        .and_then(|f| f.contents_utf8())
        .context("templates/versions.toml is missing from the build")?;
    toml::from_str(text).context("invalid templates/versions.toml")
}

impl Template {
    /// A short label: the name, or the directory for a user template.
    pub fn label(&self) -> String {
        match &self.origin {
            Origin::Builtin => self.name.clone(),
            Origin::Directory(dir) => dir.display().to_string(),
        }
    }

    /// The relative paths of the template's files (manifest excluded).
    pub fn file_paths(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Fills in the variables: given values (checked against the manifest)
    /// over the defaults.
    pub fn variables(
        &self,
        given: &BTreeMap<String, String>,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let mut values = BTreeMap::new();
        for key in given.keys() {
            if !self.manifest.variables.contains_key(key) {
                let known: Vec<&str> = self.manifest.variables.keys().map(String::as_str).collect();
                return Err(UsageError(format!(
                    "template {} has no variable `{key}` (its variables: {})",
                    self.label(),
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
                .into());
            }
        }
        for (key, var) in &self.manifest.variables {
            let value = given.get(key).unwrap_or(&var.default);
            if !var.choices.is_empty() && !var.choices.contains(value) {
                return Err(UsageError(format!(
                    "`{value}` is not allowed for `{key}` of template {}; choose one of: {}",
                    self.label(),
                    var.choices.join(", ")
                ))
                .into());
            }
            values.insert(key.clone(), value.clone());
        }
        Ok(values)
    }

    /// Renders the template for a crate called `name`. Validates the name,
    /// the variables and the result (a parseable Cargo.toml); writes nothing.
    pub fn render(&self, name: &str, given: &BTreeMap<String, String>) -> anyhow::Result<Rendered> {
        validate_name(name)?;
        let variables = self.variables(given)?;
        let context = self.context(name, &variables)?;
        let env = self.environment();
        let label = self.label();

        for path in self.manifest.when.keys() {
            if !self.files.contains_key(path) {
                bail!(
                    "template {label}: `[when]` names `{path}`, which is not a file of the template"
                );
            }
        }

        let mut files = Vec::new();
        for (path, contents) in &self.files {
            if let Some(expr) = self.manifest.when.get(path) {
                let keep = env
                    .compile_expression(expr)
                    .and_then(|e| e.eval(context.clone()))
                    .with_context(|| {
                        format!("template {label}: bad `[when]` expression for `{path}`")
                    })?;
                if !keep.is_true() {
                    continue;
                }
            }
            let (out_path, contents) = match path.strip_suffix(RENDER_SUFFIX) {
                Some(out) => {
                    let text = env
                        .get_template(path)
                        .and_then(|t| t.render(context.clone()))
                        .map_err(|e| {
                            anyhow::anyhow!("template {label}: cannot render `{path}`: {e:#}")
                        })?;
                    (out.to_string(), text.into_bytes())
                }
                None => (path.clone(), contents.clone()),
            };
            let out_path = safe_relative(&out_path)
                .with_context(|| format!("template {label}: unsafe file path `{path}`"))?;
            if files.iter().any(|f: &RenderedFile| f.path == out_path) {
                bail!(
                    "template {label} has both `{}` and `{}{RENDER_SUFFIX}`",
                    out_path.display(),
                    out_path.display()
                );
            }
            files.push(RenderedFile {
                path: out_path,
                contents,
            });
        }

        let cargo_toml = files
            .iter()
            .find(|f| f.path == Path::new("Cargo.toml"))
            .ok_or_else(|| {
                anyhow::anyhow!("template {label} has no Cargo.toml (or Cargo.toml.jinja)")
            })?;
        let manifest: toml::Table = std::str::from_utf8(&cargo_toml.contents)
            .context("Cargo.toml is not UTF-8")
            .and_then(|t| toml::from_str(t).context("not valid TOML"))
            .with_context(|| format!("template {label} renders an invalid Cargo.toml"))?;
        let extension = manifest
            .get("package")
            .and_then(|p| p.get("metadata"))
            .and_then(|m| m.get("fn"))
            .and_then(|f| f.get("extension"))
            .and_then(|e| e.as_bool())
            .unwrap_or(false);

        let example_event = match &self.manifest.example_event {
            Some(expr) => {
                let path = env
                    .render_str(expr, context.clone())
                    .with_context(|| format!("template {label}: bad `example-event`"))?;
                if !files.iter().any(|f| f.path == Path::new(&path)) {
                    bail!(
                        "template {label}: `example-event` names `{path}`, which it does not generate"
                    );
                }
                Some(path)
            }
            None => None,
        };

        Ok(Rendered {
            name: name.to_string(),
            template: label,
            files,
            example_event,
            extension,
        })
    }

    fn context(&self, name: &str, variables: &BTreeMap<String, String>) -> anyhow::Result<Value> {
        let crate_name = name.replace('-', "_");
        let mut ctx: BTreeMap<String, Value> = BTreeMap::new();
        ctx.insert("name".into(), Value::from(name));
        ctx.insert("crate_name".into(), Value::from(crate_name.clone()));
        ctx.insert("function_name".into(), Value::from(name));
        ctx.insert(
            "env_prefix".into(),
            Value::from(crate_name.to_ascii_uppercase()),
        );
        ctx.insert("template".into(), Value::from(self.name.clone()));
        ctx.insert("versions".into(), Value::from(versions()?));
        for (key, value) in variables {
            ctx.insert(key.clone(), Value::from(value.clone()));
        }
        Ok(Value::from(ctx))
    }

    /// A minijinja environment that loads the template's own files and the
    /// built-in `_shared/` partials. Strict: an unknown variable is an error.
    fn environment(&self) -> Environment<'static> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .keep_trailing_newline(true)
                .build()
                .expect("static syntax config"),
        );
        let files = Arc::new(self.files.clone());
        env.set_loader(move |name| {
            if let Some(bytes) = files.get(name) {
                return Ok(Some(String::from_utf8_lossy(bytes).into_owned()));
            }
            if name.starts_with("_shared/")
                && let Some(text) = BUILTIN.get_file(name).and_then(|f| f.contents_utf8())
            {
                return Ok(Some(text.to_string()));
            }
            Ok(None)
        });
        env
    }
}

/// A relative path with no `..`, root or prefix: output cannot escape the crate.
fn safe_relative(path: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(path);
    if path.as_os_str().is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_)))
    {
        bail!("not a plain relative path");
    }
    Ok(path)
}

/// Creates `dir` (which must not exist or be an empty directory) holding the
/// rendered files. The files are written into a staging directory beside it
/// and moved into place at once, so a failure leaves nothing behind.
pub fn create_new(dir: &Path, rendered: &Rendered) -> anyhow::Result<()> {
    check_new_destination(dir)?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = parent.join(format!(".cargo-fn-new-{}", uuid::Uuid::new_v4().simple()));
    fs::create_dir(&staging).with_context(|| format!("cannot create {}", staging.display()))?;
    let result = write_all(&staging, &rendered.files).and_then(|()| {
        if dir.exists() {
            // Checked empty above; rename needs it gone on every platform.
            fs::remove_dir(dir).with_context(|| format!("cannot replace {}", dir.display()))?;
        }
        fs::rename(&staging, dir)
            .with_context(|| format!("cannot move the new crate into {}", dir.display()))
    });
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

/// Refuses a destination that exists and is not an empty directory.
pub fn check_new_destination(dir: &Path) -> anyhow::Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    if !dir.is_dir() {
        return Err(hinted(
            format!(
                "destination `{}` already exists and is not a directory",
                dir.display()
            ),
            "choose another name or path",
        ));
    }
    let mut entries =
        fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if entries.next().is_some() {
        return Err(hinted(
            format!(
                "destination `{}` already exists and is not empty",
                dir.display()
            ),
            format!(
                "choose another name, or run `cargo fn init` inside `{}` to add a function there",
                dir.display()
            ),
        ));
    }
    Ok(())
}

fn write_all(root: &Path, files: &[RenderedFile]) -> anyhow::Result<()> {
    for file in files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        fs::write(&path, &file.contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// What `init` did with each file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct InitReport {
    pub written: Vec<PathBuf>,
    /// Files that already existed and were left untouched.
    pub kept: Vec<PathBuf>,
}

/// Refuses to `init` a directory that already has a Cargo.toml.
pub fn check_init_destination(dir: &Path) -> anyhow::Result<()> {
    let manifest = dir.join("Cargo.toml");
    if manifest.exists() {
        return Err(hinted(
            format!(
                "`{}` already exists; cargo fn init will not overwrite it",
                manifest.display()
            ),
            "to make an existing crate a function, add a `[package.metadata.fn]` table to its \
             Cargo.toml; or run `cargo fn new NAME` to create a new crate",
        ));
    }
    Ok(())
}

/// Adds the rendered files to an existing (possibly non-empty) directory.
/// Files that already exist are kept; Cargo.toml is written last and never
/// over an existing one. Each file appears whole (temp file + rename); on
/// failure the files written so far are removed again.
pub fn write_into(dir: &Path, rendered: &Rendered) -> anyhow::Result<InitReport> {
    check_init_destination(dir)?;
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut report = InitReport::default();
    let mut created_dirs = Vec::new();
    let (manifests, others): (Vec<&RenderedFile>, Vec<&RenderedFile>) = rendered
        .files
        .iter()
        .partition(|f| f.path == Path::new("Cargo.toml"));
    let result = others
        .into_iter()
        .chain(manifests)
        .try_for_each(|file| write_one_new(dir, file, &mut report, &mut created_dirs));
    if let Err(err) = result {
        for path in report.written.iter().rev() {
            let _ = fs::remove_file(dir.join(path));
        }
        for created in created_dirs.iter().rev() {
            let _ = fs::remove_dir(created);
        }
        return Err(err);
    }
    Ok(report)
}

fn write_one_new(
    dir: &Path,
    file: &RenderedFile,
    report: &mut InitReport,
    created_dirs: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    let path = dir.join(&file.path);
    if path.exists() {
        if file.path == Path::new("Cargo.toml") {
            check_init_destination(dir)?;
        }
        report.kept.push(file.path.clone());
        return Ok(());
    }
    let parent = path.parent().expect("file under dir");
    let mut missing = Vec::new();
    let mut p = parent;
    while !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(up) => p = up,
            None => break,
        }
    }
    fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    created_dirs.extend(missing.into_iter().rev());
    let mut tmp = tempfile::NamedTempFile::new_in(parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    std::io::Write::write_all(&mut tmp, &file.contents)
        .with_context(|| format!("cannot write {}", path.display()))?;
    // Created with 0600; give it the usual permissions of a source file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o644));
    }
    // persist_noclobber: a file that appeared meanwhile is not overwritten.
    tmp.persist_noclobber(&path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot create {}", path.display()))?;
    report.written.push(file.path.clone());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn file<'a>(rendered: &'a Rendered, path: &str) -> &'a str {
        let f = rendered
            .files
            .iter()
            .find(|f| f.path == Path::new(path))
            .unwrap_or_else(|| panic!("{path} not rendered"));
        std::str::from_utf8(&f.contents).unwrap()
    }

    #[test]
    fn lists_the_builtin_templates() {
        assert_eq!(
            builtin_names(),
            [
                "basic",
                "durable",
                "extension",
                "http",
                "managed",
                "s3",
                "scheduled",
                "sqs",
                "stream"
            ]
        );
        let ordered: Vec<String> = builtins().unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(
            ordered,
            [
                "basic",
                "http",
                "sqs",
                "s3",
                "scheduled",
                "stream",
                "managed",
                "durable",
                "extension"
            ]
        );
    }

    #[test]
    fn every_builtin_renders_a_function_crate() {
        for name in builtin_names() {
            let template = builtin(name).unwrap();
            let rendered = template.render("my-fn", &BTreeMap::new()).unwrap();
            let cargo: toml::Table = toml::from_str(file(&rendered, "Cargo.toml")).unwrap();
            assert_eq!(cargo["package"]["name"].as_str(), Some("my-fn"), "{name}");
            assert!(cargo["package"]["metadata"]["fn"].is_table(), "{name}");
            let release = &cargo["profile"]["release"];
            assert_eq!(release["codegen-units"].as_integer(), Some(1), "{name}");
            assert!(file(&rendered, ".gitignore").contains("/target"), "{name}");
            let main = file(&rendered, "src/main.rs");
            assert!(main.contains("init_default_subscriber"), "{name}");
            assert!(
                !main.contains("{{") && !main.contains("{%"),
                "{name}: unrendered tags"
            );
            assert_eq!(rendered.extension, name == "extension", "{name}");
            assert!(
                !rendered
                    .files
                    .iter()
                    .any(|f| f.path.ends_with("template.toml"))
            );
        }
    }

    #[test]
    fn all_builtins_use_the_shared_versions() {
        let versions = versions().unwrap();
        for name in builtin_names() {
            let rendered = builtin(name)
                .unwrap()
                .render("f", &BTreeMap::new())
                .unwrap();
            let cargo: toml::Table = toml::from_str(file(&rendered, "Cargo.toml")).unwrap();
            for (dep, spec) in cargo["dependencies"].as_table().unwrap() {
                let version = spec
                    .as_str()
                    .or_else(|| spec.get("version")?.as_str())
                    .unwrap();
                let key = dep.replace('-', "_");
                assert_eq!(
                    Some(version),
                    versions.get(&key).map(String::as_str),
                    "{name}: {dep}"
                );
            }
        }
    }

    #[test]
    fn renders_variables_and_conditional_files() {
        let stream = builtin("stream").unwrap();
        let kinesis = stream.render("s", &BTreeMap::new()).unwrap();
        assert_eq!(
            kinesis.example_event.as_deref(),
            Some("events/kinesis.json")
        );
        assert!(file(&kinesis, "src/main.rs").contains("KinesisEvent"));
        assert!(
            !kinesis
                .files
                .iter()
                .any(|f| f.path.ends_with("dynamodb.json"))
        );

        let dynamo = stream
            .render("s", &vars(&[("source", "dynamodb")]))
            .unwrap();
        assert_eq!(
            dynamo.example_event.as_deref(),
            Some("events/dynamodb.json")
        );
        assert!(file(&dynamo, "src/main.rs").contains("DynamoDbEventResponse"));
        assert!(file(&dynamo, "Cargo.toml").contains(r#"features = ["dynamodb"]"#));
        assert!(
            !dynamo
                .files
                .iter()
                .any(|f| f.path.ends_with("kinesis.json"))
        );
    }

    #[test]
    fn refuses_unknown_variables_and_values() {
        let stream = builtin("stream").unwrap();
        let err = stream
            .render("s", &vars(&[("source", "kafka")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("choose one of: kinesis, dynamodb"),
            "{err}"
        );
        let err = stream.render("s", &vars(&[("colour", "red")])).unwrap_err();
        assert!(err.to_string().contains("no variable `colour`"), "{err}");
    }

    #[test]
    fn parses_a_manifest() {
        let m = Manifest::parse(
            "description = \"d\"\nexample-event = \"e.json\"\n[variables.x]\nchoices = [\"a\", \"b\"]\ndefault = \"b\"\n[when]\n\"f\" = \"x == 'a'\"\n",
            "test",
        )
        .unwrap();
        assert_eq!(m.description, "d");
        assert_eq!(m.example_event.as_deref(), Some("e.json"));
        assert_eq!(m.variables["x"].default, "b");
        assert_eq!(m.when["f"], "x == 'a'");
    }

    #[test]
    fn refuses_bad_manifests() {
        let unknown_key = Manifest::parse("description = \"d\"\ncolour = 1\n", "test").unwrap_err();
        assert!(
            format!("{unknown_key:#}").contains("colour"),
            "{unknown_key:#}"
        );
        let missing = Manifest::parse("example-event = \"x\"\n", "test").unwrap_err();
        assert!(
            format!("{missing:#}").contains("description"),
            "{missing:#}"
        );
        let reserved = Manifest::parse(
            "description = \"d\"\n[variables.name]\ndefault = \"x\"\n",
            "test",
        )
        .unwrap_err();
        assert!(reserved.to_string().contains("reserved"), "{reserved}");
        let bad_default = Manifest::parse(
            "description = \"d\"\n[variables.x]\nchoices = [\"a\"]\ndefault = \"b\"\n",
            "test",
        )
        .unwrap_err();
        assert!(
            bad_default.to_string().contains("not one of its choices"),
            "{bad_default}"
        );
    }

    #[test]
    fn validates_names() {
        for ok in ["hello", "my-fn", "my_fn", "F1", &"a".repeat(64)] {
            validate_name(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for (bad, why) in [
            ("", "empty"),
            (&"a".repeat(65) as &str, "65 characters"),
            ("my.fn", "`.`"),
            ("my fn", "` `"),
            ("1fn", "start with a letter"),
            ("-fn", "start with a letter"),
            ("fn", "keyword"),
            ("self", "keyword"),
            ("test", "reserves"),
            ("std", "reserves"),
            ("héllo", "`é`"),
        ] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn user_templates_render_with_strict_variables() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MANIFEST), "description = \"mine\"\n").unwrap();
        fs::write(
            dir.path().join("Cargo.toml.jinja"),
            "[package]\nname = \"{{ name }}\"\n{% include \"_shared/profile.toml.jinja\" %}",
        )
        .unwrap();
        fs::create_dir(dir.path().join("src")).unwrap();
        fs::write(
            dir.path().join("src/main.rs"),
            "fn main() { let _ = \"{{ kept }}\"; }\n",
        )
        .unwrap();
        let template = load_dir(dir.path()).unwrap();
        let rendered = template.render("mine", &BTreeMap::new()).unwrap();
        assert!(file(&rendered, "Cargo.toml").starts_with("[package]\nname = \"mine\"\n"));
        assert!(file(&rendered, "Cargo.toml").contains("[profile.release]"));
        // Files without the .jinja suffix are copied verbatim.
        assert!(file(&rendered, "src/main.rs").contains("{{ kept }}"));

        fs::write(
            dir.path().join("Cargo.toml.jinja"),
            "name = \"{{ nmae }}\"\n",
        )
        .unwrap();
        let err = load_dir(dir.path())
            .unwrap()
            .render("mine", &BTreeMap::new())
            .unwrap_err();
        assert!(err.to_string().contains("Cargo.toml.jinja"), "{err}");
    }

    #[test]
    fn a_directory_without_manifest_is_not_a_template() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("has no template.toml"), "{err}");
    }

    #[test]
    fn resolves_names_and_paths() {
        assert_eq!(resolve("sqs").unwrap().name, "sqs");
        let err = resolve("nope").unwrap_err().to_string();
        assert!(
            err.contains("unknown template `nope`") && err.contains("basic, durable, extension"),
            "{err}"
        );
        assert!(resolve("_shared").is_err());
        assert!(resolve("./does-not-exist").is_err());
    }

    #[test]
    fn refuses_paths_that_escape() {
        assert!(safe_relative("../x").is_err());
        assert!(safe_relative("/etc/x").is_err());
        assert_eq!(
            safe_relative("src/main.rs").unwrap(),
            PathBuf::from("src/main.rs")
        );
    }

    #[test]
    fn new_refuses_a_non_empty_directory_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("hello");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("notes.txt"), "mine").unwrap();
        let rendered = builtin("basic")
            .unwrap()
            .render("hello", &BTreeMap::new())
            .unwrap();
        let err = create_new(&target, &rendered).unwrap_err();
        assert!(err.to_string().contains("not empty"), "{err}");
        let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only the user's directory remains");
        assert_eq!(fs::read_dir(&target).unwrap().count(), 1);
    }

    #[test]
    fn new_fills_an_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("hello");
        fs::create_dir(&target).unwrap();
        let rendered = builtin("basic")
            .unwrap()
            .render("hello", &BTreeMap::new())
            .unwrap();
        create_new(&target, &rendered).unwrap();
        assert!(target.join("Cargo.toml").is_file());
        assert!(target.join("src/main.rs").is_file());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no staging dir left"
        );
    }

    #[test]
    fn init_keeps_existing_files_and_refuses_a_cargo_toml() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".gitignore"), "mine\n").unwrap();
        let rendered = builtin("basic")
            .unwrap()
            .render("hello", &BTreeMap::new())
            .unwrap();
        let report = write_into(dir.path(), &rendered).unwrap();
        assert_eq!(report.kept, [PathBuf::from(".gitignore")]);
        assert!(report.written.contains(&PathBuf::from("Cargo.toml")));
        assert_eq!(
            fs::read_to_string(dir.path().join(".gitignore")).unwrap(),
            "mine\n"
        );

        let before = fs::read(dir.path().join("Cargo.toml")).unwrap();
        let err = write_into(dir.path(), &rendered).unwrap_err();
        assert!(err.to_string().contains("will not overwrite"), "{err}");
        assert_eq!(fs::read(dir.path().join("Cargo.toml")).unwrap(), before);
    }
}
