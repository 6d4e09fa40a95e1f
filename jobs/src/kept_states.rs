//! Controller states kept in the worker between allocation ticks.
//!
//! Every tick changes every workload's state (the outcome it scores, the
//! hysteresis window), and a stored state is one to a few kilobytes: reading
//! and writing all of them every tick was most of a tick's database work at
//! 100,000 workloads. So the worker keeps them, and stores each one only
//! every [`CHECKPOINT_EVERY`] ticks (the slots spread by a hash of the
//! workload), with the slot it reached. A new workload's first state, and
//! every state the worker does not keep (past `capacity`), is stored at once.
//!
//! A kept state is used while it is at least as new as the stored one;
//! otherwise (a restarted worker, another replica decided meanwhile, a tick
//! that failed part way) the stored one is read, and if it missed ticks its
//! short-term memory is dropped (`ControllerState::forget_short_term`: no
//! stale forecast is scored, and nothing is released before a fresh
//! hysteresis window). A restart thus costs each workload's margins at most
//! the outcomes of `CHECKPOINT_EVERY - 1` ticks out of the hundreds they
//! hold; decisions themselves are logged every tick.

use std::collections::HashMap;
use std::sync::Mutex;

use headroom_core::allocate::ControllerState;

/// Ticks between two stores of a kept workload's state: an hour at the
/// default five-minute tick.
pub const CHECKPOINT_EVERY: i64 = 12;

/// (organisation id, workload).
pub type StateKey = (String, String);

/// A kept state and the slot of the decision whose outcome it last learnt.
#[derive(Debug, Clone)]
pub struct Kept {
    pub state: ControllerState,
    pub slot: i64,
}

/// The states a worker keeps, at most `capacity` of them.
#[derive(Debug, Default)]
pub struct KeptStates {
    capacity: usize,
    states: Mutex<HashMap<StateKey, Kept>>,
}

impl KeptStates {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            states: Mutex::new(HashMap::new()),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All kept states, for one tick to use and give back with [`Self::put`]
    /// (a tick that fails before then leaves none kept: the next reads the
    /// stored ones).
    pub(crate) fn take(&self) -> HashMap<StateKey, Kept> {
        std::mem::take(&mut *self.lock())
    }

    pub(crate) fn put(&self, states: HashMap<StateKey, Kept>) {
        *self.lock() = states;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StateKey, Kept>> {
        // The map is replaced whole, never left half-changed by a panic.
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Whether a kept workload's state is stored at `slot`: once every
/// [`CHECKPOINT_EVERY`] slots, at an offset fixed by the workload, so each
/// tick stores about the same share of them.
pub fn checkpoint_due(organization: &str, workload: &str, slot: i64) -> bool {
    // FNV-1a: the same offsets in every process and build (std's hasher is
    // seeded per process).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in organization
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(workload.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let offset = (h % CHECKPOINT_EVERY as u64) as i64;
    (slot + offset).rem_euclid(CHECKPOINT_EVERY) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_workload_is_stored_once_every_period_and_the_load_is_spread() {
        let workloads: Vec<String> = (0..1200).map(|i| format!("w{i}")).collect();
        let mut per_slot = vec![0usize; CHECKPOINT_EVERY as usize];
        for w in &workloads {
            let due: Vec<i64> = (1000..1000 + 3 * CHECKPOINT_EVERY)
                .filter(|&s| checkpoint_due("org", w, s))
                .collect();
            assert_eq!(due.len(), 3, "{w}: {due:?}");
            assert!(due.windows(2).all(|p| p[1] - p[0] == CHECKPOINT_EVERY));
            per_slot[(due[0] - 1000) as usize] += 1;
        }
        // 100 a slot on average; no slot takes more than twice that.
        assert!(per_slot.iter().all(|&n| n > 50 && n < 200), "{per_slot:?}");
        // Fixed per workload: another process finds the same slots.
        assert!(checkpoint_due("org", "w1", 1000) == checkpoint_due("org", "w1", 1012));
    }

    #[test]
    fn a_tick_takes_the_states_and_gives_them_back() {
        let kept = KeptStates::new(10);
        let cfg = headroom_core::allocate::PolicyConfig::default();
        let mut map = kept.take();
        assert!(map.is_empty());
        map.insert(
            ("o".into(), "w".into()),
            Kept {
                state: ControllerState::new(&cfg),
                slot: 7,
            },
        );
        kept.put(map);
        assert_eq!(kept.len(), 1);
        let again = kept.take();
        assert_eq!(again[&("o".to_owned(), "w".to_owned())].slot, 7);
        assert!(kept.is_empty(), "taken: a failed tick leaves none kept");
    }
}
