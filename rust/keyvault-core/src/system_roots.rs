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

use rustls::pki_types::CertificateDer;
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

/// The certificates of a PEM bundle: the `CERTIFICATE` blocks, each Base64 between its
/// `-----BEGIN CERTIFICATE-----` and `-----END CERTIFICATE-----` lines (RFC 7468); other
/// blocks, text between blocks and blocks that are not Base64 are skipped, as
/// rustls-pki-types' iterator skips them (a block left open by a new BEGIN is dropped).
///
/// Lines end in `\n` or `\r\n`. Not that iterator itself: it finds lines and decodes Base64
/// one byte at a time, 7 M instructions for the ~150 roots of a CA bundle (220 KB), half of
/// a one-secret fetch from a fresh process. Certificates are public; the DER is checked by
/// webpki when it becomes a trust anchor.
pub(crate) fn parse_pem(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    // Lines found with the standard library's memchr when the bundle is text (always, in
    // practice), byte by byte otherwise.
    let lines: Box<dyn Iterator<Item = &[u8]>> = match std::str::from_utf8(pem) {
        Ok(text) => Box::new(text.split('\n').map(str::as_bytes)),
        Err(_) => Box::new(pem.split(|&b| b == b'\n')),
    };
    let mut certs = Vec::new();
    let mut b64 = Vec::with_capacity(4096);
    let mut open = false;
    // Markers start their line (trailing blanks and `\r` allowed), as in rustls-pki-types.
    for line in lines.map(<[u8]>::trim_ascii_end) {
        if line.starts_with(b"-----") {
            if open && line.starts_with(END) {
                certs.extend(decode_base64(&b64).map(CertificateDer::from));
                open = false;
            } else if line.starts_with(b"-----BEGIN ") {
                // A block left open by a new BEGIN is dropped.
                open = line == BEGIN;
                b64.clear();
            } else if open {
                b64.extend_from_slice(line);
            }
        } else if open {
            b64.extend_from_slice(line.trim_ascii_start());
        }
    }
    certs
}

/// Base64 that may hold whitespace inside its lines as well (rare: tried second).
fn decode_base64(b64: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{general_purpose::STANDARD, Engine as _};
    STANDARD.decode(b64).ok().or_else(|| {
        let packed: Vec<u8> = b64
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        STANDARD.decode(packed).ok()
    })
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

    /// rustls-pki-types' reading of a PEM bundle, which `parse_pem` must match.
    fn reference(pem: &[u8]) -> Vec<CertificateDer<'static>> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::pem_slice_iter(pem)
            .filter_map(|c| c.ok())
            .collect()
    }

    #[test]
    fn pem_bundles_read_as_rustls_pki_types_reads_them() {
        // This machine's bundle (Debian's has text between blocks), then the shapes of hand-made
        // and corporate bundles: CRLF, indentation, other blocks, junk, an unterminated block.
        let paths = root_paths(None, None, Path::exists);
        let system = paths.files.first().and_then(|f| std::fs::read(f).ok());
        let one = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUXlBbZ0CvD7a3\nAAECAwQFBgcICQ==\n-----END CERTIFICATE-----\n";
        let other = "-----BEGIN CERTIFICATE-----\r\nAQID\r\nBAUG\r\n-----END CERTIFICATE-----\r\n";
        let samples = [
            one.to_owned(),
            other.to_owned(),
            format!("subject=CN=x\n{one}\n\n# comment\n{other}"),
            format!("  {}", one.replace('\n', "\n  ")),
            format!("-----BEGIN PRIVATE KEY-----\nAQID\n-----END PRIVATE KEY-----\n{one}"),
            format!("-----BEGIN TRUSTED CERTIFICATE-----\nAQID\n-----END TRUSTED CERTIFICATE-----\n{other}"),
            format!("-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n{one}"),
            format!("{one}-----BEGIN CERTIFICATE-----\nAQID\n"),
            String::new(),
        ];
        for pem in samples
            .iter()
            .map(|s| s.as_bytes())
            .chain(system.as_deref())
        {
            let ours = parse_pem(pem);
            assert_eq!(ours, reference(pem), "{}", String::from_utf8_lossy(pem));
        }
        // A block left open by the next BEGIN is dropped, the next one read.
        let reopened = format!("-----BEGIN CERTIFICATE-----\nAQID\n{one}");
        assert_eq!(parse_pem(reopened.as_bytes()), parse_pem(one.as_bytes()));
        let system = system.expect("every Linux CI image has a CA bundle");
        assert!(parse_pem(&system).len() > 10);
    }

    #[test]
    fn loads_this_machines_roots() {
        // Every Linux CI image has a CA bundle; an empty set would distrust every server.
        assert!(!load().is_empty());
    }
}
