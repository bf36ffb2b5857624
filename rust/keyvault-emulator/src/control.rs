//! The control API under `/_emulator` (no auth; loopback only): faults and state.

use crate::app::App;
use crate::faults::FaultSpec;
use crate::http::{json, Resp};
use hyper::Method;
use serde_json::{json, Value};

pub fn bad_request(message: &str) -> Resp {
    json(400, &json!({"error": message}))
}

/// Parses a JSON list of faults (a single object is accepted too) and validates each.
pub fn parse_faults(body: &[u8]) -> Result<Vec<FaultSpec>, String> {
    let value: Value = serde_json::from_slice(body).map_err(|e| format!("invalid JSON: {e}"))?;
    let list = match value {
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        _ => return Err("expected a JSON list of fault objects".into()),
    };
    list.into_iter()
        .map(|v| {
            let spec: FaultSpec =
                serde_json::from_value(v).map_err(|e| format!("invalid fault: {e}"))?;
            spec.validate()?;
            Ok(spec)
        })
        .collect()
}

fn state(app: &App) -> Value {
    let counts = app.counts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let store = app.store.lock().unwrap_or_else(|e| e.into_inner()).counts();
    json!({
        "faults": app.faults().snapshot(),
        "counts": counts,
        "store": store,
        "permission_model": permission_model(app),
        "clock": *app.frozen_clock.lock().unwrap_or_else(|e| e.into_inner()),
    })
}

fn permission_model(app: &App) -> &'static str {
    if app.access_policies() {
        "access-policy"
    } else {
        "rbac"
    }
}

/// `{"model": "rbac" | "access-policy"}`.
fn set_permission_model(app: &App, body: &[u8]) -> Resp {
    let model = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_owned));
    match model.as_deref() {
        Some("rbac") => app.set_access_policies(false),
        Some("access-policy") => app.set_access_policies(true),
        _ => return bad_request("expected {\"model\": \"rbac\" | \"access-policy\"}"),
    }
    json(200, &json!({"permission_model": permission_model(app)}))
}

/// `{"frozen_at": <unix seconds> | null}`: stamp secrets with that time, or the clock again.
fn set_clock(app: &App, body: &[u8]) -> Resp {
    let value = serde_json::from_slice::<Value>(body).ok();
    let frozen = match value.as_ref().and_then(|v| v.get("frozen_at")) {
        Some(Value::Null) => None,
        Some(v) if v.is_i64() => v.as_i64(),
        _ => return bad_request("expected {\"frozen_at\": <unix seconds> | null}"),
    };
    *app.frozen_clock.lock().unwrap_or_else(|e| e.into_inner()) = frozen;
    json(200, &json!({"clock": frozen}))
}

pub fn handle(app: &App, method: &Method, path: &str, body: &[u8]) -> Resp {
    match (method.as_str(), path.trim_end_matches('/')) {
        ("POST" | "PUT", "/_emulator/faults") => match parse_faults(body) {
            Ok(specs) => {
                app.faults().replace(specs);
                json(200, &json!({"faults": app.faults().snapshot()}))
            }
            Err(e) => bad_request(&e),
        },
        ("DELETE", "/_emulator/faults") => {
            app.faults().replace(Vec::new());
            json(200, &json!({"faults": []}))
        }
        ("GET", "/_emulator/faults") => json(200, &json!({"faults": app.faults().snapshot()})),
        ("GET", "/_emulator/state" | "/_emulator") => json(200, &state(app)),
        ("POST" | "PUT", "/_emulator/permission-model") => set_permission_model(app, body),
        ("POST" | "PUT", "/_emulator/clock") => set_clock(app, body),
        (_, p) if p.starts_with("/_emulator/entra/") => {
            crate::entra_apps::handle(app, method.as_str(), p, body)
        }
        (_, p)
            if p.starts_with("/_emulator/federated-credentials")
                || p.starts_with("/_emulator/identities")
                || p.starts_with("/_emulator/arc")
                || p.starts_with("/_emulator/oidc") =>
        {
            crate::control_identity::handle(app, method.as_str(), p, body)
        }
        _ => json(
            404,
            &json!({"error": format!("no control endpoint {method} {path}")}),
        ),
    }
}
