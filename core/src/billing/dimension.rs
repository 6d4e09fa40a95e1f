//! What is priced: a resource by the unit-hour or unit, a billable unit type
//! (usage events), or a micro-operation type.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::telemetry::{validate_micro_operation_type, validate_name};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    /// Instance-hours of capacity in force.
    Instance,
    /// vCPU-hours of capacity in force.
    Vcpu,
    /// GiB-hours of memory held by micro-operations while they ran.
    MemoryGib,
    /// GB (10^9 bytes) sent or received by micro-operations.
    NetworkGb,
    /// GB (10^9 bytes) of disk I/O by micro-operations.
    DiskIoGb,
}

impl Resource {
    pub const ALL: [Resource; 5] = [
        Resource::Instance,
        Resource::Vcpu,
        Resource::MemoryGib,
        Resource::NetworkGb,
        Resource::DiskIoGb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Instance => "instance",
            Resource::Vcpu => "vcpu",
            Resource::MemoryGib => "memory_gib",
            Resource::NetworkGb => "network_gb",
            Resource::DiskIoGb => "disk_io_gb",
        }
    }

    /// The unit a quantity of it is counted in.
    pub fn unit(self) -> &'static str {
        match self {
            Resource::Instance => "instance-hour",
            Resource::Vcpu => "vCPU-hour",
            Resource::MemoryGib => "GiB-hour",
            Resource::NetworkGb | Resource::DiskIoGb => "GB",
        }
    }

    /// Capacity reserved for the customer, as opposed to consumption metered per operation.
    pub fn is_capacity(self) -> bool {
        matches!(self, Resource::Instance | Resource::Vcpu)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    Resource(Resource),
    /// A usage-event type (`api_call`, `job_run`, …): per unit of quantity.
    Unit(String),
    /// A micro-operation type (`MEMORY_READ`, …): per operation.
    MicroOp(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DimensionError {
    #[error(
        "dimension must be resource:<instance|vcpu|memory_gib|network_gb|disk_io_gb>, \
         unit:<usage event type> or microop:<MICRO_OPERATION_TYPE> (got {0:?})"
    )]
    Shape(String),
    #[error("{0}")]
    Name(String),
}

impl Dimension {
    pub fn is_capacity(&self) -> bool {
        matches!(self, Dimension::Resource(r) if r.is_capacity())
    }

    pub fn unit(&self) -> &'static str {
        match self {
            Dimension::Resource(r) => r.unit(),
            Dimension::Unit(_) => "unit",
            Dimension::MicroOp(_) => "operation",
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dimension::Resource(r) => write!(f, "resource:{}", r.as_str()),
            Dimension::Unit(t) => write!(f, "unit:{t}"),
            Dimension::MicroOp(t) => write!(f, "microop:{t}"),
        }
    }
}

impl FromStr for Dimension {
    type Err = DimensionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || DimensionError::Shape(s.chars().take(80).collect());
        let (kind, name) = s.split_once(':').ok_or_else(shape)?;
        match kind {
            "resource" => Resource::ALL
                .into_iter()
                .find(|r| r.as_str() == name)
                .map(Dimension::Resource)
                .ok_or_else(shape),
            "unit" => {
                validate_name("unit", name, 100)
                    .map_err(|e| DimensionError::Name(e.to_string()))?;
                Ok(Dimension::Unit(name.to_owned()))
            }
            "microop" => {
                validate_micro_operation_type(name).map_err(DimensionError::Name)?;
                Ok(Dimension::MicroOp(name.to_owned()))
            }
            _ => Err(shape()),
        }
    }
}

impl Serialize for Dimension {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dimension {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_round_trip_through_text() {
        for s in [
            "resource:instance",
            "resource:disk_io_gb",
            "unit:api_call",
            "microop:MEMORY_READ",
        ] {
            assert_eq!(s.parse::<Dimension>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn malformed_dimensions_say_what_is_expected() {
        assert!(matches!(
            "cpu".parse::<Dimension>(),
            Err(DimensionError::Shape(_))
        ));
        assert!(matches!(
            "resource:gpu".parse::<Dimension>(),
            Err(DimensionError::Shape(_))
        ));
        assert!(matches!(
            "unit:api call".parse::<Dimension>(),
            Err(DimensionError::Name(_))
        ));
        assert!(matches!(
            "microop:memory_read".parse::<Dimension>(),
            Err(DimensionError::Name(_))
        ));
    }
}
