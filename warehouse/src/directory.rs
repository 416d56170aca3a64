//! Keys and tenant settings as the server sees them: loaded from the data folder and reloaded
//! whenever `elevation keys` or `elevation tenant` changed the files, so a new key works and a
//! revoked key stops at once, without a restart.

use std::collections::BTreeMap;
use std::sync::RwLock;
use std::time::SystemTime;

use crate::tenants::{Keyring, Principal, TenantError, TenantSettings, TenantStore};

#[derive(Debug, Default)]
struct Cached {
    keyring: Keyring,
    keys_modified: Option<SystemTime>,
    settings: BTreeMap<String, TenantSettings>,
    settings_modified: Option<SystemTime>,
}

/// The keyring and settings of one data folder.
#[derive(Debug)]
pub struct Directory {
    store: TenantStore,
    cached: RwLock<Cached>,
}

impl Directory {
    /// Loads the keys and settings of a data folder.
    pub fn open(store: TenantStore) -> Result<Directory, TenantError> {
        let directory = Directory {
            store,
            cached: RwLock::new(Cached::default()),
        };
        directory.refresh()?;
        Ok(directory)
    }

    /// Reloads what changed on disk (a `stat` per file when nothing did).
    fn refresh(&self) -> Result<(), TenantError> {
        let keys_modified = self.store.keys_modified();
        let settings_modified = self.store.tenants_modified();
        {
            let cached = self.cached.read().expect("not poisoned");
            if cached.keys_modified == keys_modified
                && cached.settings_modified == settings_modified
                && keys_modified.is_some()
            {
                return Ok(());
            }
        }
        let keyring = self.store.load_keyring()?;
        let settings = self.store.tenant_settings()?;
        *self.cached.write().expect("not poisoned") = Cached {
            keyring,
            keys_modified,
            settings,
            settings_modified,
        };
        Ok(())
    }

    /// Who a presented key is, if anyone.
    pub fn authenticate(&self, presented: &str) -> Result<Option<Principal>, TenantError> {
        self.refresh()?;
        Ok(self
            .cached
            .read()
            .expect("not poisoned")
            .keyring
            .authenticate(presented))
    }

    /// The elevation rules policies imported for a tenant (read from disk on every call:
    /// imports are rare and suggestions are not on a hot path).
    pub fn imported_policies(&self, tenant: &str) -> Result<Vec<crate::policy::RulesPolicy>, TenantError> {
        self.store.imported_policies(tenant)
    }

    /// A tenant's settings (defaults when it has none).
    pub fn settings_of(&self, tenant: &str) -> TenantSettings {
        self.cached
            .read()
            .expect("not poisoned")
            .settings
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    }
}
