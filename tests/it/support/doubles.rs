//! The AWS doubles the deploy tests run against, behind one type: moto (a
//! fresh one per test, tests/it/support/moto.rs) or LocalStack (one per test run,
//! tests/it/support/localstack.rs), each behind a counting, fault-injecting proxy
//! of the test's own. Test bodies take a [`Double`]; [`both!`] runs a body
//! against each. Resources get unique names ([`Double::name`]) because the
//! LocalStack is shared.
//!
//! What each double cannot do is said by a test's name, never skipped:
//! moto accepts writes that AWS refuses (RevisionId and CodeSha256
//! preconditions are not checked); LocalStack 2026.3 answers UpdateAlias
//! with a RoutingConfig with InternalError and has no ECR here.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use super::localstack::LocalStack;
use super::moto::{Moto, Proxy, client_env, http, http_as};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Moto,
    LocalStack,
}

pub struct Double {
    pub kind: Kind,
    pub proxy: Proxy,
    /// The double's own port (bypassing the proxy and its counters).
    pub port: u16,
    /// Held for its drop (LocalStack lives for the whole run).
    _moto: Option<Moto>,
    id: usize,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

impl Double {
    pub fn start(kind: Kind) -> Double {
        let (port, moto) = match kind {
            Kind::Moto => {
                let moto = Moto::start();
                (moto.port, Some(moto))
            }
            Kind::LocalStack => (LocalStack::shared().port, None),
        };
        Double {
            kind,
            proxy: Proxy::start(port),
            port,
            _moto: moto,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// `base` made unique in this test run (e.g. `hello-7`).
    pub fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.id)
    }

    /// The environment cargo-fn gets: the proxy as its endpoint.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        client_env(self.proxy.url())
    }

    /// A raw Lambda GET straight to the double; panics unless 2xx.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (status, body) = http(self.port, "GET", path, b"");
        // moto answers some reads (GetAlias) with 201.
        assert!(
            (200..300).contains(&status),
            "GET {path} ({:?}): HTTP {status} {}",
            self.kind,
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("JSON")
    }

    /// A raw request to `service` straight to the double.
    pub fn request(&self, service: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
        http_as(self.port, service, method, path, body)
    }
}

/// `both!(body)` makes the tests `body::moto` and `body::localstack`, each
/// calling `body(Double)` with its double.
macro_rules! both {
    ($($body:ident),+ $(,)?) => {$(
        mod $body {
            use $crate::support::doubles::{Double, Kind};
            #[test]
            fn moto() {
                super::$body(Double::start(Kind::Moto));
            }
            #[test]
            fn localstack() {
                super::$body(Double::start(Kind::LocalStack));
            }
        }
    )+};
}
pub(crate) use both;
