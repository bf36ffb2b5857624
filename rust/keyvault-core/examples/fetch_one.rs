//! `make bench`'s smallest "fresh process" client of the core: reads one secret the way the
//! extension does (token cache on) and prints its length, never its value.
//!
//! `fetch_one VAULT_URL CA_PEM REF` with the Azure identity in the environment.

use hg_keyvault_core::{SecretRef, Session, VaultConfig};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, ca, secret_ref] = args.as_slice() else {
        eprintln!("usage: fetch_one VAULT_URL CA_PEM REF");
        return ExitCode::from(2);
    };
    let run = || -> hg_keyvault_core::Result<usize> {
        let mut config = VaultConfig::new(url)?;
        config.extra_roots_pem = Some(ca.into());
        config.verify_challenge_resource = false;
        let session = Session::new(&config)?;
        let secret = session.get(&SecretRef::parse(secret_ref)?, None)?;
        Ok(secret.value.expose().len())
    };
    match run() {
        Ok(len) => {
            println!("{len} bytes");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fetch_one: {}", e.message());
            ExitCode::FAILURE
        }
    }
}
