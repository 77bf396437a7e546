//! The configuration reference as data: every key a `[package.metadata.fn]`
//! table accepts, with its type, default, allowed values and meaning.
//!
//! `cargo xtask docs` renders this table into the guide
//! (`docs/src/reference/configuration.md`). It restates the rules of
//! `validate`, so the tests below hold it to them: every range and count is
//! fed its boundary values and one past each boundary through the real
//! validation ([`super::resolve_with_env`]), every choice is accepted and a
//! wrong one rejected, and every stated default equals what resolving an
//! empty configuration gives. A table that disagrees with the validator fails
//! the build instead of misleading a user.

/// What a key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowed {
    /// A whole number in `min..=max`, in `unit`.
    Range {
        min: i64,
        max: i64,
        unit: &'static str,
    },
    /// Between `min` and `max` (inclusive) of `what`: list items, table
    /// entries, characters or bytes.
    Count {
        min: usize,
        max: usize,
        what: &'static str,
    },
    /// Exactly one of these strings.
    OneOf(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
    /// A rule that is not a range, in words (checked by the validator's own tests).
    Rule(&'static str),
}

/// The value a key has when nothing sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// A literal value, written as in Cargo.toml without quotes.
    Value(&'static str),
    /// Computed from something else, in words.
    Derived(&'static str),
    /// Unset.
    None,
}

/// One configuration key. Nested keys are dotted (`function-url.cors.max-age`);
/// entries of a table keyed by the user are written `<name>`.
#[derive(Debug, Clone, Copy)]
pub struct KeyDoc {
    pub key: &'static str,
    pub ty: &'static str,
    pub default: DefaultValue,
    pub allowed: Allowed,
    pub description: &'static str,
}

impl Allowed {
    /// The rule in words, for the reference page.
    pub fn text(&self) -> String {
        match self {
            Allowed::Range { min, max, unit } => format!("{min}-{max}{unit}"),
            Allowed::Count { min: 0, max, what } => format!("at most {max} {what}"),
            Allowed::Count { min, max, what } => format!("{min}-{max} {what}"),
            Allowed::OneOf(choices) => choices
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Allowed::Bool => "`true`, `false`".to_string(),
            Allowed::Rule(rule) => rule.to_string(),
        }
    }
}

impl DefaultValue {
    pub fn text(&self) -> String {
        match self {
            DefaultValue::Value(v) => format!("`{v}`"),
            DefaultValue::Derived(d) => d.to_string(),
            DefaultValue::None => "-".to_string(),
        }
    }
}

const fn key(
    key: &'static str,
    ty: &'static str,
    default: DefaultValue,
    allowed: Allowed,
    description: &'static str,
) -> KeyDoc {
    KeyDoc {
        key,
        ty,
        default,
        allowed,
        description,
    }
}

/// Every configuration key, in the order the reference lists them.
pub const REFERENCE: &[KeyDoc] = &[
    key(
        "name",
        "string",
        DefaultValue::Derived("the binary name"),
        Allowed::Count {
            min: 1,
            max: 64,
            what: "characters from `a-z A-Z 0-9 - _`",
        },
        "The Lambda function name.",
    ),
    key(
        "architecture",
        "string",
        DefaultValue::Value("x86_64"),
        Allowed::OneOf(&["x86_64", "arm64"]),
        "Instruction set the function is built for and runs on.",
    ),
    key(
        "runtime",
        "string",
        DefaultValue::Value("provided.al2023"),
        Allowed::OneOf(&["provided.al2023", "provided.al2"]),
        "The OS-only runtime: `provided.al2023` has glibc 2.34, `provided.al2` glibc 2.26; the build pins that glibc.",
    ),
    key(
        "memory",
        "integer",
        DefaultValue::Value("128"),
        Allowed::Range {
            min: 128,
            max: 10240,
            unit: " MB",
        },
        "Memory size; Lambda gives CPU in proportion.",
    ),
    key(
        "timeout",
        "integer",
        DefaultValue::Value("3"),
        Allowed::Range {
            min: 1,
            max: 900,
            unit: " seconds",
        },
        "How long one invocation may run (the emulator enforces it too).",
    ),
    key(
        "ephemeral-storage",
        "integer",
        DefaultValue::Value("512"),
        Allowed::Range {
            min: 512,
            max: 10240,
            unit: " MB",
        },
        "Size of `/tmp`.",
    ),
    key(
        "env",
        "table of strings",
        DefaultValue::None,
        Allowed::Count {
            min: 0,
            max: 4096,
            what: "bytes of keys and values in total, `secrets` included",
        },
        "Environment variables. Keys start with a letter, then letters, digits or `_` (2 or more characters), and may not be one Lambda reserves (`AWS_REGION`, `_HANDLER`, ...). Merged entry by entry across layers; values that look like credentials are redacted in output.",
    ),
    key(
        "env-file",
        "path",
        DefaultValue::None,
        Allowed::Rule("a dotenv file, relative to the Cargo.toml that names it"),
        "More environment variables from a file; `env` entries win over it.",
    ),
    key(
        "secrets",
        "table of strings",
        DefaultValue::None,
        Allowed::Rule("`ENV_NAME = \"secret-name-or-arn\"`"),
        "The function gets the Secrets Manager secret's *name* in `ENV_NAME`, never its value.",
    ),
    key(
        "layers",
        "list of strings",
        DefaultValue::None,
        Allowed::Count {
            min: 0,
            max: 5,
            what: "layer version ARNs",
        },
        "Layers attached to the function (`arn:aws:lambda:<region>:<account>:layer:<name>:<version>`).",
    ),
    key(
        "role",
        "string",
        DefaultValue::Derived("created by `deploy`"),
        Allowed::Rule("an IAM role ARN (`arn:aws:iam::<account>:role/<name>`)"),
        "The execution role. Without it, `deploy` creates `cargo-fn-<function>` with the policy the configuration needs (logs, X-Ray, VPC).",
    ),
    key(
        "tracing",
        "string",
        DefaultValue::Value("PassThrough"),
        Allowed::OneOf(&["Active", "PassThrough"]),
        "X-Ray tracing mode.",
    ),
    key(
        "vpc.subnets",
        "list of strings",
        DefaultValue::None,
        Allowed::Count {
            min: 1,
            max: 16,
            what: "subnet IDs (`subnet-...`)",
        },
        "Subnets the function joins; `vpc` needs both lists.",
    ),
    key(
        "vpc.security-groups",
        "list of strings",
        DefaultValue::None,
        Allowed::Count {
            min: 1,
            max: 5,
            what: "security group IDs (`sg-...`)",
        },
        "Security groups of the function's network interfaces.",
    ),
    key(
        "reserved-concurrency",
        "integer",
        DefaultValue::None,
        Allowed::Range {
            min: 0,
            max: 1_000_000,
            unit: "",
        },
        "Reserved concurrent executions (0 throttles every call). The emulator enforces it.",
    ),
    key(
        "provisioned-concurrency.<alias>",
        "integer",
        DefaultValue::None,
        Allowed::Range {
            min: 1,
            max: 1_000_000,
            unit: ", and at most `reserved-concurrency`",
        },
        "Provisioned environments on an alias; merged entry by entry.",
    ),
    key(
        "log-format",
        "string",
        DefaultValue::Value("Text"),
        Allowed::OneOf(&["Text", "JSON"]),
        "CloudWatch log format.",
    ),
    key(
        "log-level",
        "string",
        DefaultValue::None,
        Allowed::OneOf(&["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]),
        "Application log level; only with `log-format = \"JSON\"`.",
    ),
    key(
        "tags",
        "table of strings",
        DefaultValue::None,
        Allowed::Count {
            min: 0,
            max: 50,
            what: "tags",
        },
        "Resource tags. Keys are 1-128 characters not starting with `aws:`, values at most 256. Merged entry by entry.",
    ),
    key(
        "function-url.auth",
        "string",
        DefaultValue::Value("NONE"),
        Allowed::OneOf(&["NONE", "AWS_IAM"]),
        "Who may call the function URL `deploy` creates on the alias: anyone (`NONE`), or SigV4-signed callers.",
    ),
    key(
        "function-url.invoke-mode",
        "string",
        DefaultValue::Value("BUFFERED"),
        Allowed::OneOf(&["BUFFERED", "RESPONSE_STREAM"]),
        "`RESPONSE_STREAM` streams the answer to the HTTP client (locally too).",
    ),
    key(
        "function-url.cors.allow-origins",
        "list of strings",
        DefaultValue::None,
        Allowed::Count {
            min: 0,
            max: 100,
            what: "origins",
        },
        "CORS `Access-Control-Allow-Origin` values.",
    ),
    key(
        "function-url.cors.allow-methods",
        "list of strings",
        DefaultValue::None,
        Allowed::Count {
            min: 0,
            max: 6,
            what: "of `GET PUT HEAD POST PATCH DELETE *`",
        },
        "CORS allowed methods.",
    ),
    key(
        "function-url.cors.allow-headers",
        "list of strings",
        DefaultValue::None,
        Allowed::Count {
            min: 0,
            max: 100,
            what: "headers",
        },
        "CORS allowed request headers.",
    ),
    key(
        "function-url.cors.expose-headers",
        "list of strings",
        DefaultValue::None,
        Allowed::Count {
            min: 0,
            max: 100,
            what: "headers",
        },
        "Response headers the browser may read.",
    ),
    key(
        "function-url.cors.allow-credentials",
        "boolean",
        DefaultValue::Value("false"),
        Allowed::Bool,
        "Whether cookies and credentials are allowed.",
    ),
    key(
        "function-url.cors.max-age",
        "integer",
        DefaultValue::None,
        Allowed::Range {
            min: 0,
            max: 86400,
            unit: " seconds",
        },
        "How long a browser caches a preflight answer.",
    ),
    key(
        "alias",
        "string",
        DefaultValue::Derived("`live` (in `deploy`)"),
        Allowed::Rule("1-128 of `a-z A-Z 0-9 - _`, not all digits"),
        "The alias `deploy` moves when `--alias` is not given.",
    ),
    key(
        "include",
        "list of paths",
        DefaultValue::None,
        Allowed::Rule("relative to the package, never `..`"),
        "Extra files or directories put into the zip beside `bootstrap`.",
    ),
    key(
        "extension",
        "boolean",
        DefaultValue::Value("false"),
        Allowed::Bool,
        "`true` marks the binary as a Lambda extension: packaged under `extensions/`, started by `watch` beside every function.",
    ),
    key(
        "event-format",
        "string",
        DefaultValue::Value("function-url"),
        Allowed::OneOf(&["function-url", "http-api", "rest-api", "alb"]),
        "The event `watch`'s HTTP front builds from a request.",
    ),
    key(
        "package-type",
        "string",
        DefaultValue::Value("zip"),
        Allowed::OneOf(&["zip", "image"]),
        "What `deploy` ships; `image` is what `deploy --image` does.",
    ),
    key(
        "image.repository",
        "string",
        DefaultValue::Derived("the function name, lower case"),
        Allowed::Rule("an ECR repository name"),
        "The ECR repository images are pushed to (created if missing).",
    ),
    key(
        "image.scan-on-push",
        "boolean",
        DefaultValue::Value("true"),
        Allowed::Bool,
        "Scan on push, for a repository `deploy` creates.",
    ),
    key(
        "image.keep",
        "integer",
        DefaultValue::None,
        Allowed::Range {
            min: 1,
            max: 1000,
            unit: " images",
        },
        "Lifecycle policy: keep the newest N images.",
    ),
    key(
        "triggers",
        "array of tables",
        DefaultValue::None,
        Allowed::Rule(
            "each has a `type` (`sqs`, `kinesis`, `dynamodb`, `schedule`, `s3`, `http-api`), a stable `name` and the keys of its type; not in `[workspace.metadata.fn]`",
        ),
        "What invokes the function, connected by `deploy` to the alias it moves (see Triggers).",
    ),
    key(
        "deployment",
        "table",
        DefaultValue::None,
        Allowed::Rule(
            "`{ strategy, alarms (at most 100), pre-traffic, post-traffic, error-threshold (percent, 0-100, default 5) }`; strategy: CodeDeploy's names (`Canary10Percent5Minutes`, `Linear10PercentEvery1Minute`, `AllAtOnce`, ...)",
        ),
        "How `deploy` shifts the alias to a new version: gradually, with alarms, hooks and automatic rollback (see Gradual rollouts).",
    ),
    key(
        "durable.execution-timeout",
        "integer or duration string",
        DefaultValue::Value("900"),
        Allowed::Range {
            min: 1,
            max: 31_622_400,
            unit: " seconds (or a duration such as `90m`, `12h`, `1d`)",
        },
        "Makes the function a durable function (`DurableConfig.ExecutionTimeout`): how long one execution may run across all its invocations; `watch`'s local durable service enforces it on its clock. A synchronous invoke needs 900 or less (Lambda's limit). `durable = true` takes every default.",
    ),
    key(
        "durable.retention-days",
        "integer",
        DefaultValue::Value("14"),
        Allowed::Range {
            min: 1,
            max: 90,
            unit: " days",
        },
        "How long an ended execution's history is kept (`DurableConfig.RetentionPeriodInDays`).",
    ),
    key(
        "log-group",
        "string",
        DefaultValue::Derived("`/aws/lambda/<name>`"),
        Allowed::Rule("1-512 characters of letters, digits and `_ - . / #`"),
        "The CloudWatch log group the function logs to (`LoggingConfig.LogGroup`; the managed role may write there) and `cargo fn logs --remote` reads.",
    ),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    use serde_json::{Map, Value, json};

    use super::*;
    use crate::config::{KEYS, Overrides, resolve_with_env};
    use crate::project::{FunctionTarget, Project};

    /// Resolves `[package.metadata.fn]` = `table` through the real layers and validation.
    fn resolve(table: Value) -> anyhow::Result<Value> {
        let project = Project {
            workspace_root: PathBuf::from("/ws"),
            workspace_manifest: PathBuf::from("/ws/Cargo.toml"),
            target_dir: PathBuf::from("/ws/target"),
            workspace_metadata: Value::Null,
            functions: vec![FunctionTarget {
                package: "pkg".into(),
                bin: "hello".into(),
                manifest_path: PathBuf::from("/ws/pkg/Cargo.toml"),
                package_metadata: json!({ "fn": table }),
                src_path: PathBuf::from("/ws/pkg/src/main.rs"),
            }],
        };
        let mut configs = resolve_with_env(&project, &Overrides::default(), &BTreeMap::new())?;
        let mut v = crate::config::redacted_json(&configs.remove(0));
        v.as_object_mut().unwrap().remove("sources");
        Ok(v)
    }

    /// A table setting the dotted `key` to `value`, with whatever the key
    /// needs beside it to be valid on its own.
    fn setting(key: &str, value: Value) -> Value {
        let parts: Vec<&str> = key.split('.').collect();
        let mut v = value;
        for part in parts.iter().skip(1).rev() {
            let part = if *part == "<alias>" { "live" } else { part };
            v = Value::Object(Map::from_iter([(part.to_string(), v)]));
        }
        let mut table = Map::from_iter([(parts[0].to_string(), v)]);
        match parts[0] {
            "vpc" => {
                let vpc = table["vpc"].as_object_mut().unwrap();
                vpc.entry("subnets").or_insert(json!(["subnet-1"]));
                vpc.entry("security-groups").or_insert(json!(["sg-1"]));
            }
            "log-level" => {
                table.insert("log-format".into(), json!("JSON"));
            }
            _ => {}
        }
        Value::Object(table)
    }

    /// A value of `n` units for a [`Allowed::Count`] key.
    fn of_size(key: &str, n: usize) -> Value {
        let list = |f: &dyn Fn(usize) -> String| Value::from((0..n).map(f).collect::<Vec<_>>());
        match key {
            "name" => json!("a".repeat(n)),
            // One entry whose key and value add up to n bytes.
            "env" if n == 0 => json!({}),
            "env" => json!({ "AB": "x".repeat(n - 2) }),
            "layers" => list(&|i| format!("arn:aws:lambda:us-east-1:123456789012:layer:l{i}:1")),
            "vpc.subnets" => list(&|i| format!("subnet-{i}")),
            "vpc.security-groups" => list(&|i| format!("sg-{i}")),
            "tags" => Value::Object((0..n).map(|i| (format!("k{i}"), json!("v"))).collect()),
            "function-url.cors.allow-methods" => {
                let methods = ["GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "*"];
                list(&|i| methods[i % methods.len()].to_string())
            }
            "function-url.cors.allow-origins" => list(&|i| format!("https://o{i}.example")),
            "function-url.cors.allow-headers" | "function-url.cors.expose-headers" => {
                list(&|i| format!("x-h{i}"))
            }
            other => panic!("no sample values for the count key {other}: add one here"),
        }
    }

    fn verdict(key: &str, value: Value) -> Result<(), String> {
        let table = setting(key, value.clone());
        resolve(table)
            .map(|_| ())
            .map_err(|e| format!("{key} = {value}: {e:#}"))
    }

    #[track_caller]
    fn accepted(key: &str, value: Value) {
        if let Err(e) = verdict(key, value) {
            panic!("the reference allows it, the validator rejects it: {e}");
        }
    }

    #[track_caller]
    fn rejected(key: &str, value: Value) {
        if verdict(key, value.clone()).is_ok() {
            panic!("the reference forbids {key} = {value}, the validator accepts it");
        }
    }

    #[test]
    fn every_boundary_in_the_reference_is_the_validators() {
        for doc in REFERENCE {
            match doc.allowed {
                Allowed::Range { min, max, .. } => {
                    accepted(doc.key, json!(min));
                    accepted(doc.key, json!(max));
                    rejected(doc.key, json!(min - 1));
                    rejected(doc.key, json!(max + 1));
                }
                Allowed::Count { min, max, .. } => {
                    accepted(doc.key, of_size(doc.key, min));
                    accepted(doc.key, of_size(doc.key, max));
                    rejected(doc.key, of_size(doc.key, max + 1));
                    if min > 0 {
                        rejected(doc.key, of_size(doc.key, min - 1));
                    }
                }
                Allowed::OneOf(choices) => {
                    for choice in choices {
                        accepted(doc.key, json!(choice));
                    }
                    rejected(doc.key, json!("not-a-choice"));
                }
                Allowed::Bool => {
                    accepted(doc.key, json!(true));
                    accepted(doc.key, json!(false));
                    rejected(doc.key, json!("yes"));
                }
                Allowed::Rule(_) => {}
            }
        }
    }

    /// Setting a key to its documented default changes nothing.
    #[test]
    fn every_stated_default_is_the_resolved_default() {
        for doc in REFERENCE {
            let DefaultValue::Value(text) = doc.default else {
                continue;
            };
            let value: Value = serde_json::from_str(text).unwrap_or_else(|_| json!(text));
            // Nested keys: compare against their parent table set but empty.
            let parent = match doc.key.rsplit_once('.') {
                Some((parent, _)) => setting(parent, json!({})),
                None => json!({}),
            };
            let unset = resolve(parent).unwrap();
            let set = resolve(setting(doc.key, value)).unwrap();
            assert_eq!(
                set, unset,
                "the reference says {} defaults to {text}, the validator's default differs",
                doc.key
            );
        }
    }

    /// A key the loader accepts but the reference lacks (or the reverse) fails here.
    #[test]
    fn the_reference_lists_exactly_the_loaders_keys() {
        let documented: BTreeSet<&str> = REFERENCE
            .iter()
            .map(|d| d.key.split('.').next().unwrap())
            .collect();
        let loaded: BTreeSet<&str> = KEYS.iter().map(|(k, _)| *k).collect();
        assert_eq!(documented, loaded);
    }

    /// The range test above would pass vacuously for a key described only in words.
    #[test]
    fn the_known_limits_are_ranges_not_prose() {
        for limited in ["memory", "timeout", "ephemeral-storage", "layers", "tags"] {
            let doc = REFERENCE.iter().find(|d| d.key == limited).unwrap();
            assert!(
                !matches!(doc.allowed, Allowed::Rule(_)),
                "{limited} has a checked limit"
            );
        }
    }
}
