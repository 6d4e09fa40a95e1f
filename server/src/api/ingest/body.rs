//! Batch bodies: a JSON array or NDJSON (one JSON value per line), optionally gzip.
//! Sizes are capped before and after decompression, so a small gzip bomb cannot
//! exhaust memory.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde_json::value::RawValue;

use crate::api::error::ApiError;

/// One item of the batch: its JSON text (checked to be valid JSON, not yet
/// typed: each kind parses its items straight into its own struct), or the
/// reason it could not be read.
pub type Item = Result<Box<RawValue>, String>;

pub struct Limits {
    pub max_bytes: usize,
    pub max_items: usize,
}

pub async fn read_batch(
    headers: &HeaderMap,
    body: Body,
    limits: &Limits,
) -> Result<Vec<Item>, ApiError> {
    let too_big = || {
        ApiError::payload_too_large(format!(
            "request body is larger than {} bytes",
            limits.max_bytes
        ))
    };
    let raw = axum::body::to_bytes(body, limits.max_bytes)
        .await
        .map_err(|_| too_big())?;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    let bytes = match encoding.trim() {
        "identity" | "" => raw.to_vec(),
        "gzip" | "x-gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&raw[..])
                .take(limits.max_bytes as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::bad_request(format!("gzip body could not be decompressed: {e}"))
                })?;
            if out.len() > limits.max_bytes {
                return Err(too_big());
            }
            out
        }
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "Content-Encoding {other:?} is not supported (use gzip or none)"
            )));
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let items = match mime {
        "application/json" => match serde_json::from_slice::<Vec<Box<RawValue>>>(&bytes) {
            Ok(items) => items.into_iter().map(Ok).collect(),
            // Valid JSON, but not an array.
            Err(_) if serde_json::from_slice::<&RawValue>(&bytes).is_ok() => {
                return Err(ApiError::bad_request(
                    "the body must be a JSON array of items",
                ));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "the body is not valid JSON: {e}"
                )));
            }
        },
        "application/x-ndjson" | "application/jsonl" | "application/json-seq" => bytes
            .split(|b| *b == b'\n')
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
            .map(|line| {
                serde_json::from_slice::<Box<RawValue>>(line)
                    .map_err(|e| format!("not valid JSON: {e}"))
            })
            .collect(),
        _ => {
            return Err(ApiError::unsupported_media_type(
                "send application/json (an array) or application/x-ndjson (one item per line)",
            ));
        }
    };
    let items: Vec<Item> = items;
    if items.len() > limits.max_items {
        return Err(ApiError::payload_too_large(format!(
            "{} items in one batch; at most {} are accepted",
            items.len(),
            limits.max_items
        )));
    }
    Ok(items)
}
