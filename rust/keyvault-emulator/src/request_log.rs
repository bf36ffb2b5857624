//! The JSON-lines request log that tests count round trips from. It never holds a secret value,
//! a client secret, an assertion or a token: only the fields of [`Entry`].

use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Serialize)]
pub struct Entry {
    pub time: String,
    pub method: String,
    pub path: String,
    pub query: String,
    /// `None` when no response was sent (a `hang` or `refuse` fault).
    pub status: Option<u16>,
    pub target: &'static str,
    /// The plain-HTTP listener's role (imds, arc, ...) when the request came to one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<&'static str>,
    pub principal: Option<String>,
    pub user_agent: Option<String>,
    pub client_request_id: Option<String>,
    pub duration_ms: u64,
    /// The kind of the injected fault that applied, if any.
    pub fault: Option<&'static str>,
}

pub struct RequestLog(Mutex<File>);

impl RequestLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(RequestLog(Mutex::new(file)))
    }

    pub fn write(&self, entry: &Entry) {
        let mut line = serde_json::to_string(entry).expect("log entry serializes");
        line.push('\n');
        let mut file = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // One write per line, then flush: readers never see half a line from us.
        if let Err(e) = file.write_all(line.as_bytes()).and_then(|()| file.flush()) {
            eprintln!("hg-keyvault-emulator: cannot write request log: {e}");
        }
    }
}

/// Drops the query parameters that could carry a credential (none of the SDKs send one in a
/// query, but a hand-written client might).
pub fn safe_query(query: &str) -> String {
    const SENSITIVE: [&str; 5] = [
        "client_secret",
        "client_assertion",
        "access_token",
        "code",
        "password",
    ];
    if !SENSITIVE
        .iter()
        .any(|k| form_urlencoded::parse(query.as_bytes()).any(|(name, _)| name == *k))
    {
        return query.to_string();
    }
    query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or("");
            !SENSITIVE.contains(&name)
        })
        .collect::<Vec<_>>()
        .join("&")
}
