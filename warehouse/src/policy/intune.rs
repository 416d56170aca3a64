//! Intune's settings-catalog JSON for elevation rules policies, both ways:
//! [`RulesPolicy::to_intune`] and [`RulesPolicy::from_intune`] (see the parent module for
//! where the ids and choice values come from).

use serde_json::{Value, json};

use super::{
    Certificate, CertificateType, ChildProcessBehavior, ElevationRule, PolicyError, RuleType, RulesPolicy, Validation,
};

/// Intune's template of elevation rules policies.
pub const RULES_TEMPLATE_ID: &str = "cff02aad-51b1-498d-83ad-81161a393f56_1";
/// The rule collection's setting definition (the placeholder is literal).
pub const RULE_COLLECTION_ID: &str = "device_vendor_msft_policy_privilegemanagement_elevationrules_{elevationrulename}";
const RULE_COLLECTION_TEMPLATE: &str = "ee3d2e5f-6b3d-4cb1-af9b-37b02d3dbae2";

const SIMPLE: &str = "#microsoft.graph.deviceManagementConfigurationSimpleSettingInstance";
const STRING_VALUE: &str = "#microsoft.graph.deviceManagementConfigurationStringSettingValue";
const CHOICE: &str = "#microsoft.graph.deviceManagementConfigurationChoiceSettingInstance";
const CHOICE_COLLECTION: &str = "#microsoft.graph.deviceManagementConfigurationChoiceSettingCollectionInstance";
const CHOICE_VALUE: &str = "#microsoft.graph.deviceManagementConfigurationChoiceSettingValue";
const REFERENCE_VALUE: &str = "#microsoft.graph.deviceManagementConfigurationReferenceSettingValue";

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

/// The settings of a user-confirmed rule's validations, and of elevate-as-current-user's, as
/// (validation, setting suffix, option suffix). Intune writes both user-confirmed validations
/// into one collection; elevate as current user keeps Windows authentication (always asked)
/// and the justification in two collections (pelarsen/EPMPolicyBuilder's writer).
const VALIDATION_SETTINGS: &[(RuleType, Validation, &str, &str)] = &[
    (
        RuleType::UserConfirmed,
        Validation::BusinessJustification,
        "ruletype_validation",
        "ruletype_validation_0",
    ),
    (
        RuleType::UserConfirmed,
        Validation::WindowsAuthentication,
        "ruletype_validation",
        "ruletype_validation_1",
    ),
    (
        RuleType::ElevateAsCurrentUser,
        Validation::WindowsAuthentication,
        "ruletype_userconfirmeduservalidation",
        "ruletype_userconfirmeduservalidation_0",
    ),
    (
        RuleType::ElevateAsCurrentUser,
        Validation::BusinessJustification,
        "ruletype_userconfirmeduservalidation_2",
        "ruletype_userconfirmeduservalidation_2_0",
    ),
];

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

    /// A choice setting whose value is `definition(option)`: Intune's options are the rule
    /// prefix and the option alone, or carry the setting's name where Intune's do.
    fn choice(&self, suffix: &str, option: &str, children: Vec<Value>) -> Value {
        let (instance, value_template) = self.templates(suffix);
        json!({
            "@odata.type": CHOICE,
            "settingDefinitionId": definition(suffix),
            "settingInstanceTemplateReference": instance,
            "choiceSettingValue": {
                "@odata.type": CHOICE_VALUE,
                "value": definition(option),
                "settingValueTemplateReference": value_template,
                "children": children,
            },
        })
    }

    fn choices(&self, suffix: &str, options: &[&str]) -> Value {
        json!({
            "@odata.type": CHOICE_COLLECTION,
            "settingDefinitionId": definition(suffix),
            "settingInstanceTemplateReference": null,
            "choiceSettingCollectionValue": options
                .iter()
                .map(|o| json!({ "@odata.type": CHOICE_VALUE, "value": definition(o), "children": [] }))
                .collect::<Vec<_>>(),
        })
    }

    /// The validation collections of a rule type, in the order of [`VALIDATION_SETTINGS`].
    fn validations(&self, rule: &ElevationRule) -> Vec<Value> {
        let mut collections: Vec<(&str, Vec<&str>)> = Vec::new();
        for (rule_type, validation, setting, option) in VALIDATION_SETTINGS {
            if *rule_type != rule.rule_type || !rule.validations.contains(validation) {
                continue;
            }
            match collections.iter_mut().find(|(s, _)| s == setting) {
                Some((_, options)) => options.push(option),
                None => collections.push((setting, vec![option])),
            }
        }
        collections
            .into_iter()
            .map(|(setting, options)| self.choices(setting, &options))
            .collect()
    }

    fn certificate(&self, certificate: &Certificate) -> Value {
        let certificate_type = self.choice(
            "certificatetype",
            certificate.certificate_type.intune_choice(),
            Vec::new(),
        );
        match &certificate.reusable_setting_id {
            Some(id) => {
                let reference = json!({
                    "@odata.type": SIMPLE,
                    "settingDefinitionId": definition("certificatepayloadwithreusablesetting"),
                    "simpleSettingValue": { "@odata.type": REFERENCE_VALUE, "value": id },
                });
                self.choice(
                    "signaturesource",
                    "signaturesource_0",
                    vec![reference, certificate_type],
                )
            }
            None => self.choice(
                "signaturesource",
                "signaturesource_1",
                vec![
                    self.simple("certificatefileupload", &certificate.payload),
                    certificate_type,
                ],
            ),
        }
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
        children.push(self.choice("ruletype", rule.rule_type.intune_choice(), self.validations(rule)));
        children.push(self.choice(
            "childprocessbehavior",
            rule.child_process_behavior.intune_choice(),
            Vec::new(),
        ));
        if let Some(certificate) = &rule.certificate {
            children.push(self.certificate(certificate));
        }
        json!({ "settingValueTemplateReference": null, "children": children })
    }
}

/// A policy read from Intune's JSON, with what the reader passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedPolicy {
    /// The policy and its rules.
    pub policy: RulesPolicy,
    /// Settings kept out of the rules (unknown to this version, such as argument
    /// restrictions) and values that will match nothing, one sentence each.
    pub warnings: Vec<String>,
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

    /// Reads an elevation rules policy and drops what the reader warns about; see
    /// [`RulesPolicy::read_intune`].
    pub fn from_intune(document: &Value) -> Result<RulesPolicy, PolicyError> {
        RulesPolicy::read_intune(document).map(|imported| imported.policy)
    }

    /// Reads an elevation rules policy: a Graph `configurationPolicies` body, as Intune, Graph,
    /// Microsoft365DSC, the Terraform provider or community scripts write it, or as we export
    /// it (extra fields such as `id` are ignored; rules may share one settings entry or each
    /// have their own). Lenient where Intune is: a setting this version does not know (say an
    /// argument restriction) is left out of the rule with a warning, and `@odata.type` may be
    /// missing anywhere. Strict where it matters: a rule without a name, file name or rule
    /// type, or with an option Intune does not have, is refused, naming the rule.
    pub fn read_intune(document: &Value) -> Result<ImportedPolicy, PolicyError> {
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
        let mut warnings = Vec::new();
        let mut found_collection = false;
        for setting in settings {
            let instance = &setting["settingInstance"];
            if instance["settingDefinitionId"].as_str() != Some(RULE_COLLECTION_ID) {
                continue;
            }
            found_collection = true;
            for value in instance["groupSettingCollectionValue"].as_array().into_iter().flatten() {
                let index = rules.len();
                let children = value["children"].as_array().map(Vec::as_slice).unwrap_or_default();
                let mut reader = RuleReader::default();
                let read = reader.read(children);
                let label = match &reader.name {
                    Some(rule_name) => format!("rule {index} ({rule_name:?})"),
                    None => format!("rule {index}"),
                };
                let rule = read.map_err(|reason| PolicyError::BadRule {
                    policy: name.clone(),
                    rule: label.clone(),
                    reason,
                })?;
                warnings.extend(reader.warnings.into_iter().map(|w| format!("{label}: {w}")));
                rules.push(rule);
            }
        }
        if !found_collection {
            return Err(PolicyError::NotARulesPolicy(format!(
                "no setting {RULE_COLLECTION_ID} (is it an elevation settings policy?)"
            )));
        }
        Ok(ImportedPolicy {
            policy: RulesPolicy {
                name,
                description,
                rules,
            },
            warnings,
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

/// The option a choice value names: the part after the rule prefix, without the setting's
/// name where an older export of ours put it (`ruletype_self` and Intune's `self` both give
/// `self`).
fn option_of<'a>(value: &'a Value, setting: &str) -> Option<&'a str> {
    let option = value["value"]
        .as_str()?
        .strip_prefix(RULE_COLLECTION_ID)?
        .strip_prefix('_')?;
    Some(
        option
            .strip_prefix(setting)
            .and_then(|rest| rest.strip_prefix('_'))
            .unwrap_or(option),
    )
}

/// Reads one rule's children, remembering its name as soon as it is known so that an error
/// can name the rule.
#[derive(Default)]
struct RuleReader {
    name: Option<String>,
    warnings: Vec<String>,
}

impl RuleReader {
    fn read(&mut self, children: &[Value]) -> Result<ElevationRule, String> {
        let mut text = std::collections::BTreeMap::new();
        for child in children {
            if let (Some(suffix), Some(value)) = (suffix_of(child), child["simpleSettingValue"]["value"].as_str()) {
                text.insert(suffix.to_owned(), value.to_owned());
            }
        }
        self.name = text.get("name").filter(|n| !n.trim().is_empty()).cloned();
        let mut rule_type = None;
        let mut validations = Vec::new();
        // Intune's default when the setting is not configured: a child needs its own rule.
        let mut child_process_behavior = ChildProcessBehavior::RequireRule;
        let mut certificate = None;
        for child in children {
            let Some(suffix) = suffix_of(child) else {
                self.warnings.push(format!(
                    "setting {:?} is not an elevation rule setting; left out",
                    child["settingDefinitionId"].as_str().unwrap_or("")
                ));
                continue;
            };
            let choice = &child["choiceSettingValue"];
            match suffix {
                "name" | "description" | "filename" | "filepath" | "filehash" | "fileversion" | "filedescription"
                | "productname" | "internalname" => {}
                "appliesto" => match option_of(choice, "appliesto") {
                    Some("allusers") => {}
                    other => return Err(format!("applies to {other:?} is not Intune's \"allusers\"")),
                },
                "ruletype" => {
                    let option = option_of(choice, "ruletype").unwrap_or_default();
                    let found = RuleType::EVERY
                        .into_iter()
                        .find(|t| t.intune_choice() == option)
                        .ok_or_else(|| format!("unknown rule type {option:?}"))?;
                    rule_type = Some(found);
                    for nested in choice["children"].as_array().into_iter().flatten() {
                        validations.extend(self.validations(found, nested)?);
                    }
                }
                "childprocessbehavior" => {
                    let option = option_of(choice, "childprocessbehavior").unwrap_or_default();
                    child_process_behavior = ChildProcessBehavior::EVERY
                        .into_iter()
                        .find(|b| b.intune_choice() == option)
                        .ok_or_else(|| format!("unknown child process behaviour {option:?}"))?;
                }
                "signaturesource" => certificate = self.certificate(choice)?,
                other => self
                    .warnings
                    .push(format!("setting {other:?} is not known to this version; left out")),
            }
        }
        let name = self.name.clone().ok_or("it has no name")?;
        let file_name = text
            .remove("filename")
            .filter(|n| !n.trim().is_empty())
            .ok_or("it has no file name")?;
        let file_hash = text.remove("filehash").filter(|h| !h.is_empty()).map(|h| {
            if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) {
                h.to_ascii_uppercase()
            } else {
                self.warnings.push(format!(
                    "file hash {h:?} is not 64 hexadecimal characters; the rule matches no file"
                ));
                h
            }
        });
        let present = |value: Option<String>| value.filter(|v| !v.is_empty());
        validations.sort();
        validations.dedup();
        Ok(ElevationRule {
            name,
            description: present(text.remove("description")),
            file_name,
            file_path: present(text.remove("filepath")),
            file_hash,
            min_version: present(text.remove("fileversion")),
            file_description: present(text.remove("filedescription")),
            product_name: present(text.remove("productname")),
            internal_name: present(text.remove("internalname")),
            rule_type: rule_type.ok_or("it has no rule type")?,
            validations,
            child_process_behavior,
            certificate,
        })
    }

    /// The validations one collection under a rule type picks.
    fn validations(&mut self, rule_type: RuleType, collection: &Value) -> Result<Vec<Validation>, String> {
        let Some(setting) = suffix_of(collection) else {
            return Ok(Vec::new());
        };
        let known = |option: &str| {
            VALIDATION_SETTINGS
                .iter()
                .find(|(t, _, s, o)| *t == rule_type && *s == setting && *o == option)
                .map(|(_, validation, _, _)| *validation)
        };
        let mut found = Vec::new();
        for picked in collection["choiceSettingCollectionValue"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let option = picked["value"]
                .as_str()
                .and_then(|v| v.strip_prefix(RULE_COLLECTION_ID))
                .and_then(|v| v.strip_prefix('_'))
                .unwrap_or_default();
            match known(option) {
                Some(validation) => found.push(validation),
                None if setting.starts_with("ruletype_") => {
                    return Err(format!("unknown validation {option:?} of {setting}"));
                }
                None => self.warnings.push(format!(
                    "setting {setting:?} under the rule type is not known; left out"
                )),
            }
        }
        Ok(found)
    }

    /// The certificate a `signaturesource` choice names.
    fn certificate(&mut self, choice: &Value) -> Result<Option<Certificate>, String> {
        let mut payload = String::new();
        let mut reusable_setting_id = None;
        let mut certificate_type = CertificateType::Publisher;
        for nested in choice["children"].as_array().into_iter().flatten() {
            let value = nested["simpleSettingValue"]["value"].as_str().map(str::to_owned);
            match suffix_of(nested) {
                Some("certificatefileupload") => payload = value.unwrap_or_default(),
                Some("certificatepayloadwithreusablesetting") => reusable_setting_id = value,
                Some("certificatetype") => {
                    certificate_type = match option_of(&nested["choiceSettingValue"], "certificatetype") {
                        Some("publisher") => CertificateType::Publisher,
                        Some("issuingauthority") => CertificateType::IssuingAuthority,
                        other => return Err(format!("unknown certificate type {other:?}")),
                    }
                }
                other => self.warnings.push(format!(
                    "setting {:?} under the signature source is not known; left out",
                    other.unwrap_or_default()
                )),
            }
        }
        Ok(match (option_of(choice, "signaturesource"), reusable_setting_id) {
            (Some("0"), Some(id)) => Some(Certificate {
                payload: String::new(),
                reusable_setting_id: Some(id),
                certificate_type,
            }),
            (Some("1"), _) if !payload.is_empty() => Some(Certificate::uploaded(payload, certificate_type)),
            (option, _) => {
                self.warnings.push(format!(
                    "signature source {option:?} names no certificate; the rule is read without one"
                ));
                None
            }
        })
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
            rule.certificate = Some(Certificate::uploaded(
                format!("CERT{i}"),
                if i % 2 == 0 {
                    CertificateType::Publisher
                } else {
                    CertificateType::IssuingAuthority
                },
            ));
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
            "device_vendor_msft_policy_privilegemanagement_elevationrules_{elevationrulename}_automatic"
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
            "rule 2 (\"rule 1\") of policy \"Developer tools\": it has no file name"
        );
    }

    /// Exports written before 2026-12 put the setting's name into every option
    /// (`…_ruletype_self`); rules.json files and policies saved from them must still import.
    #[test]
    fn the_option_spelling_of_earlier_exports_still_reads() {
        /// Rewrites every choice as the earlier writer spelled it: `P_{setting}_{option}`.
        fn old_spelling(value: &mut Value) {
            if let Some(setting) = suffix_of(value).map(str::to_owned)
                && let Some(option) = value["choiceSettingValue"]["value"].as_str()
                && let Some(bare) = option.strip_prefix(&format!("{RULE_COLLECTION_ID}_"))
                && !bare.starts_with(&setting)
            {
                value["choiceSettingValue"]["value"] = json!(definition(&format!("{setting}_{bare}")));
            }
            match value {
                Value::Array(items) => items.iter_mut().for_each(old_spelling),
                Value::Object(fields) => fields.values_mut().for_each(old_spelling),
                _ => {}
            }
        }
        let policy = every_kind_of_rule();
        let mut json = policy.to_intune();
        old_spelling(&mut json);
        let text = json.to_string();
        assert!(text.contains("_ruletype_self\""), "the old spelling was written");
        assert!(
            text.contains("_childprocessbehavior_deny\""),
            "the old spelling was written"
        );
        assert_eq!(RulesPolicy::from_intune(&json), Ok(policy));
    }

    #[test]
    fn unknown_settings_are_left_out_with_a_warning_and_missing_types_name_the_rule() {
        let mut json = every_kind_of_rule().to_intune();
        let rules = json["settings"][0]["settingInstance"]["groupSettingCollectionValue"]
            .as_array_mut()
            .expect("rules");
        rules[1]["children"].as_array_mut().expect("children").push(json!({
            "@odata.type": CHOICE,
            "settingDefinitionId": definition("restrictarguments"),
            "choiceSettingValue": { "value": definition("restrictarguments_allow"), "children": [] },
        }));
        let imported = RulesPolicy::read_intune(&json).expect("an unknown setting is no failure");
        assert_eq!(imported.policy, every_kind_of_rule());
        assert_eq!(
            imported.warnings,
            vec!["rule 1 (\"rule 0\"): setting \"restrictarguments\" is not known to this version; left out"]
        );
        rules_mut(&mut json)[3]["children"]
            .as_array_mut()
            .expect("children")
            .retain(|c| suffix_of(c) != Some("ruletype"));
        let err = RulesPolicy::read_intune(&json).unwrap_err();
        assert_eq!(
            err.to_string(),
            "rule 3 (\"rule 2\") of policy \"Developer tools\": it has no rule type"
        );
    }

    fn rules_mut(json: &mut Value) -> &mut Vec<Value> {
        json["settings"][0]["settingInstance"]["groupSettingCollectionValue"]
            .as_array_mut()
            .expect("rules")
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
