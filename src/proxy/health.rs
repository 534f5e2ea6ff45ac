//! A backend's health, as HAProxy keeps it: one counter from 0 to `rise + fall - 1`; the backend is up while the
//! counter is at least `rise`. A good check raises it (reaching `rise` brings the backend up and fills the counter),
//! a failed check lowers it (falling below `rise` takes the backend down and empties it). So a down backend needs
//! `rise` good checks in a row to come back and an up one `fall` failed checks in a row to go down.
//!
//! Passive marking (HAProxy's `observe layer4` + `error-limit` + `on-error mark-down`): `error_limit` consecutive
//! failed connects of real traffic take the backend down at once; active checks then bring it back.

use std::time::Duration;

use crate::time::Instant;

/// Health-check settings of one pool (HAProxy's `inter`, `rise`, `fall`, `error-limit`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckConfig {
    /// Active TCP-connect checks: on or off.
    pub enabled: bool,
    /// Time between two checks of a backend.
    pub inter: Duration,
    /// Good checks in a row that bring a down backend up.
    pub rise: u32,
    /// Failed checks in a row that take an up backend down.
    pub fall: u32,
    /// Consecutive failed connects of client traffic that mark a backend down (0: never).
    pub error_limit: u32,
}

impl Default for CheckConfig {
    fn default() -> Self {
        // HAProxy's defaults: inter 2s, rise 2, fall 3; error-limit 10.
        CheckConfig { enabled: true, inter: Duration::from_secs(2), rise: 2, fall: 3, error_limit: 10 }
    }
}

/// What changed after an observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthChange {
    None,
    WentUp,
    WentDown,
}

/// The health state machine of one backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    counter: u32,
    up: bool,
    consecutive_errors: u32,
    /// When the next active check is due.
    pub next_check: Instant,
}

impl Health {
    /// A new backend starts up (as HAProxy's servers do), with its counter full, and is checked at once.
    pub fn new(cfg: &CheckConfig, now: Instant) -> Health {
        Health { counter: cfg.rise + cfg.fall.max(1) - 1, up: true, consecutive_errors: 0, next_check: now }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    /// The HAProxy-style counter, for `backend list`.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    fn max(cfg: &CheckConfig) -> u32 {
        cfg.rise.max(1) + cfg.fall.max(1) - 1
    }

    /// An active check succeeded.
    pub fn check_passed(&mut self, cfg: &CheckConfig) -> HealthChange {
        let rise = cfg.rise.max(1);
        if self.counter < Self::max(cfg) {
            self.counter += 1;
        }
        if !self.up && self.counter >= rise {
            self.up = true;
            self.counter = Self::max(cfg);
            self.consecutive_errors = 0;
            return HealthChange::WentUp;
        }
        HealthChange::None
    }

    /// An active check failed (refused, reset or timed out).
    pub fn check_failed(&mut self, cfg: &CheckConfig) -> HealthChange {
        let rise = cfg.rise.max(1);
        if self.counter > rise {
            self.counter -= 1;
            return HealthChange::None;
        }
        if self.up {
            self.go_down();
            return HealthChange::WentDown;
        }
        self.counter = self.counter.saturating_sub(1);
        HealthChange::None
    }

    /// A client connection's connect to this backend succeeded.
    pub fn connect_passed(&mut self) {
        self.consecutive_errors = 0;
    }

    /// A client connection's connect to this backend failed.
    pub fn connect_failed(&mut self, cfg: &CheckConfig) -> HealthChange {
        self.consecutive_errors += 1;
        if cfg.error_limit > 0 && self.consecutive_errors >= cfg.error_limit && self.up {
            self.go_down();
            return HealthChange::WentDown;
        }
        HealthChange::None
    }

    fn go_down(&mut self) {
        self.up = false;
        self.counter = 0;
        self.consecutive_errors = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rise: u32, fall: u32) -> CheckConfig {
        CheckConfig { rise, fall, error_limit: 3, ..CheckConfig::default() }
    }

    #[test]
    fn fall_failures_in_a_row_take_it_down_rise_successes_bring_it_back() {
        let c = cfg(2, 3);
        let mut h = Health::new(&c, Instant::ZERO);
        assert!(h.is_up());
        assert_eq!(h.check_failed(&c), HealthChange::None);
        assert_eq!(h.check_failed(&c), HealthChange::None);
        assert_eq!(h.check_failed(&c), HealthChange::WentDown);
        assert!(!h.is_up());
        assert_eq!(h.check_passed(&c), HealthChange::None);
        assert_eq!(h.check_passed(&c), HealthChange::WentUp);
        assert!(h.is_up());
        assert_eq!(h.counter(), 4, "back up with a full counter");
    }

    #[test]
    fn a_flap_does_not_count_as_a_row() {
        // HAProxy's counter: one success between failures earns one more failure of credit.
        let c = cfg(2, 3);
        let mut h = Health::new(&c, Instant::ZERO);
        h.check_failed(&c);
        h.check_failed(&c);
        h.check_passed(&c);
        assert_eq!(h.check_failed(&c), HealthChange::None);
        assert_eq!(h.check_failed(&c), HealthChange::WentDown);
        // Down: a failure between successes costs one.
        h.check_passed(&c);
        h.check_failed(&c);
        assert_eq!(h.check_passed(&c), HealthChange::None);
        assert_eq!(h.check_passed(&c), HealthChange::WentUp);
    }

    #[test]
    fn rise_one_fall_one() {
        let c = cfg(1, 1);
        let mut h = Health::new(&c, Instant::ZERO);
        assert_eq!(h.check_failed(&c), HealthChange::WentDown);
        assert_eq!(h.check_failed(&c), HealthChange::None);
        assert_eq!(h.check_passed(&c), HealthChange::WentUp);
    }

    #[test]
    fn passive_marking_after_consecutive_connect_failures() {
        let c = cfg(2, 3);
        let mut h = Health::new(&c, Instant::ZERO);
        h.connect_failed(&c);
        h.connect_failed(&c);
        h.connect_passed();
        assert_eq!(h.connect_failed(&c), HealthChange::None, "a success resets the row");
        assert_eq!(h.connect_failed(&c), HealthChange::None);
        assert_eq!(h.connect_failed(&c), HealthChange::WentDown);
        assert!(!h.is_up());
        let off = CheckConfig { error_limit: 0, ..c };
        let mut h = Health::new(&off, Instant::ZERO);
        for _ in 0..100 {
            assert_eq!(h.connect_failed(&off), HealthChange::None);
        }
    }
}
