//! Deploying to an AWS double: a project and a zip to deploy, and
//! `cargo fn` run against the double with its output checked for the
//! secret key.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::cargo_fn;
use super::doubles::Double;
use super::moto::SECRET_KEY;

/// A crate with one binary `name` (the function's name) and the given
/// `[package.metadata.fn]` body.
pub fn project(dir: &Path, name: &str, metadata: &str) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n[package.metadata.fn]\n{metadata}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
}

/// A small zip holding an executable `bootstrap` with `content`.
pub fn zip(dir: &Path, name: &str, content: &str) -> PathBuf {
    let path = dir.join(name);
    let file = std::fs::File::create(&path).unwrap();
    let mut z = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default()
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    z.start_file("bootstrap", opts).unwrap();
    z.write_all(format!("#!/bin/sh\n# {content}\n").as_bytes())
        .unwrap();
    z.finish().unwrap();
    path
}

pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("stdout is not JSON ({e}): {}\n{}", self.stdout, self.stderr)
        })
    }
}

pub fn cargo_fn_in(aws: &Double, dir: &Path, args: &[&str]) -> Run {
    let mut cmd = cargo_fn();
    cmd.current_dir(dir).args(args).env_remove("AWS_PROFILE");
    for (k, v) in aws.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run cargo-fn");
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains(SECRET_KEY),
            "the secret key was printed: {text}"
        );
    }
    run
}

pub fn deploy(aws: &Double, dir: &Path, zip: &Path, extra: &[&str]) -> Run {
    let zip = zip.to_str().unwrap();
    let mut args = vec!["deploy", "--zip", zip, "--output", "json"];
    args.extend_from_slice(extra);
    cargo_fn_in(aws, dir, &args)
}

pub fn ok(run: Run) -> Value {
    assert!(run.ok, "failed:\n{}\n{}", run.stdout, run.stderr);
    run.json()
}
