//! Starts the emulator binary and gives tests its ready line and an HTTPS client trusting its CA.

#![allow(dead_code)] // each test file uses a different subset

use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Emulator {
    pub child: Child,
    pub ready: Value,
    pub http: reqwest::blocking::Client,
}

impl Emulator {
    pub fn start(extra: &[&str]) -> Emulator {
        let state = std::env::temp_dir().join(format!(
            "hg-kv-emu-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_hg-keyvault-emulator"))
            .arg("--state-dir")
            .arg(&state)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start emulator");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("ready line");
        let ready: Value = serde_json::from_str(&line).expect("ready line is JSON");
        let ca = std::fs::read(ready["ca_file"].as_str().unwrap()).unwrap();
        let http = reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        Emulator { child, ready, http }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.ready["authority_host"].as_str().unwrap(), path)
    }

    pub fn principal(&self, name: &str) -> &Value {
        self.ready["principals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
    }

    pub fn token(&self, name: &str) -> String {
        let p = self.principal(name);
        let resp = self
            .http
            .post(self.url(&format!(
                "/{}/oauth2/v2.0/token",
                self.ready["tenant_id"].as_str().unwrap()
            )))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", p["client_id"].as_str().unwrap()),
                ("client_secret", p["client_secret"].as_str().unwrap()),
                ("scope", "https://vault.azure.net/.default"),
            ])
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().unwrap();
        body["access_token"].as_str().unwrap().to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.ready["request_log"].as_str().unwrap()).unwrap_or_default()
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// The emulator with every plain-HTTP identity listener on 127.0.0.1 (free ports).
    pub fn with_identity_listeners() -> Emulator {
        Emulator::start(&[
            "--http-listen",
            "imds=127.0.0.1:0",
            "--http-listen",
            "arc=127.0.0.1:0",
            "--http-listen",
            "cloudshell=127.0.0.1:0",
            "--http-listen",
            "ml=127.0.0.1:0",
            "--http-listen",
            "appservice=127.0.0.1:0",
        ])
    }

    /// `http://127.0.0.1:PORT` + `path` on the listener of `role`.
    pub fn http_url(&self, role: &str, path: &str) -> String {
        format!("{}{}", self.ready["http"][role].as_str().unwrap(), path)
    }

    pub fn s(&self, key: &str) -> String {
        self.ready[key].as_str().unwrap().to_string()
    }

    /// POSTs a control API request and returns the JSON answer (asserting 200).
    pub fn control(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(self.url(&format!("/_emulator{path}")))
            .json(&body)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "control {path}");
        resp.json().unwrap()
    }

    /// The token endpoint's answer to a client assertion presented for `principal`.
    pub fn exchange(&self, principal: &str, assertion: &str) -> reqwest::blocking::Response {
        let p = self.principal(principal);
        self.http
            .post(self.url(&format!(
                "/{}/oauth2/v2.0/token",
                self.ready["tenant_id"].as_str().unwrap()
            )))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", p["client_id"].as_str().unwrap()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion),
                ("scope", "https://vault.azure.net/.default"),
            ])
            .send()
            .unwrap()
    }
}

/// The claims of a JWT (no signature check).
pub fn claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
