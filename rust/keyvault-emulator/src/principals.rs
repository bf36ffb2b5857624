//! The fixed set of identities the emulated tenant knows, and their Key Vault roles.

use serde::Serialize;

/// The tenant every principal lives in (fixed so tests and docs can name it).
pub const TENANT_ID: &str = "72f988bf-0000-4000-8000-00000000e1a1";

pub const ROLE_OFFICER: &str = "Key Vault Secrets Officer";
pub const ROLE_USER: &str = "Key Vault Secrets User";

#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub name: &'static str,
    pub client_id: &'static str,
    pub client_secret: String,
    pub object_id: &'static str,
    pub roles: Vec<&'static str>,
}

/// What a principal wants to do, mapped to the RBAC data action Key Vault checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    GetSecret,
    ReadMetadata,
    SetSecret,
    Update,
    Delete,
    Recover,
    Purge,
    ReadDeleted,
}

impl Action {
    pub fn data_action(self) -> &'static str {
        match self {
            Action::GetSecret => "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            Action::ReadMetadata => "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            Action::SetSecret => "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            Action::Update => "Microsoft.KeyVault/vaults/secrets/update/action",
            Action::Delete => "Microsoft.KeyVault/vaults/secrets/delete",
            Action::Recover => "Microsoft.KeyVault/vaults/secrets/recover/action",
            Action::Purge => "Microsoft.KeyVault/vaults/secrets/purge/action",
            Action::ReadDeleted => "Microsoft.KeyVault/vaults/deletedSecrets/read",
        }
    }
}

impl Action {
    /// The secret permission of an access policy that allows the action (what a vault using
    /// access policies names in its 403: "does not have secrets get permission").
    pub fn policy_permission(self) -> &'static str {
        match self {
            Action::GetSecret => "get",
            Action::ReadMetadata | Action::ReadDeleted => "list",
            Action::SetSecret | Action::Update => "set",
            Action::Delete => "delete",
            Action::Recover => "recover",
            Action::Purge => "purge",
        }
    }
}

impl Principal {
    pub fn may(&self, action: Action) -> bool {
        let officer = self.roles.contains(&ROLE_OFFICER);
        let user = self.roles.contains(&ROLE_USER);
        match action {
            Action::GetSecret | Action::ReadMetadata => officer || user,
            _ => officer,
        }
    }
}

pub fn random_secret() -> String {
    // Shaped like an Entra ID client secret: 40 URL-safe characters.
    let mut bytes = [0u8; 30];
    aws_lc_rs::rand::fill(&mut bytes).expect("system random");
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The principals: client and object ids are fixed per name; secrets are random per start.
pub fn default_principals() -> Vec<Principal> {
    let p = |name, client_id, object_id, roles: &[&'static str]| Principal {
        name,
        client_id,
        client_secret: random_secret(),
        object_id,
        roles: roles.to_vec(),
    };
    vec![
        p(
            "officer",
            "0f1ce000-0000-4000-8000-000000000001",
            "0b1ec700-0000-4000-8000-000000000001",
            &[ROLE_OFFICER],
        ),
        p(
            "reader",
            "0f1ce000-0000-4000-8000-000000000002",
            "0b1ec700-0000-4000-8000-000000000002",
            &[ROLE_USER],
        ),
        p(
            "nobody",
            "0f1ce000-0000-4000-8000-000000000003",
            "0b1ec700-0000-4000-8000-000000000003",
            &[],
        ),
        p(
            "managed",
            "0f1ce000-0000-4000-8000-000000000004",
            "0b1ec700-0000-4000-8000-000000000004",
            &[ROLE_OFFICER],
        ),
        // A user-assigned managed identity attached to the emulated host (IMDS selectors).
        p(
            "user-assigned",
            "0f1ce000-0000-4000-8000-000000000005",
            "0b1ec700-0000-4000-8000-000000000005",
            &[ROLE_USER],
        ),
    ]
}
