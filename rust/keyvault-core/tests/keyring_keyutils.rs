//! The keyring provider against the real Linux kernel keyutils store, as a headless process
//! sees it (no login session keyring here: keys live in the user's persistent keyring, shared
//! by every process of the user, so names are unique per run and every test deletes its keys).
#![cfg(target_os = "linux")]

use hg_keyvault_core::{
    ErrorKind, KeyringBackend, KeyringConfig, KeyringStore, NamePrefix, SecretRef, SecretStore,
    SecretValue, SetOptions,
};
use std::collections::BTreeMap;
use std::time::Duration;
use time::OffsetDateTime;

fn store() -> KeyringStore {
    let prefix = format!("t{}-", std::process::id());
    KeyringStore::new(&KeyringConfig {
        backend: KeyringBackend::Keyutils,
        timeout: Duration::from_secs(5),
        name_prefix: NamePrefix::parse(&prefix).unwrap(),
    })
    .unwrap()
}

fn r(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

#[test]
fn rotation_keeps_the_ref_and_readers_get_the_current_version() {
    let store = store();
    let secret_ref = r("secret://keyutils/rotation");
    let first = store
        .set(
            &secret_ref,
            &SecretValue::from("first-value"),
            SetOptions::default(),
        )
        .unwrap();
    let tags = BTreeMap::from([("team".to_owned(), "ci".to_owned())]);
    let second = store
        .set(
            &secret_ref,
            &SecretValue::from(&[0u8, 255, 10][..]),
            SetOptions {
                expires: None,
                tags: tags.clone(),
            },
        )
        .unwrap();
    assert_ne!(first.version, second.version);
    let got = store.get(&secret_ref, None).unwrap();
    assert_eq!(got.value.expose(), &[0u8, 255, 10]);
    assert_eq!(got.properties.version, second.version);
    assert_eq!(got.properties.tags, tags);
    assert_eq!(
        got.properties.secret_ref.as_deref(),
        Some(secret_ref.as_str())
    );
    let versions = store.versions(&secret_ref).unwrap();
    assert_eq!(
        versions
            .iter()
            .map(|p| p.version.clone())
            .collect::<Vec<_>>(),
        vec![first.version.clone(), second.version.clone()]
    );
    let old = store
        .get(&secret_ref, first.version.as_deref())
        .unwrap_err();
    assert_eq!(old.kind(), ErrorKind::NotFound);
    assert!(old.message().contains("keeps only the current value"));
    let listed = store.list().unwrap();
    assert!(listed
        .iter()
        .any(|p| p.secret_ref.as_deref() == Some(secret_ref.as_str())));
    store.delete(&secret_ref).unwrap();
}

#[test]
fn expired_and_missing_secrets_fail_with_their_kind_and_a_hint() {
    let store = store();
    let expired = r("secret://keyutils/expired");
    store
        .set(
            &expired,
            &SecretValue::from("v"),
            SetOptions {
                expires: Some(OffsetDateTime::now_utc() - time::Duration::minutes(1)),
                tags: BTreeMap::new(),
            },
        )
        .unwrap();
    let e = store.get(&expired, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Expired);
    assert!(e
        .hint()
        .unwrap()
        .contains("hg vault set secret://keyutils/expired"));
    // Properties still answer for an expired secret.
    assert!(store.properties(&expired).unwrap().expires.is_some());
    store.delete(&expired).unwrap();

    let missing = r("secret://keyutils/missing");
    let e = store.get(&missing, None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e
        .message()
        .contains("does not exist in the keyutils keyring"));
    assert_eq!(
        store.delete(&missing).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    store.ping().unwrap();
}

#[test]
fn key_vault_identifiers_are_refused() {
    let store = store();
    let e = store
        .get(&r("https://v.vault.azure.net/secrets/x"), None)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BadRef);
}
