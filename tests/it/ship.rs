//! `cargo fn watch --artifact` and `--image`: the emulator serves what
//! ships -- here the basic template's arm64 release bootstrap, on this
//! x86_64 machine through qemu-user -- and `cargo fn invoke` reaches it
//! through the Invoke API.

use std::path::Path;

use crate::support::fixtures::cargo_fn_in;
use crate::support::watch::CliWatch;
use crate::support::{cargo_fn, shared_target_dir, tempdir};

/// Command lines of every process whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(raw) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

fn invoke(dir: &Path, function: &str, port: u16) -> String {
    let out = cargo_fn_in(dir)
        .args(["invoke", function, "--port", &port.to_string()])
        .args(["--data", r#"{"name":"qemu"}"#])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out).unwrap()
}

#[test]
fn arm64_artifact_and_image_are_served_under_qemu() {
    let tmp = tempdir();
    cargo_fn()
        .current_dir(tmp.path())
        .args(["new", "fn-ship", "--template", "basic", "--yes"])
        .assert()
        .success();
    let root = tmp.path().join("fn-ship");

    // The zip's bootstrap: built by `cargo fn build` for arm64, run by qemu
    // with Debian's arm64 libc as the loader root.
    let watch = CliWatch::start(&root, &["--artifact", "--arm64"]);
    let port = watch.port;
    let answer = invoke(&root, "fn-ship", port);
    assert!(answer.contains(r#"{"message":"Hello, qemu!"}"#), "{answer}");
    let runs = processes_with("fn-ship-0");
    assert!(
        runs.iter()
            .any(|c| c.contains("qemu-aarch64") && c.contains("-L /usr/aarch64-linux-gnu")),
        "the function is not the arm64 artifact under qemu: {runs:?}"
    );
    let report = cargo_fn::artifact::check_file(
        &shared_target_dir().join("lambda/fn-ship/bootstrap"),
        cargo_fn::config::Arch::Arm64,
        cargo_fn::config::Runtime::ProvidedAl2023,
    );
    assert!(report.is_ok(), "{report:?}");

    // Hot reload rebuilds the artifact, not a host binary.
    let main_rs = root.join("src/main.rs");
    let src = std::fs::read_to_string(&main_rs).unwrap();
    std::fs::write(
        &main_rs,
        src.replace(r#""{}, {}!""#, r#""{} from arm64, {}!""#),
    )
    .unwrap();
    watch.wait_for_line("Reloaded");
    let answer = invoke(&root, "fn-ship", port);
    assert!(
        answer.contains(r#"{"message":"Hello from arm64, qemu!"}"#),
        "{answer}"
    );
    assert!(
        processes_with("fn-ship-1")
            .iter()
            .any(|c| c.contains("qemu-aarch64")),
        "generation 1 is not the arm64 artifact under qemu"
    );
    watch.stop();
    assert!(
        processes_with("fn-ship-1").is_empty(),
        "a function process outlived watch"
    );

    // The image: unpacked, its own loader and libraries, under qemu.
    let watch = CliWatch::start(&root, &["--image", "--arm64"]);
    let port = watch.port;
    let answer = invoke(&root, "fn-ship", port);
    assert!(
        answer.contains(r#"{"message":"Hello from arm64, qemu!"}"#),
        "{answer}"
    );
    let runs = processes_with("rootfs");
    assert!(
        runs.iter()
            .any(|c| c.contains("qemu-aarch64")
                && c.contains("fn-ship-0/rootfs/var/runtime/bootstrap")),
        "the function is not the unpacked image under qemu: {runs:?}"
    );
    watch.stop();
}
