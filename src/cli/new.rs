//! `cargo fn new` and `cargo fn init`: choose a template (flags, or a prompt
//! on a terminal), render it with `crate::templates`, write it, and print the
//! next steps.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use super::GlobalArgs;
use crate::error::UsageError;
use crate::templates::{self, Rendered, Template};
use crate::ui::Ui;

/// Template choice, shared by `new` and `init`.
#[derive(Debug, Args, Clone, Default)]
pub struct TemplateArgs {
    /// Template: a built-in name (basic, http, sqs, s3, scheduled, stream,
    /// extension) or the path of a directory with a template.toml
    #[arg(long, short = 't', value_name = "NAME|PATH", conflicts_with_all = ["http", "event"])]
    pub template: Option<String>,
    /// Same as --template http: a function URL or API Gateway HTTP API
    #[arg(long, conflicts_with = "event")]
    pub http: bool,
    /// Choose the template by the event source that invokes the function
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub event: Option<EventSource>,
    /// Set a template variable (repeatable), e.g. --var source=dynamodb
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// Use the defaults and ask nothing
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum EventSource {
    Sqs,
    S3,
    Scheduled,
    Kinesis,
    #[value(alias = "dynamodb-stream")]
    Dynamodb,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Name of the function (and crate); also the directory to create, which
    /// may be a path (its last part is the name)
    #[arg(value_name = "NAME", required_unless_present = "list")]
    pub path: Option<PathBuf>,
    /// Crate and function name, when it differs from the directory name
    #[arg(long)]
    pub name: Option<String>,
    /// List the built-in templates and exit
    #[arg(long, exclusive = true)]
    pub list: bool,
    #[command(flatten)]
    pub template: TemplateArgs,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Directory to turn into a function crate (default: the current one)
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: PathBuf,
    /// Crate and function name (default: the directory name)
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub template: TemplateArgs,
}

pub fn run_new(global: &GlobalArgs, args: NewArgs) -> anyhow::Result<()> {
    let ui = global.ui();
    let Some(path) = args.path else {
        return list(&ui);
    };
    let name = name_for(&path, args.name.as_deref())?;
    templates::validate_name(&name)?;
    templates::check_new_destination(&path)?;
    let rendered = choose_and_render(&args.template, &name)?;
    templates::create_new(&path, &rendered)?;
    warn_if_inside_workspace(&ui, &path);
    report(&ui, &rendered, &path, true, &[]);
    Ok(())
}

/// `cargo fn new --list`: the built-in templates on stdout (a result, not status).
fn list(ui: &Ui) -> anyhow::Result<()> {
    let list = templates::builtins()?;
    if ui.is_json() {
        let items: Vec<_> = list
            .iter()
            .map(|t| serde_json::json!({ "name": t.name, "description": t.manifest.description }))
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    let width = list.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &list {
        println!("{:<width$}  {}", t.name, t.manifest.description);
    }
    Ok(())
}

pub fn run_init(global: &GlobalArgs, args: InitArgs) -> anyhow::Result<()> {
    let ui = global.ui();
    let dir = if args.path.exists() {
        args.path
            .canonicalize()
            .with_context(|| format!("cannot open {}", args.path.display()))?
    } else {
        args.path.clone()
    };
    let name = name_for(&dir, args.name.as_deref())?;
    templates::validate_name(&name).map_err(|e| {
        if args.name.is_none() {
            UsageError(format!("{e}; pass --name NAME to choose another")).into()
        } else {
            e
        }
    })?;
    templates::check_init_destination(&dir)?;
    let rendered = choose_and_render(&args.template, &name)?;
    let written = templates::write_into(&dir, &rendered)?;
    for kept in &written.kept {
        ui.warn(format_args!("kept the existing {}", kept.display()));
    }
    report(&ui, &rendered, &args.path, false, &written.kept);
    Ok(())
}

/// The crate name: `--name`, or the last part of the path.
fn name_for(path: &Path, name: Option<&str>) -> anyhow::Result<String> {
    if let Some(name) = name {
        return Ok(name.to_string());
    }
    let last = path.file_name().ok_or_else(|| {
        UsageError(format!(
            "cannot take a name from `{}`; pass --name NAME",
            path.display()
        ))
    })?;
    Ok(last.to_string_lossy().into_owned())
}

/// Picks the template from the flags, or by asking on a terminal, or `basic`;
/// then asks for (or defaults) its variables and renders it.
fn choose_and_render(args: &TemplateArgs, name: &str) -> anyhow::Result<Rendered> {
    let mut vars = parse_vars(&args.vars)?;
    let interactive = !args.yes && std::io::stdin().is_terminal();
    let template: Template = if let Some(spec) = &args.template {
        templates::resolve(spec)?
    } else if args.http {
        templates::builtin("http")?
    } else if let Some(event) = args.event {
        let (template, source) = match event {
            EventSource::Sqs => ("sqs", None),
            EventSource::S3 => ("s3", None),
            EventSource::Scheduled => ("scheduled", None),
            EventSource::Kinesis => ("stream", Some("kinesis")),
            EventSource::Dynamodb => ("stream", Some("dynamodb")),
        };
        if let Some(source) = source {
            if let Some(other) = vars.get("source").filter(|v| *v != source) {
                return Err(UsageError(format!(
                    "--event {} conflicts with --var source={other}",
                    source
                ))
                .into());
            }
            vars.insert("source".into(), source.into());
        }
        templates::builtin(template)?
    } else if interactive {
        let list = templates::builtins()?;
        let choices: Vec<(String, String)> = list
            .iter()
            .map(|t| (t.name.clone(), t.manifest.description.clone()))
            .collect();
        let picked = prompt("Which template?", &choices, 0)?;
        list.into_iter().nth(picked).expect("picked from the list")
    } else {
        templates::builtin("basic")?
    };

    if interactive {
        for (key, var) in &template.manifest.variables {
            if vars.contains_key(key) || var.choices.is_empty() {
                continue;
            }
            let question = var
                .prompt
                .clone()
                .unwrap_or_else(|| format!("Value of `{key}`?"));
            let choices: Vec<(String, String)> = var
                .choices
                .iter()
                .map(|c| (c.clone(), String::new()))
                .collect();
            let default = var
                .choices
                .iter()
                .position(|c| *c == var.default)
                .unwrap_or(0);
            let picked = prompt(&question, &choices, default)?;
            vars.insert(key.clone(), var.choices[picked].clone());
        }
    }
    template.render(name, &vars)
}

fn parse_vars(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| UsageError(format!("--var expects KEY=VALUE, got `{pair}` (no `=`)")))?;
        vars.insert(k.trim().to_string(), v.to_string());
    }
    Ok(vars)
}

/// Asks on stderr to pick one of `choices` (by number or name); Enter picks
/// the default.
fn prompt(question: &str, choices: &[(String, String)], default: usize) -> anyhow::Result<usize> {
    prompt_with(
        &mut std::io::stdin().lock(),
        &mut std::io::stderr(),
        question,
        choices,
        default,
    )
}

fn prompt_with(
    input: &mut impl BufRead,
    output: &mut impl Write,
    question: &str,
    choices: &[(String, String)],
    default: usize,
) -> anyhow::Result<usize> {
    let width = choices.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    loop {
        writeln!(output, "{question}")?;
        for (i, (name, description)) in choices.iter().enumerate() {
            let marker = if i == default { "*" } else { " " };
            writeln!(
                output,
                " {marker}{:>2}) {name:<width$}  {description}",
                i + 1
            )?;
        }
        write!(output, "Choose 1-{} [{}]: ", choices.len(), default + 1)?;
        output.flush()?;
        let mut line = String::new();
        if input.read_line(&mut line)? == 0 {
            // End of input: take the default rather than loop forever.
            return Ok(default);
        }
        let answer = line.trim();
        if answer.is_empty() {
            return Ok(default);
        }
        if let Ok(n) = answer.parse::<usize>()
            && (1..=choices.len()).contains(&n)
        {
            return Ok(n - 1);
        }
        if let Some(i) = choices.iter().position(|(name, _)| name == answer) {
            return Ok(i);
        }
        writeln!(output, "`{answer}` is not one of the choices")?;
    }
}

/// Warns when the new crate sits inside a cargo workspace that does not list
/// it: cargo would then refuse to build it.
fn warn_if_inside_workspace(ui: &Ui, dir: &Path) {
    let Ok(dir) = dir.canonicalize() else { return };
    for ancestor in dir.ancestors().skip(1) {
        let manifest = ancestor.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let Ok(table) = text.parse::<toml::Table>() else {
            continue;
        };
        let Some(workspace) = table.get("workspace") else {
            continue;
        };
        let rel = dir.strip_prefix(ancestor).unwrap_or(&dir);
        let listed = |key: &str| {
            workspace
                .get(key)
                .and_then(|v| v.as_array())
                .is_some_and(|patterns| {
                    patterns
                        .iter()
                        .filter_map(|p| p.as_str())
                        .any(|p| matches_member(p, rel))
                })
        };
        if !listed("members") && !listed("exclude") {
            ui.warn(format_args!(
                "`{}` is inside the workspace of {}: add \"{}\" to its `workspace.members` \
                 (or `workspace.exclude`) before building",
                dir.display(),
                manifest.display(),
                rel.display()
            ));
        }
        return;
    }
}

/// A workspace member pattern: a plain path or `dir/*` (the forms cargo new
/// itself writes); anything fancier counts as a match to avoid false alarms.
fn matches_member(pattern: &str, rel: &Path) -> bool {
    let pattern = pattern.trim_end_matches('/');
    if let Some(prefix) = pattern.strip_suffix("/*") {
        return rel.parent() == Some(Path::new(prefix));
    }
    if pattern.contains(['*', '?', '[']) {
        return true;
    }
    Path::new(pattern) == rel
}

/// Status, next steps, and with `--output json` a result on stdout.
fn report(ui: &Ui, rendered: &Rendered, path: &Path, new: bool, kept: &[PathBuf]) {
    if ui.is_json() {
        let files: Vec<String> = rendered
            .files
            .iter()
            .filter(|f| !kept.contains(&f.path))
            .map(|f| f.path.display().to_string())
            .collect();
        let result = serde_json::json!({
            "name": rendered.name,
            "path": path,
            "template": rendered.template,
            "extension": rendered.extension,
            "files": files,
            "example_event": rendered.example_event,
        });
        println!("{result}");
    }
    ui.status(
        "Created",
        format_args!(
            "`{}` from template {}{}",
            rendered.name,
            rendered.template,
            if new {
                String::new()
            } else {
                format!(" in {}", path.display())
            }
        ),
    );
    if ui.quiet {
        return;
    }
    let mut steps = Vec::new();
    if new || path != Path::new(".") {
        steps.push(format!("cd {}", path.display()));
    }
    if rendered.extension {
        steps.push("cargo test".to_string());
        steps.push("cargo fn build".to_string());
        steps.push("cargo fn package    # a layer with extensions/".to_string() + &rendered.name);
    } else {
        steps.push("cargo fn watch      # local emulator, rebuilds on save".to_string());
        match &rendered.example_event {
            Some(event) => steps.push(format!("cargo fn invoke --data-file {event}")),
            None => steps.push("cargo fn invoke --data '{}'".to_string()),
        }
        steps.push("cargo fn deploy".to_string());
    }
    eprintln!("\nNext steps:");
    for step in steps {
        eprintln!("  {step}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choices() -> Vec<(String, String)> {
        ["basic", "http", "sqs"]
            .iter()
            .map(|n| (n.to_string(), format!("the {n} one")))
            .collect()
    }

    fn answer(input: &str, default: usize) -> (usize, String) {
        let mut out = Vec::new();
        let picked = prompt_with(
            &mut input.as_bytes(),
            &mut out,
            "Which?",
            &choices(),
            default,
        )
        .unwrap();
        (picked, String::from_utf8(out).unwrap())
    }

    #[test]
    fn prompt_takes_a_number_a_name_or_the_default() {
        assert_eq!(answer("2\n", 0).0, 1);
        assert_eq!(answer("sqs\n", 0).0, 2);
        assert_eq!(answer("\n", 1).0, 1);
        assert_eq!(answer("", 2).0, 2, "end of input picks the default");
        let (picked, shown) = answer("9\nnope\n1\n", 0);
        assert_eq!(picked, 0);
        assert!(shown.contains("`9` is not one of the choices"), "{shown}");
        assert!(
            shown.contains("`nope` is not one of the choices"),
            "{shown}"
        );
        assert!(shown.contains(" * 1) basic  the basic one"), "{shown}");
    }

    #[test]
    fn workspace_member_patterns() {
        assert!(matches_member("fns/hello", Path::new("fns/hello")));
        assert!(matches_member("fns/*", Path::new("fns/hello")));
        assert!(!matches_member("fns/*", Path::new("other/hello")));
        assert!(!matches_member("hello2", Path::new("hello")));
    }

    #[test]
    fn event_flags_pick_templates_and_variables() {
        let args = TemplateArgs {
            event: Some(EventSource::Dynamodb),
            yes: true,
            ..TemplateArgs::default()
        };
        let rendered = choose_and_render(&args, "f").unwrap();
        assert_eq!(rendered.template, "stream");
        assert_eq!(
            rendered.example_event.as_deref(),
            Some("events/dynamodb.json")
        );

        let conflicting = TemplateArgs {
            event: Some(EventSource::Kinesis),
            vars: vec!["source=dynamodb".into()],
            ..TemplateArgs::default()
        };
        let err = choose_and_render(&conflicting, "f").unwrap_err();
        assert!(err.to_string().contains("conflicts"), "{err}");
    }
}
