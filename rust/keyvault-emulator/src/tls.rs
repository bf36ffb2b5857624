//! The test CA and the loopback server certificate, and the rustls server configuration.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};

pub struct ServerTls {
    pub config: Arc<rustls::ServerConfig>,
    /// PEM of the CA that signed the server certificate (written to `<state-dir>/ca.pem`).
    pub ca_pem: String,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // A little back-dating tolerates clock skew between test processes.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

fn new_ca() -> Result<(String, Issuer<'static, KeyPair>), BoxError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "hg-keyvault emulator test CA");
    dn.push(DnType::OrganizationName, "hg-keyvault tests");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, 30);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

fn load_ca(cert: &Path, key: &Path) -> Result<(String, Issuer<'static, KeyPair>), BoxError> {
    let cert_pem = std::fs::read_to_string(cert)
        .map_err(|e| format!("cannot read --ca-cert {}: {e}", cert.display()))?;
    let key_pem = std::fs::read_to_string(key)
        .map_err(|e| format!("cannot read --ca-key {}: {e}", key.display()))?;
    let key = KeyPair::from_pem(&key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&cert_pem, key)?;
    Ok((cert_pem, issuer))
}

/// Makes (or loads) the CA and a fresh server certificate for `localhost`, `127.0.0.1` and
/// `*.vault.azure.net`: tests reach the emulator under a public-cloud vault name (through a
/// private /etc/hosts in a mount namespace, never DNS) to exercise what the client does for
/// such hosts. Only clients that trust the test CA accept the certificate.
pub fn server_tls(ca: Option<(&Path, &Path)>) -> Result<ServerTls, BoxError> {
    let (ca_pem, issuer) = match ca {
        Some((cert, key)) => load_ca(cert, key)?,
        None => new_ca()?,
    };
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![
        "localhost".to_string(),
        "*.vault.azure.net".to_string(),
    ])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, 7);
    let cert = params.signed_by(&key, &issuer)?;

    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServerTls {
        config: Arc::new(config),
        ca_pem,
    })
}
