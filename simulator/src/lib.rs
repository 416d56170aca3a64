//! `simulator` is the fleet simulator: a deterministic generator of a realistic Windows fleet
//! running the EPM agent, used by the demo, the tests and the benchmarks.
//!
//! It owns the simulated world (users, devices, an application catalogue, elevation rules
//! and policies), the events that world produces, filtered by each device's reporting level
//! exactly as an agent would, and the **ground truth**: every figure the reports must show,
//! computed straight from the generated events. It must not use the warehouse's tables or the
//! query engine to compute that truth; only the shared event model and the definitions of
//! managed and of reporting levels come from `warehouse`.
//!
//! The same seed, fleet shape and end date always give byte-identical output.
//!
//! # Layout
//!
//! * [`catalog`]: files, publishers, popularity and version releases (hash changes).
//! * [`world`]: users, devices, policies and rules, and who acts out the planted patterns.
//! * [`generate`]: what each device does each day, and its upload batches.
//! * [`truth`]: the ground truth, accumulated batch by batch.
//! * [`requests`]: the support-approved requests the world implies, and their truth.

pub mod catalog;
pub mod generate;
mod names;
pub mod requests;
pub mod truth;
pub mod world;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use warehouse::AgentBatch;

pub use truth::GroundTruth;
pub use world::{Device, World};

/// The shape of a simulated fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seeds every random choice.
    pub seed: u64,
    /// Number of devices.
    pub devices: u32,
    /// Days simulated, ending the day before `end`.
    pub days: u32,
    /// The window ends at midnight UTC at the start of this date (exclusive).
    pub end: NaiveDate,
    /// Tenant name; UPNs are `first.last@{tenant}.com`.
    pub tenant: String,
    /// Agents upload one batch per this many hours (when they have something to send).
    pub upload_interval_hours: u32,
    /// Multiplies every user's elevation rate (1.0 is realistic; benchmarks raise it).
    pub rate: f64,
}

/// A fleet shape the simulator refuses, with the reason.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A setting is out of range.
    #[error("{0}")]
    InvalidConfig(String),
    /// Writing the output failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// What was being written.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
}

impl SimConfig {
    /// A fleet of `devices` devices over `days` days ending before `end`, at realistic rates.
    pub fn new(seed: u64, devices: u32, days: u32, end: NaiveDate) -> Self {
        SimConfig {
            seed,
            devices,
            days,
            end,
            tenant: "contoso".to_owned(),
            upload_interval_hours: 6,
            rate: 1.0,
        }
    }

    /// Checks the ranges the simulator supports.
    pub fn validate(&self) -> Result<(), SimError> {
        let fail = |m: String| Err(SimError::InvalidConfig(m));
        if self.devices == 0 || self.devices > 1_000_000 {
            return fail(format!("--devices must be between 1 and 1000000, not {}", self.devices));
        }
        if self.days == 0 || self.days > 365 {
            return fail(format!("--days must be between 1 and 365, not {}", self.days));
        }
        if !(1..=24).contains(&self.upload_interval_hours) {
            return fail(format!(
                "--upload-interval-hours must be between 1 and 24, not {}",
                self.upload_interval_hours
            ));
        }
        if !(self.rate > 0.0 && self.rate <= 1000.0) {
            return fail(format!("--rate must be above 0 and at most 1000, not {}", self.rate));
        }
        if self.tenant.is_empty() || !self.tenant.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return fail(format!(
                "--tenant must be letters, digits and dashes, not {:?}",
                self.tenant
            ));
        }
        Ok(())
    }

    /// First instant of the window.
    pub fn window_start(&self) -> DateTime<Utc> {
        generate::midnight(self.end) - Duration::days(i64::from(self.days))
    }

    /// First day of the window.
    pub fn from_date(&self) -> NaiveDate {
        self.window_start().date_naive()
    }
}

/// Runs the simulation, handing every batch to `sink` in a deterministic order (device by
/// device, each device's batches in time order), and returns the world and its ground truth.
pub fn simulate<E>(
    config: &SimConfig,
    mut sink: impl FnMut(&World, &Device, &AgentBatch) -> Result<(), E>,
) -> Result<(World, GroundTruth), E> {
    let world = world::build(config.seed, &config.tenant, config.devices, config.days);
    let samplers = generate::Samplers::new(&world);
    let mut truth = truth::TruthBuilder::new(&world, config.seed, config.from_date(), config.end);
    for device in &world.devices {
        let run = generate::run_device(&world, config, &samplers, device);
        truth.add_generated(&run);
        for batch in &run.batches {
            truth.add_batch(batch);
            sink(&world, device, batch)?;
        }
    }
    let truth = truth.finish();
    Ok((world, truth))
}

/// What [`write_dir`] wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// Folder holding one subfolder of batches per device.
    pub batches_dir: PathBuf,
    /// The ground-truth file.
    pub ground_truth: PathBuf,
    /// The world file (catalogue, users, devices, policies, rules).
    pub world: PathBuf,
    /// The tenant's elevation rules policies as Intune exports them, one file per policy.
    pub policies: Vec<PathBuf>,
    /// The truth itself.
    pub truth: GroundTruth,
}

/// Simulates into `dir`: `batches/<device>/<nnnn>.json` (upload-ready bodies),
/// `ground-truth.json`, `world.json` and `intune-policies/NN-name.json` (the tenant's rules
/// policies as Intune exports them, for `elevation rules import`).
pub fn write_dir(config: &SimConfig, dir: &Path) -> Result<Written, SimError> {
    config.validate()?;
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| SimError::Io { path, source }
    };
    let batches_dir = dir.join("batches");
    std::fs::create_dir_all(&batches_dir).map_err(io(&batches_dir))?;
    let mut current: Option<(usize, u32)> = None;
    let (world, truth) = simulate(config, |_world, device, batch| {
        let sequence = match &mut current {
            Some((index, n)) if *index == device.index => {
                *n += 1;
                *n
            }
            _ => {
                current = Some((device.index, 0));
                std::fs::create_dir_all(batches_dir.join(&device.name)).map_err(io(&batches_dir))?;
                0
            }
        };
        let path = batches_dir.join(&device.name).join(format!("{sequence:04}.json"));
        let body = serde_json::to_vec(batch).expect("batches serialise");
        std::fs::write(&path, body).map_err(io(&path))
    })?;
    let ground_truth = dir.join("ground-truth.json");
    let mut text = serde_json::to_vec_pretty(&truth).expect("truth serialises");
    text.push(b'\n');
    std::fs::write(&ground_truth, text).map_err(io(&ground_truth))?;
    let world_path = dir.join("world.json");
    let mut text = serde_json::to_vec_pretty(&world).expect("world serialises");
    text.push(b'\n');
    std::fs::write(&world_path, text).map_err(io(&world_path))?;
    let policies_dir = dir.join("intune-policies");
    std::fs::create_dir_all(&policies_dir).map_err(io(&policies_dir))?;
    let mut policies = Vec::new();
    for (index, policy) in world.rules_policies().iter().enumerate() {
        let slug: String = policy
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let path = policies_dir.join(format!("{index:02}-{slug}.json"));
        let mut text = serde_json::to_vec_pretty(&policy.to_intune()).expect("policies serialise");
        text.push(b'\n');
        std::fs::write(&path, text).map_err(io(&path))?;
        policies.push(path);
    }
    Ok(Written {
        batches_dir,
        ground_truth,
        world: world_path,
        policies,
        truth,
    })
}
