//! The process boundary of every command: a closed stdout ends a command
//! quietly with success (as cargo and ripgrep do), and commands that take
//! an optional FUNCTION default to a one-function project's function.

use std::path::Path;

use crate::support::moto::Aws;
use crate::support::{cargo_fn, tempdir};

/// A crate with the given binaries (each a function).
fn project(dir: &Path, bins: &[&str]) {
    std::fs::create_dir_all(dir.join("src/bin")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"solo\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
    )
    .unwrap();
    for bin in bins {
        std::fs::write(dir.join(format!("src/bin/{bin}.rs")), "fn main() {}\n").unwrap();
    }
}

/// Runs cargo-fn with its stdout a pipe nobody reads any more.
fn with_closed_stdout(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills both descriptors, which we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (reader, writer) = unsafe {
        use std::os::fd::FromRawFd;
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    drop(reader);
    let mut cmd = crate::support::cargo_fn_command();
    cmd.current_dir(dir)
        .args(args)
        .stdout(writer)
        .stderr(std::process::Stdio::piped());
    cmd.output().unwrap()
}

#[test]
fn a_closed_stdout_ends_a_command_quietly_with_success() {
    let dir = tempdir();
    project(dir.path(), &["hello"]);
    // `println!` (config) and `writeln!` (invoke --list-examples) alike.
    for args in [&["config"][..], &["invoke", "--list-examples"][..]] {
        let out = with_closed_stdout(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

#[test]
fn promote_and_rollback_default_to_the_only_function() {
    let aws = Aws::start();
    let dir = tempdir();
    project(dir.path(), &["hello"]);
    for command in ["promote", "rollback"] {
        aws.proxy.reset_calls();
        let mut cmd = cargo_fn();
        cmd.current_dir(dir.path())
            .arg(command)
            .env_remove("AWS_PROFILE");
        for (k, v) in aws.env() {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The function does not exist in moto: the point is which one was asked for.
        let calls = aws.proxy.calls();
        assert!(
            calls.iter().any(|c| c.contains("/functions/hello")),
            "{command}: {calls:?} {stderr}"
        );
    }

    // With two functions, the command asks which one, before any AWS call.
    let two = tempdir();
    project(two.path(), &["hello", "world"]);
    aws.proxy.reset_calls();
    let mut cmd = cargo_fn();
    cmd.current_dir(two.path()).arg("promote");
    for (k, v) in aws.env() {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("hello, world"), "{stderr}");
    assert!(aws.proxy.calls().is_empty());
}
