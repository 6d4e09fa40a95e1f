//! A stored forecast's steps in a compact binary form.
//!
//! Every allocation tick reads the newest forecast of every workload, and
//! forecasts are kept for weeks for accuracy reports. Their JSON (about
//! 90 bytes a step, the model's name repeated in each) was a third of the
//! tick's decoding and the bulk of the table. Packed, a step is 25 bytes and
//! reading one allocates nothing: the bytes are checked once, when they are
//! read, and then walked.
//!
//! Layout (little-endian): a format byte (`1`); the number of distinct model
//! names, then each as a length byte and its UTF-8; the number of steps as
//! `u16`; then per step p10, p50 and p90 as `f64` and the index of its model's
//! name as one byte.

use super::Step;

const FORMAT: u8 = 1;
/// p10, p50, p90 and the model's index.
const STEP_BYTES: usize = 3 * 8 + 1;

/// Why bytes are not packed steps (a row written by a newer version, or damaged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackedError {
    #[error("unknown packed-steps format {0}")]
    Format(u8),
    #[error("packed steps end early")]
    Truncated,
    #[error("{0} bytes left over after the packed steps")]
    Trailing(usize),
    #[error("a model name in the packed steps is not UTF-8")]
    Utf8,
    #[error("step {step} names model {index} of {names}")]
    ModelIndex {
        step: usize,
        index: u8,
        names: usize,
    },
    #[error("a forecast has at most 65,535 steps and 255 models of up to 255 bytes: {0}")]
    TooLarge(&'static str),
    #[error("stored JSON steps are not readable: {0}")]
    Json(String),
}

/// A forecast's steps with the model that served each, packed (see the module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedSteps {
    bytes: Vec<u8>,
    /// Where the steps start (after the names and the count).
    steps_at: usize,
    len: usize,
}

impl PackedSteps {
    /// Packs steps with the model name of each (the engine's `Forecast`).
    pub fn pack<'a>(steps: impl IntoIterator<Item = (Step, &'a str)>) -> Result<Self, PackedError> {
        let mut names: Vec<&str> = Vec::new();
        let mut body = Vec::new();
        let mut len = 0usize;
        for (s, model) in steps {
            let index = match names.iter().position(|n| *n == model) {
                Some(i) => i,
                None => {
                    if model.len() > usize::from(u8::MAX) {
                        return Err(PackedError::TooLarge("a model name is too long"));
                    }
                    names.push(model);
                    names.len() - 1
                }
            };
            let index =
                u8::try_from(index).map_err(|_| PackedError::TooLarge("too many models"))?;
            for v in [s.p10, s.p50, s.p90] {
                body.extend_from_slice(&v.to_le_bytes());
            }
            body.push(index);
            len += 1;
        }
        let count = u16::try_from(len).map_err(|_| PackedError::TooLarge("too many steps"))?;
        let names_len =
            u8::try_from(names.len()).map_err(|_| PackedError::TooLarge("too many models"))?;
        let mut bytes =
            Vec::with_capacity(4 + names.iter().map(|n| n.len() + 1).sum::<usize>() + body.len());
        bytes.extend([FORMAT, names_len]);
        for n in &names {
            bytes.push(n.len() as u8);
            bytes.extend_from_slice(n.as_bytes());
        }
        bytes.extend_from_slice(&count.to_le_bytes());
        let steps_at = bytes.len();
        bytes.extend_from_slice(&body);
        Ok(Self {
            bytes,
            steps_at,
            len,
        })
    }

    /// Checks stored bytes; afterwards nothing in them can fail to read.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, PackedError> {
        let mut at = 0usize;
        let mut take = |n: usize| -> Result<&[u8], PackedError> {
            let part = bytes.get(at..at + n).ok_or(PackedError::Truncated)?;
            at += n;
            Ok(part)
        };
        let format = take(1)?[0];
        if format != FORMAT {
            return Err(PackedError::Format(format));
        }
        let names = usize::from(take(1)?[0]);
        for _ in 0..names {
            let n = usize::from(take(1)?[0]);
            std::str::from_utf8(take(n)?).map_err(|_| PackedError::Utf8)?;
        }
        let count = take(2)?;
        let len = usize::from(u16::from_le_bytes([count[0], count[1]]));
        let steps_at = at;
        let need = steps_at + len * STEP_BYTES;
        if bytes.len() < need {
            return Err(PackedError::Truncated);
        }
        if bytes.len() > need {
            return Err(PackedError::Trailing(bytes.len() - need));
        }
        for step in 0..len {
            let index = bytes[steps_at + step * STEP_BYTES + STEP_BYTES - 1];
            if usize::from(index) >= names {
                return Err(PackedError::ModelIndex { step, index, names });
            }
        }
        Ok(Self {
            bytes,
            steps_at,
            len,
        })
    }

    /// Reads the JSON array of `{p10, p50, p90, model}` that forecasts were
    /// stored as before they were packed (a missing model reads as "").
    pub fn from_json(json: &str) -> Result<Self, PackedError> {
        #[derive(serde::Deserialize)]
        struct JsonStep {
            p10: f64,
            p50: f64,
            p90: f64,
            #[serde(default)]
            model: String,
        }
        let steps: Vec<JsonStep> =
            serde_json::from_str(json).map_err(|e| PackedError::Json(e.to_string()))?;
        Self::pack(steps.iter().map(|s| {
            (
                Step {
                    p10: s.p10,
                    p50: s.p50,
                    p90: s.p90,
                },
                s.model.as_str(),
            )
        }))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The steps, h = 1 first.
    pub fn steps(&self) -> impl ExactSizeIterator<Item = Step> + '_ {
        self.step_chunks().map(|c| Step {
            p10: f64_at(c, 0),
            p50: f64_at(c, 8),
            p90: f64_at(c, 16),
        })
    }

    /// The steps with the name of the model that served each.
    pub fn with_models(&self) -> impl ExactSizeIterator<Item = (Step, &str)> + '_ {
        self.steps()
            .zip(self.step_chunks())
            .map(|(s, c)| (s, self.name(c[STEP_BYTES - 1])))
    }

    fn step_chunks(&self) -> std::slice::ChunksExact<'_, u8> {
        self.bytes[self.steps_at..].chunks_exact(STEP_BYTES)
    }

    /// The `index`th model name (checked in `from_bytes`/`pack`).
    fn name(&self, index: u8) -> &str {
        let mut at = 2;
        for _ in 0..index {
            at += 1 + usize::from(self.bytes[at]);
        }
        let n = usize::from(self.bytes[at]);
        std::str::from_utf8(&self.bytes[at + 1..at + 1 + n]).unwrap_or_default()
    }
}

#[inline]
fn f64_at(chunk: &[u8], at: usize) -> f64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&chunk[at..at + 8]);
    f64::from_le_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn step(p50: f64) -> Step {
        Step::ordered(p50 * 0.8, p50, p50 * 1.3)
    }

    #[test]
    fn packs_and_reads_back_steps_and_models() {
        let input = [
            (step(10.0), "ets"),
            (step(12.5), "lstm"),
            (step(-3.0), "ets"),
        ];
        let packed = PackedSteps::pack(input.iter().copied()).unwrap();
        assert_eq!(packed.len(), 3);
        assert_eq!(packed.steps().collect::<Vec<_>>(), input.map(|(s, _)| s));
        assert_eq!(packed.with_models().collect::<Vec<_>>(), input);
        // Read from stored bytes, the same.
        let stored = PackedSteps::from_bytes(packed.as_bytes().to_vec()).unwrap();
        assert_eq!(stored, packed);
        // Two names stored once each: 1 + 1 + (1 + 3) + (1 + 4) + 2 + 3 × 25.
        assert_eq!(packed.as_bytes().len(), 88);
    }

    #[test]
    fn twelve_steps_are_a_third_of_their_json() {
        let json = serde_json::to_string(
            &(1..=12)
                .map(|h| {
                    let s = step(1234.5678 * f64::from(h));
                    serde_json::json!({"p10": s.p10, "p50": s.p50, "p90": s.p90, "model": "seasonal_naive"})
                })
                .collect::<Vec<_>>(),
        )
        .unwrap();
        let packed = PackedSteps::from_json(&json).unwrap();
        assert_eq!(packed.len(), 12);
        assert!(
            packed.as_bytes().len() * 3 < json.len(),
            "{} bytes packed vs {} of JSON",
            packed.as_bytes().len(),
            json.len()
        );
    }

    #[test]
    fn reads_the_json_forecasts_were_stored_as() {
        let packed = PackedSteps::from_json(
            r#"[{"p10":1,"p50":2,"p90":3,"model":"naive"},{"p10":4,"p50":5,"p90":6}]"#,
        )
        .unwrap();
        assert_eq!(
            packed.with_models().collect::<Vec<_>>(),
            [
                (
                    Step {
                        p10: 1.0,
                        p50: 2.0,
                        p90: 3.0
                    },
                    "naive"
                ),
                (
                    Step {
                        p10: 4.0,
                        p50: 5.0,
                        p90: 6.0
                    },
                    ""
                )
            ]
        );
        assert!(matches!(
            PackedSteps::from_json("{not json"),
            Err(PackedError::Json(_))
        ));
    }

    #[test]
    fn an_empty_forecast_packs() {
        let packed = PackedSteps::pack([]).unwrap();
        assert!(packed.is_empty());
        assert_eq!(
            PackedSteps::from_bytes(packed.as_bytes().to_vec()).unwrap(),
            packed
        );
    }

    #[test]
    fn damaged_bytes_are_refused_not_read() {
        let good = PackedSteps::pack([(step(1.0), "ets"), (step(2.0), "ets")])
            .unwrap()
            .as_bytes()
            .to_vec();
        let mut newer = good.clone();
        newer[0] = 2;
        assert_eq!(PackedSteps::from_bytes(newer), Err(PackedError::Format(2)));
        assert_eq!(
            PackedSteps::from_bytes(good[..good.len() - 1].to_vec()),
            Err(PackedError::Truncated)
        );
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(
            PackedSteps::from_bytes(longer),
            Err(PackedError::Trailing(1))
        );
        let mut index = good.clone();
        *index.last_mut().unwrap() = 1;
        assert_eq!(
            PackedSteps::from_bytes(index),
            Err(PackedError::ModelIndex {
                step: 1,
                index: 1,
                names: 1
            })
        );
        let mut utf8 = good;
        utf8[3] = 0xff;
        assert_eq!(PackedSteps::from_bytes(utf8), Err(PackedError::Utf8));
        assert_eq!(
            PackedSteps::from_bytes(Vec::new()),
            Err(PackedError::Truncated)
        );
    }

    #[test]
    fn too_long_a_model_name_is_an_error() {
        let long = "m".repeat(256);
        assert!(matches!(
            PackedSteps::pack([(step(1.0), long.as_str())]),
            Err(PackedError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn any_steps_round_trip(
            steps in proptest::collection::vec(
                (any::<f64>(), any::<f64>(), any::<f64>(), 0usize..4), 0..200)
        ) {
            let names = ["ets", "lstm", "seasonal_naive", ""];
            let input: Vec<(Step, &str)> = steps
                .iter()
                .map(|&(p10, p50, p90, m)| (Step { p10, p50, p90 }, names[m]))
                .collect();
            let packed = PackedSteps::pack(input.iter().copied()).unwrap();
            let stored = PackedSteps::from_bytes(packed.as_bytes().to_vec()).unwrap();
            let back: Vec<(Step, &str)> = stored.with_models().collect();
            prop_assert_eq!(back.len(), input.len());
            for ((a, ma), (b, mb)) in back.iter().zip(&input) {
                // Bit for bit, NaN included.
                prop_assert_eq!(a.p10.to_bits(), b.p10.to_bits());
                prop_assert_eq!(a.p50.to_bits(), b.p50.to_bits());
                prop_assert_eq!(a.p90.to_bits(), b.p90.to_bits());
                prop_assert_eq!(ma, mb);
            }
        }

        #[test]
        fn no_bytes_make_reading_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(p) = PackedSteps::from_bytes(bytes) {
                let _ = p.with_models().count();
            }
        }
    }
}
