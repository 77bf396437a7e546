//! OCI images without Docker, checked with real tools: skopeo and umoci read
//! the layout, the unpacked bootstrap runs (chrooted into the image's root
//! filesystem) and answers an invocation, and a real registry
//! (`docker-registry`) receives the push.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cargo_fn::image::Platform;
use cargo_fn::image::registry::{Credentials, Reference, Registry};
use cargo_fn::image::{self, BOOTSTRAP_PATH, ImageSpec};

use crate::support::fixtures::{build_image_fixture, image_fixture_dir, static_bootstrap};
use crate::support::registry::LocalRegistry;
use crate::support::{run_ok, tempdir, tool};

fn dynamic_bootstrap() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| build_image_fixture(None))
}

fn spec(bootstrap: &Path) -> ImageSpec {
    ImageSpec {
        arch: Platform::Amd64,
        bootstrap: bootstrap.to_path_buf(),
        files: vec![],
        env: Default::default(),
        ca_certificates: false,
        tzdata: false,
        sysroot: None,
        base: None,
    }
}

/// A stand-in Runtime API: serves one event on `/next` and captures the
/// response the function posts back. Each answer says `Connection: close`: the socket is dropped after it, and
/// a runtime reusing it would race the close (ConnectionReset).
fn serve_one_invocation(listener: TcpListener) -> std::thread::JoinHandle<String> {
    use std::io::{BufRead, BufReader, Read, Write};
    std::thread::spawn(move || {
        let mut response_body = String::new();
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            if request_line.contains("/invocation/next") {
                let event = br#"{"hello":"image"}"#;
                let deadline = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    + 30_000;
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nConnection: close\r\nLambda-Runtime-Aws-Request-Id: req-1\r\nLambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:image-fn\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    event.len()
                )
                .unwrap();
                stream.write_all(event).unwrap();
            } else {
                response_body = String::from_utf8(body).unwrap();
                stream
                    .write_all(
                        b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}",
                    )
                    .unwrap();
                return response_body;
            }
        }
        response_body
    })
}

/// Starts `cmd` as a function process against a one-shot Runtime API and
/// returns the response it posted for one invocation.
fn answer_one_invocation(mut cmd: Command) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve_one_invocation(listener);
    cmd.env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "image-fn")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting the function");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server.is_finished() {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            panic!("the unpacked bootstrap exited ({status}) before answering: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "the unpacked bootstrap never answered"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    server.join().unwrap()
}

/// Runs the image's entrypoint inside its own root filesystem (chroot) and
/// returns the response it gave to one invocation.
fn invoke_unpacked(rootfs: &Path, entrypoint: &str, env: &[String]) -> String {
    let mut cmd = Command::new("chroot");
    cmd.arg(rootfs).arg(entrypoint).env_clear();
    for kv in env {
        let (k, v) = kv.split_once('=').unwrap();
        cmd.env(k, v);
    }
    answer_one_invocation(cmd)
}

fn unpack(layout: &Path, into: &Path) -> PathBuf {
    let bundle = into.join("bundle");
    run_ok(
        tool("umoci")
            .args(["unpack", "--rootless", "--image"])
            .arg(format!("{}:latest", layout.display()))
            .arg(&bundle),
    );
    bundle.join("rootfs")
}

fn image_config(layout: &Path) -> serde_json::Value {
    let out = run_ok(
        tool("skopeo")
            .args(["inspect", "--config"])
            .arg(format!("oci:{}:latest", layout.display())),
    );
    serde_json::from_str(&out).unwrap()
}

#[test]
fn static_image_is_read_by_skopeo_and_umoci_and_its_bootstrap_serves_an_invocation() {
    let out = tempdir();
    let built = image::build(&spec(static_bootstrap()), out.path()).unwrap();

    let config = image_config(&built.layout);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["Entrypoint"][0], BOOTSTRAP_PATH);
    assert_eq!(built.layers.len(), 1);

    // The archive form is readable too.
    let archived = run_ok(
        tool("skopeo")
            .arg("inspect")
            .arg(format!("oci-archive:{}", built.archive.display())),
    );
    let archived: serde_json::Value = serde_json::from_str(&archived).unwrap();
    assert_eq!(archived["Digest"], built.manifest.digest);

    let rootfs = unpack(&built.layout, out.path());
    let meta = std::fs::metadata(rootfs.join("var/runtime/bootstrap")).unwrap();
    assert!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0);
    let env: Vec<String> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let answer = invoke_unpacked(&rootfs, BOOTSTRAP_PATH, &env);
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["echo"]["hello"], "image");

    let dockerfile = std::fs::read_to_string(&built.dockerfile).unwrap();
    assert!(dockerfile.contains("FROM --platform=linux/amd64 scratch"));
    assert!(dockerfile.contains(&format!("ENTRYPOINT [\"{BOOTSTRAP_PATH}\"]")));
}

#[test]
fn same_inputs_give_the_same_digests() {
    let a = tempdir();
    let b = tempdir();
    let one = image::build(&spec(static_bootstrap()), a.path()).unwrap();
    let two = image::build(&spec(static_bootstrap()), b.path()).unwrap();
    assert_eq!(one.manifest, two.manifest);
    assert_eq!(one.layers, two.layers);
    assert_eq!(
        std::fs::read(&one.archive).unwrap(),
        std::fs::read(&two.archive).unwrap()
    );
}

#[test]
fn dynamic_bootstrap_on_scratch_carries_its_loader_and_libraries() {
    let out = tempdir();
    let mut s = spec(dynamic_bootstrap());
    s.sysroot = Some(PathBuf::from("/"));
    let built = image::build(&s, out.path()).unwrap();
    let config = image_config(&built.layout);
    let env: Vec<String> = config["config"]["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert!(env.iter().any(|e| e.starts_with("LD_LIBRARY_PATH=")));
    let rootfs = unpack(&built.layout, out.path());
    assert!(rootfs.join("var/runtime/lib/libc.so.6").is_file());
    // chroot: only what the image holds is there to run it.
    let answer = invoke_unpacked(&rootfs, BOOTSTRAP_PATH, &env);
    assert!(answer.contains("image-fn"), "{answer}");
}

#[test]
fn dynamic_bootstrap_without_base_or_sysroot_is_refused() {
    let out = tempdir();
    let err = image::build(&spec(dynamic_bootstrap()), out.path()).unwrap_err();
    assert!(format!("{err:#}").contains("--musl"), "{err:#}");
    assert!(!out.path().join("image").exists());
}

#[test]
fn architecture_mismatch_is_refused() {
    let out = tempdir();
    let mut s = spec(static_bootstrap());
    s.arch = Platform::Arm64;
    let err = format!("{:#}", image::build(&s, out.path()).unwrap_err());
    assert!(err.contains("arm64"), "{err}");
    assert!(err.contains("cargo fn build --arch arm64"), "{err}");
    assert!(!out.path().join("image").exists());
}

#[test]
fn missing_bootstrap_is_refused_and_the_previous_image_survives() {
    let out = tempdir();
    let good = image::build(&spec(static_bootstrap()), out.path()).unwrap();
    let mut s = spec(Path::new("/nonexistent/bootstrap"));
    s.arch = Platform::Amd64;
    let err = format!("{:#}", image::build(&s, out.path()).unwrap_err());
    assert!(err.contains("/nonexistent/bootstrap"), "{err}");
    let (desc, _) = image::read_layout(&out.path().join("image")).unwrap();
    assert_eq!(desc, good.manifest);
}

#[test]
fn push_to_a_real_registry_round_trips_and_skips_existing_blobs() {
    let registry = LocalRegistry::start(None);
    let out = tempdir();
    let built = image::build(&spec(static_bootstrap()), out.path()).unwrap();

    let mut client = Registry::new(&registry.addr, None, true);
    let bar = indicatif::ProgressBar::hidden();
    client.set_progress(bar.clone());
    let first = client.push_layout(&built.layout, "fn/hello", "v1").unwrap();
    assert_eq!(first.manifest_digest, built.manifest.digest);
    assert_eq!(first.uploaded.len(), 2, "layer and config uploaded");
    assert!(first.skipped.is_empty());
    let blob_bytes = built.layers[0].size + built.config.size;
    assert_eq!(bar.length(), Some(blob_bytes));
    assert_eq!(bar.position(), blob_bytes, "every byte sent was counted");

    let bar = indicatif::ProgressBar::hidden();
    client.set_progress(bar.clone());
    let second = client.push_layout(&built.layout, "fn/hello", "v2").unwrap();
    assert!(second.uploaded.is_empty(), "nothing uploaded again");
    assert_eq!(second.skipped.len(), 2);
    assert_eq!(
        bar.position(),
        blob_bytes,
        "blobs already there count as done"
    );

    // skopeo pulls it back: same manifest digest, same layer.
    let inspected = run_ok(
        tool("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{}/fn/hello:v1", registry.addr)),
    );
    let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(inspected["Digest"], built.manifest.digest);
    assert_eq!(inspected["Layers"][0], built.layers[0].digest);
    let pulled = out.path().join("pulled");
    run_ok(
        tool("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{}/fn/hello:v1", registry.addr))
            .arg(format!("oci:{}:latest", pulled.display())),
    );
    let (desc, _) = image::read_layout(&pulled).unwrap();
    assert_eq!(desc.digest, built.manifest.digest);
}

#[test]
fn large_layers_go_up_in_chunks() {
    let registry = LocalRegistry::start(None);
    let out = tempdir();
    // Incompressible data so the layer stays above the chunk size.
    let big = out.path().join("blob.bin");
    let mut data = vec![0u8; 12 * 1024 * 1024];
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(&big, &data).unwrap();
    let mut s = spec(static_bootstrap());
    s.files = vec![(big, "/var/task/blob.bin".into())];
    let built = image::build(&s, out.path().join("img").as_path()).unwrap();
    assert!(built.layers[0].size > image::registry::CHUNK_SIZE);
    let mut client = Registry::new(&registry.addr, None, true);
    let bar = indicatif::ProgressBar::hidden();
    client.set_progress(bar.clone());
    let report = client
        .push_layout(&built.layout, "fn/big", "latest")
        .unwrap();
    assert_eq!(report.manifest_digest, built.manifest.digest);
    assert_eq!(
        bar.position(),
        built.layers[0].size + built.config.size,
        "each chunk counted once"
    );
    let inspected = run_ok(
        tool("skopeo")
            .args(["inspect", "--tls-verify=false"])
            .arg(format!("docker://{}/fn/big:latest", registry.addr)),
    );
    assert!(inspected.contains(&built.layers[0].digest));
}

#[test]
fn registry_that_refuses_auth_gives_a_clear_error_and_nothing_is_tagged() {
    let registry = LocalRegistry::start(Some(("alice", "right-password")));
    let out = tempdir();
    let built = image::build(&spec(static_bootstrap()), out.path()).unwrap();

    let wrong = Credentials {
        username: "alice".into(),
        password: "wrong-password".into(),
    };
    let mut client = Registry::new(&registry.addr, Some(wrong), true);
    let err = format!(
        "{:#}",
        client
            .push_layout(&built.layout, "fn/secure", "v1")
            .unwrap_err()
    );
    assert!(err.contains("refused the credentials"), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");

    let right = Credentials {
        username: "alice".into(),
        password: "right-password".into(),
    };
    let mut client = Registry::new(&registry.addr, Some(right), true);
    let report = client
        .push_layout(&built.layout, "fn/secure", "v1")
        .unwrap();
    assert_eq!(report.manifest_digest, built.manifest.digest);
}

#[test]
fn builds_on_a_base_image_pulled_from_a_registry() {
    let registry = LocalRegistry::start(None);
    let work = tempdir();
    // Publish a "base" image: the static fixture plus an extra file.
    let extra = work.path().join("base.txt");
    std::fs::write(&extra, "from the base").unwrap();
    let mut base_spec = spec(static_bootstrap());
    base_spec.files = vec![(extra, "/etc/base.txt".into())];
    base_spec.env.insert("FROM_BASE".into(), "1".into());
    let base = image::build(&base_spec, &work.path().join("base")).unwrap();
    let mut client = Registry::new(&registry.addr, None, true);
    client
        .push_layout(&base.layout, "base/runtime", "1")
        .unwrap();

    let reference = Reference::parse(&format!("{}/base/runtime:1", registry.addr)).unwrap();
    let pulled = client
        .pull(&reference, Platform::Amd64, &work.path().join("pulled"))
        .unwrap();
    assert_eq!(pulled.layers, base.layers);

    let mut s = spec(static_bootstrap());
    s.base = Some(pulled);
    let built = image::build(&s, &work.path().join("app")).unwrap();
    assert_eq!(built.layers.len(), 2);
    let config = image_config(&built.layout);
    let env = config["config"]["Env"].to_string();
    assert!(env.contains("FROM_BASE=1"), "{env}");
    let rootfs = unpack(&built.layout, work.path());
    assert!(rootfs.join("etc/base.txt").is_file());
    assert!(rootfs.join("var/runtime/bootstrap").is_file());

    // A base for another architecture is refused.
    let err = format!(
        "{:#}",
        client
            .pull(&reference, Platform::Arm64, &work.path().join("wrong"))
            .unwrap_err()
    );
    assert!(err.contains("arm64"), "{err}");
}

/// Runs an unpacked image the way `cargo fn watch --image` does (no chroot,
/// no container engine) and returns its answer to one invocation.
fn invoke_without_chroot(unpacked: &image::UnpackedImage) -> String {
    let mut cmd = Command::new(&unpacked.command);
    cmd.args(&unpacked.args)
        .current_dir(&unpacked.working_dir)
        .env_clear()
        .envs(&unpacked.env);
    answer_one_invocation(cmd)
}

#[test]
fn unpacked_images_run_without_a_container_engine() {
    let work = tempdir();
    let built = image::build(&spec(static_bootstrap()), &work.path().join("static")).unwrap();
    let unpacked = image::unpack(&built.layout, &work.path().join("static-run")).unwrap();
    assert!(
        unpacked.args.is_empty(),
        "a static entrypoint runs directly"
    );
    assert!(invoke_without_chroot(&unpacked).contains("image-fn"));

    let mut s = spec(dynamic_bootstrap());
    s.sysroot = Some(PathBuf::from("/"));
    let built = image::build(&s, &work.path().join("dynamic")).unwrap();
    let unpacked = image::unpack(&built.layout, &work.path().join("dynamic-run")).unwrap();
    // The image's own loader runs the bootstrap with the image's libraries.
    assert!(unpacked.command.starts_with(&unpacked.rootfs));
    assert!(invoke_without_chroot(&unpacked).contains("image-fn"));
}

#[test]
fn cargo_fn_package_image_writes_layout_archive_and_dockerfile() {
    let target = tempdir();
    let out = crate::support::cargo_fn()
        .args(["package", "--image", "--output", "json", "--binary"])
        .arg(static_bootstrap())
        .arg("--manifest-path")
        .arg(image_fixture_dir().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target.path())
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let layout = PathBuf::from(v[0]["layout"].as_str().unwrap());
    assert_eq!(layout, target.path().join("lambda/image-fn/image"));
    assert!(target.path().join("lambda/image-fn/image.tar").is_file());
    assert!(target.path().join("lambda/image-fn/Dockerfile").is_file());
    assert!(target.path().join("lambda/image-fn/bootstrap").is_file());
    let config = image_config(&layout);
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(v[0]["manifest_digest"], {
        let (desc, _) = image::read_layout(&layout).unwrap();
        serde_json::Value::String(desc.digest)
    });

    // An x86_64 binary is refused for an arm64 image, and nothing is written.
    let other = tempdir();
    crate::support::cargo_fn()
        .args(["package", "--image", "--arm64", "--binary"])
        .arg(static_bootstrap())
        .arg("--manifest-path")
        .arg(image_fixture_dir().join("Cargo.toml"))
        .arg("--target-dir")
        .arg(other.path())
        .assert()
        .code(1)
        .stderr(predicates::str::contains("arm64"));
    assert!(!other.path().join("lambda/image-fn/image").exists());
}
