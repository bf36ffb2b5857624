//! Starting the emulator (`hg-keyvault-emulator`) for integration tests, and helpers around it.
#![allow(dead_code)]

use hg_keyvault_core::{CredentialEnv, VaultConfig};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running emulator; killed (by pid) when dropped.
pub struct Emulator {
    child: Child,
    pub ready: Value,
    _state: tempfile::TempDir,
}

fn emulator_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("HG_KEYVAULT_EMULATOR") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("debug/hg-keyvault-emulator")
}

impl Emulator {
    pub fn start(faults: &[Value]) -> Emulator {
        let bin = emulator_binary();
        assert!(
            bin.is_file(),
            "emulator binary {} is missing: build it with `cargo build -p hg-keyvault-emulator` \
             or set HG_KEYVAULT_EMULATOR",
            bin.display()
        );
        let state = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("--state-dir").arg(state.path());
        for f in faults {
            cmd.arg("--fault").arg(f.to_string());
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("emulator ready line {line:?}: {e}"));
        Emulator {
            child,
            ready,
            _state: state,
        }
    }

    pub fn s(&self, key: &str) -> String {
        self.ready[key]
            .as_str()
            .unwrap_or_else(|| panic!("{key}"))
            .to_owned()
    }

    pub fn principal(&self, name: &str) -> Value {
        self.ready["principals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("principal {name}"))
            .clone()
    }

    pub fn client_id(&self, name: &str) -> String {
        self.principal(name)["client_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub fn object_id(&self, name: &str) -> String {
        self.principal(name)["object_id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Config for this emulator: its CA as extra root, challenge verification off.
    pub fn config(&self) -> VaultConfig {
        let mut c = VaultConfig::new(&self.s("vault_url")).unwrap();
        c.extra_roots_pem = Some(PathBuf::from(self.s("ca_file")));
        c.verify_challenge_resource = false;
        c
    }

    /// Environment for the environment (client secret) link of `principal`.
    pub fn secret_env(&self, principal: &str) -> CredentialEnv {
        let p = self.principal(principal);
        CredentialEnv::from_pairs([
            ("AZURE_TENANT_ID", self.s("tenant_id")),
            (
                "AZURE_CLIENT_ID",
                p["client_id"].as_str().unwrap().to_owned(),
            ),
            (
                "AZURE_CLIENT_SECRET",
                p["client_secret"].as_str().unwrap().to_owned(),
            ),
            ("AZURE_AUTHORITY_HOST", self.s("authority_host")),
        ])
    }

    /// Replaces the emulator's faults.
    pub fn set_faults(&self, faults: Value) {
        let url = format!("{}/faults", self.s("control_url"));
        let status = self.http(|c| c.post(url).json_body(&faults));
        assert!(status < 300, "setting faults: HTTP {status}");
    }

    pub fn clear_faults(&self) {
        let url = format!("{}/faults", self.s("control_url"));
        self.http(|c| c.delete(url));
    }

    /// `rbac` or `access-policy`: which 403 the vault answers with.
    pub fn set_permission_model(&self, model: &str) {
        let url = format!("{}/permission-model", self.s("control_url"));
        let body = serde_json::json!({ "model": model });
        let status = self.http(|c| c.put(url).json_body(&body));
        assert!(status < 300, "setting the permission model: HTTP {status}");
    }

    /// Stamp secrets with `at` (Unix seconds) as their created/updated time; `None`: the clock.
    pub fn freeze_clock(&self, at: Option<i64>) {
        let url = format!("{}/clock", self.s("control_url"));
        let body = serde_json::json!({ "frozen_at": at });
        let status = self.http(|c| c.put(url).json_body(&body));
        assert!(status < 300, "setting the clock: HTTP {status}");
    }

    /// A token of `principal` from the emulator's token endpoint (for the stand-in `az`).
    pub fn token_for(&self, principal: &str) -> String {
        let p = self.principal(principal);
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.s("authority_host"),
            self.s("tenant_id")
        );
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=https%3A%2F%2Fvault.azure.net%2F.default",
            p["client_id"].as_str().unwrap(),
            p["client_secret"].as_str().unwrap()
        );
        let body = self.http_text(|c| {
            c.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
        });
        let json: Value = serde_json::from_str(&body).unwrap();
        json["access_token"].as_str().unwrap().to_owned()
    }

    /// A CI ID token (the emulator's GitLab-style issuer) that Entra accepts for `principal`:
    /// registers the federated credential (issuer, subject, audience) and mints the token.
    pub fn federated_assertion(&self, principal: &str) -> String {
        let issuer = self.ready["oidc"]["gitlab"]["issuer"]
            .as_str()
            .unwrap()
            .to_owned();
        let subject = format!("project_path:hg/ci:ref_type:branch:ref:{principal}");
        let control = self.s("control_url");
        let status = self.http(|c| {
            c.post(format!("{control}/federated-credentials"))
                .json_body(&serde_json::json!([
                    {"principal": principal, "issuer": issuer, "subject": subject}
                ]))
        });
        assert!(status < 300, "federated credentials: HTTP {status}");
        let body = self.http_text(|c| {
            c.post(format!("{control}/oidc/mint"))
                .json_body(&serde_json::json!({"issuer": "gitlab", "claims": {"sub": subject}}))
        });
        let json: Value = serde_json::from_str(&body).unwrap();
        json["token"].as_str().unwrap().to_owned()
    }

    /// Registers an API (app registration) whose tokens the token endpoint then issues.
    pub fn register_app(&self, app_id_uri: &str) {
        let url = format!("{}/entra/apps", self.s("control_url"));
        let body = serde_json::json!({"app_id_uri": app_id_uri, "token_version": 1, "roles": {}});
        let status = self.http(|c| c.post(url).json_body(&body));
        assert!(status < 300, "registering {app_id_uri}: HTTP {status}");
    }

    /// Lines of the request log.
    pub fn request_log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.s("request_log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn client(&self) -> reqwest::Client {
        let ca = std::fs::read(self.s("ca_file")).unwrap();
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    fn http(&self, f: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder) -> u16 {
        let client = self.client();
        let req = f(&client);
        runtime().block_on(async { req.send().await.unwrap().status().as_u16() })
    }

    fn http_text(&self, f: impl FnOnce(&reqwest::Client) -> reqwest::RequestBuilder) -> String {
        let client = self.client();
        let req = f(&client);
        runtime().block_on(async { req.send().await.unwrap().text().await.unwrap() })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

trait JsonBody {
    fn json_body(self, v: &Value) -> Self;
}

impl JsonBody for reqwest::RequestBuilder {
    fn json_body(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(v.to_string())
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes an executable script.
pub fn write_script(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}
