//! The AWS SDK's HTTP client trait over the store's one reqwest client, so that the SDK speaks
//! through our single TLS stack (rustls with the system roots, `keyvault.cacerts` and
//! `AWS_CA_BUNDLE`) instead of its default hyper + aws-lc client.
//!
//! A request that gets no response becomes a `ConnectorError` carrying a
//! [`TransportFailure`] (the store turns it into our unreachable / timeout sentence). Such
//! errors are "other", which the SDK's standard retry does not retry: a refused port or an
//! untrusted certificate fails at once, as on the Key Vault side; throttling and 5xx answers
//! are retried by the SDK within its attempt bound and the operation timeout.

use crate::transport::{
    classify_reqwest_error, display_url, error_chain_text, LazyClient, TransportCause,
    TransportFailure,
};
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The URL of the last request sent, shared with the store (its timeout message names it).
pub(crate) type InFlight = Arc<Mutex<Option<String>>>;

/// reqwest behind the SDK's [`HttpClient`].
#[derive(Clone, Debug)]
pub(crate) struct ReqwestHttpClient {
    client: LazyClient,
    connect_timeout: Duration,
    in_flight: InFlight,
}

impl ReqwestHttpClient {
    pub(crate) fn new(client: LazyClient, connect_timeout: Duration, in_flight: InFlight) -> Self {
        Self {
            client,
            connect_timeout,
            in_flight,
        }
    }
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        // reqwest has one connect timeout per client (ours, within keyvault.timeout); the SDK's
        // connect + read timeouts (1 s + 1 s for IMDS) bound each request as a whole.
        let per_request = match (settings.connect_timeout(), settings.read_timeout()) {
            (Some(c), Some(r)) => Some(c + r),
            (None, Some(r)) => Some(self.connect_timeout + r),
            _ => None,
        };
        SharedHttpConnector::new(Connector {
            http: self.clone(),
            per_request,
        })
    }
}

#[derive(Debug)]
struct Connector {
    http: ReqwestHttpClient,
    per_request: Option<Duration>,
}

impl HttpConnector for Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let http = self.http.clone();
        let per_request = self.per_request;
        HttpConnectorFuture::new(async move { send(&http, per_request, request).await })
    }
}

async fn send(
    http: &ReqwestHttpClient,
    per_request: Option<Duration>,
    request: HttpRequest,
) -> Result<Response<SdkBody>, ConnectorError> {
    let url = url::Url::parse(request.uri()).map_err(|e| ConnectorError::user(Box::new(e)))?;
    if let Ok(mut g) = http.in_flight.lock() {
        *g = Some(display_url(&url));
    }
    let method = reqwest::Method::from_bytes(request.method().as_bytes())
        .map_err(|e| ConnectorError::user(Box::new(e)))?;
    let Some(body) = request.body().bytes() else {
        return Err(ConnectorError::user(
            "streaming request bodies are not supported".into(),
        ));
    };
    let client = http.client.get().map_err(|e| {
        ConnectorError::other(Box::new(TransportFailure::no_client(&url, &e)), None)
    })?;
    let mut builder = client.request(method, url.clone()).body(body.to_vec());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    if let Some(t) = per_request {
        builder = builder.timeout(t);
    }
    let failure = |err: reqwest::Error| {
        let failure = classify_reqwest_error(&url, &err, http.connect_timeout);
        if failure.cause == TransportCause::ConnectTimeout || err.is_timeout() {
            ConnectorError::timeout(Box::new(failure))
        } else {
            ConnectorError::other(Box::new(failure), None)
        }
    };
    let response = builder.send().await.map_err(failure)?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.map_err(|err| {
        let f = TransportFailure {
            url: display_url(&url),
            cause: TransportCause::Other,
            detail: format!("the response broke off ({})", error_chain_text(&err)),
        };
        if err.is_timeout() {
            ConnectorError::timeout(Box::new(f))
        } else {
            ConnectorError::io(Box::new(f))
        }
    })?;
    let status =
        StatusCode::try_from(status).map_err(|e| ConnectorError::other(Box::new(e), None))?;
    let mut out = Response::new(status, SdkBody::from(bytes));
    for (name, value) in &headers {
        if let Ok(v) = value.to_str() {
            out.headers_mut()
                .append(name.as_str().to_owned(), v.to_owned());
        }
    }
    Ok(out)
}
