//! The typed deploy plan end to end against moto: the two resource-policy
//! statements of a public function URL and the role's secrets statement,
//! each read back through the AWS API (GetPolicy, GetRolePolicy), and the
//! `--dry-run --output json` list of typed changes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::moto::{Aws, SECRET_KEY, http};
use crate::support::{cargo_fn, tempdir};

/// One project (a crate with a `hello` binary) deployed to one moto.
struct Fixture {
    aws: Aws,
    dir: tempfile::TempDir,
    zip: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempdir();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), "fn main() {}\n").unwrap();
        let zip = dir.path().join("bootstrap.zip");
        write_zip(&zip);
        Fixture {
            aws: Aws::start(),
            dir,
            zip,
        }
    }

    /// Sets `[package.metadata.fn]`.
    fn metadata(&self, body: &str) {
        std::fs::write(
            self.dir.path().join("Cargo.toml"),
            format!(
                "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n\n[package.metadata.fn]\n{body}\n"
            ),
        )
        .unwrap();
    }

    /// `cargo fn deploy --zip ... --output json [extra]`; panics on failure.
    fn deploy(&self, extra: &[&str]) -> (Value, String) {
        let mut cmd = cargo_fn();
        cmd.current_dir(self.dir.path())
            .args([
                "deploy",
                "--zip",
                self.zip.to_str().unwrap(),
                "--output",
                "json",
            ])
            .args(extra)
            .env_remove("AWS_PROFILE");
        for (k, v) in self.aws.env() {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run cargo-fn");
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "deploy failed:\n{stdout}\n{stderr}");
        assert!(!stdout.contains(SECRET_KEY) && !stderr.contains(SECRET_KEY));
        let json = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}\n{stderr}"));
        (json, stderr)
    }

    /// The statements of the `live` alias's resource policy, read from moto.
    fn statements(&self) -> Vec<Value> {
        let (status, body) = http(
            self.aws.moto.port,
            "GET",
            "/2015-03-31/functions/hello/policy?Qualifier=live",
            b"",
        );
        if status == 404 {
            return Vec::new();
        }
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let outer: Value = serde_json::from_slice(&body).unwrap();
        let policy: Value = serde_json::from_str(outer["Policy"].as_str().unwrap()).unwrap();
        policy["Statement"].as_array().cloned().unwrap_or_default()
    }

    fn statement(&self, sid: &str) -> Option<Value> {
        self.statements().into_iter().find(|s| s["Sid"] == sid)
    }

    /// An IAM query API call straight to moto (a form POST, as the SDK
    /// sends it); returns the XML answer.
    fn iam(&self, params: &[(&str, &str)]) -> String {
        let mut form = String::from("Version=2010-05-08");
        for (k, v) in params {
            form.push_str(&format!("&{k}={}", encode(v)));
        }
        let mut conn = TcpStream::connect(("127.0.0.1", self.aws.moto.port)).unwrap();
        let head = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIATESTINGKEYID0000/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            form.len()
        );
        conn.write_all(head.as_bytes()).unwrap();
        conn.write_all(form.as_bytes()).unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{form}: {answer}");
        answer
    }

    /// The inline policy cargo-fn put on its role, read back from IAM.
    fn role_policy(&self) -> Value {
        let xml = self.iam(&[
            ("Action", "GetRolePolicy"),
            ("RoleName", "cargo-fn-hello"),
            ("PolicyName", "cargo-fn-execution"),
        ]);
        let doc = between(&xml, "<PolicyDocument>", "</PolicyDocument>");
        let doc = decode(&unescape_xml(doc));
        serde_json::from_str(&doc).unwrap_or_else(|e| panic!("policy ({e}): {doc}"))
    }
}

fn write_zip(path: &Path) {
    let mut z = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .unix_permissions(0o755)
        .last_modified_time(zip::DateTime::default());
    z.start_file("bootstrap", opts).unwrap();
    z.write_all(b"#!/bin/sh\n# plan\n").unwrap();
    z.finish().unwrap();
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let i = text
        .find(start)
        .unwrap_or_else(|| panic!("no {start} in {text}"))
        + start.len();
    let j = text[i..].find(end).unwrap() + i;
    &text[i..j]
}

fn unescape_xml(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// Percent-encoding for query values (RFC 3986 unreserved kept).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// IAM answers policy documents URL-encoded; moto may answer plain JSON.
fn decode(s: &str) -> String {
    if s.trim_start().starts_with('{') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Asserts a statement carries `condition` on `key` = `value`. AWS (and
/// cargo-fn's fake) report AddPermission's `FunctionUrlAuthType` and
/// `InvokedViaFunctionUrl` as a Condition; moto 5 does not translate them
/// and keeps the request parameter (`param`) in the statement as sent. The
/// test accepts exactly those two shapes, and says which one it saw.
fn assert_condition(
    stmt: &Value,
    condition: &str,
    key: &str,
    value: &str,
    param: &str,
) -> &'static str {
    if let Some(c) = stmt.get("Condition").filter(|c| !c.is_null()) {
        let got = &c[condition][key];
        assert!(
            got == value || (value == "true" && got == true),
            "condition {condition} {key} in {stmt}"
        );
        "condition"
    } else {
        let got = &stmt[param];
        assert!(
            got == value || (value == "true" && got == true),
            "moto keeps {param} as sent; expected {value} in {stmt}"
        );
        "parameter (moto)"
    }
}

#[test]
fn public_url_gets_both_statements_read_back_with_get_policy_moto_keeps_conditions_as_parameters() {
    let f = Fixture::new();
    f.metadata("function-url = { auth = \"NONE\" }");

    // The dry run shows both statements, typed.
    let (plan, _) = f.deploy(&["--dry-run"]);
    let steps = plan["plans"][0]["steps"].as_array().unwrap();
    let permissions: Vec<&Value> = steps.iter().filter(|s| s["kind"] == "permission").collect();
    assert_eq!(permissions.len(), 2, "{plan}");
    assert_eq!(
        permissions[0]["after"]["Action"],
        "lambda:InvokeFunctionUrl"
    );
    assert_eq!(
        permissions[1]["after"]["Condition"]["Bool"]["lambda:InvokedViaFunctionUrl"],
        "true"
    );
    assert!(f.aws.proxy.writes().is_empty(), "{:?}", f.aws.proxy.calls());

    f.deploy(&[]);
    let url = f
        .statement("cargo-fn-function-url-public")
        .expect("the URL statement");
    assert_eq!(url["Action"], "lambda:InvokeFunctionUrl");
    assert_eq!(url["Principal"], "*");
    assert_condition(
        &url,
        "StringEquals",
        "lambda:FunctionUrlAuthType",
        "NONE",
        "FunctionUrlAuthType",
    );
    let invoke = f
        .statement("cargo-fn-function-url-invoke")
        .expect("the invoke statement");
    assert_eq!(invoke["Action"], "lambda:InvokeFunction");
    assert_eq!(invoke["Principal"], "*");
    assert_condition(
        &invoke,
        "Bool",
        "lambda:InvokedViaFunctionUrl",
        "true",
        "InvokedViaFunctionUrl",
    );
    assert_eq!(f.statements().len(), 2);

    // Re-deploy: nothing added twice (moto itself would accept a duplicate).
    f.aws.proxy.reset_calls();
    f.deploy(&[]);
    assert!(
        f.aws.proxy.writes().is_empty(),
        "{:?}",
        f.aws.proxy.writes()
    );
    assert_eq!(f.statements().len(), 2);

    // A function an older cargo-fn deployed: only the first statement and
    // no URL record. The next deploy adds exactly the missing one.
    let (status, _) = http(
        f.aws.moto.port,
        "DELETE",
        "/2015-03-31/functions/hello/policy/cargo-fn-function-url-invoke?Qualifier=live",
        b"",
    );
    assert!((200..300).contains(&status), "RemovePermission: {status}");
    let arn = f.aws.get_json("/2015-03-31/functions/hello")["Configuration"]["FunctionArn"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = http(
        f.aws.moto.port,
        "DELETE",
        &format!("/2017-03-31/tags/{arn}?tagKeys=cargo-fn%3Aurl%3Alive"),
        b"",
    );
    assert!((200..300).contains(&status), "UntagResource: {status}");
    f.aws.proxy.reset_calls();
    f.deploy(&[]);
    let adds: Vec<String> = f
        .aws
        .proxy
        .writes()
        .into_iter()
        .filter(|w| w == "POST /2015-03-31/functions/hello/policy")
        .collect();
    assert_eq!(adds.len(), 1, "{:?}", f.aws.proxy.writes());
    assert!(f.statement("cargo-fn-function-url-invoke").is_some());
    assert_eq!(f.statements().len(), 2);

    // `function-url` leaves the configuration: both statements and the URL go.
    f.metadata("");
    f.deploy(&[]);
    assert!(f.statements().is_empty(), "{:?}", f.statements());
    let (status, _) = http(
        f.aws.moto.port,
        "GET",
        "/2015-03-31/functions/hello/url?Qualifier=live",
        b"",
    );
    assert_eq!(status, 404, "the URL configuration is deleted");
}

#[test]
fn created_role_grants_the_configured_secrets_read_back_with_get_role_policy() {
    let f = Fixture::new();
    let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:api-key-AbCdEf";
    f.metadata(&format!(
        "secrets = {{ DB_SECRET = \"prod/db\", API_KEY = \"{arn}\" }}"
    ));
    let (plan, _) = f.deploy(&["--dry-run"]);
    let policy_step = plan["plans"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "role-policy")
        .cloned()
        .expect("a role-policy step");
    assert!(
        policy_step["after"]
            .to_string()
            .contains("secret:prod/db-??????"),
        "{policy_step}"
    );

    f.deploy(&[]);
    let granted = |policy: &Value| -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["Action"] == "secretsmanager:GetSecretValue")
            .flat_map(|s| s["Resource"].as_array().cloned().unwrap_or_default())
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    let policy = f.role_policy();
    let account = f.iam(&[("Action", "GetRole"), ("RoleName", "cargo-fn-hello")]);
    let account = between(&account, "<Arn>arn:aws:iam::", ":role/").to_string();
    assert_eq!(
        granted(&policy),
        [
            arn.to_string(),
            format!("arn:aws:secretsmanager:us-east-1:{account}:secret:prod/db-??????")
        ]
    );
    // The environment holds the names, never values.
    let conf = f.aws.get_json("/2015-03-31/functions/hello/configuration");
    assert_eq!(conf["Environment"]["Variables"]["DB_SECRET"], "prod/db");

    // One secret leaves the configuration: it leaves the policy.
    f.metadata(&format!("secrets = {{ API_KEY = \"{arn}\" }}"));
    f.deploy(&[]);
    assert_eq!(granted(&f.role_policy()), [arn.to_string()]);
    f.metadata("");
    f.deploy(&[]);
    assert!(granted(&f.role_policy()).is_empty());
    assert!(!f.role_policy().to_string().contains("secretsmanager"));
}

#[test]
fn supplied_role_without_the_secret_is_warned_about_in_a_dry_run_and_left_unchanged() {
    let f = Fixture::new();
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let created = f.iam(&[
        ("Action", "CreateRole"),
        ("RoleName", "mine"),
        ("AssumeRolePolicyDocument", trust),
    ]);
    let role_arn = between(&created, "<Arn>", "</Arn>").to_string();
    let logs_only = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]}"#;
    f.iam(&[
        ("Action", "PutRolePolicy"),
        ("RoleName", "mine"),
        ("PolicyName", "mine-logs"),
        ("PolicyDocument", logs_only),
    ]);
    f.metadata(&format!(
        "role = \"{role_arn}\"\nsecrets = {{ DB_SECRET = \"prod/db\" }}"
    ));
    let (plan, stderr) = f.deploy(&["--dry-run"]);
    let warnings = plan["plans"][0]["warnings"].to_string();
    assert!(
        warnings.contains("does not appear to allow secretsmanager:GetSecretValue on prod/db"),
        "{plan}"
    );
    assert!(stderr.contains("prod/db"), "{stderr}");
    assert!(
        f.aws.proxy.writes().is_empty(),
        "{:?}",
        f.aws.proxy.writes()
    );

    // Granting it silences the warning; a real deploy never writes to IAM.
    let with_secret = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:*:secret:prod/db-*"}]}"#;
    f.iam(&[
        ("Action", "PutRolePolicy"),
        ("RoleName", "mine"),
        ("PolicyName", "mine-secrets"),
        ("PolicyDocument", with_secret),
    ]);
    let (plan, _) = f.deploy(&["--dry-run"]);
    assert_eq!(
        plan["plans"][0]["warnings"],
        serde_json::json!([]),
        "{plan}"
    );
    f.aws.proxy.reset_calls();
    f.deploy(&[]);
    let iam_writes: Vec<String> = f
        .aws
        .proxy
        .writes()
        .into_iter()
        .filter(|w| w.starts_with("iam:"))
        .collect();
    assert!(iam_writes.is_empty(), "{iam_writes:?}");
}

#[test]
fn dry_run_json_lists_typed_changes_with_before_and_after() {
    let f = Fixture::new();
    f.metadata("memory = 256\nreserved-concurrency = 5");
    f.deploy(&[]);
    f.metadata("memory = 512");
    let (plan, _) = f.deploy(&["--dry-run"]);
    let steps = plan["plans"][0]["steps"].as_array().unwrap().clone();
    let kinds: Vec<&str> = steps.iter().map(|s| s["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "function-configuration",
            "version",
            "alias",
            "reserved-concurrency"
        ],
        "{plan}"
    );
    assert_eq!(steps[0]["fields"][0]["field"], "memory");
    assert_eq!(steps[0]["fields"][0]["old"], "256 MB");
    assert_eq!(steps[0]["fields"][0]["new"], "512 MB");
    assert_eq!(steps[2]["before"], "1");
    assert_eq!(steps[3]["before"], 5);
    assert_eq!(steps[3]["after"], Value::Null);
    assert_eq!(steps[3]["action"], "delete");
    assert!(
        steps[3]["calls"][0]
            .as_str()
            .unwrap()
            .starts_with("lambda:DeleteFunctionConcurrency hello"),
        "{plan}"
    );
}
