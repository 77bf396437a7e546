//! The route table of local HTTP APIs: which function an HTTP request goes
//! to, matched the way API Gateway HTTP APIs match routes, and the
//! route-dependent parts of its event (`routeKey`, `pathParameters`, stage).
//!
//! Pure: no I/O, no configuration types. `watch` translates the configured
//! `http-api` triggers into [`HttpRoute`]s; `http_front.rs` asks
//! [`RouteTable::find`] for each request outside `/lambda-url/<fn>/`.
//!
//! Matching, as API Gateway documents it: the most specific route wins. A
//! route whose segments are all literal beats one with `{param}` segments,
//! which beats one ending in a greedy `{name+}`; comparing segment by
//! segment from the left, a literal beats a parameter beats a greedy
//! parameter; on equal paths a route for the request's method beats `ANY`;
//! `$default` matches only when no route does. A named stage is the first
//! path segment (`/prod/items`), and `$default` serves at the root. All APIs
//! share one address locally, so a stage prefix counts as a literal segment.

use super::http_event::CorsPolicy;

/// The event version an HTTP API route sends its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadFormat {
    /// `1.0`: REST-style event with multi-value maps.
    V1,
    /// `2.0`: the HTTP API event.
    V2,
}

/// One configured route of an HTTP API.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRoute {
    /// The Lambda function the route invokes.
    pub function: String,
    /// `GET /items/{id}`, `ANY /{proxy+}` or `$default`.
    pub route_key: String,
    /// `$default` (served at the root) or a stage name (a path prefix).
    pub stage: String,
    pub payload: PayloadFormat,
    /// The API's CORS configuration; preflights are answered without the
    /// function, as API Gateway does when CORS is configured.
    pub cors: Option<CorsPolicy>,
    /// The API this route belongs to (for `apiId` in the event), e.g. the
    /// trigger name.
    pub api: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

impl Segment {
    /// Higher is more specific.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
            Segment::Greedy(_) => 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Compiled {
    /// `None` for `ANY` and `$default`.
    method: Option<String>,
    /// `None` for `$default`.
    segments: Option<Vec<Segment>>,
    route: HttpRoute,
}

/// A request matched to a route.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch<'a> {
    pub route: &'a HttpRoute,
    /// `{name}` -> decoded value, in route order; empty for `$default`.
    pub path_parameters: Vec<(String, String)>,
    /// The route's path template (`/items/{id}`), `$default` for the
    /// default route: REST-style `resource`.
    pub resource: String,
}

/// Every HTTP API route served, across functions.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Compiled>,
}

impl RouteTable {
    /// Compiles `routes`. A route key that does not parse is refused with
    /// its function and key named (configuration validates them first).
    pub fn new(routes: Vec<HttpRoute>) -> Result<RouteTable, String> {
        let mut out = Vec::new();
        for route in routes {
            let (method, segments) = parse_key(&route.route_key).ok_or_else(|| {
                format!(
                    "route `{}` of `{}`: expected `$default` or `METHOD /path`",
                    route.route_key, route.function
                )
            })?;
            out.push(Compiled {
                method,
                segments,
                route,
            });
        }
        Ok(RouteTable { routes: out })
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The route `method path` goes to, or `None` (API Gateway's 404).
    pub fn find(&self, method: &str, path: &str) -> Option<RouteMatch<'_>> {
        let request: Vec<&str> = split(path);
        let mut best: Option<(Vec<u8>, bool, RouteMatch<'_>)> = None;
        let mut default: Option<(bool, RouteMatch<'_>)> = None;
        for c in &self.routes {
            let stage = (c.route.stage != "$default").then_some(c.route.stage.as_str());
            let rest = match stage {
                Some(s) => match request.split_first() {
                    Some((first, rest)) if *first == s => rest,
                    _ => continue,
                },
                None => &request[..],
            };
            let Some(segments) = &c.segments else {
                // `$default`: one per stage; a named stage's beats the root's.
                if default.as_ref().is_none_or(|(staged, _)| !staged) {
                    default = Some((
                        stage.is_some(),
                        RouteMatch {
                            route: &c.route,
                            path_parameters: Vec::new(),
                            resource: "$default".into(),
                        },
                    ));
                }
                continue;
            };
            if c.method.as_deref().is_some_and(|m| m != method) {
                continue;
            }
            let Some(params) = match_segments(segments, rest) else {
                continue;
            };
            let mut rank: Vec<u8> = Vec::new();
            if stage.is_some() {
                rank.push(Segment::Literal(String::new()).rank());
            }
            rank.extend(segments.iter().map(Segment::rank));
            let exact_method = c.method.is_some();
            let better = match &best {
                None => true,
                Some((r, m, _)) => (&rank, exact_method) > (r, *m),
            };
            if better {
                let resource = c
                    .route
                    .route_key
                    .split_once(' ')
                    .map(|(_, p)| p.to_string())
                    .unwrap_or_default();
                best = Some((
                    rank,
                    exact_method,
                    RouteMatch {
                        route: &c.route,
                        path_parameters: params,
                        resource,
                    },
                ));
            }
        }
        best.map(|(_, _, m)| m).or(default.map(|(_, m)| m))
    }
}

impl RouteMatch<'_> {
    /// The route-dependent fields of the event for this match.
    pub(crate) fn routed(&self) -> Routed {
        Routed {
            route_key: self.route.route_key.clone(),
            stage: self.route.stage.clone(),
            path_parameters: self.path_parameters.clone(),
            resource: self.resource.clone(),
        }
    }
}

/// What a matched route changes in the event the HTTP front builds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Routed {
    pub route_key: String,
    pub stage: String,
    pub path_parameters: Vec<(String, String)>,
    pub resource: String,
}

impl Routed {
    /// Fills the route's fields into an HTTP API event (`v2`) or a payload
    /// 1.0 event, as API Gateway sends them: `routeKey`, `pathParameters`
    /// (absent in 2.0 and `null` in 1.0 when there are none), the stage;
    /// in 1.0 also `version`, `resource` and `resourcePath`. The paths keep
    /// the stage prefix (HTTP APIs do not strip it).
    pub(crate) fn apply(&self, event: &mut serde_json::Value, v2: bool) {
        use serde_json::{Map, Value, json};
        let params: Map<String, Value> = self
            .path_parameters
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        let Some(obj) = event.as_object_mut() else {
            return;
        };
        if v2 {
            obj.insert("routeKey".into(), json!(self.route_key));
            if params.is_empty() {
                obj.remove("pathParameters");
            } else {
                obj.insert("pathParameters".into(), Value::Object(params));
            }
        } else {
            obj.insert("version".into(), json!("1.0"));
            obj.insert("resource".into(), json!(self.resource));
            let params = if params.is_empty() {
                Value::Null
            } else {
                Value::Object(params)
            };
            obj.insert("pathParameters".into(), params);
        }
        if let Some(ctx) = obj.get_mut("requestContext").and_then(Value::as_object_mut) {
            ctx.insert("routeKey".into(), json!(self.route_key));
            ctx.insert("stage".into(), json!(self.stage));
            if !v2 {
                ctx.insert("resourcePath".into(), json!(self.resource));
            }
        }
    }
}

/// Path segments, ignoring empty ones (a trailing slash).
fn split(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

type ParsedKey = (Option<String>, Option<Vec<Segment>>);

fn parse_key(key: &str) -> Option<ParsedKey> {
    if key == "$default" {
        return Some((None, None));
    }
    let (method, path) = key.split_once(' ')?;
    if !path.starts_with('/') {
        return None;
    }
    let segments = split(path)
        .into_iter()
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(p) => match p.strip_suffix('+') {
                    Some(g) => Segment::Greedy(g.to_string()),
                    None => Segment::Param(p.to_string()),
                },
                None => Segment::Literal(s.to_string()),
            },
        )
        .collect();
    let method = (method != "ANY").then(|| method.to_string());
    Some((method, Some(segments)))
}

/// The path parameters when `request` fits `route`.
fn match_segments(route: &[Segment], request: &[&str]) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    for (i, seg) in route.iter().enumerate() {
        match seg {
            Segment::Greedy(name) => {
                // At least one segment, the rest of the path joined.
                if i >= request.len() {
                    return None;
                }
                let rest: Vec<String> = request[i..].iter().map(|s| decode(s)).collect();
                params.push((name.clone(), rest.join("/")));
                return Some(params);
            }
            Segment::Literal(l) => {
                if request.get(i) != Some(&l.as_str()) {
                    return None;
                }
            }
            Segment::Param(name) => {
                let value = request.get(i)?;
                params.push((name.clone(), decode(value)));
            }
        }
    }
    (route.len() == request.len()).then_some(params)
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(function: &str, key: &str, stage: &str) -> HttpRoute {
        HttpRoute {
            function: function.into(),
            route_key: key.into(),
            stage: stage.into(),
            payload: PayloadFormat::V2,
            cors: None,
            api: "api".into(),
        }
    }

    fn table(routes: &[(&str, &str)]) -> RouteTable {
        RouteTable::new(
            routes
                .iter()
                .map(|(f, k)| route(f, k, "$default"))
                .collect(),
        )
        .unwrap()
    }

    fn found(t: &RouteTable, method: &str, path: &str) -> Option<(String, Vec<(String, String)>)> {
        t.find(method, path).map(|m| {
            (
                format!("{} {}", m.route.function, m.route.route_key),
                m.path_parameters,
            )
        })
    }

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn most_specific_route_wins() {
        let t = table(&[
            ("proxy", "ANY /{proxy+}"),
            ("items", "GET /items/{id}"),
            ("new", "GET /items/new"),
            ("any", "ANY /items/{id}"),
            ("sub", "GET /items/{id}/{rest+}"),
            ("dflt", "$default"),
        ]);
        assert_eq!(
            found(&t, "GET", "/items/new"),
            Some(("new GET /items/new".into(), vec![]))
        );
        assert_eq!(
            found(&t, "GET", "/items/42"),
            Some(("items GET /items/{id}".into(), p(&[("id", "42")])))
        );
        // The method-specific route does not take POST; ANY on the same path does.
        assert_eq!(
            found(&t, "POST", "/items/42"),
            Some(("any ANY /items/{id}".into(), p(&[("id", "42")])))
        );
        assert_eq!(
            found(&t, "GET", "/items/42/a/b%20c"),
            Some((
                "sub GET /items/{id}/{rest+}".into(),
                p(&[("id", "42"), ("rest", "a/b c")])
            ))
        );
        assert_eq!(
            found(&t, "DELETE", "/other/x"),
            Some(("proxy ANY /{proxy+}".into(), p(&[("proxy", "other/x")])))
        );
        // A greedy variable needs at least one segment: `/` is the default route's.
        assert_eq!(
            found(&t, "GET", "/"),
            Some(("dflt $default".into(), vec![]))
        );
    }

    #[test]
    fn unmatched_without_default_is_none() {
        let t = table(&[("a", "GET /items"), ("b", "POST /items/{id}")]);
        assert_eq!(found(&t, "POST", "/items"), None);
        assert_eq!(found(&t, "GET", "/items/1"), None);
        assert_eq!(found(&t, "GET", "/items/1/2"), None);
        assert_eq!(
            found(&t, "GET", "/items/"),
            Some(("a GET /items".into(), vec![]))
        );
        assert_eq!(found(&t, "GET", "/"), None);
    }

    #[test]
    fn root_route_and_stage_prefix() {
        let t = RouteTable::new(vec![
            route("root", "GET /", "$default"),
            route("staged", "GET /items/{id}", "prod"),
            route("staged", "$default", "prod"),
        ])
        .unwrap();
        assert_eq!(found(&t, "GET", "/"), Some(("root GET /".into(), vec![])));
        let m = t.find("GET", "/prod/items/7").unwrap();
        assert_eq!(m.route.stage, "prod");
        assert_eq!(m.path_parameters, p(&[("id", "7")]));
        assert_eq!(m.resource, "/items/{id}");
        // Without the stage prefix the staged API does not answer.
        assert_eq!(found(&t, "GET", "/items/7"), None);
        let m = t.find("PUT", "/prod/x").unwrap();
        assert_eq!(m.route.route_key, "$default");
        assert_eq!(m.resource, "$default");
    }

    #[test]
    fn bad_keys_are_named() {
        let err = RouteTable::new(vec![route("f", "GET items", "$default")]).unwrap_err();
        assert!(err.contains("`GET items`") && err.contains("`f`"), "{err}");
    }
}
