//! What Headroom observes: metric points, usage events, micro-operation events and
//! end-user behaviour events; the rules they must follow, and how metric points roll
//! up into fixed buckets. Pure: callers parse, store and send.

mod names;
mod rollup;
mod time;

pub use names::{
    NameError, validate_metric, validate_micro_operation_type, validate_name, validate_workload,
};
pub use rollup::{Bucket, Resolution, buckets_for, regroup};
pub use time::{TimeError, TimeWindow, parse_timestamp};
