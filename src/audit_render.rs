//! The audit log as a table, JSON or CSV for `elevation audit list`.

use anyhow::Result;
use control::AuditEvent;

/// `name: old → new` for each changed property.
fn changes(event: &AuditEvent) -> String {
    event
        .modified_properties
        .iter()
        .map(|p| {
            format!(
                "{}: {} → {}",
                p.display_name,
                p.old_value.as_deref().unwrap_or("-"),
                p.new_value.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Renders entries as `table`, `json` or `csv`.
pub(crate) fn render(events: &[AuditEvent], format: &str) -> Result<String> {
    Ok(match format {
        "json" => format!("{}\n", serde_json::to_string_pretty(events)?),
        "csv" => {
            let mut writer = csv::Writer::from_writer(Vec::new());
            writer.write_record([
                "seq",
                "activityDateTime",
                "actor",
                "actorKeyId",
                "activity",
                "activityOperationType",
                "activityResult",
                "resourceType",
                "resourceId",
                "modifiedProperties",
                "correlationId",
                "hash",
            ])?;
            for e in events {
                writer.write_record([
                    e.seq.to_string(),
                    e.activity_date_time.to_rfc3339(),
                    e.actor.user_principal_name.clone(),
                    e.actor.key_id.clone().unwrap_or_default(),
                    e.activity.clone(),
                    e.activity_operation_type.clone(),
                    e.activity_result.clone(),
                    e.resource_type.clone(),
                    e.resource_id.clone(),
                    changes(e),
                    e.correlation_id.clone(),
                    e.hash.clone(),
                ])?;
            }
            String::from_utf8(writer.into_inner()?)?
        }
        _ => {
            let mut text = format!(
                "{:>5}  {:<20} {:<28} {:<18} {:<8} {:<32} changes\n",
                "seq", "time (UTC)", "actor", "activity", "result", "target"
            );
            for e in events {
                text.push_str(&format!(
                    "{:>5}  {:<20} {:<28} {:<18} {:<8} {:<32} {}\n",
                    e.seq,
                    e.activity_date_time.format("%Y-%m-%d %H:%M:%S"),
                    e.actor.user_principal_name,
                    e.activity,
                    e.activity_result,
                    format!("{}:{}", e.resource_type, e.resource_id),
                    changes(e)
                ));
            }
            text
        }
    })
}
