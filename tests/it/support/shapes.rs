//! Checks recorded Lambda requests against the API's own shapes: the
//! Lambda service model (Smithy, as botocore ships it in JSON) from the
//! dev tools' venv. A request is matched to its operation by method and
//! `requestUri`; then its URI and query members and its JSON body are
//! checked: member names, types, required members, enum values, lengths,
//! ranges and patterns. Patterns Rust's regex cannot read (look-arounds)
//! are left unchecked and counted.

#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::Value;

use super::managed_instances::Recorded;
use super::tools_dir;

pub struct Model {
    shapes: serde_json::Map<String, Value>,
    ops: Vec<Op>,
}

struct Op {
    name: String,
    method: String,
    segments: Vec<String>,
    input: Option<String>,
}

/// What checking a request log found.
#[derive(Debug, Default)]
pub struct Report {
    /// Operation names, in order.
    pub operations: Vec<String>,
    /// One line per violation: `Operation: path: what`.
    pub errors: Vec<String>,
    /// Patterns not checked (Rust's regex cannot read them).
    pub unchecked_patterns: usize,
}

impl Model {
    /// Lambda's model from botocore in the tools venv; panics loudly when
    /// it is missing.
    pub fn lambda() -> Model {
        let python = tools_dir().join("venv/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run `cargo xtask setup`",
            python.display()
        );
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import json, botocore.loaders as l; \
                 print(json.dumps(l.Loader().load_service_model('lambda', 'service-2')))",
            ])
            .output()
            .expect("run the venv's python");
        assert!(
            out.status.success(),
            "loading botocore's Lambda model: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let model: Value = serde_json::from_slice(&out.stdout).expect("model JSON");
        let shapes = model["shapes"].as_object().expect("shapes").clone();
        let ops = model["operations"]
            .as_object()
            .expect("operations")
            .iter()
            .map(|(name, op)| {
                let uri = op["http"]["requestUri"].as_str().unwrap_or_default();
                let path = uri.split('?').next().unwrap_or_default();
                Op {
                    name: name.clone(),
                    method: op["http"]["method"].as_str().unwrap_or_default().into(),
                    segments: path.split('/').map(str::to_string).collect(),
                    input: op["input"]["shape"].as_str().map(str::to_string),
                }
            })
            .collect();
        Model { shapes, ops }
    }

    /// Whether the model knows an operation (e.g. `CreateCapacityProvider`).
    pub fn has(&self, operation: &str) -> bool {
        self.ops.iter().any(|o| o.name == operation)
    }

    /// Matches a Lambda request to its operation and the URI parameters.
    fn operation(&self, method: &str, path: &str) -> Option<(&Op, BTreeMap<String, String>)> {
        let parts: Vec<&str> = path.split('/').collect();
        let mut best: Option<(&Op, BTreeMap<String, String>, usize)> = None;
        for op in self.ops.iter().filter(|o| o.method == method) {
            let mut params = BTreeMap::new();
            let mut literal = 0;
            let mut ok = true;
            let mut i = 0;
            for (j, seg) in op.segments.iter().enumerate() {
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix("+}")) {
                    params.insert(name.to_string(), parts[i.min(parts.len())..].join("/"));
                    i = parts.len();
                    let _ = j;
                    break;
                }
                let Some(part) = parts.get(i) else {
                    ok = false;
                    break;
                };
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    params.insert(name.to_string(), part.to_string());
                } else if seg == part {
                    literal += 1;
                } else {
                    ok = false;
                    break;
                }
                i += 1;
            }
            if ok && i == parts.len() && best.as_ref().is_none_or(|b| literal > b.2) {
                best = Some((op, params, literal));
            }
        }
        best.map(|(op, params, _)| (op, params))
    }

    /// Checks every Lambda request of a log (IAM's form requests are not
    /// Lambda's and are skipped).
    pub fn check(&self, log: &[Recorded]) -> Report {
        let mut report = Report::default();
        for r in log
            .iter()
            .filter(|r| r.form.is_none() && r.path.starts_with("/20"))
        {
            let Some((op, params)) = self.operation(&r.method, &r.path) else {
                report.errors.push(format!(
                    "{} {}: no Lambda operation matches",
                    r.method, r.path
                ));
                continue;
            };
            report.operations.push(op.name.clone());
            let Some(input) = &op.input else { continue };
            let shape = &self.shapes[input];
            let members = shape["members"].as_object().cloned().unwrap_or_default();
            // A list member repeats its key (`TagKeys=a&TagKeys=b`).
            let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for kv in r.query.split('&').filter(|kv| !kv.is_empty()) {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                query
                    .entry(k.to_string())
                    .or_default()
                    .push(decode_query(v));
            }
            let mut c = Checker {
                model: self,
                errors: Vec::new(),
                unchecked: 0,
            };
            let mut body_members = serde_json::Map::new();
            for (name, m) in &members {
                let loc = m["location"].as_str();
                let loc_name = m["locationName"].as_str().unwrap_or(name);
                let shape = m["shape"].as_str().unwrap_or_default();
                match loc {
                    Some("uri") => match params.get(loc_name) {
                        Some(v) => c.value(shape, &Value::String(v.clone()), name),
                        None => c.errors.push(format!("{name}: URI parameter missing")),
                    },
                    Some("querystring") => {
                        if let Some(values) = query.get(loc_name) {
                            let typed = match self.shapes[shape]["type"].as_str() {
                                Some("list") => Value::Array(
                                    values.iter().cloned().map(Value::String).collect(),
                                ),
                                _ => query_value(&self.shapes[shape], &values[values.len() - 1]),
                            };
                            c.value(shape, &typed, name);
                        }
                    }
                    Some(_) => {}
                    None => {
                        body_members.insert(name.clone(), m.clone());
                    }
                }
            }
            for k in query.keys() {
                let known = members
                    .iter()
                    .any(|(n, m)| m["locationName"].as_str().unwrap_or(n) == k);
                if !known {
                    c.errors
                        .push(format!("query parameter {k} is not in the model"));
                }
            }
            let payload = shape["payload"].as_str().is_some();
            if !payload {
                let body = r.body.clone().unwrap_or(Value::Object(Default::default()));
                c.structure(&body_members, shape, &body, "body");
            }
            report.unchecked_patterns += c.unchecked;
            report
                .errors
                .extend(c.errors.into_iter().map(|e| format!("{}: {e}", op.name)));
        }
        report
    }
}

/// A query value as the JSON type its shape has.
fn query_value(shape: &Value, v: &str) -> Value {
    match shape["type"].as_str() {
        Some("integer" | "long") => v
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(v.to_string())),
        Some("boolean") => Value::Bool(v == "true"),
        _ => Value::String(v.to_string()),
    }
}

fn decode_query(v: &str) -> String {
    let v = v.replace('+', " ");
    let mut out = Vec::new();
    let b = v.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct Checker<'a> {
    model: &'a Model,
    errors: Vec<String>,
    unchecked: usize,
}

impl Checker<'_> {
    fn structure(
        &mut self,
        members: &serde_json::Map<String, Value>,
        shape: &Value,
        v: &Value,
        at: &str,
    ) {
        let Some(obj) = v.as_object() else {
            self.errors
                .push(format!("{at}: expected an object, got {v}"));
            return;
        };
        for (k, val) in obj {
            match members.get(k) {
                Some(m) => {
                    let s = m["shape"].as_str().unwrap_or_default();
                    self.value(s, val, &format!("{at}.{k}"));
                }
                None => self.errors.push(format!("{at}.{k}: not a member")),
            }
        }
        for r in shape["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            let in_body = members.contains_key(r);
            if in_body && !obj.contains_key(r) {
                self.errors.push(format!("{at}.{r}: required, missing"));
            }
        }
    }

    fn range(&mut self, shape: &Value, n: f64, what: &str, at: &str) {
        if let Some(min) = shape["min"].as_f64()
            && n < min
        {
            self.errors
                .push(format!("{at}: {what} {n} below min {min}"));
        }
        if let Some(max) = shape["max"].as_f64()
            && n > max
        {
            self.errors
                .push(format!("{at}: {what} {n} above max {max}"));
        }
    }

    fn value(&mut self, name: &str, v: &Value, at: &str) {
        let shape = self.model.shapes[name].clone();
        match shape["type"].as_str().unwrap_or_default() {
            "structure" => {
                let members = shape["members"].as_object().cloned().unwrap_or_default();
                self.structure(&members, &shape, v, at);
            }
            "list" => match v.as_array() {
                Some(items) => {
                    self.range(&shape, items.len() as f64, "length", at);
                    let m = shape["member"]["shape"].as_str().unwrap_or_default();
                    for (i, item) in items.iter().enumerate() {
                        self.value(m, item, &format!("{at}[{i}]"));
                    }
                }
                None => self.errors.push(format!("{at}: expected a list, got {v}")),
            },
            "map" => match v.as_object() {
                Some(map) => {
                    self.range(&shape, map.len() as f64, "entries", at);
                    let k = shape["key"]["shape"].as_str().unwrap_or_default();
                    let val = shape["value"]["shape"].as_str().unwrap_or_default();
                    for (key, item) in map {
                        self.value(k, &Value::String(key.clone()), &format!("{at} key {key}"));
                        self.value(val, item, &format!("{at}.{key}"));
                    }
                }
                None => self.errors.push(format!("{at}: expected a map, got {v}")),
            },
            "string" => match v.as_str() {
                Some(s) => self.string(&shape, s, at),
                None => self
                    .errors
                    .push(format!("{at}: expected a string, got {v}")),
            },
            "integer" | "long" => match v.as_i64() {
                Some(n) => self.range(&shape, n as f64, "value", at),
                None => self
                    .errors
                    .push(format!("{at}: expected an integer, got {v}")),
            },
            "double" | "float" => match v.as_f64() {
                Some(n) => self.range(&shape, n, "value", at),
                None => self
                    .errors
                    .push(format!("{at}: expected a number, got {v}")),
            },
            "boolean" => {
                if !v.is_boolean() {
                    self.errors
                        .push(format!("{at}: expected a boolean, got {v}"));
                }
            }
            "blob" => {
                let ok = v.as_str().is_some_and(|s| {
                    s.bytes()
                        .all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(&c))
                });
                if !ok {
                    self.errors.push(format!("{at}: expected base64"));
                }
            }
            "timestamp" => {
                if !(v.is_number() || v.is_string()) {
                    self.errors
                        .push(format!("{at}: expected a timestamp, got {v}"));
                }
            }
            other => self
                .errors
                .push(format!("{at}: unknown shape type {other}")),
        }
    }

    fn string(&mut self, shape: &Value, s: &str, at: &str) {
        if let Some(values) = shape["enum"].as_array()
            && !values.iter().any(|e| e.as_str() == Some(s))
        {
            self.errors.push(format!(
                "{at}: {s:?} is not one of {}",
                Value::Array(values.clone())
            ));
        }
        self.range(shape, s.chars().count() as f64, "length", at);
        if let Some(p) = shape["pattern"].as_str() {
            // Java-style classes: a `-` after a range is a literal there.
            let p = p.replace("0-9-_", "0-9\\-_").replace("Z-_", "Z\\-_");
            match regex::Regex::new(&format!("^(?:{p})$")) {
                Ok(re) => {
                    if !re.is_match(s) {
                        self.errors
                            .push(format!("{at}: {s:?} does not match the pattern {p}"));
                    }
                }
                Err(_) => self.unchecked += 1,
            }
        }
    }
}
