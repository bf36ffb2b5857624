//! The sealed token cache across sessions (as across hg processes) for the links whose material
//! lives in files: the same file content opens the entry (a warm hit, no token request), a new
//! content (a rotated federated token, a new az login) does not (one fetch, then warm again).

mod common;

use common::{write_script, Emulator};
use hg_keyvault_core::token_cache::TokenSource;
use hg_keyvault_core::{azure::SetOptions, CredentialEnv, SecretRef, SecretValue, Session};

fn r(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

/// Reads `secret_ref` in a new session (a new process, for the cache) and says where the
/// token came from.
fn read_in_new_session(emu: &Emulator, env: &CredentialEnv, secret_ref: &SecretRef) -> TokenSource {
    let s = Session::with_env(&emu.config(), env.clone()).unwrap();
    assert_eq!(s.get(secret_ref, None).unwrap().value.expose(), b"v");
    s.cache_status().unwrap().token_source.unwrap()
}

fn token_requests(emu: &Emulator) -> usize {
    emu.request_log()
        .iter()
        .filter(|l| l["target"] == "token")
        .count()
}

fn kernel_keyring_available(emu: &Emulator, env: &CredentialEnv) -> bool {
    let s = Session::with_env(&emu.config(), env.clone()).unwrap();
    s.cache_status().unwrap().token_store
        == Some(hg_keyvault_core::token_cache::CacheStore::KernelKeyring)
}

#[test]
fn a_workload_identity_entry_opens_until_the_token_file_rotates() {
    let emu = Emulator::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let assertion = emu.federated_assertion("officer");
    std::fs::write(&file, &assertion).unwrap();
    let env = CredentialEnv::from_pairs([
        ("AZURE_TENANT_ID", emu.s("tenant_id")),
        ("AZURE_CLIENT_ID", emu.client_id("officer")),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", emu.s("authority_host")),
    ]);
    if !kernel_keyring_available(&emu, &env) {
        eprintln!("kernel keyutils unavailable here; nothing to test");
        return;
    }
    let secret_ref = r("secret://sealed/wi");
    Session::with_env(&emu.config(), env.clone())
        .unwrap()
        .set(&secret_ref, &SecretValue::from("v"), SetOptions::default())
        .unwrap();
    let fetched = token_requests(&emu);

    assert!(matches!(
        read_in_new_session(&emu, &env, &secret_ref),
        TokenSource::Cache(_)
    ));
    assert_eq!(token_requests(&emu), fetched);

    // The kubelet rotated the token (a new one, as Entra now checks it): a new entry, fetched
    // once, then warm again.
    let rotated = emu.federated_assertion("officer");
    assert_ne!(rotated, assertion);
    std::fs::write(&file, &rotated).unwrap();
    assert!(matches!(
        read_in_new_session(&emu, &env, &secret_ref),
        TokenSource::Fetched(_)
    ));
    assert_eq!(token_requests(&emu), fetched + 1);
    assert!(matches!(
        read_in_new_session(&emu, &env, &secret_ref),
        TokenSource::Cache(_)
    ));
    assert_eq!(token_requests(&emu), fetched + 1);
}

#[test]
fn an_azure_cli_entry_opens_until_the_login_files_change() {
    let emu = Emulator::start(&[]);
    let bin = tempfile::tempdir().unwrap();
    let runs = bin.path().join("runs");
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    // Counts its runs, answers like `az account get-access-token -o json`.
    write_script(
        &bin.path().join("az"),
        &format!(
            "#!/bin/sh\necho run >> '{}'\ncat <<'JSON'\n{{\"accessToken\": \"{}\", \"expiresOn\": \"2099-01-01 00:00:00.000000\", \"expires_on\": {expires}, \"subscription\": \"s\", \"tenant\": \"t\", \"tokenType\": \"Bearer\"}}\nJSON\n",
            runs.display(),
            emu.token_for("officer"),
        ),
    );
    let azure = tempfile::tempdir().unwrap();
    std::fs::write(
        azure.path().join("azureProfile.json"),
        "{\"subscriptions\": []}",
    )
    .unwrap();
    std::fs::write(
        azure.path().join("msal_token_cache.json"),
        "{\"RefreshToken\": 1}",
    )
    .unwrap();
    let env = CredentialEnv::from_pairs([
        ("PATH", format!("{}:/usr/bin:/bin", bin.path().display())),
        ("AZURE_CONFIG_DIR", azure.path().display().to_string()),
    ]);
    if !kernel_keyring_available(&emu, &env) {
        eprintln!("kernel keyutils unavailable here; nothing to test");
        return;
    }
    let az_runs = || {
        std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let secret_ref = r("secret://sealed/cli");
    Session::with_env(&emu.config(), env.clone())
        .unwrap()
        .set(&secret_ref, &SecretValue::from("v"), SetOptions::default())
        .unwrap();
    assert_eq!(az_runs(), 1);

    assert!(matches!(
        read_in_new_session(&emu, &env, &secret_ref),
        TokenSource::Cache(_)
    ));
    assert_eq!(az_runs(), 1);

    // The CLI refreshed a token (for any resource): its MSAL cache changed, so ours misses once.
    std::fs::write(
        azure.path().join("msal_token_cache.json"),
        "{\"RefreshToken\": 2}",
    )
    .unwrap();
    assert!(matches!(
        read_in_new_session(&emu, &env, &secret_ref),
        TokenSource::Fetched(_)
    ));
    assert_eq!(az_runs(), 2);
    assert!(matches!(
        read_in_new_session(&emu, &env, &secret_ref),
        TokenSource::Cache(_)
    ));
    assert_eq!(az_runs(), 2);
}
