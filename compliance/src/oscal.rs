//! `assessment-results.json`: a NIST OSCAL (1.1.2) assessment-results document. One result
//! for the period, one observation and one finding per control (ac-6.9, au-2, au-3, au-9,
//! au-11, cm-11; CIS 5.4 as a property of the cm-11 finding), and back-matter resources naming
//! each data file with its SHA-256, which the observations cite as evidence.
//!
//! Every UUID is a version-5 UUID of the data files' hashes and the item it names, so the same
//! data gives the same document; its times are the period's bounds, not the clock.

use std::path::Path;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::ComplianceError;
use crate::facts::Facts;
use crate::files::{self, instant_text};
use crate::manifest::FileEntry;

/// The file's name.
pub(crate) const ASSESSMENT_RESULTS: &str = "assessment-results.json";
const OSCAL_VERSION: &str = "1.1.2";
const NAMESPACE: &str = "https://github.com/elevation/elevation/compliance-pack";

/// Deterministic ids: version-5 UUIDs under one namespace, seeded by the data's hashes.
struct Ids {
    namespace: Uuid,
    seed: String,
}

impl Ids {
    fn new(facts: &Facts, evidence: &[FileEntry]) -> Ids {
        let mut hasher = Sha256::new();
        hasher.update(facts.tenant.as_bytes());
        hasher.update(instant_text(facts.from).as_bytes());
        hasher.update(instant_text(facts.to).as_bytes());
        for file in evidence {
            hasher.update(file.name.as_bytes());
            hasher.update(file.sha256.as_bytes());
        }
        Ids {
            namespace: Uuid::new_v5(&Uuid::NAMESPACE_URL, NAMESPACE.as_bytes()),
            seed: hex::encode(hasher.finalize()),
        }
    }

    fn of(&self, item: &str) -> String {
        Uuid::new_v5(&self.namespace, format!("{}/{item}", self.seed).as_bytes()).to_string()
    }
}

fn media_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        Some("html") => "text/html",
        Some("parquet") => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
}

/// Writes `assessment-results.json` citing `evidence` (the data files and the summary).
pub(crate) fn write(dir: &Path, facts: &Facts, evidence: &[FileEntry]) -> Result<(), ComplianceError> {
    let ids = Ids::new(facts, evidence);
    let collected = instant_text(facts.to);
    let resource_id = |name: &str| ids.of(&format!("resource/{name}"));
    let mut resources: Vec<Value> = evidence
        .iter()
        .map(|f| {
            json!({
                "uuid": resource_id(&f.name),
                "title": f.name,
                "rlinks": [{
                    "href": format!("./{}", f.name),
                    "media-type": media_type(&f.name),
                    "hashes": [{ "algorithm": "SHA-256", "value": f.sha256 }],
                }],
            })
        })
        .collect();
    let no_plan = ids.of("resource/no-assessment-plan");
    resources.push(json!({
        "uuid": no_plan,
        "title": "No assessment plan",
        "description": "These results come from an automated evidence pack of elevation telemetry over a fixed \
                        period, not from an assessment plan; the reviewed controls are listed in the result.",
    }));
    let findings = facts.findings();
    let mut observations = Vec::new();
    let mut oscal_findings = Vec::new();
    for finding in &findings {
        let observation = ids.of(&format!("observation/{}", finding.control));
        let evidence: Vec<Value> = finding
            .evidence
            .iter()
            .map(|name| json!({ "href": format!("#{}", resource_id(name)), "description": format!("{name} of this pack") }))
            .collect();
        observations.push(json!({
            "uuid": observation,
            "title": format!("{}: {}", finding.control.to_uppercase(), finding.title),
            "description": finding.text,
            "methods": ["TEST"],
            "types": ["control-objective"],
            "collected": collected,
            "relevant-evidence": evidence,
        }));
        let mut entry = json!({
            "uuid": ids.of(&format!("finding/{}", finding.control)),
            "title": format!("{}: {}", finding.control.to_uppercase(), finding.title),
            "description": finding.text,
            "target": {
                "type": "objective-id",
                "target-id": format!("{}_obj", finding.control),
                "status": { "state": if finding.satisfied { "satisfied" } else { "not-satisfied" } },
            },
            "related-observations": [{ "observation-uuid": observation }],
        });
        if let Some(cis) = finding.cis {
            entry["props"] = json!([{
                "name": "cis-control",
                "ns": "https://www.cisecurity.org/controls/v8",
                "value": cis,
                "remarks": "CIS Controls v8 safeguard 5.4: restrict administrator privileges to dedicated administrator accounts",
            }]);
        }
        oscal_findings.push(entry);
    }
    let controls: Vec<Value> = findings.iter().map(|f| json!({ "control-id": f.control })).collect();
    let document = json!({
        "assessment-results": {
            "uuid": ids.of("assessment-results"),
            "metadata": {
                "title": format!("Elevation evidence for {}, {} to {}", facts.tenant, instant_text(facts.from), instant_text(facts.to)),
                "last-modified": collected,
                "version": crate::GENERATOR,
                "oscal-version": OSCAL_VERSION,
            },
            "import-ap": { "href": format!("#{no_plan}") },
            "results": [{
                "uuid": ids.of("result"),
                "title": format!("Endpoint privilege management evidence for {}", facts.tenant),
                "description": "Elevations logged by the tenant's Endpoint Privilege Management agents over the period, \
                                read from the warehouse at the table versions in manifest.json.",
                "start": instant_text(facts.from),
                "end": collected,
                "reviewed-controls": { "control-selections": [{ "include-controls": controls }] },
                "observations": observations,
                "findings": oscal_findings,
            }],
            "back-matter": { "resources": resources },
        }
    });
    files::write_json(dir, ASSESSMENT_RESULTS, &document)
}
