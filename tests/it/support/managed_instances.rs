//! A Lambda Managed Instances double: moto behind a recording proxy that
//! also serves what moto 5.2.6 lacks, honestly and with state:
//! - the capacity-provider routes (`/2025-11-30/capacity-providers...`:
//!   Create, Get, List, Update, Delete, ListFunctionVersionsByCapacityProvider)
//!   and `ListTags` on a provider's ARN;
//! - the function's `CapacityProviderConfig`, which moto drops: taken from
//!   each CreateFunction / UpdateFunctionConfiguration request that passes,
//!   kept per published version, and put back into moto's answers.
//!
//! A new provider answers `Pending` to its first read and `Active` after
//! (or `Failed`, when [`MiDouble::fail_next_provider`] was called). Every
//! request is recorded with its JSON body, for the shape check
//! (`shapes.rs`).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::moto::{Moto, client_env, read_request};

/// One request as it reached the proxy.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    pub query: String,
    /// The body, when it is JSON (Lambda's REST-JSON bodies).
    pub body: Option<Value>,
    /// A form body (IAM's query protocol), raw.
    pub form: Option<String>,
}

impl Recorded {
    pub fn label(&self) -> String {
        match &self.form {
            Some(f) => f
                .split('&')
                .find_map(|kv| kv.strip_prefix("Action="))
                .map(|a| format!("iam:{a}"))
                .unwrap_or_else(|| format!("{} {}", self.method, self.path)),
            None => format!("{} {}", self.method, self.path),
        }
    }

    pub fn is_write(&self) -> bool {
        match &self.form {
            Some(_) => {
                let l = self.label();
                !(l.starts_with("iam:Get") || l.starts_with("iam:List"))
            }
            None => self.method != "GET",
        }
    }
}

#[derive(Debug, Clone)]
struct Provider {
    body: Value,
    tags: BTreeMap<String, String>,
    state: String,
    /// Reads so far (the first answers Pending).
    reads: u32,
}

#[derive(Default)]
struct State {
    recorded: Vec<Recorded>,
    providers: BTreeMap<String, Provider>,
    fail_next: bool,
    /// Function name -> its `$LATEST` CapacityProviderConfig.
    latest: BTreeMap<String, Value>,
    /// (function, version) -> the config the version was published with.
    versions: BTreeMap<(String, String), Value>,
}

/// moto plus the proxy; the proxy's URL is cargo-fn's endpoint.
pub struct MiDouble {
    pub moto: Moto,
    pub port: u16,
    state: Arc<Mutex<State>>,
}

const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";
const PREFIX: &str = "/2025-11-30/capacity-providers";

impl MiDouble {
    /// Starts moto (with IAM's AWS managed policies loaded, so
    /// `AWSLambdaManagedEC2ResourceOperator` can be attached) and the proxy.
    pub fn start() -> MiDouble {
        let moto = Moto::start_with_env(&[("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")]);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let (st, upstream) = (state.clone(), moto.port);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || handle(conn, upstream, &st));
            }
        });
        MiDouble { moto, port, state }
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        client_env(format!("http://127.0.0.1:{}", self.port))
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().recorded.clone()
    }

    pub fn clear(&self) {
        self.state.lock().unwrap().recorded.clear();
    }

    /// The write requests so far, as labels.
    pub fn writes(&self) -> Vec<String> {
        self.recorded()
            .iter()
            .filter(|r| r.is_write())
            .map(Recorded::label)
            .collect()
    }

    /// The next provider created ends `Failed`.
    pub fn fail_next_provider(&self) {
        self.state.lock().unwrap().fail_next = true;
    }

    /// A provider as the double holds it (`GetCapacityProvider`'s
    /// `CapacityProvider`) with its tags.
    pub fn provider(&self, name: &str) -> Option<(Value, BTreeMap<String, String>)> {
        let st = self.state.lock().unwrap();
        st.providers
            .get(name)
            .map(|p| (describe(name, p), p.tags.clone()))
    }

    /// Adds a provider made outside cargo-fn (Active, untagged); its ARN.
    pub fn add_provider(&self, name: &str, architecture: &str) -> String {
        let body = json!({
            "CapacityProviderName": name,
            "VpcConfig": {"SubnetIds": ["subnet-0ther"], "SecurityGroupIds": []},
            "PermissionsConfig": {
                "CapacityProviderOperatorRoleArn": format!("arn:aws:iam::{ACCOUNT}:role/ops")
            },
            "InstanceRequirements": {"Architectures": [architecture]},
        });
        self.state.lock().unwrap().providers.insert(
            name.to_string(),
            Provider {
                body,
                tags: BTreeMap::new(),
                state: "Active".into(),
                reads: 1,
            },
        );
        provider_arn(name)
    }

    /// The CapacityProviderConfig a published version of `function` has.
    pub fn version_config(&self, function: &str, version: &str) -> Option<Value> {
        let st = self.state.lock().unwrap();
        st.versions
            .get(&(function.to_string(), version.to_string()))
            .cloned()
    }
}

fn provider_arn(name: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:capacity-provider:{name}")
}

/// `GetCapacityProvider`'s `CapacityProvider` for a stored provider.
fn describe(name: &str, p: &Provider) -> Value {
    let mut out = json!({
        "CapacityProviderArn": provider_arn(name),
        "State": p.state,
        "LastModified": "2026-12-07T00:00:00.000+0000",
    });
    for key in [
        "VpcConfig",
        "PermissionsConfig",
        "InstanceRequirements",
        "CapacityProviderScalingConfig",
        "KmsKeyArn",
    ] {
        if let Some(v) = p.body.get(key) {
            out[key] = v.clone();
        }
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(conn: &mut TcpStream, status: u16, body: &Value, error: Option<&str>) {
    let text = body.to_string();
    let extra = error
        .map(|e| format!("x-amzn-ErrorType: {e}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{extra}x-amzn-RequestId: mi-double\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(text.as_bytes());
    let _ = conn.shutdown(Shutdown::Write);
}

fn error(conn: &mut TcpStream, status: u16, code: &str, message: &str) {
    respond(
        conn,
        status,
        &json!({"Type": "User", "message": message}),
        Some(code),
    );
}

fn handle(mut conn: TcpStream, upstream: u16, state: &Mutex<State>) {
    let Some((head, raw)) = read_request(&mut conn) else {
        return;
    };
    let body = &raw[head.len()..];
    let first = head.lines().next().unwrap_or_default().to_string();
    let mut parts = first.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = decode(path);
    let is_form = head
        .to_ascii_lowercase()
        .contains("content-type: application/x-www-form-urlencoded");
    let rec = Recorded {
        method: method.clone(),
        path: path.clone(),
        query: query.to_string(),
        body: (!is_form && !body.is_empty())
            .then(|| serde_json::from_slice(body).ok())
            .flatten(),
        form: is_form.then(|| String::from_utf8_lossy(body).into_owned()),
    };
    state.lock().unwrap().recorded.push(rec.clone());
    if path.starts_with(PREFIX) {
        return providers(&mut conn, &method, &path, &rec, state);
    }
    if method == "GET"
        && let Some(arn) = path.strip_prefix("/2017-03-31/tags/")
        && arn.contains(":capacity-provider:")
    {
        let name = arn.rsplit(':').next().unwrap_or_default();
        let st = state.lock().unwrap();
        return match st.providers.get(name) {
            Some(p) => respond(&mut conn, 200, &json!({"Tags": p.tags}), None),
            None => error(
                &mut conn,
                404,
                "ResourceNotFoundException",
                "no such provider",
            ),
        };
    }
    remember_config(&method, &path, query, &rec, state);
    let Some(resp) = forward(&head, &raw, upstream) else {
        return;
    };
    let resp = patch_answer(&method, &path, query, resp, state);
    let _ = conn.write_all(&resp);
    let _ = conn.shutdown(Shutdown::Write);
}

fn forward(head: &str, raw: &[u8], upstream: u16) -> Option<Vec<u8>> {
    let mut new_head = String::new();
    for (i, line) in head.split("\r\n").enumerate() {
        if line.is_empty() || (i > 0 && line.to_ascii_lowercase().starts_with("connection:")) {
            continue;
        }
        new_head.push_str(line);
        new_head.push_str("\r\n");
    }
    new_head.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    up.write_all(new_head.as_bytes()).ok()?;
    up.write_all(&raw[head.len()..]).ok()?;
    let mut resp = Vec::new();
    let _ = up.read_to_end(&mut resp);
    Some(resp)
}

/// The function a Lambda function path names, and what follows it.
fn function_of(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/2015-03-31/functions/")?;
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let name = name.rsplit(':').next().unwrap_or(name).to_string();
    Some((name, tail.to_string()))
}

fn qualifier(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("Qualifier="))
        .map(decode)
}

/// Keeps the CapacityProviderConfig of a create or configuration update.
fn remember_config(method: &str, path: &str, query: &str, rec: &Recorded, state: &Mutex<State>) {
    let Some(body) = &rec.body else {
        if method == "DELETE"
            && let Some((name, _)) = function_of(path)
        {
            let mut st = state.lock().unwrap();
            match qualifier(query) {
                Some(v) => {
                    st.versions.remove(&(name, v));
                }
                None => {
                    st.latest.remove(&name);
                    st.versions.retain(|(f, _), _| *f != name);
                }
            }
        }
        return;
    };
    let Some(config) = body.get("CapacityProviderConfig") else {
        return;
    };
    let name = if method == "POST" && path == "/2015-03-31/functions" {
        body["FunctionName"].as_str().map(str::to_string)
    } else if method == "PUT" {
        function_of(path)
            .filter(|(_, tail)| tail == "configuration")
            .map(|(n, _)| n)
    } else {
        None
    };
    if let Some(n) = name {
        state.lock().unwrap().latest.insert(n, config.clone());
    }
}

/// Puts the CapacityProviderConfig moto dropped back into its answer.
fn patch_answer(
    method: &str,
    path: &str,
    query: &str,
    resp: Vec<u8>,
    state: &Mutex<State>,
) -> Vec<u8> {
    let (name, tail) = match function_of(path) {
        Some(x) => x,
        None if method == "POST" && path == "/2015-03-31/functions" => {
            (String::new(), String::new())
        }
        None => return resp,
    };
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        return resp;
    };
    let (head, body) = (&resp[..split], &resp[split + 4..]);
    let Ok(mut json) = serde_json::from_slice::<Value>(body) else {
        return resp;
    };
    let mut st = state.lock().unwrap();
    // Which object holds the configuration (GetFunction nests it).
    let config_of = |j: &Value| -> Option<(String, String)> {
        let c = j.get("Configuration").unwrap_or(j);
        Some((
            c.get("FunctionName")?.as_str()?.to_string(),
            c.get("Version")?.as_str()?.to_string(),
        ))
    };
    let Some((fname, version)) = config_of(&json) else {
        return resp;
    };
    let fname = if name.is_empty() { fname } else { name };
    if method == "POST"
        && tail == "versions"
        && let Some(c) = st.latest.get(&fname).cloned()
    {
        st.versions.insert((fname.clone(), version.clone()), c);
    }
    let _ = query;
    let config = if version == "$LATEST" {
        st.latest.get(&fname).cloned()
    } else {
        st.versions.get(&(fname.clone(), version.clone())).cloned()
    };
    let Some(config) = config else {
        return resp;
    };
    match json.get_mut("Configuration") {
        Some(c) => c["CapacityProviderConfig"] = config,
        None => json["CapacityProviderConfig"] = config,
    }
    let text = json.to_string();
    let head = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in head.split("\r\n") {
        if line.to_ascii_lowercase().starts_with("content-length:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", text.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(text.as_bytes());
    bytes
}

/// The capacity-provider routes.
fn providers(conn: &mut TcpStream, method: &str, path: &str, rec: &Recorded, state: &Mutex<State>) {
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
    let name = name.rsplit(':').next().unwrap_or(name).to_string();
    let mut st = state.lock().unwrap();
    match (method, name.is_empty(), sub) {
        ("POST", true, _) => {
            let body = rec.body.clone().unwrap_or(Value::Null);
            let Some(n) = body["CapacityProviderName"].as_str().map(str::to_string) else {
                return error(conn, 400, "InvalidParameterValueException", "no name");
            };
            if st.providers.contains_key(&n) {
                return error(conn, 409, "ResourceConflictException", "exists");
            }
            let tags = body["Tags"]
                .as_object()
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let state_now = if std::mem::take(&mut st.fail_next) {
                "Failed"
            } else {
                "Pending"
            };
            let p = Provider {
                body,
                tags,
                state: state_now.into(),
                reads: 0,
            };
            let out = json!({"CapacityProvider": describe(&n, &p)});
            st.providers.insert(n, p);
            respond(conn, 202, &out, None)
        }
        ("GET", true, _) => {
            let list: Vec<Value> = st.providers.iter().map(|(n, p)| describe(n, p)).collect();
            respond(conn, 200, &json!({"CapacityProviders": list}), None)
        }
        ("GET", false, "function-versions") => {
            if !st.providers.contains_key(&name) {
                return error(conn, 404, "ResourceNotFoundException", "no such provider");
            }
            let arn = provider_arn(&name);
            let versions: Vec<Value> = st
                .versions
                .iter()
                .filter(|(_, c)| {
                    c["LambdaManagedInstancesCapacityProviderConfig"]["CapacityProviderArn"] == arn
                })
                .map(|((f, v), _)| {
                    json!({
                        "FunctionArn": format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{f}:{v}"),
                        "State": "Active",
                    })
                })
                .collect();
            respond(
                conn,
                200,
                &json!({"CapacityProviderArn": arn, "FunctionVersions": versions}),
                None,
            )
        }
        ("GET", false, "") => match st.providers.get_mut(&name) {
            Some(p) => {
                p.reads += 1;
                if p.state == "Pending" && p.reads > 1 {
                    p.state = "Active".into();
                }
                let out = json!({"CapacityProvider": describe(&name, p)});
                respond(conn, 200, &out, None)
            }
            None => error(conn, 404, "ResourceNotFoundException", "no such provider"),
        },
        ("PUT", false, "") => match st.providers.get_mut(&name) {
            Some(p) => {
                let body = rec.body.clone().unwrap_or(Value::Null);
                match body.get("CapacityProviderScalingConfig") {
                    Some(s) => p.body["CapacityProviderScalingConfig"] = s.clone(),
                    None => {
                        if let Some(o) = p.body.as_object_mut() {
                            o.remove("CapacityProviderScalingConfig");
                        }
                    }
                }
                let out = json!({"CapacityProvider": describe(&name, p)});
                respond(conn, 202, &out, None)
            }
            None => error(conn, 404, "ResourceNotFoundException", "no such provider"),
        },
        ("DELETE", false, "") => {
            let arn = provider_arn(&name);
            let used = st.versions.values().any(|c| {
                c["LambdaManagedInstancesCapacityProviderConfig"]["CapacityProviderArn"] == arn
            });
            if used {
                return error(
                    conn,
                    409,
                    "ResourceConflictException",
                    "function versions still use the capacity provider",
                );
            }
            match st.providers.remove(&name) {
                Some(mut p) => {
                    p.state = "Deleting".into();
                    let out = json!({"CapacityProvider": describe(&name, &p)});
                    respond(conn, 202, &out, None)
                }
                None => error(conn, 404, "ResourceNotFoundException", "no such provider"),
            }
        }
        _ => error(conn, 400, "InvalidRequest", "not a capacity-provider route"),
    }
}
