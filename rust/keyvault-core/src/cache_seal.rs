//! Cache entries sealed under the credential they came from. The kernel keyring is per uid, not
//! per container: without a user namespace, every process of the uid on the machine can list
//! and read our keys. So a token or secret cache entry is encrypted (AES-256-GCM) under a key
//! derived (HKDF-SHA256) from the credential material of the link that got the token: the
//! client secret, the federated token file's content, the identity header, the Azure CLI's
//! login files. Whoever lacks that material learns nothing from an entry; whoever has it can
//! get a token of their own anyway.
//!
//! - Plain IMDS has no material (every process that reaches 169.254.169.254 gets the same token):
//!   its entries are sealed under a key anyone can derive (see docs/security.md).
//! - The entry names (`hg-keyvault:token:<key>`, ...) hash a SHA-256 digest of the same material;
//!   the encryption key comes from HKDF with its own salt, so a name gives nothing away.
//! - An entry is `version || link || nonce || ciphertext+tag`; the key's description and the
//!   header are the associated data, so an entry copied under another name does not open.
//! - Material is read at each use: a rotated federated token or a new `az login` turns older
//!   entries into misses, never into errors. Anything that does not open is a miss.

use crate::config::VaultConfig;
use crate::credential::{self, CredentialEnv};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// The format of a sealed entry (1 was plain JSON).
const VERSION: u8 = 2;

/// HKDF salt: separates these keys from every other use of the material (the cache key's digest).
const SALT: &[u8] = b"hg-keyvault cache entry key v2";

/// What a key protects; each gets its own key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A cached access token.
    Token,
    /// A cached secret value.
    Secret,
}

impl Purpose {
    fn info(self) -> &'static [u8] {
        match self {
            Purpose::Token => b"token",
            Purpose::Secret => b"secret",
        }
    }
}

/// The credential material of one link, read when a key is needed. Each link names its own
/// (`Link::seal_material`).
pub(crate) enum Material {
    /// None: plain IMDS.
    Public,
    /// A value from the environment (client secret, identity header).
    Value(Zeroizing<String>),
    /// Files whose content is the credential (federated token, Azure CLI login).
    Files(Vec<PathBuf>),
}

/// Seals and opens the cache entries of one store, per the link that got the token.
pub(crate) struct CacheSeal {
    links: Vec<(&'static str, Material)>,
}

impl std::fmt::Debug for CacheSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let links: Vec<_> = self.links.iter().map(|(l, _)| *l).collect();
        f.debug_struct("CacheSeal").field("links", &links).finish()
    }
}

impl CacheSeal {
    /// The material of every link the chain may use for `config` in `env`.
    pub(crate) fn new(config: &VaultConfig, env: &CredentialEnv) -> Self {
        Self {
            links: credential::seal_materials(config.credential, env),
        }
    }

    /// Sealing with the given material per source id (the AWS sources name their own).
    #[cfg(feature = "aws")]
    pub(crate) fn from_materials(links: Vec<(&'static str, Material)>) -> Self {
        Self { links }
    }

    /// `plaintext` sealed for the key `description`, under the material of `link`; `None` if
    /// `link` is not one of this store's (nothing is cached then).
    pub(crate) fn seal(
        &self,
        link: &str,
        purpose: Purpose,
        description: &str,
        plaintext: &[u8],
    ) -> Option<Vec<u8>> {
        let link_byte = link_byte(link)?;
        let key = self.key(link, purpose)?;
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let header = [VERSION, link_byte];
        let mut sealed = Vec::with_capacity(header.len() + NONCE_LEN + plaintext.len() + 16);
        sealed.extend_from_slice(&header);
        sealed.extend_from_slice(&nonce);
        let mut body = Zeroizing::new(plaintext.to_vec());
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(description, &header)),
            &mut *body,
        )
        .ok()?;
        // `body` is ciphertext now; its buffer is zeroized on drop all the same.
        sealed.extend_from_slice(&body);
        Some(sealed)
    }

    /// The plaintext of an entry and the link whose material sealed it; `None` for anything
    /// that does not open (another credential, an older format, a damaged or moved entry).
    pub(crate) fn open(
        &self,
        purpose: Purpose,
        description: &str,
        sealed: &[u8],
    ) -> Option<(&'static str, Zeroizing<Vec<u8>>)> {
        let (header, rest) = sealed.split_at_checked(2)?;
        let (nonce, ciphertext) = rest.split_at_checked(NONCE_LEN)?;
        if header[0] != VERSION {
            return None;
        }
        let link = link_from_byte(header[1])?;
        let key = self.key(link, purpose)?;
        let mut body = Zeroizing::new(ciphertext.to_vec());
        let plain_len = key
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).ok()?,
                Aad::from(aad(description, header)),
                &mut body,
            )
            .ok()?
            .len();
        body.truncate(plain_len);
        Some((link, body))
    }

    fn key(&self, link: &str, purpose: Purpose) -> Option<LessSafeKey> {
        let (_, material) = self.links.iter().find(|(l, _)| *l == link)?;
        let mut ikm = Zeroizing::new(Vec::new());
        push_field(&mut ikm, link.as_bytes());
        match material {
            Material::Public => {}
            Material::Value(v) => push_field(&mut ikm, v.as_bytes()),
            Material::Files(paths) => {
                for path in paths {
                    // A missing file is material too ("not logged in"), never an error.
                    let content = Zeroizing::new(std::fs::read(path).unwrap_or_default());
                    push_field(&mut ikm, &content);
                }
            }
        }
        let prk = Salt::new(HKDF_SHA256, SALT).extract(&ikm);
        let info = [purpose.info()];
        let okm = prk.expand(&info, &AES_256_GCM).ok()?;
        Some(LessSafeKey::new(UnboundKey::from(okm)))
    }
}

/// Length-prefixed, so that no two material lists run into the same bytes.
fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(&(field.len() as u64).to_be_bytes());
    out.extend_from_slice(field);
}

fn aad(description: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(description.len() + 1 + header.len());
    aad.extend_from_slice(description.as_bytes());
    aad.push(0);
    aad.extend_from_slice(header);
    aad
}

/// Every source id that can seal an entry: the Azure chain's links, then the AWS sources.
fn all_link_ids() -> impl Iterator<Item = &'static str> {
    #[cfg(feature = "aws")]
    let aws = crate::aws::identity::SEAL_IDS.iter().copied();
    #[cfg(not(feature = "aws"))]
    let aws = std::iter::empty();
    credential::link_ids().chain(aws)
}

/// A link's byte in an entry's header: its place in the table, plus one.
fn link_byte(link: &str) -> Option<u8> {
    all_link_ids()
        .position(|l| l == link)
        .and_then(|i| u8::try_from(i + 1).ok())
}

fn link_from_byte(b: u8) -> Option<&'static str> {
    all_link_ids().nth(usize::from(b).checked_sub(1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn config() -> VaultConfig {
        VaultConfig::new("https://contoso.vault.azure.net/").unwrap()
    }

    fn sp(secret: &str) -> CacheSeal {
        CacheSeal::new(
            &config(),
            &CredentialEnv::from_pairs([
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", secret),
            ]),
        )
    }

    use crate::config::CredentialChoice;

    const ENV: &str = "environment";
    const D: &str = "hg-keyvault:token:0123";

    #[test]
    fn opens_what_it_sealed_and_hides_it() {
        let seal = sp("s1");
        let sealed = seal.seal(ENV, Purpose::Token, D, b"eyJ-the-token").unwrap();
        assert!(!sealed
            .windows(b"the-token".len())
            .any(|w| w == b"the-token"));
        let (link, plain) = seal.open(Purpose::Token, D, &sealed).unwrap();
        assert_eq!(link, ENV);
        assert_eq!(plain.as_slice(), b"eyJ-the-token");
    }

    #[test]
    fn another_credential_purpose_or_name_is_a_miss() {
        let sealed = sp("s1").seal(ENV, Purpose::Token, D, b"token").unwrap();
        assert!(sp("s2").open(Purpose::Token, D, &sealed).is_none());
        assert!(sp("s1").open(Purpose::Secret, D, &sealed).is_none());
        assert!(sp("s1")
            .open(Purpose::Token, "hg-keyvault:token:4567", &sealed)
            .is_none());
        // A store whose chain has no such link has no key for it.
        let mi = CacheSeal::new(
            &config(),
            &CredentialEnv::from_pairs([
                ("IDENTITY_ENDPOINT", "http://localhost:1/msi/token"),
                ("IDENTITY_HEADER", "h"),
            ]),
        );
        assert!(mi.open(Purpose::Token, D, &sealed).is_none());
        assert!(mi.seal("auto", Purpose::Token, D, b"x").is_none());
    }

    #[test]
    fn what_the_name_shows_does_not_open_the_entry() {
        // The name hashes a SHA-256 digest of the material; neither the name nor that digest,
        // taken as material, gives the key (HKDF with its own salt).
        let env = |secret: &str| {
            CredentialEnv::from_pairs([
                ("AZURE_TENANT_ID", "t"),
                ("AZURE_CLIENT_ID", "c"),
                ("AZURE_CLIENT_SECRET", secret),
            ])
        };
        let name = crate::token_cache::cache_key(&config(), &env("s1"));
        let description = format!("hg-keyvault:token:{name}");
        let sealed = sp("s1")
            .seal(ENV, Purpose::Token, &description, b"token")
            .unwrap();
        let digest = hex::encode(sha2::Sha256::digest(b"s1"));
        for guess in [name.as_str(), digest.as_str(), description.as_str()] {
            assert!(sp(guess)
                .open(Purpose::Token, &description, &sealed)
                .is_none());
        }
        assert!(sp("s1")
            .open(Purpose::Token, &description, &sealed)
            .is_some());
    }

    #[test]
    fn any_tampered_byte_is_a_miss() {
        let seal = sp("s1");
        let sealed = seal.seal(ENV, Purpose::Token, D, b"token").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(seal.open(Purpose::Token, D, &bad).is_none(), "byte {i}");
        }
        assert!(seal
            .open(Purpose::Token, D, &sealed[..sealed.len() - 1])
            .is_none());
        assert!(seal.open(Purpose::Token, D, b"").is_none());
    }

    #[test]
    fn older_plain_entries_are_a_miss() {
        let v1 = br#"{"v":1,"scope":"s","token":"t","expires_on":1,"fresh_until":1,"link":"environment"}"#;
        assert!(sp("s1").open(Purpose::Token, D, v1).is_none());
    }

    #[test]
    fn every_seal_takes_a_new_nonce() {
        let seal = sp("s1");
        let nonces: std::collections::HashSet<Vec<u8>> = (0..1000)
            .map(|_| seal.seal(ENV, Purpose::Token, D, b"same").unwrap()[2..2 + NONCE_LEN].to_vec())
            .collect();
        assert_eq!(nonces.len(), 1000);
    }

    #[test]
    fn file_material_is_read_at_each_use() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "federated-1").unwrap();
        let env = CredentialEnv::from_pairs([
            ("AZURE_TENANT_ID", "t"),
            ("AZURE_CLIENT_ID", "c"),
            ("AZURE_FEDERATED_TOKEN_FILE", file.to_str().unwrap()),
        ]);
        let seal = CacheSeal::new(&config(), &env);
        let wi = "workload-identity";
        let sealed = seal.seal(wi, Purpose::Token, D, b"token").unwrap();
        assert!(seal.open(Purpose::Token, D, &sealed).is_some());
        // The kubelet rotated the token: older entries no longer open.
        std::fs::write(&file, "federated-2").unwrap();
        assert!(seal.open(Purpose::Token, D, &sealed).is_none());
    }

    #[test]
    fn azure_cli_entries_follow_the_login_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        std::fs::write(bin.join("az"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join("az"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let azure = dir.path().join("azure");
        std::fs::create_dir(&azure).unwrap();
        std::fs::write(azure.join("azureProfile.json"), "{}").unwrap();
        std::fs::write(azure.join("msal_token_cache.json"), "refresh-1").unwrap();
        let mut pinned = config();
        pinned.credential = CredentialChoice::AzureCli;
        let env = CredentialEnv::from_pairs([
            ("PATH", bin.to_str().unwrap()),
            ("AZURE_CONFIG_DIR", azure.to_str().unwrap()),
        ]);
        let seal = CacheSeal::new(&pinned, &env);
        let cli = "azure-cli";
        let sealed = seal.seal(cli, Purpose::Token, D, b"token").unwrap();
        assert!(seal.open(Purpose::Token, D, &sealed).is_some());
        // The refresh token is the secret part of an az login: without it, no key.
        std::fs::write(azure.join("msal_token_cache.json"), "refresh-2").unwrap();
        assert!(seal.open(Purpose::Token, D, &sealed).is_none());
    }

    #[test]
    fn imds_entries_open_for_anyone_with_the_same_inputs() {
        // Documented: IMDS has no material, so this is obfuscation, not protection.
        let mut pinned = config();
        pinned.credential = CredentialChoice::ManagedIdentity;
        let env = CredentialEnv::from_pairs([("PATH", "")]);
        let mi = "azure-vm";
        let sealed = CacheSeal::new(&pinned, &env)
            .seal(mi, Purpose::Token, D, b"token")
            .unwrap();
        assert!(CacheSeal::new(&pinned, &env)
            .open(Purpose::Token, D, &sealed)
            .is_some());
    }
}
