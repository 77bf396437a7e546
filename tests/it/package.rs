//! `cargo fn package`: end to end from a function crate to a reproducible
//! zip read back with the real `unzip`; the artifact checks on binaries
//! given by path; includes; extension and layer layouts.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::fixtures::{cargo_fn_in, fixture};
use crate::support::{cargo_fn, shared_target_dir, tempdir};

fn unzip_listing(zip: &Path) -> String {
    let out = Command::new("unzip")
        .arg("-Z")
        .arg(zip)
        .output()
        .expect("unzip (apt install unzip; cargo xtask setup)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn package_json(root: &Path, args: &[&str]) -> serde_json::Value {
    let out = cargo_fn_in(root)
        .args(["package", "--output", "json"])
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn x86_64_function_packages_reproducibly_with_an_executable_bootstrap() {
    let (_tmp, root) = fixture("hello", "hello_x86");
    std::fs::create_dir_all(root.join("static")).unwrap();
    std::fs::write(root.join("static/index.html"), "<h1>hi</h1>\n").unwrap();

    let first = package_json(&root, &["--x86-64", "--include", "static"]);
    let zip = shared_target_dir().join("lambda/hello_x86/bootstrap.zip");
    assert_eq!(PathBuf::from(first[0]["path"].as_str().unwrap()), zip);
    let hash = first[0]["code_sha256"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 44, "base64 SHA-256: {hash}");

    let listing = unzip_listing(&zip);
    let bootstrap = listing
        .lines()
        .find(|l| l.ends_with(" bootstrap"))
        .expect(&listing);
    assert!(bootstrap.starts_with("-rwxr-xr-x"), "{listing}");
    assert!(listing.contains("static/index.html"), "{listing}");
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rw-r--r--") && l.ends_with("static/index.html")),
        "{listing}"
    );

    // The same hash again, and after touching the sources (a rebuild).
    let second = package_json(&root, &["--x86-64", "--include", "static"]);
    assert_eq!(second[0]["code_sha256"], hash.as_str());
    let main = root.join("src/main.rs");
    let f = std::fs::File::options().write(true).open(&main).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    let index = std::fs::File::options()
        .write(true)
        .open(root.join("static/index.html"))
        .unwrap();
    index
        .set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    let third = package_json(&root, &["--x86-64", "--include", "static"]);
    assert_eq!(third[0]["code_sha256"], hash.as_str());

    // The human output prints the hash on stdout.
    let human = cargo_fn_in(&root)
        .args(["package", "--x86-64", "--include", "static", "--no-build"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8_lossy(&human).contains(&format!("CodeSha256={hash}")));

    // Includes that escape the crate are refused, and the good zip stays.
    for bad in ["/etc/passwd", "../outside"] {
        let assert = cargo_fn_in(&root)
            .args(["package", "--no-build", "--include", bad])
            .assert()
            .failure();
        let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(stderr.contains(bad), "{stderr}");
    }
    assert_eq!(unzip_listing(&zip), listing);
}

/// Compiles the C fixture that calls arc4random (GLIBC_2.36) with the host gcc.
fn newer_glibc_binary(dir: &Path) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/newglibc/main.c");
    let exe = dir.join("needs-2.36");
    let status = Command::new("gcc")
        .arg("-O1")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("gcc (apt install gcc)");
    assert!(status.success());
    exe
}

#[test]
fn a_binary_needing_newer_glibc_than_the_runtime_is_refused_naming_the_symbol() {
    let tmp = tempdir();
    let exe = newer_glibc_binary(tmp.path());
    let zip = tmp.path().join("out.zip");
    let assert = cargo_fn()
        .current_dir(tmp.path())
        .args(["package", "--binary"])
        .arg(&exe)
        .args(["--x86-64", "--runtime", "provided.al2023", "--out"])
        .arg(&zip)
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("arc4random"), "{stderr}");
    assert!(stderr.contains("GLIBC_2.36"), "{stderr}");
    assert!(stderr.contains("glibc 2.34"), "{stderr}");
    assert!(stderr.contains("--musl"), "{stderr}");
    assert!(!zip.exists(), "nothing written");

    // Against provided.al2 the limit named is 2.26.
    let assert = cargo_fn()
        .current_dir(tmp.path())
        .args(["package", "--binary"])
        .arg(&exe)
        .args(["--x86-64", "--runtime", "provided.al2", "--out"])
        .arg(&zip)
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("glibc 2.26"), "{stderr}");
}

#[test]
fn a_wrong_architecture_binary_is_refused() {
    let tmp = tempdir();
    let exe = newer_glibc_binary(tmp.path());
    let assert = cargo_fn()
        .current_dir(tmp.path())
        .args(["package", "--binary"])
        .arg(&exe)
        .args(["--arm64", "--out"])
        .arg(tmp.path().join("out.zip"))
        .assert()
        .failure();
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(
        stderr.contains("built for x86_64, but the function's architecture is arm64"),
        "{stderr}"
    );
}

#[test]
fn extensions_and_layers_have_the_lambda_layout() {
    let (_tmp, root) = fixture("ext", "ext_layout");
    let out = package_json(&root, &["--x86-64"]);
    let lambda = shared_target_dir().join("lambda");

    let by_name = |name: &str| {
        out.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {out}"))
            .clone()
    };
    let tool = by_name("ext_layout_tool");
    assert_eq!(tool["kind"], "function");
    assert_eq!(
        PathBuf::from(tool["path"].as_str().unwrap()),
        lambda.join("ext_layout_tool/bootstrap.zip")
    );

    let sidecar = by_name("ext_layout_sidecar");
    assert_eq!(sidecar["kind"], "extension");
    let ext_zip = lambda.join("extensions/ext_layout_sidecar.zip");
    assert_eq!(PathBuf::from(sidecar["path"].as_str().unwrap()), ext_zip);
    assert!(
        lambda.join("extensions/ext_layout_sidecar").is_file(),
        "build output layout"
    );
    let listing = unzip_listing(&ext_zip);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("-rwxr-xr-x") && l.ends_with(" extensions/ext_layout_sidecar")),
        "{listing}"
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(lambda.join("extensions/ext_layout_sidecar.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["compatible_architectures"],
        serde_json::json!(["x86_64"])
    );
    assert_eq!(
        manifest["compatible_runtimes"],
        serde_json::json!(["provided.al2023", "provided.al2"]),
        "built for provided.al2 (glibc 2.26), it runs on both"
    );

    // Both as one layer, with a library under lib/.
    let layer = package_json(
        &root,
        &[
            "--x86-64",
            "--no-build",
            "--layer",
            "fixture-tools",
            "--include",
            "lib",
        ],
    );
    let zip = lambda.join("layers/fixture-tools.zip");
    assert_eq!(PathBuf::from(layer[0]["path"].as_str().unwrap()), zip);
    let listing = unzip_listing(&zip);
    for (mode, name) in [
        ("-rwxr-xr-x", " bin/ext_layout_tool"),
        ("-rwxr-xr-x", " extensions/ext_layout_sidecar"),
        ("-rw-r--r--", " lib/libfixture.so.1"),
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(name)),
            "{name} with {mode} in\n{listing}"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(lambda.join("layers/fixture-tools.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["name"], "fixture-tools");
    assert_eq!(
        manifest["compatible_architectures"],
        serde_json::json!(["x86_64"])
    );
    assert_eq!(
        manifest["compatible_runtimes"],
        serde_json::json!(["provided.al2023"]),
        "ext_layout_tool is pinned to glibc 2.34, so the layer needs provided.al2023"
    );
    assert_eq!(manifest["code_sha256"], layer[0]["code_sha256"]);
}
