//! The local Lambda emulator: the Invoke API (`2015-03-31`) for callers, the
//! Runtime API (`2018-06-01`) for function processes, and execution
//! environments managed the way Lambda manages them (one invocation at a
//! time per environment, warm reuse, concurrency limits, timeouts, resets).
//!
//! **Invariant:** this module knows nothing of cargo, configuration files or
//! AWS SDKs. It is given plain [`FunctionSpec`]s (a name, a command, an
//! environment, memory, timeout, limits) and serves them. Swapping a spec
//! (hot reload) is [`Emulator::set_function`]: invocations in flight finish on
//! the old code, new ones get the new code.
//!
//! Each environment gets its own Runtime API listener on an ephemeral
//! loopback port, so `AWS_LAMBDA_RUNTIME_API` stays a plain `host:port` (as
//! the contract requires of every runtime client) and requests are
//! attributed to their environment by the socket they arrive on. The same
//! listener serves the Extensions API (`2020-01-01`), the Telemetry API
//! (`2022-07-01`) and the legacy Logs API to the environment's external
//! extensions ([`FunctionSpec::extensions`]), which start and end with it.
//! That listener admits only the environment's own processes ([`peer`]).
//!
//! The Invoke API listens on both loopback addresses (127.0.0.1 and ::1)
//! when bound to one of them, so `localhost` works whichever its clients
//! resolve first.

mod api_error;
mod env_state;
mod environment;
mod event_stream;
mod extensions;
mod extensions_api;
mod history;
mod http_event;
mod http_front;
mod http_routes;
#[cfg(test)]
mod import_order;
mod invoke_api;
mod limits;
mod log_pipe;
mod log_writer;
mod peer;
mod pool;
mod process_group;
mod report;
mod runtime_api;
mod server;
mod streaming;
mod telemetry;
mod telemetry_api;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinHandle;

pub use http_event::{CorsPolicy, HttpEventFormat};
pub use http_front::{HttpFront, InvokeMode};
pub use http_routes::{HttpRoute, PayloadFormat, RouteTable};
pub use invoke_api::InvocationType;
pub use invoke_api::MAX_SYNC_REQUEST;
pub use limits::{HOW_TO_ENABLE, LimitsStatus, MAX_VCPUS, MB_PER_VCPU, vcpus};
pub use report::{Architecture, cost_estimate};

use pool::FunctionPool;

/// Lambda's account id for local ARNs (the one the AWS runtime interface
/// emulator uses, so logs look familiar).
pub const LOCAL_ACCOUNT_ID: &str = "012345678912";

/// One function as the emulator sees it.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    /// The Lambda function name (what callers put in the Invoke path).
    pub name: String,
    /// The executable that implements the Runtime API (the `bootstrap`).
    pub command: PathBuf,
    pub args: Vec<String>,
    /// Working directory and `LAMBDA_TASK_ROOT`; the command's directory when `None`.
    pub working_dir: Option<PathBuf>,
    /// The function's own environment (configuration, env file, and
    /// credentials when the developer asked for them). Lambda's reserved
    /// variables are set by the emulator and win over these.
    pub env: BTreeMap<String, String>,
    pub memory_mb: u32,
    pub timeout: Duration,
    /// Reserved concurrency: at most this many invocations at once (429 beyond).
    pub reserved_concurrency: Option<u32>,
    pub architecture: Architecture,
    /// How the HTTP front turns requests into events for this function.
    pub http: HttpFront,
    /// External extensions started beside the function in every
    /// environment (Lambda's `/opt/extensions/*`); each registers under its
    /// file name.
    pub extensions: Vec<PathBuf>,
    /// Aliases the function answers to besides `$LATEST` (same code);
    /// any other qualifier is an unknown version or alias (404).
    pub aliases: Vec<String>,
    /// Lambda Managed Instances: each environment serves up to this many
    /// invocations at once (`AWS_LAMBDA_MAX_CONCURRENCY`, several `/next`
    /// polls open); a new environment starts only when every slot of the
    /// others is busy. `None`: one invocation per environment.
    pub max_concurrency: Option<u32>,
    /// vCPUs per environment when they do not follow memory as on Lambda
    /// (managed instances: memory / the memory-per-vCPU ratio).
    pub vcpus: Option<f64>,
}

impl FunctionSpec {
    /// A spec with Lambda's defaults (128 MB, 3 s, x86_64).
    pub fn new(name: impl Into<String>, command: impl Into<PathBuf>) -> Self {
        FunctionSpec {
            name: name.into(),
            command: command.into(),
            args: Vec::new(),
            working_dir: None,
            env: BTreeMap::new(),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
            reserved_concurrency: None,
            architecture: Architecture::X86_64,
            http: HttpFront::default(),
            extensions: Vec::new(),
            aliases: Vec::new(),
            max_concurrency: None,
            vcpus: None,
        }
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The function's stdout or stderr.
    Function,
    /// START, END, REPORT and the cost estimate, written by the emulator.
    Platform,
    /// An external extension's stdout or stderr (prefixed with its name).
    Extension,
}

/// One line of an environment's log.
#[derive(Debug, Clone, Copy)]
pub struct LogLine<'a> {
    pub function: &'a str,
    /// Environment number, unique within one emulator.
    pub environment: u64,
    pub stream: LogStream,
    pub text: &'a str,
}

/// Receives every log line of every environment.
pub type LogSink = Arc<dyn Fn(LogLine<'_>) + Send + Sync>;

/// A sink that writes `[function#env] line` to stderr, from a writer
/// thread (`log_writer.rs`), flushed at exit.
pub fn stderr_sink() -> LogSink {
    Arc::new(move |line: LogLine<'_>| {
        log_writer::stderr().line(format_args!(
            "[{}#{}] {}",
            line.function, line.environment, line.text
        ));
    })
}

/// How the emulator is started.
#[derive(Clone)]
pub struct EmulatorOptions {
    /// Address of the Invoke API; 127.0.0.1:9000 by default. A loopback
    /// address also gets the other loopback (::1 beside 127.0.0.1, on the
    /// same port) when it is free.
    pub bind: SocketAddr,
    /// Most invocations running at once across all functions (Lambda's
    /// account concurrency); 429 beyond.
    pub concurrency: usize,
    pub region: String,
    pub log_sink: LogSink,
    /// Enforce Lambda's memory and CPU limits with cgroups (`limits.rs`).
    pub limits: bool,
    /// More routes served on the Invoke API's address (the dashboard);
    /// the emulator serves them as given.
    pub routes: Option<axum::Router>,
    /// Consulted before every route of the Invoke API's address (local AWS
    /// services answer `POST /` with an `X-Amz-Target`): it answers the
    /// request, or hands it back for the emulator's own routes.
    pub front: Option<FrontHook>,
}

/// A handler run ahead of the emulator's routes: `Ok(response)` when it
/// served the request, `Err(request)` (unchanged) to pass it on.
pub type FrontHook = Arc<
    dyn Fn(
            axum::extract::Request,
        ) -> futures_util::future::BoxFuture<
            'static,
            std::result::Result<axum::response::Response, axum::extract::Request>,
        > + Send
        + Sync,
>;

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 9000)),
            concurrency: 8,
            region: "us-east-1".to_string(),
            log_sink: stderr_sink(),
            limits: false,
            routes: None,
            front: None,
        }
    }
}

impl std::fmt::Debug for EmulatorOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorOptions")
            .field("bind", &self.bind)
            .field("concurrency", &self.concurrency)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// State shared by every function pool and environment.
pub(crate) struct Shared {
    pub options: EmulatorOptions,
    /// Invocations running now, across functions.
    pub running: AtomicUsize,
    pub closed: AtomicBool,
    pub next_env_id: AtomicU64,
    /// Process groups of live environments, for shutdown.
    pub processes: Mutex<HashMap<u64, Arc<process_group::ProcessGroup>>>,
    /// Environments in their shutdown phase (extensions handling SHUTDOWN).
    pub shutting_down: AtomicUsize,
    /// Answered invocations whose END, REPORT and history entry are still
    /// being written.
    pub accounting: AtomicUsize,
    pub functions: RwLock<HashMap<String, Arc<FunctionPool>>>,
    /// The function that serves HTTP paths outside `/lambda-url/<fn>/`.
    pub default_function: RwLock<Option<String>>,
    /// HTTP API routes, matched before the default function.
    pub http_routes: RwLock<Arc<http_routes::RouteTable>>,
    /// Per-environment cgroups, when limits are on and usable.
    pub limits: Option<limits::Limits>,
    /// Finished invocations, for `cargo fn logs` and the dashboard.
    pub history: history::History,
}

impl Shared {
    /// Waits (up to 50 ms) until answered invocations are in the history,
    /// so a caller that has its answer finds it there.
    pub async fn settled(&self) {
        for round in 0..60 {
            if self.accounting.load(Ordering::SeqCst) == 0 {
                return;
            }
            if round < 10 {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }

    pub fn function(&self, name: &str) -> Option<Arc<FunctionPool>> {
        self.functions
            .read()
            .expect("functions lock")
            .get(name)
            .cloned()
    }
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] still
/// kills every function process.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Option<JoinHandle<()>>,
    limits: LimitsStatus,
}

impl Emulator {
    /// Binds the Invoke API and starts serving `functions`. Environments
    /// start lazily, on the first invocation.
    pub async fn start(options: EmulatorOptions, functions: Vec<FunctionSpec>) -> Result<Emulator> {
        let listener = tokio::net::TcpListener::bind(options.bind)
            .await
            .with_context(|| {
                format!(
                    "could not listen on {} for the Invoke API (use --port or --bind to pick another address)",
                    options.bind
                )
            })?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let (limits, limits_status) = limits::start(options.limits);
        let mut listeners = vec![listener];
        if let Some(twin) = loopback_twin(addr.ip()) {
            // Best effort: a machine without IPv6 still serves 127.0.0.1.
            match tokio::net::TcpListener::bind((twin, addr.port())).await {
                Ok(l) => listeners.push(l),
                Err(e) => tracing::debug!("not listening on {twin} as well: {e}"),
            }
        }
        let extra_routes = options.routes.clone().unwrap_or_default();
        let front = options.front.clone();
        let shared = Arc::new(Shared {
            options,
            running: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            next_env_id: AtomicU64::new(1),
            processes: Mutex::new(HashMap::new()),
            shutting_down: AtomicUsize::new(0),
            accounting: AtomicUsize::new(0),
            functions: RwLock::new(HashMap::new()),
            default_function: RwLock::new(None),
            http_routes: RwLock::new(Arc::default()),
            limits,
            history: history::History::default(),
        });
        // The Invoke API, the HTTP front (`/lambda-url/...`, and any other
        // path when one function serves it), the invocation history.
        let mut app = http_front::routes(invoke_api::routes())
            .merge(history::routes())
            .fallback(http_front::fallback)
            .with_state(shared.clone())
            .merge(extra_routes);
        if let Some(front) = front {
            app = app.layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let front = front.clone();
                    async move {
                        match front(req).await {
                            Ok(resp) => resp,
                            Err(req) => next.run(req).await,
                        }
                    }
                },
            ));
        }
        let emulator = Emulator {
            shared: shared.clone(),
            addr,
            limits: limits_status,
            server: Some(server::spawn(
                listeners,
                app,
                server::ServeOptions::default(),
            )),
        };
        for spec in functions {
            emulator.set_function(spec);
        }
        Ok(emulator)
    }

    /// The address the Invoke API listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether Lambda's memory and CPU limits are enforced, and how (or
    /// why not): for a one-time notice at start.
    pub fn limits(&self) -> &LimitsStatus {
        &self.limits
    }

    /// The endpoint URL to give Invoke API clients: an IP literal, which
    /// every client reaches without a name lookup.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Adds a function, or replaces its spec (hot reload): invocations in
    /// flight finish on their environment; idle environments of the old spec
    /// are stopped; new invocations start environments from the new spec.
    pub fn set_function(&self, spec: FunctionSpec) {
        let existing = self.shared.function(&spec.name);
        match existing {
            Some(pool) => pool.replace_spec(spec),
            None => {
                let name = spec.name.clone();
                let pool = FunctionPool::new(self.shared.clone(), spec);
                self.shared
                    .functions
                    .write()
                    .expect("functions lock")
                    .insert(name, pool);
            }
        }
    }

    /// Makes `name` the function that serves every HTTP path outside
    /// `/lambda-url/<function>/` (without one, only a lone function does).
    /// Fails when no such function is served.
    pub fn set_default(&self, name: Option<&str>) -> Result<()> {
        if let Some(name) = name
            && self.shared.function(name).is_none()
        {
            anyhow::bail!(
                "cannot make `{name}` the default function: it is not served (served: {})",
                self.functions().join(", ")
            );
        }
        *self.shared.default_function.write().expect("default lock") = name.map(str::to_string);
        Ok(())
    }

    /// Serves these HTTP API routes (replacing the previous ones) on every
    /// path outside `/lambda-url/<function>/`: a matching route goes to its
    /// function with API Gateway's event; without a match the default
    /// function serves, or, without one, API Gateway's 404.
    pub fn set_http_routes(&self, routes: Vec<HttpRoute>) -> Result<()> {
        let table = RouteTable::new(routes).map_err(anyhow::Error::msg)?;
        *self.shared.http_routes.write().expect("routes lock") = Arc::new(table);
        Ok(())
    }

    /// Stops serving a function; its environments end after their invocation.
    pub fn remove_function(&self, name: &str) {
        let pool = self
            .shared
            .functions
            .write()
            .expect("functions lock")
            .remove(name);
        if let Some(pool) = pool {
            pool.close();
        }
    }

    /// A handle for in-process invocations (event source pollers), valid
    /// while the emulator runs.
    pub fn invoker(&self) -> Invoker {
        Invoker(self.shared.clone())
    }

    /// Names of the functions served.
    pub fn functions(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .shared
            .functions
            .read()
            .expect("functions lock")
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Stops accepting invocations, lets running ones end (up to 2 s), gives
    /// the extensions of the environments their SHUTDOWN (reason `spindown`,
    /// up to the 2 s shutdown phase), kills every function process (whole
    /// process groups) and waits until they are gone.
    pub async fn shutdown(mut self) {
        self.close_functions();
        // An answered invocation whose extensions are still at work ends
        // first (briefly), so its environment gets SHUTDOWN like an idle one.
        let grace = tokio::time::Instant::now() + extensions::SHUTDOWN_LIMIT;
        while self.shared.running.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < grace
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let limit = tokio::time::Instant::now() + extensions::SHUTDOWN_LIMIT;
        while self.shared.shutting_down.load(Ordering::SeqCst) > 0
            && tokio::time::Instant::now() < limit
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Waited for: nothing listens on the port once this returns.
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
        self.stop();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self
            .shared
            .processes
            .lock()
            .expect("process table")
            .is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Refuses new invocations and closes every function's pool.
    fn close_functions(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        let pools: Vec<_> = self
            .shared
            .functions
            .write()
            .expect("functions lock")
            .drain()
            .map(|(_, p)| p)
            .collect();
        for pool in pools {
            pool.close();
        }
    }

    fn stop(&mut self) {
        self.close_functions();
        if let Some(server) = self.server.take() {
            server.abort();
        }
        for group in self
            .shared
            .processes
            .lock()
            .expect("process table")
            .values()
        {
            group.kill();
        }
    }
}

/// Invokes functions from inside the process, as Lambda's event source
/// mappings do: synchronously, under the same concurrency limits as the
/// Invoke API, recorded in the history with who called.
#[derive(Clone)]
pub struct Invoker(Arc<Shared>);

/// The outcome of an [`Invoker::invoke`]: a function error, timeout or
/// crash is `function_error: Some(..)` with Lambda's error body.
#[derive(Debug, Clone)]
pub struct Invoked {
    pub request_id: String,
    pub body: bytes::Bytes,
    /// `Some("Unhandled")` when the invocation failed.
    pub function_error: Option<String>,
}

/// Why an [`Invoker::invoke`] did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvokeRefused {
    /// No such function is served (now).
    NoSuchFunction,
    /// Reserved or emulator-wide concurrency is in use, or the emulator is
    /// stopping: back off and retry.
    Throttled,
}

impl std::fmt::Display for InvokeRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvokeRefused::NoSuchFunction => "no such function is served",
            InvokeRefused::Throttled => "throttled (concurrency in use)",
        })
    }
}

impl std::error::Error for InvokeRefused {}

impl Invoker {
    /// Synchronous (`RequestResponse`) invocation of `function`'s
    /// `$LATEST` with `payload`; `caller` (e.g. `sqs:orders`) is recorded
    /// in the history. The invocation runs to its end even if the returned
    /// future is dropped, as in Lambda.
    pub async fn invoke(
        &self,
        function: &str,
        payload: bytes::Bytes,
        caller: &str,
    ) -> Result<Invoked, InvokeRefused> {
        let pool = self
            .0
            .function(function)
            .ok_or(InvokeRefused::NoSuchFunction)?;
        let lease = pool.acquire().map_err(|_| InvokeRefused::Throttled)?;
        let request_id = uuid::Uuid::new_v4().to_string();
        self.0.history.note_caller(&request_id, caller);
        let job = pool::Job {
            request_id: request_id.clone(),
            payload,
            qualifier: None,
            client_context: None,
            cognito_identity: None,
            trace_id: invoke_api::trace_id_from(None),
            want_log: false,
        };
        let run = tokio::spawn(async move { pool.run(lease, job).await });
        match run.await {
            Ok(r) => Ok(Invoked {
                request_id,
                body: r.body,
                function_error: r.function_error.map(str::to_string),
            }),
            Err(_) => Ok(Invoked {
                request_id,
                body: bytes::Bytes::from_static(
                    br#"{"errorType":"ServiceException","errorMessage":"the emulator failed while running the invocation"}"#,
                ),
                function_error: Some("Unhandled".to_string()),
            }),
        }
    }

    /// Concurrency of the emulator (`--concurrency`): how far a poller may
    /// scale up by default.
    pub fn concurrency(&self) -> usize {
        self.0.options.concurrency
    }

    /// The region of the emulator's ARNs.
    pub fn region(&self) -> &str {
        &self.0.options.region
    }
}

/// The other loopback address of a loopback address.
fn loopback_twin(ip: IpAddr) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(v4) if v4 == Ipv4Addr::LOCALHOST => Some(Ipv6Addr::LOCALHOST.into()),
        IpAddr::V6(v6) if v6 == Ipv6Addr::LOCALHOST => Some(Ipv4Addr::LOCALHOST.into()),
        _ => None,
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop();
    }
}
