//! Key Vault's authentication challenge: the `WWW-Authenticate: Bearer ...` header of a 401
//! names the token scope (`scope="…"` or `resource="…"`). The SDK learns it by sending every
//! new client's first request unauthenticated; the token cache keeps the scope with the token
//! so that a warm process skips that probe, and this module reads it when the cache's own probe
//! has to (a cold process holding the cross-process lock).
//!
//! Same rules as the SDK's `KeyVaultAuthorizer` (azure_security_keyvault_secrets 1.0.1): a
//! `resource` becomes `<resource>/.default`; with resource verification on, the vault host must
//! end with `.<scope host>`, so that a token is never sent to a host outside the scope's domain.

/// The token scope a challenge names, if it names one.
pub fn scope_of(challenge: &str) -> Option<String> {
    // Parameters are `name="value"` pairs, comma separated, after the `Bearer` scheme.
    let params = challenge.trim().strip_prefix("Bearer")?;
    let mut scope = None;
    let mut resource = None;
    for part in params.split(',') {
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        if value.is_empty() {
            continue;
        }
        match name.trim().to_ascii_lowercase().as_str() {
            "scope" => scope = Some(value.to_owned()),
            "resource" => resource = Some(format!("{}/.default", value.trim_end_matches('/'))),
            _ => {}
        }
    }
    scope.or(resource)
}

/// Key Vault's DNS suffixes of the live Azure clouds: public, China (21Vianet) and US
/// Government, as the SDKs' cloud tables name them (`AzureKeyVaultDnsSuffix`; their challenge's
/// `resource` is `https://<suffix>`). Azure Germany (`vault.microsoftazure.de`) closed in October
/// 2021 and is left to the probe, like private clouds, Azure Stack and the emulator.
const CLOUD_SUFFIXES: [&str; 3] = [
    "vault.azure.net",
    "vault.azure.cn",
    "vault.usgovcloudapi.net",
];

/// The scope a vault's challenge would name, when its host says which cloud it is in
/// (`<name>.vault.azure.net` and the sovereign clouds' suffixes); `None` for any other host,
/// whose scope only the challenge tells. Knowing it saves a cold process the unauthenticated
/// probe; a 401 to the token still sends it back to the challenge.
pub fn cloud_scope(vault_host: &str) -> Option<String> {
    let host = vault_host.trim_end_matches('.').to_ascii_lowercase();
    CLOUD_SUFFIXES.iter().find_map(|suffix| {
        let name = host.strip_suffix(suffix)?.strip_suffix('.')?;
        (!name.is_empty()).then(|| format!("https://{suffix}/.default"))
    })
}

/// Whether a token for `scope` may be sent to `vault_host` (the SDK's challenge verification).
pub fn scope_fits_host(scope: &str, vault_host: &str) -> bool {
    let Some(scope_host) = url::Url::parse(scope)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    vault_host
        .to_ascii_lowercase()
        .ends_with(&format!(".{scope_host}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_scope_or_resource() {
        assert_eq!(
            scope_of(
                r#"Bearer authorization="https://login.microsoftonline.com/t", scope="https://vault.azure.net/.default""#
            )
            .as_deref(),
            Some("https://vault.azure.net/.default")
        );
        assert_eq!(
            scope_of(
                r#"Bearer authorization="https://127.0.0.1:1/t", resource="https://vault.azure.net", error="invalid_token""#
            )
            .as_deref(),
            Some("https://vault.azure.net/.default")
        );
        assert_eq!(scope_of(r#"Basic realm="x""#), None);
        assert_eq!(scope_of(r#"Bearer authorization="https://a/t""#), None);
    }

    #[test]
    fn verification_needs_the_vault_under_the_scope_domain() {
        let scope = "https://vault.azure.net/.default";
        assert!(scope_fits_host(scope, "contoso.vault.azure.net"));
        assert!(scope_fits_host(scope, "Contoso.Vault.Azure.Net"));
        assert!(!scope_fits_host(scope, "vault.azure.net.evil.example"));
        assert!(!scope_fits_host(scope, "127.0.0.1"));
        assert!(!scope_fits_host("not a url", "contoso.vault.azure.net"));
    }

    #[test]
    fn the_host_names_the_scope_only_under_a_live_clouds_suffix() {
        for (host, scope) in [
            (
                "contoso.vault.azure.net",
                "https://vault.azure.net/.default",
            ),
            (
                "Contoso.Vault.Azure.Net.",
                "https://vault.azure.net/.default",
            ),
            ("contoso.vault.azure.cn", "https://vault.azure.cn/.default"),
            (
                "contoso.vault.usgovcloudapi.net",
                "https://vault.usgovcloudapi.net/.default",
            ),
        ] {
            assert_eq!(cloud_scope(host).as_deref(), Some(scope), "{host}");
            assert!(scope_fits_host(scope, host.trim_end_matches('.')), "{host}");
        }
        for host in [
            "vault.azure.net",
            ".vault.azure.net",
            "contosovault.azure.net",
            "vault.azure.net.evil.example",
            "contoso.vault.microsoftazure.de",
            "vault.contoso.local",
            "127.0.0.1",
            "localhost",
        ] {
            assert_eq!(cloud_scope(host), None, "{host}");
        }
    }
}
