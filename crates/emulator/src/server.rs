//! How the emulator serves HTTP: accept loops over one or more listeners
//! (the Invoke API listens on both loopback addresses), each connection
//! served by hyper with a header-read timeout (a client that opens a
//! connection and never finishes its request headers is cut), Nagle off,
//! the caller's address as [`ConnectInfo`], and optionally an admission
//! check run once per connection (an environment admits only its own
//! processes, see [`super::peer`]).
//!
//! It knows nothing of routes: it is given an axum [`Router`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower::ServiceExt;

/// How long a client may take to send a request's headers (hyper's
/// default when a timer is set; API Gateway and function URLs cut slow
/// clients too).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Decides, once per connection, whether a peer may talk to this server:
/// `(peer, local)` addresses.
pub(crate) type Admit = Arc<dyn Fn(SocketAddr, SocketAddr) -> bool + Send + Sync>;

/// Per-server choices.
#[derive(Clone, Default)]
pub(crate) struct ServeOptions {
    /// Acknowledge reads at once (`TCP_QUICKACK`), for runtimes that stream
    /// small chunks with Nagle's algorithm on (see [`super::streaming::QuickAck`]).
    pub quickack: bool,
    pub admit: Option<Admit>,
    /// The header-read timeout; [`HEADER_READ_TIMEOUT`] when `None`.
    pub header_timeout: Option<Duration>,
}

/// Serves `app` on every listener until the returned task is aborted
/// (connections in progress end on their own). The listeners live in the
/// task itself: once an aborted task's handle resolves, they are closed.
pub(crate) fn spawn(
    listeners: Vec<TcpListener>,
    app: Router,
    options: ServeOptions,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let loops = listeners
            .into_iter()
            .map(|listener| accept_loop(listener, app.clone(), options.clone()));
        futures_util::future::join_all(loops).await;
    })
}

async fn accept_loop(listener: TcpListener, app: Router, options: ServeOptions) {
    let Ok(local) = listener.local_addr() else {
        return;
    };
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off, go on.
                tracing::debug!("accept on {local}: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let app = app.clone();
        let options = options.clone();
        tokio::spawn(async move {
            if let Some(admit) = &options.admit
                && !admit(peer, local)
            {
                return; // dropped: the peer sees the connection closed
            }
            connection(stream, peer, app, &options).await;
        });
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, app: Router, options: &ServeOptions) {
    let _ = stream.set_nodelay(true);
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req.map(Body::new))
        });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout.unwrap_or(HEADER_READ_TIMEOUT));
    let result = if options.quickack {
        let io = TokioIo::new(super::streaming::QuickAck(stream));
        builder.serve_connection(io, service).await
    } else {
        builder
            .serve_connection(TokioIo::new(stream), service)
            .await
    };
    if let Err(e) = result {
        tracing::debug!("connection from {peer}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let options = ServeOptions {
            header_timeout: Some(Duration::from_millis(100)),
            ..ServeOptions::default()
        };
        let server = spawn(vec![listener], app, options);
        let mut conn = TcpStream::connect(addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let cut =
            tokio::time::timeout(Duration::from_secs(60), conn.read_to_end(&mut answer)).await;
        assert!(cut.is_ok(), "the connection was never cut");
        server.abort();
    }

    #[tokio::test]
    async fn refused_peers_get_a_closed_connection_and_the_caller_address_is_known() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = Router::new().route(
            "/",
            axum::routing::get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move {
                peer.to_string()
            }),
        );
        let allow = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = allow.clone();
        let admit: Admit = Arc::new(move |_, _| flag.load(std::sync::atomic::Ordering::SeqCst));
        let server = spawn(
            vec![listener],
            app,
            ServeOptions {
                quickack: true,
                admit: Some(admit),
                header_timeout: None,
            },
        );
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let me = conn.local_addr().unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(&me.to_string()), "{answer}");

        allow.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut conn = TcpStream::connect(addr).await.unwrap();
        let _ = conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut answer = Vec::new();
        let _ = conn.read_to_end(&mut answer).await;
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
        server.abort();
    }
}
