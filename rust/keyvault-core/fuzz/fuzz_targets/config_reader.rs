//! The configuration model: the vault URL, the credential choice and the name prefix never
//! panic, and whatever is accepted is an https origin without user info, path or query.
//! Input: line 1 the URL, line 2 the credential, line 3 the name prefix.
#![no_main]

use hg_keyvault_core::{CredentialChoice, NamePrefix, VaultConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let url = lines.next().unwrap_or_default();
    let credential = lines.next().unwrap_or_default();
    let prefix = lines.next().unwrap_or_default();
    if let Ok(config) = VaultConfig::new(url) {
        let parsed = &config.vault_url;
        assert_eq!(parsed.scheme(), "https");
        assert!(parsed.username().is_empty() && parsed.password().is_none());
        assert_eq!(parsed.path(), "/");
        assert!(parsed.query().is_none() && parsed.fragment().is_none());
        assert!(parsed.host_str().is_some_and(|h| !h.is_empty()));
        config.validate().expect("a parsed config is valid");
    }
    if let Ok(choice) = credential.parse::<CredentialChoice>() {
        assert_eq!(choice.as_str().parse::<CredentialChoice>().unwrap(), choice);
    }
    if let Ok(p) = NamePrefix::parse(prefix) {
        let p = p.as_str();
        assert!(p.len() <= 95 && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
});
