//! Elevation rules and Intune's elevation rules policy, both ways.
//!
//! An [`ElevationRule`] is what an EPM rule says: which file (name, and optionally path, hash,
//! minimum version, version-info fields, signing certificate), what happens when it is
//! elevated ([`RuleType`]) and what its children may do ([`ChildProcessBehavior`]).
//!
//! [`RulesPolicy::to_intune`] writes a settings-catalog policy that can be POSTed unchanged to
//! Graph's `deviceManagement/configurationPolicies`; [`RulesPolicy::from_intune`] reads such a
//! policy back (our own exports, or a policy an admin exported from Intune), so that the
//! suggestions know rules that never fired. The setting definition ids, template ids and
//! choice values are those of `ecosystem.md` §2 (ennnbeee/EPManager, pelarsen/EPMPolicyBuilder,
//! Microsoft365DSC, the Terraform provider): `{elevationrulename}` is a literal placeholder in
//! every id, and only the first rule carries the template references.
//!
//! Choice values are spelled as Intune spells them: the rule prefix and the option alone
//! (`…_{elevationrulename}_self`, `…_allusers`, `…_allowrunelevatedrulerequired`,
//! `…_issuingauthority`); only signature source and the validation collections carry their
//! setting's name (`…_signaturesource_1`, `…_ruletype_validation_0`). The reader also accepts
//! the spelling of exports written before 2026-12 (`…_ruletype_self`), so those still import.

use serde::{Deserialize, Serialize};

mod intune;
pub use intune::{ImportedPolicy, RULE_COLLECTION_ID, RULES_TEMPLATE_ID};

/// What an elevation rule does: Intune's *Elevation type* (`ruletype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleType {
    /// Elevate silently (Intune requires a file hash).
    Automatic,
    /// Elevate after the user confirms, with the validations the rule asks for.
    UserConfirmed,
    /// Elevate after support approves the user's request.
    SupportApproved,
    /// Elevate under the user's own account after Windows authentication.
    ElevateAsCurrentUser,
    /// Refuse.
    Deny,
}

impl RuleType {
    /// Every rule type, in the order Intune lists them.
    pub const EVERY: [RuleType; 5] = [
        RuleType::UserConfirmed,
        RuleType::Automatic,
        RuleType::SupportApproved,
        RuleType::ElevateAsCurrentUser,
        RuleType::Deny,
    ];

    /// Intune's option name of the `ruletype` choice (the value is the rule prefix and it).
    pub fn intune_choice(self) -> &'static str {
        match self {
            RuleType::Automatic => "automatic",
            RuleType::UserConfirmed => "self",
            RuleType::SupportApproved => "supportarbitrated",
            RuleType::ElevateAsCurrentUser => "userconfirmeduser",
            RuleType::Deny => "deny",
        }
    }

    /// The `elevationType` an elevation decided by this rule reports.
    pub fn elevation_type(self) -> crate::ElevationType {
        match self {
            RuleType::Automatic => crate::ElevationType::Automatic,
            RuleType::UserConfirmed => crate::ElevationType::UserConfirmed,
            RuleType::SupportApproved => crate::ElevationType::SupportApproved,
            RuleType::ElevateAsCurrentUser => crate::ElevationType::ElevateAsCurrentUser,
            RuleType::Deny => crate::ElevationType::Denied,
        }
    }

    /// The camelCase name used in our JSON and CSV.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleType::Automatic => "automatic",
            RuleType::UserConfirmed => "userConfirmed",
            RuleType::SupportApproved => "supportApproved",
            RuleType::ElevateAsCurrentUser => "elevateAsCurrentUser",
            RuleType::Deny => "deny",
        }
    }
}

/// What a user-confirmed rule asks of the user before elevating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Validation {
    /// A business justification (Intune's `validation_0`).
    BusinessJustification,
    /// Windows authentication (Intune's `validation_1`).
    WindowsAuthentication,
}

/// What processes an elevated file starts may do: Intune's *Child process behavior*.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChildProcessBehavior {
    /// A child needs a rule of its own (Intune's default).
    RequireRule,
    /// Every child runs elevated.
    AllowAll,
    /// No child runs elevated.
    DenyAll,
}

impl ChildProcessBehavior {
    /// Every behaviour.
    pub const EVERY: [ChildProcessBehavior; 3] = [
        ChildProcessBehavior::RequireRule,
        ChildProcessBehavior::AllowAll,
        ChildProcessBehavior::DenyAll,
    ];

    /// Intune's option name of the `childprocessbehavior` choice (`deny` is spelled like the
    /// rule type's: each choice is read on its own).
    pub fn intune_choice(self) -> &'static str {
        match self {
            ChildProcessBehavior::RequireRule => "allowrunelevatedrulerequired",
            ChildProcessBehavior::AllowAll => "allowrunelevated",
            ChildProcessBehavior::DenyAll => "deny",
        }
    }
}

/// Which certificate of the file's signature a rule trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CertificateType {
    /// The publisher's own certificate.
    Publisher,
    /// The issuing certificate authority.
    IssuingAuthority,
}

/// A certificate a rule trusts: uploaded with the rule (Intune's *signature source* 1), or a
/// reusable certificate settings group of the tenant (signature source 0).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// The uploaded certificate as the agent reported it in `certificatePayload`; empty when
    /// the rule names a reusable settings group instead (its content is not in the policy).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub payload: String,
    /// The id of the reusable certificate settings group, for signature source 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reusable_setting_id: Option<String>,
    /// Publisher or issuing authority.
    pub certificate_type: CertificateType,
}

impl Certificate {
    /// A certificate uploaded with the rule (signature source 1).
    pub fn uploaded(payload: impl Into<String>, certificate_type: CertificateType) -> Certificate {
        Certificate {
            payload: payload.into(),
            reusable_setting_id: None,
            certificate_type,
        }
    }
}

impl CertificateType {
    /// Intune's option name of the `certificatetype` choice.
    pub fn intune_choice(self) -> &'static str {
        match self {
            CertificateType::Publisher => "publisher",
            CertificateType::IssuingAuthority => "issuingauthority",
        }
    }
}

/// One elevation rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElevationRule {
    /// Rule name (required by Intune).
    pub name: String,
    /// Free text; our exports say why the rule is proposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The file name the rule matches, e.g. `git.exe` (required by Intune).
    pub file_name: String,
    /// The folder the file must be in, when the rule requires one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
    /// SHA-256 the file must have (upper-case hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_hash: Option<String>,
    /// Minimum file version, `x.x.x.x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    /// Version-info file description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_description: Option<String>,
    /// Version-info product name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    /// Version-info internal name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_name: Option<String>,
    /// What happens when the file is elevated.
    pub rule_type: RuleType,
    /// What a user-confirmed rule asks for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validations: Vec<Validation>,
    /// What the file's children may do.
    pub child_process_behavior: ChildProcessBehavior,
    /// The signing certificate the rule trusts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
}

impl ElevationRule {
    /// Whether an elevation of `file_name` with `hash` and `version` is one this rule names
    /// (file name case-insensitively; hash and minimum version when the rule sets them).
    pub fn names(&self, file_name: &str, hash: &str, version: Option<&str>) -> bool {
        self.file_name.eq_ignore_ascii_case(file_name)
            && self.file_hash.as_deref().is_none_or(|h| h.eq_ignore_ascii_case(hash))
            && self
                .min_version
                .as_deref()
                .is_none_or(|min| version.is_some_and(|v| version_at_least(v, min)))
    }
}

/// Compares dotted versions numerically: `10.0.1.0` ≥ `9.9.9.9`; missing parts count as 0.
pub fn version_at_least(version: &str, min: &str) -> bool {
    compare_versions(version, min) != std::cmp::Ordering::Less
}

/// Orders dotted versions numerically (`9.1` < `10.0`); non-numeric parts count as 0.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    let parse = |v: &str| {
        v.split('.')
            .map(|p| p.trim().parse::<u64>().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    let (mut a, mut b) = (parse(a), parse(b));
    let len = a.len().max(b.len());
    a.resize(len, 0);
    b.resize(len, 0);
    a.cmp(&b)
}

/// An elevation rules policy: a name and its rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RulesPolicy {
    /// Policy name; elevations decided by its rules report it as `policyName`.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its rules.
    pub rules: Vec<ElevationRule>,
}

/// Why a policy file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// The document is not an elevation rules policy.
    #[error("not an Intune elevation rules policy: {0}")]
    NotARulesPolicy(String),
    /// One rule is unusable.
    #[error("{rule} of policy {policy:?}: {reason}")]
    BadRule {
        /// The policy.
        policy: String,
        /// The rule: its 0-based position, and its name when it has one.
        rule: String,
        /// What is wrong.
        reason: String,
    },
}

/// EPManager's `ElevationType` column for a rule type (`None` for types EPManager cannot
/// import: deny and elevate as current user).
pub fn epmanager_elevation_type(rule: &ElevationRule) -> Option<&'static str> {
    match rule.rule_type {
        RuleType::Automatic => Some("Automatic"),
        RuleType::SupportApproved => Some("SupportApproved"),
        RuleType::UserConfirmed if rule.validations.contains(&Validation::WindowsAuthentication) => {
            Some("UserAuthentication")
        }
        RuleType::UserConfirmed => Some("UserJustification"),
        RuleType::ElevateAsCurrentUser | RuleType::Deny => None,
    }
}

/// EPManager's `ChildProcessBehaviour` column.
pub fn epmanager_child_behaviour(behavior: ChildProcessBehavior) -> &'static str {
    match behavior {
        ChildProcessBehavior::RequireRule => "RequireRule",
        ChildProcessBehavior::AllowAll => "AllowAll",
        ChildProcessBehavior::DenyAll => "DenyAll",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("10.0.0.0", "9.9.9.9"));
        assert!(version_at_least("5.1", "5.1.0.0"));
        assert!(!version_at_least("5.0.9", "5.1"));
    }
}
