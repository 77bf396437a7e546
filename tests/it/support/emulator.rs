//! The emulator as the tests drive it: the fixture functions, function
//! specs, a log collector, an unmodified aws-sdk-lambda client, and raw
//! HTTP for what the SDK never sends.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_lambda::Client;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::LogType;
use base64::Engine;
use cargo_fn::emulator::{Emulator, EmulatorOptions, FunctionSpec, LogLine, LogSink};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use super::shared_target_dir;

/// The fixture functions, built once per test run into the shared target dir.
pub fn fixture(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let manifest =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/functions/Cargo.toml");
        let status = std::process::Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(&manifest)
            .arg("--target-dir")
            .arg(shared_target_dir())
            .status()
            .expect("running cargo for the fixture functions");
        assert!(status.success(), "building the fixture functions failed");
        shared_target_dir().join("debug")
    });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "fixture `{name}` missing at {}",
        path.display()
    );
    path
}

/// Collects every log line, for assertions on START/END/REPORT.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<String>>>);

impl Logs {
    pub fn sink(&self) -> LogSink {
        let lines = self.0.clone();
        Arc::new(move |l: LogLine<'_>| {
            lines
                .lock()
                .unwrap()
                .push(format!("{}#{} {}", l.function, l.environment, l.text));
        })
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// The count once it reaches `n` (or after 10 s): END, REPORT and XRAY
    /// follow the answer of a caller that did not ask for the log.
    pub async fn count_when(&self, needle: &str, n: usize) -> usize {
        let until = Instant::now() + Duration::from_secs(10);
        while self.count(needle) < n && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.count(needle)
    }
}

pub fn options(logs: &Logs) -> EmulatorOptions {
    EmulatorOptions {
        bind: "127.0.0.1:0".parse().unwrap(),
        log_sink: logs.sink(),
        ..EmulatorOptions::default()
    }
}

pub fn spec(name: &str, fixture_name: &str) -> FunctionSpec {
    let mut s = FunctionSpec::new(name, fixture(fixture_name));
    s.timeout = Duration::from_secs(10);
    s
}

pub async fn start(specs: Vec<FunctionSpec>) -> (Emulator, Client, Logs) {
    let logs = Logs::default();
    let emu = Emulator::start(options(&logs), specs)
        .await
        .expect("emulator starts");
    let client = lambda_client(&emu.endpoint());
    (emu, client, logs)
}

/// An unmodified SDK client pointed at the emulator.
pub fn lambda_client(endpoint: &str) -> Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "AKIDLOCALTEST",
            "local-test-secret",
            None,
            None,
            "tests",
        ))
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(conf)
}

pub struct Invoked {
    pub status: i32,
    pub body: Value,
    pub function_error: Option<String>,
    pub log: String,
    pub executed_version: Option<String>,
}

pub async fn invoke(client: &Client, function: &str, payload: Value) -> Invoked {
    let out = client
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload.to_string()))
        .log_type(LogType::Tail)
        .send()
        .await
        .expect("invoke succeeds at the API level");
    let raw = out
        .payload()
        .map(|b| b.as_ref().to_vec())
        .unwrap_or_default();
    let log = out
        .log_result()
        .map(|l| {
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(l).unwrap()).unwrap()
        })
        .unwrap_or_default();
    Invoked {
        status: out.status_code(),
        body: serde_json::from_slice(&raw).unwrap_or(Value::Null),
        function_error: out.function_error().map(str::to_string),
        log,
        executed_version: out.executed_version().map(str::to_string),
    }
}

/// A raw HTTP request: (status, headers, body).
pub async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, hyper::HeaderMap, Vec<u8>) {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(bytes::Bytes::from(body))).unwrap())
        .await
        .expect("http request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// A "runtime" the test drives by hand: the relay fixture, inside the
/// environment (the emulator admits only the environment's own processes),
/// writes the address it relays from to a file, so the test can speak the
/// Runtime API itself through it.
pub fn manual_runtime(dir: &Path) -> FunctionSpec {
    let mut s = FunctionSpec::new("manual", fixture("relay"));
    s.working_dir = Some(dir.to_path_buf());
    s.timeout = Duration::from_secs(30);
    s
}

pub async fn runtime_api_addr(dir: &Path) -> String {
    let file = dir.join("runtime-api");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = std::fs::read_to_string(&file) {
            return s.trim().to_string();
        }
        assert!(Instant::now() < until, "runtime never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Like [`http`], but a failed connection is an answer too (`Err`).
pub async fn try_http(method: &str, url: &str, body: Vec<u8>) -> Result<(u16, Vec<u8>), String> {
    try_http_with(method, url, &[], body).await
}

/// [`try_http`] with headers.
pub async fn try_http_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Result<(u16, Vec<u8>), String> {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(bytes::Bytes::from(body))).unwrap();
    let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok((status, body))
}

/// One event as the `poller` fixture saw it.
#[derive(Debug, Clone)]
pub struct Polled {
    /// The event's size as the poller sent it.
    pub bytes: usize,
    pub records: usize,
    /// The function's own ARN (its invocation context).
    pub arn: String,
    /// The first record's `awsRegion` and `eventSourceARN`.
    pub region: String,
    pub source: String,
}

/// The `POLLED ...` lines of the `poller` fixture, in order.
pub fn polled(logs: &Logs) -> Vec<Polled> {
    logs.lines()
        .iter()
        .filter_map(|l| l.split_once("POLLED ").map(|(_, rest)| rest.to_string()))
        .map(|rest| {
            let field = |k: &str| {
                rest.split(' ')
                    .find_map(|p| p.strip_prefix(&format!("{k}=")))
                    .unwrap_or_default()
                    .to_string()
            };
            Polled {
                bytes: field("bytes").parse().unwrap(),
                records: field("records").parse().unwrap(),
                arn: field("arn"),
                region: field("region"),
                source: field("source"),
            }
        })
        .collect()
}

/// Lambda's synchronous payload limit: an event is smaller than 6,291,556 bytes.
pub const MAX_EVENT: usize = 6_291_555;

/// `Duration: N ms` of a REPORT line.
pub fn report_field(log: &str, field: &str) -> Option<f64> {
    let report = log.lines().find(|l| l.starts_with("REPORT "))?;
    let rest = report.split(&format!("{field}: ")).nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}
