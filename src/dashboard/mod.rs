//! The dashboard `cargo fn watch` serves at `/_cargo-fn/` on the emulator's
//! own (loopback) address: one page (HTML, CSS and JS embedded in the
//! binary, no framework, no CDN) and the state the page polls,
//! `GET /_cargo-fn/api/state`:
//!
//! ```json
//! { "build": {"state": "serving", "generation": 3},
//!   "functions": [{"name": "...", "settings": [["memory", "128 MB"], ...]}],
//!   "sections": {"triggers": {...}} }
//! ```
//!
//! Invocations, environments and extensions come from the emulator's own
//! API (`/_cargo-fn/api/invocations`, `events`, `environments`), which the
//! page reads directly. `sections` is where other producers (triggers, a
//! tune report) add their data with [`Dashboard::set_section`]: the page
//! shows a section only when its key is present: `triggers` (the list of
//! `GET /_cargo-fn/api/triggers`, with a "fire now" button per trigger) and
//! `tune` (reports saved on disk, see [`Dashboard::follow_reports`]) have
//! their own rendering, anything else is shown as a generic table.
//!
//! Durable executions (`durable.js`) are read by the page from the local
//! durable execution service's Lambda API on the same address
//! (`/2025-12-01/functions/{name}/durable-executions`, `.../history`) and
//! drawn as timelines; the section stays hidden while there are none.
//!
//! Knows nothing of cargo or configuration: `watch` translates its build
//! state and specs into [`BuildState`] and [`FunctionInfo`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;

use crate::emulator::FunctionSpec;

/// Where the page is served.
pub const PATH: &str = "/_cargo-fn/";

const INDEX: &str = include_str!("../../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../../assets/dashboard/app.js");
const STYLE: &str = include_str!("../../assets/dashboard/app.css");
/// The durable executions section (its own file: it reads the local
/// durable execution service's Lambda API, not the dashboard state).
const DURABLE_SCRIPT: &str = include_str!("../../assets/dashboard/durable.js");

/// The state of the build behind the served code.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum BuildState {
    /// A rebuild runs; `generation` keeps serving.
    Building {
        generation: u64,
    },
    /// The last build failed (the previous generation keeps serving).
    Failed {
        /// The compiler's first error, or the failure itself.
        error: String,
        generation: u64,
    },
    Serving {
        generation: u64,
    },
}

/// One served function and the settings it runs with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionInfo {
    pub name: String,
    /// (setting, value) rows; environment variables by name only.
    pub settings: Vec<(String, String)>,
}

impl FunctionInfo {
    /// What the emulator runs the function with (values of environment
    /// variables are left out: they may be secrets).
    pub fn from_spec(spec: &FunctionSpec) -> FunctionInfo {
        let mut settings = vec![
            ("memory".to_string(), format!("{} MB", spec.memory_mb)),
            (
                "timeout".to_string(),
                format!("{} s", spec.timeout.as_secs_f64()),
            ),
            (
                "architecture".to_string(),
                spec.architecture.as_str().to_string(),
            ),
            ("executable".to_string(), spec.command.display().to_string()),
        ];
        if let Some(n) = spec.reserved_concurrency {
            settings.push(("reserved concurrency".into(), n.to_string()));
        }
        if !spec.env.is_empty() {
            let names: Vec<&str> = spec.env.keys().map(String::as_str).collect();
            settings.push(("environment".into(), names.join(", ")));
        }
        FunctionInfo {
            name: spec.name.clone(),
            settings,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
struct State {
    build: BuildState,
    functions: Vec<FunctionInfo>,
    sections: BTreeMap<String, Value>,
}

/// The dashboard's state; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct Dashboard {
    state: Arc<RwLock<State>>,
}

impl Default for Dashboard {
    fn default() -> Self {
        Dashboard {
            state: Arc::new(RwLock::new(State {
                build: BuildState::Building { generation: 0 },
                functions: Vec::new(),
                sections: BTreeMap::new(),
            })),
        }
    }
}

impl Dashboard {
    /// The generation serving now.
    fn generation(st: &State) -> u64 {
        match st.build {
            BuildState::Building { generation }
            | BuildState::Serving { generation }
            | BuildState::Failed { generation, .. } => generation,
        }
    }

    /// A rebuild started.
    pub fn building(&self) {
        let mut st = self.state.write().expect("dashboard");
        st.build = BuildState::Building {
            generation: Self::generation(&st),
        };
    }

    /// Generation `generation` of `specs` is live.
    pub fn serving(&self, specs: &[FunctionSpec], generation: u64) {
        let mut st = self.state.write().expect("dashboard");
        st.build = BuildState::Serving { generation };
        st.functions = specs.iter().map(FunctionInfo::from_spec).collect();
    }

    /// A build failed; `error` is its message (the first compiler error is
    /// picked out of it when there is one).
    pub fn failed(&self, error: &str) {
        let mut st = self.state.write().expect("dashboard");
        st.build = BuildState::Failed {
            error: first_error(error),
            generation: Self::generation(&st),
        };
    }

    /// Adds or replaces a section of the page. `None`, or no data (an
    /// empty list or object, `null`), removes it: a section appears only
    /// when it has something to show.
    pub fn set_section(&self, key: &str, value: Option<Value>) {
        let value = value.filter(|v| match v {
            Value::Null => false,
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            _ => true,
        });
        let mut st = self.state.write().expect("dashboard");
        match value {
            Some(v) => st.sections.insert(key.to_string(), v),
            None => st.sections.remove(key),
        };
    }

    /// Shows the reports saved as `<dir>/<function>/<file>` (e.g. `cargo
    /// fn tune`'s `target/lambda/<function>/tune.json`) of the functions
    /// served (projects sharing a target directory see only their own) as
    /// section `key`, and shows them again when one is written or removed:
    /// checked every second while the dashboard lives (polling: the
    /// directory may be outside the watched workspace). Needs a tokio
    /// runtime.
    pub fn follow_reports(&self, key: &str, dir: PathBuf, file: &str) {
        let state = Arc::downgrade(&self.state);
        let (key, file) = (key.to_string(), file.to_string());
        tokio::spawn(async move {
            let mut seen = None;
            loop {
                let Some(state) = state.upgrade() else { return };
                let served: Vec<String> = {
                    let st = state.read().expect("dashboard");
                    st.functions.iter().map(|f| f.name.clone()).collect()
                };
                let now = stamps(&dir, &file, &served);
                if seen.as_ref() != Some(&now) {
                    Dashboard { state }.set_section(&key, reports(&now));
                    seen = Some(now);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }

    /// The page and its state, to serve on the emulator's address.
    pub fn router(&self) -> Router {
        let state = self.state.clone();
        Router::new()
            .route("/_cargo-fn", get(|| async { Redirect::permanent(PATH) }))
            .route(
                PATH,
                get(|| async { asset("text/html; charset=utf-8", INDEX) }),
            )
            .route(
                "/_cargo-fn/app.js",
                get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
            )
            .route(
                "/_cargo-fn/durable.js",
                get(|| async { asset("text/javascript; charset=utf-8", DURABLE_SCRIPT) }),
            )
            .route(
                "/_cargo-fn/app.css",
                get(|| async { asset("text/css; charset=utf-8", STYLE) }),
            )
            .route(
                "/_cargo-fn/api/state",
                get(move || {
                    let st = state.read().expect("dashboard").clone();
                    async move { axum::Json(st).into_response() }
                }),
            )
    }
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The first compiler error in a build failure's text (from `error` or
/// `error[E...]` to the next blank line), else the text itself.
fn first_error(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines
        .iter()
        .position(|l| l.starts_with("error[") || l.starts_with("error:"))
    else {
        return text.trim().to_string();
    };
    lines[start..]
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

/// The report files `<dir>/<function>/<file>` of `functions` with their
/// modification time and size, sorted: when this list changes, the
/// section is read again.
fn stamps(dir: &Path, file: &str, functions: &[String]) -> Vec<(PathBuf, SystemTime, u64)> {
    let mut out: Vec<_> = functions
        .iter()
        .filter_map(|f| {
            let path = dir.join(f).join(file);
            let meta = std::fs::metadata(&path).ok()?;
            Some((path, meta.modified().ok()?, meta.len()))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The section of saved reports: `[{"file", "saved_ms", "report"}]`
/// (`"error"` instead of `"report"` for a file that is not JSON), `None`
/// when there is none.
fn reports(stamps: &[(PathBuf, SystemTime, u64)]) -> Option<Value> {
    if stamps.is_empty() {
        return None;
    }
    let items = stamps
        .iter()
        .map(|(path, modified, _)| {
            let saved_ms = modified
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default();
            let mut item =
                serde_json::json!({"file": path.display().to_string(), "saved_ms": saved_ms});
            match std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Value>(&b).map_err(|e| e.to_string()))
            {
                Ok(report) => item["report"] = report,
                Err(e) => item["error"] = Value::String(e),
            }
            item
        })
        .collect();
    Some(Value::Array(items))
}

/// The page's total size in bytes (HTML, CSS and JS), for the report.
pub fn page_weight() -> usize {
    INDEX.len() + SCRIPT.len() + STYLE.len() + DURABLE_SCRIPT.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_error_is_picked_from_compiler_output() {
        let text = "cargo build failed\nwarning: unused\n\nerror[E0425]: cannot find value `x`\n --> src/main.rs:3:5\n\nerror: aborting";
        assert_eq!(
            first_error(text),
            "error[E0425]: cannot find value `x`\n --> src/main.rs:3:5"
        );
        assert_eq!(first_error("no cargo here"), "no cargo here");
    }

    #[test]
    fn environment_values_never_reach_the_page() {
        let mut spec = FunctionSpec::new("f", "/bin/f");
        spec.env.insert("API_KEY".into(), "s3cr3t".into());
        let info = FunctionInfo::from_spec(&spec);
        let text = serde_json::to_string(&info).unwrap();
        assert!(
            text.contains("API_KEY") && !text.contains("s3cr3t"),
            "{text}"
        );
    }

    #[test]
    fn saved_reports_become_a_section_and_bad_files_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let served = ["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(reports(&stamps(dir.path(), "tune.json", &served)), None);
        for (f, text) in [("a", r#"{"function": "a"}"#), ("b", "{not json")] {
            std::fs::create_dir(dir.path().join(f)).unwrap();
            std::fs::write(dir.path().join(f).join("tune.json"), text).unwrap();
        }
        std::fs::create_dir(dir.path().join("c")).unwrap(); // no report
        let before = stamps(dir.path(), "tune.json", &served);
        let section = reports(&before).unwrap();
        let items = section.as_array().unwrap();
        assert_eq!(items.len(), 2, "{section}");
        assert_eq!(items[0]["report"]["function"], "a");
        assert!(items[0]["saved_ms"].as_u64().unwrap() > 0);
        assert!(items[1].get("report").is_none());
        assert!(
            items[1]["error"]
                .as_str()
                .unwrap()
                .contains("key must be a string"),
            "{section}"
        );
        std::fs::write(
            dir.path().join("a/tune.json"),
            r#"{"function": "a", "n": 1}"#,
        )
        .unwrap();
        assert_ne!(
            stamps(dir.path(), "tune.json", &served),
            before,
            "a rewrite is seen"
        );
    }

    #[test]
    fn failure_keeps_the_serving_generation() {
        let d = Dashboard::default();
        d.serving(&[FunctionSpec::new("f", "/bin/f")], 4);
        d.building();
        d.failed("error: expected `;`\n\n");
        let st = d.state.read().unwrap().clone();
        assert_eq!(
            st.build,
            BuildState::Failed {
                error: "error: expected `;`".into(),
                generation: 4
            }
        );
    }
}
