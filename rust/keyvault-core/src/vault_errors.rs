//! How Key Vault's answers become our errors: one [`ErrorKind`] per outcome, with a message
//! that names the secret, the vault and the identity, and a hint that says what to do.

use crate::credential::{ChainFailure, Identity};
use crate::error::{Error, ErrorKind};
use crate::state::SecretState;
use crate::transport::{self, secs, TransportFailure};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Read,
    Write,
}

/// What an error message talks about.
#[derive(Clone, Debug)]
pub(crate) struct ErrorContext {
    pub(crate) access: Access,
    pub(crate) vault: String,
    /// `secret secret://a/b (hg-...)`, or `the secret list`.
    pub(crate) subject: String,
    pub(crate) secret_ref: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) identity: Option<Identity>,
}

pub(crate) fn set_hint(ctx: &ErrorContext) -> String {
    match &ctx.secret_ref {
        Some(r) => format!("store it with `hg vault set {r}`"),
        None => "store it with `hg vault set REF`".to_owned(),
    }
}

pub(crate) fn not_a_secret(ctx: &ErrorContext) -> Error {
    Error::new(
        ErrorKind::Service,
        format!(
            "the vault {} answered something that is not a secret for {}",
            ctx.vault, ctx.subject
        ),
    )
    .with_hint("check that keyvault.url points at an Azure Key Vault")
}

pub(crate) fn not_found(ctx: &ErrorContext, _identity: &Option<Identity>) -> Error {
    match &ctx.version {
        Some(v) => Error::new(
            ErrorKind::NotFound,
            format!("{} has no version {v} in vault {}", ctx.subject, ctx.vault),
        )
        .with_hint("leave out the version to get the current one"),
        None => Error::new(
            ErrorKind::NotFound,
            format!("{} does not exist in vault {}", ctx.subject, ctx.vault),
        )
        .with_hint(set_hint(ctx)),
    }
}

pub(crate) fn disabled(ctx: &ErrorContext) -> Error {
    Error::new(
        ErrorKind::Disabled,
        format!("{} is disabled in vault {}", ctx.subject, ctx.vault),
    )
    .with_hint(format!(
        "enable it in the vault (az keyvault secret set-attributes --enabled true), or {}",
        set_hint(ctx).replacen("store it", "store a new version", 1)
    ))
    .with_state(SecretState::Disabled)
}

pub(crate) fn expired(ctx: &ErrorContext, not_yet: bool) -> Error {
    // Both sentences spelled out: the drift test of docs/troubleshooting.md reads them.
    Error::new(
        ErrorKind::Expired,
        if not_yet {
            format!("{} is not valid yet in vault {}", ctx.subject, ctx.vault)
        } else {
            format!("{} has expired in vault {}", ctx.subject, ctx.vault)
        },
    )
    .with_hint(format!(
        "{}, or change its dates in the vault",
        set_hint(ctx).replacen("store it", "store a new version", 1)
    ))
    .with_state(if not_yet {
        SecretState::NotYetValid
    } else {
        SecretState::Expired
    })
}

/// The secret permission a vault with access policies names in its 403 ("does not have secrets
/// get permission"): only a known permission word is taken from the server's text.
pub(crate) fn policy_permission(body: &[u8]) -> Option<&'static str> {
    const KNOWN: [&str; 8] = [
        "get", "list", "set", "delete", "recover", "backup", "restore", "purge",
    ];
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    let message = json.get("error")?.get("message")?.as_str()?;
    let word = message
        .split("does not have secrets ")
        .nth(1)?
        .split(' ')
        .next()?;
    KNOWN.into_iter().find(|k| k.eq_ignore_ascii_case(word))
}

/// `contoso` for `https://contoso.vault.azure.net/` (what `az keyvault` calls the vault's name).
pub(crate) fn vault_name(vault: &str) -> Option<String> {
    let host = url::Url::parse(vault)
        .ok()?
        .host_str()?
        .to_ascii_lowercase();
    let (name, domain) = host.split_once('.')?;
    let known = [
        "vault.azure.net",
        "vault.azure.cn",
        "vault.usgovcloudapi.net",
        "vault.microsoftazure.de",
    ];
    known.contains(&domain).then(|| name.to_owned())
}

pub(crate) fn denied_by_access_policy(
    ctx: &ErrorContext,
    code: &str,
    named: Option<&str>,
) -> Error {
    let who = ctx
        .identity
        .as_ref()
        .map_or_else(|| "the identity in use".to_owned(), Identity::describe);
    let permission = named.unwrap_or(match (ctx.access, &ctx.secret_ref) {
        (Access::Write, _) => "set",
        (Access::Read, None) => "list",
        (Access::Read, Some(_)) => "get",
    });
    let object = ctx
        .identity
        .as_ref()
        .and_then(|i| i.object_id.clone().or_else(|| i.client_id.clone()))
        .unwrap_or_else(|| "<object id>".to_owned());
    let name = vault_name(&ctx.vault).unwrap_or_else(|| "<vault name>".to_owned());
    Error::new(
        ErrorKind::Forbidden,
        format!(
            "{who} may not access {} in vault {}: no access policy of the vault grants it the \
             secrets {permission} permission ({code})",
            ctx.subject, ctx.vault
        ),
    )
    .with_hint(format!(
        "the vault uses access policies, not Azure RBAC: grant it with az keyvault set-policy \
         --name {name} --object-id {object} --secret-permissions {permission}"
    ))
}

pub(crate) fn forbidden(ctx: &ErrorContext, code: &str) -> Error {
    let who = ctx
        .identity
        .as_ref()
        .map_or_else(|| "the identity in use".to_owned(), Identity::describe);
    let (verb, role) = match ctx.access {
        Access::Read => ("read", "'Key Vault Secrets User' (read)"),
        Access::Write => ("write", "'Key Vault Secrets Officer' (write)"),
    };
    let object = ctx
        .identity
        .as_ref()
        .and_then(|i| i.object_id.clone().or_else(|| i.client_id.clone()))
        .unwrap_or_else(|| "the identity".to_owned());
    Error::new(
        ErrorKind::Forbidden,
        format!(
            "{who} may not {verb} {} in vault {} ({code})",
            ctx.subject, ctx.vault
        ),
    )
    .with_hint(format!(
        "assign the role {role} to {object} on {}, e.g. az role assignment create --role \"{}\" --assignee {object} --scope <vault resource id>",
        ctx.vault,
        if ctx.access == Access::Read { "Key Vault Secrets User" } else { "Key Vault Secrets Officer" }
    ))
}

/// Error codes in a Key Vault error body: `error.code` and every nested `innererror.code`.
pub(crate) fn error_codes(body: &[u8]) -> Vec<String> {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut codes = Vec::new();
    let mut node = json.get("error");
    while let Some(n) = node {
        if let Some(code) = n.get("code").and_then(|c| c.as_str()) {
            codes.push(code.to_owned());
        }
        node = n.get("innererror");
    }
    codes
}

/// Maps an HTTP error answer of the vault to an [`Error`]. Server messages are not copied:
/// only status and error codes, so nothing the request carried can come back in a message.
pub(crate) fn map_http_error(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    ctx: &ErrorContext,
) -> Error {
    let codes = error_codes(body);
    let has = |c: &str| codes.iter().any(|x| x.eq_ignore_ascii_case(c));
    let code = codes
        .last()
        .cloned()
        .unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        401 => Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "vault {} rejected the token of {} ({code})",
                ctx.vault,
                ctx.identity
                    .as_ref()
                    .map_or_else(|| "the identity in use".to_owned(), Identity::describe)
            ),
        )
        .with_hint("check that the identity belongs to the vault's tenant (AZURE_TENANT_ID, `az login --tenant`)"),
        // No arms for expired or not-yet-valid secrets: Key Vault returns them (200), and
        // `check_usable` refuses them.
        403 if has("SecretDisabled") => disabled(ctx),
        // A vault that uses access policies instead of RBAC: "The user, group or application
        // '...' does not have secrets get permission on key vault '...'", innererror
        // `ForbiddenByPolicy` (older answers: `AccessDenied`).
        403 if has("ForbiddenByPolicy") || has("AccessDenied") => {
            denied_by_access_policy(ctx, &code, policy_permission(body))
        }
        // The vault's network rules refused the machine: no role assignment would help.
        403 if has("ForbiddenByFirewall") || has("ForbiddenByConnection") => Error::new(
            ErrorKind::Forbidden,
            format!(
                "vault {} does not accept requests from this machine's network ({code}) for {}",
                ctx.vault, ctx.subject
            ),
        )
        .with_hint(
            "allow this machine in the vault's network rules (az keyvault network-rule add --name <vault name> \
             --ip-address <its public IP>), or run where the vault's private endpoint is reachable",
        ),
        403 => forbidden(ctx, &code),
        404 => not_found(ctx, &ctx.identity),
        400 if has("SecretTooLarge") => Error::new(
            ErrorKind::TooLarge,
            format!(
                "vault {} refused {}: the value is longer than Key Vault stores ({code})",
                ctx.vault, ctx.subject
            ),
        )
        .with_hint("store at most 19,200 bytes (25,600 characters as Base64) per secret"),
        400 if has("BadParameter") => Error::new(
            ErrorKind::Service,
            format!(
                "vault {} refused the request for {} as invalid ({code})",
                ctx.vault, ctx.subject
            ),
        )
        .with_hint(
            "check the ref and version; when storing: at most 19,200 bytes per value, \
             15 tags of at most 512 characters",
        ),
        409 if has("ObjectIsDeletedButRecoverable") => Error::new(
            ErrorKind::Service,
            format!("{} is deleted but recoverable in vault {}", ctx.subject, ctx.vault),
        )
        .with_hint("recover it (az keyvault secret recover) or purge it before storing it again"),
        429 => {
            let asked = retry_after.map_or(String::new(), |d| format!(" and asked to wait {}", secs(d)));
            Error::new(
                ErrorKind::Throttled,
                format!("vault {} is throttling requests (HTTP 429){asked}", ctx.vault),
            )
            .with_hint("try again later, or raise keyvault.timeout above the requested wait")
        }
        500..=599 => Error::new(
            ErrorKind::Service,
            format!("vault {} failed with HTTP {status} ({code}) for {}", ctx.vault, ctx.subject),
        )
        .with_hint("try again later; if it persists, check the vault's health in the Azure portal"),
        _ => Error::new(
            ErrorKind::Service,
            format!(
                "vault {} refused the request for {} with HTTP {status} ({code})",
                ctx.vault, ctx.subject
            ),
        )
        .with_hint("check keyvault.url and the ref; if they are right, please report this as a bug"),
    }
}

/// Maps any SDK error to an [`Error`], looking through the error chain for what the core put
/// there (chain failures, throttling, transport failures) before looking at HTTP answers.
pub(crate) fn map_sdk_error(err: &azure_core::Error, ctx: &ErrorContext) -> Error {
    let mut core: Option<Error> = None;
    let mut transport_failure: Option<TransportFailure> = None;
    let mut http: Option<(u16, Vec<u8>, Option<Duration>)> = None;
    let mut challenge: Option<String> = None;
    transport::walk_errors(err, &mut |e| {
        if let Some(c) = e.downcast_ref::<Error>() {
            core.get_or_insert_with(|| c.clone());
        } else if let Some(c) = e.downcast_ref::<ChainFailure>() {
            core.get_or_insert_with(|| c.0.clone());
        } else if let Some(t) = e.downcast_ref::<TransportFailure>() {
            transport_failure.get_or_insert_with(|| t.clone());
        } else if let Some(a) = e.downcast_ref::<azure_core::Error>() {
            if let azure_core::error::ErrorKind::HttpResponse {
                status,
                raw_response,
                ..
            } = a.kind()
            {
                if http.is_none() {
                    let (body, after) = raw_response.as_ref().map_or((Vec::new(), None), |r| {
                        (r.body().to_vec(), transport::retry_after(r.headers()))
                    });
                    http = Some((u16::from(*status), body, after));
                }
            } else {
                let text = a.to_string();
                if text.contains("challenge resource") && challenge.is_none() {
                    challenge = Some(text);
                }
            }
        }
    });
    if let Some(c) = core {
        return c;
    }
    if let Some(t) = transport_failure {
        return t.into_error();
    }
    if let Some((status, body, after)) = http {
        return map_http_error(status, &body, after, ctx);
    }
    if let Some(text) = challenge {
        let resource = text
            .split('\'')
            .nth(1)
            .map(|s| s.trim_end_matches("/.default").to_owned())
            .unwrap_or_else(|| "another domain".to_owned());
        return Error::new(
            ErrorKind::BadConfig,
            format!(
                "vault {} asked for a token for {resource}, which is not a parent domain of the vault's host, \
                 and challenge resource verification is on",
                ctx.vault
            ),
        )
        .with_hint(
            "for a vault outside *.vault.azure.net (an emulator, a private name) turn the check off \
             (keyvault.verify-challenge-resource = false, VaultConfig.verify_challenge_resource); \
             otherwise check keyvault.url",
        );
    }
    if matches!(err.kind(), azure_core::error::ErrorKind::Credential) {
        return Error::new(
            ErrorKind::Unauthenticated,
            format!(
                "cannot get a token for vault {}: {}",
                ctx.vault,
                crate::credential::sanitize_sdk_message(&err.to_string())
            ),
        )
        .with_hint("run `az login`, or check the credential settings (keyvault.credential)");
    }
    Error::new(
        ErrorKind::Service,
        format!(
            "unexpected failure talking to vault {} about {}: {}",
            ctx.vault,
            ctx.subject,
            crate::credential::sanitize_sdk_message(&err.to_string())
        ),
    )
    .with_hint("try again; if it persists, please report this as a bug")
}

/// An error context for unit tests (here and in [`crate::vault_values`]).
#[cfg(test)]
pub(crate) fn test_context(access: Access) -> ErrorContext {
    ErrorContext {
        access,
        vault: "https://contoso.vault.azure.net/".into(),
        subject: "secret secret://hg/ci-bot/password (hg-262b9dc2f9005d92ec832bc94ae27edc)".into(),
        secret_ref: Some("secret://hg/ci-bot/password".into()),
        version: None,
        identity: Some(Identity {
            link: crate::config::CredentialChoice::Environment,
            link_id: "environment",
            via: "service principal secret (AZURE_CLIENT_SECRET)".into(),
            tenant_id: Some("tid-1".into()),
            client_id: Some("cid-1".into()),
            object_id: Some("oid-1".into()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(access: Access) -> ErrorContext {
        test_context(access)
    }

    #[test]
    fn not_found_hints_hg_vault_set() {
        let body = br#"{"error":{"code":"SecretNotFound","message":"A secret with (name/id) x was not found in this key vault."}}"#;
        let e = map_http_error(404, body, None, &ctx(Access::Read));
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e
            .message()
            .contains("does not exist in vault https://contoso.vault.azure.net/"));
        assert_eq!(
            e.hint(),
            Some("store it with `hg vault set secret://hg/ci-bot/password`")
        );
    }

    #[test]
    fn forbidden_names_identity_vault_and_role() {
        let body = br#"{"error":{"code":"Forbidden","message":"Caller is not authorized","innererror":{"code":"ForbiddenByRbac"}}}"#;
        let e = map_http_error(403, body, None, &ctx(Access::Read));
        assert_eq!(e.kind(), ErrorKind::Forbidden);
        assert!(
            e.message()
                .contains("client id cid-1 (object id oid-1) via environment"),
            "{}",
            e.message()
        );
        assert!(e.message().contains("https://contoso.vault.azure.net/"));
        assert!(e.message().contains("ForbiddenByRbac"));
        let hint = e.hint().unwrap();
        assert!(hint.starts_with("assign the role 'Key Vault Secrets User' (read) to oid-1 on https://contoso.vault.azure.net/"), "{hint}");
        let e = map_http_error(403, body, None, &ctx(Access::Write));
        assert!(e
            .hint()
            .unwrap()
            .contains("'Key Vault Secrets Officer' (write) to oid-1"));
    }

    #[test]
    fn forbidden_by_the_vaults_network_rules_says_so_instead_of_asking_for_a_role() {
        for code in ["ForbiddenByFirewall", "ForbiddenByConnection"] {
            let body = format!(
                r#"{{"error":{{"code":"Forbidden","message":"Client address is not authorized","innererror":{{"code":"{code}"}}}}}}"#
            );
            let e = map_http_error(403, body.as_bytes(), None, &ctx(Access::Read));
            assert_eq!(e.kind(), ErrorKind::Forbidden);
            assert!(
                e.message().contains("this machine's network"),
                "{}",
                e.message()
            );
            assert!(e.message().contains(code), "{}", e.message());
            let hint = e.hint().unwrap();
            assert!(hint.contains("az keyvault network-rule add"), "{hint}");
            assert!(!hint.contains("role"), "{hint}");
        }
    }

    #[test]
    fn forbidden_with_secret_disabled_maps_to_disabled() {
        let disabled = br#"{"error":{"code":"Forbidden","message":"Operation get is not allowed on a disabled secret.","innererror":{"code":"SecretDisabled"}}}"#;
        assert_eq!(
            map_http_error(403, disabled, None, &ctx(Access::Read)).kind(),
            ErrorKind::Disabled
        );
    }

    /// The real body of a vault that uses access policies (message as Microsoft's AKS
    /// troubleshooting page quotes it; inner code `ForbiddenByPolicy`, older `AccessDenied`).
    fn policy_body(permission: &str, inner: &str) -> String {
        format!(
            r#"{{"error":{{"code":"Forbidden","message":"The user, group or application 'appid=cid-1;oid=oid-1;iss=https://sts.windows.net/tid-1/' does not have secrets {permission} permission on key vault 'contoso;location=westeurope'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287","innererror":{{"code":"{inner}"}}}}}}"#
        )
    }

    #[test]
    fn access_policy_vaults_get_the_set_policy_hint_with_the_permission_they_named() {
        for inner in ["ForbiddenByPolicy", "AccessDenied"] {
            let body = policy_body("get", inner);
            let e = map_http_error(403, body.as_bytes(), None, &ctx(Access::Read));
            assert_eq!(e.kind(), ErrorKind::Forbidden);
            assert!(
                e.message().contains("secrets get permission"),
                "{}",
                e.message()
            );
            assert!(e.message().contains(inner), "{}", e.message());
            assert_eq!(
                e.hint().unwrap(),
                "the vault uses access policies, not Azure RBAC: grant it with az keyvault \
                 set-policy --name contoso --object-id oid-1 --secret-permissions get"
            );
            assert!(!e.hint().unwrap().contains("role"));
        }
        let body = policy_body("set", "ForbiddenByPolicy");
        let e = map_http_error(403, body.as_bytes(), None, &ctx(Access::Write));
        assert!(e.hint().unwrap().ends_with("--secret-permissions set"));
        // A permission word the core does not know is not copied; the access decides.
        let body = policy_body("x; rm -rf", "AccessDenied");
        let e = map_http_error(403, body.as_bytes(), None, &ctx(Access::Write));
        assert!(e.hint().unwrap().ends_with("--secret-permissions set"));
        assert!(!format!("{e:?}").contains("rm -rf"));
    }

    #[test]
    fn vault_names_come_from_known_vault_hosts_only() {
        assert_eq!(
            vault_name("https://contoso.vault.azure.net/").as_deref(),
            Some("contoso")
        );
        assert_eq!(
            vault_name("https://x.vault.azure.cn/").as_deref(),
            Some("x")
        );
        assert_eq!(vault_name("https://127.0.0.1:8443/"), None);
    }

    #[test]
    fn a_real_400_says_what_was_refused_instead_of_asking_for_a_bug_report() {
        // The service's answer to a value over 25,600 characters.
        let body = br#"{"error":{"code":"BadParameter","message":"Secret is beyond the maximum permitted length of 25600 characters.","innererror":{"code":"SecretTooLarge"}}}"#;
        let e = map_http_error(400, body, None, &ctx(Access::Write));
        assert_eq!(e.kind(), ErrorKind::TooLarge);
        assert!(e.message().contains("SecretTooLarge"), "{}", e.message());
        assert!(e.hint().unwrap().contains("19,200 bytes"));
        let other = br#"{"error":{"code":"BadParameter","message":"whatever"}}"#;
        let e = map_http_error(400, other, None, &ctx(Access::Write));
        assert_eq!(e.kind(), ErrorKind::Service);
        assert!(!e.hint().unwrap().contains("bug"), "{:?}", e.hint());
    }

    #[test]
    fn throttling_unauthorized_and_server_errors() {
        let e = map_http_error(429, b"", Some(Duration::from_secs(7)), &ctx(Access::Read));
        assert_eq!(e.kind(), ErrorKind::Throttled);
        assert!(e.message().contains("asked to wait 7 s"));
        assert_eq!(
            map_http_error(401, b"", None, &ctx(Access::Read)).kind(),
            ErrorKind::Unauthenticated
        );
        for s in [500, 502, 503, 504] {
            let e = map_http_error(s, b"not json", None, &ctx(Access::Read));
            assert_eq!(e.kind(), ErrorKind::Service, "{s}");
            assert!(e.message().contains(&format!("HTTP {s}")));
        }
        assert_eq!(
            map_http_error(400, b"{}", None, &ctx(Access::Write)).kind(),
            ErrorKind::Service
        );
    }

    #[test]
    fn server_messages_are_not_copied_into_errors() {
        let body = br#"{"error":{"code":"BadParameter","message":"value c2VjcmV0LWRpc3RpbmN0aXZl is bad"}}"#;
        let e = map_http_error(400, body, None, &ctx(Access::Write));
        assert!(!format!("{e:?}").contains("c2VjcmV0"));
        assert!(e.message().contains("BadParameter"));
    }
}
