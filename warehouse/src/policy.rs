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
//! Microsoft365DSC): `{elevationrulename}` is a literal placeholder in every id, and only the
//! first rule carries the template references.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

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

    /// The suffix of the `ruletype` choice value in Intune's policy.
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

impl Validation {
    fn index(self) -> u8 {
        match self {
            Validation::BusinessJustification => 0,
            Validation::WindowsAuthentication => 1,
        }
    }
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

    /// The suffix of the `childprocessbehavior` choice value.
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

/// A certificate a rule trusts, uploaded with the rule (Intune's *signature source* 1).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// The certificate as the agent reported it in `certificatePayload`.
    pub payload: String,
    /// Publisher or issuing authority.
    pub certificate_type: CertificateType,
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
    #[error("rule {index} of policy {policy:?}: {reason}")]
    BadRule {
        /// The policy.
        policy: String,
        /// 0-based position of the rule.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Intune's template of elevation rules policies.
pub const RULES_TEMPLATE_ID: &str = "cff02aad-51b1-498d-83ad-81161a393f56_1";
/// The rule collection's setting definition (the placeholder is literal).
pub const RULE_COLLECTION_ID: &str = "device_vendor_msft_policy_privilegemanagement_elevationrules_{elevationrulename}";
const RULE_COLLECTION_TEMPLATE: &str = "ee3d2e5f-6b3d-4cb1-af9b-37b02d3dbae2";

const SIMPLE: &str = "#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance";
const STRING_VALUE: &str = "#microsoft.graph.deviceManagementConfigurationStringSettingValue";
const CHOICE: &str = "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance";
const CHOICE_COLLECTION: &str = "#microsoft.graph.deviceManagementConfigurationChoiceSettingCollectionInstance";

/// (child suffix, instance template id, value template id) of the settings the first rule
/// references in Intune's template.
const TEMPLATE_IDS: &[(&str, &str, &str)] = &[
    (
        "name",
        "fdabfcf9-afa4-4dbf-a4ef-d5c1549065e1",
        "03f003e5-43ef-4e7e-bf30-57f00781fdcc",
    ),
    (
        "description",
        "b3714f3a-ead8-4682-a16f-ffa264c9d58f",
        "5e82a1e9-ef4f-43ea-8031-93aace2ad14d",
    ),
    (
        "filename",
        "0c1ceb2b-bbd4-46d4-9ba5-9ee7abe1f094",
        "a165327c-f0e5-4c7d-9af1-d856b02191f7",
    ),
    (
        "filepath",
        "c3b7fda4-db6a-421d-bf04-d485e9d0cfb1",
        "f011bcfc-03cd-4b28-a1f4-305278d7a030",
    ),
    (
        "filehash",
        "e4436e2c-1584-4fba-8e38-78737cbbbfdf",
        "1adcc6f7-9fa4-4ce3-8941-2ce22cf5e404",
    ),
    (
        "fileversion",
        "4a36432a-ad41-4ea6-b69f-05655afc43d2",
        "9d5c2849-fa98-437c-92f6-abee4e9b8a0c",
    ),
    (
        "filedescription",
        "5e10c5a9-d3ca-4684-b425-e52238cf3c8b",
        "df3081ea-4ea7-4f34-ac87-49b2e84d4c4b",
    ),
    (
        "productname",
        "234631a1-aeb1-436f-9e05-dcd9489caf08",
        "e466f96d-0633-40b3-86a4-9e093b696077",
    ),
    (
        "internalname",
        "08511f12-25b5-4218-812c-39a2db444ef1",
        "ec295dd4-6bbc-4fa8-a503-960784c53f41",
    ),
    (
        "appliesto",
        "0cde1c42-c701-44b1-94b7-438dd4536128",
        "2ec26569-c08f-434c-af3d-a50ac4a1ce26",
    ),
    (
        "ruletype",
        "bc5a31ac-95b5-4ec6-be1f-50a384bb165f",
        "cb2ea689-ebc3-42ea-a7a4-c704bb13e3ad",
    ),
    (
        "signaturesource",
        "beb74dcd-b6c8-41b1-a95d-0874e96951e0",
        "437fac65-8d18-433c-bd51-8edd33038082",
    ),
    (
        "certificatetype",
        "ea3b1b52-411c-4d89-80e9-c2289e59a97f",
        "e36c490a-62b5-4b8c-8b2a-f099fad4441b",
    ),
];

fn definition(suffix: &str) -> String {
    format!("{RULE_COLLECTION_ID}_{suffix}")
}

/// Writes the settings-catalog children of one rule.
struct ChildWriter {
    first_rule: bool,
}

impl ChildWriter {
    fn templates(&self, suffix: &str) -> (Value, Value) {
        let ids = TEMPLATE_IDS.iter().find(|(s, _, _)| *s == suffix);
        match (self.first_rule, ids) {
            (true, Some((_, instance, value))) => (
                json!({ "settingInstanceTemplateId": instance }),
                json!({ "settingValueTemplateId": value, "useTemplateDefault": false }),
            ),
            _ => (Value::Null, Value::Null),
        }
    }

    fn simple(&self, suffix: &str, value: &str) -> Value {
        let (instance, value_template) = self.templates(suffix);
        json!({
            "@odata.type": SIMPLE,
            "settingDefinitionId": definition(suffix),
            "settingInstanceTemplateReference": instance,
            "simpleSettingValue": {
                "@odata.type": STRING_VALUE,
                "value": value,
                "settingValueTemplateReference": value_template,
            },
        })
    }

    fn choice(&self, suffix: &str, value_suffix: &str, children: Vec<Value>) -> Value {
        let (instance, value_template) = self.templates(suffix);
        json!({
            "@odata.type": CHOICE,
            "settingDefinitionId": definition(suffix),
            "settingInstanceTemplateReference": instance,
            "choiceSettingValue": {
                "value": definition(&format!("{suffix}_{value_suffix}")),
                "settingValueTemplateReference": value_template,
                "children": children,
            },
        })
    }

    fn choices(&self, suffix: &str, values: &[String]) -> Value {
        json!({
            "@odata.type": CHOICE_COLLECTION,
            "settingDefinitionId": definition(suffix),
            "settingInstanceTemplateReference": null,
            "choiceSettingCollectionValue": values
                .iter()
                .map(|v| json!({ "value": definition(&format!("{suffix}_{v}")), "children": [] }))
                .collect::<Vec<_>>(),
        })
    }

    fn rule(&self, rule: &ElevationRule) -> Value {
        let mut children = vec![self.simple("name", &rule.name)];
        let optional = [
            ("description", &rule.description),
            ("filename", &Some(rule.file_name.clone())),
            ("filepath", &rule.file_path),
            ("filehash", &rule.file_hash),
            ("fileversion", &rule.min_version),
            ("filedescription", &rule.file_description),
            ("productname", &rule.product_name),
            ("internalname", &rule.internal_name),
        ];
        for (suffix, value) in optional {
            if let Some(value) = value {
                children.push(self.simple(suffix, value));
            }
        }
        children.push(self.choice("appliesto", "allusers", Vec::new()));
        let validations: Vec<String> = rule.validations.iter().map(|v| v.index().to_string()).collect();
        let rule_type_children = match rule.rule_type {
            RuleType::UserConfirmed if !validations.is_empty() => {
                vec![self.choices("ruletype_validation", &validations)]
            }
            RuleType::ElevateAsCurrentUser if !validations.is_empty() => {
                vec![self.choices("ruletype_userconfirmeduservalidation", &validations)]
            }
            _ => Vec::new(),
        };
        children.push(self.choice("ruletype", rule.rule_type.intune_choice(), rule_type_children));
        children.push(self.choice(
            "childprocessbehavior",
            rule.child_process_behavior.intune_choice(),
            Vec::new(),
        ));
        if let Some(certificate) = &rule.certificate {
            let kind = match certificate.certificate_type {
                CertificateType::Publisher => "publisher",
                CertificateType::IssuingAuthority => "issuingauthority",
            };
            children.push(self.choice(
                "signaturesource",
                "1",
                vec![
                    self.simple("certificatefileupload", &certificate.payload),
                    self.choice("certificatetype", kind, Vec::new()),
                ],
            ));
        }
        json!({ "settingValueTemplateReference": null, "children": children })
    }
}

impl RulesPolicy {
    /// The policy as a Graph `configurationPolicies` POST body.
    pub fn to_intune(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, rule)| ChildWriter { first_rule: i == 0 }.rule(rule))
            .collect();
        json!({
            "name": self.name,
            "description": self.description.clone().unwrap_or_default(),
            "platforms": "windows10",
            "technologies": "endpointPrivilegeManagement",
            "roleScopeTagIds": ["0"],
            "templateReference": { "templateId": RULES_TEMPLATE_ID },
            "settings": [{
                "@odata.type": "#microsoft.graph.deviceManagementConfigurationSetting",
                "settingInstance": {
                    "@odata.type": "#microsoft.graph.deviceManagementConfigurationGroupSettingCollectionInstance",
                    "settingDefinitionId": RULE_COLLECTION_ID,
                    "settingInstanceTemplateReference": { "settingInstanceTemplateId": RULE_COLLECTION_TEMPLATE },
                    "groupSettingCollectionValue": rules,
                },
            }],
        })
    }

    /// Reads an elevation rules policy: a Graph `configurationPolicies` body, as we export it
    /// or as Graph returns it (extra fields such as `id` are ignored). Settings that are not
    /// elevation rules are ignored; a rule without a name or file name, or with an unknown
    /// rule type, is refused with its position.
    pub fn from_intune(document: &Value) -> Result<RulesPolicy, PolicyError> {
        let name = document
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| PolicyError::NotARulesPolicy("it has no \"name\"".into()))?
            .to_owned();
        let settings = document
            .get("settings")
            .and_then(Value::as_array)
            .ok_or_else(|| PolicyError::NotARulesPolicy("it has no \"settings\" array".into()))?;
        let description = document
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        let mut rules = Vec::new();
        let mut found_collection = false;
        for setting in settings {
            let instance = &setting["settingInstance"];
            if instance["settingDefinitionId"].as_str() != Some(RULE_COLLECTION_ID) {
                continue;
            }
            found_collection = true;
            let values = instance["groupSettingCollectionValue"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for value in values {
                let index = rules.len();
                let bad = |reason: String| PolicyError::BadRule {
                    policy: name.clone(),
                    index,
                    reason,
                };
                let children = value["children"].as_array().cloned().unwrap_or_default();
                rules.push(read_rule(&children).map_err(bad)?);
            }
        }
        if !found_collection {
            return Err(PolicyError::NotARulesPolicy(format!(
                "no setting {RULE_COLLECTION_ID} (is it an elevation settings policy?)"
            )));
        }
        Ok(RulesPolicy {
            name,
            description,
            rules,
        })
    }
}

/// The part of a setting definition id after the rule collection's prefix.
fn suffix_of(child: &Value) -> Option<&str> {
    child["settingDefinitionId"]
        .as_str()?
        .strip_prefix(RULE_COLLECTION_ID)?
        .strip_prefix('_')
}

fn choice_suffix<'a>(value: &'a Value, setting: &str) -> Option<&'a str> {
    value["value"]
        .as_str()?
        .strip_prefix(RULE_COLLECTION_ID)?
        .strip_prefix('_')?
        .strip_prefix(setting)?
        .strip_prefix('_')
}

fn read_rule(children: &[Value]) -> Result<ElevationRule, String> {
    let mut text = std::collections::BTreeMap::new();
    let mut rule_type = None;
    let mut validations = Vec::new();
    let mut child_process_behavior = ChildProcessBehavior::RequireRule;
    let mut certificate_payload = None;
    let mut certificate_type = CertificateType::Publisher;
    for child in children {
        let Some(suffix) = suffix_of(child) else { continue };
        if let Some(value) = child["simpleSettingValue"]["value"].as_str() {
            text.insert(suffix.to_owned(), value.to_owned());
            continue;
        }
        let choice = &child["choiceSettingValue"];
        match suffix {
            "ruletype" => {
                let value = choice_suffix(choice, "ruletype").unwrap_or_default();
                rule_type = Some(
                    RuleType::EVERY
                        .into_iter()
                        .find(|t| t.intune_choice() == value)
                        .ok_or_else(|| format!("unknown rule type {value:?}"))?,
                );
                for nested in choice["children"].as_array().into_iter().flatten() {
                    let Some(setting) = suffix_of(nested) else { continue };
                    for picked in nested["choiceSettingCollectionValue"].as_array().into_iter().flatten() {
                        match choice_suffix(picked, setting) {
                            Some("0") => validations.push(Validation::BusinessJustification),
                            Some("1") => validations.push(Validation::WindowsAuthentication),
                            other => return Err(format!("unknown validation {other:?}")),
                        }
                    }
                }
            }
            "childprocessbehavior" => {
                let value = choice_suffix(choice, "childprocessbehavior").unwrap_or_default();
                child_process_behavior = ChildProcessBehavior::EVERY
                    .into_iter()
                    .find(|b| b.intune_choice() == value)
                    .ok_or_else(|| format!("unknown child process behaviour {value:?}"))?;
            }
            "signaturesource" => {
                for nested in choice["children"].as_array().into_iter().flatten() {
                    match suffix_of(nested) {
                        Some("certificatefileupload") => {
                            certificate_payload = nested["simpleSettingValue"]["value"].as_str().map(str::to_owned);
                        }
                        Some("certificatetype")
                            if choice_suffix(&nested["choiceSettingValue"], "certificatetype")
                                == Some("issuingauthority") =>
                        {
                            certificate_type = CertificateType::IssuingAuthority;
                        }
                        // A reusable certificate group is a reference we cannot resolve here.
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let name = text.remove("name").filter(|n| !n.is_empty()).ok_or("it has no name")?;
    let file_name = text
        .remove("filename")
        .filter(|n| !n.is_empty())
        .ok_or("it has no file name")?;
    Ok(ElevationRule {
        name,
        description: text.remove("description"),
        file_name,
        file_path: text.remove("filepath"),
        file_hash: text.remove("filehash").map(|h| h.to_ascii_uppercase()),
        min_version: text.remove("fileversion"),
        file_description: text.remove("filedescription"),
        product_name: text.remove("productname"),
        internal_name: text.remove("internalname"),
        rule_type: rule_type.ok_or("it has no rule type")?,
        validations,
        child_process_behavior,
        certificate: certificate_payload.map(|payload| Certificate {
            payload,
            certificate_type,
        }),
    })
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

    fn every_kind_of_rule() -> RulesPolicy {
        let base = ElevationRule {
            name: "Git (git.exe)".into(),
            description: Some("developers rebase".into()),
            file_name: "git.exe".into(),
            file_path: Some("C:\\Program Files\\Git\\bin".into()),
            file_hash: Some("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08".into()),
            min_version: None,
            file_description: Some("Git for Windows".into()),
            product_name: Some("Git".into()),
            internal_name: Some("git".into()),
            rule_type: RuleType::Automatic,
            validations: Vec::new(),
            child_process_behavior: ChildProcessBehavior::AllowAll,
            certificate: None,
        };
        let mut rules = vec![base.clone()];
        for (i, rule_type) in RuleType::EVERY.into_iter().enumerate() {
            let mut rule = base.clone();
            rule.name = format!("rule {i}");
            rule.rule_type = rule_type;
            rule.file_hash = None;
            rule.description = None;
            rule.min_version = Some("2.40.0.0".into());
            rule.child_process_behavior = ChildProcessBehavior::EVERY[i % 3];
            rule.certificate = Some(Certificate {
                payload: format!("CERT{i}"),
                certificate_type: if i % 2 == 0 {
                    CertificateType::Publisher
                } else {
                    CertificateType::IssuingAuthority
                },
            });
            if matches!(rule_type, RuleType::UserConfirmed | RuleType::ElevateAsCurrentUser) {
                rule.validations = vec![Validation::BusinessJustification, Validation::WindowsAuthentication];
            }
            rules.push(rule);
        }
        RulesPolicy {
            name: "Developer tools".into(),
            description: Some("exported".into()),
            rules,
        }
    }

    #[test]
    fn a_policy_reads_back_as_the_same_rules() {
        let policy = every_kind_of_rule();
        let json = policy.to_intune();
        assert_eq!(RulesPolicy::from_intune(&json), Ok(policy));
    }

    #[test]
    fn only_the_first_rule_carries_template_references() {
        let json = every_kind_of_rule().to_intune();
        let rules = json["settings"][0]["settingInstance"]["groupSettingCollectionValue"]
            .as_array()
            .expect("rules");
        let name_template = |rule: &Value| rule["children"][0]["settingInstanceTemplateReference"].clone();
        assert_eq!(
            name_template(&rules[0])["settingInstanceTemplateId"],
            "fdabfcf9-afa4-4dbf-a4ef-d5c1549065e1"
        );
        assert!(rules[1..].iter().all(|r| name_template(r).is_null()));
        assert_eq!(json["templateReference"]["templateId"], RULES_TEMPLATE_ID);
        let rule_type = &rules[0]["children"]
            .as_array()
            .expect("children")
            .iter()
            .find(|c| suffix_of(c) == Some("ruletype"))
            .expect("rule type")["choiceSettingValue"]["value"];
        assert_eq!(
            rule_type,
            "device_vendor_msft_policy_privilegemanagement_elevationrules_{elevationrulename}_ruletype_automatic"
        );
    }

    #[test]
    fn unusable_policies_are_refused_with_the_reason() {
        let err = RulesPolicy::from_intune(&json!({ "name": "x" })).unwrap_err();
        assert!(err.to_string().contains("no \"settings\""), "{err}");
        let err = RulesPolicy::from_intune(&json!({ "name": "x", "settings": [] })).unwrap_err();
        assert!(err.to_string().contains("elevation settings policy"), "{err}");
        let mut json = every_kind_of_rule().to_intune();
        let children = json["settings"][0]["settingInstance"]["groupSettingCollectionValue"][2]["children"]
            .as_array_mut()
            .expect("children");
        children.retain(|c| suffix_of(c) != Some("filename"));
        let err = RulesPolicy::from_intune(&json).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rule 2 of policy \"Developer tools\": it has no file name"
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("10.0.0.0", "9.9.9.9"));
        assert!(version_at_least("5.1", "5.1.0.0"));
        assert!(!version_at_least("5.0.9", "5.1"));
    }

    #[test]
    fn rules_name_files_by_name_hash_and_minimum_version() {
        let policy = every_kind_of_rule();
        let pinned = &policy.rules[0];
        assert!(pinned.names("GIT.EXE", &pinned.file_hash.clone().unwrap().to_lowercase(), None));
        assert!(!pinned.names("git.exe", "00", None));
        let versioned = &policy.rules[1];
        assert!(versioned.names("git.exe", "00", Some("2.47.0.0")));
        assert!(!versioned.names("git.exe", "00", Some("2.39.9.0")));
        assert!(!versioned.names("git.exe", "00", None));
    }
}
