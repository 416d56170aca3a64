//! Typed access to the columns of Arrow batches by name, whatever encoding DataFusion or the
//! Parquet reader handed them over in (string views, dictionaries, narrower integers): what the
//! rollups' merges in Rust read their batches through. Owns no table and no query.

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Int64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::error::ArrowError;
use roaring::RoaringBitmap;

/// A column by name, or an error naming it.
pub fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, ArrowError> {
    batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("no column {name}")))
}

/// A text column as plain UTF-8 (DataFusion may hand views or dictionaries over).
pub fn text(batch: &RecordBatch, name: &str) -> Result<ArrayRef, ArrowError> {
    cast(column(batch, name)?, &DataType::Utf8)
}

/// An integer column as `Int64`.
pub fn int64(batch: &RecordBatch, name: &str) -> Result<Int64Array, ArrowError> {
    Ok(cast(column(batch, name)?, &DataType::Int64)?
        .as_primitive::<Int64Type>()
        .clone())
}

/// A timestamp column as microseconds without a time zone.
pub fn micros(
    batch: &RecordBatch,
    name: &str,
) -> Result<arrow::array::PrimitiveArray<TimestampMicrosecondType>, ArrowError> {
    let plain = cast(column(batch, name)?, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
    Ok(plain.as_primitive::<TimestampMicrosecondType>().clone())
}

/// A serialized Roaring bitmap of a binary column (empty where null).
pub fn bitmap(values: &BinaryArray, row: usize) -> Result<RoaringBitmap, ArrowError> {
    if values.is_null(row) {
        return Ok(RoaringBitmap::new());
    }
    RoaringBitmap::deserialize_from(values.value(row)).map_err(|e| ArrowError::IoError(e.to_string(), e))
}
