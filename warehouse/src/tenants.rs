//! Tenants, their settings and their keys: who may upload for which tenant, who may read
//! which reports, and how much each tenant lets its devices report.
//!
//! Keys are random 256-bit secrets shown once at creation. Only their SHA-256 is stored
//! (`keys.json` in the data folder); a presented key is found by its public id and its secret
//! compared in constant time. Settings live in `tenants.json`. Both files are written
//! atomically (temporary file, fsync, rename), so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::ReportingLevel;

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
    /// Parses `agent` or `admin`.
    pub fn parse(text: &str) -> Result<KeyKind, TenantError> {
        match text {
            "agent" => Ok(KeyKind::Agent),
            "admin" => Ok(KeyKind::Admin),
            other => Err(TenantError::Invalid(format!(
                "--kind must be agent or admin, not {other:?}"
            ))),
        }
    }

    /// The kind as it appears in keys and listings.
    pub fn short(self) -> &'static str {
        match self {
            KeyKind::Agent => "agent",
            KeyKind::Admin => "admin",
        }
    }
}

/// A permission of Intune's EPM RBAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Permission {
    /// Endpoint Privilege Management Policy Authoring > View Reports.
    ViewReports,
    /// Policy Authoring > Read.
    Read,
    /// Policy Authoring > Create, Update, Delete, Assign.
    ManagePolicies,
    /// Elevation Requests > View elevation requests.
    ViewElevationRequests,
    /// Elevation Requests > Modify elevation requests.
    ModifyElevationRequests,
}

/// The built-in roles of Intune's EPM RBAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Endpoint Privilege Manager: everything.
    EndpointPrivilegeManager,
    /// Endpoint Security Manager: everything.
    EndpointSecurityManager,
    /// Endpoint Privilege Reader: view reports, read, view elevation requests.
    EndpointPrivilegeReader,
    /// Read Only Operator: view reports, read, view elevation requests.
    ReadOnlyOperator,
}

impl Role {
    /// Every role, in the order the README lists them.
    pub const ALL: [Role; 4] = [
        Role::EndpointPrivilegeManager,
        Role::EndpointSecurityManager,
        Role::EndpointPrivilegeReader,
        Role::ReadOnlyOperator,
    ];

    /// The role's name as written on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::EndpointPrivilegeManager => "endpoint-privilege-manager",
            Role::EndpointSecurityManager => "endpoint-security-manager",
            Role::EndpointPrivilegeReader => "endpoint-privilege-reader",
            Role::ReadOnlyOperator => "read-only-operator",
        }
    }

    /// Parses a role name; the error lists the roles.
    pub fn parse(text: &str) -> Result<Role, TenantError> {
        Role::ALL.into_iter().find(|r| r.as_str() == text).ok_or_else(|| {
            let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
            TenantError::Invalid(format!("--role {text:?} is not one of {}", names.join(", ")))
        })
    }

    /// Whether the role carries a permission.
    pub fn allows(self, permission: Permission) -> bool {
        match self {
            Role::EndpointPrivilegeManager | Role::EndpointSecurityManager => true,
            Role::EndpointPrivilegeReader | Role::ReadOnlyOperator => matches!(
                permission,
                Permission::ViewReports | Permission::Read | Permission::ViewElevationRequests
            ),
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Who a presented key proved to be.
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
}

/// Settings of one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantSettings {
    /// The highest reporting level the tenant accepts; devices declaring more are capped.
    pub reporting_cap: ReportingLevel,
    /// Days of raw elevations kept (default [`DEFAULT_ELEVATION_RETENTION_DAYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elevation_retention_days: Option<u32>,
    /// Days of diagnostic events kept (default [`DEFAULT_DIAGNOSTIC_RETENTION_DAYS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostic_retention_days: Option<u32>,
}

/// Raw elevations are kept 400 days by default: 13 months covers a yearly audit plus the month
/// it takes to run one. Tenants that must keep evidence longer (7 years for some regulators)
/// raise it per tenant.
pub const DEFAULT_ELEVATION_RETENTION_DAYS: u32 = 400;
/// Daily rollups are kept 7 years (2,557 days): the longest retention regulators commonly ask.
pub const ROLLUP_RETENTION_DAYS: u32 = 2557;
/// Diagnostic events are kept 90 days by default: they explain recent agent trouble, not history.
pub const DEFAULT_DIAGNOSTIC_RETENTION_DAYS: u32 = 90;

impl TenantSettings {
    /// Days of rows a table keeps for this tenant.
    pub fn retention_days(&self, table: crate::Table) -> u32 {
        match table {
            crate::Table::Elevations => self
                .elevation_retention_days
                .unwrap_or(DEFAULT_ELEVATION_RETENTION_DAYS),
            crate::Table::Diagnostics => self
                .diagnostic_retention_days
                .unwrap_or(DEFAULT_DIAGNOSTIC_RETENTION_DAYS),
            // Rollups hold no event detail beyond what the reports group by: kept 7 years, or
            // as long as raw elevations when a tenant keeps those longer.
            crate::Table::DailyElevations
            | crate::Table::DailyCounts
            | crate::Table::DailyUsers
            | crate::Table::DailyDevices
            | crate::Table::DailyUserSets
            | crate::Table::DailyDenied => self.retention_days(crate::Table::Elevations).max(ROLLUP_RETENTION_DAYS),
            // Numbers are never reused, so they outlive every rollup row that names them: a
            // window longer than the calendar, which retention skips.
            crate::Table::UserNumbers => u32::MAX,
        }
    }
}

impl Default for TenantSettings {
    fn default() -> Self {
        TenantSettings {
            reporting_cap: ReportingLevel::All,
            elevation_retention_days: None,
            diagnostic_retention_days: None,
        }
    }
}

/// What can go wrong with keys and tenant settings.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// A name, kind or role the user typed is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The key to revoke does not exist.
    #[error("no key with id {0:?}; `elevation keys list` shows the ids")]
    UnknownKey(String),
    /// Reading or writing a state file failed.
    #[error("cannot use {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A state file holds something that is not ours.
    #[error("{path} is not a valid state file: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KeysFile {
    keys: Vec<KeyRecord>,
}

/// Checks a tenant name: lower-case letters, digits and dashes, 1–63 characters, so it is
/// safe as a partition value and a path segment everywhere.
pub fn check_tenant_name(tenant: &str) -> Result<(), TenantError> {
    let ok = !tenant.is_empty()
        && tenant.len() <= 63
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !tenant.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(TenantError::Invalid(format!(
            "tenant {tenant:?} must be 1-63 lower-case letters, digits or dashes, not starting with a dash"
        )))
    }
}

/// The keys and tenant settings of one node, kept in its data folder.
#[derive(Debug, Clone)]
pub struct TenantStore {
    dir: PathBuf,
}

impl TenantStore {
    /// The store in `data_dir` (created on first write).
    pub fn new(data_dir: &Path) -> Self {
        TenantStore {
            dir: data_dir.to_owned(),
        }
    }

    fn keys_path(&self) -> PathBuf {
        self.dir.join("keys.json")
    }

    fn tenants_path(&self) -> PathBuf {
        self.dir.join("tenants.json")
    }

    /// Creates a key and returns the secret text (shown once) with its record.
    pub fn create_key(
        &self,
        tenant: &str,
        kind: KeyKind,
        role: Option<Role>,
        now: DateTime<Utc>,
    ) -> Result<(String, KeyRecord), TenantError> {
        check_tenant_name(tenant)?;
        let role = match (kind, role) {
            (KeyKind::Agent, Some(_)) => {
                return Err(TenantError::Invalid("agent keys carry no role; drop --role".into()));
            }
            (KeyKind::Admin, None) => {
                return Err(TenantError::Invalid(
                    "admin keys need --role (for example --role endpoint-privilege-reader)".into(),
                ));
            }
            (_, role) => role,
        };
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
            secret_sha256: hex::encode(Sha256::digest(secret.as_bytes())),
            created_at: now,
            revoked_at: None,
        };
        let mut file = self.read_keys()?;
        file.keys.push(record.clone());
        write_atomically(&self.keys_path(), &file)?;
        Ok((format!("elv_{}_{id}_{secret}", kind.short()), record))
    }

    /// Every key record, revoked ones included.
    pub fn list_keys(&self) -> Result<Vec<KeyRecord>, TenantError> {
        Ok(self.read_keys()?.keys)
    }

    /// Revokes a key by id; it stops working at once on every server reading this folder.
    pub fn revoke_key(&self, id: &str, now: DateTime<Utc>) -> Result<KeyRecord, TenantError> {
        let mut file = self.read_keys()?;
        let record = file
            .keys
            .iter_mut()
            .find(|k| k.id == id)
            .ok_or_else(|| TenantError::UnknownKey(id.into()))?;
        if record.revoked_at.is_none() {
            record.revoked_at = Some(now);
        }
        let revoked = record.clone();
        write_atomically(&self.keys_path(), &file)?;
        Ok(revoked)
    }

    /// Loads every key into a lookup table for authentication.
    pub fn load_keyring(&self) -> Result<Keyring, TenantError> {
        let keys = self.read_keys()?.keys.into_iter().map(|k| (k.id.clone(), k)).collect();
        Ok(Keyring { keys })
    }

    /// The modification time of the keys file, to notice changes made by `elevation keys`.
    pub fn keys_modified(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.keys_path()).and_then(|m| m.modified()).ok()
    }

    /// The modification time of the tenant settings file, to notice `elevation tenant set`.
    pub fn tenants_modified(&self) -> Option<std::time::SystemTime> {
        std::fs::metadata(self.tenants_path()).and_then(|m| m.modified()).ok()
    }

    /// Settings of every tenant that has any.
    pub fn tenant_settings(&self) -> Result<BTreeMap<String, TenantSettings>, TenantError> {
        read_json(&self.tenants_path())
    }

    /// Settings of one tenant (defaults when it has none).
    pub fn settings_of(&self, tenant: &str) -> Result<TenantSettings, TenantError> {
        Ok(self.tenant_settings()?.remove(tenant).unwrap_or_default())
    }

    /// Stores one tenant's settings.
    pub fn set_settings(&self, tenant: &str, settings: TenantSettings) -> Result<(), TenantError> {
        check_tenant_name(tenant)?;
        let mut all = self.tenant_settings()?;
        all.insert(tenant.to_owned(), settings);
        write_atomically(&self.tenants_path(), &all)
    }

    fn rules_path(&self) -> PathBuf {
        self.dir.join("rules.json")
    }

    /// The elevation rules policies imported for a tenant (`elevation rules import`).
    pub fn imported_policies(&self, tenant: &str) -> Result<Vec<crate::policy::RulesPolicy>, TenantError> {
        let mut all: BTreeMap<String, Vec<crate::policy::RulesPolicy>> = read_json(&self.rules_path())?;
        Ok(all.remove(tenant).unwrap_or_default())
    }

    /// Imports a policy for a tenant, replacing an earlier import of the same name, so that
    /// importing the current export of a policy again is harmless. Returns whether it replaced one.
    pub fn import_policy(&self, tenant: &str, policy: crate::policy::RulesPolicy) -> Result<bool, TenantError> {
        check_tenant_name(tenant)?;
        let mut all: BTreeMap<String, Vec<crate::policy::RulesPolicy>> = read_json(&self.rules_path())?;
        let policies = all.entry(tenant.to_owned()).or_default();
        let replaced = policies
            .iter()
            .position(|p| p.name == policy.name)
            .map(|i| policies.remove(i));
        policies.push(policy);
        policies.sort_by(|a, b| a.name.cmp(&b.name));
        write_atomically(&self.rules_path(), &all)?;
        Ok(replaced.is_some())
    }

    fn read_keys(&self) -> Result<KeysFile, TenantError> {
        read_json(&self.keys_path())
    }
}

/// The keys in memory, for authenticating requests.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<String, KeyRecord>,
}

impl Keyring {
    /// Checks a presented key (`elv_<kind>_<id>_<secret>`). `None` for anything unknown,
    /// malformed or revoked: the caller answers 401 without saying which.
    pub fn authenticate(&self, presented: &str) -> Option<Principal> {
        let mut parts = presented.trim().splitn(4, '_');
        let (Some("elv"), Some(kind), Some(id), Some(secret)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let record = self.keys.get(id)?;
        if record.kind.short() != kind || record.revoked_at.is_some() {
            return None;
        }
        let presented_hash = hex::encode(Sha256::digest(secret.as_bytes()));
        let matches: bool = presented_hash.as_bytes().ct_eq(record.secret_sha256.as_bytes()).into();
        matches.then(|| Principal {
            key_id: record.id.clone(),
            tenant: record.tenant.clone(),
            kind: record.kind,
            role: record.role,
        })
    }

    /// Whether the keyring knows a key id (to decide whether a reload could help).
    pub fn knows(&self, presented: &str) -> bool {
        presented.split('_').nth(2).is_some_and(|id| self.keys.contains_key(id))
    }
}

fn read_json<T: Default + serde::de::DeserializeOwned>(path: &Path) -> Result<T, TenantError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| TenantError::Corrupt {
            path: path.to_owned(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(TenantError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes JSON to a temporary file, fsyncs it, renames it over `path` and fsyncs the folder.
fn write_atomically<T: Serialize>(path: &Path, value: &T) -> Result<(), TenantError> {
    let io = |source| TenantError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().expect("state files live in a folder");
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("json.tmp");
    let mut text = serde_json::to_vec_pretty(value).expect("state serialises");
    text.push(b'\n');
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(&text).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    crate::durable::sync_dir(dir).map_err(io)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn keys_authenticate_by_id_and_secret_and_stop_when_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = TenantStore::new(dir.path());
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let (agent, record) = store.create_key("contoso", KeyKind::Agent, None, now).unwrap();
        let (admin, _) = store
            .create_key("contoso", KeyKind::Admin, Some(Role::ReadOnlyOperator), now)
            .unwrap();
        // Only the hash is on disk.
        let on_disk = std::fs::read_to_string(dir.path().join("keys.json")).unwrap();
        assert!(!on_disk.contains(agent.rsplit('_').next().unwrap()));

        let ring = store.load_keyring().unwrap();
        let who = ring.authenticate(&agent).unwrap();
        assert_eq!(
            (who.tenant.as_str(), who.kind, who.role),
            ("contoso", KeyKind::Agent, None)
        );
        assert_eq!(ring.authenticate(&admin).unwrap().role, Some(Role::ReadOnlyOperator));
        // A wrong secret, a swapped kind, garbage: all unknown.
        let mut wrong = agent.clone();
        wrong.pop();
        wrong.push(if agent.ends_with('0') { '1' } else { '0' });
        assert_eq!(ring.authenticate(&wrong), None);
        assert_eq!(ring.authenticate(&agent.replacen("agent", "admin", 1)), None);
        assert_eq!(ring.authenticate("Bearer nonsense"), None);

        store.revoke_key(&record.id, now).unwrap();
        assert_eq!(store.load_keyring().unwrap().authenticate(&agent), None);
    }

    #[test]
    fn key_creation_refuses_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let store = TenantStore::new(dir.path());
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        let cases: [(&str, KeyKind, Option<Role>, &str); 4] = [
            (
                "Contoso",
                KeyKind::Agent,
                None,
                "tenant \"Contoso\" must be 1-63 lower-case letters",
            ),
            (
                "contoso",
                KeyKind::Agent,
                Some(Role::ReadOnlyOperator),
                "agent keys carry no role",
            ),
            ("contoso", KeyKind::Admin, None, "admin keys need --role"),
            ("", KeyKind::Agent, None, "must be 1-63"),
        ];
        for (tenant, kind, role, message) in cases {
            let err = store.create_key(tenant, kind, role, now).unwrap_err().to_string();
            assert!(err.contains(message), "{err}");
        }
        assert!(
            Role::parse("admin")
                .unwrap_err()
                .to_string()
                .contains("endpoint-privilege-manager")
        );
    }

    #[test]
    fn roles_mirror_intune_rbac() {
        for role in Role::ALL {
            assert!(role.allows(Permission::ViewReports), "{role:?}");
            assert!(role.allows(Permission::ViewElevationRequests), "{role:?}");
        }
        assert!(Role::EndpointPrivilegeManager.allows(Permission::ManagePolicies));
        assert!(Role::EndpointSecurityManager.allows(Permission::ModifyElevationRequests));
        assert!(!Role::EndpointPrivilegeReader.allows(Permission::ManagePolicies));
        assert!(!Role::ReadOnlyOperator.allows(Permission::ModifyElevationRequests));
    }
}
