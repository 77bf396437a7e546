//! `cargo fn build`: cross builds for real (zig, qemu), output layout, and
//! the errors for missing tools.

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cargo_fn::config::{Arch, Runtime};

use crate::support::fixtures::{cargo_fn_in, fixture};
use crate::support::{cargo_fn, shared_target_dir};

#[test]
fn arm64_build_is_an_aarch64_elf_that_reaches_the_runtime_api_under_qemu() {
    let (_tmp, root) = fixture("hello", "hello_arm64");
    let out = cargo_fn_in(&root)
        .args(["build", "--arm64", "--output", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let built: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(built[0]["architecture"], "arm64");
    assert_eq!(built[0]["driver"], "zigbuild");
    let bootstrap = shared_target_dir().join("lambda/hello_arm64/bootstrap");
    assert_eq!(PathBuf::from(built[0]["path"].as_str().unwrap()), bootstrap);

    // An aarch64 ELF within provided.al2023's glibc, by our checker...
    let report =
        cargo_fn::artifact::check_file(&bootstrap, Arch::Arm64, Runtime::ProvidedAl2023).unwrap();
    assert!(!report.static_binary);
    let max = report.max_glibc_version.expect("a glibc binary");
    assert!(max <= (2, 34), "{max:?}");
    // ...and refused for the other architecture.
    assert!(
        cargo_fn::artifact::check_file(&bootstrap, Arch::X86_64, Runtime::ProvidedAl2023).is_err()
    );

    // It starts under qemu-user and asks the Runtime API for an event.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut child = Command::new("qemu-aarch64-static")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(&bootstrap)
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "hello_arm64")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("qemu-aarch64-static (apt install qemu-user-static libc6-arm64-cross; cargo xtask setup)");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut stream, _)) = listener.accept() {
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let request = rx.recv_timeout(Duration::from_secs(120));
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let request = request.unwrap_or_else(|_| {
        panic!(
            "the arm64 bootstrap never called the Runtime API; stderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert!(
        request.starts_with("GET /2018-06-01/runtime/invocation/next HTTP/1.1"),
        "{request}"
    );
}

#[test]
fn musl_build_is_a_static_binary_at_the_extension_layout() {
    let (_tmp, root) = fixture("ext", "ext_musl");
    let out = cargo_fn_in(&root)
        .args(["build", "--x86-64", "--musl", "--output", "json"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let built: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let lambda = shared_target_dir().join("lambda");
    for b in built.as_array().unwrap() {
        assert_eq!(b["target"], "x86_64-unknown-linux-musl");
        assert_eq!(b["check"]["static_binary"], true, "{b}");
        let path = PathBuf::from(b["path"].as_str().unwrap());
        match b["bin"].as_str().unwrap() {
            "ext_musl_sidecar" => assert_eq!(path, lambda.join("extensions/ext_musl_sidecar")),
            "ext_musl_tool" => assert_eq!(path, lambda.join("ext_musl_tool/bootstrap")),
            other => panic!("unexpected binary {other}"),
        }
        // Static: fine on either runtime, whatever the host glibc.
        cargo_fn::artifact::check_file(&path, Arch::X86_64, Runtime::ProvidedAl2).unwrap();
    }
}

/// A `rustc` whose sysroot has no targets: the toolchain lacks every target.
fn fake_rustc(dir: &Path) -> PathBuf {
    let sysroot = dir.join("sysroot");
    std::fs::create_dir_all(sysroot.join("lib/rustlib")).unwrap();
    let rustc = dir.join("rustc");
    std::fs::write(&rustc, format!("#!/bin/sh\necho {}\n", sysroot.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
    rustc
}

#[test]
fn a_missing_target_is_named_with_its_install_command_before_building() {
    let (tmp, root) = fixture("hello", "hello_missing_target");
    let rustc = fake_rustc(tmp.path());
    let assert = cargo_fn_in(&root)
        .env("RUSTC", &rustc)
        .args(["build", "--arm64"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("the Rust target aarch64-unknown-linux-gnu"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rustup target add aarch64-unknown-linux-gnu"),
        "{stderr}"
    );
    assert!(stderr.contains("--install-missing"), "{stderr}");
    assert!(
        !stderr.contains("Compiling"),
        "detected before building: {stderr}"
    );
}

#[test]
fn a_target_rustup_cannot_install_says_so_plainly() {
    let (tmp, root) = fixture("hello", "hello_uninstallable");
    let rustc = fake_rustc(tmp.path());
    let assert = cargo_fn_in(&root)
        .env("RUSTC", &rustc)
        .env("RUSTUP_TOOLCHAIN", "cargo-fn-test-no-such-toolchain")
        .args(["build", "--arm64", "--install-missing"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("rustup could not install the Rust target aarch64-unknown-linux-gnu"),
        "{stderr}"
    );
    assert!(stderr.contains("could not be downloaded"), "{stderr}");
    assert!(
        stderr.contains("cargo-fn-test-no-such-toolchain"),
        "rustup's reason is shown: {stderr}"
    );
}

#[test]
fn a_toolchain_that_does_not_exist_is_reported() {
    let (_tmp, root) = fixture("hello", "hello_no_toolchain");
    let assert = cargo_fn_in(&root)
        .env("RUSTUP_TOOLCHAIN", "cargo-fn-test-no-such-toolchain")
        .args(["build", "--arm64"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("cannot find the Rust toolchain"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cargo-fn-test-no-such-toolchain"),
        "{stderr}"
    );
}

#[test]
fn missing_zig_and_cargo_zigbuild_are_named_with_install_commands() {
    let (tmp, root) = fixture("hello", "hello_no_zig");
    // PATH with cargo, rustc and rustup but without the tools venv.
    let cargo_bin = which("cargo");
    let path = format!("{}:/usr/bin:/bin", cargo_bin.parent().unwrap().display());
    let assert = cargo_fn()
        .current_dir(&root)
        .env("PATH", path)
        .env("CARGO_FN_TOOLS_DIR", tmp.path().join("no-tools"))
        .args(["build", "--arm64"])
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("zig"), "{stderr}");
    assert!(stderr.contains("pip3 install ziglang"), "{stderr}");
    assert!(
        stderr.contains("cargo install --locked cargo-zigbuild"),
        "{stderr}"
    );
    assert!(stderr.contains("--install-missing"), "{stderr}");
}

fn which(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not on PATH"))
}
