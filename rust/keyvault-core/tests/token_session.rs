//! `TokenSession` against the emulator: a token for a registered API's scope through the chain,
//! shared through the token cache per identity and scope (a new session, as a new hg process,
//! asks Entra nothing), a refused token forgotten so that the next one really comes from Entra,
//! and an unregistered API refused as Entra does (AADSTS500011).

mod common;

use common::Emulator;
use hg_keyvault_core::token_session::{TokenConfig, TokenSession};

const SCOPE: &str = "api://hg-proxy/.default";

fn token_requests(emu: &Emulator) -> usize {
    emu.request_log()
        .iter()
        .filter(|l| l["target"] == "token")
        .count()
}

fn session(emu: &Emulator) -> TokenSession {
    let config = TokenConfig {
        extra_roots_pem: Some(emu.s("ca_file").into()),
        ..TokenConfig::default()
    };
    TokenSession::with_env(&config, emu.secret_env("reader")).unwrap()
}

#[test]
fn a_scope_token_is_fetched_once_shared_by_the_next_session_and_renewed_after_forget() {
    let emu = Emulator::start(&[]);
    emu.register_app("api://hg-proxy");
    let before = token_requests(&emu);

    let cold = session(&emu).token(SCOPE).unwrap();
    assert!(!cold.from_cache);
    assert_eq!(token_requests(&emu), before + 1);
    assert_eq!(cold.claims.audience.as_deref(), Some("api://hg-proxy"));
    assert_eq!(cold.claims.version(), Some("v1"));
    assert_eq!(
        cold.claims.client_id.as_deref(),
        Some(emu.client_id("reader").as_str())
    );
    assert!(!format!("{cold:?}").contains(std::str::from_utf8(cold.token.expose()).unwrap()));

    let warm_session = session(&emu);
    let warm = warm_session.token(SCOPE).unwrap();
    // With the kernel keyring the next process gets it from the cache; without, it fetches.
    if warm.from_cache {
        assert_eq!(token_requests(&emu), before + 1);
        assert_eq!(warm.token.expose(), cold.token.expose());
    }
    let fetched = token_requests(&emu);

    warm_session.forget(SCOPE, &warm.token).unwrap();
    let renewed = warm_session.token(SCOPE).unwrap();
    assert!(!renewed.from_cache);
    assert_eq!(token_requests(&emu), fetched + 1);
}

#[test]
fn an_unregistered_api_is_entras_aadsts500011() {
    let emu = Emulator::start(&[]);
    let err = session(&emu)
        .token("api://no-such-api/.default")
        .unwrap_err();
    assert!(err.message().contains("AADSTS500011"), "{}", err.message());
}
