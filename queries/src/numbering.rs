//! Dense numbers for the distinct strings of a key column, so that a merge over hundreds of
//! thousands of rows keys its hash tables by small integers instead of strings (`distinct`,
//! `denied`).

use std::collections::HashMap;

use datafusion::arrow::array::{ArrayRef, AsArray, StringViewArray};
use datafusion::arrow::buffer::Buffer;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::DataFusionError;
use foldhash::fast::RandomState;

/// A string column as string views, what the numberings read (the Parquet reader gives views;
/// rows computed in memory may be plain strings).
pub(crate) fn as_view(column: &ArrayRef) -> Result<StringViewArray, DataFusionError> {
    Ok(cast(column, &DataType::Utf8View)?.as_string_view().clone())
}

/// Dense numbers for the distinct strings of one column, in order of first sight.
#[derive(Default)]
pub(crate) struct Numbering {
    pub(crate) ids: HashMap<Box<str>, u32, RandomState>,
    pub(crate) values: Vec<Box<str>>,
}

impl Numbering {
    pub(crate) fn number(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 4 billion distinct values");
        self.values.push(value.into());
        self.ids.insert(value.into(), id);
        id
    }

    /// Each number's place when the values are sorted, so that comparing places compares
    /// the values.
    pub(crate) fn places(&self) -> Vec<u32> {
        let mut sorted: Vec<u32> = (0..self.values.len() as u32).collect();
        sorted.sort_unstable_by(|a, b| self.values[*a as usize].cmp(&self.values[*b as usize]));
        let mut places = vec![0; sorted.len()];
        for (place, number) in sorted.into_iter().enumerate() {
            places[number as usize] = place as u32;
        }
        places
    }
}

/// Stands for a null key value: never a number `Numbering` gives out.
pub(crate) const NULL: u32 = u32::MAX;

/// A [`Numbering`] fed from string views, with a shortcut that avoids hashing the string on
/// most rows. The Parquet reader decodes a dictionary-encoded column into views that all point
/// into one buffer holding the dictionary, shared by every batch of a row group; so while the
/// batches keep the same buffers, equal views (length, buffer, offset) are equal values.
#[derive(Default)]
pub(crate) struct ViewNumbering {
    pub(crate) numbering: Numbering,
    /// The buffers the views in `by_view` point into, held so their memory is not reused.
    buffers: Vec<Buffer>,
    by_view: HashMap<u128, u32, RandomState>,
}

impl ViewNumbering {
    /// Called before the rows of each batch: forgets the views when the buffers changed.
    pub(crate) fn start(&mut self, column: &StringViewArray) {
        let buffers = column.data_buffers();
        let same = buffers.len() == self.buffers.len()
            && buffers
                .iter()
                .zip(&self.buffers)
                .all(|(a, b)| a.as_ptr() == b.as_ptr() && a.len() == b.len());
        if !same {
            self.buffers = buffers.to_vec();
            self.by_view.clear();
        }
    }

    pub(crate) fn number(&mut self, column: &StringViewArray, row: usize) -> u32 {
        let view = column.views()[row];
        if let Some(&id) = self.by_view.get(&view) {
            return id;
        }
        let id = self.numbering.number(column.value(row));
        self.by_view.insert(view, id);
        id
    }
}
