//! [`ControlPlane`]: the one handle servers and the CLI use. Every change runs in one
//! transaction with its audit entry: either both are stored or neither.
//!
//! Authentication is cached: a key verified against the database is trusted for
//! [`ControlOptions::auth_ttl`] (1 s), so a revocation on any node reaches every node within
//! about a second. When the database cannot be reached, a key verified within
//! [`ControlOptions::offline_grace`] (15 minutes) keeps working for uploads only; admin calls
//! need the database and get [`ControlError::Unavailable`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use warehouse::Clock;
use warehouse::policy::RulesPolicy;

use crate::audit::{self, AuditContext, AuditEvent, AuditFilter, Draft, ModifiedProperty, Verification};
use crate::keys::{self, KeyKind, KeyRecord, Presented, Principal};
use crate::sessions::{self, Session};
use crate::store::{ControlDb, Store, Tx, records};
use crate::{ControlError, Role, TenantSettings};

/// How the control plane caches and whose clock it uses.
#[derive(Debug, Clone)]
pub struct ControlOptions {
    /// How long a key verified against the database is trusted without asking again: the
    /// bound on how late a revocation made on another node is noticed.
    pub auth_ttl: Duration,
    /// How long a verified key keeps working for uploads while the database is unreachable.
    pub offline_grace: Duration,
    /// Timestamps of keys, settings, sessions, requests and audit entries.
    pub clock: Arc<dyn Clock>,
    /// Whether webhooks may target `http://` on loopback (tests, a receiver on the node).
    pub webhooks_allow_http_loopback: bool,
}

impl Default for ControlOptions {
    fn default() -> Self {
        ControlOptions {
            auth_ttl: Duration::from_secs(1),
            offline_grace: Duration::from_secs(15 * 60),
            clock: Arc::new(warehouse::SystemClock),
            webhooks_allow_http_loopback: false,
        }
    }
}

/// After the database failed, uploads use their cached keys without asking it for this long.
const OFFLINE_RETRY: Duration = Duration::from_secs(5);

/// A key and its tenant's settings as last read from the database.
#[derive(Debug, Clone)]
struct Cached {
    record: KeyRecord,
    settings: TenantSettings,
    read_at: Instant,
}

/// Who an upload's key is, with the tenant settings that decide what it may store.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The key's principal.
    pub principal: Principal,
    /// Its tenant's settings.
    pub settings: TenantSettings,
}

/// The control plane: keys, tenants, rules policies, sessions and the audit log in one
/// database.
#[derive(Debug)]
pub struct ControlPlane {
    store: Store,
    options: ControlOptions,
    cache: Mutex<HashMap<String, Cached>>,
    /// After a failed attempt, uploads do not wait for the database again until then.
    offline_until: Mutex<Option<Instant>>,
    /// Woken when this node queues a webhook delivery.
    webhook_wake: tokio::sync::Notify,
}

impl ControlPlane {
    /// Connects and applies the migrations this binary carries (refusing a newer schema).
    pub async fn open(db: &ControlDb, options: ControlOptions) -> Result<ControlPlane, ControlError> {
        let store = Store::connect(db).await?;
        let applied = store.migrate_with(store.migrations()).await?;
        if !applied.is_empty() {
            tracing::info!(db = %db.display(), versions = ?applied, "control-plane schema migrated");
        }
        Ok(ControlPlane {
            store,
            options,
            cache: Mutex::new(HashMap::new()),
            offline_until: Mutex::new(None),
            webhook_wake: tokio::sync::Notify::new(),
        })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        self.store.backend()
    }

    /// Closes the database connections.
    pub async fn close(&self) {
        self.store.close().await;
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.options.clock.now()
    }

    pub(crate) fn options(&self) -> &ControlOptions {
        &self.options
    }

    /// Whether a recent attempt found the database unreachable: background writes that must
    /// not hold up an upload skip it for a while instead of waiting.
    pub(crate) fn known_offline(&self) -> bool {
        self.offline_until
            .lock()
            .expect("not poisoned")
            .is_some_and(|until| Instant::now() < until)
    }

    /// The database could not be reached just now: callers that can go on without it skip it
    /// for a while instead of each waiting out the pool's acquire timeout.
    pub(crate) fn note_unreachable(&self) {
        *self.offline_until.lock().expect("not poisoned") = Some(Instant::now() + OFFLINE_RETRY);
    }

    pub(crate) fn webhook_wake(&self) -> &tokio::sync::Notify {
        &self.webhook_wake
    }

    // ---- authentication -------------------------------------------------------------------

    /// An agent upload's key. Uses a verification younger than the TTL; when the database is
    /// unreachable, one younger than the offline grace.
    pub async fn authenticate_upload(&self, presented: &str) -> Result<Option<Authenticated>, ControlError> {
        self.authenticate(presented, self.options.offline_grace).await
    }

    /// An admin call's key: the database must have confirmed it within the TTL.
    pub async fn authenticate_admin(&self, presented: &str) -> Result<Option<Principal>, ControlError> {
        Ok(self.authenticate(presented, Duration::ZERO).await?.map(|a| a.principal))
    }

    async fn authenticate(&self, text: &str, grace: Duration) -> Result<Option<Authenticated>, ControlError> {
        let Some(presented) = Presented::parse(text) else {
            return Ok(None);
        };
        let cached = self.cache.lock().expect("not poisoned").get(presented.id).cloned();
        let verify = |c: &Cached| {
            c.record.verify(&presented).map(|principal| Authenticated {
                principal,
                settings: c.settings.clone(),
            })
        };
        let within = |c: &Cached, age: Duration| c.read_at.elapsed() < age;
        if let Some(c) = cached.as_ref().filter(|c| within(c, self.options.auth_ttl)) {
            return Ok(verify(c));
        }
        // While the database is known to be down, uploads use their cached keys. When that
        // window ends, the first caller asks the database again and stretches the window over
        // its attempt, so the others keep going instead of all waiting on a dead database.
        let offline = {
            let mut until = self.offline_until.lock().expect("not poisoned");
            match *until {
                Some(t) if Instant::now() < t => true,
                Some(_) => {
                    *until = Some(Instant::now() + crate::store::ACQUIRE_TIMEOUT + OFFLINE_RETRY);
                    false
                }
                None => false,
            }
        };
        if offline && let Some(c) = cached.as_ref().filter(|c| within(c, grace)) {
            return Ok(verify(c));
        }
        match self.read_key(presented.id).await {
            Ok(Some(c)) => {
                *self.offline_until.lock().expect("not poisoned") = None;
                let answer = verify(&c);
                self.remember(presented.id, c);
                Ok(answer)
            }
            Ok(None) => {
                self.cache.lock().expect("not poisoned").remove(presented.id);
                Ok(None)
            }
            Err(e) if e.is_unavailable() => {
                // A dead database costs a caller the pool's acquire timeout (3 s): let uploads
                // skip it for a while instead of each waiting.
                self.note_unreachable();
                match cached.as_ref().filter(|c| within(c, grace)) {
                    Some(c) => {
                        tracing::warn!(error = %e, "control-plane database unreachable; using a recently verified key");
                        Ok(verify(c))
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Caches what a read found, unless a read that started later is cached already: reads
    /// racing a revocation finish in any order, and an answer read before the revocation must
    /// never replace one read after it.
    fn remember(&self, id: &str, read: Cached) {
        let mut cache = self.cache.lock().expect("not poisoned");
        if cache.get(id).is_none_or(|known| known.read_at <= read.read_at) {
            cache.insert(id.to_owned(), read);
        }
    }

    async fn read_key(&self, id: &str) -> Result<Option<Cached>, ControlError> {
        // Stamped before the query: the answer is at least as new as this instant.
        let read_at = Instant::now();
        let mut tx = self.store.begin_read().await?;
        let Some(record) = records::key(&mut tx, id).await? else {
            return Ok(None);
        };
        let settings = records::settings(&mut tx, Some(&record.tenant))
            .await?
            .remove(&record.tenant)
            .unwrap_or_default();
        tx.commit().await?;
        Ok(Some(Cached {
            record,
            settings,
            read_at,
        }))
    }

    // ---- keys -------------------------------------------------------------------------------

    /// Creates a key; returns the text to hand over once, and its record.
    pub async fn create_key(
        &self,
        context: &AuditContext,
        tenant: &str,
        kind: KeyKind,
        role: Option<Role>,
        upn: Option<&str>,
    ) -> Result<(String, KeyRecord), ControlError> {
        self.create_key_for(context, tenant, kind, role, upn, None).await
    }

    /// Creates a key, an agent key bound to one device when `device` is given (it then speaks
    /// for that device only: its requests and approvals).
    pub async fn create_key_for(
        &self,
        context: &AuditContext,
        tenant: &str,
        kind: KeyKind,
        role: Option<Role>,
        upn: Option<&str>,
        device: Option<&str>,
    ) -> Result<(String, KeyRecord), ControlError> {
        let now = self.now();
        let (text, mut record) = keys::generate(tenant, kind, role, upn, now)?;
        if let Some(device) = device {
            if kind != KeyKind::Agent {
                return Err(ControlError::Invalid(
                    "only agent keys are bound to a device; drop --device".into(),
                ));
            }
            if device.is_empty() || device.len() > 128 || device.chars().any(char::is_control) {
                return Err(ControlError::Invalid(format!(
                    "--device {device:?} must be a device id of 1-128 characters"
                )));
            }
            record.device_id = Some(device.to_owned());
        }
        let mut tx = self.store.begin_write().await?;
        let mut head = audit::lock_head(&mut tx, tenant).await?;
        records::insert_key(&mut tx, &record).await?;
        let new = |v: Option<&str>| v.map(str::to_owned);
        let draft = Draft {
            activity: "createKey",
            operation: "Create",
            result: "success",
            resource_type: "apiKey",
            resource_id: record.id.clone(),
            modified: [
                ModifiedProperty::new("kind", None, new(Some(kind.short()))),
                ModifiedProperty::new("role", None, new(role.map(Role::as_str))),
                ModifiedProperty::new("upn", None, new(upn)),
            ]
            .into_iter()
            .chain(device.map(|d| ModifiedProperty::new("device", None, new(Some(d)))))
            .collect(),
        };
        audit::append(&mut tx, &mut head, context, draft, now).await?;
        tx.commit().await?;
        Ok((text, record))
    }

    /// Every key, of one tenant or of all; never a secret.
    pub async fn list_keys(&self, tenant: Option<&str>) -> Result<Vec<KeyRecord>, ControlError> {
        let mut tx = self.store.begin_read().await?;
        let keys = records::keys(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(keys)
    }

    /// Revokes a key by id. With `tenant`, only that tenant's keys (an admin API call): a key
    /// of another tenant is unknown. This node stops accepting it at once, every other node
    /// within [`ControlOptions::auth_ttl`].
    pub async fn revoke_key(
        &self,
        context: &AuditContext,
        tenant: Option<&str>,
        id: &str,
    ) -> Result<KeyRecord, ControlError> {
        let now = self.now();
        let mut tx = self.store.begin_read().await?;
        let found = records::key(&mut tx, id).await?;
        tx.commit().await?;
        let owner: Option<String> = match (&found, tenant) {
            (Some(key), Some(t)) if key.tenant != t => None,
            (Some(key), _) => Some(key.tenant.clone()),
            (None, _) => None,
        };
        let Some(owner) = owner else {
            if let Some(t) = tenant {
                self.record_failure(context, t, "revokeKey", "Delete", "apiKey", id)
                    .await?;
            }
            return Err(ControlError::UnknownKey(id.into()));
        };
        let mut tx = self.store.begin_write().await?;
        let mut head = audit::lock_head(&mut tx, &owner).await?;
        let before = records::key(&mut tx, id)
            .await?
            .ok_or_else(|| ControlError::UnknownKey(id.into()))?;
        records::revoke_key(&mut tx, id, now).await?;
        let after = records::key(&mut tx, id)
            .await?
            .ok_or_else(|| ControlError::UnknownKey(id.into()))?;
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(crate::store::time_text);
        let draft = Draft {
            activity: "revokeKey",
            operation: "Delete",
            result: "success",
            resource_type: "apiKey",
            resource_id: id.to_owned(),
            modified: vec![ModifiedProperty::new(
                "revokedAt",
                time(before.revoked_at),
                time(after.revoked_at),
            )],
        };
        audit::append(&mut tx, &mut head, context, draft, now).await?;
        tx.commit().await?;
        // This node refuses the key from now on, whatever reads are still in flight.
        self.remember(
            id,
            Cached {
                record: after.clone(),
                settings: TenantSettings::default(),
                read_at: Instant::now(),
            },
        );
        Ok(after)
    }

    // ---- tenants ----------------------------------------------------------------------------

    /// A tenant's settings (the defaults when it has none).
    pub async fn settings_of(&self, tenant: &str) -> Result<TenantSettings, ControlError> {
        Ok(self
            .all_settings_of(Some(tenant))
            .await?
            .remove(tenant)
            .unwrap_or_default())
    }

    /// Settings of every tenant that has any.
    pub async fn tenant_settings(&self) -> Result<BTreeMap<String, TenantSettings>, ControlError> {
        self.all_settings_of(None).await
    }

    async fn all_settings_of(&self, tenant: Option<&str>) -> Result<BTreeMap<String, TenantSettings>, ControlError> {
        let mut tx = self.store.begin_read().await?;
        let settings = records::settings(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(settings)
    }

    /// Changes a tenant's settings with `change`, which gets the current ones; returns the new.
    pub async fn update_settings(
        &self,
        context: &AuditContext,
        tenant: &str,
        change: impl FnOnce(&mut TenantSettings),
    ) -> Result<TenantSettings, ControlError> {
        crate::tenants::check_tenant_name(tenant)?;
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let mut head = audit::lock_head(&mut tx, tenant).await?;
        let old = records::settings(&mut tx, Some(tenant))
            .await?
            .remove(tenant)
            .unwrap_or_default();
        let mut new = old.clone();
        change(&mut new);
        new.check()?;
        records::put_settings(&mut tx, tenant, &new, true, now).await?;
        let modified = old
            .audit_properties()
            .into_iter()
            .zip(new.audit_properties())
            .filter(|(o, n)| o.1 != n.1)
            .map(|(o, n)| ModifiedProperty::new(o.0, Some(o.1), Some(n.1)))
            .collect();
        let draft = Draft {
            activity: "setTenantSettings",
            operation: "Patch",
            result: "success",
            resource_type: "tenantSettings",
            resource_id: tenant.to_owned(),
            modified,
        };
        audit::append(&mut tx, &mut head, context, draft, now).await?;
        tx.commit().await?;
        Ok(new)
    }

    // ---- rules policies ---------------------------------------------------------------------

    /// The rules policies imported for a tenant, by name.
    pub async fn imported_policies(&self, tenant: &str) -> Result<Vec<RulesPolicy>, ControlError> {
        let mut tx = self.store.begin_read().await?;
        let policies = records::policies(&mut tx, tenant).await?;
        tx.commit().await?;
        Ok(policies)
    }

    /// Imports a policy, replacing an earlier import of the same name (importing the current
    /// export of a policy again is harmless). Returns whether it replaced one.
    pub async fn import_policy(
        &self,
        context: &AuditContext,
        tenant: &str,
        policy: &RulesPolicy,
    ) -> Result<bool, ControlError> {
        crate::tenants::check_tenant_name(tenant)?;
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let mut head = audit::lock_head(&mut tx, tenant).await?;
        let old = records::policies(&mut tx, tenant)
            .await?
            .into_iter()
            .find(|p| p.name == policy.name);
        records::put_policy(&mut tx, tenant, policy, true, now).await?;
        let rules = |p: &RulesPolicy| format!("{} rules", p.rules.len());
        let draft = Draft {
            activity: "importRulesPolicy",
            operation: if old.is_some() { "Patch" } else { "Create" },
            result: "success",
            resource_type: "rulesPolicy",
            resource_id: policy.name.clone(),
            modified: vec![ModifiedProperty::new(
                "rules",
                old.as_ref().map(rules),
                Some(rules(policy)),
            )],
        };
        audit::append(&mut tx, &mut head, context, draft, now).await?;
        tx.commit().await?;
        Ok(old.is_some())
    }

    // ---- audit ------------------------------------------------------------------------------

    /// Records an action that changed nothing in the control plane (an export, a compliance
    /// pack). Callers record before handing the result out: an action that cannot be audited
    /// does not happen.
    pub async fn record(&self, context: &AuditContext, tenant: &str, draft: Draft) -> Result<AuditEvent, ControlError> {
        let now = self.now();
        let mut tx = self.store.begin_write().await?;
        let mut head = audit::lock_head(&mut tx, tenant).await?;
        let event = audit::append(&mut tx, &mut head, context, draft, now).await?;
        tx.commit().await?;
        Ok(event)
    }

    async fn record_failure(
        &self,
        context: &AuditContext,
        tenant: &str,
        activity: &'static str,
        operation: &'static str,
        resource_type: &'static str,
        resource_id: &str,
    ) -> Result<(), ControlError> {
        let draft = Draft {
            activity,
            operation,
            result: "failure",
            resource_type,
            resource_id: resource_id.to_owned(),
            modified: Vec::new(),
        };
        self.record(context, tenant, draft).await.map(|_| ())
    }

    /// A tenant's audit entries matching `filter`, in chain order.
    pub async fn audit_list(&self, tenant: &str, filter: &AuditFilter) -> Result<Vec<AuditEvent>, ControlError> {
        let mut tx = self.store.begin_read().await?;
        let events = audit::list(&mut tx, tenant, filter).await?;
        tx.commit().await?;
        Ok(events)
    }

    /// Verifies the chain of one tenant, or of every tenant that has one.
    pub async fn audit_verify(&self, tenant: Option<&str>) -> Result<Vec<Verification>, ControlError> {
        let mut tx = self.store.begin_read().await?;
        let tenants = match tenant {
            Some(t) => vec![t.to_owned()],
            None => audit::tenants(&mut tx).await?,
        };
        let mut verifications = Vec::with_capacity(tenants.len());
        for tenant in tenants {
            verifications.push(audit::verify(&mut tx, &tenant).await?);
        }
        tx.commit().await?;
        Ok(verifications)
    }

    // ---- sessions ---------------------------------------------------------------------------

    /// Signs an admin in for `ttl`; returns the token for the cookie and the session.
    pub async fn create_session(
        &self,
        principal: &Principal,
        ttl: chrono::Duration,
    ) -> Result<(String, Session), ControlError> {
        let mut tx: Tx = self.store.begin_write().await?;
        let created = sessions::create(&mut tx, principal, self.now(), ttl).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// The live session of a token, if any.
    pub async fn session(&self, token: &str) -> Result<Option<Session>, ControlError> {
        let mut tx = self.store.begin_read().await?;
        let session = sessions::lookup(&mut tx, token, self.now()).await?;
        tx.commit().await?;
        Ok(session)
    }

    /// Signs a session out (and clears expired ones).
    pub async fn delete_session(&self, token: &str) -> Result<(), ControlError> {
        let mut tx = self.store.begin_write().await?;
        sessions::delete(&mut tx, token, self.now()).await?;
        tx.commit().await?;
        Ok(())
    }
}
