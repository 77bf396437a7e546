//! Test harness for deploy: a moto server per test (fresh state, its own
//! free port on 127.0.0.1) and a small counting, fault-injecting HTTP proxy
//! between cargo-fn and moto (or LocalStack: tests/it/support/doubles.rs).
//!
//! The proxy handles one request per connection (it answers with
//! `Connection: close`), records each call as `METHOD /path` (Lambda's REST
//! API) or `iam:Action` / `cloudwatch:Action` (query APIs), and can answer chosen calls with an
//! AWS-shaped error or drop the connection without an answer.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The dev tools dir filled by `cargo xtask setup` (also used by
/// `cargo xtask bench`, which includes this file).
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_FN_DEV_TOOLS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/cargo-fn-dev")
}

/// A running moto server; killed on drop.
pub struct Moto {
    child: Child,
    pub port: u16,
}

/// A free port on 127.0.0.1 (free when asked: bind it soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .unwrap()
        .port()
}

impl Moto {
    /// Starts moto_server from the tools venv; panics loudly if missing.
    pub fn start() -> Moto {
        Moto::start_with_env(&[])
    }

    /// [`Moto::start`] with extra environment for the server (its
    /// settings, e.g. `MOTO_LAMBDA_STUB_ECR=false`).
    pub fn start_with_env(env: &[(&str, &str)]) -> Moto {
        let bin: PathBuf = tools_dir().join("venv/bin/moto_server");
        assert!(
            bin.exists(),
            "moto_server is not installed at {}: run `cargo xtask setup`",
            bin.display()
        );
        for _ in 0..3 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start moto_server");
            let mut moto = Moto { child, port };
            if moto.wait_ready(Duration::from_secs(30)) {
                let (status, _) = http(
                    port,
                    "POST",
                    "/moto-api/config",
                    br#"{"lambda":{"use_docker":false}}"#,
                );
                assert!((200..300).contains(&status), "moto config: HTTP {status}");
                return moto;
            }
            let _ = moto.child.kill();
        }
        panic!("moto_server did not start");
    }

    fn wait_ready(&mut self, limit: Duration) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let (status, _) = http(self.port, "GET", "/moto-api/data.json", b"");
                if status == 200 {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A one-shot HTTP/1.1 request; returns the status and the body.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http_as(port, "lambda", method, path, body)
}

/// A one-shot request to moto for `service` (e.g. `s3`).
pub fn http_as(port: u16, service: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    http_with(
        port,
        service,
        method,
        path,
        &[("Content-Type", "application/json")],
        body,
    )
}

/// A JSON-protocol call (`X-Amz-Target`), e.g. `Logs_20140328.PutLogEvents`.
pub fn json_call(
    port: u16,
    service: &str,
    target: &str,
    body: &serde_json::Value,
) -> (u16, Vec<u8>) {
    http_with(
        port,
        service,
        "POST",
        "/",
        &[
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", target),
        ],
        body.to_string().as_bytes(),
    )
}

/// A query-API call (IAM, CloudWatch): a form-encoded POST to `/`.
pub fn http_form(port: u16, service: &str, body: &str) -> (u16, Vec<u8>) {
    http_with(
        port,
        service,
        "POST",
        "/",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
}

/// A one-shot request to moto for `service` with the given headers (JSON
/// 1.x services need `X-Amz-Target`, query services a form body).
pub fn http_with(
    port: u16,
    service: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, Vec::new());
    };
    // moto routes by the service in the credential scope; the signature
    // itself is not checked.
    let auth = if path.starts_with("/moto-api") {
        String::new()
    } else {
        format!(
            "Authorization: AWS4-HMAC-SHA256 Credential=AKIATESTINGKEYID0000/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n"
        )
    };
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Content-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).is_err() || s.write_all(body).is_err() {
        return (0, Vec::new());
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let status = std::str::from_utf8(&out[..out.len().min(12)])
        .ok()
        .and_then(|l| l.get(9..12))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = match find(&out, b"\r\n\r\n") {
        Some(i) => out[i + 4..].to_vec(),
        None => Vec::new(),
    };
    (status, body)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// What the proxy does to a matching call.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Close the connection without answering (after reading the request).
    Drop,
    /// Forward to moto, then close without passing the answer on.
    DropAfterForward,
    /// Answer with this status and AWS error code.
    Error(u16, &'static str),
    /// Answer 200 with this extra header (`name`, `value`) and JSON body,
    /// without forwarding: e.g. an Invoke whose function failed
    /// (`X-Amz-Function-Error`), which moto cannot produce without Docker.
    Answer(&'static str, &'static str, &'static str),
    /// Run this first (e.g. someone else's write, straight to the double),
    /// then forward the call.
    Before(Hook),
    /// Forward, then change the JSON body of the answer before passing it
    /// on: what AWS keeps and the double drops (e.g. a DurableConfig).
    Patch(Patch),
}

/// A change [`FaultAction::Patch`] makes to an answer's JSON body.
#[derive(Clone)]
pub struct Patch(pub Arc<dyn Fn(&mut serde_json::Value) + Send + Sync>);

impl std::fmt::Debug for Patch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Patch")
    }
}

/// A step [`FaultAction::Before`] runs.
#[derive(Clone)]
pub struct Hook(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

#[derive(Debug, Clone)]
struct Fault {
    /// A substring of the call label, e.g. `POST /2015-03-31/functions/hello/versions`.
    matcher: String,
    action: FaultAction,
    remaining: u32,
}

#[derive(Default)]
struct ProxyState {
    calls: Vec<String>,
    /// Each call's label and request body, in order.
    bodies: Vec<(String, Vec<u8>)>,
    faults: Vec<Fault>,
}

/// The counting, fault-injecting proxy in front of moto.
pub struct Proxy {
    pub port: u16,
    state: Arc<Mutex<ProxyState>>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || handle(conn, upstream, &st));
            }
        });
        Proxy { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every call that reached the proxy so far.
    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn reset_calls(&self) {
        let mut st = self.state.lock().unwrap();
        st.calls.clear();
        st.bodies.clear();
    }

    /// The JSON bodies of the calls whose label equals `label` (e.g.
    /// `POST /2015-03-31/functions`), in order: what cargo-fn sent.
    pub fn json_bodies(&self, label: &str) -> Vec<serde_json::Value> {
        self.state
            .lock()
            .unwrap()
            .bodies
            .iter()
            .filter(|(l, _)| l == label)
            .map(|(_, b)| serde_json::from_slice(b).unwrap_or(serde_json::Value::Null))
            .collect()
    }

    /// Calls that change something (not GET, not an IAM Get/List).
    pub fn writes(&self) -> Vec<String> {
        self.calls().into_iter().filter(|c| !is_read(c)).collect()
    }

    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Applies `action` to the next `times` calls whose label contains
    /// `matcher` (or equals it, when it starts with `=`).
    pub fn inject(&self, matcher: &str, action: FaultAction, times: u32) {
        self.state.lock().unwrap().faults.push(Fault {
            matcher: matcher.to_string(),
            action,
            remaining: times,
        });
    }
}

pub fn is_read(label: &str) -> bool {
    label.starts_with("GET ")
        || label.starts_with("iam:Get")
        || label.starts_with("iam:List")
        || label.starts_with("ecr:Describe")
        || label.starts_with("ecr:Get")
        || label.starts_with("cloudwatch:Describe")
        || label.starts_with("cloudwatch:Get")
}

pub fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some((head, buf))
}

fn label(head: &str, body: &[u8]) -> String {
    let first = head.lines().next().unwrap_or_default();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default();
    let target = parts.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    // JSON 1.1 services (ECR) name the operation in X-Amz-Target.
    if let Some(op) = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("x-amz-target")
            .then(|| v.trim().rsplit('.').next().unwrap_or_default().to_string())
    }) {
        return format!("ecr:{op}");
    }
    if path == "/" {
        let body = String::from_utf8_lossy(body);
        if let Some(action) = body.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
            // Query APIs: IAM, or CloudWatch (`monitoring` in the scope).
            let service = if head.contains("/monitoring/aws4_request") {
                "cloudwatch"
            } else {
                "iam"
            };
            return format!("{service}:{action}");
        }
    }
    format!("{method} {path}")
}

fn handle(mut conn: TcpStream, upstream: u16, state: &Mutex<ProxyState>) {
    let Some((head, raw)) = read_request(&mut conn) else {
        return;
    };
    let head_len = head.len();
    let label = label(&head, &raw[head_len..]);
    let action = {
        let mut st = state.lock().unwrap();
        st.calls.push(label.clone());
        st.bodies.push((label.clone(), raw[head_len..].to_vec()));
        let hit = st.faults.iter_mut().find(|f| {
            f.remaining > 0
                && match f.matcher.strip_prefix('=') {
                    Some(exact) => label == exact,
                    None => label.contains(&f.matcher),
                }
        });
        hit.map(|f| {
            f.remaining -= 1;
            f.action.clone()
        })
    };
    match action {
        Some(FaultAction::Drop) => {
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        Some(FaultAction::Error(status, code)) => {
            let body =
                format!(r#"{{"Type":"User","message":"injected by the test proxy: {code}"}}"#);
            let reason = match status {
                409 => "Conflict",
                412 => "Precondition Failed",
                429 => "Too Many Requests",
                500 => "Internal Server Error",
                _ => "Error",
            };
            let resp = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nx-amzn-ErrorType: {code}\r\nx-amzn-RequestId: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes());
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        Some(FaultAction::Before(Hook(ref f))) => f(),
        Some(FaultAction::Answer(name, value, body)) => {
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{name}: {value}\r\nx-amzn-RequestId: test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(resp.as_bytes());
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
        _ => {}
    }
    // Forward with Connection: close, so the answer ends at EOF.
    let mut new_head = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if i > 0 && line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        if line.is_empty() {
            continue;
        }
        new_head.push_str(line);
        new_head.push_str("\r\n");
    }
    new_head.push_str("Connection: close\r\n\r\n");
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    if up.write_all(new_head.as_bytes()).is_err() || up.write_all(&raw[head_len..]).is_err() {
        return;
    }
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    if matches!(action, Some(FaultAction::DropAfterForward)) {
        let _ = conn.shutdown(Shutdown::Both);
        return;
    }
    if let Some(FaultAction::Patch(Patch(ref f))) = action {
        resp = patched(&resp, f.as_ref());
    }
    let _ = conn.write_all(&resp);
    let _ = conn.shutdown(Shutdown::Write);
}

/// `resp` (a whole HTTP/1.1 answer with a Content-Length) with `f` applied
/// to its JSON body and the length fixed; unchanged when not JSON.
fn patched(resp: &[u8], f: &(dyn Fn(&mut serde_json::Value) + Send + Sync)) -> Vec<u8> {
    let Some(i) = find(resp, b"\r\n\r\n") else {
        return resp.to_vec();
    };
    let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(&resp[i + 4..]) else {
        return resp.to_vec();
    };
    f(&mut body);
    let body = serde_json::to_vec(&body).unwrap();
    let mut head = String::new();
    for line in String::from_utf8_lossy(&resp[..i]).split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("content-length:") {
            head.push_str(line);
            head.push_str("\r\n");
        }
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// moto plus the proxy in front of it.
pub struct Aws {
    pub moto: Moto,
    pub proxy: Proxy,
}

impl Aws {
    pub fn start() -> Aws {
        Aws::start_with_env(&[])
    }

    /// moto (with extra server environment) plus the proxy.
    pub fn start_with_env(env: &[(&str, &str)]) -> Aws {
        let moto = Moto::start_with_env(env);
        let proxy = Proxy::start(moto.port);
        Aws { moto, proxy }
    }

    /// The environment cargo-fn gets: fake credentials, the region, the
    /// proxy as endpoint, no shared files, no instance metadata.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        client_env(self.proxy.url())
    }

    /// A raw GET straight to moto (bypassing the proxy and its counters).
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = http(self.moto.port, "GET", path, b"");
        // moto answers some reads (GetAlias) with 201.
        assert!(
            (200..300).contains(&status),
            "GET {path}: HTTP {status} {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("JSON")
    }
}

/// The environment cargo-fn gets to talk to a double at `endpoint`: fake
/// credentials, the region, no shared files, no instance metadata.
pub fn client_env(endpoint: String) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "AKIATESTINGKEYID0000".into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_CONFIG_FILE", "/nonexistent/aws-config".into()),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials".into(),
        ),
    ]
}

/// A secret key value that must never show up in any output.
pub const SECRET_KEY: &str = "tEsTsEcReT/never+printed/0123456789abcdef";
