//! The HTTPS server: accept loop (with connection-level `refuse`), TLS, and the per-request
//! pipeline: classify, apply faults, dispatch, decorate headers, log.

use crate::app::App;
use crate::faults::{Kind, Probe, Target};
use crate::http::{json, new_uuid, rfc3339_now, set_header, Resp};
use crate::identity::Role;
use crate::request_log::{safe_query, Entry};
use crate::{ci_oidc, control, entra, identity, vault};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// Returned by the service to make hyper drop the connection without answering (`refuse`).
#[derive(Debug)]
pub struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection refused by an injected fault")
    }
}

impl std::error::Error for Refused {}

pub async fn accept_loop(app: Arc<App>, listener: TcpListener, acceptor: TlsAcceptor) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        if app.faults().take_connection_refusal() {
            app.count("refused_connections");
            refuse(tcp);
            continue;
        }
        tokio::spawn(serve_connection(app.clone(), acceptor.clone(), tcp));
    }
}

/// A plain-HTTP listener playing one managed identity endpoint (`--http-listen ROLE=ADDR:PORT`):
/// the real ones are plain HTTP on loopback or link-local addresses.
pub async fn accept_plain(app: Arc<App>, listener: TcpListener, role: Role) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        if app.faults().take_connection_refusal() {
            app.count("refused_connections");
            refuse(tcp);
            continue;
        }
        let app = app.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let service =
                hyper::service::service_fn(move |req| handle(app.clone(), req, Some(role)));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Resets the connection (RST, not FIN), so that the client fails at once.
fn refuse(tcp: TcpStream) {
    let _ = tcp.set_zero_linger();
    drop(tcp);
}

async fn serve_connection(app: Arc<App>, acceptor: TlsAcceptor, tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        _ => return,
    };
    let service = hyper::service::service_fn(move |req| handle(app.clone(), req, None));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

fn classify(path: &str) -> Target {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["msi", ..] => Target::Identity,
        ["github" | "pipelines" | "gitlab", _, ..] => Target::Oidc,
        [_, "discovery", ..] => Target::Discovery,
        [_, "oauth2", ..] => Target::Token,
        _ if segs.contains(&".well-known") => Target::Discovery,
        _ => Target::Vault,
    }
}

fn entra_route(
    app: &App,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
    lifetime: Option<u64>,
) -> Resp {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => entra::token(app, tenant, body, lifetime),
        ("GET", [_, "discovery", "instance"]) => entra::instance_discovery(app, query),
        ("GET", [_, "discovery", "v2.0", "keys"] | [_, "discovery", "keys"]) => entra::jwks(app),
        ("GET", [t, "v2.0", ".well-known", "openid-configuration"]) => {
            entra::openid_configuration(app, t, true)
        }
        ("GET", [t, ".well-known", "openid-configuration"]) => {
            entra::openid_configuration(app, t, false)
        }
        _ => json(
            404,
            &json!({"error": "not_found", "error_description": format!("No Entra ID endpoint {method} {path} in the emulator.")}),
        ),
    }
}

fn fault_response(
    app: &App,
    target: Target,
    status: u16,
    retry_after: Option<u64>,
    method: &Method,
    path: &str,
    principal: Option<&str>,
) -> Resp {
    let retry = retry_after.unwrap_or(1);
    let mut resp = match target {
        Target::Vault => {
            let p = principal.and_then(|c| app.principal_by_client_id(c));
            vault::fault_error(app, status, retry, method, path, p)
        }
        Target::Identity => json(
            status,
            &json!({"statusCode": status, "message": "Injected fault.", "correlationId": new_uuid()}),
        ),
        _ => entra::fault_error(status),
    };
    if status == 429 || retry_after.is_some() {
        set_header(&mut resp, "retry-after", &retry.to_string());
    }
    resp
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Headers every Key Vault / Entra ID response carries.
fn decorate(resp: &mut Resp, client_request_id: Option<&str>) {
    set_header(resp, "x-ms-request-id", &new_uuid());
    if let Some(id) = client_request_id {
        set_header(resp, "x-ms-client-request-id", id);
    }
    set_header(resp, "x-ms-keyvault-service-version", "1.9.2164.1");
    set_header(resp, "x-ms-keyvault-region", "westeurope");
    set_header(
        resp,
        "x-ms-keyvault-network-info",
        "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;",
    );
    set_header(resp, "cache-control", "no-cache");
    set_header(resp, "x-content-type-options", "nosniff");
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
    role: Option<Role>,
) -> Result<Resp, Refused> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(|_| Refused)?.to_bytes();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let client_request_id = header(&parts.headers, "x-ms-client-request-id");
    if role.is_none() && (path == "/_emulator" || path.starts_with("/_emulator/")) {
        let mut resp = control::handle(&app, &parts.method, &path, &body);
        decorate(&mut resp, client_request_id.as_deref());
        return Ok(resp);
    }

    let target = match role {
        Some(_) => Target::Identity,
        None => classify(&path),
    };
    let auth = (target == Target::Vault)
        .then(|| entra::bearer_claims(&app, &parts.headers))
        .flatten();
    let principal: Option<String> = match target {
        Target::Vault => auth
            .as_ref()
            .and_then(|a| a.as_ref().ok())
            .and_then(|c| c.get("appid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        Target::Token => entra::form_value(&body, "client_id"),
        Target::Identity => Some(entra::msi_principal(&app)),
        _ => None,
    };
    app.count(target.as_str());
    let probe = Probe {
        target,
        path: &path,
        principal: principal.as_deref(),
    };
    let fault = app.faults().take_for_request(&probe);
    let lifetime = if matches!(target, Target::Token | Target::Identity) {
        app.faults().take_token_lifetime(&probe)
    } else {
        None
    };
    let mut entry = Entry {
        time: rfc3339_now(),
        method: parts.method.to_string(),
        path: path.clone(),
        query: safe_query(&query),
        status: None,
        target: target.as_str(),
        listener: role.map(Role::name),
        principal: principal.clone(),
        user_agent: header(&parts.headers, "user-agent"),
        client_request_id: client_request_id.clone(),
        duration_ms: 0,
        fault: fault.as_ref().map(|f| f.kind.as_str()),
    };

    let mut resp = None;
    if let Some(f) = &fault {
        match f.kind {
            Kind::Status | Kind::RateLimit => {
                let status = f.status.unwrap_or(500);
                resp = Some(fault_response(
                    &app,
                    target,
                    status,
                    f.retry_after,
                    &parts.method,
                    &path,
                    principal.as_deref(),
                ));
            }
            Kind::Latency => {
                tokio::time::sleep(Duration::from_millis(f.latency_ms.unwrap_or(0))).await;
            }
            Kind::Hang => {
                app.log.write(&entry);
                std::future::pending::<()>().await;
            }
            Kind::Refuse => {
                entry.duration_ms = started.elapsed().as_millis() as u64;
                app.log.write(&entry);
                return Err(Refused);
            }
            Kind::TokenLifetime => {}
        }
    }
    let mut resp = resp.unwrap_or_else(|| match target {
        Target::Vault => vault::handle(&app, &parts.method, &path, &query, &body, auth),
        Target::Identity if role.is_some() => identity::handle(
            &app,
            role.unwrap_or(Role::AppService),
            &parts,
            &body,
            lifetime,
        ),
        Target::Oidc => ci_oidc::route(&app, parts.method.as_str(), &path, &query, &parts.headers)
            .unwrap_or_else(|| json(404, &json!({"message": "Not found."}))),
        Target::Identity if parts.method == Method::GET && path == "/msi/token" => {
            entra::msi(&app, &parts.headers, &query, lifetime)
        }
        Target::Identity => json(404, &json!({"statusCode": 404, "message": "Not found."})),
        _ => entra_route(&app, &parts.method, &path, &query, &body, lifetime),
    });
    decorate(&mut resp, client_request_id.as_deref());
    entry.status = Some(resp.status().as_u16());
    entry.duration_ms = started.elapsed().as_millis() as u64;
    app.log.write(&entry);
    Ok(resp)
}
