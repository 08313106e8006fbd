//! Request handling shell: authentication, routing, metrics and JSON/Status responses.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::response::Response;
use axum::Router;
use http::{header, HeaderValue, Method, StatusCode};
use portico_api::resource::ResourceInfo;
use portico_api::status::ApiError;
use portico_api::{discovery, openapi};
use portico_store::SharedStore;
use serde_json::Value;

use crate::alloc::Ranges;
use crate::metrics::Metrics;
use crate::path::{route, Route, Target};
use crate::pki::Material;
use crate::ServerConfig;

/// Largest request body accepted (kube-apiserver's limit is 3 MiB per object).
const MAX_BODY: usize = 3 * 1024 * 1024;

/// Shared server state.
pub(crate) struct AppState {
    pub store: SharedStore,
    admin_token: String,
    node_token: String,
    pub ranges: Ranges,
    pub metrics: Metrics,
    advertise_url: String,
    /// Flips to true when the server shuts down; long-lived watch tasks end on it.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// How `pods/log` reaches node agents.
    pub node_dialer: Option<crate::NodeDialer>,
    /// The NodePorts held by Services (a hint for allocation; see `ports`).
    pub taken_ports: crate::ports::TakenPorts,
}

impl AppState {
    pub(crate) fn new(
        store: SharedStore,
        config: &ServerConfig,
        m: &Material,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            shutdown,
            store,
            admin_token: m.admin_token.clone(),
            node_token: m.node_token.clone(),
            ranges: Ranges {
                cidr: config.service_cluster_ip_range,
                ports: config.service_node_port_range.clone(),
            },
            metrics: Metrics::new(),
            advertise_url: config.advertise_url.clone(),
            node_dialer: config.node_dialer.clone(),
            taken_ports: crate::ports::TakenPorts::default(),
        }
    }

    /// The token agents join with; their log endpoints accept it too.
    pub(crate) fn node_token(&self) -> &str {
        &self.node_token
    }

    fn authorized(&self, headers: &http::HeaderMap) -> bool {
        let Some(token) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
        else {
            return false;
        };
        let token = token.trim();
        constant_time_eq(token, &self.admin_token) || constant_time_eq(token, &self.node_token)
    }
}

/// Token comparison that does not stop at the first differing byte.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// One parsed REST request.
pub(crate) struct Req {
    pub target: Target,
    pub query: HashMap<String, String>,
    pub accept: String,
    pub content_type: String,
    pub user_agent: String,
    pub body: Bytes,
}

impl Req {
    pub(crate) fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub(crate) fn wants_table(&self) -> bool {
        self.accept
            .split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    }

    pub(crate) fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }

    /// `fieldManager`, or the User-Agent's product name as kube-apiserver defaults it.
    pub(crate) fn field_manager(&self) -> String {
        self.q("fieldManager")
            .map(str::to_string)
            .unwrap_or_else(|| {
                self.user_agent
                    .split('/')
                    .next()
                    .unwrap_or("unknown")
                    .to_string()
            })
    }
}

/// Result of a REST handler.
pub(crate) type ApiResult = Result<Response, ApiError>;

/// A JSON response with a code.
pub(crate) fn json(code: u16, v: &Value) -> Response {
    json_bytes(
        code,
        serde_json::to_vec(v).unwrap_or_default(),
        "application/json",
    )
}

pub(crate) fn json_bytes(code: u16, body: Vec<u8>, content_type: &str) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// An error as a `Status` response.
pub(crate) fn error(e: &ApiError) -> Response {
    json(e.code, &e.to_status())
}

pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new().fallback(dispatch).with_state(state)
}

fn verb_of(method: &Method, target: &Target, watch: bool) -> &'static str {
    match (method.as_str(), target.name.is_some()) {
        ("GET", _) if watch => "WATCH",
        ("GET", true) => "GET",
        ("GET", false) => "LIST",
        ("POST", _) => "POST",
        ("PUT", _) => "PUT",
        ("PATCH", _) => "PATCH",
        ("DELETE", true) => "DELETE",
        ("DELETE", false) => "DELETECOLLECTION",
        _ => "OTHER",
    }
}

async fn dispatch(State(st): State<Arc<AppState>>, req: Request) -> Response {
    let started = Instant::now();
    let r = route(req.uri().path());
    if !matches!(r, Route::Health | Route::Version) && !st.authorized(req.headers()) {
        let resp = error(&ApiError::unauthorized());
        st.metrics
            .observe("OTHER", "", 401, started.elapsed().as_secs_f64());
        return resp;
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let (verb, resource, resp) = match r {
        Route::Health => ("GET", "", text(200, "ok")),
        Route::Version => ("GET", "", json(200, &discovery::version_info())),
        Route::Metrics => ("GET", "", text(200, &st.metrics.render())),
        Route::CoreVersions => (
            "GET",
            "",
            discovery_answer(
                &accept,
                discovery::aggregated_core(),
                discovery::api_versions_with_address(&advertise_address(&st.advertise_url)),
            ),
        ),
        Route::Groups => (
            "GET",
            "",
            discovery_answer(
                &accept,
                discovery::aggregated_groups(),
                discovery::api_group_list(),
            ),
        ),
        Route::Group(g) => {
            let list = discovery::api_group_list();
            let found = list["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == g.as_str()).cloned());
            let resp = match found {
                Some(mut grp) => {
                    grp["kind"] = "APIGroup".into();
                    grp["apiVersion"] = "v1".into();
                    json(200, &grp)
                }
                None => not_found_page(),
            };
            ("GET", "", resp)
        }
        Route::ResourceList(g, v) => (
            "GET",
            "",
            discovery::api_resource_list(&g, &v).map_or_else(not_found_page, |l| json(200, &l)),
        ),
        Route::OpenApi(p) => ("GET", "", openapi(&p)),
        Route::NotFound => ("GET", "", not_found_page()),
        Route::Resource(target) => {
            let (parts, body) = req.into_parts();
            let query: HashMap<String, String> = Query::try_from_uri(&parts.uri)
                .map(|q| q.0)
                .unwrap_or_default();
            let watch = matches!(query.get("watch").map(String::as_str), Some("true" | "1"));
            let verb = verb_of(&parts.method, &target, watch);
            let resource = target.info.plural;
            let warning = deprecation_warning(target.info);
            let body = match axum::body::to_bytes(body, MAX_BODY).await {
                Ok(b) => b,
                Err(_) => {
                    let e = ApiError::bad_request("request body too large or unreadable");
                    return error(&e);
                }
            };
            let hv = |h: header::HeaderName| {
                parts
                    .headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            let rq = Req {
                target,
                query,
                accept: accept.clone(),
                content_type: hv(header::CONTENT_TYPE),
                user_agent: hv(header::USER_AGENT),
                body,
            };
            let result = handle(&st, &parts.method, verb, rq).await;
            let mut resp = result.unwrap_or_else(|e| error(&e));
            if let Some(w) = warning {
                resp.headers_mut()
                    .insert(header::WARNING, HeaderValue::from_static(w));
            }
            (verb, resource, resp)
        }
    };
    st.metrics.observe(
        verb,
        resource,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// The `Warning` header kube-apiserver 1.33 sends on every request for a
/// deprecated kind (`APILifecycleDeprecated`); kubectl prints it on stderr.
fn deprecation_warning(info: &ResourceInfo) -> Option<&'static str> {
    (info.group.is_empty() && info.plural == "endpoints").then_some(
        "299 - \"v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\"",
    )
}

async fn handle(st: &Arc<AppState>, method: &Method, verb: &str, rq: Req) -> ApiResult {
    if let Some(sub) = rq.target.subresource.clone() {
        return crate::subresource::handle(st, method, &sub, rq).await;
    }
    match verb {
        "GET" => crate::rest::get(st, rq).await,
        "LIST" => crate::list::list(st, rq).await,
        "WATCH" => crate::watch::watch(st, rq).await,
        "POST" if rq.target.name.is_none() => crate::rest::create(st, rq).await,
        "PUT" if rq.target.name.is_some() => crate::rest::update(st, rq).await,
        "PATCH" if rq.target.name.is_some() => crate::rest::patch(st, rq).await,
        "DELETE" => crate::delete::delete(st, rq).await,
        "DELETECOLLECTION" => crate::delete::delete_collection(st, rq).await,
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} {})",
            method, rq.target.info.plural
        ))),
    }
}

fn text(code: u16, s: &str) -> Response {
    json_bytes(code, s.as_bytes().to_vec(), "text/plain; charset=utf-8")
}

fn not_found_page() -> Response {
    let e = ApiError {
        code: 404,
        reason: "NotFound".into(),
        message: "the server could not find the requested resource".into(),
        details: None,
    };
    error(&e)
}

fn advertise_address(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}

fn discovery_answer(accept: &str, aggregated: Value, legacy: Value) -> Response {
    if discovery::wants_aggregated(accept) {
        json_bytes(
            200,
            serde_json::to_vec(&aggregated).unwrap_or_default(),
            discovery::AGGREGATED_CONTENT_TYPE,
        )
    } else {
        json(200, &legacy)
    }
}

/// OpenAPI: `/openapi/v3` index and per-group-version documents, `/openapi/v2` protobuf.
fn openapi(path: &str) -> Response {
    match path {
        "v3" => json(200, &openapi::v3_index()),
        "v2" => json_bytes(
            200,
            openapi::v2_protobuf().to_vec(),
            openapi::V2_PROTOBUF_CONTENT_TYPE,
        ),
        p => match p.strip_prefix("v3/").and_then(openapi::v3_document) {
            Some(doc) => {
                let mut r = json(200, &doc);
                // The index links each document with its content hash, so a
                // hashed URL never changes and clients may cache it forever.
                r.headers_mut().insert(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, immutable"),
                );
                r
            }
            None => not_found_page(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_v1_endpoints_carry_the_deprecation_warning() {
        let find = portico_api::resource::find;
        let ep = find("", "v1", "endpoints").expect("endpoints");
        assert_eq!(
            deprecation_warning(ep),
            Some("299 - \"v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice\"")
        );
        let eps = find("discovery.k8s.io", "v1", "endpointslices").expect("slices");
        assert_eq!(deprecation_warning(eps), None);
        let svc = find("", "v1", "services").expect("services");
        assert_eq!(deprecation_warning(svc), None);
    }
}
