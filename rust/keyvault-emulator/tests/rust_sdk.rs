//! The official Rust SDK (azure_identity 1.0, azure_security_keyvault_secrets 1.0) against the
//! emulator, with only the options a private-cloud user sets: authority host (custom cloud),
//! a transport trusting the test CA, and `verify_challenge_resource = false`.

mod common;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret as Credential, TokenCredential};
use azure_core::http::{ClientOptions, RetryOptions, Transport};
use azure_identity::{
    ClientSecretCredential, ClientSecretCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions,
};
use azure_security_keyvault_secrets::models::SetSecretParameters;
use azure_security_keyvault_secrets::{SecretClient, SecretClientOptions};
use common::Emulator;
use futures::TryStreamExt as _;
use std::sync::Arc;

fn client_options(emu: &Emulator) -> ClientOptions {
    let ca = std::fs::read(emu.ready["ca_file"].as_str().unwrap()).unwrap();
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .build()
        .unwrap();
    let mut custom = CustomConfiguration::default();
    custom.authority_host = emu.ready["authority_host"].as_str().unwrap().to_string();
    let cloud = CloudConfiguration::from(custom);
    ClientOptions {
        transport: Some(Transport::new(Arc::new(http))),
        cloud: Some(Arc::new(cloud)),
        retry: RetryOptions::none(),
        ..Default::default()
    }
}

fn secret_client(emu: &Emulator, credential: Arc<dyn TokenCredential>) -> SecretClient {
    let options = SecretClientOptions {
        client_options: client_options(emu),
        verify_challenge_resource: Some(false),
        ..Default::default()
    };
    SecretClient::new(
        emu.ready["vault_url"].as_str().unwrap(),
        credential,
        Some(options),
    )
    .unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn client_secret_credential_sets_gets_and_lists() {
    let emu = Emulator::start(&[]);
    let p = emu.principal("officer");
    let credential = ClientSecretCredential::new(
        emu.ready["tenant_id"].as_str().unwrap(),
        p["client_id"].as_str().unwrap().to_string(),
        Credential::new(p["client_secret"].as_str().unwrap().to_string()),
        Some(ClientSecretCredentialOptions {
            client_options: client_options(&emu),
        }),
    )
    .unwrap();
    let client = secret_client(&emu, credential);
    runtime().block_on(async {
        for i in 0..27 {
            let params = SetSecretParameters {
                value: Some(format!("value-{i}")),
                content_type: Some("text/plain".into()),
                ..Default::default()
            };
            client
                .set_secret(&format!("rs-{i:02}"), params.try_into().unwrap(), None)
                .await
                .unwrap();
        }
        let got = client
            .get_secret("rs-07", None)
            .await
            .unwrap()
            .into_model()
            .unwrap();
        assert_eq!(got.value.as_deref(), Some("value-7"));
        assert_eq!(got.content_type.as_deref(), Some("text/plain"));
        let listed: Vec<_> = client
            .list_secret_properties(None)
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed.len(), 27);
    });
    let log = emu.log();
    // probe (401), token, 27 sets, one get, two list pages
    assert_eq!(log.lines().count(), 32, "{log}");
    assert!(!log.contains("value-7"));
}

#[test]
fn managed_identity_credential_gets_a_secret() {
    let emu = Emulator::start(&[]);
    // The only test in this binary that touches the environment.
    unsafe {
        std::env::set_var(
            "IDENTITY_ENDPOINT",
            emu.ready["identity_endpoint"].as_str().unwrap(),
        );
        std::env::set_var(
            "IDENTITY_HEADER",
            emu.ready["identity_header"].as_str().unwrap(),
        );
    }
    let credential = ManagedIdentityCredential::new(Some(ManagedIdentityCredentialOptions {
        client_options: client_options(&emu),
        ..Default::default()
    }))
    .unwrap();
    let client = secret_client(&emu, credential);
    runtime().block_on(async {
        let params = SetSecretParameters {
            value: Some("mi".into()),
            ..Default::default()
        };
        client
            .set_secret("mi", params.try_into().unwrap(), None)
            .await
            .unwrap();
        let got = client
            .get_secret("mi", None)
            .await
            .unwrap()
            .into_model()
            .unwrap();
        assert_eq!(got.value.as_deref(), Some("mi"));
    });
    assert!(emu.log().contains("\"target\":\"identity\""));
}
