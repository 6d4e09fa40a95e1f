//! Reading a `timestamp,value` CSV (the NAB layout) into a series.
//!
//! Rows are the series, in file order: a backtest's `origin` is a row index, so
//! duplicate timestamps and gaps are kept as they are rather than resampled.
//! Empty, `NaN` or non-finite values are gaps the models step over.

use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;

#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: {reason}")]
    Row {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: the header must be `timestamp,value`, found `{found}`")]
    Header { path: PathBuf, found: String },
    #[error("{path}: no data rows")]
    Empty { path: PathBuf },
}

#[derive(Debug, Clone)]
pub struct Series {
    /// Unix seconds per row.
    pub timestamps: Vec<i64>,
    /// `None` marks a gap.
    pub values: Vec<Option<f64>>,
}

impl Series {
    pub fn read(path: &Path) -> Result<Self, SeriesError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeriesError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self, SeriesError> {
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .flexible(false)
            .from_reader(text.as_bytes());
        let row_error = |line: usize, reason: String| SeriesError::Row {
            path: path.to_owned(),
            line,
            reason,
        };
        let header = reader
            .headers()
            .map_err(|e| row_error(1, e.to_string()))?
            .clone();
        if header.len() != 2
            || !header[0].eq_ignore_ascii_case("timestamp")
            || !header[1].eq_ignore_ascii_case("value")
        {
            return Err(SeriesError::Header {
                path: path.to_owned(),
                found: header.iter().collect::<Vec<_>>().join(","),
            });
        }
        let (mut timestamps, mut values) = (Vec::new(), Vec::new());
        for (i, record) in reader.records().enumerate() {
            let line = i + 2;
            let record = record.map_err(|e| row_error(line, e.to_string()))?;
            timestamps.push(parse_time(&record[0]).ok_or_else(|| {
                row_error(
                    line,
                    format!(
                        "`{}` is not a timestamp (use `YYYY-MM-DD HH:MM:SS`, RFC 3339 or unix seconds)",
                        &record[0]
                    ),
                )
            })?);
            values.push(
                parse_value(&record[1])
                    .map_err(|raw| row_error(line, format!("`{raw}` is not a number")))?,
            );
        }
        if values.is_empty() {
            return Err(SeriesError::Empty {
                path: path.to_owned(),
            });
        }
        Ok(Self { timestamps, values })
    }

    /// The typical spacing of rows in seconds (median positive difference),
    /// which sets the daily and weekly seasons; 300 when it cannot be told.
    pub fn step_secs(&self) -> u64 {
        let mut diffs: Vec<i64> = self
            .timestamps
            .windows(2)
            .map(|w| w[1] - w[0])
            .filter(|d| *d > 0)
            .collect();
        if diffs.is_empty() {
            return 300;
        }
        let mid = diffs.len() / 2;
        *diffs.select_nth_unstable(mid).1 as u64
    }
}

pub(super) fn parse_time(raw: &str) -> Option<i64> {
    if let Ok(secs) = raw.parse::<i64>() {
        return Some(secs);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(raw) {
        return Some(t.timestamp());
    }
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(raw, f).ok())
    .or_else(|| {
        chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .map(|t| t.and_utc().timestamp())
}

fn parse_value(raw: &str) -> Result<Option<f64>, String> {
    if raw.is_empty() || raw.eq_ignore_ascii_case("nan") || raw.eq_ignore_ascii_case("null") {
        return Ok(None);
    }
    let v: f64 = raw.parse().map_err(|_| raw.to_owned())?;
    Ok(v.is_finite().then_some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Series, SeriesError> {
        Series::parse(Path::new("s.csv"), text)
    }

    #[test]
    fn reads_the_nab_layout_with_gaps() {
        let s = parse(
            "timestamp,value\n2014-02-14 14:30:00,0.5\n2014-02-14 14:35:00,NaN\n2014-02-14 14:35:00,\n2014-02-14 14:45:00,2\n2014-02-14 14:50:00,3\n",
        )
        .unwrap();
        assert_eq!(s.values, vec![Some(0.5), None, None, Some(2.0), Some(3.0)]);
        assert_eq!(s.step_secs(), 300);
    }

    #[test]
    fn names_the_bad_line() {
        let err = parse("timestamp,value\n2014-02-14 14:30:00,1\n2014-02-14 14:35:00,abc\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3") && err.contains("abc"), "{err}");
        let err = parse("time,v\n1,2\n").unwrap_err().to_string();
        assert!(err.contains("header"), "{err}");
        assert!(parse("timestamp,value\n").is_err());
        let err = parse("timestamp,value\nyesterday,1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }
}
