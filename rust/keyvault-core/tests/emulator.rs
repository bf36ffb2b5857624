//! The core against the local Key Vault + Entra ID emulator: storage semantics, every
//! credential link, every error kind, deadlines and Retry-After, and redaction.

mod common;

use common::{write_script, Emulator};
use hg_keyvault_core::{
    azure::SetOptions, CredentialChoice, CredentialEnv, ErrorKind, SecretRef, SecretValue, Session,
    CONTENT_TYPE, REF_TAG,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const DISTINCTIVE: &str = "s3cr3t-DISTINCTIVE-value-0xC0FFEE";

fn r(text: &str) -> SecretRef {
    SecretRef::parse(text).unwrap()
}

fn session(emu: &Emulator, principal: &str) -> Session {
    Session::with_env(&emu.config(), emu.secret_env(principal)).unwrap()
}

/// Neither the value nor its Base64 may appear in an error's Display or Debug.
/// Stores `value` at `path` as a new version.
fn put(s: &Session, path: &str, value: &str) {
    s.set(&r(path), &SecretValue::from(value), SetOptions::default())
        .unwrap();
}

/// Stores `value` at `path` and reads it back through `s`: the session's link authenticated
/// both a write and a read.
fn round_trip(s: &Session, path: &str, value: &str) {
    put(s, path, value);
    assert_eq!(
        s.get(&r(path), None).unwrap().value.expose(),
        value.as_bytes()
    );
}

fn assert_redacted(err: &hg_keyvault_core::Error) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(DISTINCTIVE);
    for text in [
        err.to_string(),
        format!("{err:?}"),
        err.hint().unwrap_or_default().to_owned(),
    ] {
        assert!(!text.contains(DISTINCTIVE), "value leaked: {text}");
        assert!(!text.contains(&b64), "Base64 value leaked: {text}");
    }
}

#[test]
fn set_get_rotate_versions_and_properties() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    let secret_ref = r("secret://hg/ci-bot/password");
    let v1 = SecretValue::from(vec![0u8, 1, 2, 255, b'\n']);
    let p1 = s.set(&secret_ref, &v1, SetOptions::default()).unwrap();
    assert_eq!(p1.name, "hg-262b9dc2f9005d92ec832bc94ae27edc");
    assert_eq!(p1.content_type.as_deref(), Some(CONTENT_TYPE));
    assert_eq!(
        p1.secret_ref.as_deref(),
        Some("secret://hg/ci-bot/password")
    );
    assert_eq!(
        p1.tags.get(REF_TAG).map(String::as_str),
        Some("secret://hg/ci-bot/password")
    );

    let got = s.get(&secret_ref, None).unwrap();
    assert_eq!(got.value, v1);
    assert_eq!(format!("{:?}", got.value), "****");
    assert!(got.properties.enabled);

    // Rotation: same ref, new version; readers get the current one.
    let mut tags = BTreeMap::new();
    tags.insert("owner".to_owned(), "ci".to_owned());
    let p2 = s
        .set(
            &secret_ref,
            &SecretValue::from("second"),
            SetOptions {
                tags,
                ..Default::default()
            },
        )
        .unwrap();
    assert_ne!(p1.version, p2.version);
    assert_eq!(s.get(&secret_ref, None).unwrap().value.expose(), b"second");
    assert_eq!(
        s.get(&secret_ref, p1.version.as_deref()).unwrap().value,
        v1,
        "an old version stays readable"
    );
    let versions = s.versions(&secret_ref).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions.last().unwrap().version, p2.version);
    let props = s.properties(&secret_ref).unwrap();
    assert_eq!(props.version, p2.version);
    assert_eq!(props.tags.get("owner").map(String::as_str), Some("ci"));
    assert_eq!(props.secret_ref.as_deref(), Some(secret_ref.as_str()));

    // A Key Vault identifier of the same vault reaches the same secret (and its versions).
    let id = format!("{}secrets/{}", emu.s("vault_url"), p1.name);
    assert_eq!(s.get(&r(&id), None).unwrap().value.expose(), b"second");
    let id_v1 = format!("{id}/{}", p1.version.clone().unwrap());
    assert_eq!(s.get(&r(&id_v1), None).unwrap().value, v1);
    assert_eq!(s.properties(&r(&id_v1)).unwrap().version, p1.version);
}

#[test]
fn list_reads_every_page_and_reports_refs() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    let refs: Vec<String> = (0..30)
        .map(|i| format!("secret://hg/list/{i:02}"))
        .collect();
    for text in &refs {
        s.set(&r(text), &SecretValue::from("x"), SetOptions::default())
            .unwrap();
    }
    let listed = s.list().unwrap();
    assert_eq!(
        listed.len(),
        30,
        "the emulator pages by 25: both pages are read"
    );
    let mut got: Vec<String> = listed.into_iter().filter_map(|p| p.secret_ref).collect();
    got.sort();
    assert_eq!(got, refs);
    let pages = emu
        .request_log()
        .into_iter()
        .filter(|l| l["method"] == "GET" && l["path"] == "/secrets" && l["status"] == 200)
        .count();
    assert!(pages >= 2, "expected at least two list pages, got {pages}");
}

#[test]
fn user_agent_suffix_is_sent_to_vault_and_token_endpoint() {
    let emu = Emulator::start(&[]);
    let mut config = emu.config();
    config.user_agent_suffix =
        Some("hg-keyvault/0.1 mercurial/7.2.4 (test run with a long suffix)".into());
    let s = Session::with_env(&config, emu.secret_env("officer")).unwrap();
    let _ = s.get(&r("secret://ua/none"), None);
    let log = emu.request_log();
    for target in ["vault", "token"] {
        let line = log
            .iter()
            .find(|l| l["target"] == target)
            .unwrap_or_else(|| panic!("{target}"));
        let ua = line["user_agent"].as_str().unwrap();
        assert!(ua.starts_with("azsdk-rust-"), "{ua}");
        assert!(
            ua.ends_with("hg-keyvault/0.1 mercurial/7.2.4 (test run with a long suffix)"),
            "{ua}"
        );
    }
}

#[test]
fn secrets_created_by_hand_are_read_as_text() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    common::runtime().block_on(common_sdk::set_text_secret(
        &emu,
        "made-by-hand",
        "plain text value",
    ));
    let id = format!("{}secrets/made-by-hand", emu.s("vault_url"));
    let got = s.get(&r(&id), None).unwrap();
    assert_eq!(got.value.expose(), b"plain text value");
    assert_eq!(got.properties.secret_ref, None);
    assert_eq!(got.properties.content_type.as_deref(), Some("text/plain"));
}

#[test]
fn an_identifier_of_another_vault_is_a_bad_ref() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    let err = s
        .get(&r("https://other.vault.azure.net/secrets/x"), None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRef);
    assert!(
        err.message().contains("other.vault.azure.net"),
        "{}",
        err.message()
    );
    assert!(err.message().contains(&emu.s("vault_url")));
}

// ---- credential links -------------------------------------------------------------------

#[test]
fn environment_link_reports_identity_claims() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    round_trip(&s, "secret://id/x", "v");
    let id = s.identity().unwrap();
    assert_eq!(id.link, CredentialChoice::Environment);
    assert_eq!(
        id.client_id.as_deref(),
        Some(emu.client_id("officer").as_str())
    );
    assert_eq!(
        id.object_id.as_deref(),
        Some(emu.object_id("officer").as_str())
    );
    assert_eq!(id.tenant_id.as_deref(), Some(emu.s("tenant_id").as_str()));
    assert_eq!(s.selected_link(), Some(CredentialChoice::Environment));
}

#[test]
fn identity_before_any_get_fetches_a_token() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "reader");
    let id = s.identity().unwrap();
    assert_eq!(
        id.object_id.as_deref(),
        Some(emu.object_id("reader").as_str())
    );
}

#[test]
fn workload_identity_link_uses_the_federated_token_file() {
    let emu = Emulator::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, emu.federated_assertion("officer")).unwrap();
    let env = CredentialEnv::from_pairs([
        ("AZURE_TENANT_ID", emu.s("tenant_id")),
        ("AZURE_CLIENT_ID", emu.client_id("officer")),
        ("AZURE_FEDERATED_TOKEN_FILE", file.display().to_string()),
        ("AZURE_AUTHORITY_HOST", emu.s("authority_host")),
    ]);
    let s = Session::with_env(&emu.config(), env).unwrap();
    round_trip(&s, "secret://wi/x", "wi");
    let id = s.identity().unwrap();
    assert_eq!(id.link, CredentialChoice::WorkloadIdentity);
    assert_eq!(
        id.object_id.as_deref(),
        Some(emu.object_id("officer").as_str())
    );
}

#[test]
fn managed_identity_link_uses_identity_endpoint_and_header() {
    let emu = Emulator::start(&[]);
    let env = CredentialEnv::from_pairs([
        ("IDENTITY_ENDPOINT", emu.s("identity_endpoint")),
        ("IDENTITY_HEADER", emu.s("identity_header")),
    ]);
    let s = Session::with_env(&emu.config(), env).unwrap();
    round_trip(&s, "secret://mi/x", "mi");
    let id = s.identity().unwrap();
    assert_eq!(id.link, CredentialChoice::ManagedIdentity);
    assert_eq!(
        id.client_id.as_deref(),
        Some(emu.client_id("managed").as_str())
    );
    assert!(emu
        .request_log()
        .iter()
        .any(|l| l["target"] == "identity" && l["status"] == 200));
}

/// A stand-in `az` that answers like `az account get-access-token -o json`.
fn fake_az(dir: &std::path::Path, token: &str) {
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let script = format!(
        r#"#!/bin/sh
case "$*" in
  *"account get-access-token -o json --scope https://vault.azure.net/.default"*) ;;
  *) echo "unexpected arguments: $*" >&2; exit 2 ;;
esac
cat <<'JSON'
{{
  "accessToken": "{token}",
  "expiresOn": "2099-01-01 00:00:00.000000",
  "expires_on": {expires},
  "subscription": "00000000-0000-0000-0000-000000000000",
  "tenant": "tenant",
  "tokenType": "Bearer"
}}
JSON
"#
    );
    write_script(&dir.join("az"), &script);
}

#[test]
fn azure_cli_link_runs_az_from_the_chain_path() {
    let emu = Emulator::start(&[]);
    let bin = tempfile::tempdir().unwrap();
    let token = emu.token_for("officer");
    fake_az(bin.path(), &token);
    let env =
        CredentialEnv::from_pairs([("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))]);
    let s = Session::with_env(&emu.config(), env).unwrap();
    round_trip(&s, "secret://cli/x", "cli");
    let id = s.identity().unwrap();
    assert_eq!(id.link, CredentialChoice::AzureCli);
    assert_eq!(
        id.object_id.as_deref(),
        Some(emu.object_id("officer").as_str())
    );
}

#[test]
fn an_az_without_expires_on_is_named_as_too_old() {
    let emu = Emulator::start(&[]);
    let bin = tempfile::tempdir().unwrap();
    // What `az account get-access-token` prints before 2.54.0: no `expires_on`.
    write_script(
        &bin.path().join("az"),
        "#!/bin/sh\ncat <<'JSON'\n{\"accessToken\": \"x.y.z\", \"expiresOn\": \
         \"2099-01-01 00:00:00.000000\", \"subscription\": \"s\", \"tenant\": \"t\", \
         \"tokenType\": \"Bearer\"}\nJSON\n",
    );
    let env =
        CredentialEnv::from_pairs([("PATH", format!("{}:/usr/bin:/bin", bin.path().display()))]);
    let mut config = emu.config();
    config.credential = CredentialChoice::AzureCli;
    config.token_cache = false;
    let err = Session::with_env(&config, env)
        .unwrap()
        .get(&r("secret://cli/old"), None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(
        err.message().contains(
            "azure-cli: failed: the Azure CLI is older than 2.54.0 (`az account \
             get-access-token` has no expires_on): upgrade it (az upgrade)"
        ),
        "{}",
        err.message()
    );
}

#[test]
fn a_pinned_choice_uses_only_that_link() {
    let emu = Emulator::start(&[]);
    let bin = tempfile::tempdir().unwrap();
    fake_az(bin.path(), &emu.token_for("reader"));
    // Environment credentials of the officer are present, but azure-cli (reader) is pinned.
    let mut env = emu.secret_env("officer");
    env.set("PATH", format!("{}:/usr/bin:/bin", bin.path().display()));
    let mut config = emu.config();
    config.credential = CredentialChoice::AzureCli;
    let s = Session::with_env(&config, env.clone()).unwrap();
    assert_eq!(s.identity().unwrap().link, CredentialChoice::AzureCli);
    assert_eq!(
        s.identity().unwrap().object_id,
        Some(emu.object_id("reader"))
    );

    // Pinned to a link whose inputs are missing: one line, no fall-through.
    config.credential = CredentialChoice::WorkloadIdentity;
    let s = Session::with_env(&config, env).unwrap();
    let err = s.get(&r("secret://pinned/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert_eq!(err.message().lines().count(), 2, "{}", err.message());
    assert!(err
        .message()
        .contains("workload-identity: skipped: AZURE_FEDERATED_TOKEN_FILE is not set"));
    assert!(err.hint().unwrap().contains("AZURE_FEDERATED_TOKEN_FILE"));
}

#[test]
fn all_links_failing_lists_every_link_and_why() {
    let emu = Emulator::start(&[]);
    let bin = tempfile::tempdir().unwrap();
    write_script(
        &bin.path().join("az"),
        "#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n",
    );
    let mut env = emu.secret_env("officer");
    env.set("AZURE_CLIENT_SECRET", DISTINCTIVE); // wrong secret
    env.set("PATH", format!("{}:/usr/bin:/bin", bin.path().display()));
    let s = Session::with_env(&emu.config(), env).unwrap();
    let err = s.get(&r("secret://all/fail"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    let m = err.message();
    let lines: Vec<&str> = m.lines().collect();
    // One line per link of the table (crate::credential::links), in chain order.
    assert_eq!(lines.len(), 12, "{m}");
    assert!(
        lines[1].starts_with("  environment: failed: ") && lines[1].contains("AADSTS7000215"),
        "{m}"
    );
    assert!(
        lines[2].starts_with("  workload-identity: skipped: AZURE_FEDERATED_TOKEN_FILE"),
        "{m}"
    );
    assert!(
        lines[7]
            .starts_with("  app-service: skipped: IDENTITY_ENDPOINT, IDENTITY_HEADER are not set"),
        "{m}"
    );
    assert!(
        lines[10].starts_with("  azure-vm: skipped: not an Azure VM"),
        "{m}"
    );
    assert!(
        lines[11].starts_with("  azure-cli: failed: ") && lines[11].contains("az login"),
        "{m}"
    );
    // The hint is that of the first link that applied: fix that one first.
    assert!(err.hint().unwrap().contains("AZURE_CLIENT_SECRET"));
    assert_redacted(&err);
}

// ---- error kinds ------------------------------------------------------------------------

#[test]
fn missing_secret_is_not_found_with_a_set_hint() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "reader");
    let err = s.get(&r("secret://nope/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("secret://nope/x"));
    assert_eq!(
        err.hint(),
        Some("store it with `hg vault set secret://nope/x`")
    );
    assert_eq!(
        s.properties(&r("secret://nope/x")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn missing_roles_are_forbidden_naming_identity_vault_and_role() {
    let emu = Emulator::start(&[]);
    session(&emu, "officer")
        .set(
            &r("secret://rbac/x"),
            &SecretValue::from(DISTINCTIVE),
            SetOptions::default(),
        )
        .unwrap();
    let vault = emu.s("vault_url");

    let err = session(&emu, "nobody")
        .get(&r("secret://rbac/x"), None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    let oid = emu.object_id("nobody");
    assert!(
        err.message().contains(&oid) && err.message().contains(&vault),
        "{}",
        err.message()
    );
    assert_eq!(
        err.hint().unwrap().split(", e.g.").next().unwrap(),
        format!("assign the role 'Key Vault Secrets User' (read) to {oid} on {vault}")
    );
    assert_redacted(&err);

    let err = session(&emu, "reader")
        .set(
            &r("secret://rbac/x"),
            &SecretValue::from(DISTINCTIVE),
            SetOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert!(err.hint().unwrap().contains(&format!(
        "'Key Vault Secrets Officer' (write) to {}",
        emu.object_id("reader")
    )));
    assert_redacted(&err);
}

#[test]
fn disabled_and_expired_secrets() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    let p = s
        .set(
            &r("secret://state/disabled"),
            &SecretValue::from(DISTINCTIVE),
            SetOptions::default(),
        )
        .unwrap();
    common::runtime().block_on(common_sdk::disable(&emu, &p.name));
    let err = s.get(&r("secret://state/disabled"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Disabled, "{err:?}");
    assert!(err
        .hint()
        .unwrap()
        .contains("hg vault set secret://state/disabled"));
    assert_redacted(&err);
    // Properties still answer for a disabled secret (read from the version list).
    assert!(!s.properties(&r("secret://state/disabled")).unwrap().enabled);

    let past = time::OffsetDateTime::now_utc() - time::Duration::minutes(5);
    s.set(
        &r("secret://state/expired"),
        &SecretValue::from(DISTINCTIVE),
        SetOptions {
            expires: Some(past),
            ..Default::default()
        },
    )
    .unwrap();
    let err = s.get(&r("secret://state/expired"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Expired, "{err:?}");
    assert!(err.message().contains("has expired"));
    assert_redacted(&err);
    // The vault answered 200 (it returns expired secrets): the refusal is the core's own.
    let last = emu.request_log().pop().unwrap();
    assert_eq!(
        (last["method"].as_str(), last["status"].as_u64()),
        (Some("GET"), Some(200))
    );
    assert!(s
        .properties(&r("secret://state/expired"))
        .unwrap()
        .expires
        .is_some());

    let p = s
        .set(
            &r("secret://state/early"),
            &SecretValue::from(DISTINCTIVE),
            SetOptions::default(),
        )
        .unwrap();
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    common::runtime().block_on(common_sdk::not_before(&emu, &p.name, later));
    let err = s.get(&r("secret://state/early"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Expired, "{err:?}");
    assert!(
        err.message().contains("is not valid yet"),
        "{}",
        err.message()
    );
    assert_redacted(&err);
}

#[test]
fn values_over_the_size_limit_are_refused_before_sending() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    let fits = SecretValue::from(vec![b'x'; 19_200]);
    s.set(&r("secret://size/fits"), &fits, SetOptions::default())
        .unwrap();
    assert_eq!(s.get(&r("secret://size/fits"), None).unwrap().value, fits);
    let before = emu.request_log().len();
    let err = s
        .set(
            &r("secret://size/big"),
            &SecretValue::from(vec![b'x'; 19_201]),
            SetOptions::default(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err:?}");
    assert!(
        err.message().contains("at most 19200 bytes"),
        "{}",
        err.message()
    );
    assert_eq!(emu.request_log().len(), before, "nothing was sent");
    let tags: BTreeMap<String, String> = (0..15).map(|i| (format!("t{i}"), "v".into())).collect();
    let err = s
        .set(
            &r("secret://size/tags"),
            &SecretValue::from("v"),
            SetOptions {
                tags,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err:?}");
    assert!(err.message().contains("16 tags"), "{}", err.message());
}

#[test]
fn an_access_policy_vault_gets_the_set_policy_hint() {
    let emu = Emulator::start(&[]);
    session(&emu, "officer")
        .set(
            &r("secret://ap/x"),
            &SecretValue::from("v"),
            SetOptions::default(),
        )
        .unwrap();
    emu.set_permission_model("access-policy");
    let oid = emu.object_id("nobody");
    let err = session(&emu, "nobody")
        .get(&r("secret://ap/x"), None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    assert!(
        err.message().contains("ForbiddenByPolicy"),
        "{}",
        err.message()
    );
    assert!(
        err.message().contains("secrets get permission"),
        "{}",
        err.message()
    );
    assert_eq!(
        err.hint().unwrap(),
        format!(
            "the vault uses access policies, not Azure RBAC: grant it with az keyvault \
             set-policy --name <vault name> --object-id {oid} --secret-permissions get"
        )
    );
    let err = session(&emu, "reader")
        .set(
            &r("secret://ap/x"),
            &SecretValue::from("v"),
            SetOptions::default(),
        )
        .unwrap_err();
    assert!(
        err.hint().unwrap().ends_with("--secret-permissions set"),
        "{:?}",
        err.hint()
    );
}

#[test]
fn the_current_version_is_what_a_get_without_version_returns() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    // Two versions in one `created` second, listed newest first: a sort on `created` keeps
    // the list's order and would call the older one current.
    emu.freeze_clock(Some(1_700_000_000));
    let secret_ref = r("secret://rot/x");
    let first = s
        .set(&secret_ref, &SecretValue::from("1"), SetOptions::default())
        .unwrap();
    let second = s
        .set(&secret_ref, &SecretValue::from("2"), SetOptions::default())
        .unwrap();
    assert_eq!(first.created, second.created);
    assert_eq!(s.properties(&secret_ref).unwrap().version, second.version);
    let versions = s.versions(&secret_ref).unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions.last().unwrap().version, second.version);
}

#[test]
fn a_401_to_a_cached_token_on_put_and_delete_fetches_a_fresh_one() {
    let emu = Emulator::start(&[]);
    let mut config = emu.config();
    config.token_cache = true;
    let warm = Session::with_env(&config, emu.secret_env("officer")).unwrap();
    warm.set(
        &r("secret://revoked/x"),
        &SecretValue::from("v"),
        SetOptions::default(),
    )
    .unwrap();
    let officer = emu.client_id("officer");
    for (method, op) in [("PUT", "set"), ("DELETE", "delete")] {
        // A new session (a new process): its first request takes the cached token.
        let s = Session::with_env(&config, emu.secret_env("officer")).unwrap();
        emu.set_faults(json!([{"target": "vault", "kind": "status", "status": 401,
                               "count": 1, "principal": officer}]));
        let before = emu.request_log().len();
        if op == "set" {
            put(&s, "secret://revoked/x", "w");
        } else {
            s.delete(&r("secret://revoked/x")).unwrap();
        }
        let seen: Vec<(String, u64)> = emu.request_log()[before..]
            .iter()
            .map(|l| {
                (
                    format!(
                        "{} {}",
                        l["target"].as_str().unwrap(),
                        l["method"].as_str().unwrap()
                    ),
                    l["status"].as_u64().unwrap(),
                )
            })
            .collect();
        // The challenge probe (401), the cached token refused (401), then a fresh token and
        // the retry. (Without the kernel keyring the session fetches its first token after
        // the probe: the refused one is then that token, and the end is the same.)
        let refused = seen
            .iter()
            .rposition(|(what, status)| what == &format!("vault {method}") && *status == 401)
            .unwrap_or_else(|| panic!("{op}: no 401 in {seen:?}"));
        assert_eq!(
            seen[refused + 1..],
            [
                ("token POST".to_owned(), 200),
                (format!("vault {method}"), 200)
            ],
            "{op}: {seen:?}"
        );
    }
}

#[test]
fn challenge_resource_verification_on_gives_a_clear_config_error() {
    let emu = Emulator::start(&[]);
    let mut config = emu.config();
    config.verify_challenge_resource = true;
    let s = Session::with_env(&config, emu.secret_env("officer")).unwrap();
    let err = s.get(&r("secret://challenge/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadConfig, "{err:?}");
    assert!(
        err.message().contains("https://vault.azure.net"),
        "{}",
        err.message()
    );
    assert!(err
        .hint()
        .unwrap()
        .contains("verify-challenge-resource = false"));
}

#[test]
fn server_errors_are_service_errors_after_bounded_retries() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    emu.set_faults(json!([{"target": "vault", "kind": "status", "status": 500}]));
    let start = Instant::now();
    let err = s.get(&r("secret://svc/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Service, "{err:?}");
    assert!(err.message().contains("HTTP 500"));
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn token_endpoint_failures_are_unauthenticated_when_pinned() {
    let emu = Emulator::start(&[]);
    let mut config = emu.config();
    config.credential = CredentialChoice::Environment;
    let mut env = emu.secret_env("officer");
    env.set("AZURE_CLIENT_SECRET", DISTINCTIVE);
    let s = Session::with_env(&config, env).unwrap();
    let err = s.get(&r("secret://tok/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    assert!(
        err.message()
            .contains("the environment credential could not get a token"),
        "{}",
        err.message()
    );
    // Entra's body has `\r\n` in its description, which the SDK cannot parse: the core reads
    // it, and the user gets the status, the code and the first line, not a serde message.
    assert!(
        err.message()
            .contains("environment: failed: HTTP 401 invalid_client: AADSTS7000215: Invalid client secret provided."),
        "{}",
        err.message()
    );
    assert!(!err.message().contains("Trace ID"), "{}", err.message());
    assert!(!err.message().contains("borrowed"), "{}", err.message());
    assert_redacted(&err);
}

// ---- transport, deadlines, throttling ---------------------------------------------------

#[test]
fn untrusted_certificate_fails_at_once_naming_the_problem() {
    let emu = Emulator::start(&[]);
    let mut config = emu.config();
    config.extra_roots_pem = None;
    config.timeout = Duration::from_secs(5);
    let s = Session::with_env(&config, emu.secret_env("officer")).unwrap();
    let start = Instant::now();
    let err = s.get(&r("secret://tls/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err:?}");
    assert!(err.message().contains("certificate"), "{}", err.message());
    assert!(
        err.message().contains(&emu.s("vault_url")),
        "{}",
        err.message()
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

/// An identity that would apply, so that the vault is asked (the token is never needed: the
/// vault cannot be reached first).
fn some_identity() -> CredentialEnv {
    CredentialEnv::from_pairs([
        ("AZURE_TENANT_ID", "72f988bf-0000-4000-8000-00000000e1a1"),
        ("AZURE_CLIENT_ID", "0f1ce000-0000-4000-8000-000000000009"),
        ("AZURE_CLIENT_SECRET", "never-used"),
    ])
}

#[test]
fn no_applicable_link_fails_before_any_request() {
    let emu = Emulator::start(&[]);
    let s = Session::with_env(&emu.config(), CredentialEnv::default()).unwrap();
    let err = s.get(&r("secret://nothing/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated, "{err:?}");
    assert!(err
        .message()
        .starts_with("no Azure credential could get a token; tried:\n"));
    // Not even the vault's challenge probe: off Azure with no identity, nothing is sent.
    assert_eq!(emu.request_log().len(), 0, "{:?}", emu.request_log());
}

#[test]
fn refused_connection_fails_at_once() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connecting is refused
    let mut config =
        hg_keyvault_core::VaultConfig::new(&format!("https://127.0.0.1:{port}/")).unwrap();
    config.verify_challenge_resource = false;
    let s = Session::with_env(&config, some_identity()).unwrap();
    let start = Instant::now();
    let err = s.get(&r("secret://refused/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err:?}");
    assert!(
        err.message().contains("connection refused"),
        "{}",
        err.message()
    );
    assert!(err
        .message()
        .contains(&format!("https://127.0.0.1:{port}/")));
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn black_holed_port_times_out_at_the_deadline() {
    // Accepts TCP (kernel backlog) but never answers the TLS handshake.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config =
        hg_keyvault_core::VaultConfig::new(&format!("https://127.0.0.1:{port}/")).unwrap();
    config.timeout = Duration::from_millis(1500);
    let s = Session::with_env(&config, some_identity()).unwrap();
    let start = Instant::now();
    let err = s.get(&r("secret://hole/x"), None).unwrap_err();
    let elapsed = start.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(
        err.message()
            .contains(&format!("https://127.0.0.1:{port}/")),
        "{}",
        err.message()
    );
    assert!(err.message().contains("1.5 s"), "{}", err.message());
    assert!(err.hint().unwrap().contains("keyvault.timeout"));
    assert!(
        elapsed >= Duration::from_millis(1400) && elapsed < Duration::from_millis(2500),
        "{elapsed:?}"
    );
    drop(listener);
}

#[test]
fn hanging_token_endpoint_times_out_naming_it() {
    let emu = Emulator::start(&[]);
    let mut config = emu.config();
    config.timeout = Duration::from_millis(1500);
    let s = Session::with_env(&config, emu.secret_env("officer")).unwrap();
    emu.set_faults(json!([{"target": "token", "kind": "hang"}]));
    let start = Instant::now();
    let err = s.get(&r("secret://hang/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    assert!(
        err.message().contains("/oauth2/v2.0/token"),
        "{}",
        err.message()
    );
    assert!(start.elapsed() < Duration::from_millis(2500));
}

#[test]
fn retry_after_within_the_deadline_is_honoured() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    put(&s, "secret://ra/x", "ok");
    emu.set_faults(
        json!([{"target": "vault", "kind": "status", "status": 429, "retry_after": 1, "count": 1}]),
    );
    let start = Instant::now();
    assert_eq!(
        s.get(&r("secret://ra/x"), None).unwrap().value.expose(),
        b"ok"
    );
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn retry_after_beyond_the_deadline_is_throttled_at_once() {
    let emu = Emulator::start(&[]);
    let mut config = emu.config();
    config.timeout = Duration::from_secs(3);
    let s = Session::with_env(&config, emu.secret_env("officer")).unwrap();
    emu.set_faults(
        json!([{"target": "vault", "kind": "status", "status": 429, "retry_after": 30}]),
    );
    let start = Instant::now();
    let err = s.get(&r("secret://ra/slow"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err:?}");
    assert!(
        err.message().contains("asked to wait 30 s"),
        "{}",
        err.message()
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn short_lived_tokens_are_refreshed() {
    let emu = Emulator::start(&[]);
    emu.set_faults(json!([{"target": "token", "kind": "token-lifetime", "expires_in": 2}]));
    let s = session(&emu, "officer");
    put(&s, "secret://short/x", "v");
    for _ in 0..2 {
        assert_eq!(
            s.get(&r("secret://short/x"), None).unwrap().value.expose(),
            b"v"
        );
    }
}

// ---- redaction --------------------------------------------------------------------------

#[test]
fn values_never_appear_in_debug_output_or_the_request_log() {
    let emu = Emulator::start(&[]);
    let s = session(&emu, "officer");
    let p = s
        .set(
            &r("secret://redact/x"),
            &SecretValue::from(DISTINCTIVE),
            SetOptions::default(),
        )
        .unwrap();
    let got = s.get(&r("secret://redact/x"), None).unwrap();
    assert_eq!(got.value.expose(), DISTINCTIVE.as_bytes());
    for text in [format!("{got:?}"), format!("{p:?}"), format!("{s:?}")] {
        assert!(!text.contains(DISTINCTIVE), "{text}");
    }
    // Errors on the paths a value travels: wrong version, throttled, server error.
    let mut errors = vec![s
        .get(&r("secret://redact/x"), Some("0000000000000000"))
        .unwrap_err()];
    emu.set_faults(
        json!([{"target": "vault", "kind": "status", "status": 503, "retry_after": 60}]),
    );
    errors.push(
        s.set(
            &r("secret://redact/x"),
            &SecretValue::from(DISTINCTIVE),
            SetOptions::default(),
        )
        .unwrap_err(),
    );
    emu.set_faults(json!([{"target": "vault", "kind": "status", "status": 400}]));
    errors.push(
        s.set(
            &r("secret://redact/x"),
            &SecretValue::from(DISTINCTIVE),
            SetOptions::default(),
        )
        .unwrap_err(),
    );
    for e in &errors {
        assert_redacted(e);
    }
    let log = std::fs::read_to_string(emu.s("request_log")).unwrap();
    assert!(!log.contains(DISTINCTIVE));
}

/// Direct SDK use for what the store deliberately cannot do (hand-made secrets, disabling).
mod common_sdk {
    use super::Emulator;
    use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
    use azure_core::credentials::Secret;
    use azure_core::http::{ClientOptions, RetryOptions, Transport};
    use azure_identity::{ClientSecretCredential, ClientSecretCredentialOptions};
    use azure_security_keyvault_secrets::models::{
        SecretAttributes, SetSecretParameters, UpdateSecretPropertiesParameters,
    };
    use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
    use std::sync::Arc;

    fn client(emu: &Emulator) -> SecretClient {
        let ca = std::fs::read(emu.s("ca_file")).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .build()
            .unwrap();
        let mut custom = CustomConfiguration::default();
        custom.authority_host = emu.s("authority_host");
        let options = ClientOptions {
            transport: Some(Transport::new(Arc::new(http))),
            cloud: Some(Arc::new(CloudConfiguration::from(custom))),
            retry: RetryOptions::none(),
            ..Default::default()
        };
        let p = emu.principal("officer");
        let cred = ClientSecretCredential::new(
            &emu.s("tenant_id"),
            p["client_id"].as_str().unwrap().to_owned(),
            Secret::new(p["client_secret"].as_str().unwrap().to_owned()),
            Some(ClientSecretCredentialOptions {
                client_options: options.clone(),
            }),
        )
        .unwrap();
        SecretClient::new(
            &emu.s("vault_url"),
            cred,
            Some(SecretClientOptions {
                client_options: options,
                verify_challenge_resource: Some(false),
                ..Default::default()
            }),
        )
        .unwrap()
    }

    pub async fn set_text_secret(emu: &Emulator, name: &str, value: &str) {
        let params = SetSecretParameters {
            value: Some(value.to_owned()),
            content_type: Some("text/plain".into()),
            ..Default::default()
        };
        client(emu)
            .set_secret(name, params.try_into().unwrap(), None)
            .await
            .unwrap();
    }

    pub async fn not_before(emu: &Emulator, name: &str, at: time::OffsetDateTime) {
        let params = UpdateSecretPropertiesParameters {
            secret_attributes: Some(SecretAttributes {
                not_before: Some(at),
                ..Default::default()
            }),
            ..Default::default()
        };
        client(emu)
            .update_secret_properties(name, params.try_into().unwrap(), None)
            .await
            .unwrap();
    }

    pub async fn disable(emu: &Emulator, name: &str) {
        let params = UpdateSecretPropertiesParameters {
            secret_attributes: Some(SecretAttributes {
                enabled: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        client(emu)
            .update_secret_properties(name, params.try_into().unwrap(), None)
            .await
            .unwrap();
    }
}

#[test]
fn unknown_host_fails_at_once() {
    let mut config = hg_keyvault_core::VaultConfig::new("https://no-such-vault.invalid/").unwrap();
    config.timeout = Duration::from_secs(5);
    let s = Session::with_env(&config, some_identity()).unwrap();
    let start = Instant::now();
    let err = s.get(&r("secret://dns/x"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unreachable, "{err:?}");
    assert!(err.message().contains("unknown host"), "{}", err.message());
    assert!(err.message().contains("https://no-such-vault.invalid/"));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn hanging_vault_times_out_naming_the_request_on_the_wire() {
    let emu = Emulator::start(&[]);
    let mut config = emu.config();
    config.timeout = Duration::from_millis(1500);
    let s = Session::with_env(&config, emu.secret_env("officer")).unwrap();
    put(&s, "secret://hang/v", "v");
    // The token is cached and the challenge known: only the vault GET hangs.
    emu.set_faults(json!([{"target": "vault", "kind": "hang"}]));
    let start = Instant::now();
    let err = s.get(&r("secret://hang/v"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err:?}");
    let vault = emu.s("vault_url");
    assert!(
        err.message().contains(&format!("{vault}secrets/hg-")),
        "{}",
        err.message()
    );
    assert!(err.message().contains("1.5 s"));
    assert!(start.elapsed() < Duration::from_millis(2500));
}

#[test]
fn throttled_token_endpoint_is_reported_not_hidden_by_the_chain() {
    let emu = Emulator::start(&[]);
    let mut config = emu.config();
    config.timeout = Duration::from_secs(3);
    let s = Session::with_env(&config, emu.secret_env("reader")).unwrap();
    emu.set_faults(
        json!([{"target": "token", "kind": "status", "status": 429, "retry_after": 30}]),
    );
    let start = Instant::now();
    let err = s.get(&r("secret://ra/token"), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err:?}");
    assert!(
        err.message().contains("/oauth2/v2.0/token"),
        "{}",
        err.message()
    );
    assert!(err.message().contains("asked to wait 30 s"));
    assert!(start.elapsed() < Duration::from_secs(2));
}
