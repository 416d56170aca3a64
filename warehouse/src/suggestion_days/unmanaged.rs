//! Each user's unmanaged elevations per file and over every file, merged from raw rows and
//! from `daily_suggestions`' user rows: what readiness suggestions rest on.

use super::*;

/// A run of elevations: how many, the first and the last (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Elevations.
    pub elevations: i64,
    /// The first.
    pub first: i64,
    /// The last.
    pub last: i64,
}

impl Span {
    fn merge(&mut self, other: Span) {
        self.elevations += other.elevations;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
    }
}

/// Each user's unmanaged elevations, merged from any number of days and aggregates: per user
/// and file, and per user over every file with the user's devices.
#[derive(Debug, Default, Clone)]
pub struct Unmanaged {
    /// The file names, by the numbers `per_file` uses (for this merge only).
    pub file_names: Vec<String>,
    file_numbers: HashMap<String, u32, RandomState>,
    /// Per (user, file number).
    pub per_file: HashMap<(u32, u32), Span, RandomState>,
    /// Per user: every file, and the devices (`value_numbers` `deviceId`).
    pub per_user: HashMap<u32, (Span, RoaringBitmap), RandomState>,
}

impl Unmanaged {
    fn file_number(&mut self, name: &str) -> u32 {
        if let Some(&n) = self.file_numbers.get(name) {
            return n;
        }
        let n = self.file_names.len() as u32;
        self.file_names.push(name.to_owned());
        self.file_numbers.insert(name.to_owned(), n);
        n
    }

    fn add_file(&mut self, user: u32, file: &str, span: Span) {
        let file = self.file_number(file);
        self.per_file
            .entry((user, file))
            .and_modify(|s| s.merge(span))
            .or_insert(span);
    }

    fn add_user(&mut self, user: u32, span: Span, devices: RoaringBitmap) {
        match self.per_user.entry(user) {
            std::collections::hash_map::Entry::Occupied(mut known) => {
                let (s, d) = known.get_mut();
                s.merge(span);
                *d |= devices;
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert((span, devices));
            }
        }
    }

    /// Adds the unmanaged elevations among raw elevations `events`, numbering their users and
    /// devices: the spans aggregated, the devices of each user and file folded from the rows.
    pub async fn add_events(
        &mut self,
        events: DataFrame,
        users: &mut UserNumbers,
        values: &mut ValueNumbers,
    ) -> Result<(), DataFusionError> {
        let events = events.filter(ident("elevationType").eq(lit(UNMANAGED)))?;
        let spans = unmanaged_spans(events.clone())?.collect().await?;
        let mut rows = events
            .select(["upn", "fileName", "deviceId"].map(ident).to_vec())?
            .execute_stream()
            .await?;
        let mut devices: HashMap<(u32, u32), RoaringBitmap, RandomState> = HashMap::default();
        while let Some(batch) = rows.next().await {
            let batch = batch?;
            let [upns, files, device_ids] = ["upn", "fileName", "deviceId"].map(|c| text(&batch, c));
            let (upns, files, device_ids) = (upns?, files?, device_ids?);
            let (upns, files, device_ids) = (
                upns.as_string::<i32>(),
                files.as_string::<i32>(),
                device_ids.as_string::<i32>(),
            );
            for row in 0..batch.num_rows() {
                if device_ids.is_null(row) {
                    continue;
                }
                let user = users.number(upns.value(row));
                let file = self.file_number(files.value(row));
                devices
                    .entry((user, file))
                    .or_default()
                    .insert(values.kinds[0].number(device_ids.value(row)));
            }
        }
        for batch in &spans {
            let (upns, files) = (text(batch, "upn")?, text(batch, "fileName")?);
            let (upns, files) = (upns.as_string::<i32>(), files.as_string::<i32>());
            let elevations = int64(batch, "elevations")?;
            let (first, last) = (micros(batch, "first")?, micros(batch, "last")?);
            for row in 0..batch.num_rows() {
                let user = users.number(upns.value(row));
                let span = Span {
                    elevations: elevations.value(row),
                    first: first.value(row),
                    last: last.value(row),
                };
                let file = self.file_number(files.value(row));
                self.add_file(user, files.value(row), span);
                self.add_user(user, span, devices.remove(&(user, file)).unwrap_or_default());
            }
        }
        Ok(())
    }

    /// Adds the user rows (with `userNumber`) of batches of `daily_suggestions`.
    pub fn add_rollup(&mut self, batches: &[RecordBatch]) -> Result<(), ArrowError> {
        for batch in batches {
            let user_numbers = int64(batch, "userNumber")?;
            let files = text(batch, "fileName")?;
            let files = files.as_string::<i32>();
            let elevations = int64(batch, "elevations")?;
            let (first, last) = (micros(batch, "first")?, micros(batch, "last")?);
            let devices = cast(column(batch, "devices")?, &DataType::Binary)?;
            for row in 0..batch.num_rows() {
                if user_numbers.is_null(row) {
                    continue;
                }
                let user = number(user_numbers.value(row))?;
                let span = Span {
                    elevations: elevations.value(row),
                    first: first.value(row),
                    last: last.value(row),
                };
                if files.is_valid(row) {
                    self.add_file(user, files.value(row), span);
                } else {
                    self.add_user(user, span, bitmap(devices.as_binary::<i32>(), row)?);
                }
            }
        }
        Ok(())
    }
}
