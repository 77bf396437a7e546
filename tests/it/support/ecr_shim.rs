//! What ECR does when a push completes, for tests and benchmarks against
//! moto (which answers ECR's control plane but is not an OCI registry): a
//! shim in front of a real registry (`docker-registry`) that forwards every
//! request, records `METHOD /path`, and registers each stored manifest in
//! moto's ECR with PutImage, where moto's Lambda finds it when started
//! with `MOTO_LAMBDA_STUB_ECR=false`. Test code only: cargo-fn never calls
//! PutImage.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::moto::read_request;

/// moto's ECR token for the default account is base64 of `AWS:<this>`.
pub const MOTO_PASSWORD: &str = "123456789012-auth-token";

/// The registry shim: forwards to the registry, records `METHOD /path`,
/// and registers pushed manifests in moto's ECR.
pub struct Shim {
    port: u16,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Shim {
    pub fn start(registry: &str, moto_port: u16) -> Shim {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let (c, registry) = (calls.clone(), registry.to_string());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (c, registry) = (c.clone(), registry.clone());
                std::thread::spawn(move || shim_one(conn, &registry, moto_port, &c));
            }
        });
        Shim { port, calls }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    pub fn reset(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// Blob uploads that carried bytes (monolithic PUT or chunk PATCH).
    pub fn blob_uploads(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| {
                (c.starts_with("PUT ") || c.starts_with("PATCH ")) && c.contains("/blobs/uploads/")
            })
            .count()
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn shim_one(mut conn: TcpStream, registry: &str, moto_port: u16, calls: &Mutex<Vec<String>>) {
    let Some((head, raw)) = read_request(&mut conn) else {
        return;
    };
    assert!(
        header(&head, "transfer-encoding").is_none(),
        "the shim only relays requests with a Content-Length"
    );
    let body = &raw[head.len()..];
    let first = head.lines().next().unwrap_or_default().to_string();
    let mut parts = first.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = target.split('?').next().unwrap_or_default().to_string();
    calls.lock().unwrap().push(format!("{method} {path}"));
    let mut new_head = String::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            new_head.push_str(line);
            new_head.push_str("\r\n");
        }
    }
    new_head.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(registry).expect("registry reachable");
    up.write_all(new_head.as_bytes()).unwrap();
    up.write_all(body).unwrap();
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    let status = std::str::from_utf8(&resp[..resp.len().min(12)])
        .ok()
        .and_then(|l| l.get(9..12))
        .unwrap_or_default()
        .to_string();
    // What ECR does once a manifest is stored: the image exists in ECR.
    if method == "PUT" && path.contains("/manifests/") && status == "201" {
        let rest = path.trim_start_matches("/v2/");
        let (repo, tag) = rest.split_once("/manifests/").unwrap();
        let digest = cargo_fn::image::sha256_digest(body);
        let media = header(&head, "content-type").unwrap_or_default();
        let out = ecr(
            moto_port,
            "PutImage",
            &json!({
                "repositoryName": repo,
                "imageManifest": String::from_utf8_lossy(body),
                "imageManifestMediaType": media,
                "imageTag": tag,
                "imageDigest": digest,
            }),
        );
        assert_eq!(out["image"]["imageId"]["imageDigest"], digest, "{out}");
    }
    let _ = conn.write_all(&resp);
    let _ = conn.shutdown(Shutdown::Write);
}

/// One ECR JSON 1.1 call straight to moto (bypassing the counting proxy).
pub fn ecr(moto_port: u16, op: &str, body: &Value) -> Value {
    let body = body.to_string();
    let mut s = TcpStream::connect(("127.0.0.1", moto_port)).unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{moto_port}\r\nX-Amz-Target: AmazonEC2ContainerRegistry_V20150921.{op}\r\nContent-Type: application/x-amz-json-1.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIATESTINGKEYID0000/20260101/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let (_, json) = text.split_once("\r\n\r\n").unwrap_or_default();
    serde_json::from_str(json).unwrap_or_else(|_| json!({ "raw": text }))
}
