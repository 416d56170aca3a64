//! Agent and admin keys: `elv_<kind>_<id>_<secret>`, a public 64-bit id and a random 256-bit
//! secret shown once at creation. Only the secret's SHA-256 is stored; a presented key is
//! found by its id and its secret's hash compared in constant time. An admin key names the
//! person who holds it (`upn`): the audit log's actor and, later, the approver of requests.

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ControlError, Role};

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyKind {
    /// An EPM agent uploading batches for one tenant.
    Agent,
    /// A person or script using the admin API with one role.
    Admin,
}

impl KeyKind {
    /// Every kind, in the order they are listed (errors, the OpenAPI document).
    pub const ALL: [KeyKind; 2] = [KeyKind::Agent, KeyKind::Admin];

    /// Parses `agent` or `admin`.
    pub fn parse(text: &str) -> Result<KeyKind, ControlError> {
        KeyKind::ALL.into_iter().find(|k| k.short() == text).ok_or_else(|| {
            let names: Vec<&str> = KeyKind::ALL.iter().map(|k| k.short()).collect();
            ControlError::Invalid(format!("kind must be {}, not {text:?}", names.join(" or ")))
        })
    }

    /// The kind as it appears in keys, listings and the database.
    pub fn short(self) -> &'static str {
        match self {
            KeyKind::Agent => "agent",
            KeyKind::Admin => "admin",
        }
    }
}

/// A stored key: never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    /// Public part of the key, shown in listings.
    pub id: String,
    /// The tenant the key belongs to.
    pub tenant: String,
    /// Agent or admin.
    pub kind: KeyKind,
    /// The admin key's role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The person holding an admin key (user principal name). Keys of the JSON-file version
    /// have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    /// The one device an agent key speaks for (`keys create --kind agent --device ID`); a key
    /// without one speaks for every device of its tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

impl KeyRecord {
    /// Who this key is, if `secret` is its secret and it is not revoked. The comparison of the
    /// hashes takes the same time wherever they differ.
    pub fn verify(&self, presented: &Presented<'_>) -> Option<Principal> {
        if self.kind.short() != presented.kind || self.revoked_at.is_some() {
            return None;
        }
        let presented_hash = hex::encode(Sha256::digest(presented.secret.as_bytes()));
        let matches: bool = presented_hash.as_bytes().ct_eq(self.secret_sha256.as_bytes()).into();
        matches.then(|| self.principal())
    }

    /// The principal this key stands for.
    pub fn principal(&self) -> Principal {
        Principal {
            key_id: self.id.clone(),
            tenant: self.tenant.clone(),
            kind: self.kind,
            role: self.role,
            upn: self.upn.clone(),
            device_id: self.device_id.clone(),
        }
    }
}

/// Who a presented key (or a sign-in session) proved to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Key id.
    pub key_id: String,
    /// Tenant.
    pub tenant: String,
    /// Agent or admin.
    pub kind: KeyKind,
    /// Role (admin keys only).
    pub role: Option<Role>,
    /// The person holding an admin key.
    pub upn: Option<String>,
    /// The device a device-bound agent key speaks for.
    pub device_id: Option<String>,
}

impl Principal {
    /// Whether this is an admin whose role carries `permission`.
    pub fn may(&self, permission: crate::Permission) -> bool {
        self.kind == KeyKind::Admin && self.role.is_some_and(|r| r.allows(permission))
    }

    /// The name the audit log records: the admin's UPN, or `key:<id>` for a key without one.
    pub fn actor_name(&self) -> String {
        self.upn.clone().unwrap_or_else(|| format!("key:{}", self.key_id))
    }
}

/// A key as presented, split into its parts (nothing checked yet).
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// `agent` or `admin` as written in the key.
    pub kind: &'a str,
    /// The key id.
    pub id: &'a str,
    /// The secret.
    pub secret: &'a str,
}

impl<'a> Presented<'a> {
    /// Splits `elv_<kind>_<id>_<secret>`; `None` when it is not shaped like a key.
    pub fn parse(text: &'a str) -> Option<Presented<'a>> {
        let mut parts = text.trim().splitn(4, '_');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("elv"), Some(kind), Some(id), Some(secret))
                if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Some(Presented { kind, id, secret })
            }
            _ => None,
        }
    }
}

/// Checks a user principal name: something@domain, no spaces or control characters, at most
/// 256 characters (it is shown in the audit log and must be unambiguous).
pub fn check_upn(upn: &str) -> Result<(), ControlError> {
    let ok = upn.len() <= 256
        && upn
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !upn.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(ControlError::Invalid(format!(
            "--upn {upn:?} must be a user principal name such as ada@contoso.com"
        )))
    }
}

/// A new key for `tenant`: the text to hand over once, and the record to store. Admin keys
/// need a role and the UPN of the person who holds them; agent keys have neither.
pub fn generate(
    tenant: &str,
    kind: KeyKind,
    role: Option<Role>,
    upn: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(String, KeyRecord), ControlError> {
    crate::tenants::check_tenant_name(tenant)?;
    match (kind, role, upn) {
        (KeyKind::Agent, Some(_), _) => {
            return Err(ControlError::Invalid("agent keys carry no role; drop --role".into()));
        }
        (KeyKind::Agent, _, Some(_)) => {
            return Err(ControlError::Invalid("agent keys name no person; drop --upn".into()));
        }
        (KeyKind::Admin, None, _) => {
            return Err(ControlError::Invalid(
                "admin keys need --role (for example --role endpoint-privilege-reader)".into(),
            ));
        }
        (KeyKind::Admin, _, None) => {
            return Err(ControlError::Invalid(
                "admin keys need --upn, the person who holds the key (for example --upn ada@contoso.com): \
                 the audit log names them"
                    .into(),
            ));
        }
        _ => {}
    }
    if let Some(upn) = upn {
        check_upn(upn)?;
    }
    let mut id_bytes = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut id_bytes);
    rand::rng().fill_bytes(&mut secret);
    let id = hex::encode(id_bytes);
    let secret = hex::encode(secret);
    let record = KeyRecord {
        id: id.clone(),
        tenant: tenant.to_owned(),
        kind,
        role,
        upn: upn.map(str::to_owned),
        secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
        created_at: now,
        revoked_at: None,
        device_id: None,
    };
    Ok((format!("elv_{}_{id}_{secret}", kind.short()), record))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap()
    }

    #[test]
    fn a_key_verifies_by_its_secret_and_kind_and_not_when_revoked() {
        let (text, record) = generate("contoso", KeyKind::Agent, None, None, now()).unwrap();
        assert!(!record.secret_sha256.contains(text.rsplit('_').next().unwrap()));
        let presented = Presented::parse(&text).unwrap();
        assert_eq!(presented.id, record.id);
        assert_eq!(record.verify(&presented).unwrap().tenant, "contoso");
        let mut wrong = text.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == '0' { '1' } else { '0' });
        assert_eq!(record.verify(&Presented::parse(&wrong).unwrap()), None);
        let swapped = text.replacen("agent", "admin", 1);
        assert_eq!(record.verify(&Presented::parse(&swapped).unwrap()), None);
        assert!(Presented::parse("Bearer nonsense").is_none());
        assert!(Presented::parse("elv_agent_../x_secret").is_none());
        let revoked = KeyRecord {
            revoked_at: Some(now()),
            ..record
        };
        assert_eq!(revoked.verify(&presented), None);
    }

    #[test]
    fn key_creation_refuses_bad_input() {
        let reader = Some(Role::ReadOnlyOperator);
        type Case<'a> = (&'a str, KeyKind, Option<Role>, Option<&'a str>, &'a str);
        let cases: [Case<'_>; 7] = [
            (
                "Contoso",
                KeyKind::Agent,
                None,
                None,
                "tenant \"Contoso\" must be 1-63 lower-case letters",
            ),
            ("contoso", KeyKind::Agent, reader, None, "agent keys carry no role"),
            (
                "contoso",
                KeyKind::Agent,
                None,
                Some("ada@contoso.com"),
                "agent keys name no person",
            ),
            (
                "contoso",
                KeyKind::Admin,
                None,
                Some("ada@contoso.com"),
                "admin keys need --role",
            ),
            ("contoso", KeyKind::Admin, reader, None, "admin keys need --upn"),
            (
                "contoso",
                KeyKind::Admin,
                reader,
                Some("ada"),
                "must be a user principal name",
            ),
            ("", KeyKind::Agent, None, None, "must be 1-63"),
        ];
        for (tenant, kind, role, upn, message) in cases {
            let err = generate(tenant, kind, role, upn, now()).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
        let (_, admin) = generate("contoso", KeyKind::Admin, reader, Some("ada@contoso.com"), now()).unwrap();
        assert_eq!(admin.principal().actor_name(), "ada@contoso.com");
    }
}
