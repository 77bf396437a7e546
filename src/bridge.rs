//! The one bridge from resolved configuration to the emulator: function
//! specs (command, environment, memory, timeout, architecture, aliases),
//! each function's HTTP front, the HTTP API route table, and the triggers
//! and env files each function was configured with.
//!
//! It exists because the emulator knows nothing of configuration (nor of
//! cargo or AWS), while `watch`, `tune` and the dashboard's producers need
//! the same translation: one place, so a function gets the same
//! environment under each of them and as deployed (secrets as their names,
//! as `deploy` sets them). It never resolves configuration itself: callers
//! resolve once and hand the result in.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Arch, EventFormat, FunctionConfig, LogFormat, Trigger};
use crate::emulator::{
    Architecture, CorsPolicy, FunctionSpec, HttpEventFormat, HttpFront, HttpRoute, InvokeMode,
    PayloadFormat,
};
use crate::project::Project;

/// The last `cargo fn tune` report of a function, as JSON, under
/// `<lambda dir>/<function>/`: `tune` writes it, `watch`'s dashboard shows
/// it (its `tune` section). Here so neither has to import the other.
pub const TUNE_REPORT_JSON: &str = "tune.json";

/// How the emulator runs one configured function from `command`: its
/// configured variables, then its secrets (each secret's *name* under its
/// variable, never a value, exactly as deploy sets them: the function
/// resolves them at run time), then `extra_env`, then the log controls
/// Lambda sets. The working directory is the function's package.
pub fn spec(
    cfg: &FunctionConfig,
    command: PathBuf,
    extra_env: &BTreeMap<String, String>,
    project: &Project,
) -> FunctionSpec {
    let mut env = cfg.env.clone();
    env.extend(cfg.secrets.clone());
    env.extend(extra_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(level) = &cfg.log_level {
        env.insert("AWS_LAMBDA_LOG_LEVEL".into(), level.clone());
    }
    let format = match cfg.log_format {
        LogFormat::Text => "Text",
        LogFormat::Json => "JSON",
    };
    env.insert("AWS_LAMBDA_LOG_FORMAT".into(), format.into());
    let working_dir = project
        .functions
        .iter()
        .find(|f| f.bin == cfg.bin)
        .map(|f| f.package_dir().to_path_buf());
    FunctionSpec {
        name: cfg.name.clone(),
        command,
        args: Vec::new(),
        working_dir,
        env,
        memory_mb: cfg.memory,
        timeout: Duration::from_secs(u64::from(cfg.timeout)),
        reserved_concurrency: cfg.reserved_concurrency,
        architecture: match cfg.architecture {
            Arch::X86_64 => Architecture::X86_64,
            Arch::Arm64 => Architecture::Arm64,
        },
        http: Default::default(),
        extensions: Vec::new(),
        // Invocations through the configured alias run this code too.
        aliases: cfg.alias.iter().cloned().collect(),
        // Managed instances: several invocations per environment, and the
        // vCPUs the memory-per-vCPU ratio gives.
        max_concurrency: cfg
            .managed_instances
            .as_ref()
            .map(|m| m.local_max_concurrency()),
        vcpus: cfg
            .managed_instances
            .as_ref()
            .map(|m| f64::from(m.vcpus(cfg.memory))),
    }
}

/// The env files of the configured functions, as absolute paths: edits to
/// them apply on the next generation, even when they are git-ignored.
pub fn env_files(configs: &[FunctionConfig], project: &Project) -> Vec<PathBuf> {
    configs
        .iter()
        .filter_map(|c| c.env_file.as_ref())
        .map(|f| project.workspace_root.join(f))
        .collect()
}

/// The configured triggers of each served function (by Lambda function name).
pub fn triggers(configs: &[FunctionConfig]) -> Vec<(String, Vec<Trigger>)> {
    configs
        .iter()
        .filter(|c| !c.extension)
        .map(|c| (c.name.clone(), c.triggers.clone()))
        .collect()
}

/// The `http-api` triggers of every served function as the emulator's
/// route table (each trigger is one API: its routes, stage, payload
/// format and CORS).
pub fn http_routes(configs: &[FunctionConfig]) -> Vec<HttpRoute> {
    let mut out = Vec::new();
    for cfg in configs.iter().filter(|c| !c.extension) {
        for t in &cfg.triggers {
            let crate::config::triggers::TriggerKind::HttpApi(api) = &t.kind else {
                continue;
            };
            for key in &api.routes {
                out.push(HttpRoute {
                    function: cfg.name.clone(),
                    route_key: key.clone(),
                    stage: api.stage.clone(),
                    payload: if api.payload_format == "1.0" {
                        PayloadFormat::V1
                    } else {
                        PayloadFormat::V2
                    },
                    cors: api.cors.as_ref().map(cors_policy),
                    api: t.name.clone(),
                });
            }
        }
    }
    out
}

fn cors_policy(c: &crate::config::Cors) -> CorsPolicy {
    CorsPolicy {
        allow_origins: c.allow_origins.clone(),
        allow_methods: c.allow_methods.clone(),
        allow_headers: c.allow_headers.clone(),
        expose_headers: c.expose_headers.clone(),
        allow_credentials: c.allow_credentials,
        max_age: c.max_age,
    }
}

/// How the HTTP front serves a function: `--event-format` (`flag`) over
/// the configured `event-format`; CORS from `function-url.cors` when set;
/// streaming with `function-url.invoke-mode = "RESPONSE_STREAM"`.
pub fn http_front(cfg: &FunctionConfig, flag: Option<EventFormat>) -> HttpFront {
    let format = match flag.unwrap_or(cfg.event_format) {
        EventFormat::FunctionUrl => HttpEventFormat::FunctionUrl,
        EventFormat::HttpApi => HttpEventFormat::HttpApi,
        EventFormat::RestApi => HttpEventFormat::RestApi,
        EventFormat::Alb => HttpEventFormat::Alb,
    };
    let cors = cfg
        .function_url
        .as_ref()
        .and_then(|u| u.cors.as_ref())
        .map(cors_policy);
    let invoke_mode = match cfg.function_url.as_ref().map(|u| u.invoke_mode) {
        Some(crate::config::InvokeMode::ResponseStream) => InvokeMode::ResponseStream,
        _ => InvokeMode::Buffered,
    };
    HttpFront {
        format,
        cors,
        invoke_mode,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use serde_json::json;

    use crate::project::{FunctionTarget, Project};

    fn project(package: serde_json::Value) -> Project {
        Project {
            workspace_root: PathBuf::from("/ws"),
            workspace_manifest: PathBuf::from("/ws/Cargo.toml"),
            target_dir: PathBuf::from("/ws/target"),
            workspace_metadata: serde_json::Value::Null,
            functions: vec![FunctionTarget {
                package: "pkg".into(),
                bin: "api".into(),
                manifest_path: PathBuf::from("/ws/pkg/Cargo.toml"),
                package_metadata: package,
                src_path: PathBuf::from("/ws/pkg/src/main.rs"),
            }],
        }
    }

    #[test]
    fn secrets_are_given_to_functions_under_watch_as_their_names() {
        let p = project(json!({ "fn": {
            "env": { "STAGE": "dev" },
            "secrets": { "PAYMENT_API_KEY": "orders/payment-api-key" },
        }}));
        let configs = crate::config::resolve_with_env(&p, &Default::default(), &BTreeMap::new())
            .expect("valid configuration");
        let spec = super::spec(&configs[0], "/bin/api".into(), &BTreeMap::new(), &p);
        assert_eq!(spec.env["STAGE"], "dev");
        // The name, as deploy sets it; the function reads the value itself.
        assert_eq!(spec.env["PAYMENT_API_KEY"], "orders/payment-api-key");
        assert_eq!(spec.working_dir, Some(PathBuf::from("/ws/pkg")));
    }
}
