//! Response streaming end to end: a lambda_runtime `StreamResponse` handler
//! (fixture `chunks`) and a hand-driven runtime sending real HTTP trailers,
//! read through a real HTTP client from the function URL front
//! (RESPONSE_STREAM) and from `InvokeWithResponseStream` (event-stream
//! frames decoded here, checksums checked). The fixture blocks after its
//! first chunk until the test creates a gate file, so "the first chunk
//! arrived before the handler finished" is asserted without any timing.

use std::time::Duration;

use bytes::Bytes;
use cargo_fn::emulator::{FunctionSpec, InvokeMode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::emulator::{http, manual_runtime, runtime_api_addr, spec, start};
use crate::support::watch::Watch;

/// Generous bound so a broken build fails instead of hanging; never the
/// thing asserted.
const HANG: Duration = Duration::from_secs(60);

fn streaming_spec(name: &str, fixture: &str) -> FunctionSpec {
    let mut s = spec(name, fixture);
    s.http.invoke_mode = InvokeMode::ResponseStream;
    s
}

async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> hyper::Response<Incoming> {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    tokio::time::timeout(HANG, client.request(req))
        .await
        .expect("response headers in time")
        .expect("http request")
}

/// Reads body frames until `buf` ends with `needle`.
async fn read_until(body: &mut Incoming, buf: &mut Vec<u8>, needle: &[u8]) {
    while !buf.ends_with(needle) {
        let frame = tokio::time::timeout(HANG, body.frame())
            .await
            .expect("a chunk in time")
            .unwrap_or_else(|| panic!("body ended early: {:?}", String::from_utf8_lossy(buf)))
            .expect("body frame");
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
}

/// The rest of a body, or the error that cut it.
async fn read_rest(body: &mut Incoming, buf: &mut Vec<u8>) -> Result<(), String> {
    loop {
        match tokio::time::timeout(HANG, body.frame())
            .await
            .expect("body in time")
        {
            None => return Ok(()),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// One event-stream message: its `:event-type` and payload.
#[derive(Debug)]
struct Event {
    kind: String,
    payload: Vec<u8>,
}

/// Decodes `application/vnd.amazon.eventstream` messages as they arrive.
struct Events {
    body: Incoming,
    buf: Vec<u8>,
}

impl Events {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.buf.len() >= 12 {
                let total = u32::from_be_bytes(self.buf[0..4].try_into().unwrap()) as usize;
                if self.buf.len() >= total {
                    let msg: Vec<u8> = self.buf.drain(..total).collect();
                    return Some(decode(&msg));
                }
            }
            let frame = tokio::time::timeout(HANG, self.body.frame())
                .await
                .expect("an event in time");
            match frame {
                None => {
                    assert!(self.buf.is_empty(), "stream ended inside a message");
                    return None;
                }
                Some(frame) => {
                    if let Ok(data) = frame.expect("event stream body").into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
            }
        }
    }

    /// Payload bytes until they end with `needle` (the chunk events
    /// before it), failing on any other event.
    async fn payload_until(&mut self, payload: &mut Vec<u8>, needle: &[u8]) {
        while !payload.ends_with(needle) {
            let e = self.next().await.expect("more events");
            assert_eq!(e.kind, "PayloadChunk", "{e:?}");
            payload.extend_from_slice(&e.payload);
        }
    }

    /// The remaining chunks and the closing `InvokeComplete` body.
    async fn finish(&mut self, payload: &mut Vec<u8>) -> Value {
        loop {
            let e = self.next().await.expect("InvokeComplete");
            match e.kind.as_str() {
                "PayloadChunk" => payload.extend_from_slice(&e.payload),
                "InvokeComplete" => {
                    assert!(self.next().await.is_none(), "nothing after InvokeComplete");
                    return serde_json::from_slice(&e.payload).unwrap();
                }
                other => panic!("unexpected event {other}"),
            }
        }
    }
}

fn decode(msg: &[u8]) -> Event {
    let total = msg.len();
    let headers_len = u32::from_be_bytes(msg[4..8].try_into().unwrap()) as usize;
    assert_eq!(
        u32::from_be_bytes(msg[8..12].try_into().unwrap()),
        crc32fast::hash(&msg[..8]),
        "prelude checksum"
    );
    assert_eq!(
        u32::from_be_bytes(msg[total - 4..].try_into().unwrap()),
        crc32fast::hash(&msg[..total - 4]),
        "message checksum"
    );
    let mut h = &msg[12..12 + headers_len];
    let mut kind = String::new();
    while !h.is_empty() {
        let n = h[0] as usize;
        let name = std::str::from_utf8(&h[1..1 + n]).unwrap().to_string();
        assert_eq!(h[1 + n], 7, "string header");
        let len = u16::from_be_bytes([h[2 + n], h[3 + n]]) as usize;
        let value = std::str::from_utf8(&h[4 + n..4 + n + len]).unwrap();
        if name == ":event-type" {
            kind = value.to_string();
        }
        h = &h[4 + n + len..];
    }
    Event {
        kind,
        payload: msg[12 + headers_len..total - 4].to_vec(),
    }
}

async fn event_stream(endpoint: &str, function: &str, payload: &Value) -> Events {
    let resp = send(
        "POST",
        &format!("{endpoint}/2021-11-15/functions/{function}/response-streaming-invocations"),
        &[("x-amz-log-type", "Tail")],
        &payload.to_string(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    Events {
        body: resp.into_body(),
        buf: Vec::new(),
    }
}

async fn wait_for_log(logs: &crate::support::emulator::Logs, needle: &str) {
    tokio::time::timeout(HANG, async {
        while logs.count(needle) == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `{needle}` in {:#?}", logs.lines()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn function_url_streams_the_first_chunk_before_the_handler_finishes() {
    let dir = crate::support::tempdir();
    let gate = dir.path().join("gate");
    let (emu, _client, logs) = start(vec![streaming_spec("chunks", "chunks")]).await;
    let url = format!(
        "{}/lambda-url/chunks/x?gate={}",
        emu.endpoint(),
        gate.display()
    );
    let resp = send("GET", &url, &[], "").await;
    // Status, headers and cookies come from the prelude.
    assert_eq!(resp.status(), 201);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["x-streamed"], "yes");
    assert_eq!(resp.headers()["set-cookie"], "s=1");
    let mut body = resp.into_body();
    let mut got = Vec::new();
    read_until(&mut body, &mut got, b"first\n").await;
    // The handler is still blocked on the gate: nothing else was sent and
    // the invocation has not ended.
    assert_eq!(got, b"first\n");
    assert!(!gate.exists());
    assert_eq!(logs.count("REPORT RequestId"), 0, "{:#?}", logs.lines());

    std::fs::write(&gate, b"").unwrap();
    read_rest(&mut body, &mut got)
        .await
        .expect("a complete body");
    assert_eq!(got, b"first\nsecond\nthird\n");
    wait_for_log(&logs, "REPORT RequestId").await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invoke_with_response_stream_emits_chunks_as_they_arrive() {
    let dir = crate::support::tempdir();
    let gate = dir.path().join("gate");
    let mut s = spec("chunks", "chunks");
    s.reserved_concurrency = Some(1);
    let (emu, _client, logs) = start(vec![s]).await;
    let mut events = event_stream(
        &emu.endpoint(),
        "chunks",
        &json!({"gate": gate.to_str().unwrap()}),
    )
    .await;
    let mut payload = Vec::new();
    events.payload_until(&mut payload, b"first\n").await;
    // The runtime's bytes unchanged: its HTTP prelude, 8 NULs, the chunk.
    let prelude_end = payload.windows(8).position(|w| w == [0; 8]).unwrap();
    let prelude: Value = serde_json::from_slice(&payload[..prelude_end]).unwrap();
    assert_eq!(prelude["statusCode"], 201);
    assert_eq!(&payload[prelude_end + 8..], b"first\n");
    assert!(!gate.exists());
    // The environment is busy until the stream ends: with a reserved
    // concurrency of 1, another invocation is throttled.
    let (status, headers, _) = http(
        "POST",
        &format!("{}/2015-03-31/functions/chunks/invocations", emu.endpoint()),
        &[],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(headers["x-amzn-errortype"], "TooManyRequestsException");
    assert_eq!(logs.count("REPORT RequestId"), 0);

    std::fs::write(&gate, b"").unwrap();
    let complete = events.finish(&mut payload).await;
    assert_eq!(&payload[prelude_end + 8..], b"first\nsecond\nthird\n");
    assert!(complete.get("ErrorCode").is_none(), "{complete}");
    // The log (Tail) ends with the REPORT written when the stream ended.
    let log = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        complete["LogResult"].as_str().unwrap(),
    )
    .unwrap();
    assert!(
        String::from_utf8_lossy(&log).contains("REPORT RequestId"),
        "{complete}"
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mid_stream_errors_from_the_rust_runtime() {
    let (emu, client, _logs) = start(vec![
        streaming_spec("chunks", "chunks"),
        spec("plain", "chunks"),
    ])
    .await;
    // Event stream: the chunk, then InvokeComplete with the error.
    let mut events = event_stream(&emu.endpoint(), "plain", &json!({"fail": true})).await;
    let mut payload = Vec::new();
    let complete = events.finish(&mut payload).await;
    assert!(payload.ends_with(b"first\n"));
    assert!(
        !String::from_utf8_lossy(&payload).contains("Lambda-Runtime-Function-Error"),
        "the in-body trailer is not payload"
    );
    assert_eq!(complete["ErrorCode"], "Runtime.StreamError", "{complete}");
    assert!(
        complete["ErrorDetails"]
            .as_str()
            .unwrap()
            .contains("aborted"),
        "{complete}"
    );

    // The same through the SDK's event-stream reader.
    use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent as Event;
    let mut out = client
        .invoke_with_response_stream()
        .function_name("plain")
        .payload(aws_sdk_lambda::primitives::Blob::new(r#"{"fail":1}"#))
        .send()
        .await
        .expect("InvokeWithResponseStream");
    let mut code = None;
    while let Some(e) = out.event_stream.recv().await.expect("valid event stream") {
        if let Event::InvokeComplete(c) = e {
            code = c.error_code().map(str::to_string);
        }
    }
    assert_eq!(code.as_deref(), Some("Runtime.StreamError"));

    // Function URL: headers were sent, so the body is cut short.
    let resp = send(
        "GET",
        &format!("{}/lambda-url/chunks/?fail=1", emu.endpoint()),
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status(), 201);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let cut = read_rest(&mut body, &mut got).await;
    assert_eq!(got, b"first\n");
    assert!(cut.is_err(), "the client must see an incomplete body");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_timeout_covers_the_whole_stream() {
    let dir = crate::support::tempdir();
    let mut s = spec("chunks", "chunks");
    s.timeout = Duration::from_secs(1);
    let (emu, _client, logs) = start(vec![s]).await;
    // The gate never opens.
    let gate = dir.path().join("never");
    let mut events = event_stream(
        &emu.endpoint(),
        "chunks",
        &json!({"gate": gate.to_str().unwrap()}),
    )
    .await;
    let mut payload = Vec::new();
    let complete = events.finish(&mut payload).await;
    assert!(payload.ends_with(b"first\n"));
    assert_eq!(complete["ErrorCode"], "Sandbox.Timedout", "{complete}");
    assert!(
        complete["ErrorDetails"]
            .as_str()
            .unwrap()
            .contains("Task timed out after 1.00 seconds")
    );
    wait_for_log(&logs, "Status: timeout").await;
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dry_run_on_the_streaming_route_does_not_invoke() {
    let (emu, _client, logs) = start(vec![spec("chunks", "chunks")]).await;
    let (status, _, body) = http(
        "POST",
        &format!(
            "{}/2021-11-15/functions/chunks/response-streaming-invocations",
            emu.endpoint()
        ),
        &[("x-amz-invocation-type", "DryRun")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 204);
    assert!(body.is_empty());
    let (status, headers, _) = http(
        "POST",
        &format!(
            "{}/2021-11-15/functions/chunks/response-streaming-invocations",
            emu.endpoint()
        ),
        &[("x-amz-invocation-type", "Event")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        headers["x-amzn-errortype"],
        "InvalidParameterValueException"
    );
    assert_eq!(logs.count("START RequestId"), 0);
    emu.shutdown().await;
}

/// Speaks HTTP/1.1 to the Runtime API by hand: a chunked streaming
/// `/response`, one chunk now, the rest (and real trailers) later.
struct RawResponse {
    stream: tokio::net::TcpStream,
}

impl RawResponse {
    async fn start(addr: &str, id: &str, content_type: &str, first: &[u8]) -> RawResponse {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {addr}\r\n\
             Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\
             Content-Type: {content_type}\r\n\
             Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut raw = RawResponse { stream };
        raw.chunk(first).await;
        raw
    }

    async fn chunk(&mut self, data: &[u8]) {
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.stream.write_all(&out).await.unwrap();
    }

    /// Ends the body (with trailers) and returns the Runtime API's status line.
    async fn end(mut self, trailers: &[(&str, &str)]) -> String {
        let mut out = String::from("0\r\n");
        for (k, v) in trailers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        out.push_str("\r\n");
        self.stream.write_all(out.as_bytes()).await.unwrap();
        let mut buf = vec![0; 1024];
        let n = tokio::time::timeout(HANG, self.stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }
}

async fn next_request_id(api: &str) -> String {
    let (status, headers, _) = http(
        "GET",
        &format!("http://{api}/2018-06-01/runtime/invocation/next"),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    headers["lambda-runtime-aws-request-id"]
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_http_trailers_and_plain_streams() {
    let dir = crate::support::tempdir();
    let mut s = manual_runtime(dir.path());
    s.http.invoke_mode = InvokeMode::ResponseStream;
    let (emu, _client, _logs) = start(vec![s]).await;

    // A plain stream (no prelude) behind a function URL: 200, the runtime's
    // content type, each chunk as it is written.
    let url = format!("{}/lambda-url/manual/", emu.endpoint());
    let client = tokio::spawn(async move { send("GET", &url, &[], "").await });
    let api = runtime_api_addr(dir.path()).await;
    let id = next_request_id(&api).await;
    let raw = RawResponse::start(&api, &id, "text/plain", b"hello ").await;
    let resp = client.await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    let mut body = resp.into_body();
    let mut got = Vec::new();
    read_until(&mut body, &mut got, b"hello ").await;
    let mut raw = raw;
    raw.chunk(b"world").await;
    assert_eq!(raw.end(&[]).await, "HTTP/1.1 202 Accepted");
    read_rest(&mut body, &mut got).await.expect("complete body");
    assert_eq!(got, b"hello world");

    // Real trailers end an event stream with their error.
    let endpoint = emu.endpoint();
    let events = tokio::spawn(async move {
        let mut events = event_stream(&endpoint, "manual", &json!({})).await;
        let mut payload = Vec::new();
        let complete = events.finish(&mut payload).await;
        (payload, complete)
    });
    let id = next_request_id(&api).await;
    let raw = RawResponse::start(&api, &id, "application/octet-stream", b"part").await;
    let body = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        r#"{"errorType":"Function.Boom","errorMessage":"went wrong"}"#,
    );
    let status = raw
        .end(&[
            ("Lambda-Runtime-Function-Error-Type", "Function.Boom"),
            ("Lambda-Runtime-Function-Error-Body", &body),
        ])
        .await;
    assert_eq!(status, "HTTP/1.1 202 Accepted");
    let (payload, complete) = events.await.unwrap();
    assert_eq!(payload, b"part");
    assert_eq!(complete["ErrorCode"], "Function.Boom", "{complete}");
    assert_eq!(complete["ErrorDetails"], "went wrong");
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_function_serves_other_paths() {
    let (emu, _client, _logs) = start(vec![spec("echo", "echo"), spec("other", "echo")]).await;
    let url = format!("{}/some/path?x=1", emu.endpoint());
    // Two functions and no default: not the HTTP front's.
    let (status, _, _) = http("GET", &url, &[], vec![]).await;
    assert_eq!(status, 404);
    let err = emu.set_default(Some("nope")).unwrap_err().to_string();
    assert!(err.contains("echo, other"), "{err}");

    emu.set_default(Some("other")).unwrap();
    let (status, _, body) = http("GET", &url, &[], vec![]).await;
    assert_eq!(status, 200);
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["rawPath"], "/some/path");
    assert_eq!(event["rawQueryString"], "x=1");
    // The named route still reaches any function.
    let (status, _, _) = http(
        "GET",
        &format!("{}/lambda-url/echo/", emu.endpoint()),
        &[],
        vec![],
    )
    .await;
    assert_eq!(status, 200);
    emu.set_default(None).unwrap();
    let (status, _, _) = http("GET", &url, &[], vec![]).await;
    assert_eq!(status, 404);
    emu.shutdown().await;
}

#[test]
fn watch_has_a_default_function_flag() {
    let out = crate::support::cargo_fn()
        .args(["watch", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("--default-function <NAME>"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lambda_http_streaming_handler_behind_a_response_stream_url() {
    let (emu, _client, _logs) = start(vec![streaming_spec("stream", "stream")]).await;
    let resp = send(
        "GET",
        &format!("{}/lambda-url/stream/a/b", emu.endpoint()),
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status(), 203);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["set-cookie"], "s=1");
    let mut body = resp.into_body();
    let mut got = Vec::new();
    read_rest(&mut body, &mut got).await.expect("complete body");
    assert_eq!(got, b"streamed /a/b");
    emu.shutdown().await;
}

/// A crate whose function is the `chunks` fixture, configured with
/// `function-url.invoke-mode = "RESPONSE_STREAM"`.
fn streaming_crate(dir: &std::path::Path) {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/functions");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        r#"[workspace]

[package]
name = "streamy"
version = "0.1.0"
edition = "2021"

[package.metadata.fn]
timeout = 30
function-url = { invoke-mode = "RESPONSE_STREAM" }

[dependencies]
lambda_http = "1.3"
lambda_runtime = "1.5"
serde_json = "1"
tokio = { version = "1", features = ["macros", "rt-multi-thread", "time"] }
"#,
    )
    .unwrap();
    std::fs::copy(fixtures.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    std::fs::copy(fixtures.join("src/bin/chunks.rs"), dir.join("src/main.rs")).unwrap();
}

fn watch_options(dir: &std::path::Path, default: Option<&str>) -> cargo_fn::watch::WatchOptions {
    cargo_fn::watch::WatchOptions {
        default_function: default.map(str::to_string),
        ..crate::support::watch::watch_options(dir, &crate::support::emulator::Logs::default())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_streams_response_stream_urls_and_serves_the_default_function() {
    let dir = crate::support::tempdir();
    let root = dir.path().join("streamy");
    streaming_crate(&root);

    // An unknown default function is refused, naming the flag.
    let err = cargo_fn::watch::run(
        watch_options(&root, Some("nope")),
        cargo_fn::ui::Ui::silent(),
        None,
        std::future::pending(),
    )
    .await
    .unwrap_err();
    let err = format!("{err:#}");
    assert!(err.contains("--default-function"), "{err}");
    assert!(err.contains("streamy"), "{err}");

    let watch = Watch::start(watch_options(&root, Some("streamy"))).await;
    let endpoint = watch.endpoint.clone();
    // Any path reaches the default function, streamed as configured.
    let gate = dir.path().join("gate");
    let resp = send(
        "GET",
        &format!("{endpoint}/any/path?gate={}", gate.display()),
        &[],
        "",
    )
    .await;
    assert_eq!(resp.status(), 201);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    read_until(&mut body, &mut got, b"first\n").await;
    assert!(!gate.exists());
    std::fs::write(&gate, b"").unwrap();
    read_rest(&mut body, &mut got).await.expect("complete body");
    assert_eq!(got, b"first\nsecond\nthird\n");
    watch.stop().await.unwrap();
}
