//! Allocation: the proactive policy, the reactive baseline it is judged
//! against, budget caps, spot choice, and the replay that compares policies on
//! a demand series.

pub mod budget;
pub mod policy;
pub mod predictive;
pub mod reactive;
pub mod release;
pub mod replay;
pub mod risk;
pub mod spot;
pub mod suggestion;

pub use budget::{Budget, BudgetOutcome, CapAction};
pub use policy::{
    Bounds, ControllerState, Decision, Inputs, Limit, Mode, PolicyConfig, PolicyError, Reason,
    StateDecodeError, decide,
};
pub use predictive::Predictive;
pub use reactive::{Hpa, HpaConfig};
pub use release::ReleaseRecord;
pub use replay::{
    Fleet, PeakStatic, ScalePolicy, instances_for, scale_demand, simulate, summarise,
};
pub use risk::GrowthRisk;
