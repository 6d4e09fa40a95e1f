//! The settings of every controlled workload, kept in the worker between
//! allocation ticks.
//!
//! Reading every workload's settings was half a tick's read at 100,000
//! workloads, though few change between two ticks: the API's saves, a
//! suggestion or a finished command's fleet, and the twelfth of the
//! controller states stored each tick. Every write sets the row's revision
//! (migration 026), so a tick reads only what was written or removed since
//! the last read ([`Db::tick_settings_since`]) and applies it here. A tick
//! that fails part way leaves nothing kept: the next reads everything.

use std::collections::BTreeMap;
use std::sync::Mutex;

use headroom_store::allocation::{SettingsMark, SettingsRead, StoredSettings};
use headroom_store::{Db, StoreError, Tenant};

/// (organisation id, workload), in the order ticks decide them.
type Key = (String, String);

#[derive(Debug, Default)]
pub struct KeptSettings {
    kept: Mutex<Option<Kept>>,
}

/// The settings as of `mark`.
#[derive(Debug)]
pub(crate) struct Kept {
    rows: BTreeMap<Key, (Tenant, StoredSettings)>,
    mark: SettingsMark,
}

impl Kept {
    /// Every controlled workload's settings, by organisation and workload.
    pub(crate) fn settings(&self) -> Vec<(Tenant, StoredSettings)> {
        self.rows.values().cloned().collect()
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

    /// The settings brought up to date: what was kept, with what changed
    /// since read and applied (all of them read when nothing was kept), and
    /// how many workloads' settings were read. To be given back with
    /// [`Self::put`] once the tick has used them.
    pub(crate) async fn take_current(&self, db: &Db) -> Result<(Kept, usize), StoreError> {
        let kept = self.lock().take();
        let read = db
            .tick_settings_since(kept.as_ref().map(|k| k.mark))
            .await?;
        let n = read.changed.len() + read.removed.len();
        Ok((apply(kept, read), n))
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
    Kept {
        rows,
        mark: read.mark,
    }
}
