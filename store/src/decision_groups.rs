//! The controller's decision log in compact groups (migration 023).
//!
//! A tick decides once per workload; most decisions command nothing (a
//! steady fleet's are `logged`; a workload without a provider's are
//! `no_provider`), and nothing changes them once logged. Each such decision
//! is kept whole, but as an entry of a group, one row per organisation, slot
//! and group of about [`GROUP_SIZE`] workloads, instead of a row of its own:
//! a tick over 100,000 workloads writes a few hundred rows, not 100,000. A
//! decision that commands something stays a row of `allocation_decisions`
//! (its status changes as the command ends; billing and the usage events'
//! allocation link read it there) and is only named in its group.
//!
//! One slot's decisions of an organisation are written in one transaction,
//! claimed by its group 0 (always written, possibly empty): a retried tick, or
//! another replica deciding the same slot, finds the claim and decides
//! nothing twice. A workload is in group `hash(workload) % chunks`, where
//! `chunks` (stored on each row) is how many groups its tick was split into.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use sea_orm::{ConnectionTrait, DatabaseTransaction, TransactionTrait, Value};

use crate::allocation::{DecisionCursor, DecisionWrite, StoredDecision};
use crate::billing::TICK_MS;
use crate::sql::{binder, rows, values_clause};
use crate::{Db, StoreError, Tenant};

/// Workloads per group: a listing of one workload's decisions reads one
/// group per decision, so groups stay small; a tick's rows are its
/// decisions over this.
pub(crate) const GROUP_SIZE: usize = 250;

/// Decisions per transaction (whole slots of organisations; a larger
/// organisation's slot is one transaction however large).
const DECISIONS_PER_TX: usize = 5_000;

/// Transactions written at once on PostgreSQL (each keeps one server
/// process busy); SQLite has one writer.
const TX_AT_ONCE_PG: usize = 4;

/// Rows per statement (7 values each for groups, 19 for decisions: inside
/// both backends' limit on bound values).
const ROWS_PER_STATEMENT: usize = 500;

/// The body's format, its first byte: 2 stores the ids of decisions as
/// their 16 bytes and the usual no-provider detail as a mark, 1 (still
/// read) both as text.
const FORMAT: u8 = 2;
const FORMAT_TEXT_IDS: u8 = 1;

const GROUP_COLUMNS: &str = "organization_id, slot, chunk, chunks, decided_at, decisions, body";

/// Whether a decision is kept only as a group entry: a controller decision
/// that commands nothing (so nothing will update its status).
pub(crate) fn compact(d: &StoredDecision) -> bool {
    d.source == "controller" && matches!(d.status.as_str(), "logged" | "no_provider")
}

/// FNV-1a (32 bits) of the workload's name: a hash that never changes
/// between versions or processes, since stored rows are found by it.
pub(crate) fn workload_hash(workload: &str) -> i64 {
    let mut h: u32 = 0x811c_9dc5;
    for b in workload.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    i64::from(h)
}

/// How many groups an organisation's slot of `n` decisions is split into.
fn chunks_for(n: usize) -> i64 {
    i64::try_from(n.div_ceil(GROUP_SIZE).max(1)).unwrap_or(i64::MAX)
}

/// One decision in a group. Written borrowing the decision it names (a
/// tick encodes 100,000 of them), read owned. `I` and `D` are how its ids
/// and detail are stored: [`Id`] and [`Detail`], or text in format 1.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Entry<'a, I = Id<'a>, D = Detail<'a>> {
    workload: Cow<'a, str>,
    /// The decision, or `None` when it is a row of `allocation_decisions`.
    logged: Option<Logged<'a, I, D>>,
}

/// A compact decision: a [`StoredDecision`] without what every compact one
/// shares (source `controller`) or its group gives (the slot).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Logged<'a, I = Id<'a>, D = Detail<'a>> {
    id: I,
    decided_ms: i64,
    mode: Cow<'a, str>,
    before: i32,
    after: i32,
    warm: i32,
    reason: Cow<'a, str>,
    limits_json: Cow<'a, str>,
    observed: Option<f64>,
    sized_for: Option<f64>,
    forecast_version: Option<Cow<'a, str>>,
    command_id: I,
    missed: Option<bool>,
    status: Cow<'a, str>,
    detail: Option<D>,
}

/// A compact decision's detail as a group stores it: most say only that
/// no provider is configured (a third of such a decision's body, as text).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Detail<'a> {
    NoProvider,
    Text(Cow<'a, str>),
}

impl<'a> Detail<'a> {
    fn of(detail: &'a str) -> Self {
        if detail == crate::allocation::NO_PROVIDER_DETAIL {
            Detail::NoProvider
        } else {
            Detail::Text(Cow::Borrowed(detail))
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Detail::NoProvider => crate::allocation::NO_PROVIDER_DETAIL,
            Detail::Text(text) => text,
        }
    }

    fn into_string(self) -> String {
        match self {
            Detail::Text(text) => text.into_owned(),
            other => other.as_str().to_owned(),
        }
    }
}

/// A decision's id or command id as a group stores it: a UUID in the text
/// form [`crate::new_id`] makes as its 16 bytes (about a sixth of a
/// decision's body each, as text), any other id as it is.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Id<'a> {
    Uuid([u8; 16]),
    Text(Cow<'a, str>),
}

impl<'a> Id<'a> {
    fn of(id: &'a str) -> Self {
        // Only text that reads back the same: hyphenated (the one form of
        // 36 characters) and lowercase.
        match uuid::Uuid::try_parse(id) {
            Ok(u) if id.len() == 36 && !id.bytes().any(|b| b.is_ascii_uppercase()) => {
                Id::Uuid(u.into_bytes())
            }
            _ => Id::Text(Cow::Borrowed(id)),
        }
    }

    fn into_string(self) -> String {
        match self {
            Id::Uuid(bytes) => uuid::Uuid::from_bytes(bytes).hyphenated().to_string(),
            Id::Text(text) => text.into_owned(),
        }
    }
}

impl<'a, I, D> Logged<'a, I, D> {
    /// `d` borrowed, its ids and detail stored as `id` and `detail` make them.
    fn with(
        d: &'a StoredDecision,
        id: impl Fn(&'a str) -> I,
        detail: impl Fn(&'a str) -> D,
    ) -> Self {
        Self {
            id: id(&d.id),
            decided_ms: d.decided_ms,
            mode: Cow::Borrowed(&d.mode),
            before: d.before,
            after: d.after,
            warm: d.warm,
            reason: Cow::Borrowed(&d.reason),
            limits_json: Cow::Borrowed(&d.limits_json),
            observed: d.observed,
            sized_for: d.sized_for,
            forecast_version: d.forecast_version.as_deref().map(Cow::Borrowed),
            command_id: id(&d.command_id),
            missed: d.missed,
            status: Cow::Borrowed(&d.status),
            detail: d.detail.as_deref().map(detail),
        }
    }
}

impl<'a> Entry<'a, Cow<'a, str>, Cow<'a, str>> {
    /// A format 1 entry as format 2 holds it.
    fn with_ids(self) -> Entry<'a> {
        Entry {
            workload: self.workload,
            logged: self.logged.map(|l| Logged {
                id: Id::Text(l.id),
                decided_ms: l.decided_ms,
                mode: l.mode,
                before: l.before,
                after: l.after,
                warm: l.warm,
                reason: l.reason,
                limits_json: l.limits_json,
                observed: l.observed,
                sized_for: l.sized_for,
                forecast_version: l.forecast_version,
                command_id: Id::Text(l.command_id),
                missed: l.missed,
                status: l.status,
                detail: l.detail.map(Detail::Text),
            }),
        }
    }
}

impl<'a> Entry<'a> {
    /// A decision as its group names it: whole when compact.
    fn of(d: &'a StoredDecision) -> Self {
        Self {
            workload: Cow::Borrowed(&d.workload),
            logged: compact(d).then(|| Logged::of(d)),
        }
    }
}

impl<'a> Logged<'a> {
    fn of(d: &'a StoredDecision) -> Self {
        Logged::with(d, Id::of, Detail::of)
    }
    fn into_decision(self, workload: Cow<'_, str>, slot: i64) -> StoredDecision {
        StoredDecision {
            id: self.id.into_string(),
            workload: workload.into_owned(),
            source: "controller".into(),
            slot,
            decided_ms: self.decided_ms,
            mode: self.mode.into_owned(),
            before: self.before,
            after: self.after,
            warm: self.warm,
            reason: self.reason.into_owned(),
            limits_json: self.limits_json.into_owned(),
            observed: self.observed,
            sized_for: self.sized_for,
            forecast_version: self.forecast_version.map(Cow::into_owned),
            status: self.status.into_owned(),
            command_id: self.command_id.into_string(),
            detail: self.detail.map(Detail::into_string),
            missed: self.missed,
        }
    }
}

fn encode(entries: &[Entry<'_>]) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![FORMAT];
    out.extend(
        postcard::to_allocvec(entries)
            .map_err(|e| StoreError::Corrupt(format!("decision group: {e}")))?,
    );
    Ok(out)
}

fn decode(body: &[u8]) -> Result<Vec<Entry<'static>>, StoreError> {
    let corrupt = |e: postcard::Error| StoreError::Corrupt(format!("decision group: {e}"));
    match body.split_first() {
        Some((&FORMAT, rest)) => postcard::from_bytes(rest).map_err(corrupt),
        Some((&FORMAT_TEXT_IDS, rest)) => {
            let entries: Vec<Entry<'static, Cow<'static, str>, Cow<'static, str>>> =
                postcard::from_bytes(rest).map_err(corrupt)?;
            Ok(entries.into_iter().map(Entry::with_ids).collect())
        }
        _ => Err(StoreError::Corrupt(
            "decision group of an unknown format".into(),
        )),
    }
}

/// A group's entries for reading; an unreadable group (a format no version
/// wrote) is skipped with a warning, so one bad row neither stops the
/// controller nor hides the rest of the log. Writers decode strictly.
fn readable(body: &[u8], org: &str, slot: i64) -> Vec<Entry<'static>> {
    decode(body).unwrap_or_else(|e| {
        tracing::warn!(organization = org, slot, error = %e, "decision group skipped");
        Vec::new()
    })
}

/// One group row to write.
struct Group<'a> {
    org: String,
    slot: i64,
    chunk: i64,
    chunks: i64,
    decided_ms: i64,
    entries: Vec<Entry<'a>>,
}

impl Group<'_> {
    fn values(&self) -> Result<[Value; 7], StoreError> {
        Ok([
            self.org.clone().into(),
            self.slot.into(),
            i32::try_from(self.chunk).unwrap_or(i32::MAX).into(),
            i32::try_from(self.chunks).unwrap_or(i32::MAX).into(),
            self.decided_ms.into(),
            i32::try_from(self.entries.len()).unwrap_or(i32::MAX).into(),
            encode(&self.entries)?.into(),
        ])
    }
}

/// An organisation's slot: the writes (indices into the call's) and its
/// groups, group 0 first.
struct Unit<'a> {
    writes: Vec<usize>,
    groups: Vec<Group<'a>>,
}

fn units<'a>(writes: &[DecisionWrite<'a>], which: &[usize]) -> Vec<Unit<'a>> {
    let mut by_slot: BTreeMap<(&str, i64), Vec<usize>> = BTreeMap::new();
    for &i in which {
        let w = &writes[i];
        by_slot
            .entry((w.tenant.id(), w.decision.slot))
            .or_default()
            .push(i);
    }
    by_slot
        .into_iter()
        .map(|((org, slot), idx)| {
            let chunks = chunks_for(idx.len());
            let mut groups: Vec<Group<'_>> = (0..chunks)
                .map(|chunk| Group {
                    org: org.to_owned(),
                    slot,
                    chunk,
                    chunks,
                    decided_ms: i64::MIN,
                    entries: Vec::new(),
                })
                .collect();
            for &i in &idx {
                let d = writes[i].decision;
                let g =
                    &mut groups[usize::try_from(workload_hash(&d.workload) % chunks).unwrap_or(0)];
                g.decided_ms = g.decided_ms.max(d.decided_ms);
                g.entries.push(Entry::of(d));
            }
            let newest = groups.iter().map(|g| g.decided_ms).max().unwrap_or(0);
            for g in &mut groups {
                // An empty group (group 0, the claim) sorts with its tick.
                if g.entries.is_empty() {
                    g.decided_ms = newest;
                }
            }
            Unit {
                writes: idx,
                groups,
            }
        })
        .collect()
}

impl Db {
    /// Logs the controller's decisions in `which` (indices into `writes`):
    /// one transaction per batch of whole organisation slots. Returns, for
    /// each of `which` in order, whether it was new (false: its slot was
    /// already decided for its organisation).
    pub(crate) async fn record_grouped(
        &self,
        writes: &[DecisionWrite<'_>],
        which: &[usize],
        writer: Option<&str>,
    ) -> Result<Vec<bool>, StoreError> {
        use futures::{StreamExt, TryStreamExt};
        let mut batches: Vec<Vec<Unit<'_>>> = Vec::new();
        let mut size = DECISIONS_PER_TX;
        for unit in units(writes, which) {
            if size >= DECISIONS_PER_TX {
                batches.push(Vec::new());
                size = 0;
            }
            size += unit.writes.len();
            if let Some(b) = batches.last_mut() {
                b.push(unit);
            }
        }
        let at_once = if self.postgres_pool().is_some() {
            TX_AT_ONCE_PG
        } else {
            1
        };
        let jobs: Vec<_> = batches
            .iter()
            .map(|batch| self.record_batch(writes, batch, writer))
            .collect();
        let new: Vec<HashSet<usize>> = futures::stream::iter(jobs)
            .buffered(at_once)
            .try_collect()
            .await?;
        let new: HashSet<usize> = new.into_iter().flatten().collect();
        Ok(which.iter().map(|i| new.contains(i)).collect())
    }

    /// One transaction of [`Db::record_grouped`]; the indices of the new
    /// decisions.
    async fn record_batch(
        &self,
        writes: &[DecisionWrite<'_>],
        batch: &[Unit<'_>],
        writer: Option<&str>,
    ) -> Result<HashSet<usize>, StoreError> {
        let tx = self.conn().begin().await?;
        let backend = tx.get_database_backend();
        // The claims: group 0 of each slot, written unless already there.
        let mut claimed: HashSet<(String, i64)> = HashSet::new();
        for part in batch.chunks(ROWS_PER_STATEMENT) {
            let mut values = Vec::with_capacity(part.len() * 7);
            for unit in part {
                values.extend(unit.groups[0].values()?);
            }
            for r in rows(
                &tx,
                format!(
                    "INSERT INTO allocation_decision_groups ({GROUP_COLUMNS}) VALUES {} \
                     ON CONFLICT (organization_id, slot, chunk) DO NOTHING \
                     RETURNING organization_id, slot",
                    values_clause(backend, part.len(), 7)
                ),
                values,
            )
            .await?
            {
                claimed.insert((r.try_get_by_index(0)?, r.try_get_by_index(1)?));
            }
        }
        let (mine, theirs): (Vec<&Unit<'_>>, Vec<&Unit<'_>>) = batch
            .iter()
            .partition(|u| claimed.contains(&(u.groups[0].org.clone(), u.groups[0].slot)));
        let rest: Vec<&Group<'_>> = mine.iter().flat_map(|u| &u.groups[1..]).collect();
        for part in rest.chunks(ROWS_PER_STATEMENT) {
            let mut values = Vec::with_capacity(part.len() * 7);
            for g in part {
                values.extend(g.values()?);
            }
            crate::sql::exec(
                &tx,
                format!(
                    "INSERT INTO allocation_decision_groups ({GROUP_COLUMNS}) VALUES {}",
                    values_clause(backend, part.len(), 7)
                ),
                values,
            )
            .await?;
        }
        let mut new: HashSet<usize> = mine.iter().flat_map(|u| u.writes.iter().copied()).collect();
        // A slot already claimed (a retried tick, another replica, a tick
        // run again within its slot): only workloads it did not decide.
        for unit in theirs {
            new.extend(add_to_claimed(&tx, writes, unit).await?);
        }
        // Decisions that are rows: those that command something or carry a note.
        let full: Vec<&DecisionWrite<'_>> = new
            .iter()
            .map(|&i| &writes[i])
            .filter(|w| !compact(w.decision))
            .collect();
        crate::allocation::insert_decision_rows(&tx, &full).await?;
        let states: Vec<(&DecisionWrite<'_>, &[u8])> = new
            .iter()
            .map(|&i| &writes[i])
            .filter_map(|w| Some((w, w.state?)))
            .collect();
        crate::allocation::store_states(&tx, &states, writer).await?;
        tx.commit().await?;
        Ok(new)
    }

    /// The compact decisions of `tenant` (of `workload`, when given), newest
    /// first, at most `limit`, made at or after `since_ms` and after `before`
    /// (when given). With `from_slot`, a workload's groups of that slot and
    /// later only.
    pub(crate) async fn grouped_decisions(
        &self,
        tenant: &Tenant,
        workload: Option<&str>,
        limit: u64,
        from_slot: Option<i64>,
        since_ms: Option<i64>,
        before: Option<&DecisionCursor>,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let admitted = |d: &StoredDecision| before.is_none_or(|c| c.admits(d.decided_ms, &d.id));
        // A controller decision's slot is the tick its time falls in, so
        // groups in slot order are in the order of their decisions' times
        // (a group's own time is its newest decision's, which notes may
        // raise), and slots bound what a time bound reads, on the primary key.
        let to_slot = before.map(|c| c.decided_ms.div_euclid(TICK_MS));
        let from_time_slot = since_ms.map(|at| at.div_euclid(TICK_MS));
        // Every decision of a group before the cursor's slot is older than it.
        let surely_admitted = |slot: i64| to_slot.is_none_or(|t| slot < t);
        let p = binder(self.db_backend());
        match workload {
            // The workload's groups, newest first, until `limit` of them name
            // it (a tick it was not controlled in has none for it). A group
            // names every controller decision of its slot and chunk, the
            // others as stubs whose rows the caller reads, so the newest
            // `limit` controller decisions are in the first `limit` slots
            // naming the workload: nothing older can make the listing.
            Some(workload) => {
                let page = limit.clamp(16, 1000);
                let mut offset = 0;
                let mut named = 0;
                let mut bounds: Vec<Value> = Vec::new();
                let mut since = String::new();
                if let Some(slot) = from_slot {
                    bounds.push(slot.into());
                    since += &format!(" AND slot >= {}", p(2 + bounds.len()));
                }
                if let (Some(at), Some(slot)) = (since_ms, from_time_slot) {
                    bounds.extend([at.into(), slot.into()]);
                    since += &format!(
                        " AND decided_at >= {} AND slot >= {}",
                        p(1 + bounds.len()),
                        p(2 + bounds.len())
                    );
                }
                if let Some(slot) = to_slot {
                    bounds.push(slot.into());
                    since += &format!(" AND slot <= {}", p(2 + bounds.len()));
                }
                loop {
                    let mut values = vec![tenant.id().into(), workload_hash(workload).into()];
                    values.extend(bounds.iter().cloned());
                    let found = rows(
                        self.conn(),
                        format!(
                            "SELECT slot, body FROM allocation_decision_groups \
                             WHERE organization_id = {} AND chunk = {} % chunks{since} \
                             ORDER BY slot DESC LIMIT {page} OFFSET {offset}",
                            p(1),
                            p(2)
                        ),
                        values,
                    )
                    .await?;
                    for r in &found {
                        let slot: i64 = r.try_get_by_index(0)?;
                        let body: Vec<u8> = r.try_get_by_index(1)?;
                        for e in readable(&body, tenant.id(), slot) {
                            if e.workload != workload {
                                continue;
                            }
                            match e.logged {
                                Some(logged) => {
                                    let d = logged.into_decision(e.workload, slot);
                                    if admitted(&d) {
                                        named += 1;
                                        out.push(d);
                                    }
                                }
                                // A decision kept as a row: counted where it
                                // is surely past the cursor (else reading on
                                // costs a group, never a decision).
                                None => {
                                    if surely_admitted(slot) {
                                        named += 1;
                                    }
                                }
                            }
                        }
                        if named >= limit {
                            break;
                        }
                    }
                    if named >= limit || found.len() < page {
                        break;
                    }
                    offset += page;
                }
            }
            // The newest groups holding at least `limit` decisions, and any
            // of the same slot.
            None => {
                let page = limit.clamp(64, 1000);
                let mut offset = 0;
                let mut counted = 0;
                let mut since = None;
                let mut bound = String::new();
                let mut bounds: Vec<Value> = vec![tenant.id().into()];
                if let (Some(at), Some(slot)) = (since_ms, from_time_slot) {
                    bounds.extend([at.into(), slot.into()]);
                    bound += &format!(
                        " AND decided_at >= {} AND slot >= {}",
                        p(bounds.len() - 1),
                        p(bounds.len())
                    );
                }
                if let Some(slot) = to_slot {
                    bounds.push(slot.into());
                    bound += &format!(" AND slot <= {}", p(bounds.len()));
                }
                let values = || bounds.clone();
                'pages: loop {
                    let found = rows(
                        self.conn(),
                        format!(
                            "SELECT slot, decisions FROM allocation_decision_groups \
                             WHERE organization_id = {}{bound} \
                             ORDER BY slot DESC LIMIT {page} OFFSET {offset}",
                            p(1)
                        ),
                        values(),
                    )
                    .await?;
                    for r in &found {
                        let slot: i64 = r.try_get_by_index(0)?;
                        let n: i32 = r.try_get_by_index(1)?;
                        since = Some(slot);
                        // Groups that may hold decisions the cursor excludes
                        // are read but not counted.
                        if surely_admitted(slot) {
                            counted += usize::try_from(n).unwrap_or(0);
                        }
                        if counted >= limit {
                            break 'pages;
                        }
                    }
                    if found.len() < page {
                        break;
                    }
                    offset += page;
                }
                let Some(since) = since else {
                    return Ok(out);
                };
                let mut values: Vec<Value> = vec![tenant.id().into(), since.into()];
                let mut upto = String::new();
                if let Some(slot) = to_slot {
                    values.push(slot.into());
                    upto = format!(" AND slot <= {}", p(3));
                }
                for r in rows(
                    self.conn(),
                    format!(
                        "SELECT slot, body FROM allocation_decision_groups \
                         WHERE organization_id = {} AND slot >= {}{upto}",
                        p(1),
                        p(2)
                    ),
                    values,
                )
                .await?
                {
                    let slot: i64 = r.try_get_by_index(0)?;
                    let body: Vec<u8> = r.try_get_by_index(1)?;
                    out.extend(
                        readable(&body, tenant.id(), slot)
                            .into_iter()
                            .filter_map(|e| Some(e.logged?.into_decision(e.workload, slot))),
                    );
                }
            }
        }
        out.retain(|d| since_ms.is_none_or(|at| d.decided_ms >= at) && admitted(d));
        crate::allocation::keep_newest(&mut out, limit as u64);
        Ok(out)
    }

    /// Whether `workload` of `org` was decided by the controller in a slot
    /// after `slot` (what supersedes a decision left pending there). Looks
    /// at the next few ticks of the workload's group.
    pub(crate) async fn decided_after(
        &self,
        org: &str,
        workload: &str,
        slot: i64,
    ) -> Result<bool, StoreError> {
        let p = binder(self.db_backend());
        for r in rows(
            self.conn(),
            format!(
                "SELECT slot, body FROM allocation_decision_groups \
                 WHERE organization_id = {} AND slot > {} AND chunk = {} % chunks \
                 ORDER BY slot LIMIT 16",
                p(1),
                p(2),
                p(3)
            ),
            vec![org.into(), slot.into(), workload_hash(workload).into()],
        )
        .await?
        {
            let body: Vec<u8> = r.try_get_by_index(1)?;
            if readable(&body, org, r.try_get_by_index(0)?)
                .iter()
                .any(|e| e.workload == workload)
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Adds `note` to the detail of the compact decision of `workload` in
    /// `slot` (a retried tick's repair); whether there was one.
    pub(crate) async fn note_grouped(
        &self,
        tenant: &Tenant,
        workload: &str,
        slot: i64,
        note: &str,
    ) -> Result<bool, StoreError> {
        let tx = self.conn().begin().await?;
        let found = note_in(&tx, tenant, workload, slot, note).await?;
        tx.commit().await?;
        Ok(found)
    }

    /// Deletes `org`'s groups decided before `cutoff_ms`, `batch` a
    /// statement; how many. Nothing in them is read by billing: their
    /// decisions commanded nothing.
    pub(crate) async fn prune_groups(
        &self,
        org: &str,
        cutoff_ms: i64,
        batch: i64,
    ) -> Result<u64, StoreError> {
        let p = binder(self.db_backend());
        let sql = format!(
            "DELETE FROM allocation_decision_groups WHERE organization_id = {} \
             AND (slot, chunk) IN (SELECT g.slot, g.chunk FROM allocation_decision_groups g \
               WHERE g.organization_id = {} AND g.decided_at < {} LIMIT {})",
            p(1),
            p(2),
            p(3),
            p(4)
        );
        let values = vec![org.into(), org.into(), cutoff_ms.into(), batch.into()];
        Ok(crate::sql::delete_in_batches(self.conn(), &sql, values, batch).await?)
    }
}

/// `FOR UPDATE` where the backend has row locks. SQLite has one writer: a
/// retried tick's transaction has written its claim before it reads; a note
/// (rare) that meets another writer fails and is only logged by the job.
fn row_lock(backend: sea_orm::DbBackend) -> &'static str {
    if backend == sea_orm::DbBackend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// Adds to an already claimed slot the decisions of `unit` for workloads it
/// does not hold yet (one added to the controller since, or left out), each
/// to the group its hash names; the indices of those added.
async fn add_to_claimed(
    tx: &DatabaseTransaction,
    writes: &[DecisionWrite<'_>],
    unit: &Unit<'_>,
) -> Result<Vec<usize>, StoreError> {
    let backend = tx.get_database_backend();
    let p = binder(backend);
    let (org, slot) = (&unit.groups[0].org, unit.groups[0].slot);
    // Locked, so two replicas adding to the same slot take turns.
    let lock = row_lock(backend);
    let mut groups: BTreeMap<i64, (i64, Vec<Entry<'_>>)> = BTreeMap::new();
    for r in rows(
        tx,
        format!(
            "SELECT chunk, chunks, body FROM allocation_decision_groups \
             WHERE organization_id = {} AND slot = {}{lock}",
            p(1),
            p(2)
        ),
        vec![org.clone().into(), slot.into()],
    )
    .await?
    {
        let chunk: i32 = r.try_get_by_index(0)?;
        let chunks: i32 = r.try_get_by_index(1)?;
        let body: Vec<u8> = r.try_get_by_index(2)?;
        groups.insert(i64::from(chunk), (i64::from(chunks), decode(&body)?));
    }
    let decided: HashSet<String> = groups
        .values()
        .flat_map(|(_, entries)| entries.iter().map(|e| e.workload.to_string()))
        .collect();
    let chunks = groups.values().map(|(n, _)| *n).max().unwrap_or(1).max(1);
    let mut added = Vec::new();
    let mut changed: BTreeMap<i64, i64> = BTreeMap::new();
    for &i in &unit.writes {
        let d = writes[i].decision;
        if decided.contains(&d.workload) {
            continue;
        }
        let chunk = workload_hash(&d.workload) % chunks;
        let Some((_, entries)) = groups.get_mut(&chunk) else {
            // A group the claim's tick did not write: cannot be found by
            // its hash, so the workload waits for the next slot.
            continue;
        };
        entries.push(Entry::of(d));
        let at = changed.entry(chunk).or_insert(i64::MIN);
        *at = (*at).max(d.decided_ms);
        added.push(i);
    }
    for (chunk, decided_ms) in changed {
        rewrite_group(tx, org, slot, chunk, &groups[&chunk].1, decided_ms).await?;
    }
    Ok(added)
}

/// Stores a group's entries anew, its time moved up to `newest_ms` when
/// that is later (decisions added to it).
async fn rewrite_group(
    tx: &DatabaseTransaction,
    org: &str,
    slot: i64,
    chunk: i64,
    entries: &[Entry<'_>],
    newest_ms: i64,
) -> Result<(), StoreError> {
    let p = binder(tx.get_database_backend());
    crate::sql::exec(
        tx,
        format!(
            "UPDATE allocation_decision_groups SET body = {}, decisions = {}, \
             decided_at = CASE WHEN decided_at < {} THEN {} ELSE decided_at END \
             WHERE organization_id = {} AND slot = {} AND chunk = {}",
            p(1),
            p(2),
            p(3),
            p(4),
            p(5),
            p(6),
            p(7)
        ),
        vec![
            encode(entries)?.into(),
            i32::try_from(entries.len()).unwrap_or(i32::MAX).into(),
            newest_ms.into(),
            newest_ms.into(),
            org.into(),
            slot.into(),
            i32::try_from(chunk).unwrap_or(i32::MAX).into(),
        ],
    )
    .await?;
    Ok(())
}

async fn note_in(
    tx: &DatabaseTransaction,
    tenant: &Tenant,
    workload: &str,
    slot: i64,
    note: &str,
) -> Result<bool, StoreError> {
    let backend = tx.get_database_backend();
    let p = binder(backend);
    let lock = row_lock(backend);
    let Some(r) = crate::sql::row(
        tx,
        format!(
            "SELECT chunk, body FROM allocation_decision_groups \
             WHERE organization_id = {} AND slot = {} AND chunk = {} % chunks{lock}",
            p(1),
            p(2),
            p(3)
        ),
        vec![
            tenant.id().into(),
            slot.into(),
            workload_hash(workload).into(),
        ],
    )
    .await?
    else {
        return Ok(false);
    };
    let chunk: i32 = r.try_get_by_index(0)?;
    let body: Vec<u8> = r.try_get_by_index(1)?;
    let mut entries = decode(&body)?;
    let Some(logged) = entries
        .iter_mut()
        .filter(|e| e.workload == workload)
        .find_map(|e| e.logged.as_mut())
    else {
        return Ok(false);
    };
    logged.detail = Some(Detail::Text(Cow::Owned(match logged.detail.take() {
        Some(detail) => format!("{}; {note}", detail.as_str()),
        None => note.to_owned(),
    })));
    rewrite_group(tx, tenant.id(), slot, i64::from(chunk), &entries, i64::MIN).await?;
    Ok(true)
}

/// Groups per (organisation, slot) a call's decisions make: for the tests.
#[cfg(test)]
fn group_sizes(
    writes: &[DecisionWrite<'_>],
) -> std::collections::HashMap<(String, i64), Vec<usize>> {
    let which: Vec<usize> = (0..writes.len()).collect();
    units(writes, &which)
        .into_iter()
        .map(|u| {
            (
                (u.groups[0].org.clone(), u.groups[0].slot),
                u.groups.iter().map(|g| g.entries.len()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(workload: &str, slot: i64, status: &str) -> StoredDecision {
        StoredDecision {
            id: format!("id-{workload}-{slot}"),
            workload: workload.into(),
            source: "controller".into(),
            slot,
            decided_ms: slot * 300_000,
            mode: "on".into(),
            before: 2,
            after: 3,
            warm: 1,
            reason: "forecast_above".into(),
            limits_json: "[\"bound_max\"]".into(),
            observed: Some(1.5),
            sized_for: None,
            forecast_version: Some("ets-1".into()),
            status: status.into(),
            command_id: format!("cmd-{workload}"),
            detail: None,
            missed: Some(true),
        }
    }

    #[test]
    fn a_compact_decision_comes_back_whole() {
        let mut d = decision("web", 7, "no_provider");
        d.detail = Some("no provider".into());
        let body = encode(&[Entry {
            workload: Cow::Borrowed(&d.workload),
            logged: Some(Logged::of(&d)),
        }])
        .unwrap();
        let back = decode(&body).unwrap().remove(0);
        assert_eq!(back.logged.unwrap().into_decision(back.workload, 7), d);
        assert!(decode(&[9, 0]).is_err(), "an unknown format is refused");
        assert!(decode(&[]).is_err());
    }

    #[test]
    fn ids_made_here_are_stored_as_bytes_and_any_other_as_text() {
        let made = crate::new_id();
        let mut d = decision("web", 7, "logged");
        d.id = made.clone();
        d.command_id = "0191D0A8-6B7C-7DEF-8123-456789ABCDEF".into();
        let body = encode(&[Entry::of(&d)]).unwrap();
        let logged = decode(&body).unwrap().remove(0).logged.unwrap();
        assert!(matches!(logged.id, Id::Uuid(_)));
        // Upper case would come back lower: kept as it is.
        assert!(matches!(logged.command_id, Id::Text(_)));
        assert_eq!(logged.into_decision("web".into(), 7), d);
        for other in [
            "{0191d0a8-6b7c-7def-8123-456789abcdef}",
            "0191d0a86b7c7def8123456789abcdef",
            "cmd-web",
            "",
        ] {
            assert!(matches!(Id::of(other), Id::Text(_)), "{other}");
            assert_eq!(Id::of(other).into_string(), other);
        }
        // A fifth of a logged decision's body, at least, saved by the bytes.
        let mut text = d.clone();
        text.id = format!("x{}", &made[1..]);
        text.command_id = format!("x{}", &made[1..]);
        d.command_id = crate::new_id();
        let short = encode(&[Entry::of(&d)]).unwrap().len();
        let long = encode(&[Entry::of(&text)]).unwrap().len();
        assert!(short * 5 <= long * 4, "{short} vs {long}");
    }

    #[test]
    fn the_usual_no_provider_detail_is_a_mark_and_any_other_is_text() {
        let mut d = decision("web", 7, "no_provider");
        d.detail = Some(crate::allocation::NO_PROVIDER_DETAIL.into());
        let back = decode(&encode(&[Entry::of(&d)]).unwrap())
            .unwrap()
            .remove(0);
        let logged = back.logged.unwrap();
        assert_eq!(logged.detail, Some(Detail::NoProvider));
        assert_eq!(logged.into_decision("web".into(), 7), d);
        // With a note added (a retried tick's), it is the text.
        d.detail = Some(format!(
            "{}; retried",
            crate::allocation::NO_PROVIDER_DETAIL
        ));
        let back = decode(&encode(&[Entry::of(&d)]).unwrap())
            .unwrap()
            .remove(0);
        let logged = back.logged.unwrap();
        assert!(matches!(logged.detail, Some(Detail::Text(_))));
        assert_eq!(logged.into_decision("web".into(), 7), d);
    }

    #[test]
    fn groups_written_with_text_ids_are_still_read() {
        // Format 1, as written before ids were stored as bytes.
        let d = decision("web", 7, "logged");
        let old: Entry<'_, Cow<'_, str>, Cow<'_, str>> = Entry {
            workload: Cow::Borrowed(&d.workload),
            logged: Some(Logged::with(&d, Cow::Borrowed, Cow::Borrowed)),
        };
        let mut body = vec![FORMAT_TEXT_IDS];
        body.extend(postcard::to_allocvec(&[old][..]).unwrap());
        let back = decode(&body).unwrap().remove(0);
        assert_eq!(back.logged.unwrap().into_decision(back.workload, 7), d);
    }

    #[test]
    fn only_controller_decisions_that_command_nothing_are_compact() {
        assert!(compact(&decision("a", 1, "logged")));
        assert!(compact(&decision("a", 1, "no_provider")));
        assert!(!compact(&decision("a", 1, "pending")));
        assert!(!compact(&decision("a", 1, "applied")));
        assert!(!compact(&decision("a", 1, "failed")));
        let mut suggested = decision("a", 1, "logged");
        suggested.source = "suggestion".into();
        assert!(!compact(&suggested));
    }

    #[test]
    fn the_hash_is_fixed() {
        // Stored rows are found by it: it must never change.
        assert_eq!(workload_hash(""), 0x811c_9dc5);
        assert_eq!(workload_hash("a"), 0xe40c_292c);
        assert_eq!(workload_hash("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn a_slot_splits_into_groups_of_about_the_group_size() {
        let t = Tenant::new("o");
        let u = Tenant::new("p");
        let ds: Vec<StoredDecision> = (0..1000)
            .map(|i| decision(&format!("w{i}"), 5, "logged"))
            .chain([decision("x", 5, "pending")])
            .collect();
        let writes: Vec<DecisionWrite<'_>> = ds
            .iter()
            .enumerate()
            .map(|(i, d)| DecisionWrite {
                tenant: if i < 1000 { &t } else { &u },
                decision: d,
                state: None,
            })
            .collect();
        let sizes = group_sizes(&writes);
        let big = &sizes[&("o".to_owned(), 5)];
        assert_eq!(big.len(), 4);
        assert_eq!(big.iter().sum::<usize>(), 1000);
        assert!(big.iter().all(|&n| (150..350).contains(&n)), "{big:?}");
        assert_eq!(sizes[&("p".to_owned(), 5)], vec![1]);
    }
}
