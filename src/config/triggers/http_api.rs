//! The rules of an `http-api` trigger (API Gateway v2 HTTP APIs: routes,
//! payload format, stage, CORS).

use std::collections::BTreeSet;

use serde_json::Value;

use super::HttpApiTrigger;
use super::read::only;
use crate::config::cors;
use crate::config::value::{Result, Table, is_name};

const HTTP_METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY",
];

/// HTTP API CORS (API Gateway v2 `Cors`): any route method, no list caps.
const CORS: cors::Rules = cors::Rules {
    methods: HTTP_METHODS,
    max_items: None,
    no_wildcard_with_credentials: true,
};

/// An HTTP API route key: `$default` or `METHOD /path` where path segments
/// are literal or `{param}`, and a last `{name+}` is greedy.
pub fn check_route(r: &str) -> std::result::Result<(), String> {
    if r == "$default" {
        return Ok(());
    }
    let usage = format!(
        "a route: `$default` or `METHOD /path` (METHOD one of {}; segments literal, {{param}} or a last {{proxy+}})",
        HTTP_METHODS.join(", ")
    );
    let Some((method, path)) = r.split_once(' ') else {
        return Err(usage);
    };
    if !HTTP_METHODS.contains(&method) || !path.starts_with('/') {
        return Err(usage);
    }
    if path == "/" {
        return Ok(());
    }
    let segments: Vec<&str> = path[1..].split('/').collect();
    for (i, s) in segments.iter().enumerate() {
        let ok = if let Some(p) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let (name, greedy) = match p.strip_suffix('+') {
                Some(n) => (n, true),
                None => (p, false),
            };
            !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && (!greedy || i == segments.len() - 1)
        } else {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._~".contains(c))
        };
        if !ok {
            return Err(usage);
        }
    }
    Ok(())
}

pub(super) fn http_api(t: &Table) -> Result<HttpApiTrigger> {
    only(
        t,
        "http-api",
        &["routes", "payload-format", "cors", "stage"],
    )?;
    let routes = t
        .strings("routes")?
        .unwrap_or_else(|| vec!["$default".to_string()]);
    if routes.is_empty() || routes.len() > 300 {
        return Err(t.bad(
            "routes",
            t.get("routes").unwrap_or(&Value::Null),
            "1-300 routes",
        ));
    }
    let mut seen = BTreeSet::new();
    for r in &routes {
        check_route(r).map_err(|a| t.bad("routes", &Value::String(r.clone()), a))?;
        if !seen.insert(r) {
            return Err(t.bad("routes", &Value::String(r.clone()), "each route once"));
        }
    }
    let payload_format = t.string("payload-format")?.unwrap_or_else(|| "2.0".into());
    if payload_format != "2.0" && payload_format != "1.0" {
        return Err(t.bad(
            "payload-format",
            &Value::String(payload_format),
            "\"2.0\" or \"1.0\"",
        ));
    }
    let stage = t.string("stage")?.unwrap_or_else(|| "$default".into());
    let stage_ok = stage == "$default" || is_name(&stage, 128);
    if !stage_ok {
        return Err(t.bad(
            "stage",
            &Value::String(stage),
            "`$default` or 1-128 of a-z A-Z 0-9 - _",
        ));
    }
    let cors = match t.get("cors") {
        None => None,
        Some(v) => Some(cors::read(format!("{}.cors", t.key), v, t.src, &CORS)?),
    };
    Ok(HttpApiTrigger {
        routes,
        payload_format,
        cors,
        stage,
    })
}
