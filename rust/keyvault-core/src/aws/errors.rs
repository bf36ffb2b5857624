//! Secrets Manager and STS failures as one [`Error`] each: a sentence and a hint, classified by
//! the error code AWS sends (`__type` in JSON, `<Code>` in STS's XML), never by the HTTP status
//! (moto answers ResourceNotFoundException with 404, AWS with 400). No key, token or value ever
//! reaches a message: the parts are our own names, the region, the endpoint and AWS's code.

use super::identity::{reason_text, scrub, NoCredentials, SourceFailed};
use crate::error::{Error, ErrorKind};
use crate::transport::{secs, walk_errors, TransportFailure};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use std::time::Duration;

/// What an operation was doing, for the messages.
#[derive(Clone, Debug)]
pub(crate) struct ErrorContext {
    /// The IAM action it needs (`secretsmanager:GetSecretValue`).
    pub(crate) action: &'static str,
    /// `secret secret://hg/x (hg-hg/x)` or `secret arn:...`.
    pub(crate) subject: String,
    /// The resource an IAM policy must allow (an ARN, or `name` for a name not yet created).
    pub(crate) resource: String,
    /// The region.
    pub(crate) region: String,
    /// The configured endpoint, or `Secrets Manager in REGION`.
    pub(crate) endpoint: String,
    /// The overall timeout.
    pub(crate) timeout: Duration,
}

/// Any SDK failure of a Secrets Manager or STS call.
pub(crate) fn classify<E>(
    err: &SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    ctx: &ErrorContext,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    // Credentials and transport failures travel in the error's source chain.
    let mut found: Option<Error> = None;
    walk_errors(err, &mut |e| {
        if found.is_some() {
            return;
        }
        if let Some(t) = e.downcast_ref::<TransportFailure>() {
            found = Some(t.clone().into_error());
        } else if let Some(c) = e.downcast_ref::<CredentialsError>() {
            found = Some(credentials_error(c, ctx));
        }
    });
    if let Some(e) = found {
        return e;
    }
    match err {
        SdkError::TimeoutError(_) => timeout(ctx, None),
        SdkError::DispatchFailure(d) if d.is_timeout() => timeout(ctx, None),
        SdkError::DispatchFailure(_) => Error::new(
            ErrorKind::Unreachable,
            format!(
                "cannot reach {}: {}",
                ctx.endpoint,
                scrub(&crate::transport::error_chain_text(err))
            ),
        )
        .with_hint("check the network and the endpoint (AWS_ENDPOINT_URL, keyvault.aws-region)"),
        _ => {
            let code = err
                .code()
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .or_else(|| {
                    let raw = err.raw_response()?;
                    Some(code_in_body(raw.body().bytes().unwrap_or_default()))
                });
            match code.filter(|c| !c.is_empty()) {
                Some(code) => by_code(&code, err.message().unwrap_or(""), ctx),
                None => Error::new(
                    ErrorKind::Service,
                    format!(
                        "{} answered {} on {} with something hg-keyvault does not understand",
                        ctx.endpoint, ctx.action, ctx.subject
                    ),
                )
                .with_hint(
                    "check that the endpoint is Secrets Manager (AWS_ENDPOINT_URL_SECRETS_MANAGER)",
                ),
            }
        }
    }
}

/// The error code in a body the SDK could not parse for its protocol: moto answers a bad
/// signature to a JSON-protocol service with the query protocol's XML
/// (`<Error><Code>SignatureDoesNotMatch</Code>...`), where AWS sends JSON with `__type`.
fn code_in_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let between = |open: &str, close: &str| {
        let start = text.find(open)? + open.len();
        let end = text[start..].find(close)? + start;
        Some(text[start..end].trim().to_owned())
    };
    between("<Code>", "</Code>")
        .or_else(|| {
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            v.get("__type")?
                .as_str()
                .map(|t| t.rsplit('#').next().unwrap_or(t).to_owned())
        })
        .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'))
        .unwrap_or_default()
}

/// The operation ran out of time.
pub(crate) fn timeout(ctx: &ErrorContext, in_flight: Option<String>) -> Error {
    let whom = in_flight.unwrap_or_else(|| ctx.endpoint.clone());
    Error::new(
        ErrorKind::Timeout,
        format!(
            // "(keyvault.timeout)" as the Key Vault and Entra timeouts say it: the setting to raise.
            "no answer from {whom} within {} (keyvault.timeout) to {} of {}",
            secs(ctx.timeout),
            ctx.action,
            ctx.subject
        ),
    )
    .with_hint(
        "raise keyvault.timeout, or check the network (proxy, firewall, VPN) between here and AWS",
    )
}

/// The error for an AWS error code (and its message, used only to tell a deleted secret apart).
pub(crate) fn by_code(code: &str, message: &str, ctx: &ErrorContext) -> Error {
    let subject = &ctx.subject;
    match code {
        "ResourceNotFoundException" => Error::new(
            ErrorKind::NotFound,
            format!("{subject} does not exist in Secrets Manager ({})", ctx.region),
        )
        .with_hint("store it with `hg vault set REF`, or check keyvault.aws-region and keyvault.name-prefix"),
        "AccessDeniedException" | "AccessDenied" => Error::new(
            ErrorKind::Forbidden,
            format!("the AWS identity may not {} on {}", ctx.action, ctx.resource),
        )
        .with_hint(format!(
            "allow {} on that resource in the identity's IAM policy (and kms:Decrypt on the secret's key if it uses a customer managed KMS key); `hg vault` shows the caller ARN",
            ctx.action
        )),
        "DecryptionFailure" | "KMSAccessDeniedException" | "KMSInvalidStateException" | "KMSDisabledException" => Error::new(
            ErrorKind::Forbidden,
            format!("Secrets Manager cannot decrypt {subject} with its KMS key ({code})"),
        )
        .with_hint("allow kms:Decrypt on the secret's KMS key for this identity, and check that the key is enabled"),
        "InvalidRequestException" if is_deleted(message) => Error::new(
            ErrorKind::NotFound,
            format!("{subject} is scheduled for deletion in Secrets Manager"),
        )
        .with_hint("restore it with `aws secretsmanager restore-secret --secret-id NAME`, or wait until it is purged and set it again"),
        "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" => Error::new(
            ErrorKind::Throttled,
            format!("Secrets Manager is throttling requests ({code}) and kept refusing within {}", secs(ctx.timeout)),
        )
        .with_hint("try again later, or raise keyvault.timeout; check what else calls Secrets Manager with this account"),
        "ExpiredTokenException" | "ExpiredToken" | "RequestExpired" => Error::new(
            ErrorKind::Unauthenticated,
            format!("AWS refused the credentials for {subject} as expired ({code})"),
        )
        .with_hint("refresh them (a new session token, `aws sso login`, the job's role), and check the machine's clock"),
        "UnrecognizedClientException" | "InvalidClientTokenId" | "InvalidSignatureException" | "SignatureDoesNotMatch" | "IncompleteSignature" => Error::new(
            ErrorKind::Unauthenticated,
            format!("AWS does not accept the credentials for {subject} ({code})"),
        )
        .with_hint("check the access key id and secret key (environment, profile or credential_process); `hg vault` shows which source answered"),
        "LimitExceededException" | "InvalidParameterException" | "EncryptionFailure" | "MalformedPolicyDocumentException" | "PreconditionNotMetException" => Error::new(
            ErrorKind::Service,
            format!("Secrets Manager refused {} on {subject} ({code}: {})", ctx.action, short(message)),
        )
        .with_hint("see the Secrets Manager documentation of that error code"),
        "InvalidRequestException" => Error::new(
            ErrorKind::Service,
            format!("Secrets Manager refused {} on {subject} ({code}: {})", ctx.action, short(message)),
        )
        .with_hint("see the Secrets Manager documentation of that error code"),
        "" => Error::new(
            ErrorKind::Service,
            format!("{} failed {} on {subject} without an error code", ctx.endpoint, ctx.action),
        )
        .with_hint("check that the endpoint is Secrets Manager (AWS_ENDPOINT_URL_SECRETS_MANAGER)"),
        other => Error::new(
            ErrorKind::Service,
            format!("Secrets Manager failed {} on {subject} ({other})", ctx.action),
        )
        .with_hint("try again; if it persists, check the AWS Health Dashboard for Secrets Manager in this region"),
    }
}

/// AWS: "You can't perform this operation on the secret because it was marked for deletion.";
/// moto: "... because it was deleted."
fn is_deleted(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("marked for deletion")
        || m.contains("deleted")
        || m.contains("scheduled for deletion")
}

fn short(message: &str) -> String {
    let one_line = scrub(&message.replace(['\n', '\r'], " "));
    if one_line.chars().count() > 160 {
        format!("{}...", one_line.chars().take(157).collect::<String>())
    } else {
        one_line
    }
}

/// No credentials, or a source that failed.
pub(crate) fn credentials_error(err: &CredentialsError, ctx: &ErrorContext) -> Error {
    let mut inner: Option<Error> = None;
    walk_errors(err, &mut |e| {
        if inner.is_some() {
            return;
        }
        if let Some(none) = e.downcast_ref::<NoCredentials>() {
            inner = Some(
                Error::new(
                    ErrorKind::Unauthenticated,
                    format!("no AWS credentials for {}: {}", ctx.subject, {
                        let parts: Vec<String> = none
                            .reasons
                            .iter()
                            .map(|(k, why)| format!("{}: {}", k.as_str(), scrub(why)))
                            .collect();
                        parts.join("; ")
                    }),
                )
                .with_hint("set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile (AWS_PROFILE or keyvault.aws-profile), AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE, or run on an instance or container with a role"),
            );
        } else if let Some(failed) = e.downcast_ref::<SourceFailed>() {
            inner = Some(
                Error::new(
                    ErrorKind::Unauthenticated,
                    format!("the AWS credential source {} failed: {}", failed.label, failed.reason),
                )
                .with_hint(format!(
                    "fix the {} source (its role, token file, endpoint or profile), or remove its settings so the next source is used",
                    failed.kind.as_str()
                )),
            );
        }
    });
    inner.unwrap_or_else(|| match err {
        CredentialsError::ProviderTimedOut(t) => Error::new(
            ErrorKind::Timeout,
            format!("loading AWS credentials took longer than {}", secs(t.timeout_duration())),
        )
        .with_hint("raise keyvault.timeout, or check the credential source's endpoint (STS, container, IMDS)"),
        other => Error::new(
            ErrorKind::Unauthenticated,
            format!("cannot load AWS credentials: {}", reason_text(other)),
        )
        .with_hint("run `hg vault` to see which credential source applies"),
    })
}

/// A bad or missing region.
pub(crate) fn no_region(subject: &str) -> Error {
    Error::bad_config(format!("keyvault: no AWS region for {subject}"))
        .with_hint("set [keyvault] aws-region, AWS_REGION, or the profile's region; or use the secret's ARN as the ref")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> ErrorContext {
        ErrorContext {
            action: "secretsmanager:GetSecretValue",
            subject: "secret secret://hg/x (hg-hg/x)".into(),
            resource: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:hg-hg/x".into(),
            region: "eu-west-1".into(),
            endpoint: "https://secretsmanager.eu-west-1.amazonaws.com".into(),
            timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn codes_not_statuses_decide_the_kind() {
        let c = ctx();
        let cases = [
            ("ResourceNotFoundException", "", ErrorKind::NotFound),
            ("AccessDeniedException", "", ErrorKind::Forbidden),
            ("DecryptionFailure", "", ErrorKind::Forbidden),
            ("InvalidRequestException", "You can't perform this operation on the secret because it was marked for deletion.", ErrorKind::NotFound),
            ("InvalidRequestException", "something else", ErrorKind::Service),
            ("ThrottlingException", "", ErrorKind::Throttled),
            ("ExpiredTokenException", "", ErrorKind::Unauthenticated),
            ("UnrecognizedClientException", "", ErrorKind::Unauthenticated),
            ("InvalidSignatureException", "", ErrorKind::Unauthenticated),
            ("InternalServiceError", "", ErrorKind::Service),
        ];
        for (code, msg, kind) in cases {
            let e = by_code(code, msg, &c);
            assert_eq!(e.kind(), kind, "{code}");
            assert!(e.hint().is_some(), "{code}");
            assert!(!e.message().contains('\n'), "{code}: one sentence");
        }
        let denied = by_code("AccessDeniedException", "", &c);
        assert!(denied.message().contains("secretsmanager:GetSecretValue"));
        assert!(denied.message().contains(&c.resource));
        assert!(denied.hint().unwrap().contains("kms:Decrypt"));
        assert!(by_code("DecryptionFailure", "", &c)
            .hint()
            .unwrap()
            .contains("kms:Decrypt"));
        assert!(
            by_code("InvalidRequestException", "marked for deletion", &c)
                .message()
                .contains("scheduled for deletion")
        );
    }

    #[test]
    fn messages_never_carry_keys_tokens_or_values() {
        let key = "AKIAIOSFODNN7EXAMPLE";
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let token = "IQoJb3JpZ2luX2VjEXAMPLETOKEN0123456789abcdef";
        let echo = format!("The security token {token} for {key} with {secret} is invalid");
        for code in [
            "InvalidParameterException",
            "InvalidRequestException",
            "Weird",
        ] {
            let e = by_code(code, &echo, &ctx());
            for s in [key, secret, token] {
                assert!(!e.message().contains(s), "{code}: {}", e.message());
                assert!(!e.hint().unwrap_or_default().contains(s));
            }
        }
        let none = CredentialsError::not_loaded(NoCredentials {
            reasons: vec![(
                super::super::identity::SourceKind::Container,
                format!("endpoint said {token}"),
            )],
        });
        let e = credentials_error(&none, &ctx());
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(e.message().contains("container:"), "{}", e.message());
        assert!(!e.message().contains(token), "{}", e.message());
        let failed = CredentialsError::provider_error(SourceFailed {
            kind: super::super::identity::SourceKind::WebIdentity,
            label: "web-identity".into(),
            reason: scrub(&format!("STS said {secret}")),
        });
        let e = credentials_error(&failed, &ctx());
        assert!(!e.message().contains(secret), "{}", e.message());
        assert!(e.message().contains("web-identity"));
    }

    #[test]
    fn codes_are_found_in_xml_or_json_bodies() {
        let xml = b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message></Error></ErrorResponse>";
        assert_eq!(code_in_body(xml), "SignatureDoesNotMatch");
        assert_eq!(
            code_in_body(br#"{"__type":"com.amazonaws#UnrecognizedClientException"}"#),
            "UnrecognizedClientException"
        );
        assert_eq!(code_in_body(b"<html>oops</html>"), "");
    }

    #[test]
    fn timeouts_name_the_endpoint() {
        let e = timeout(&ctx(), Some("https://127.0.0.1:9/".into()));
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains("https://127.0.0.1:9/"));
        assert!(e.message().contains("10 s"));
        let e = no_region("secret secret://x");
        assert_eq!(e.message(), "keyvault: no AWS region for secret secret://x");
    }
}
