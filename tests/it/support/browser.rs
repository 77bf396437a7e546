//! A real headless Chromium (Debian package `chromium`) and a minimal
//! DevTools protocol client on one of its pages: what the dashboard tests
//! and `cargo xtask bench --only dashboard` (which includes this file) drive
//! the page with. Depends on tokio, tokio-tungstenite, futures-util,
//! serde_json and tempfile only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// Headless Chromium with a fresh profile; killed on drop.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    port: u16,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> PathBuf {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("chromium is not installed: run `cargo xtask setup` (Debian package `chromium`)");
}

impl Browser {
    /// Starts Chromium on `url`.
    pub fn open(url: &str) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--window-size=1280,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Chromium writes the port it picked into the profile.
        let file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&file)
                .ok()
                .and_then(|t| t.lines().next().and_then(|l| l.parse().ok()))
            {
                break port;
            }
            assert!(
                Instant::now() < deadline,
                "chromium did not open its DevTools port"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Browser {
            child,
            _profile: profile,
            port,
        }
    }

    /// The DevTools targets (`GET /json/list` on loopback; Chromium answers
    /// HTTP/1.1 only and keeps the connection open: read Content-Length).
    async fn targets(&self) -> Value {
        let read = async {
            let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
            // The page's WebSocket URL is built from the Host header.
            let request = format!(
                "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
                self.port
            );
            stream.write_all(request.as_bytes()).await?;
            let mut data = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok::<_, std::io::Error>(None);
                }
                data.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&data);
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let length = head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                });
                if length.is_some_and(|n| body.len() >= n) {
                    return Ok(serde_json::from_str(body).ok());
                }
            }
        };
        match tokio::time::timeout(Duration::from_secs(5), read).await {
            Ok(Ok(Some(v))) => v,
            _ => Value::Null,
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A minimal DevTools protocol client on one page.
pub struct Page {
    ws: Socket,
    next_id: u64,
}

impl Page {
    /// The page whose URL contains `url_part`, once Chromium lists it.
    pub async fn attach(browser: &Browser, url_part: &str) -> Page {
        let deadline = Instant::now() + Duration::from_secs(60);
        let ws_url = loop {
            let targets = browser.targets().await;
            let page = targets.as_array().and_then(|t| {
                t.iter()
                    .find(|t| {
                        t["type"] == "page" && t["url"].as_str().unwrap_or("").contains(url_part)
                    })
                    .and_then(|t| t["webSocketDebuggerUrl"].as_str().map(str::to_string))
            });
            if let Some(url) = page {
                break url;
            }
            assert!(Instant::now() < deadline, "no page target: {targets}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .unwrap();
        Page { ws, next_id: 1 }
    }

    /// One DevTools method call; its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
        loop {
            let msg = self.ws.next().await.expect("devtools socket open").unwrap();
            let Message::Text(text) = msg else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// The value of a JavaScript expression (promises awaited).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expression}: {r}");
        r["result"]["value"].clone()
    }

    /// Evaluates until the value is truthy (generous bound, no timing claim).
    pub async fn wait_for(&mut self, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.eval(expression).await;
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            assert!(Instant::now() < deadline, "{what}: never happened");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
