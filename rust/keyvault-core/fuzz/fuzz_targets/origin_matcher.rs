//! The `[auth]` prefix matcher: never panics, never matches a wildcard or empty prefix, never
//! accepts a control character, and a match always shares the URL's scheme and host.
//! Input: line 1 the URL, line 2 an optional user ("-" for none), then one prefix per line.
#![no_main]

use hg_keyvault_core::origin::{best_match, GroupPrefix};
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let url = lines.next().unwrap_or_default();
    let user = lines.next().filter(|u| *u != "-");
    let prefixes: Vec<&str> = lines.take(8).collect();
    let schemes = vec!["https".to_string(), "ssh".to_string()];
    let groups: Vec<GroupPrefix<'_>> = prefixes
        .iter()
        .map(|prefix| GroupPrefix {
            prefix,
            schemes: &schemes,
            username: None,
        })
        .collect();
    match best_match(url, &groups, user) {
        Ok(Some(index)) => {
            let prefix = prefixes[index].trim();
            assert!(!prefix.is_empty() && !prefix.contains('*'), "{prefix:?}");
            assert!(!url.chars().any(char::is_control));
            let target = Url::parse(url).expect("a matched URL parses");
            let candidate = if prefix.contains("://") {
                prefix.to_string()
            } else {
                format!("{}://{prefix}", target.scheme())
            };
            let origin = Url::parse(&candidate).expect("a matching prefix parses");
            assert!(origin.scheme().eq_ignore_ascii_case(target.scheme()));
            assert_eq!(
                origin.host_str().map(str::to_ascii_lowercase),
                target.host_str().map(str::to_ascii_lowercase),
                "{prefix:?} matched {url:?}"
            );
        }
        Ok(None) => {}
        Err(_) => assert!(
            url.chars().any(char::is_control)
                || prefixes.iter().any(|p| p.chars().any(char::is_control))
        ),
    }
});
