//! The one ref parser: never panics; what it accepts is printable, round-trips, and maps to a
//! valid Key Vault name.
#![no_main]

use hg_keyvault_core::{secret_name, NamePrefix, SecretRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match SecretRef::parse(text) {
        Ok(parsed) => {
            assert_eq!(parsed.as_str(), text);
            assert!(!text.chars().any(|c| c.is_control() || c.is_whitespace()));
            assert_eq!(SecretRef::parse(parsed.as_str()).unwrap(), parsed);
            let name = secret_name(&parsed, &NamePrefix::default());
            assert!(!name.is_empty() && name.len() <= 127, "{name}");
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{name}");
        }
        Err(err) => {
            // Errors echo the input escaped: no control character reaches a terminal.
            assert!(!err.message().chars().any(|c| c.is_control()), "{:?}", err.message());
        }
    }
});
