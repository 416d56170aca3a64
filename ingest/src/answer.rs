//! What the upload endpoint answers: the batch answer of a `200`. Every other status carries
//! the one error body of `web`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warehouse::validate::Rejection;

/// Tenant, device and batch id: a batch is stored once per key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchKey {
    /// Tenant of the agent key.
    pub tenant: String,
    /// `deviceId` of the batch.
    pub device_id: String,
    /// `batchId` of the batch.
    pub batch_id: String,
}

impl BatchKey {
    /// The key as the control plane's batch claims name it.
    pub fn as_batch_ref(&self) -> control::batches::BatchRef<'_> {
        control::batches::BatchRef {
            tenant: &self.tenant,
            device_id: &self.device_id,
            batch_id: &self.batch_id,
        }
    }
}

/// Events per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// Elevation events.
    pub elevations: u64,
    /// Diagnostic events.
    pub diagnostics: u64,
}

/// The `200` answer: the batch is durable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchAnswer {
    /// The batch's id, echoed.
    pub batch_id: String,
    /// True when this batch was stored before and nothing was stored now.
    pub duplicate: bool,
    /// Events stored.
    pub accepted: Counts,
    /// Events the effective reporting level does not allow: counted, never stored.
    pub dropped_by_policy: Counts,
    /// Events refused one by one, with their index, field and reason.
    #[schema(value_type = Vec<Object>)]
    pub rejected: Vec<Rejection>,
}
