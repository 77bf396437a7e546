//! The guide's shell examples are run, so the guide cannot drift from the
//! program.
//!
//! A fenced ```` ```console ```` block right after a `<!-- runnable -->` line,
//! in `README.md` or any page of `docs/src`, is a terminal session: each
//! `$ command` line runs (through `sh`, with the freshly built `cargo-fn`
//! first on PATH, so `cargo fn ...` goes through cargo as for a user) and
//! the lines up to the next `$` are its expected stderr then stdout. All the
//! runnable blocks of one page share a session: one temp dir as `HOME` and
//! working directory, `$ cd DIR` moves it. Before comparing, both sides are
//! redacted: the session dir becomes `~`, durations, UUIDs and SHA-256 digests
//! become placeholders. A command whose expected output has an `error:` line
//! must fail; any other must succeed.
//!
//! Only offline examples that need no cargo build are marked runnable (CI
//! time); the others are captured by hand from real runs.
//!
//! `GUIDE_BLESS=1 cargo test --test it guide::` writes what the program
//! printed into the pages instead of failing (review the diff before committing).

use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

use crate::support;

const MARKER: &str = "<!-- runnable -->";

struct Step {
    line: usize,
    command: String,
    expected: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut pages = vec![repo().join("README.md")];
    walk(&repo().join("docs/src"), &mut pages);
    pages.sort();
    pages
}

/// The runnable steps of one page, in order.
fn steps(text: &str) -> Vec<Step> {
    let lines: Vec<&str> = text.lines().collect();
    let mut steps: Vec<Step> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != MARKER {
            i += 1;
            continue;
        }
        assert_eq!(
            lines.get(i + 1).map(|l| l.trim()),
            Some("```console"),
            "line {}: {MARKER} must be followed by a ```console block",
            i + 1
        );
        i += 2;
        let mut current: Option<Step> = None;
        while i < lines.len() && lines[i].trim() != "```" {
            if let Some(cmd) = lines[i].strip_prefix("$ ") {
                steps.extend(current.take());
                current = Some(Step {
                    line: i + 1,
                    command: cmd.to_string(),
                    expected: String::new(),
                });
            } else {
                let step = current
                    .as_mut()
                    .unwrap_or_else(|| panic!("line {}: output before any `$` command", i + 1));
                step.expected.push_str(lines[i]);
                step.expected.push('\n');
            }
            i += 1;
        }
        steps.extend(current.take());
    }
    steps
}

/// Replaces what changes from run to run.
fn redact(text: &str, session: &Path) -> String {
    let mut text = text.to_string();
    for dir in [session.to_path_buf(), session.canonicalize().unwrap()] {
        text = text.replace(&dir.display().to_string(), "~");
    }
    let rules = [
        (
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[ID]",
        ),
        (r"\b[0-9a-f]{64}\b", "[SHA256]"),
        (r"[A-Za-z0-9+/]{43}=", "[SHA256]"),
        // Measured durations (`1.52s`, `35.16 ms`, `12ms`, `2m 57s`); a
        // configured `timeout 20 s` stays as it is.
        (
            r"\b(\d+m )?\d+\.\d+\s?(ms|µs|s)\b|\b\d+(ms|µs)\b|\b\d+m \d+s\b",
            "[TIME]",
        ),
        // Packaged sizes depend on the exact binary (a host's /bin/true).
        (
            r"\(\d+(\.\d+)? [KMG]?B, \d+(\.\d+)? [KMG]?B unzipped\)",
            "([SIZE])",
        ),
    ];
    for (pattern, with) in rules {
        text = Regex::new(pattern)
            .unwrap()
            .replace_all(&text, with)
            .into_owned();
    }
    text.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn run_page(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let steps = steps(&text);
    if steps.is_empty() {
        return Vec::new();
    }
    let shown = page.strip_prefix(repo()).unwrap().display().to_string();
    let session = support::tempdir();
    let mut cwd = session.path().to_path_buf();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cargo-fn")).parent().unwrap();
    let mut path = vec![bin_dir.to_path_buf()];
    path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap()));
    let path = std::env::join_paths(path).unwrap();
    // HOME moves to the session; cargo and rustup must still find their homes.
    let home = PathBuf::from(std::env::var_os("HOME").unwrap());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".rustup"));
    let bless = std::env::var_os("GUIDE_BLESS").is_some();
    let mut blessed: Vec<(usize, usize, String)> = Vec::new();
    let mut failures = Vec::new();
    for step in steps {
        if let Some(dir) = step.command.strip_prefix("cd ") {
            cwd = cwd.join(
                dir.trim()
                    .replace('~', &session.path().display().to_string()),
            );
            assert!(cwd.is_dir(), "{shown}:{}: no directory {dir}", step.line);
            continue;
        }
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(&step.command)
            .current_dir(&cwd)
            .env("PATH", &path)
            .env("HOME", session.path())
            .env("CARGO_HOME", &cargo_home)
            .env("RUSTUP_HOME", &rustup_home)
            .env("NO_COLOR", "1")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUST_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("CARGO_FN_") || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd.output().unwrap();
        let actual = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let expected = redact(&step.expected, session.path());
        let got = redact(&actual, session.path());
        let should_fail = step.expected.lines().any(|l| l.starts_with("error:"));
        if bless {
            let shown_output = actual
                .replace(&session.path().display().to_string(), "~")
                .lines()
                .map(str::trim_end)
                .collect::<Vec<_>>()
                .join("\n");
            blessed.push((step.line, step.expected.lines().count(), shown_output));
            continue;
        }
        if got != expected || out.status.success() == should_fail {
            failures.push(format!(
                "{shown}:{}: `$ {}` ({})\n--- the guide shows\n{expected}\n--- the program printed\n{got}\n",
                step.line,
                step.command,
                out.status
            ));
        }
    }
    if bless {
        write_blessed(page, &text, &blessed);
    }
    failures
}

/// Replaces the expected output after each step's command line.
fn write_blessed(page: &Path, text: &str, blessed: &[(usize, usize, String)]) {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        out.push(lines[i].to_string());
        if let Some((_, old, new)) = blessed.iter().find(|(line, _, _)| *line == i + 1) {
            out.extend(new.trim_end().lines().map(String::from));
            i += old;
        }
        i += 1;
    }
    std::fs::write(page, out.join("\n") + "\n").unwrap();
}

#[test]
fn every_runnable_example_in_the_guide_prints_what_the_guide_shows() {
    let mut ran = 0;
    let mut failures = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        ran += steps(&text).len();
        failures.extend(run_page(&page));
    }
    // The guide has runnable examples; losing the markers must not pass quietly.
    assert!(ran >= 10, "only {ran} runnable commands found in the guide");
    assert!(
        failures.is_empty(),
        "{} guide example(s) differ from the program (fix the page or the program):\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn redaction_keeps_what_matters_and_hides_what_changes() {
    let dir = support::tempdir();
    let text = format!(
        "Created {}/hello in 1.52s\nid 0b7c2a3e-1f2d-4c5b-9a8e-7d6c5b4a3f21 took 12ms\nsha oR1yPzX9bA0v8F+4kYcG2mJ3dQ5wE7tH6uL1nS0pZ/k=\nmemory 128 MB, timeout 20 s\nPackaged x (14.5 KB, 34.8 KB unzipped)",
        dir.path().display()
    );
    assert_eq!(
        redact(&text, dir.path()),
        "Created ~/hello in [TIME]\nid [ID] took [TIME]\nsha [SHA256]\nmemory 128 MB, timeout 20 s\nPackaged x ([SIZE])"
    );
}

/// The README's quick start, typed as a newcomer types it, ends with the
/// function deployed behind its alias and invoked there (moto plays AWS; the
/// build is the real `cargo fn` build for Lambda). The local half (`watch`,
/// `invoke`, `curl`) is what the `watch`, `invoke` and `http_front` tests cover.
#[test]
fn the_readme_quick_start_deploys_and_invokes_the_function() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let new = ["new", "hello", "--http"];
    let deploy = ["deploy", "--alias", "prod"];
    let invoke = [
        "invoke",
        "--remote",
        "--qualifier",
        "prod",
        "--data-file",
        "events/function-url.json",
    ];
    for args in [&new[..], &deploy[..], &invoke[..]] {
        let line = format!("$ cargo fn {}", args.join(" "));
        assert!(
            readme.contains(&line),
            "the README's quick start no longer says `{line}`: update this test with it"
        );
    }
    let aws = crate::support::moto::Aws::start();
    let dir = support::tempdir();
    let run = |cwd: &Path, args: &[&str]| {
        let mut cmd = support::cargo_fn();
        cmd.current_dir(cwd)
            .args(args)
            .env("PATH", support::path_with_tools())
            .env("CARGO_TARGET_DIR", support::shared_target_dir())
            .env_remove("AWS_PROFILE");
        for (k, v) in aws.env() {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "`cargo fn {}` failed:\n{stderr}\n{stdout}",
            args.join(" ")
        );
        assert!(
            !stderr.contains(crate::support::moto::SECRET_KEY)
                && !stdout.contains(crate::support::moto::SECRET_KEY)
        );
        (stdout, stderr)
    };
    run(dir.path(), &new);
    let hello = dir.path().join("hello");
    let (deployed, _) = run(&hello, &deploy);
    assert!(
        deployed.contains("hello: deployed, version 1, alias prod -> 1"),
        "deploy reports the version and alias: {deployed}"
    );
    // Nothing public by default: the URL takes signed requests only, and no
    // HTTP API (the template's is commented out) is created.
    assert!(
        deployed.contains("(AWS_IAM: signed requests only)") && !deployed.contains("Public"),
        "deploy says who may call what it created: {deployed}"
    );
    let alias = aws.get_json("/2015-03-31/functions/hello/aliases/prod");
    assert_eq!(alias["FunctionVersion"], "1", "{alias}");
    let function = aws.get_json("/2015-03-31/functions/hello");
    assert_eq!(function["Configuration"]["Runtime"], "provided.al2023");
    // moto (without Docker) answers an Invoke with the payload it was given:
    // proof that the call reached the alias with the example event.
    let (answer, _) = run(&hello, &invoke);
    let event = std::fs::read(hello.join("events/function-url.json")).unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&event).unwrap();
    let answered: serde_json::Value = serde_json::from_str(&answer)
        .unwrap_or_else(|e| panic!("the remote invoke printed no JSON ({e}): {answer}"));
    assert_eq!(answered, sent);
}
