//! The on-disk spool: points wait here until the server has them, so they survive
//! server outages and agent restarts.
//!
//! Layout of the spool directory:
//! - segments `00000000000000000042.ndjson`: one JSON value per line, appended only;
//!   the newest segment takes new lines, and a new one is started when it reaches
//!   `segment_bytes`;
//! - `cursor`: `<segment> <byte offset>` of the first line not yet confirmed by the
//!   server. Lines before it are sent; a segment wholly before it is deleted.
//!
//! Lines are read back oldest first. Crash safety:
//! - An append is one `write` of whole lines. A crash (or a full disk) in the middle
//!   leaves a partial last line; at open it is cut off with a warning, never fatal.
//!   A complete line that is not valid JSON is skipped with a warning.
//! - fsync policy (`fsync: true`, the default): the segment's data is flushed with
//!   `fdatasync` after every append, and the directory after a segment is created,
//!   so an acknowledged append survives a power loss. The cursor is replaced
//!   atomically (write + rename) but not fsynced: losing its last update only means
//!   re-sending points, which the server reports as duplicates. With
//!   `fsync: false` a power loss can lose the last appends (an agent crash cannot:
//!   the data is in the page cache).
//!
//! Size bound: the segments together never exceed `max_bytes`. When an append would
//! pass it, the oldest segment is deleted and the number of unsent points it held is
//! logged as a warning and added to [`Spool::dropped`].

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

const SEGMENT_SUFFIX: &str = ".ndjson";
const CURSOR_FILE: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Upper bound of the segments' total size.
    pub max_bytes: u64,
    /// A segment is closed once it reaches this size; when the spool is full, one
    /// segment (the oldest) is what is dropped.
    pub segment_bytes: u64,
    /// `fdatasync` after every append (see the module docs).
    pub fsync: bool,
}

impl SpoolConfig {
    /// Segments of an eighth of the bound (between 1 KiB and 8 MiB), fsync on.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self {
            dir: dir.into(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(1024, 8 * 1024 * 1024),
            fsync: true,
        }
    }
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    bytes: u64,
    lines: u64,
}

/// Lines from the head of the spool. Send them, then [`Spool::ack`] the batch.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Each a JSON value, without the newline.
    pub lines: Vec<String>,
    seq: u64,
    end: u64,
    consumed_lines: u64,
}

pub struct Spool {
    config: SpoolConfig,
    /// Oldest first; the last one takes appends.
    segments: VecDeque<Segment>,
    /// Offset in the oldest segment of its first unsent line.
    cursor: u64,
    /// Lines of the oldest segment before `cursor`.
    cursor_lines: u64,
    writer: Option<File>,
    next_seq: u64,
    dropped: u64,
}

impl Spool {
    /// Opens (or creates) the spool directory and recovers what a previous run left.
    pub fn open(config: SpoolConfig) -> io::Result<Self> {
        if config.max_bytes == 0 || config.segment_bytes == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "spool sizes must be positive",
            ));
        }
        let dir = config.dir.clone();
        fs::create_dir_all(&dir)?;
        let _ = fs::remove_file(dir.join(CURSOR_TMP));

        let mut seqs = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let name = entry?.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
                continue;
            };
            if stem.len() == 20
                && stem.bytes().all(|b| b.is_ascii_digit())
                && let Ok(seq) = stem.parse::<u64>()
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();

        let mut segments = VecDeque::with_capacity(seqs.len());
        let last = seqs.last().copied();
        for seq in seqs {
            let path = segment_path(&dir, seq);
            let (bytes, lines) = recover_segment(&path)?;
            if bytes == 0 && Some(seq) != last {
                fs::remove_file(&path)?;
                continue;
            }
            segments.push_back(Segment { seq, bytes, lines });
        }

        let saved = read_cursor(&dir);
        let mut cursor = 0;
        if let (Some((cseq, offset)), Some(first), Some(newest)) = (
            saved,
            segments.front().map(|s| s.seq),
            segments.back().map(|s| s.seq),
        ) {
            if cseq >= first && cseq <= newest {
                // Segments before the cursor's were sent; a crash came before their deletion.
                while segments.front().is_some_and(|s| s.seq < cseq) {
                    let s = segments.pop_front().expect("checked");
                    fs::remove_file(segment_path(&dir, s.seq))?;
                }
                if segments.front().is_some_and(|s| s.seq == cseq) {
                    cursor = offset;
                }
            } else if cseq > newest {
                tracing::warn!(
                    cursor_segment = cseq,
                    "spool cursor points past the newest segment; sending everything again"
                );
            }
        }

        let mut spool = Self {
            next_seq: segments
                .back()
                .map(|s| s.seq)
                .max(saved.map(|(s, _)| s))
                .map_or(1, |s| s + 1),
            config,
            segments,
            cursor: 0,
            cursor_lines: 0,
            writer: None,
            dropped: 0,
        };
        if cursor > 0 {
            match spool.lines_before(cursor)? {
                Some(lines) => {
                    spool.cursor = cursor;
                    spool.cursor_lines = lines;
                }
                None => tracing::warn!(
                    offset = cursor,
                    "spool cursor is not at a line boundary; sending the oldest segment again"
                ),
            }
        }
        if spool.pending() > 0 {
            tracing::info!(
                points = spool.pending(),
                bytes = spool.bytes(),
                "spool holds unsent points from an earlier run"
            );
        }
        Ok(spool)
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.config
    }

    /// Points waiting to be sent.
    pub fn pending(&self) -> u64 {
        self.segments.iter().map(|s| s.lines).sum::<u64>() - self.cursor_lines
    }

    /// Bytes on disk (sent lines of the oldest segment included, until it is deleted).
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Unsent points deleted since open because the spool was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Appends one line per item, after the lines already there.
    pub fn append<T: Serialize>(&mut self, items: &[T]) -> io::Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(items.len() * 96);
        for item in items {
            serde_json::to_writer(&mut buf, item).map_err(io::Error::other)?;
            buf.push(b'\n');
        }
        let len = buf.len() as u64;
        if len > self.config.max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{len} bytes in one append is more than the whole spool ({} bytes)",
                    self.config.max_bytes
                ),
            ));
        }
        let rotate = match self.segments.back() {
            None => true,
            Some(s) => {
                s.bytes > 0
                    && (s.bytes + len > self.config.segment_bytes
                        || self.bytes() + len > self.config.max_bytes)
            }
        };
        if rotate {
            self.rotate()?;
        }
        while self.bytes() + len > self.config.max_bytes && self.segments.len() > 1 {
            self.drop_oldest()?;
        }

        let fsync = self.config.fsync;
        let seq = self.segments.back().expect("a segment after rotate").seq;
        let start = self.segments.back().expect("checked").bytes;
        if self.writer.is_none() {
            self.writer = Some(
                OpenOptions::new()
                    .append(true)
                    .open(segment_path(&self.config.dir, seq))?,
            );
        }
        let file = self.writer.as_mut().expect("just opened");
        if let Err(e) = file.write_all(&buf) {
            // Leave no partial line behind for the next append to run into.
            let _ = file.set_len(start);
            return Err(e);
        }
        if fsync {
            file.sync_data()?;
        }
        let seg = self.segments.back_mut().expect("checked");
        seg.bytes += len;
        seg.lines += items.len() as u64;
        Ok(())
    }

    /// Up to `max_lines` of the oldest unsent lines (all from one segment), or `None`
    /// when nothing waits. Reading does not remove them: [`Spool::ack`] does.
    pub fn peek(&mut self, max_lines: usize) -> io::Result<Option<Batch>> {
        let max_lines = max_lines.max(1);
        loop {
            let Some(head) = self.segments.front() else {
                return Ok(None);
            };
            if self.cursor >= head.bytes {
                if self.segments.len() > 1 {
                    self.remove_head()?;
                    continue;
                }
                return Ok(None);
            }
            let (seq, limit) = (head.seq, head.bytes);
            let mut file = File::open(segment_path(&self.config.dir, seq))?;
            file.seek(SeekFrom::Start(self.cursor))?;
            let mut reader = BufReader::new(file.take(limit - self.cursor));
            let (mut lines, mut consumed, mut consumed_lines, mut skipped) =
                (Vec::new(), 0u64, 0u64, 0u64);
            let mut raw = Vec::new();
            while lines.len() < max_lines {
                raw.clear();
                let n = reader.read_until(b'\n', &mut raw)?;
                if n == 0 || raw.last() != Some(&b'\n') {
                    break;
                }
                consumed += n as u64;
                consumed_lines += 1;
                match std::str::from_utf8(&raw[..n - 1]) {
                    Ok(s) if serde_json::from_str::<serde::de::IgnoredAny>(s).is_ok() => {
                        lines.push(s.to_owned());
                    }
                    _ => skipped += 1,
                }
            }
            if skipped > 0 {
                tracing::warn!(
                    skipped,
                    segment = seq,
                    "spool: skipped lines that are not valid JSON"
                );
            }
            if consumed == 0 {
                // The file is shorter than recorded (changed behind our back).
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("spool segment {seq} ends before its recorded size"),
                ));
            }
            let batch = Batch {
                lines,
                seq,
                end: self.cursor + consumed,
                consumed_lines,
            };
            if batch.lines.is_empty() {
                self.ack(&batch)?;
                continue;
            }
            return Ok(Some(batch));
        }
    }

    /// Marks a batch from [`Spool::peek`] as sent. A batch whose segment was dropped
    /// meanwhile (spool full), or one already acknowledged, changes nothing.
    pub fn ack(&mut self, batch: &Batch) -> io::Result<()> {
        let Some(head) = self.segments.front() else {
            return Ok(());
        };
        if head.seq != batch.seq || batch.end <= self.cursor {
            return Ok(());
        }
        self.cursor = batch.end.min(head.bytes);
        self.cursor_lines = (self.cursor_lines + batch.consumed_lines).min(head.lines);
        if self.cursor >= head.bytes && self.segments.len() > 1 {
            self.remove_head()?;
        }
        self.write_cursor()
    }

    /// Flushes appended data to the disk (done after every append when `fsync` is on).
    pub fn sync(&mut self) -> io::Result<()> {
        match &self.writer {
            Some(file) => file.sync_data(),
            None => Ok(()),
        }
    }

    /// Wraps the spool for sharing between the collector and the shipper.
    pub fn shared(self) -> SharedSpool {
        SharedSpool(Arc::new(Mutex::new(self)))
    }

    fn rotate(&mut self) -> io::Result<()> {
        if let Some(old) = self.writer.take()
            && self.config.fsync
        {
            old.sync_data()?;
        }
        let seq = self.next_seq;
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(segment_path(&self.config.dir, seq))?;
        if self.config.fsync {
            File::open(&self.config.dir)?.sync_all()?;
        }
        self.next_seq += 1;
        self.segments.push_back(Segment {
            seq,
            bytes: 0,
            lines: 0,
        });
        self.writer = Some(file);
        Ok(())
    }

    fn drop_oldest(&mut self) -> io::Result<()> {
        let unsent = self.segments.front().map_or(0, |s| s.lines) - self.cursor_lines;
        self.remove_head()?;
        self.dropped += unsent;
        tracing::warn!(
            dropped_points = unsent,
            dropped_total = self.dropped,
            max_bytes = self.config.max_bytes,
            "spool full: dropped the oldest segment with {unsent} unsent points"
        );
        self.write_cursor()
    }

    fn remove_head(&mut self) -> io::Result<()> {
        if let Some(head) = self.segments.pop_front() {
            match fs::remove_file(segment_path(&self.config.dir, head.seq)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        if self.segments.is_empty() {
            self.writer = None;
        }
        self.cursor = 0;
        self.cursor_lines = 0;
        Ok(())
    }

    fn write_cursor(&self) -> io::Result<()> {
        let Some(head) = self.segments.front() else {
            return Ok(());
        };
        let tmp = self.config.dir.join(CURSOR_TMP);
        fs::write(&tmp, format!("{} {}\n", head.seq, self.cursor))?;
        fs::rename(tmp, self.config.dir.join(CURSOR_FILE))
    }

    /// Lines in the oldest segment before `offset`, or `None` if `offset` is not
    /// at the start of a line.
    fn lines_before(&self, offset: u64) -> io::Result<Option<u64>> {
        let Some(head) = self.segments.front() else {
            return Ok(None);
        };
        if offset > head.bytes {
            return Ok(None);
        }
        let mut prefix = Vec::new();
        File::open(segment_path(&self.config.dir, head.seq))?
            .take(offset)
            .read_to_end(&mut prefix)?;
        if prefix.len() as u64 != offset || prefix.last().is_some_and(|b| *b != b'\n') {
            return Ok(None);
        }
        Ok(Some(prefix.iter().filter(|b| **b == b'\n').count() as u64))
    }
}

/// The spool behind a mutex: the collector appends, the shipper reads and acks.
/// Each call holds the lock for one short file operation; never across an `.await`.
#[derive(Clone)]
pub struct SharedSpool(Arc<Mutex<Spool>>);

impl SharedSpool {
    pub fn lock(&self) -> MutexGuard<'_, Spool> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn append<T: Serialize>(&self, items: &[T]) -> io::Result<()> {
        self.lock().append(items)
    }

    pub fn pending(&self) -> u64 {
        self.lock().pending()
    }
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}{SEGMENT_SUFFIX}"))
}

fn read_cursor(dir: &Path) -> Option<(u64, u64)> {
    let text = fs::read_to_string(dir.join(CURSOR_FILE)).ok()?;
    let mut parts = text.split_whitespace();
    let seq = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    Some((seq, offset))
}

/// Size and line count of a segment, after cutting off a partially written last line.
fn recover_segment(path: &Path) -> io::Result<(u64, u64)> {
    let data = fs::read(path)?;
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if complete < data.len() {
        tracing::warn!(
            segment = %path.display(),
            bytes = data.len() - complete,
            "spool: ignoring a partially written last line (the agent stopped mid-write)"
        );
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(complete as u64)?;
        file.sync_all()?;
    }
    let lines = data[..complete].iter().filter(|b| **b == b'\n').count() as u64;
    Ok((complete as u64, lines))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn config(dir: &Path, max_bytes: u64, segment_bytes: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes,
            fsync: true,
        }
    }

    fn item(i: u64) -> Value {
        json!({ "workload": "w", "metric": "m", "timestamp": 1_700_000_000 + i, "value": i })
    }

    /// Reads and acks everything, returning the `value`s in the order read.
    fn drain(spool: &mut Spool, per_batch: usize) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(batch) = spool.peek(per_batch).unwrap() {
            assert!(batch.lines.len() <= per_batch);
            for line in &batch.lines {
                let v: Value = serde_json::from_str(line).unwrap();
                out.push(v["value"].as_u64().unwrap());
            }
            spool.ack(&batch).unwrap();
        }
        out
    }

    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
            .collect();
        files.sort();
        files
    }

    #[test]
    fn lines_come_back_in_order_across_segments_and_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 1 << 20, 400)).unwrap();
        for chunk in (0..50).collect::<Vec<u64>>().chunks(3) {
            let items: Vec<Value> = chunk.iter().map(|&i| item(i)).collect();
            spool.append(&items).unwrap();
        }
        assert!(segment_files(dir.path()).len() > 3, "several segments");
        assert_eq!(spool.pending(), 50);

        // Send part of it, then "restart".
        let mut seen = Vec::new();
        for _ in 0..4 {
            let batch = spool.peek(7).unwrap().unwrap();
            for line in &batch.lines {
                seen.push(
                    serde_json::from_str::<Value>(line).unwrap()["value"]
                        .as_u64()
                        .unwrap(),
                );
            }
            spool.ack(&batch).unwrap();
        }
        // Read but not acknowledged: must come again after the restart.
        let _unacked = spool.peek(5).unwrap().unwrap();
        drop(spool);

        let mut spool = Spool::open(config(dir.path(), 1 << 20, 400)).unwrap();
        assert_eq!(spool.pending(), 50 - seen.len() as u64);
        seen.extend(drain(&mut spool, 10));
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
        assert_eq!(spool.pending(), 0);
        assert_eq!(
            segment_files(dir.path()).len(),
            1,
            "sent segments are deleted"
        );

        // New lines after a full drain, and again after reopening the drained spool.
        spool.append(&[item(50)]).unwrap();
        drop(spool);
        let mut spool = Spool::open(config(dir.path(), 1 << 20, 400)).unwrap();
        assert_eq!(drain(&mut spool, 10), vec![50]);
    }

    #[test]
    fn a_partially_written_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 1 << 20, 1 << 16)).unwrap();
        spool.append(&(0..5).map(item).collect::<Vec<_>>()).unwrap();
        drop(spool);
        let last = segment_files(dir.path()).pop().unwrap();
        let before = fs::metadata(&last).unwrap().len();
        OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap()
            .write_all(br#"{"workload":"w","metric":"m","times"#)
            .unwrap();

        let mut spool = Spool::open(config(dir.path(), 1 << 20, 1 << 16)).unwrap();
        assert_eq!(spool.pending(), 5);
        assert_eq!(fs::metadata(&last).unwrap().len(), before, "cut off");
        // Appends after recovery start on a fresh line.
        spool.append(&[item(5)]).unwrap();
        assert_eq!(drain(&mut spool, 100), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_corrupt_complete_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 1 << 20, 1 << 16)).unwrap();
        spool.append(&[item(0)]).unwrap();
        drop(spool);
        let last = segment_files(dir.path()).pop().unwrap();
        OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap()
            .write_all(b"{not json\n")
            .unwrap();
        let mut spool = Spool::open(config(dir.path(), 1 << 20, 1 << 16)).unwrap();
        spool.append(&[item(1)]).unwrap();
        assert_eq!(spool.pending(), 3);
        assert_eq!(drain(&mut spool, 100), vec![0, 1]);
        assert_eq!(spool.pending(), 0);
    }

    #[test]
    fn a_full_spool_drops_the_oldest_segment_and_counts_it() {
        let dir = tempfile::tempdir().unwrap();
        let line_len = serde_json::to_vec(&item(100)).unwrap().len() as u64 + 1;
        // Ten lines per segment, four segments' worth of room.
        let (segment, max) = (10 * line_len, 40 * line_len);
        let mut spool = Spool::open(config(dir.path(), max, segment)).unwrap();
        for i in 100..200 {
            spool.append(&[item(i)]).unwrap();
            assert!(
                spool.bytes() <= max,
                "bound kept: {} > {max}",
                spool.bytes()
            );
        }
        let dropped = spool.dropped();
        assert!(dropped > 0);
        assert_eq!(dropped % 10, 0, "whole segments are dropped");
        assert_eq!(
            dropped + spool.pending(),
            100,
            "every point is sent or counted"
        );
        // What is left is the newest points, still in order.
        assert_eq!(
            drain(&mut spool, 1000),
            (100 + dropped..200).collect::<Vec<_>>()
        );
    }

    #[test]
    fn an_ack_for_a_dropped_segment_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let line_len = serde_json::to_vec(&item(100)).unwrap().len() as u64 + 1;
        let mut spool = Spool::open(config(dir.path(), 4 * line_len, 2 * line_len)).unwrap();
        spool.append(&[item(100), item(101)]).unwrap();
        let stale = spool.peek(10).unwrap().unwrap();
        assert_eq!(stale.lines.len(), 2);
        spool.append(&[item(102), item(103)]).unwrap();
        spool.append(&[item(104), item(105)]).unwrap();
        assert_eq!(spool.dropped(), 2);
        spool.ack(&stale).unwrap();
        assert_eq!(drain(&mut spool, 10), vec![102, 103, 104, 105]);
    }

    #[test]
    fn an_append_larger_than_the_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(config(dir.path(), 64, 64)).unwrap();
        let err = spool
            .append(&(0..10).map(item).collect::<Vec<_>>())
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(spool.pending(), 0);
    }
}
