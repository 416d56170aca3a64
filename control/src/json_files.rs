//! The one-time move from the JSON-file version: `keys.json`, `tenants.json` and `rules.json`
//! of a data folder go into the store in one transaction (with one audit entry per tenant),
//! then each file is renamed to `*.migrated`. Rows that exist already are kept, so a crash
//! between the commit and the renames, or a second node moving the same files into a shared
//! PostgreSQL, imports nothing twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use warehouse::policy::RulesPolicy;

use crate::audit::{self, AuditContext, Draft, ModifiedProperty};
use crate::keys::KeyRecord;
use crate::store::records;
use crate::{ControlError, ControlPlane, TenantSettings};

/// The JSON files of the earlier version.
pub const FILES: [&str; 3] = ["keys.json", "tenants.json", "rules.json"];

/// What a move imported (rows already in the store are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JsonMigration {
    /// Keys imported.
    pub keys: usize,
    /// Tenants whose settings were imported.
    pub tenants: usize,
    /// Rules policies imported.
    pub policies: usize,
    /// The files renamed to `*.migrated`.
    pub renamed: Vec<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyRecord>,
}

fn read<T: Default + serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, ControlError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| ControlError::File {
                path: path.to_owned(),
                message: format!("not a state file of elevation: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ControlError::File {
            path: path.to_owned(),
            message: e.to_string(),
        }),
    }
}

impl ControlPlane {
    /// Moves the JSON files of `data_dir` into the store, if there are any. `None` when there
    /// was nothing to move.
    pub async fn migrate_json_files(&self, data_dir: &Path) -> Result<Option<JsonMigration>, ControlError> {
        let paths = FILES.map(|f| data_dir.join(f));
        let keys: Option<KeysFile> = read(&paths[0])?;
        let settings: Option<BTreeMap<String, TenantSettings>> = read(&paths[1])?;
        let rules: Option<BTreeMap<String, Vec<RulesPolicy>>> = read(&paths[2])?;
        if keys.is_none() && settings.is_none() && rules.is_none() {
            return Ok(None);
        }
        let (keys, settings, rules) = (
            keys.unwrap_or_default().keys,
            settings.unwrap_or_default(),
            rules.unwrap_or_default(),
        );
        let mut tenants: Vec<&str> = keys
            .iter()
            .map(|k| k.tenant.as_str())
            .chain(settings.keys().map(String::as_str))
            .chain(rules.keys().map(String::as_str))
            .collect();
        tenants.sort_unstable();
        tenants.dedup();
        let now = self.now();
        let context = AuditContext {
            actor: audit::Actor::system(),
            correlation_id: uuid::Uuid::new_v4().to_string(),
        };
        let mut moved = JsonMigration::default();
        let mut tx = self.store().begin_write().await?;
        for tenant in tenants {
            let mut head = audit::lock_head(&mut tx, tenant).await?;
            let mut counts = [0usize; 3];
            for key in keys.iter().filter(|k| k.tenant == tenant) {
                counts[0] += usize::from(records::insert_key(&mut tx, key).await?);
            }
            if let Some(s) = settings.get(tenant) {
                counts[1] += usize::from(records::put_settings(&mut tx, tenant, s, false, now).await?);
            }
            for policy in rules.get(tenant).into_iter().flatten() {
                counts[2] += usize::from(records::put_policy(&mut tx, tenant, policy, false, now).await?);
            }
            if counts == [0; 3] {
                continue;
            }
            let modified = ["keys", "tenantSettings", "rulesPolicies"]
                .iter()
                .zip(counts)
                .map(|(name, n)| ModifiedProperty::new(name, None, Some(n.to_string())))
                .collect();
            let draft = Draft {
                activity: "migrateJsonFiles",
                operation: "Create",
                result: "success",
                resource_type: "dataFolder",
                resource_id: data_dir.display().to_string(),
                modified,
            };
            audit::append(&mut tx, &mut head, &context, draft, now).await?;
            moved.keys += counts[0];
            moved.tenants += counts[1];
            moved.policies += counts[2];
        }
        tx.commit().await?;
        for path in paths.iter().filter(|p| p.exists()) {
            let mut target = path.clone().into_os_string();
            target.push(".migrated");
            let target = PathBuf::from(target);
            std::fs::rename(path, &target).map_err(|e| ControlError::File {
                path: path.clone(),
                message: format!("imported, but cannot rename it to {}: {e}", target.display()),
            })?;
            moved.renamed.push(target);
        }
        tracing::info!(
            keys = moved.keys,
            tenants = moved.tenants,
            policies = moved.policies,
            files = ?moved.renamed,
            "moved the JSON files of the data folder into the control-plane database"
        );
        Ok(Some(moved))
    }
}
