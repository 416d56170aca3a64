//! The groups the aggregates return and the evidence accumulated over them.

use roaring::RoaringBitmap;
use warehouse::suggestion_days::{GroupKey, GroupTotals};

use super::*;

/// A group of identical-looking elevations, merged over the window's days.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub(super) file_name: String,
    pub(super) company_name: Option<String>,
    pub(super) hash: String,
    pub(super) file_version: Option<String>,
    pub(super) product_name: Option<String>,
    pub(super) internal_name: Option<String>,
    pub(super) file_description: Option<String>,
    /// The certificates of the group's builds (`None` for an unsigned one).
    pub(super) certificates: Vec<Option<String>>,
    /// Distinct folders the file ran from ([`Names::folders`]).
    pub(super) folders: RoaringBitmap,
    pub(super) elevation_type: String,
    pub(super) child: bool,
    pub(super) process_type: String,
    pub(super) parent_process: Option<String>,
    pub(super) rule_id: Option<String>,
    pub(super) policy_name: Option<String>,
    pub(super) failed: bool,
    pub(super) events: u64,
    pub(super) first: Option<DateTime<Utc>>,
    pub(super) last: Option<DateTime<Utc>>,
    /// [`Names::users`].
    pub(super) users: RoaringBitmap,
    /// Device ids (only counted).
    pub(super) devices: RoaringBitmap,
    /// Distinct device names (EPManager's report lists them), [`Names::device_names`].
    pub(super) device_names: RoaringBitmap,
    pub(super) justifications: Vec<String>,
}

impl Group {
    /// The group of merged totals: the certificates seen (an unsigned build as `None`) and the
    /// justifications that say something.
    pub(super) fn of(key: GroupKey, t: GroupTotals) -> Group {
        let mut certificates: Vec<Option<String>> = [t.certificate_low, t.certificate_high]
            .into_iter()
            .flatten()
            .map(Some)
            .collect();
        if t.signed < t.elevations {
            certificates.push(None);
        }
        let [file_version, product_name, internal_name, file_description] = t.maxima;
        let time = |micros: i64| DateTime::<Utc>::from_timestamp_micros(micros);
        Group {
            file_name: key.file_name,
            company_name: key.company_name,
            hash: key.hash,
            file_version,
            product_name,
            internal_name,
            file_description,
            certificates,
            folders: t.folders,
            elevation_type: key.elevation_type,
            child: key.process_type == "child",
            process_type: key.process_type,
            parent_process: key.parent_process,
            rule_id: key.rule_id,
            policy_name: key.policy_name,
            failed: key.failed,
            events: t.elevations as u64,
            first: time(t.first),
            last: time(t.last),
            users: t.users,
            devices: t.devices,
            device_names: t.device_names,
            justifications: [t.justification_low, t.justification_high]
                .into_iter()
                .flatten()
                .filter(|j| !j.trim().is_empty())
                .collect(),
        }
    }

    pub(super) fn file_key(&self) -> FileKey {
        (self.file_name.to_lowercase(), self.company_name.clone())
    }

    pub(super) fn denied(&self) -> bool {
        self.elevation_type == DENIED
    }
}

/// The values behind the numbers of the sets.
#[derive(Debug, Default)]
pub(super) struct Names {
    pub(super) users: Dictionary,
    pub(super) device_names: Dictionary,
    pub(super) folders: Dictionary,
}

/// The values behind one kind of number, indexed by number (`""` where no value has it), and
/// their order by value, worked out once: a window's suggestions list ~1 M users and devices
/// by name, so each list is sorted on integers and only the names it shows are copied.
#[derive(Debug, Default)]
pub(super) struct Dictionary {
    values: Vec<String>,
    /// Each number's place among the values sorted.
    place: Vec<u32>,
    /// The numbers in that order.
    by_place: Vec<u32>,
}

impl Dictionary {
    pub(super) fn new(values: Vec<String>) -> Dictionary {
        let mut by_place: Vec<u32> = (0..values.len() as u32).collect();
        by_place.sort_by(|&a, &b| values[a as usize].cmp(&values[b as usize]));
        let mut place = vec![0; values.len()];
        for (at, &number) in by_place.iter().enumerate() {
            place[number as usize] = at as u32;
        }
        Dictionary {
            values,
            place,
            by_place,
        }
    }

    /// The value of a number.
    pub(super) fn get(&self, number: u32) -> Option<&String> {
        self.values.get(number as usize)
    }

    /// The places of a set's numbers (a number no value has is left out), in no order.
    fn places<'s>(&'s self, set: &'s RoaringBitmap) -> impl Iterator<Item = u32> + 's {
        set.iter().filter_map(|n| self.place.get(n as usize).copied())
    }

    fn at(&self, place: u32) -> String {
        self.values[self.by_place[place as usize] as usize].clone()
    }

    /// The values of a set, sorted.
    pub(super) fn sorted(&self, set: &RoaringBitmap) -> Vec<String> {
        let mut places: Vec<u32> = self.places(set).collect();
        places.sort_unstable();
        places.into_iter().map(|p| self.at(p)).collect()
    }

    /// The first `n` of [`Dictionary::sorted`], without sorting the rest.
    pub(super) fn first_sorted(&self, set: &RoaringBitmap, n: usize) -> Vec<String> {
        let mut first: Vec<u32> = Vec::with_capacity(n + 1);
        for place in self.places(set) {
            if first.len() < n || first.last().is_some_and(|&last| place < last) {
                let at = first.partition_point(|&p| p < place);
                first.insert(at, place);
                first.truncate(n);
            }
        }
        first.into_iter().map(|p| self.at(p)).collect()
    }
}

/// A file as suggestions see it: lower-case name and publisher.
pub(super) type FileKey = (String, Option<String>);

/// Evidence accumulated over groups.
#[derive(Debug)]
pub(super) struct Acc<'a> {
    pub(super) names: &'a Names,
    pub(super) events: u64,
    pub(super) failed: u64,
    pub(super) users: RoaringBitmap,
    pub(super) devices: RoaringBitmap,
    pub(super) device_names: RoaringBitmap,
    pub(super) first: Option<DateTime<Utc>>,
    pub(super) last: Option<DateTime<Utc>>,
    pub(super) by_type: BTreeMap<String, u64>,
    pub(super) users_by_type: BTreeMap<String, RoaringBitmap>,
    pub(super) publishers: BTreeSet<String>,
    pub(super) hashes: BTreeSet<String>,
    /// version → hash, to find the build of the lowest and highest version.
    pub(super) versions: BTreeMap<String, String>,
    pub(super) folders: RoaringBitmap,
    pub(super) parents: BTreeSet<String>,
    pub(super) justifications: BTreeSet<String>,
    pub(super) certificates: BTreeSet<Option<String>>,
    pub(super) with_rule: u64,
    /// A representative group (the first one seen) for the version-info fields.
    pub(super) sample: Option<&'a Group>,
}

impl<'a> Acc<'a> {
    /// Nothing yet.
    pub(super) fn new(names: &'a Names) -> Acc<'a> {
        Acc {
            names,
            events: 0,
            failed: 0,
            users: RoaringBitmap::new(),
            devices: RoaringBitmap::new(),
            device_names: RoaringBitmap::new(),
            first: None,
            last: None,
            by_type: BTreeMap::new(),
            users_by_type: BTreeMap::new(),
            publishers: BTreeSet::new(),
            hashes: BTreeSet::new(),
            versions: BTreeMap::new(),
            folders: RoaringBitmap::new(),
            parents: BTreeSet::new(),
            justifications: BTreeSet::new(),
            certificates: BTreeSet::new(),
            with_rule: 0,
            sample: None,
        }
    }

    pub(super) fn add(&mut self, g: &'a Group) {
        self.events += g.events;
        if g.failed && !g.denied() {
            self.failed += g.events;
        }
        self.users |= &g.users;
        self.devices |= &g.devices;
        self.device_names |= &g.device_names;
        self.first = [self.first, g.first].into_iter().flatten().min();
        self.last = [self.last, g.last].into_iter().flatten().max();
        *self.by_type.entry(g.elevation_type.clone()).or_default() += g.events;
        *self.users_by_type.entry(g.elevation_type.clone()).or_default() |= &g.users;
        self.publishers.extend(g.company_name.clone());
        self.hashes.insert(g.hash.clone());
        if let Some(version) = &g.file_version {
            self.versions.insert(version.clone(), g.hash.clone());
        }
        self.folders |= &g.folders;
        self.parents.extend(g.parent_process.clone());
        self.justifications.extend(g.justifications.iter().cloned());
        self.certificates.extend(g.certificates.iter().cloned());
        if g.rule_id.is_some() {
            self.with_rule += g.events;
        }
        if self.sample.is_none() {
            self.sample = Some(g);
        }
    }

    pub(super) fn of(names: &'a Names, groups: impl IntoIterator<Item = &'a Group>) -> Acc<'a> {
        let mut acc = Acc::new(names);
        for g in groups {
            acc.add(g);
        }
        acc
    }

    pub(super) fn count(&self, elevation_type: &str) -> u64 {
        self.by_type.get(elevation_type).copied().unwrap_or(0)
    }

    pub(super) fn users_of(&self, elevation_type: &str) -> u64 {
        self.users_by_type.get(elevation_type).map_or(0, |u| u.len())
    }

    pub(super) fn denied(&self) -> u64 {
        self.count(DENIED)
    }

    /// The one certificate every build carries, if the file is signed consistently.
    pub(super) fn certificate(&self) -> Option<&str> {
        match (self.certificates.len(), self.certificates.first()) {
            (1, Some(Some(c))) => Some(c),
            _ => None,
        }
    }

    pub(super) fn versions_ordered(&self) -> Vec<String> {
        let mut versions: Vec<String> = self.versions.keys().cloned().collect();
        versions.sort_by(|a, b| compare_versions(a, b).then_with(|| a.cmp(b)));
        versions
    }

    /// The hash of the newest version seen (or the greatest hash when no version is known).
    pub(super) fn newest_hash(&self) -> String {
        self.versions_ordered()
            .last()
            .and_then(|v| self.versions.get(v).cloned())
            .or_else(|| self.hashes.last().cloned())
            .unwrap_or_default()
    }

    /// The folders the file ran from, by name.
    pub(super) fn folder_names(&self) -> Vec<String> {
        self.names.folders.sorted(&self.folders)
    }

    /// The evidence, without the names of every user and device (`userNames`, `deviceNames`):
    /// [`NameSets`] looks them up for the suggestions handed out.
    pub(super) fn evidence(&self) -> Evidence {
        Evidence {
            events: self.events,
            users: self.users.len(),
            devices: self.devices.len(),
            first_seen: self.first,
            last_seen: self.last,
            by_elevation_type: self.by_type.clone(),
            failed: self.failed,
            publishers: self.publishers.iter().cloned().collect(),
            hashes: self.hashes.iter().cloned().collect(),
            versions: self.versions_ordered(),
            newest_hash: (!self.hashes.is_empty()).then(|| self.newest_hash()),
            folders: self.folder_names(),
            parent_processes: self.parents.iter().cloned().collect(),
            sample_justifications: self.justifications.iter().take(3).cloned().collect(),
            sample_users: self.names.users.first_sorted(&self.users, 5),
            user_names: Vec::new(),
            device_names: Vec::new(),
            support_requests: None,
        }
    }
}

pub(super) fn stable_id(kind: SuggestionKind, subject: &str) -> String {
    let digest = Sha256::digest(format!("{}\u{1f}{subject}", kind.as_str()).as_bytes());
    format!("{}-{}", kind.as_str(), &hex::encode(digest)[..12])
}

pub(super) fn score(kind: SuggestionKind, events: u64, users: u64) -> f64 {
    let raw = kind.weight() * (1.0 + events as f64).log2() * (1.0 + users as f64).log2();
    (raw * 10.0).round() / 10.0
}

/// One user's unmanaged elevations in the window.
#[derive(Debug, Clone)]
pub(super) struct UserUnmanaged {
    /// The user's number ([`Names::users`]).
    pub(super) user: u32,
    pub(super) upn: String,
    pub(super) events: u64,
    /// Distinct devices.
    pub(super) devices: u64,
    pub(super) first: Option<DateTime<Utc>>,
    pub(super) last: Option<DateTime<Utc>>,
    /// Each file the user elevated unmanaged, by name, with its elevations.
    pub(super) files: Vec<(String, u64)>,
}

/// A rule known to the tenant, merged from imports and events by (policy, file).
#[derive(Debug, Clone)]
pub(super) struct KnownRule {
    pub(super) reference: RuleRef,
    pub(super) imported: Option<ElevationRule>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dictionary_sorts_a_set_by_value_and_its_first_values_agree() {
        let values: Vec<String> = ["mia", "", "bo", "zoe", "al", "bo2"].map(String::from).to_vec();
        let names = Dictionary::new(values);
        // 9 has no value: left out.
        let set: RoaringBitmap = [0, 2, 3, 4, 5, 9].into_iter().collect();
        assert_eq!(names.sorted(&set), ["al", "bo", "bo2", "mia", "zoe"]);
        for n in 0..7 {
            assert_eq!(names.first_sorted(&set, n), names.sorted(&set)[..n.min(5)], "first {n}");
        }
        let with_empty: RoaringBitmap = [1, 3].into_iter().collect();
        assert_eq!(names.sorted(&with_empty), ["", "zoe"]);
        assert_eq!(names.get(3).map(String::as_str), Some("zoe"));
    }
}
