//! The settings of every controlled workload, kept in the worker between
//! allocation ticks.
//!
//! Reading every workload's settings was half a tick's read at 100,000
//! workloads, though few change between two ticks: the API's saves, a
//! suggestion or a finished command's fleet. Every write sets the row's
//! revision (migration 026), so a tick reads only what was written or
//! removed since the last read ([`Db::tick_settings_since`]) and applies it
//! here. The controller's checkpoints (a twelfth of the states each tick)
//! keep the row's revision: each transaction that stores states notes their
//! slots once, with its writer (migration 029), and a tick reads the slots
//! other writers stored since, which tell it whether a state stored since
//! is newer than the one it keeps (a worker notes its own itself). A
//! tick that fails part way leaves nothing kept: the next reads everything.

use std::collections::BTreeMap;
use std::sync::Mutex;

use headroom_store::allocation::{SettingsMark, SettingsRead, StoredSettings};
use headroom_store::{Db, StoreError, Tenant};

/// (organisation id, workload), in the order ticks decide them.
type Key = (String, String);

/// Rows from which [`Kept::settings`] copies on two cores.
const COPY_ON_TWO_CORES_FROM: usize = 10_000;

#[derive(Debug)]
pub struct KeptSettings {
    kept: Mutex<Option<Kept>>,
    /// Names the states this worker stores: its reads leave them out, and
    /// it notes their slots itself ([`Self::note_stored`]).
    writer: String,
}

impl Default for KeptSettings {
    fn default() -> Self {
        Self {
            kept: Mutex::default(),
            writer: headroom_store::new_id(),
        }
    }
}

/// The settings as of `mark`.
#[derive(Debug)]
pub(crate) struct Kept {
    rows: BTreeMap<Key, (Tenant, StoredSettings)>,
    mark: SettingsMark,
}

impl Kept {
    /// Every controlled workload's settings, by organisation and workload:
    /// a copy (a tick moves them on with its decisions).
    pub(crate) fn settings(&self) -> Vec<(Tenant, StoredSettings)> {
        copied(&self.rows, COPY_ON_TWO_CORES_FROM)
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }
}

impl KeptSettings {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many workloads' settings are kept.
    pub fn len(&self) -> usize {
        self.lock().as_ref().map_or(0, Kept::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The name the worker's stored states go by.
    pub fn writer(&self) -> &str {
        &self.writer
    }

    /// Notes the slots of the states this worker stored (its reads leave
    /// them out): by (organisation id, workload).
    pub(crate) fn note_stored<'a>(
        &self,
        stored: impl IntoIterator<Item = (&'a str, &'a str, i64)>,
    ) {
        let mut kept = self.lock();
        let Some(kept) = kept.as_mut() else {
            return;
        };
        for (organization, workload, slot) in stored {
            let key = (organization.to_owned(), workload.to_owned());
            if let Some((_, s)) = kept.rows.get_mut(&key) {
                s.controller.slot = Some(slot);
            }
        }
    }

    /// The settings brought up to date: what was kept, with what changed
    /// since read and applied (all of them read when nothing was kept), and
    /// how many workloads' settings were read, and how many slots of states
    /// another worker stored. To be given back with [`Self::put`] once the
    /// tick has used them.
    pub(crate) async fn take_current(&self, db: &Db) -> Result<(Kept, usize, usize), StoreError> {
        let kept = self.lock().take();
        let started = std::time::Instant::now();
        let read = db
            .tick_settings_since(kept.as_ref().map(|k| k.mark), Some(&self.writer))
            .await?;
        let read_ms = started.elapsed().as_millis();
        // Settings read: a stored state's slot is not.
        let n = read.changed.len() + read.removed.len();
        let slots = read.state_slots.len();
        let kept = apply(kept, read);
        tracing::debug!(
            settings = n,
            state_slots = slots,
            read_ms,
            apply_ms = started.elapsed().as_millis() - read_ms,
            "kept settings brought up to date"
        );
        Ok((kept, n, slots))
    }

    pub(crate) fn put(&self, kept: Kept) {
        *self.lock() = Some(kept);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Kept>> {
        // Replaced whole, never left half-changed by a panic.
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The values of `rows` in key order, copied; on two cores from `two_cores_from`
/// rows on (a settings row is several strings to copy).
fn copied<K: Sync, V: Clone + Send + Sync>(rows: &BTreeMap<K, V>, two_cores_from: usize) -> Vec<V> {
    let n = rows.len();
    if n < two_cores_from {
        return rows.values().cloned().collect();
    }
    let half = n / 2;
    std::thread::scope(|scope| {
        let second = scope.spawn(|| rows.values().skip(half).cloned().collect::<Vec<_>>());
        let mut all = Vec::with_capacity(n);
        all.extend(rows.values().take(half).cloned());
        all.extend(
            second
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        );
        all
    })
}

/// `kept` with `read` applied: replaced when the read is whole, else the
/// removed and the no-longer-controlled dropped and the changed replaced.
fn apply(kept: Option<Kept>, read: SettingsRead) -> Kept {
    let mut rows = match kept {
        Some(k) if !read.whole => k.rows,
        _ => BTreeMap::new(),
    };
    for key in read.removed {
        rows.remove(&key);
    }
    for (tenant, settings) in read.changed {
        let key = (tenant.id().to_owned(), settings.workload.clone());
        if settings.mode == "off" {
            rows.remove(&key);
        } else {
            rows.insert(key, (tenant, settings));
        }
    }
    // Noted apart from the rows, so possibly older than a row read whole
    // since: the newest slot is the stored state's.
    for (key, slot) in read.state_slots {
        if let Some((_, s)) = rows.get_mut(&key) {
            s.controller.slot = s.controller.slot.max(Some(slot));
        }
    }
    Kept {
        rows,
        mark: read.mark,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_on_two_cores_keeps_every_row_in_order() {
        let rows: BTreeMap<u32, String> = (0..2_001).map(|i| (i, format!("w{i}"))).collect();
        let alone = copied(&rows, usize::MAX);
        assert_eq!(alone.len(), 2_001);
        assert_eq!(copied(&rows, 1_000), alone);
        assert_eq!(
            copied(&BTreeMap::<u32, String>::new(), 0),
            Vec::<String>::new()
        );
        let one: BTreeMap<u32, String> = [(1, "a".to_owned())].into();
        assert_eq!(copied(&one, 0), ["a"]);
    }
}
