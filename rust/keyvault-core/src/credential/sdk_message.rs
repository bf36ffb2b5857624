//! SDK error texts, cut down to what may be shown.

/// An SDK message reduced to one short line: no troubleshooting link, nothing token-shaped.
pub(crate) fn sanitize_sdk_message(text: &str) -> String {
    let first = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("To troubleshoot"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cleaned = first;
    for prefix in [
        "ClientSecretCredential authentication failed.",
        "WorkloadIdentityCredential authentication failed.",
        "ClientAssertionCredential authentication failed.",
        "AzurePipelinesCredential authentication failed.",
        "ManagedIdentityCredential authentication failed.",
        "AzureCliCredential authentication failed.",
    ] {
        if let Some(rest) = cleaned.strip_prefix(prefix) {
            cleaned = rest.trim().to_owned();
        }
    }
    let words: Vec<String> = cleaned
        .split(' ')
        .map(|w| {
            if w.starts_with("eyJ") || (w.len() > 40 && w.matches('.').count() >= 2) {
                "[redacted]".to_owned()
            } else {
                w.to_owned()
            }
        })
        .collect();
    let mut line = words.join(" ");
    // Room for Entra's AADSTS70021, which names the assertion's issuer, subject and audience:
    // what a user compares with the federated credential.
    if line.chars().count() > 400 {
        line = line.chars().take(397).collect::<String>() + "...";
    }
    if line.is_empty() {
        "no details".to_owned()
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_messages_are_cut_to_one_clean_line() {
        let m = sanitize_sdk_message(
            "ClientSecretCredential authentication failed. AADSTS7000215: Invalid client secret.\nTo troubleshoot, visit https://aka.ms/x",
        );
        assert_eq!(m, "AADSTS7000215: Invalid client secret.");
        let m = sanitize_sdk_message("got eyJhbGciOi.eyJzdWIiOi.c2ln back");
        assert_eq!(m, "got [redacted] back");
        let m = sanitize_sdk_message(
            "ClientAssertionCredential authentication failed. AADSTS70021: No matching federated identity record found for presented assertion. \
             Assertion Issuer: 'https://token.actions.githubusercontent.com'. Assertion Subject: 'repo:contoso/app:ref:refs/heads/feature-branch-name'. \
             Assertion Audience: 'api://AzureADTokenExchange'. Trace ID: 0f1c0000-0000-4000-8000-000000000001 Correlation ID: 0f1c0000-0000-4000-8000-000000000002",
        );
        assert!(
            m.contains("Assertion Audience: 'api://AzureADTokenExchange'"),
            "{m}"
        );
    }
}
