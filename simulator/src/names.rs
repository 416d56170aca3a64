//! Word lists for people, companies and products. Plain lists keep the output stable across
//! crate upgrades, which a faker library would not promise.

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

const FIRST: &[&str] = &[
    "ada",
    "alan",
    "grace",
    "linus",
    "margaret",
    "ken",
    "barbara",
    "dennis",
    "frances",
    "john",
    "radia",
    "edsger",
    "katherine",
    "tim",
    "hedy",
    "donald",
    "sophie",
    "vint",
    "karen",
    "guido",
    "anita",
    "bjarne",
    "shafi",
    "niklaus",
    "lynn",
    "james",
    "mary",
    "robert",
    "carol",
    "david",
    "elena",
    "farid",
    "giulia",
    "hiro",
    "ines",
    "jonas",
    "kofi",
    "lena",
    "mateo",
    "nadia",
    "oscar",
    "priya",
    "quentin",
    "rosa",
    "samir",
    "tara",
    "umar",
    "vera",
    "wei",
    "yara",
];

const LAST: &[&str] = &[
    "lovelace",
    "turing",
    "hopper",
    "torvalds",
    "hamilton",
    "thompson",
    "liskov",
    "ritchie",
    "allen",
    "backus",
    "perlman",
    "dijkstra",
    "johnson",
    "berners",
    "lamarr",
    "knuth",
    "wilson",
    "cerf",
    "jones",
    "rossum",
    "borg",
    "stroustrup",
    "goldwasser",
    "wirth",
    "conway",
    "gosling",
    "keller",
    "kahn",
    "shaw",
    "clark",
    "novak",
    "haddad",
    "romano",
    "tanaka",
    "ferreira",
    "berg",
    "mensah",
    "fischer",
    "garcia",
    "petrova",
    "lindqvist",
    "iyer",
    "dubois",
    "santos",
    "kapoor",
    "moreau",
    "rahman",
    "silva",
    "zhang",
    "nasser",
];

const WORDS_A: &[&str] = &[
    "Fast", "Smart", "Data", "Cloud", "Net", "Quick", "Secure", "Easy", "Power", "Meta", "Hyper", "Blue", "Green",
    "Red", "Sky", "Deep", "Open", "Prime", "Ultra", "Micro", "Nova", "Astro", "Pixel", "Vector", "Delta", "Terra",
    "Zen", "Iron", "Swift", "Bright",
];

const WORDS_B: &[&str] = &[
    "Sync", "Scan", "Flow", "Report", "Ledger", "Invoice", "Backup", "Print", "Capture", "Convert", "Monitor",
    "Deploy", "Query", "Studio", "Viewer", "Editor", "Manager", "Tracker", "Mapper", "Builder", "Runner", "Bridge",
    "Vault", "Agent", "Console", "Desk", "Link", "Graph", "Forge", "Pilot",
];

const COMPANY_SUFFIX: &[&str] = &[
    "Ltd",
    "GmbH",
    "LLC",
    "Inc.",
    "Software S.A.",
    "Technologies Co., Ltd.",
    "Solutions BV",
    "Labs AB",
];

/// Publishers everyone in IT recognises; generated files signed by a "known" company pick
/// from these.
pub(crate) const KNOWN_PUBLISHERS: &[&str] = &[
    "Microsoft Corporation",
    "Google LLC",
    "Adobe Inc.",
    "Oracle America, Inc.",
    "JetBrains s.r.o.",
    "Cisco Systems, Inc.",
    "Dell Inc.",
    "HP Inc.",
    "Lenovo",
    "Intel Corporation",
    "NVIDIA Corporation",
    "VMware, Inc.",
    "Citrix Systems, Inc.",
    "SAP SE",
    "Autodesk, Inc.",
    "Zoom Video Communications, Inc.",
    "Mozilla Corporation",
    "Docker Inc",
    "Python Software Foundation",
    "OpenJS Foundation",
];

/// A user's first and last name.
pub(crate) fn person(rng: &mut ChaCha8Rng) -> (&'static str, &'static str) {
    (
        FIRST.choose(rng).expect("non-empty"),
        LAST.choose(rng).expect("non-empty"),
    )
}

/// A company nobody has heard of.
pub(crate) fn company(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}{} {}",
        WORDS_A.choose(rng).expect("non-empty"),
        WORDS_B.choose(rng).expect("non-empty").to_lowercase(),
        COMPANY_SUFFIX.choose(rng).expect("non-empty")
    )
}

/// A product name and the file stem derived from it.
pub(crate) fn product(rng: &mut ChaCha8Rng) -> (String, String) {
    let a = WORDS_A.choose(rng).expect("non-empty");
    let b = WORDS_B.choose(rng).expect("non-empty");
    let edition = if rng.random_bool(0.3) { " Pro" } else { "" };
    (format!("{a}{b}{edition}"), format!("{a}{b}"))
}

/// Justifications users type; none of them names a person.
pub(crate) const JUSTIFICATIONS: &[&str] = &[
    "Installing the update the vendor asked for",
    "Need to debug a service running as admin",
    "Driver update for the docking station",
    "Build requires writing to Program Files",
    "Customer demo tomorrow, need the new version",
    "Capturing network traffic for a support ticket",
    "Printer setup after office move",
    "Database migration for the finance team",
    "VPN client repair",
    "Certificate import for the test environment",
    "Reinstalling after a failed update",
    "Running the month-end close tool",
    "Installing a package the project depends on",
    "Checking a process that hangs at start-up",
    "Disk cleanup before the OS upgrade",
    "Required by the onboarding checklist",
];
