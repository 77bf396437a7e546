//! What the tests act on: copies of the fixture crates under
//! tests/fixtures, the fixture extensions and image function built once per
//! run, and `cargo fn` run in a project with the shared target dir.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use super::{cargo_fn, path_with_tools, shared_target_dir, tempdir};

/// Copies `tests/fixtures/<name>` into a temp dir and renames its package
/// to `package` (every mention in Cargo.toml, so binaries named after the
/// package follow): tests share one target dir, and unique names keep their
/// artifacts apart when they run in parallel.
pub fn fixture(name: &str, package: &str) -> (tempfile::TempDir, PathBuf) {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let dir = tempdir();
    let root = dir.path().join(package);
    copy_dir(&src, &root);
    let manifest = root.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let original = text
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("fixture package name")
        .to_string();
    std::fs::write(&manifest, text.replace(&original, package)).unwrap();
    (dir, root)
}

fn copy_dir(src: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let entry = entry.unwrap();
        let to = dest.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to);
        } else {
            std::fs::copy(entry.path(), &to).unwrap();
        }
    }
}

/// `cargo fn` in `dir` with the shared target dir and the test tools on PATH.
pub fn cargo_fn_in(dir: &Path) -> assert_cmd::Command {
    let mut cmd = cargo_fn();
    cmd.current_dir(dir)
        .env("PATH", path_with_tools())
        .arg("--target-dir")
        .arg(shared_target_dir());
    cmd
}

/// An extension of the fixture crate, built once per run, copied into `dir`
/// under its own name (an extension registers under its file name).
pub fn extension(name: &str, dir: &Path) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/extensions/Cargo.toml");
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(shared_target_dir())
            .status()
            .expect("running cargo for the fixture extensions");
        assert!(status.success(), "building the fixture extensions failed");
        // A private copy: the watch test rebuilds the same binaries (from a
        // copy of the crate) into the same target dir.
        let debug = shared_target_dir().join("debug");
        let private = shared_target_dir().join("fixture-extensions-bin");
        std::fs::create_dir_all(&private).unwrap();
        for name in ["recorder", "telemetry", "logs"] {
            let tmp = private.join(format!("{name}.{}.tmp", std::process::id()));
            std::fs::copy(debug.join(name), &tmp).expect("copy the fixture extension");
            std::fs::rename(&tmp, private.join(name)).unwrap();
        }
        private
    });
    let exts = dir.join("extensions");
    std::fs::create_dir_all(&exts).unwrap();
    let to = exts.join(name);
    // Already there for a reload: it may be running (and so not writable).
    if !to.exists() {
        std::fs::copy(built.join(name), &to).expect("copy the fixture extension");
    }
    to
}

pub fn image_fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/image-fn")
}

/// Builds the fixture function once per test run for `target` (None = host).
pub fn build_image_fixture(target: Option<&str>) -> PathBuf {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(image_fixture_dir().join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", shared_target_dir());
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let status = cmd.status().expect("running cargo");
    assert!(status.success(), "building the image fixture failed");
    let mut path = shared_target_dir();
    if let Some(t) = target {
        path.push(t);
    }
    path.join("release/image-fn")
}

pub fn static_bootstrap() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| build_image_fixture(Some("x86_64-unknown-linux-musl")))
}
