//! Property tests: the invariants of the fuzz targets (`fuzz/fuzz_targets`), checked on a bounded
//! number of generated inputs in every `cargo test` run. `make fuzz` runs the open-ended version.

use hg_keyvault_core::origin::{best_match, GroupPrefix};
use hg_keyvault_core::{secret_name, NamePrefix, SecretRef, VaultConfig};
use proptest::prelude::*;
use url::Url;

/// Text with a bias towards the characters the parsers care about.
fn tricky_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("secret://".to_string()),
        Just("https://".to_string()),
        Just("ssh://".to_string()),
        Just("/".to_string()),
        Just("*".to_string()),
        Just(":".to_string()),
        Just("@".to_string()),
        Just("..".to_string()),
        Just("h".to_string()),
        Just("hg.contoso.com".to_string()),
        Just("\r\n".to_string()),
        Just("\0".to_string()),
        Just("\u{1b}[2J".to_string()),
        "[a-zA-Z0-9._~-]{0,6}",
        any::<char>().prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..10).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn accepted_refs_are_printable_round_trip_and_name_validly(text in tricky_text()) {
        match SecretRef::parse(&text) {
            Ok(parsed) => {
                prop_assert_eq!(parsed.as_str(), text.as_str());
                prop_assert!(!text.chars().any(|c| c.is_control() || c.is_whitespace()));
                prop_assert_eq!(SecretRef::parse(parsed.as_str()).unwrap(), parsed.clone());
                let name = secret_name(&parsed, &NamePrefix::default());
                prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            }
            Err(err) => prop_assert!(!err.message().chars().any(|c| c.is_control())),
        }
    }

    #[test]
    fn matches_share_scheme_and_host_and_never_come_from_wildcards(
        url in tricky_text(),
        prefixes in prop::collection::vec(tricky_text(), 0..4),
    ) {
        let schemes = vec!["https".to_string(), "ssh".to_string()];
        let groups: Vec<GroupPrefix<'_>> = prefixes
            .iter()
            .map(|prefix| GroupPrefix { prefix, schemes: &schemes, username: None })
            .collect();
        match best_match(&url, &groups, None) {
            Ok(Some(index)) => {
                let prefix = prefixes[index].trim();
                prop_assert!(!prefix.is_empty() && !prefix.contains('*'));
                let target = Url::parse(&url).unwrap();
                let candidate = if prefix.contains("://") {
                    prefix.to_string()
                } else {
                    format!("{}://{prefix}", target.scheme())
                };
                let origin = Url::parse(&candidate).unwrap();
                prop_assert_eq!(
                    origin.host_str().map(str::to_ascii_lowercase),
                    target.host_str().map(str::to_ascii_lowercase)
                );
            }
            Ok(None) => {}
            Err(_) => prop_assert!(
                url.chars().any(char::is_control)
                    || prefixes.iter().any(|p| p.chars().any(char::is_control))
            ),
        }
    }

    #[test]
    fn accepted_vault_urls_are_bare_https_origins(url in tricky_text()) {
        if let Ok(config) = VaultConfig::new(&url) {
            let parsed = &config.vault_url;
            prop_assert_eq!(parsed.scheme(), "https");
            prop_assert!(parsed.username().is_empty() && parsed.password().is_none());
            prop_assert_eq!(parsed.path(), "/");
            prop_assert!(parsed.query().is_none() && parsed.fragment().is_none());
        }
    }
}
