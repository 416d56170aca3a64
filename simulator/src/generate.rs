//! Event generation: what each device does each day, filtered the way its agent filters,
//! cut into upload batches.

use chrono::{Datelike, Duration, TimeZone, Utc, Weekday};
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Poisson;
use warehouse::{AgentBatch, DiagnosticEvent, ElevationEvent, ElevationType, ProcessType, ReportingLevel};

use crate::SimConfig;
use crate::catalog::{AppVersion, planted};
use crate::names::JUSTIFICATIONS;
use crate::world::{ChildBehavior, Device, Profile, Rule, RuleType, User, World};

/// Exit code of a denied elevation (ERROR_ACCESS_DENIED).
const RESULT_DENIED_BY_RULE: i32 = 5;
/// Exit code when support refused the request (ERROR_CANCELLED).
const RESULT_DENIED_BY_SUPPORT: i32 = 1223;
/// Exit codes of elevated processes that ran but failed.
const FAILURE_CODES: &[i32] = &[1, 2, 740, 1603];

/// What one device produced over the window.
#[derive(Debug, Default)]
pub struct DeviceRun {
    /// The batches its agent uploads, in time order.
    pub batches: Vec<AgentBatch>,
    /// Elevations that happened on the device.
    pub generated_elevations: u64,
    /// Diagnostic events the agent recorded.
    pub generated_diagnostics: u64,
    /// Elevations the agent did not send because of its reporting level.
    pub filtered_elevations: u64,
    /// Diagnostic events the agent did not send because of its reporting level.
    pub filtered_diagnostics: u64,
}

/// Weighted app choice per user profile, built once per run.
#[derive(Debug)]
pub struct Samplers {
    by_profile: Vec<(Profile, WeightedIndex<f64>)>,
    updaters: Vec<usize>,
}

impl Samplers {
    /// Weights each catalogue file by popularity × the profile's affinity for its category.
    pub fn new(world: &World) -> Samplers {
        let profiles = [Profile::Developer, Profile::ItStaff, Profile::Finance, Profile::General];
        let by_profile = profiles
            .iter()
            .map(|profile| {
                let weights: Vec<f64> = world
                    .apps
                    .iter()
                    .map(|app| app.popularity * profile.affinity(app.category))
                    .collect();
                (*profile, WeightedIndex::new(weights).expect("some file has weight"))
            })
            .collect();
        let updaters = world
            .apps
            .iter()
            .filter(|a| a.system_initiated)
            .map(|a| a.index)
            .collect();
        Samplers { by_profile, updaters }
    }

    fn pick(&self, profile: Profile, rng: &mut ChaCha8Rng) -> usize {
        let (_, index) = self
            .by_profile
            .iter()
            .find(|(p, _)| *p == profile)
            .expect("every profile");
        index.sample(rng)
    }
}

/// How an elevation was decided.
struct Decision<'w> {
    elevation_type: ElevationType,
    result: i32,
    rule: Option<&'w Rule>,
    justification: bool,
}

/// Everything one device does over the window.
pub fn run_device(world: &World, config: &SimConfig, samplers: &Samplers, device: &Device) -> DeviceRun {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    // One independent stream per device: the output does not depend on generation order.
    rng.set_stream(1 + device.index as u64);
    let user = &world.users[device.user];
    let mut device_gen = DeviceGen {
        world,
        device,
        user,
        rng,
        elevations: Vec::new(),
        diagnostics: Vec::new(),
    };
    for day in 0..config.days as i32 {
        if device.silent_from_day.is_some_and(|silent| day >= silent) {
            break;
        }
        device_gen.day(config, samplers, day);
    }
    let DeviceGen {
        mut rng,
        mut elevations,
        mut diagnostics,
        ..
    } = device_gen;

    let mut run = DeviceRun {
        generated_elevations: elevations.len() as u64,
        generated_diagnostics: diagnostics.len() as u64,
        ..DeviceRun::default()
    };
    // The agent filters before it uploads, exactly as its level says.
    let before = elevations.len();
    elevations.retain(|e| device.level.allows_elevation(e.elevation_type));
    run.filtered_elevations = (before - elevations.len()) as u64;
    if !device.level.allows_diagnostics() {
        run.filtered_diagnostics = diagnostics.len() as u64;
        diagnostics.clear();
    }
    if device.level == ReportingLevel::None {
        return run; // nothing leaves the device
    }
    elevations.sort_by(|a, b| a.event_date_time.cmp(&b.event_date_time).then(a.id.cmp(&b.id)));
    diagnostics.sort_by_key(|d| (d.event_date_time, d.event_id));

    // One batch per upload interval that has anything to send.
    let interval = Duration::hours(i64::from(config.upload_interval_hours.max(1)));
    let start = config.window_start();
    let slot = |at: chrono::DateTime<Utc>| (at - start).num_seconds() / interval.num_seconds();
    let mut e = elevations.into_iter().peekable();
    let mut d = diagnostics.into_iter().peekable();
    loop {
        let next = match (e.peek(), d.peek()) {
            (Some(x), Some(y)) => slot(x.event_date_time).min(slot(y.event_date_time)),
            (Some(x), None) => slot(x.event_date_time),
            (None, Some(y)) => slot(y.event_date_time),
            (None, None) => break,
        };
        let mut batch = AgentBatch {
            batch_id: uuid(&mut rng),
            device_id: device.id.clone(),
            device_name: device.name.clone(),
            agent_version: device.agent_version.clone(),
            reporting_level: device.level,
            elevations: Vec::new(),
            diagnostics: Vec::new(),
        };
        while let Some(x) = e.next_if(|x| slot(x.event_date_time) == next) {
            batch.elevations.push(x);
        }
        while let Some(y) = d.next_if(|y| slot(y.event_date_time) == next) {
            batch.diagnostics.push(y);
        }
        run.batches.push(batch);
    }
    run
}

struct DeviceGen<'w> {
    world: &'w World,
    device: &'w Device,
    user: &'w User,
    rng: ChaCha8Rng,
    elevations: Vec<ElevationEvent>,
    diagnostics: Vec<DiagnosticEvent>,
}

impl<'w> DeviceGen<'w> {
    fn day(&mut self, config: &SimConfig, samplers: &Samplers, day: i32) {
        let date = config.window_start() + Duration::days(i64::from(day));
        let weekend = matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
        let activity = if weekend { 0.15 } else { 1.0 };
        let planted = &self.world.planted;
        let me = self.user.index;

        // Everyday elevations.
        let lambda = self.user.profile.daily_rate() * activity * config.rate;
        if lambda > 0.0 {
            let n = Poisson::new(lambda).expect("positive rate").sample(&mut self.rng) as usize;
            for _ in 0..n {
                let app = samplers.pick(self.user.profile, &mut self.rng);
                let at = self.time_on(date);
                self.elevate(app, day, at, false);
            }
        }
        // System-initiated updaters, for everyone.
        if !samplers.updaters.is_empty() && self.rng.random_bool((0.3 * config.rate).min(1.0)) {
            let app = *samplers.updaters.choose(&mut self.rng).expect("non-empty");
            let at = self.time_on(date);
            self.system_elevation(app, day, at);
        }

        // Planted behaviour, on the user's primary device only.
        if self.device.is_primary {
            if planted.unmanaged_signed.contains(&me) && self.rng.random_bool(0.5 * activity) {
                let times = self.rng.random_range(1..=2);
                self.elevate_named(planted::UNMANAGED_SIGNED, date, day, times, false);
            }
            if planted.support_approved.contains(&me) && self.rng.random_bool(0.4 * activity) {
                self.elevate_named(planted::SUPPORT_APPROVED, date, day, 1, true);
            }
            if planted.hash_churn.contains(&me) {
                // Install each new release the day it reaches this device.
                let app = self.world.app_named(planted::HASH_CHURN);
                let lag = self.device.update_lag_days;
                let releases_today = self.world.apps[app]
                    .versions
                    .iter()
                    .filter(|v| v.released_day >= 0 && v.released_day + lag == day)
                    .count();
                self.elevate_named(planted::HASH_CHURN, date, day, releases_today, true);
            }
            if planted.frequently_denied.contains(&me) && self.rng.random_bool(0.5 * activity) {
                let times = self.rng.random_range(1..=3);
                self.elevate_named(planted::FREQUENTLY_DENIED, date, day, times, false);
            }
            if planted.child_process.contains(&me) && self.rng.random_bool(0.3 * activity) {
                self.elevate_named(planted::CHILD_PARENT, date, day, 1, false);
            }
        }

        // Diagnostics: the agent's health, kept only for the last 90 days of the window
        // (the diagnostics table's retention).
        if config.days as i32 - day <= 90 {
            self.diagnostics_for(date);
        }
    }

    /// The user elevates the named catalogue file `times` times during `date`.
    fn elevate_named(
        &mut self,
        file_name: &str,
        date: chrono::DateTime<Utc>,
        day: i32,
        times: usize,
        always_approved: bool,
    ) {
        let app = self.world.app_named(file_name);
        for _ in 0..times {
            let at = self.time_on(date);
            self.elevate(app, day, at, always_approved);
        }
    }

    /// A working-hours instant on `date`, millisecond precision.
    fn time_on(&mut self, date: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
        let seconds = if self.rng.random_bool(0.9) {
            self.rng.random_range(7 * 3600..19 * 3600)
        } else {
            self.rng.random_range(0..24 * 3600)
        };
        date + Duration::seconds(seconds) + Duration::milliseconds(self.rng.random_range(0..1000))
    }

    fn version_of(&self, app: usize, day: i32) -> &'w AppVersion {
        self.world.apps[app].version_on(day, self.device.update_lag_days)
    }

    /// A user elevates `app`, and possibly its children.
    fn elevate(&mut self, app: usize, day: i32, at: chrono::DateTime<Utc>, always_approved: bool) {
        let version = self.version_of(app, day);
        let decision = self.decide(app, version, always_approved);
        let parent_name =
            if matches!(self.user.profile, Profile::Developer | Profile::ItStaff) && self.rng.random_bool(0.3) {
                if self.rng.random_bool(0.5) {
                    "powershell.exe"
                } else {
                    "cmd.exe"
                }
            } else {
                "explorer.exe"
            };
        let denied = decision.elevation_type == ElevationType::Denied;
        let parent_rule = decision.rule;
        let parent_type = decision.elevation_type;
        self.push(app, version, at, decision, ProcessType::Parent, parent_name, false);
        if denied {
            return; // a process that never ran starts no children
        }
        let children = self.world.apps[app].children.clone();
        for child in children {
            // The planted child is started every time; others now and then.
            if self.world.apps[child].file_name != planted::CHILD && !self.rng.random_bool(0.5) {
                continue;
            }
            let child_version = self.version_of(child, day);
            let child_decision = self.decide_child(parent_type, parent_rule, child, child_version);
            let child_at = at + Duration::seconds(self.rng.random_range(2..60));
            let parent_file = self.world.apps[app].file_name.clone();
            self.push(
                child,
                child_version,
                child_at,
                child_decision,
                ProcessType::Child,
                &parent_file,
                false,
            );
        }
    }

    /// An updater elevated by the system.
    fn system_elevation(&mut self, app: usize, day: i32, at: chrono::DateTime<Utc>) {
        let version = self.version_of(app, day);
        let decision = match self.world.matching_rule(app, &version.hash, &version.version) {
            Some(rule) => self.rule_decision(rule),
            // An updater without a (current) rule needs approval like anything else.
            None => self.default_response(false),
        };
        self.push(app, version, at, decision, ProcessType::Parent, "svchost.exe", true);
    }

    fn decide(&mut self, app: usize, version: &AppVersion, always_approved: bool) -> Decision<'w> {
        if self.user.is_admin {
            // EPM does not manage users with admin rights: Run as administrator, unmanaged.
            return Decision {
                elevation_type: ElevationType::Unmanaged,
                result: 0,
                rule: None,
                justification: false,
            };
        }
        let decision = match self.world.matching_rule(app, &version.hash, &version.version) {
            Some(rule) => self.rule_decision(rule),
            None => self.default_response(always_approved),
        };
        self.maybe_fail(decision)
    }

    fn decide_child(
        &mut self,
        parent_type: ElevationType,
        parent_rule: Option<&'w Rule>,
        child: usize,
        version: &AppVersion,
    ) -> Decision<'w> {
        if self.user.is_admin {
            return Decision {
                elevation_type: ElevationType::Unmanaged,
                result: 0,
                rule: None,
                justification: false,
            };
        }
        let behavior = parent_rule.map_or(ChildBehavior::RequireRule, |r| r.child_behavior);
        let decision = match behavior {
            ChildBehavior::AllowAll => Decision {
                elevation_type: parent_type,
                result: 0,
                rule: parent_rule,
                justification: false,
            },
            ChildBehavior::DenyAll => Decision {
                elevation_type: ElevationType::Denied,
                result: RESULT_DENIED_BY_RULE,
                rule: parent_rule,
                justification: false,
            },
            ChildBehavior::RequireRule => match self.world.matching_rule(child, &version.hash, &version.version) {
                Some(rule) => self.rule_decision(rule),
                None => Decision {
                    elevation_type: ElevationType::Denied,
                    result: RESULT_DENIED_BY_RULE,
                    rule: None,
                    justification: false,
                },
            },
        };
        self.maybe_fail(decision)
    }

    fn rule_decision(&mut self, rule: &'w Rule) -> Decision<'w> {
        let (elevation_type, result, justification) = match rule.rule_type {
            RuleType::Deny => (ElevationType::Denied, RESULT_DENIED_BY_RULE, false),
            RuleType::Automatic => (ElevationType::Automatic, 0, false),
            RuleType::UserConfirmed => (ElevationType::UserConfirmed, 0, true),
            RuleType::ElevateAsCurrentUser => (ElevationType::ElevateAsCurrentUser, 0, false),
            RuleType::SupportApproved if self.rng.random_bool(0.9) => (ElevationType::SupportApproved, 0, true),
            RuleType::SupportApproved => (ElevationType::Denied, RESULT_DENIED_BY_SUPPORT, true),
        };
        Decision {
            elevation_type,
            result,
            rule: Some(rule),
            justification,
        }
    }

    /// The tenant's default elevation response for files without a rule: ask support.
    fn default_response(&mut self, always_approved: bool) -> Decision<'w> {
        if always_approved || self.rng.random_bool(0.85) {
            Decision {
                elevation_type: ElevationType::SupportApproved,
                result: 0,
                rule: None,
                justification: true,
            }
        } else {
            Decision {
                elevation_type: ElevationType::Denied,
                result: RESULT_DENIED_BY_SUPPORT,
                rule: None,
                justification: true,
            }
        }
    }

    /// Some elevated processes fail after starting.
    fn maybe_fail(&mut self, mut decision: Decision<'w>) -> Decision<'w> {
        let ran = !matches!(
            decision.elevation_type,
            ElevationType::Denied | ElevationType::Unmanaged
        );
        if ran && decision.result == 0 && self.rng.random_bool(0.03) {
            decision.result = *FAILURE_CODES.choose(&mut self.rng).expect("non-empty");
        }
        decision
    }

    #[allow(clippy::too_many_arguments)] // one event has this many independent facts
    fn push(
        &mut self,
        app: usize,
        version: &AppVersion,
        at: chrono::DateTime<Utc>,
        decision: Decision<'w>,
        process_type: ProcessType,
        parent_process_name: &str,
        system_initiated: bool,
    ) {
        let app = &self.world.apps[app];
        let policy = decision.rule.map(|r| &self.world.policies[r.policy]);
        let justification = decision
            .justification
            .then(|| JUSTIFICATIONS.choose(&mut self.rng).expect("non-empty").to_string());
        let file_path = app.path_for(&self.user.profile_folder);
        let event = ElevationEvent {
            id: uuid(&mut self.rng),
            event_date_time: at,
            elevation_type: decision.elevation_type,
            file_name: warehouse::file_name_of(&file_path).to_owned(),
            file_path,
            hash: version.hash.clone(),
            upn: self.user.upn.clone(),
            user_type: self.user.user_type,
            product_name: Some(app.product_name.clone()),
            company_name: app.company_name.clone(),
            file_version: Some(version.version.clone()),
            file_description: Some(app.description.clone()),
            internal_name: Some(app.internal_name.clone()),
            certificate_payload: app.certificate_payload.clone(),
            justification,
            result: decision.result,
            process_type,
            parent_process_name: Some(parent_process_name.to_owned()),
            rule_id: decision.rule.map(|r| r.id.clone()),
            policy_id: policy.map(|p| p.id.clone()),
            policy_name: policy.map(|p| p.name.clone()),
            system_initiated_elevation: system_initiated,
        };
        self.elevations.push(event);
    }

    fn diagnostics_for(&mut self, date: chrono::DateTime<Utc>) {
        let add = |this: &mut Self, event_id: i32, name: &str, error_code: i64, with_policy: bool| {
            let at = date + Duration::seconds(this.rng.random_range(0..24 * 3600));
            let policy = with_policy.then(|| this.world.policies.choose(&mut this.rng).expect("non-empty"));
            this.diagnostics.push(DiagnosticEvent {
                event_date_time: at,
                event_id,
                event_name: name.to_owned(),
                error_code,
                policy_type: with_policy.then(|| "rules".to_owned()),
                policy_id: policy.map(|p| p.id.clone()),
                policy_version: policy.map(|p| p.version.to_string()),
            });
        };
        add(self, 4001, "PolicyApplied", 0, true);
        add(self, 4100, "AgentHeartbeat", 0, false);
        if self.rng.random_bool(0.02) {
            // 0x80070005 access denied or 0x800705B4 timeout, stored unsigned.
            let code = if self.rng.random_bool(0.6) {
                2_147_942_405
            } else {
                2_147_943_860
            };
            add(self, 4002, "PolicyApplyFailed", code, true);
        }
        if self.rng.random_bool(0.01) {
            add(self, 4201, "ElevationServiceRestarted", 3_221_225_477, false); // 0xC0000005
        }
    }
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    let mut bytes = [0u8; 16];
    rng.fill(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// The first instant of the window, midnight UTC.
pub(crate) fn midnight(date: chrono::NaiveDate) -> chrono::DateTime<Utc> {
    Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
}
