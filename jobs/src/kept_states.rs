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
//!
//! The states are kept in the order ticks decide workloads (by organisation
//! id, then workload), so a tick's threads each take the run of states of
//! their run of workloads ([`split_at`]) and find each one by walking both
//! in step ([`InOrder`]): no hashing, no key made per workload.

use std::cmp::Ordering;
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

/// States by key, in key order.
pub(crate) type States = Vec<(StateKey, Kept)>;

/// The states a worker keeps, at most `capacity` of them.
#[derive(Debug, Default)]
pub struct KeptStates {
    capacity: usize,
    states: Mutex<States>,
}

impl KeptStates {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            states: Mutex::new(Vec::new()),
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
    pub(crate) fn take(&self) -> States {
        std::mem::take(&mut *self.lock())
    }

    /// Keeps `states`, put in key order if they are not (a tick adds them
    /// in the order it decides, which is that order).
    pub(crate) fn put(&self, mut states: States) {
        if !states.is_sorted_by(|a, b| a.0 <= b.0) {
            states.sort_by(|a, b| a.0.cmp(&b.0));
        }
        *self.lock() = states;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, States> {
        // The map is replaced whole, never left half-changed by a panic.
        self.states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `states` (in key order) split into one run per run of workloads, each
/// run of workloads given by its first key, in order: run `i` holds the
/// states from `firsts[i]` up to `firsts[i + 1]`. States before the first
/// run's key belong to none (their workloads are gone) and are dropped.
pub(crate) fn split_at(mut states: States, firsts: &[(&str, &str)]) -> Vec<States> {
    let mut runs = Vec::with_capacity(firsts.len());
    for first in firsts.iter().rev() {
        let at = states.partition_point(|(k, _)| (k.0.as_str(), k.1.as_str()) < *first);
        runs.push(states.split_off(at));
    }
    runs.reverse();
    runs
}

/// A run of states (in key order), taken by workloads asked for in the same
/// order: each state before the one asked for belongs to a workload that is
/// gone, and is dropped. A workload asked for out of order finds nothing
/// (its state is read from the database instead), never another's state.
pub(crate) struct InOrder {
    states: std::iter::Peekable<std::vec::IntoIter<(StateKey, Kept)>>,
}

impl InOrder {
    pub(crate) fn new(states: States) -> Self {
        Self {
            states: states.into_iter().peekable(),
        }
    }

    /// The state kept for (`organization`, `workload`).
    pub(crate) fn take(&mut self, organization: &str, workload: &str) -> Option<Kept> {
        while let Some(((o, w), _)) = self.states.peek() {
            match (o.as_str(), w.as_str()).cmp(&(organization, workload)) {
                Ordering::Less => drop(self.states.next()),
                Ordering::Equal => return self.states.next().map(|(_, k)| k),
                Ordering::Greater => return None,
            }
        }
        None
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

    fn kept(slot: i64) -> Kept {
        let cfg = headroom_core::allocate::PolicyConfig::default();
        Kept {
            state: ControllerState::new(&cfg),
            slot,
        }
    }

    fn key(o: &str, w: &str) -> StateKey {
        (o.to_owned(), w.to_owned())
    }

    #[test]
    fn a_tick_takes_the_states_and_gives_them_back_in_key_order() {
        let worker = KeptStates::new(10);
        let mut states = worker.take();
        assert!(states.is_empty());
        states.push((key("o", "w"), kept(7)));
        states.push((key("a", "z"), kept(8)));
        worker.put(states);
        assert_eq!(worker.len(), 2);
        let again = worker.take();
        let order: Vec<(&str, i64)> = again.iter().map(|(k, s)| (k.1.as_str(), s.slot)).collect();
        assert_eq!(order, [("z", 8), ("w", 7)], "sorted by organisation first");
        assert!(worker.is_empty(), "taken: a failed tick leaves none kept");
    }

    #[test]
    fn each_run_of_workloads_takes_its_own_states() {
        // Kept from the tick before: a1 is gone since, b2 is new.
        let states: States = [("a", "0"), ("a", "1"), ("a", "2"), ("b", "1"), ("c", "1")]
            .iter()
            .enumerate()
            .map(|(i, (o, w))| (key(o, w), kept(i as i64)))
            .collect();
        // This tick's workloads in two runs: [a0, a2] and [b1, b2, c1].
        let runs = split_at(states, &[("a", "0"), ("b", "1")]);
        let names = |run: &States| -> Vec<String> {
            run.iter().map(|(k, _)| format!("{}{}", k.0, k.1)).collect()
        };
        assert_eq!(names(&runs[0]), ["a0", "a1", "a2"]);
        assert_eq!(names(&runs[1]), ["b1", "c1"]);

        let mut first = InOrder::new(runs[0].clone());
        assert_eq!(first.take("a", "0").map(|k| k.slot), Some(0));
        assert_eq!(first.take("a", "2").map(|k| k.slot), Some(2), "a1 skipped");
        let mut second = InOrder::new(runs[1].clone());
        assert_eq!(second.take("b", "1").map(|k| k.slot), Some(3));
        assert!(second.take("b", "2").is_none(), "new: nothing kept");
        assert_eq!(second.take("c", "1").map(|k| k.slot), Some(4));
        assert!(second.take("d", "1").is_none());

        // Asked out of order: nothing, never another workload's state.
        let mut out_of_order = InOrder::new(runs[1].clone());
        assert_eq!(out_of_order.take("c", "1").map(|k| k.slot), Some(4));
        assert!(out_of_order.take("b", "1").is_none());

        // States before the first run's workloads are nobody's.
        let states: States = vec![(key("a", "0"), kept(0)), (key("b", "0"), kept(1))];
        let runs = split_at(states, &[("b", "0")]);
        assert_eq!(runs.len(), 1);
        assert_eq!(names(&runs[0]), ["b0"]);
    }
}
