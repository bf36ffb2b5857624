//! The system's root certificates, loaded once per process, on Linux.
//!
//! rustls-platform-verifier (reqwest's default with rustls) loads rustls-native-certs, which on
//! Linux reads the CA bundle file *and* every file of the CA directory (`/etc/ssl/certs`: ~150
//! certificates, ~290 files with the hash links): the same roots twice, about 300 opens and PEM
//! parses per process, 10-30 ms of every `hg pull`. On Linux that verifier is webpki over those
//! roots anyway, so the core reads the roots once (one bundle, else the directory) and gives
//! reqwest a rustls config with exactly those roots plus the extra ones.
//!
//! That config uses rustls's *ring* provider, not reqwest's default aws-lc-rs: AWS-LC seeds its
//! random generator from CPU jitter entropy on first use, about 35 ms of CPU in every process
//! (measured with `perf`: `jent_*` functions, 85 % of a one-secret fetch), where ring reads
//! `getrandom(2)`. Same TLS versions (1.2, 1.3) and safe defaults, HTTP/1.1 as reqwest offers. `SSL_CERT_FILE`
//! names the bundle if set, else the first of openssl-probe's list; Debian, Fedora, SUSE and
//! Alpine generate it from the same sources as the directory. A private CA belongs in
//! `keyvault.cacerts`. Other systems keep the platform verifier (it asks the OS).

use rustls::pki_types::{pem::PemObject, CertificateDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bundles in openssl-probe's order (Linux).
const BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
    "/opt/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/certs/cacert.pem",
];

/// Directories tried when no bundle exists.
const DIRS: &[&str] = &[
    "/etc/ssl/certs",
    "/etc/pki/tls/certs",
    "/etc/security/certificates",
];

/// Where the roots come from: files to read, and directories whose every file to read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RootPaths {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) dirs: Vec<PathBuf>,
}

/// One bundle: `SSL_CERT_FILE` if set, else the first existing bundle of the list. Only when
/// there is no bundle, the directories: `SSL_CERT_DIR` if set, else the first existing one.
/// (OpenSSL, whose variables these are, reads the file whole and consults the directory lazily,
/// by subject hash; reading all of it as well would only load the same roots again.)
pub(crate) fn root_paths(
    cert_file: Option<&str>,
    cert_dir: Option<&str>,
    exists: impl Fn(&Path) -> bool,
) -> RootPaths {
    let file = match cert_file.filter(|f| !f.is_empty()) {
        Some(f) => Some(PathBuf::from(f)).filter(|p| exists(p)),
        None => BUNDLES.iter().map(PathBuf::from).find(|p| exists(p)),
    };
    if let Some(file) = file {
        return RootPaths {
            files: vec![file],
            dirs: Vec::new(),
        };
    }
    let dirs = match cert_dir.filter(|d| !d.is_empty()) {
        Some(d) => std::env::split_paths(d).collect(),
        None => DIRS
            .iter()
            .map(PathBuf::from)
            .find(|p| exists(p))
            .into_iter()
            .collect(),
    };
    RootPaths {
        files: Vec::new(),
        dirs,
    }
}

/// The system roots, DER (unparseable entries are skipped, as rustls-native-certs does).
pub(crate) fn load() -> Vec<CertificateDer<'static>> {
    #[cfg(test)]
    LOADS.with(|n| n.set(n.get() + 1));
    let cert_file = std::env::var("SSL_CERT_FILE").ok();
    let cert_dir = std::env::var("SSL_CERT_DIR").ok();
    let paths = root_paths(cert_file.as_deref(), cert_dir.as_deref(), Path::exists);
    let mut files = paths.files;
    for dir in &paths.dirs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            files.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    files
        .iter()
        .filter_map(|f| std::fs::read(f).ok())
        .flat_map(|pem| parse_pem(&pem))
        .collect()
}

#[cfg(test)]
thread_local! {
    /// Times this thread read the system roots (tests: what building a store costs).
    pub(crate) static LOADS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The certificates of a PEM bundle.
pub(crate) fn parse_pem(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(|c| c.ok())
        .collect()
}

/// The rustls config of the store's HTTP client: system roots + `extra`, ring, HTTP/1.1.
pub(crate) fn client_config(extra: Vec<CertificateDer<'static>>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(load().into_iter().chain(extra));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bundle_wins_and_directories_only_stand_in_for_a_missing_bundle() {
        let all = |_: &Path| true;
        let none = |_: &Path| false;
        let both = root_paths(Some("/x/ca.pem"), Some("/a:/b"), all);
        assert_eq!(
            both,
            RootPaths {
                files: vec![PathBuf::from("/x/ca.pem")],
                dirs: Vec::new()
            }
        );
        let debian = root_paths(None, None, all);
        assert_eq!(
            debian.files,
            vec![PathBuf::from("/etc/ssl/certs/ca-certificates.crt")]
        );
        let missing_file = root_paths(Some("/gone.pem"), Some("/a:/b"), |p: &Path| {
            p != Path::new("/gone.pem")
        });
        assert_eq!(missing_file.files, Vec::<PathBuf>::new());
        assert_eq!(
            missing_file.dirs,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        let only_dir = root_paths(None, None, |p: &Path| p == Path::new("/etc/pki/tls/certs"));
        assert_eq!(only_dir.dirs, vec![PathBuf::from("/etc/pki/tls/certs")]);
        assert_eq!(
            root_paths(None, None, none),
            RootPaths {
                files: vec![],
                dirs: vec![]
            }
        );
    }

    #[test]
    fn loads_this_machines_roots() {
        // Every Linux CI image has a CA bundle; an empty set would distrust every server.
        assert!(!load().is_empty());
    }
}
