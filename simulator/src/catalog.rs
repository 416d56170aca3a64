//! The application catalogue: files people elevate, who signed them, how popular they are
//! and when new versions (new hashes) come out.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::names;

mod curated;
use Category::*;
use Signing::*;
use curated::CURATED;

/// Who stands behind a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Signing {
    /// Signed by a well-known software company the tenant trusts.
    KnownPublisher,
    /// Signed, but by a company nobody in the tenant has heard of.
    UnknownPublisher,
    /// Not signed at all.
    Unsigned,
}

/// What kind of work a file belongs to; user profiles prefer some categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Category {
    /// Compilers, IDEs, runtimes, database tools.
    Developer,
    /// Admin consoles, network and disk tools.
    ItTools,
    /// Accounting, ERP, banking clients.
    Business,
    /// Everyday apps that sometimes ask for elevation (printers, VPN, drivers).
    General,
    /// Setup programs and MSI packages run from the Downloads folder.
    Installer,
    /// Updaters the system elevates on its own.
    Updater,
}

/// One version of an application: a distinct file with its own hash.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppVersion {
    /// `major.minor.build.revision`.
    pub version: String,
    /// SHA-256, upper-case hex.
    pub hash: String,
    /// Day (relative to the first day of the window; negative = before) it was released.
    pub released_day: i32,
}

/// One application of the catalogue.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    /// Position in the catalogue.
    pub index: usize,
    /// File name, for example `git.exe`.
    pub file_name: String,
    /// Version-info internal name.
    pub internal_name: String,
    /// Version-info product name.
    pub product_name: String,
    /// Version-info description.
    pub description: String,
    /// Version-info company name (`None` for some unsigned tools).
    pub company_name: Option<String>,
    /// Hash of the signing certificate (`None` when unsigned).
    pub certificate_payload: Option<String>,
    /// Who signed it.
    pub signing: Signing,
    /// What it is for.
    pub category: Category,
    /// Folder it runs from; `{user}` is replaced by the user's profile folder name.
    pub folder: String,
    /// Versions in release order; the last released one on or before a day is current.
    pub versions: Vec<AppVersion>,
    /// Relative popularity (Zipf by rank); 0 for files nobody runs.
    pub popularity: f64,
    /// Files this one starts elevated (by catalogue index).
    pub children: Vec<usize>,
    /// True for updaters the system elevates without user interaction.
    pub system_initiated: bool,
}

impl App {
    /// The full path on a device, for the given user's profile folder.
    pub fn path_for(&self, profile_folder: &str) -> String {
        format!("{}\\{}", self.folder.replace("{user}", profile_folder), self.file_name)
    }

    /// The version a device sees on `day` given its rollout lag in days.
    pub fn version_on(&self, day: i32, lag: i32) -> &AppVersion {
        self.versions
            .iter()
            .rev()
            .find(|v| v.released_day + lag <= day)
            .unwrap_or(&self.versions[0])
    }
}

/// The curated files the simulator plants its patterns on.
pub mod planted {
    /// A signed app many admin users elevate unmanaged.
    pub const UNMANAGED_SIGNED: &str = "procexp64.exe";
    /// A file support keeps approving for several users.
    pub const SUPPORT_APPROVED: &str = "Wireshark.exe";
    /// An app whose hash churns across versions while a hash rule pins the first one.
    pub const HASH_CHURN: &str = "ZoomInstallerFull.exe";
    /// The target of a rule that never fires.
    pub const STALE_RULE: &str = "erpclient.exe";
    /// A file users keep trying and a deny rule keeps refusing.
    pub const FREQUENTLY_DENIED: &str = "nmap.exe";
    /// A parent whose rule requires its children to have their own rule ...
    pub const CHILD_PARENT: &str = "vs_installer.exe";
    /// ... and the child that has none.
    pub const CHILD: &str = "vs_installershell.exe";

    /// Every planted file: kept out of the background sampling so their evidence comes only
    /// from the planted behaviour.
    pub const ALL: &[&str] = &[
        UNMANAGED_SIGNED,
        SUPPORT_APPROVED,
        HASH_CHURN,
        STALE_RULE,
        FREQUENTLY_DENIED,
        CHILD_PARENT,
        CHILD,
    ];
}

/// How many files the catalogue holds in all.
pub const CATALOGUE_SIZE: usize = 240;

/// Builds the catalogue: the curated files, then generated ones up to [`CATALOGUE_SIZE`],
/// with versions released over a window of `days` days.
pub fn build(rng: &mut ChaCha8Rng, days: u32) -> Vec<App> {
    let days = days.max(1) as i32;
    let unknown_publishers: Vec<String> = (0..18).map(|_| names::company(rng)).collect();
    let mut apps: Vec<App> = Vec::with_capacity(CATALOGUE_SIZE);
    for (file, internal, product, description, company, signing, category, folder) in CURATED {
        let company_name = Some((*company).to_owned());
        apps.push(App {
            index: apps.len(),
            file_name: (*file).to_owned(),
            internal_name: (*internal).to_owned(),
            product_name: (*product).to_owned(),
            description: (*description).to_owned(),
            certificate_payload: certificate_for(*signing, company),
            company_name,
            signing: *signing,
            category: *category,
            folder: (*folder).to_owned(),
            versions: Vec::new(),
            popularity: 0.0,
            children: Vec::new(),
            system_initiated: *category == Updater,
        });
    }
    let categories = [
        Developer, Developer, ItTools, Business, General, General, Installer, Installer,
    ];
    let mut taken: std::collections::BTreeSet<String> = apps.iter().map(|a| a.file_name.to_lowercase()).collect();
    while apps.len() < CATALOGUE_SIZE {
        let (product, stem) = names::product(rng);
        let category = *categories.choose(rng).expect("non-empty");
        let file_name = match category {
            Installer => format!("{stem}Setup.exe"),
            _ if rng.random_bool(0.08) => format!("{stem}.msi"),
            _ if rng.random_bool(0.05) => format!("{stem}.ps1"),
            _ => format!("{stem}.exe"),
        };
        if !taken.insert(file_name.to_lowercase()) {
            continue;
        }
        let roll: f64 = rng.random();
        let (signing, company) = if roll < 0.45 {
            (
                KnownPublisher,
                names::KNOWN_PUBLISHERS.choose(rng).expect("non-empty").to_string(),
            )
        } else if roll < 0.75 {
            (
                UnknownPublisher,
                unknown_publishers.choose(rng).expect("non-empty").clone(),
            )
        } else {
            (Unsigned, unknown_publishers.choose(rng).expect("non-empty").clone())
        };
        // Some unsigned tools do not even fill in the version-info company name.
        let company_name = if signing == Unsigned && rng.random_bool(0.5) {
            None
        } else {
            Some(company.clone())
        };
        let folder = match category {
            Installer => "C:\\Users\\{user}\\Downloads".to_owned(),
            ItTools if rng.random_bool(0.4) => "C:\\Tools".to_owned(),
            _ => format!(
                "C:\\Program Files{}\\{}\\{product}",
                if rng.random_bool(0.3) { " (x86)" } else { "" },
                company.split([' ', ',']).next().unwrap_or("Vendor")
            ),
        };
        apps.push(App {
            index: apps.len(),
            internal_name: stem.clone(),
            description: product.clone(),
            product_name: product,
            certificate_payload: certificate_for(signing, &company),
            company_name,
            file_name,
            signing,
            category,
            folder,
            versions: Vec::new(),
            popularity: 0.0,
            children: Vec::new(),
            system_initiated: false,
        });
    }

    // Popularity: Zipf over a shuffled rank order, curated files first so that familiar
    // names top the reports. Planted files get their events from planted behaviour only.
    let mut rank = 1.0_f64;
    for app in apps.iter_mut() {
        if planted::ALL.contains(&app.file_name.as_str()) {
            continue;
        }
        app.popularity = 1.0 / rank.powf(1.1);
        rank += 1.0;
    }

    // Versions: most files have one or two versions before the window; about a third get one
    // update inside it; the hash-churn file gets five releases inside the window.
    for app in apps.iter_mut() {
        let before = rng.random_range(1..=2);
        let mut versions = Vec::new();
        let (major, minor) = (rng.random_range(1..30), rng.random_range(0..10));
        for k in 0..before {
            let released_day = -rng.random_range(30..400) + k as i32 * 15;
            versions.push(version(rng, major, minor, k, released_day));
        }
        // Releases are numbered in the order they come out: the lowest version first.
        let mut release_days: Vec<i32> = versions.iter().map(|v| v.released_day).collect();
        release_days.sort_unstable();
        versions.sort_by(|a, b| warehouse::policy::compare_versions(&a.version, &b.version));
        for (v, day) in versions.iter_mut().zip(release_days) {
            v.released_day = day;
        }
        if app.file_name == planted::HASH_CHURN {
            // Five releases spread evenly over the window: the pinned hash rule breaks at each.
            versions.truncate(1);
            versions[0].released_day = -60;
            for k in 1..=5 {
                let day = ((days * k) / 6).max(0);
                versions.push(version(rng, major, minor, k as u32, day));
            }
        } else if !planted::ALL.contains(&app.file_name.as_str()) && days > 2 && rng.random_bool(0.3) {
            let day = rng.random_range(1..days);
            versions.push(version(rng, major, minor, before, day));
        }
        app.versions = versions;
    }

    // Children: installers and some IDEs start elevated helpers.
    let index_of = |name: &str, apps: &[App]| apps.iter().position(|a| a.file_name == name).expect("curated");
    let vs = index_of(planted::CHILD_PARENT, &apps);
    let vs_child = index_of(planted::CHILD, &apps);
    apps[vs].children.push(vs_child);
    let python = index_of("python.exe", &apps);
    let pip = index_of("pip.exe", &apps);
    apps[python].children.push(pip);
    let node = index_of("node.exe", &apps);
    let npm = index_of("npm.cmd", &apps);
    apps[node].children.push(npm);
    let msiexec = index_of("msiexec.exe", &apps);
    for (index, app) in apps.iter_mut().enumerate() {
        if app.category == Installer && index != msiexec && rng.random_bool(0.5) {
            app.children.push(msiexec);
        }
    }
    apps
}

fn version(rng: &mut ChaCha8Rng, major: u32, minor: u32, step: u32, released_day: i32) -> AppVersion {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes);
    AppVersion {
        version: format!("{major}.{}.{}.0", minor + step, rng.random_range(100..9999)),
        hash: hex::encode_upper(bytes),
        released_day,
    }
}

/// Signed files carry the hash of their publisher's certificate: the same for every file
/// the publisher signs, which is what a certificate rule matches on.
fn certificate_for(signing: Signing, company: &str) -> Option<String> {
    match signing {
        Signing::Unsigned => None,
        _ => {
            use sha2::{Digest, Sha256};
            Some(hex::encode_upper(Sha256::digest(
                format!("certificate:{company}").as_bytes(),
            )))
        }
    }
}
