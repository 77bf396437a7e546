//! HTTP API triggers as local triggers: listed with their routes and local
//! URL, and fired (`cargo fn invoke --trigger`, the dashboard's "fire now")
//! by sending an HTTP request to the emulator's own address, so it goes
//! through the same route table as any client's request (the routes are
//! the emulator's, given by watch).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};

use super::{Context, Source};
use crate::config::triggers::HttpApiTrigger;

pub struct HttpApiSource {
    function: String,
    trigger: String,
    config: HttpApiTrigger,
    /// `http://127.0.0.1:9000`, the emulator's address.
    endpoint: String,
    ui: crate::ui::Ui,
}

/// Adds the HTTP API trigger `name` of `function` to the status and fire API.
pub fn start(cx: &Context, function: &str, name: &str, t: &HttpApiTrigger) {
    cx.triggers.add_source(Arc::new(HttpApiSource {
        function: function.to_string(),
        trigger: name.to_string(),
        config: t.clone(),
        endpoint: cx.endpoint.clone(),
        ui: cx.ui,
    }));
}

/// One request to send: method, path under the API (stage not included),
/// headers and body.
#[derive(Debug, PartialEq)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// The example request for a route key: `ANY` becomes `GET`, each
/// `{param}` or `{proxy+}` the word `example`, `$default` is `GET /`.
fn example(route_key: &str) -> Request {
    let (method, path) = route_key.split_once(' ').unwrap_or(("GET", "/"));
    let method = if method == "ANY" { "GET" } else { method };
    let path: Vec<&str> = path
        .split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "example"
            } else {
                seg
            }
        })
        .collect();
    Request {
        method: method.to_string(),
        path: path.join("/"),
        headers: Vec::new(),
        body: None,
    }
}

/// The request `payload` describes (`{"method", "path", "headers",
/// "body"}`, every key optional), over the example of the first route.
fn request(first_route: &str, payload: Option<Value>) -> anyhow::Result<Request> {
    let mut req = example(first_route);
    let Some(payload) = payload else {
        return Ok(req);
    };
    let Value::Object(map) = payload else {
        anyhow::bail!(
            "an http-api trigger takes a request: {{\"method\", \"path\", \"headers\", \"body\"}} (each optional), got {payload}"
        );
    };
    let mut json_body = None;
    for (key, value) in map {
        match (key.as_str(), value) {
            ("method", Value::String(m)) => req.method = m.to_ascii_uppercase(),
            ("path", Value::String(p)) if p.starts_with('/') => req.path = p,
            ("headers", Value::Object(h)) => {
                for (name, v) in h {
                    let v = match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    req.headers.push((name, v));
                }
            }
            ("body", body) => json_body = Some(body),
            (key, value) => anyhow::bail!(
                "`{key}`: {value} is not a request field (`method`: string, `path`: string starting with `/`, `headers`: object, `body`: string or JSON)"
            ),
        }
    }
    match json_body {
        None | Some(Value::Null) => {}
        Some(Value::String(b)) => req.body = Some(b),
        Some(other) => {
            let typed = req
                .headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
            if !typed {
                req.headers
                    .push(("content-type".into(), "application/json".into()));
            }
            req.body = Some(other.to_string());
        }
    }
    Ok(req)
}

impl HttpApiSource {
    /// The API's base URL: the root for `$default`, else `/<stage>`.
    fn base(&self) -> String {
        if self.config.stage == "$default" {
            self.endpoint.clone()
        } else {
            format!("{}/{}", self.endpoint, self.config.stage)
        }
    }
}

/// Sends `req` to `url` and returns the answer as JSON.
fn send(url: &str, req: &Request) -> anyhow::Result<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder()
        .method(req.method.as_str())
        .uri(url);
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    let request = builder.body(req.body.clone().unwrap_or_default())?;
    let mut resp = agent.run(request)?;
    let headers: Map<String, Value> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (k.to_string(), Value::String(v))
        })
        .collect();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
    let mut answer = json!({"statusCode": status, "headers": headers, "body": body});
    // The invocation the request made (the HTTP front names it), as the
    // other triggers' outcomes name theirs.
    if let Some(id) = answer["headers"].get("x-amzn-requestid").cloned() {
        answer["requestId"] = id;
    }
    Ok(answer)
}

impl Source for HttpApiSource {
    fn function(&self) -> &str {
        &self.function
    }

    fn trigger(&self) -> &str {
        &self.trigger
    }

    fn kind(&self) -> &'static str {
        "http-api"
    }

    fn status(&self) -> Value {
        json!({
            "routes": self.config.routes.join(", "),
            "url": format!("{}/", self.base()),
            "payload": self.config.payload_format,
        })
    }

    /// Sends one HTTP request to the API now (`payload`: the request;
    /// none: an example request for the first route).
    fn fire(&self, payload: Option<Value>) -> BoxFuture<'_, anyhow::Result<Value>> {
        Box::pin(async move {
            let first = self
                .config
                .routes
                .first()
                .map(String::as_str)
                .unwrap_or("$default");
            let req = request(first, payload)?;
            let url = format!("{}{}", self.base(), req.path);
            let line = format!("{} {}", req.method, req.path);
            let (answer, req) = tokio::task::spawn_blocking(move || (send(&url, &req), req))
                .await
                .map_err(|e| anyhow::anyhow!("sending the request failed: {e}"))?;
            let mut answer = answer.map_err(|e| anyhow::anyhow!("`{line}` was not sent: {e}"))?;
            self.ui.status(
                "Trigger",
                format!(
                    "[http-api:{}] fired now -> {} {} {}",
                    self.trigger, req.method, req.path, answer["statusCode"]
                ),
            );
            answer["request"] = Value::String(line);
            Ok(answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_request_follows_the_first_route() {
        assert_eq!(example("GET /items/{id}").path, "/items/example");
        assert_eq!(example("ANY /{proxy+}").method, "GET");
        assert_eq!(example("ANY /{proxy+}").path, "/example");
        let d = example("$default");
        assert_eq!((d.method.as_str(), d.path.as_str()), ("GET", "/"));
    }

    #[test]
    fn a_json_body_is_sent_as_json_and_bad_fields_are_named() {
        let req = request(
            "POST /orders",
            Some(json!({"path": "/orders?x=1", "body": {"n": 1}})),
        )
        .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.path, "/orders?x=1");
        assert_eq!(req.body.as_deref(), Some(r#"{"n":1}"#));
        assert_eq!(
            req.headers,
            vec![("content-type".to_string(), "application/json".to_string())]
        );
        let e = request("GET /", Some(json!({"path": "no-slash"}))).unwrap_err();
        assert!(e.to_string().contains("`path`"), "{e}");
        assert!(request("GET /", Some(json!([1]))).is_err());
    }
}
