//! The Arrow schemas of the warehouse tables, column by column.
//!
//! The column lists below are the single source of truth: the schemas are built from them
//! and the README's schema section is checked against them by a test. Column names follow
//! Graph's camelCase so Intune admins recognise them; engines that fold case (DuckDB, Spark)
//! read them unchanged, and DataFusion needs them double-quoted in SQL.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// One documented column of a warehouse table.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name (camelCase, as in Graph).
    pub name: &'static str,
    /// Arrow type.
    pub data_type: ColumnType,
    /// Whether the column may be null.
    pub nullable: bool,
    /// One line for the README.
    pub doc: &'static str,
}

/// The few column types the warehouse uses, each with its README spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// UTF-8 text.
    Text,
    /// A calendar date (UTC).
    Date,
    /// An instant, microseconds, UTC.
    Timestamp,
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// True or false.
    Boolean,
    /// Bytes (a serialized bitmap).
    Binary,
}

/// Whether Delta keeps per-file statistics (minimum, maximum, nulls) of a column of this type:
/// dates, times, whole numbers and booleans, what readers skip files by. Not text: a file holds
/// a day of every user and device (compacted) or whatever a commit carried (landed), so its
/// text bounds span nearly every value and skip nothing, while they made most of every file's
/// entry in the Delta log (3.3 KB of JSON per file, held in memory by every handle on the
/// table and parsed by every reader that loads it). Not bytes, floating point or nested types.
pub fn has_file_statistics(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Date32
            | DataType::Timestamp(..)
            | DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Boolean
    )
}

impl ColumnType {
    /// The Arrow type.
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Date => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::Int32 => DataType::Int32,
            ColumnType::Int64 => DataType::Int64,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Binary => DataType::Binary,
        }
    }

    /// How the README names the type.
    pub fn readme_name(self) -> &'static str {
        match self {
            ColumnType::Text => "string",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp (µs, UTC)",
            ColumnType::Int32 => "int32",
            ColumnType::Int64 => "int64",
            ColumnType::Boolean => "boolean",
            ColumnType::Binary => "binary",
        }
    }
}

const fn col(name: &'static str, data_type: ColumnType, nullable: bool, doc: &'static str) -> Column {
    Column {
        name,
        data_type,
        nullable,
        doc,
    }
}

use ColumnType::{Binary, Boolean, Date, Int32, Int64, Text, Timestamp};

/// Name of the table of elevation events.
pub const ELEVATIONS: &str = "elevations";
/// Name of the table of diagnostic events.
pub const DIAGNOSTICS: &str = "diagnostics";

/// The partition columns, shared by both tables: a tenant's data never shares a file with
/// another tenant's, and date pruning needs no statistics.
pub const PARTITION_COLUMNS: [&str; 2] = ["tenant", "eventDate"];

/// Columns of `elevations`: Graph's `privilegeManagementElevation` plus where it came from.
pub const ELEVATION_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant the agent key belongs to (partition)"),
    col("eventDate", Date, false, "UTC date of `eventDateTime` (partition)"),
    col(
        "id",
        Text,
        false,
        "event id from the agent, or derived from device, time, file and user",
    ),
    col("eventDateTime", Timestamp, false, "when the file was elevated"),
    col(
        "elevationType",
        Text,
        false,
        "`unmanagedElevation`, `zeroTouchElevation`, `userConfirmedElevation`, `supportApprovedElevation`, `elevateAsCurrentUser`, `deniedElevation` or `undetermined`",
    ),
    col("deviceId", Text, false, "Intune device id (from the batch)"),
    col("deviceName", Text, false, "device name (from the batch)"),
    col("upn", Text, false, "user principal name of the user who elevated"),
    col(
        "userType",
        Text,
        false,
        "`azureAd`, `hybrid`, `local` or `undetermined`",
    ),
    col("filePath", Text, false, "full path of the file, Windows separators"),
    col("fileName", Text, false, "last component of `filePath`"),
    col("hash", Text, false, "SHA-256 of the file, upper-case hex"),
    col("productName", Text, true, "version-info product name"),
    col(
        "companyName",
        Text,
        true,
        "version-info company name: the publisher of Intune's reports",
    ),
    col("fileVersion", Text, true, "version-info file version"),
    col("fileDescription", Text, true, "version-info file description"),
    col("internalName", Text, true, "version-info internal name"),
    col(
        "certificatePayload",
        Text,
        true,
        "hash of the signing certificate information; null when unsigned",
    ),
    col(
        "justification",
        Text,
        true,
        "the user's justification (≤ 256 characters)",
    ),
    col("result", Int32, false, "0 on success, otherwise the exit code"),
    col("processType", Text, false, "`parent`, `child` or `undefined`"),
    col("parentProcessName", Text, true, "the process that started this one"),
    col("ruleId", Text, true, "the elevation rule that matched"),
    col("policyId", Text, true, "the policy holding that rule"),
    col("policyName", Text, true, "the policy's name"),
    col(
        "systemInitiatedElevation",
        Boolean,
        false,
        "true when the system, not a user, initiated it",
    ),
    col("batchId", Text, false, "the upload batch that carried the event"),
    col("agentVersion", Text, true, "agent version (from the batch)"),
    col(
        "reportingLevel",
        Text,
        false,
        "effective reporting level the event was accepted under",
    ),
    col("ingestedAt", Timestamp, false, "when the server acknowledged the batch"),
];

/// Columns of `diagnostics`: agent health, never personal data.
pub const DIAGNOSTIC_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant the agent key belongs to (partition)"),
    col("eventDate", Date, false, "UTC date of `eventDateTime` (partition)"),
    col("deviceId", Text, false, "Intune device id (from the batch)"),
    col("deviceName", Text, false, "device name (from the batch)"),
    col("eventDateTime", Timestamp, false, "when the agent recorded the event"),
    col("eventId", Int32, false, "agent event id"),
    col(
        "eventName",
        Text,
        false,
        "agent event name, for example `PolicyApplied`",
    ),
    col(
        "errorCode",
        Int64,
        false,
        "0, or the error (HRESULTs as unsigned 32-bit values)",
    ),
    col("policyType", Text, true, "`rules` or `settings`"),
    col("policyId", Text, true, "the policy concerned"),
    col("policyVersion", Text, true, "its version"),
    col("declaredLevel", Text, false, "reporting level the device declared"),
    col(
        "reportingLevel",
        Text,
        false,
        "effective reporting level (declared, capped by the tenant)",
    ),
    col("batchId", Text, false, "the upload batch that carried the event"),
    col("agentVersion", Text, true, "agent version (from the batch)"),
    col("ingestedAt", Timestamp, false, "when the server acknowledged the batch"),
];

/// Name of the daily rollup table.
pub const DAILY_ELEVATIONS: &str = "daily_elevations";

/// Columns of `daily_elevations`: elevations per day and everything the aggregated reports
/// group by, kept longer than raw events so long windows never rescan them.
pub const DAILY_ELEVATION_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant (partition)"),
    col("eventDate", Date, false, "UTC date (partition)"),
    col("elevationType", Text, false, "elevation type"),
    col("hash", Text, false, "SHA-256 of the file"),
    col("fileName", Text, false, "file name"),
    col("companyName", Text, true, "publisher"),
    col("upn", Text, false, "user"),
    col("deviceName", Text, false, "device"),
    col("elevations", Int64, false, "elevations that day with these values"),
    col("failed", Int64, false, "of which `result` was not 0"),
];

/// Name of the daily counts table.
pub const DAILY_COUNTS: &str = "daily_counts";

/// Columns of `daily_counts`: elevations per tenant, day and type. `sourceFiles` says which
/// raw files the counts were computed from, so a reader uses a day's counts only while the
/// day's files in `elevations` are still exactly those (Delta files never change; the same
/// files hold the same rows) and reads the raw rows otherwise.
pub const DAILY_COUNT_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant (partition)"),
    col("eventDate", Date, false, "UTC date (partition)"),
    col("elevationType", Text, false, "elevation type"),
    col("elevations", Int64, false, "elevations that day of that type"),
    col("failed", Int64, false, "of which `result` was not 0"),
    col(
        "sourceFiles",
        Text,
        false,
        "fingerprint of the day's `elevations` files the counts were computed from",
    ),
];

/// Name of the daily users table.
pub const DAILY_USERS: &str = "daily_users";

/// Columns of `daily_users`: elevations per tenant, day, user and type, with the same
/// `sourceFiles` fingerprint as `daily_counts`.
pub const DAILY_USER_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant (partition)"),
    col("eventDate", Date, false, "UTC date (partition)"),
    col("upn", Text, false, "user"),
    col("elevationType", Text, false, "elevation type"),
    col(
        "elevations",
        Int64,
        false,
        "elevations that day by that user of that type",
    ),
    col(
        "sourceFiles",
        Text,
        false,
        "fingerprint of the day's `elevations` files the counts were computed from",
    ),
];

/// Name of the daily devices table.
pub const DAILY_DEVICES: &str = "daily_devices";

/// Columns of `daily_devices`: elevations per tenant, day, device (name and id), reporting
/// level and type, with the day's last elevation, and the same `sourceFiles` fingerprint as
/// `daily_counts`. What `by-device`, the device activity of `diagnostics` and the devices of
/// `compliance` read for whole days.
pub const DAILY_DEVICE_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant (partition)"),
    col("eventDate", Date, false, "UTC date (partition)"),
    col("deviceName", Text, false, "device"),
    col(
        "reportingLevel",
        Text,
        false,
        "reporting level the events were sent under",
    ),
    col("elevationType", Text, false, "elevation type"),
    col(
        "elevations",
        Int64,
        false,
        "elevations that day on that device of that type and level",
    ),
    col("lastSeen", Timestamp, false, "the latest of those elevations"),
    col(
        "sourceFiles",
        Text,
        false,
        "fingerprint of the day's `elevations` files the counts were computed from",
    ),
    col(
        "deviceId",
        Text,
        true,
        "the device's id (format 2: null in rows an older release wrote)",
    ),
];

/// Name of the daily denied table.
pub const DAILY_DENIED: &str = "daily_denied";

/// Columns of `daily_denied`: denied elevations (`deniedElevation`) and failed ones (`result`
/// not 0) per tenant, day, user, device, hash and type, with the file's details (the greatest
/// value of the day), the count and the last one; what the `denied` report reads for whole
/// days. Same `sourceFiles` fingerprint as `daily_counts`.
pub const DAILY_DENIED_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant (partition)"),
    col("eventDate", Date, false, "UTC date (partition)"),
    col("upn", Text, false, "user"),
    col("deviceId", Text, false, "Intune device id"),
    col("deviceName", Text, false, "device name"),
    col("hash", Text, false, "SHA-256 of the file"),
    col("elevationType", Text, false, "elevation type"),
    col("fileName", Text, false, "file name (greatest that day)"),
    col(
        "productName",
        Text,
        true,
        "version-info product name (greatest that day)",
    ),
    col(
        "fileDescription",
        Text,
        true,
        "version-info file description (greatest that day)",
    ),
    col(
        "internalName",
        Text,
        true,
        "version-info internal name (greatest that day)",
    ),
    col(
        "fileVersion",
        Text,
        true,
        "version-info file version (greatest that day)",
    ),
    col("companyName", Text, true, "publisher (greatest that day)"),
    col("elevations", Int64, false, "denied or failed elevations that day"),
    col("lastSeen", Timestamp, false, "the latest of them"),
    col(
        "sourceFiles",
        Text,
        false,
        "fingerprint of the day's `elevations` files the rows were computed from",
    ),
];

/// Name of the user numbers table.
pub const USER_NUMBERS: &str = "user_numbers";

/// Columns of `user_numbers`: a number for each user of a tenant, given by the rollup refresh
/// the first time it meets the user and never changed or reused, so that the user sets of
/// `daily_user_sets` from any days can be united. Kept for as long as the tenant exists.
pub const USER_NUMBER_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant (partition)"),
    col(
        "eventDate",
        Date,
        false,
        "the day whose elevations first showed the user to the rollups (partition)",
    ),
    col("upn", Text, false, "user"),
    col("number", Int64, false, "the user's number, unique within the tenant"),
];

/// Name of the daily user sets table.
pub const DAILY_USER_SETS: &str = "daily_user_sets";

/// Columns of `daily_user_sets`: per tenant, day, elevation type and file, the elevations and
/// the set of users who made them, as a compressed bitmap of their `user_numbers`; a row without
/// a hash holds the type's users over all files. Sets of users can be united across days where
/// counts of distinct users cannot be summed: the Overview's tiles and "frequently …" lists over
/// any window read them. Same `sourceFiles` fingerprint as `daily_counts`.
pub const DAILY_USER_SET_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant (partition)"),
    col("eventDate", Date, false, "UTC date (partition)"),
    col("elevationType", Text, false, "elevation type"),
    col("hash", Text, true, "SHA-256 of the file; null: every file of the type"),
    col(
        "fileName",
        Text,
        true,
        "the greatest file name seen with the hash that day",
    ),
    col(
        "elevations",
        Int64,
        false,
        "elevations that day of that type (and file)",
    ),
    col(
        "users",
        Binary,
        false,
        "the users' numbers (`user_numbers`), a portable Roaring bitmap",
    ),
    col(
        "sourceFiles",
        Text,
        false,
        "fingerprint of the day's `elevations` files the sets were computed from",
    ),
];

/// Name of the daily suggestions table.
pub const DAILY_SUGGESTIONS: &str = "daily_suggestions";

/// Columns of `daily_suggestions`: the day's elevations as the rule-tuning suggestions merge
/// them. A *group* row (no `userNumber`) holds the elevations of one file, publisher, hash,
/// type, process type, parent, rule, policy and outcome: their count, first and last, the
/// version-info maxima, the certificate and justification minima and maxima, and the distinct
/// users, devices, device names and folders as Roaring bitmaps of numbers that never change
/// (`user_numbers`, `value_numbers`), so days unite into the window's sets. A *user* row
/// (`userNumber` set, type `unmanagedElevation`) holds one user's unmanaged elevations of one
/// file, or, without a file name, of every file with the user's devices. Same `sourceFiles`
/// fingerprint as `daily_counts`.
pub const DAILY_SUGGESTION_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant (partition)"),
    col("eventDate", Date, false, "UTC date (partition)"),
    col(
        "userNumber",
        Int64,
        true,
        "a user row's user (`user_numbers`); null on a group row",
    ),
    col("fileName", Text, true, "file name; null on a user's every-file row"),
    col("companyName", Text, true, "publisher"),
    col("hash", Text, true, "SHA-256 of the file; null on a user row"),
    col("elevationType", Text, false, "elevation type"),
    col(
        "processType",
        Text,
        true,
        "`parent`, `child` or `undefined`; null on a user row",
    ),
    col("parentProcessName", Text, true, "the process that started the file"),
    col("ruleId", Text, true, "the rule that decided the elevations"),
    col("policyName", Text, true, "that rule's policy"),
    col("failed", Boolean, true, "`result` was not 0; null on a user row"),
    col("elevations", Int64, false, "elevations that day"),
    col("first", Timestamp, false, "the first of them"),
    col("last", Timestamp, false, "the last of them"),
    col("fileVersion", Text, true, "greatest version-info file version"),
    col("productName", Text, true, "greatest version-info product name"),
    col("internalName", Text, true, "greatest version-info internal name"),
    col("fileDescription", Text, true, "greatest version-info file description"),
    col("certificateLow", Text, true, "least certificate payload"),
    col("certificateHigh", Text, true, "greatest certificate payload"),
    col("signed", Int64, true, "elevations with a certificate payload"),
    col("justificationLow", Text, true, "least justification"),
    col("justificationHigh", Text, true, "greatest justification"),
    col(
        "users",
        Binary,
        true,
        "the users (`user_numbers`), a portable Roaring bitmap",
    ),
    col(
        "devices",
        Binary,
        true,
        "the device ids (`value_numbers` kind `deviceId`), a Roaring bitmap",
    ),
    col(
        "deviceNames",
        Binary,
        true,
        "the device names (kind `deviceName`), a Roaring bitmap",
    ),
    col(
        "folders",
        Binary,
        true,
        "the folders of the file paths (kind `folder`), a Roaring bitmap",
    ),
    col(
        "sourceFiles",
        Text,
        false,
        "fingerprint of the day's `elevations` files the rows were computed from, with the rows' format",
    ),
    col(
        "systemInitiated",
        Boolean,
        true,
        "every elevation of the group was system-initiated (`bool_and`); null on a user row",
    ),
];

/// Name of the value numbers table.
pub const VALUE_NUMBERS: &str = "value_numbers";

/// Columns of `value_numbers`: a number for each device id, device name and folder of a tenant,
/// given by the rollup refresh the first time it meets the value and never changed or reused,
/// so that the sets of `daily_suggestions` from any days can be united. Kept for as long as the
/// tenant exists, like `user_numbers`.
pub const VALUE_NUMBER_COLUMNS: &[Column] = &[
    col("tenant", Text, false, "tenant (partition)"),
    col(
        "eventDate",
        Date,
        false,
        "the day whose elevations first showed the value to the rollups (partition)",
    ),
    col("kind", Text, false, "`deviceId`, `deviceName` or `folder`"),
    col("value", Text, false, "the value"),
    col("number", Int64, false, "its number, unique within the tenant and kind"),
];

fn schema_of(columns: &[Column]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, c.data_type.arrow(), c.nullable))
            .collect::<Vec<_>>(),
    ))
}

static ELEVATION_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(ELEVATION_COLUMNS));
static DIAGNOSTIC_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(DIAGNOSTIC_COLUMNS));

static DAILY_ELEVATION_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(DAILY_ELEVATION_COLUMNS));

static DAILY_COUNT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(DAILY_COUNT_COLUMNS));

/// The Arrow schema of `daily_counts`.
pub fn daily_count_schema() -> SchemaRef {
    DAILY_COUNT_SCHEMA.clone()
}

static DAILY_USER_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(DAILY_USER_COLUMNS));

/// The Arrow schema of `daily_users`.
pub fn daily_user_schema() -> SchemaRef {
    DAILY_USER_SCHEMA.clone()
}

static DAILY_DEVICE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(DAILY_DEVICE_COLUMNS));

/// The Arrow schema of `daily_devices`.
pub fn daily_device_schema() -> SchemaRef {
    DAILY_DEVICE_SCHEMA.clone()
}

static DAILY_DENIED_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(DAILY_DENIED_COLUMNS));

/// The Arrow schema of `daily_denied`.
pub fn daily_denied_schema() -> SchemaRef {
    DAILY_DENIED_SCHEMA.clone()
}

static USER_NUMBER_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(USER_NUMBER_COLUMNS));

/// The Arrow schema of `user_numbers`.
pub fn user_number_schema() -> SchemaRef {
    USER_NUMBER_SCHEMA.clone()
}

static DAILY_USER_SET_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(DAILY_USER_SET_COLUMNS));

/// The Arrow schema of `daily_user_sets`.
pub fn daily_user_set_schema() -> SchemaRef {
    DAILY_USER_SET_SCHEMA.clone()
}

static DAILY_SUGGESTION_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(DAILY_SUGGESTION_COLUMNS));

/// The Arrow schema of `daily_suggestions`.
pub fn daily_suggestion_schema() -> SchemaRef {
    DAILY_SUGGESTION_SCHEMA.clone()
}

static VALUE_NUMBER_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| schema_of(VALUE_NUMBER_COLUMNS));

/// The Arrow schema of `value_numbers`.
pub fn value_number_schema() -> SchemaRef {
    VALUE_NUMBER_SCHEMA.clone()
}

/// The Arrow schema of `daily_elevations`.
pub fn daily_elevation_schema() -> SchemaRef {
    DAILY_ELEVATION_SCHEMA.clone()
}

/// The Arrow schema of `elevations`.
pub fn elevation_schema() -> SchemaRef {
    ELEVATION_SCHEMA.clone()
}

/// The Arrow schema of `diagnostics`.
pub fn diagnostic_schema() -> SchemaRef {
    DIAGNOSTIC_SCHEMA.clone()
}

/// The README table for a list of columns (`| column | type | null | meaning |`).
pub fn readme_table(columns: &[Column]) -> String {
    let mut out = String::from("| column | type | nullable | meaning |\n| --- | --- | --- | --- |\n");
    for c in columns {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            c.name,
            c.data_type.readme_name(),
            if c.nullable { "yes" } else { "no" },
            c.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_field_has_a_column() {
        // The wire field names of an elevation, as serde writes them, must all be columns.
        let event = serde_json::json!({
            "id": "", "eventDateTime": "", "elevationType": "", "filePath": "", "hash": "", "upn": "",
            "userType": "", "productName": "", "companyName": "", "fileVersion": "", "fileDescription": "",
            "internalName": "", "certificatePayload": "", "justification": "", "result": 0, "processType": "",
            "parentProcessName": "", "ruleId": "", "policyId": "", "policyName": "", "systemInitiatedElevation": false
        });
        let schema = elevation_schema();
        for key in event.as_object().unwrap().keys() {
            assert!(schema.field_with_name(key).is_ok(), "no column for {key}");
        }
        for partition in PARTITION_COLUMNS {
            assert!(schema.field_with_name(partition).is_ok());
            assert!(diagnostic_schema().field_with_name(partition).is_ok());
        }
    }

    #[test]
    fn diagnostics_hold_no_personal_data() {
        let schema = diagnostic_schema();
        for personal in ["upn", "fileName", "filePath", "hash", "justification"] {
            assert!(
                schema.field_with_name(personal).is_err(),
                "{personal} must not be a diagnostics column"
            );
        }
    }
}
