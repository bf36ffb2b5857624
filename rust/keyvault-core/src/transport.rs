//! The HTTP side shared by the vault client and every credential of a store: one reqwest
//! client (system roots + optional extra PEM roots), transport errors classified once, and a
//! per-call policy that owns retries (bounded by the operation's deadline) and the User-Agent
//! suffix.
//!
//! The SDK's own retry policy is switched off (`RetryOptions::none()`): by default it retries
//! connection and TLS errors for about 80 s, which would hide an untrusted certificate or a
//! refused port behind a minute of silence.

use crate::config::VaultConfig;
use crate::entra_error;
use crate::error::{Error, ErrorKind, Result};
use azure_core::http::{
    headers::{
        HeaderName, CLIENT_REQUEST_ID, RETRY_AFTER, RETRY_AFTER_MS, USER_AGENT, X_MS_RETRY_AFTER_MS,
    },
    policies::{Policy, PolicyResult},
    AsyncRawResponse, ClientOptions, Context, HttpClient, Request, RetryOptions, StatusCode,
    Transport,
};
use std::{
    fmt,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

/// Longest connect attempt; the operation's deadline may be shorter.
pub(crate) const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Attempts of one request on 429/5xx (the first try included).
const MAX_ATTEMPTS: u32 = 4;

tokio::task_local! {
    /// The operation being run on this task: its deadline and the request in flight.
    pub(crate) static OPERATION: Arc<Operation>;
}

/// Per-operation state, shared between the store (which enforces the deadline) and the
/// per-call policy (which must not sleep past it).
#[derive(Debug)]
pub(crate) struct Operation {
    pub(crate) deadline: Instant,
    pub(crate) timeout: Duration,
    in_flight: Mutex<Option<String>>,
    /// `(url, x-ms-client-request-id)` of every call of the operation, in order.
    request_ids: Mutex<Vec<(String, String)>>,
}

impl Operation {
    pub(crate) fn new(timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            deadline: Instant::now() + timeout,
            timeout,
            in_flight: Mutex::new(None),
            request_ids: Mutex::new(Vec::new()),
        })
    }

    /// The URL (without query) of the last request that was sent, for timeout messages.
    pub(crate) fn in_flight(&self) -> Option<String> {
        self.in_flight.lock().ok().and_then(|g| g.clone())
    }

    fn set_in_flight(&self, url: String) {
        if let Ok(mut g) = self.in_flight.lock() {
            *g = Some(url);
        }
    }

    fn record_request_id(&self, url: String, id: &str) {
        if let Ok(mut g) = self.request_ids.lock() {
            g.push((url, id.to_owned()));
        }
    }

    /// The request id of the last call to the secrets API of the vault at `vault` (never a
    /// token endpoint, which may share the host in private clouds and the emulator).
    pub(crate) fn last_request_id_to(&self, vault: &str) -> Option<String> {
        let secrets = format!("{}/secrets", vault.trim_end_matches('/'));
        let calls = self.request_ids.lock().ok()?;
        calls
            .iter()
            .rev()
            .find(|(url, _)| url.starts_with(&secrets))
            .map(|(_, id)| id.clone())
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// `scheme://host[:port]/path`, without userinfo (a password), query or fragment (they may
/// carry ids or keys we need not show).
pub(crate) fn display_url(url: &url::Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    // Both fail only for URLs that cannot have userinfo (no host): nothing to remove then.
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

/// `1.5 s`, `10 s`.
pub(crate) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if (s - s.round()).abs() < 0.05 {
        format!("{} s", s.round() as u64)
    } else {
        format!("{s:.1} s")
    }
}

/// Connecting (TCP + TLS handshake) may take this long.
pub(crate) fn connect_timeout(config: &VaultConfig) -> Duration {
    config.timeout.min(MAX_CONNECT_TIMEOUT)
}

/// The TLS trust of a store's clients: the system roots plus the extra PEM bundles, read and
/// parsed once per store (reading ~150 system roots is most of the CPU a one-secret fetch
/// spends), then shared by every client built on it.
#[derive(Clone, Debug)]
pub(crate) struct Trust {
    #[cfg(target_os = "linux")]
    tls: rustls::ClientConfig,
    #[cfg(not(target_os = "linux"))]
    extra: Vec<reqwest::Certificate>,
}

impl Trust {
    /// The trust of `config`: system roots plus `keyvault.cacerts`.
    pub(crate) fn of(config: &VaultConfig) -> Result<Self> {
        let roots: Vec<&std::path::Path> =
            config.extra_roots_pem.iter().map(|p| p.as_path()).collect();
        Self::load(&roots)
    }

    /// System roots plus the PEM bundles `extra_roots` (each must hold at least one
    /// certificate).
    pub(crate) fn load(extra_roots: &[&std::path::Path]) -> Result<Self> {
        let mut extra = Vec::new();
        #[cfg(target_os = "linux")]
        let mut extra_der = Vec::new();
        for path in extra_roots {
            let pem = std::fs::read(path).map_err(|e| {
                Error::bad_config(format!("cannot read the CA bundle {}: {e}", path.display()))
                    .with_hint("point it at a readable PEM file of CA certificates")
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                Error::bad_config(format!(
                    "the CA bundle {} is not a PEM file of certificates",
                    path.display()
                ))
                .with_hint("it must contain one or more -----BEGIN CERTIFICATE----- blocks")
            })?;
            if certs.is_empty() {
                return Err(Error::bad_config(format!(
                    "the CA bundle {} contains no certificate",
                    path.display()
                ))
                .with_hint("it must contain one or more -----BEGIN CERTIFICATE----- blocks"));
            }
            extra.extend(certs);
            #[cfg(target_os = "linux")]
            {
                extra_der.extend(crate::system_roots::parse_pem(&pem));
            }
        }
        #[cfg(target_os = "linux")]
        {
            // The system roots read once, plus the extra ones, in a rustls config of our own
            // (see `system_roots::client_config` for why not reqwest's).
            let _ = extra;
            Ok(Self {
                tls: crate::system_roots::client_config(extra_der),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Ok(Self { extra })
        }
    }
}

/// The two clients of a store, on one [`Trust`]: `proxied`, for the services, follows the
/// environment's proxy variables; `direct`, for the host-local identity endpoints, ignores
/// them and is built only when one of those is asked (most processes never ask one).
pub(crate) struct StoreClients {
    pub(crate) proxied: LazyClient,
    pub(crate) direct: LazyClient,
}

impl StoreClients {
    pub(crate) fn new(trust: Trust, connect_timeout: Duration) -> Result<Self> {
        Ok(Self {
            proxied: LazyClient::built(build_client(&trust, connect_timeout, false)?),
            direct: LazyClient::on_first_use(trust, connect_timeout, true),
        })
    }
}

/// The SDK client options of an Azure store's two clients ([`StoreClients`]): `(proxied,
/// direct)`, for [`crate::credential::CredentialChain::with_direct`].
pub(crate) fn store_options(config: &VaultConfig) -> Result<(ClientOptions, ClientOptions)> {
    let clients = StoreClients::new(Trust::of(config)?, connect_timeout(config))?;
    Ok((
        client_options(&clients.proxied, config),
        client_options(&clients.direct, config),
    ))
}

/// A reqwest client on `trust`, no redirects, connecting within `connect_timeout`. It follows
/// the environment's proxy variables unless `no_proxy`: the link-local credential endpoints
/// (IMDS, the container endpoint) are asked directly, as the SDKs' own clients do, so that
/// their tokens and the keys they return never travel in plain http through a proxy.
pub(crate) fn build_client(
    trust: &Trust,
    connect_timeout: Duration,
    no_proxy: bool,
) -> Result<reqwest::Client> {
    #[cfg(test)]
    CLIENTS_BUILT.with(|n| n.set(n.get() + 1));
    let mut builder = reqwest::Client::builder();
    if no_proxy {
        builder = builder.no_proxy();
    }
    let builder = builder
        .connect_timeout(connect_timeout)
        // A credential must never follow a redirect to another origin; the SDK does not expect any.
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60));
    #[cfg(target_os = "linux")]
    let builder = builder.tls_backend_preconfigured(trust.tls.clone());
    // Merge: the system roots stay trusted (rustls-platform-verifier with extra roots).
    #[cfg(not(target_os = "linux"))]
    let builder = builder.tls_certs_merge(trust.extra.clone());
    builder.build().map_err(|e| {
        Error::bad_config(format!(
            "cannot set up the HTTPS client: {}",
            error_chain_text(&e)
        ))
        .with_hint("check the CA bundle setting and the system's certificate store")
    })
}

#[cfg(test)]
thread_local! {
    /// reqwest clients built on this thread (tests: what building a store costs).
    pub(crate) static CLIENTS_BUILT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A reqwest client, either built already or built on its first request (then shared by every
/// clone, so at most once per store).
#[derive(Clone, Debug)]
pub(crate) struct LazyClient(Arc<LazyInner>);

#[derive(Debug)]
struct LazyInner {
    client: OnceLock<reqwest::Client>,
    /// How to build it, when not built yet.
    recipe: Option<(Trust, Duration, bool)>,
}

impl LazyClient {
    pub(crate) fn built(client: reqwest::Client) -> Self {
        Self(Arc::new(LazyInner {
            client: OnceLock::from(client),
            recipe: None,
        }))
    }

    /// A client [`build_client`] makes from these arguments on the first [`Self::get`].
    pub(crate) fn on_first_use(trust: Trust, connect_timeout: Duration, no_proxy: bool) -> Self {
        Self(Arc::new(LazyInner {
            client: OnceLock::new(),
            recipe: Some((trust, connect_timeout, no_proxy)),
        }))
    }

    /// True once the client exists (tests: that no request built it).
    #[cfg(test)]
    pub(crate) fn is_built(&self) -> bool {
        self.0.client.get().is_some()
    }

    /// The client, building it first if needed.
    pub(crate) fn get(&self) -> Result<&reqwest::Client> {
        if let Some(client) = self.0.client.get() {
            return Ok(client);
        }
        let (trust, connect_timeout, no_proxy) = self
            .0
            .recipe
            .as_ref()
            .expect("a LazyClient is either built or has a recipe");
        let client = build_client(trust, *connect_timeout, *no_proxy)?;
        // Two racing first requests both build one; the first stored wins, the other is dropped.
        Ok(self.0.client.get_or_init(|| client))
    }
}

/// The SDK client options every pipeline of a store gets.
pub(crate) fn client_options(http: &LazyClient, config: &VaultConfig) -> ClientOptions {
    ClientOptions {
        transport: Some(Transport::new(Arc::new(ClassifyingClient {
            inner: http.clone(),
            connect_timeout: connect_timeout(config),
        }))),
        retry: RetryOptions::none(),
        per_call_policies: vec![Arc::new(CallPolicy {
            user_agent_suffix: config.user_agent_suffix.clone(),
        })],
        ..Default::default()
    }
}

/// Why a request never got a response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TransportCause {
    Tls,
    Refused,
    UnknownHost,
    ConnectTimeout,
    Other,
}

/// A request that got no HTTP response; carried inside the SDK's error so that the store can
/// report the URL and the cause.
#[derive(Clone, Debug)]
pub(crate) struct TransportFailure {
    pub(crate) url: String,
    pub(crate) cause: TransportCause,
    pub(crate) detail: String,
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.detail)
    }
}

impl std::error::Error for TransportFailure {}

impl TransportFailure {
    /// The client for `url` could not be built (a [`LazyClient`] on its first request).
    pub(crate) fn no_client(url: &url::Url, err: &Error) -> Self {
        Self {
            url: display_url(url),
            cause: TransportCause::Other,
            detail: err.message().to_owned(),
        }
    }

    pub(crate) fn into_error(self) -> Error {
        if self.cause == TransportCause::ConnectTimeout {
            // Not answering at all is a timeout, whichever clock noticed it first.
            return Error::new(
                ErrorKind::Timeout,
                format!("no answer from {}: {}", self.url, self.detail),
            )
            .with_hint(
                "raise keyvault.timeout, or check the network (proxy, firewall, VPN) between here and the server",
            );
        }
        Error::new(
            ErrorKind::Unreachable,
            format!("cannot reach {}: {}", self.url, self.detail),
        )
        // Inline, so that the drift test of docs/troubleshooting.md sees every hint.
        .with_hint(match self.cause {
            TransportCause::Tls => {
                "if the server uses a private CA, add it to keyvault.cacerts (a PEM file of extra roots); \
                 otherwise check that the URL points at the right server"
            }
            TransportCause::Refused => "check the URL and port, and that the server (or proxy) is running",
            TransportCause::UnknownHost => "check the URL for typos and that DNS resolves the host name",
            TransportCause::ConnectTimeout => "check the network, firewall and proxy between here and the server",
            TransportCause::Other => "check the network and the URL",
        })
    }
}

/// Every error in a `source()` chain, looking inside `io::Error`s (whose `source()` skips the
/// wrapped error, which is where rustls puts its certificate errors).
pub(crate) fn walk_errors<'a>(
    err: &'a (dyn std::error::Error + 'static),
    visit: &mut dyn FnMut(&'a (dyn std::error::Error + 'static)),
) {
    let mut current = Some(err);
    while let Some(e) = current {
        visit(e);
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref() {
                walk_errors(inner, visit);
            }
        }
        current = e.source();
    }
}

/// The innermost non-empty message of a chain, for causes we do not recognise.
pub(crate) fn error_chain_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = String::new();
    walk_errors(err, &mut |e| {
        let text = e.to_string();
        if !text.is_empty() {
            last = text;
        }
    });
    last
}

pub(crate) fn classify_reqwest_error(
    url: &url::Url,
    err: &reqwest::Error,
    connect_timeout: Duration,
) -> TransportFailure {
    let mut cause = None;
    walk_errors(err, &mut |e| {
        if cause.is_some() {
            return;
        }
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            cause = Some((TransportCause::Tls, describe_tls(tls)));
        } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    cause = Some((TransportCause::Refused, "connection refused".to_owned()))
                }
                std::io::ErrorKind::ConnectionReset => {
                    cause = Some((
                        TransportCause::Other,
                        "connection reset by the server".to_owned(),
                    ))
                }
                _ => {}
            }
        }
    });
    let (cause, detail) = cause.unwrap_or_else(|| {
        let text = error_chain_text(err);
        let lower = text.to_ascii_lowercase();
        if err.is_timeout() && err.is_connect() {
            (
                TransportCause::ConnectTimeout,
                format!(
                    "connecting (TCP and TLS handshake) took longer than {}",
                    secs(connect_timeout)
                ),
            )
        } else if lower.contains("dns error")
            || lower.contains("failed to lookup address")
            || lower.contains("name or service not known")
            || lower.contains("no address associated")
        {
            (
                TransportCause::UnknownHost,
                format!("unknown host ({text})"),
            )
        } else if lower.contains("certificate") || lower.contains("tls") {
            (TransportCause::Tls, format!("TLS error ({text})"))
        } else if err.is_connect() {
            (TransportCause::Other, format!("cannot connect ({text})"))
        } else {
            (TransportCause::Other, text)
        }
    });
    TransportFailure {
        url: display_url(url),
        cause,
        detail,
    }
}

fn describe_tls(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "certificate not trusted (unknown issuer)".to_owned(),
            C::Expired | C::ExpiredContext { .. } => "certificate expired".to_owned(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate not valid yet".to_owned(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate is not valid for this host name".to_owned()
            }
            C::Revoked => "certificate revoked".to_owned(),
            C::BadSignature => "certificate has a bad signature".to_owned(),
            other => format!("certificate not trusted ({other:?})"),
        },
        other => format!("TLS handshake failed ({other})"),
    }
}

/// reqwest behind the SDK's `HttpClient`, turning "no response" into a [`TransportFailure`].
#[derive(Debug)]
struct ClassifyingClient {
    inner: LazyClient,
    connect_timeout: Duration,
}

#[async_trait::async_trait]
impl HttpClient for ClassifyingClient {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        // Here, not in a policy: this is the request actually on the wire (the auth policy may
        // have fetched a token in between), which is what a timeout message must name.
        if let Ok(op) = OPERATION.try_with(Arc::clone) {
            op.set_in_flight(display_url(request.url()));
        }
        let client = self.inner.get().map_err(|e| {
            azure_core::Error::new(
                azure_core::error::ErrorKind::Other,
                TransportFailure::no_client(request.url(), &e),
            )
        })?;
        match client.execute_request(request).await {
            Ok(rsp) => Ok(rsp),
            Err(err) => {
                let failure = err
                    .get_ref()
                    .and_then(|e| e.downcast_ref::<reqwest::Error>())
                    .map(|re| classify_reqwest_error(request.url(), re, self.connect_timeout))
                    .unwrap_or_else(|| TransportFailure {
                        url: display_url(request.url()),
                        cause: TransportCause::Other,
                        detail: error_chain_text(&err),
                    });
                // Kind `Other`: no SDK retry policy (not even IMDS's own) retries it.
                Err(azure_core::Error::new(
                    azure_core::error::ErrorKind::Other,
                    failure,
                ))
            }
        }
    }
}

/// Outermost policy of every pipeline: User-Agent suffix, then retries of 429/5xx bounded by
/// the operation's deadline. Transport errors are returned at once.
#[derive(Debug)]
struct CallPolicy {
    user_agent_suffix: Option<String>,
}

#[async_trait::async_trait]
impl Policy for CallPolicy {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        if let Some(suffix) = &self.user_agent_suffix {
            // `UserAgentOptions::application_id` panics beyond 24 characters; append instead.
            let ua = match request.headers().get_optional_str(&USER_AGENT) {
                Some(existing) => format!("{existing} {suffix}"),
                None => suffix.clone(),
            };
            request.insert_header(USER_AGENT, ua);
        }
        let operation = OPERATION.try_with(Arc::clone).ok();
        // The SDK's ClientRequestIdPolicy ran before us and set a fresh UUID per call; retries
        // of this call keep it. Recorded so that an audit line can name it.
        if let (Some(op), Some(id)) = (
            &operation,
            request.headers().get_optional_str(&CLIENT_REQUEST_ID),
        ) {
            op.record_request_id(display_url(request.url()), id);
        }
        let response = send_with_retries(ctx, request, next, operation.as_ref()).await?;
        if u16::from(response.status()) >= 400 && entra_error::is_token_endpoint(request.url()) {
            // Read Entra's error here: the SDK's parser fails on its escaped description.
            let (status, headers, body) = response.deconstruct();
            let bytes = body.collect().await?;
            if let Some(e) = entra_error::from_response(u16::from(status), &bytes) {
                return Err(azure_core::Error::new(
                    azure_core::error::ErrorKind::Credential,
                    e,
                ));
            }
            return Ok(AsyncRawResponse::from_bytes(status, headers, bytes));
        }
        Ok(response)
    }
}

/// Sends `request`, retrying 429/5xx answers while the operation's deadline allows.
async fn send_with_retries(
    ctx: &Context<'_>,
    request: &mut Request,
    next: &[Arc<dyn Policy>],
    operation: Option<&Arc<Operation>>,
) -> PolicyResult {
    let mut attempt = 1;
    loop {
        let response = next[0].send(ctx, request, &next[1..]).await?;
        let status = response.status();
        if !is_retryable(status) || attempt >= MAX_ATTEMPTS {
            return Ok(response);
        }
        let asked = retry_after(response.headers());
        let wait = asked.unwrap_or_else(|| backoff(attempt));
        let remaining = operation.map_or(Duration::from_secs(2), |op| op.remaining());
        if wait >= remaining {
            if let Some(asked) = asked {
                let url = display_url(request.url());
                let left = operation.map(|op| op.timeout);
                return Err(azure_core::Error::new(
                    azure_core::error::ErrorKind::Other,
                    throttled(&url, status, asked, left),
                ));
            }
            return Ok(response);
        }
        drop(response);
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

pub(crate) fn throttled(
    url: &str,
    status: StatusCode,
    asked: Duration,
    timeout: Option<Duration>,
) -> Error {
    let within = timeout.map_or(String::new(), |t| {
        format!(", longer than the timeout of {}", secs(t))
    });
    Error::new(
        ErrorKind::Throttled,
        format!(
            "{url} is throttling requests (HTTP {}) and asked to wait {}{within}",
            u16::from(status),
            secs(asked)
        ),
    )
    .with_hint("try again later, or raise keyvault.timeout above the requested wait")
}

fn is_retryable(status: StatusCode) -> bool {
    matches!(u16::from(status), 408 | 429 | 500 | 502 | 503 | 504)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 * 2u64.pow(attempt.saturating_sub(1).min(4)))
}

/// `retry-after-ms`, `x-ms-retry-after-ms`, then `Retry-After` (seconds or an HTTP date).
pub(crate) fn retry_after(headers: &azure_core::http::headers::Headers) -> Option<Duration> {
    let ms = |name: &HeaderName| {
        headers
            .get_optional_str(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis)
    };
    ms(&RETRY_AFTER_MS)
        .or_else(|| ms(&X_MS_RETRY_AFTER_MS))
        .or_else(|| {
            let v = headers.get_optional_str(&RETRY_AFTER)?.trim();
            if let Ok(s) = v.parse::<u64>() {
                return Some(Duration::from_secs(s));
            }
            let at = azure_core::time::parse_rfc7231(v).ok()?;
            let now = azure_core::time::OffsetDateTime::now_utc();
            Some(Duration::try_from(at - now).unwrap_or(Duration::ZERO))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use azure_core::http::headers::Headers;

    #[test]
    fn a_lazy_client_is_built_on_its_first_use_only_and_once() {
        let trust = Trust::load(&[]).unwrap();
        let before = CLIENTS_BUILT.with(|n| n.get());
        let lazy = LazyClient::on_first_use(trust, MAX_CONNECT_TIMEOUT, true);
        let shared = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(CLIENTS_BUILT.with(|n| n.get()), before);
        lazy.get().unwrap();
        assert!(shared.is_built());
        shared.get().unwrap();
        assert_eq!(CLIENTS_BUILT.with(|n| n.get()), before + 1);
    }

    #[test]
    fn display_url_drops_userinfo_query_and_fragment() {
        let u = url::Url::parse("http://proxyuser:s3cret@127.0.0.1:8080/path?sig=abc#x").unwrap();
        assert_eq!(display_url(&u), "http://127.0.0.1:8080/path");
    }

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        let mut h = Headers::new();
        h.insert(RETRY_AFTER, "2");
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert(RETRY_AFTER_MS, "1500");
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
        let mut h = Headers::new();
        h.insert(RETRY_AFTER, "Fri, 01 Jan 2021 00:00:10 GMT");
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert_eq!(retry_after(&Headers::new()), None);
    }

    #[test]
    fn durations_print_briefly() {
        assert_eq!(secs(Duration::from_secs(10)), "10 s");
        assert_eq!(secs(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn throttled_error_says_how_long_the_vault_asked_to_wait() {
        let e = throttled(
            "https://v/secrets/x",
            StatusCode::TooManyRequests,
            Duration::from_secs(30),
            Some(Duration::from_secs(3)),
        );
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert!(
            e.message().contains("asked to wait 30 s"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("timeout of 3 s"));
    }

    #[test]
    fn display_url_drops_the_query() {
        let u = url::Url::parse("https://h:1/p/q?api-version=1&client_id=x#f").unwrap();
        assert_eq!(display_url(&u), "https://h:1/p/q");
    }
}
