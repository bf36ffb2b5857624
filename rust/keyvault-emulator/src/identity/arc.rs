//! Azure Arc's local identity endpoint (the Hybrid Instance Metadata Service of the Connected
//! Machine agent, `IDENTITY_ENDPOINT=http://localhost:40342/metadata/identity/oauth2/token`,
//! `IMDS_ENDPOINT=http://localhost:40342`).
//!
//! Protocol (Microsoft docs "Authenticate against Azure resources with Azure Arc-enabled
//! servers"; azure-identity python `_credentials/azure_arc.py`): a GET with `api-version=2020-06-01`
//! and `Metadata: true` gets 401 with `WWW-Authenticate: Basic realm=<path of a key file>`; the
//! agent has just written a random secret into that file under `/var/opt/azcmagent/tokens/`
//! (readable only by root and the `himds` group); the client retries with
//! `Authorization: Basic <file content>`. Clients must check the path is in that directory, ends
//! in `.key` and is at most 4096 bytes. Here the directory is `--arc-token-dir`, and the control
//! API can make the realm name a file that breaks each of those rules.

use super::imds::{checked_resource, error};
use super::{imds_style_token, resource_of};
use crate::app::App;
use crate::http::{json, query_get, set_header, Resp};
use hyper::HeaderMap;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

const API_VERSIONS: [&str; 3] = ["2019-11-01", "2020-06-01", "2021-02-01"];
/// The largest key file clients accept.
pub const MAX_KEY_FILE: usize = 4096;

/// Which file the next challenge names (`POST /_emulator/arc {"realm": ...}`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Realm {
    /// `<arc-token-dir>/<uuid>.key`, as the agent does.
    #[default]
    Normal,
    /// A `.key` file outside the token directory.
    Outside,
    /// A file in the token directory that does not end in `.key`.
    NotKey,
    /// A `.key` file in the token directory larger than 4096 bytes.
    TooBig,
}

#[derive(Default)]
pub struct ArcState {
    pub realm: Realm,
    /// Secrets written into key files and not used yet.
    issued: Vec<String>,
}

fn key_file(app: &App, realm: Realm) -> std::io::Result<PathBuf> {
    let name = uuid::Uuid::new_v4().simple().to_string();
    let path = match realm {
        Realm::Normal | Realm::TooBig => app.arc_token_dir.join(format!("{name}.key")),
        Realm::NotKey => app.arc_token_dir.join(format!("{name}.txt")),
        Realm::Outside => {
            let dir = app.state_dir.join("arc-outside");
            std::fs::create_dir_all(&dir)?;
            dir.join(format!("{name}.key"))
        }
    };
    Ok(path)
}

fn challenge(app: &App) -> Resp {
    let mut state = app.arc();
    let secret = crate::principals::random_secret();
    let realm = state.realm;
    let mut content = secret.clone();
    if realm == Realm::TooBig {
        content.push_str(&"0".repeat(MAX_KEY_FILE + 1 - content.len()));
    }
    let written = key_file(app, realm).and_then(|path| {
        std::fs::create_dir_all(&app.arc_token_dir)?;
        std::fs::write(&path, &content)?;
        Ok(path)
    });
    let path = match written {
        Ok(path) => path,
        Err(e) => {
            return json(
                500,
                &json!({"error": "server_error", "error_description": format!("cannot write the key file: {e}")}),
            )
        }
    };
    state.issued.push(content);
    let mut resp = json(
        401,
        &json!({"error": "unauthorized_client", "error_description": "Unauthorized request"}),
    );
    set_header(
        &mut resp,
        "www-authenticate",
        &format!("Basic realm={}", path.display()),
    );
    resp
}

pub fn token(
    app: &App,
    method: &str,
    query: &str,
    headers: &HeaderMap,
    lifetime: Option<u64>,
) -> Resp {
    let resource = match checked_resource(method, query, headers, &API_VERSIONS) {
        Ok(resource) => resource,
        Err(refused) => return *refused,
    };
    if ["client_id", "object_id", "msi_res_id", "mi_res_id"]
        .iter()
        .any(|k| query_get(query, k).is_some())
    {
        // Arc-enabled servers have only a system-assigned identity.
        return error("User assigned identities are not supported on Azure Arc");
    }
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "));
    let accepted = presented.is_some_and(|key| {
        let mut state = app.arc();
        let before = state.issued.len();
        state.issued.retain(|k| k != key);
        state.issued.len() < before
    });
    if !accepted {
        return challenge(app);
    }
    app.count("arc_authorized");
    imds_style_token(app, app.managed(), &resource_of(&resource), lifetime)
}
